/*
 * gateway_metrics.h - the gateway's metric series per cluster and team.
 *
 * Registering a series parses and searches its labels, too slow to do
 * for every stream, so each (cluster, team) gets its series once and a
 * stream keeps a pointer to them.  Streams that never reached a cluster
 * count under cluster "-".
 */
#ifndef SPARKPLANE_CORE_GATEWAY_METRICS_H
#define SPARKPLANE_CORE_GATEWAY_METRICS_H

#include <sparkplane/host.h>

#include "cluster_registry.h"

#define GATEWAY_GRPC_STATUS_COUNT 17    /* OK (0) .. UNAUTHENTICATED (16) */

typedef struct gateway_cluster_stats {
    char cluster[CLUSTER_ID_MAX + 1];
    char team[CLUSTER_ID_MAX + 1];
    sp_metric *active_streams;
    sp_metric *bytes_request;           /* DATA bytes to Spark */
    sp_metric *bytes_response;          /* DATA bytes from Spark */
    sp_metric *first_byte_seconds;
    sp_metric *streams[GATEWAY_GRPC_STATUS_COUNT];      /* by final grpc-status, lazily */
} gateway_cluster_stats;

typedef struct gateway_metrics gateway_metrics;

gateway_metrics *gateway_metrics_new(void);
void gateway_metrics_free(gateway_metrics *metrics);

/* The series of (cluster, team), registered the first time; NULL only when out of memory.
 * cluster "" (not routed) is shown as "-". */
gateway_cluster_stats *gateway_metrics_cluster(gateway_metrics *metrics, const char *cluster,
                                               const char *team);

/* sparkplane_gateway_streams_total{cluster,team,grpc_status} += 1. */
void gateway_metrics_count_stream(gateway_cluster_stats *stats, const char *grpc_status);

#endif
