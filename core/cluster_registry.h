/*
 * cluster_registry.h - the one list of Spark Connect clusters the gateway
 * routes to.
 *
 * Static clusters come from the config (`clusters:`, loaded with
 * cluster_registry_load_config); provisioned clusters (core/clusters.c)
 * are added and removed through the same put/remove calls and marked
 * `provisioned`, so a reload of the config leaves them alone.  Each cluster has an id
 * ([a-z0-9-]{1,63}), a placement (team, environment, region) that is unique
 * in the registry, the Spark Connect endpoints of its drivers and the
 * server's own token (sent upstream, never the client's).
 *
 * Each endpoint carries a health flag and the number of sessions pinned to
 * it, so a new session goes to the least-loaded healthy driver.  Entries
 * returned by the find functions stay valid until the next put or remove of
 * that id: a long-lived session keeps the cluster id and endpoint address
 * and counts itself with session_begin/session_end, which tolerate a
 * cluster or endpoint that has gone away meanwhile.  put() keeps the health
 * and session counts of endpoints whose address stays.
 *
 * Single-threaded, like everything on the event loop.
 */
#ifndef SPARKPLANE_CORE_CLUSTER_REGISTRY_H
#define SPARKPLANE_CORE_CLUSTER_REGISTRY_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

#define CLUSTER_ID_MAX 63
#define CLUSTER_ENDPOINTS_MAX 64
#define CLUSTER_REGISTRY_TOKEN_MAX 4096   /* a server token, in bytes */

typedef struct cluster_endpoint {
    char *address;          /* "host:port" or "[v6]:port" */
    int healthy;            /* 1 until marked otherwise */
    unsigned sessions;      /* sessions pinned to this driver now */
} cluster_endpoint;

typedef struct cluster_entry {
    char *id;
    char *team;
    char *environment;
    char *region;
    cluster_endpoint *endpoints;
    size_t endpoint_count;  /* >= 1 */
    char *token;            /* the server's Spark Connect token, or NULL */
    int provisioned;        /* 1: made through /api/v1/clusters, 0: from `clusters:` */
    json_t *session_conf;   /* settings put into each new session first (catalogs), or NULL */
    char *ended;            /* why a provisioned cluster was terminated (kept a while so its
                               clients read why), or NULL while it serves */
    uint64_t ended_at_ms;   /* monotonic ms when `ended` was set */
} cluster_entry;

typedef struct cluster_registry cluster_registry;

cluster_registry *cluster_registry_new(void);
void cluster_registry_free(cluster_registry *registry);

/*
 * Adds a copy of `entry`, or replaces the cluster with the same id.  Only
 * id, team, environment, region, endpoints[].address, token, provisioned,
 * session_conf (a JSON object of strings, deep-copied), ended and
 * ended_at_ms are read.
 * -1 with a message naming the field when the entry is malformed or its
 * placement belongs to another id; the registry is then unchanged.
 */
int cluster_registry_put(cluster_registry *registry, const cluster_entry *entry, char *err,
                         size_t err_size);

/* 0 when removed, -1 when there was no such id. */
int cluster_registry_remove(cluster_registry *registry, const char *id);

const cluster_entry *cluster_registry_find(const cluster_registry *registry, const char *id);
const cluster_entry *cluster_registry_find_placement(const cluster_registry *registry,
                                                     const char *team, const char *environment,
                                                     const char *region);

/* Listing, in insertion order (a replaced cluster keeps its place). */
size_t cluster_registry_count(const cluster_registry *registry);
const cluster_entry *cluster_registry_at(const cluster_registry *registry, size_t index);

/*
 * Puts every cluster of cfg->clusters, reading token_file where one is
 * set (first line, surrounding whitespace removed).  -1 with a message
 * naming the cluster on the first failure.
 */
int cluster_registry_load_config(cluster_registry *registry, const config *cfg, char *err,
                                 size_t err_size);

/*
 * The healthy endpoint with the fewest sessions (the first on ties), as
 * an index into entry->endpoints; -1 when none is healthy.
 */
int cluster_registry_pick_endpoint(const cluster_entry *entry);

/* Health and session counting by id and address; -1 when either is unknown. */
int cluster_registry_set_healthy(cluster_registry *registry, const char *id, const char *address,
                                 int healthy);
/* Marks `address` in every cluster that lists it; returns how many endpoints changed state. */
size_t cluster_registry_set_healthy_address(cluster_registry *registry, const char *address,
                                           int healthy);
int cluster_registry_session_begin(cluster_registry *registry, const char *id,
                                   const char *address);
int cluster_registry_session_end(cluster_registry *registry, const char *id,
                                 const char *address);

/* [a-z0-9-]{1,63}: cluster ids. */
int cluster_registry_valid_id(const char *id);

#endif
