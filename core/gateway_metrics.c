/*
 * gateway_metrics.c - per-cluster metric series, registered once (see gateway_metrics.h).
 *
 * A short list: clusters are few compared to streams, and a stream looks
 * its cluster up once, when it is routed.
 */
#include "gateway_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef struct cluster_stats_node {
    struct cluster_stats_node *next;
    gateway_cluster_stats stats;
} cluster_stats_node;

struct gateway_metrics {
    cluster_stats_node *clusters;
};

gateway_metrics *gateway_metrics_new(void)
{
    return calloc(1, sizeof(gateway_metrics));
}

void gateway_metrics_free(gateway_metrics *metrics)
{
    if (metrics == NULL)
        return;
    while (metrics->clusters) {
        cluster_stats_node *next = metrics->clusters->next;
        free(metrics->clusters);
        metrics->clusters = next;
    }
    free(metrics);
}

static void gateway_metrics_register(gateway_cluster_stats *stats)
{
    char labels[256];
    snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\"", stats->cluster, stats->team);
    stats->active_streams = metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_active_streams",
                                             "Gateway streams open now, by cluster and team",
                                             labels);
    snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\",direction=\"request\"",
             stats->cluster, stats->team);
    stats->bytes_request = metrics_register(
        SP_METRIC_COUNTER, "sparkplane_gateway_bytes_total",
        "Gateway DATA bytes by cluster, team and direction (request: to Spark)", labels);
    snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\",direction=\"response\"",
             stats->cluster, stats->team);
    stats->bytes_response = metrics_register(
        SP_METRIC_COUNTER, "sparkplane_gateway_bytes_total",
        "Gateway DATA bytes by cluster, team and direction (request: to Spark)", labels);
    snprintf(labels, sizeof(labels), "cluster=\"%s\"", stats->cluster);
    stats->first_byte_seconds = metrics_register(
        SP_METRIC_HISTOGRAM, "sparkplane_gateway_upstream_first_byte_seconds",
        "From opening a stream to a Spark Connect server to its response headers", labels);
}

gateway_cluster_stats *gateway_metrics_cluster(gateway_metrics *metrics, const char *cluster,
                                               const char *team)
{
    if (cluster[0] == '\0')
        cluster = "-";
    if (team[0] == '\0')
        team = "-";
    for (cluster_stats_node *node = metrics->clusters; node; node = node->next) {
        if (strcmp(node->stats.cluster, cluster) == 0 && strcmp(node->stats.team, team) == 0)
            return &node->stats;
    }
    cluster_stats_node *node = calloc(1, sizeof(*node));
    if (node == NULL)
        return NULL;
    snprintf(node->stats.cluster, sizeof(node->stats.cluster), "%s", cluster);
    snprintf(node->stats.team, sizeof(node->stats.team), "%s", team);
    gateway_metrics_register(&node->stats);
    node->next = metrics->clusters;
    metrics->clusters = node;
    return &node->stats;
}

void gateway_metrics_count_stream(gateway_cluster_stats *stats, const char *grpc_status)
{
    char labels[256];
    char *end = NULL;
    long code = strtol(grpc_status, &end, 10);
    int known = end != grpc_status && *end == '\0' && code >= 0 && code < GATEWAY_GRPC_STATUS_COUNT;
    if (known && stats->streams[code]) {
        metrics_add(stats->streams[code], 1);
        return;
    }
    /* A status outside 0-16 (or not a number) counts as "unknown". */
    snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\",grpc_status=\"%.16s\"",
             stats->cluster, stats->team, known ? grpc_status : "unknown");
    sp_metric *series = metrics_register(SP_METRIC_COUNTER, "sparkplane_gateway_streams_total",
                                         "Gateway streams by cluster, team and final gRPC status",
                                         labels);
    if (known)
        stats->streams[code] = series;
    metrics_add(series, 1);
}
