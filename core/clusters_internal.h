/*
 * clusters_internal.h - what the three files of the cluster manager share:
 *
 *   clusters.c            the operations behind the REST routes (clusters.h):
 *                         who may do what, validation, create (cold or from a
 *                         warm cluster), scale, ttl, delete, discovery, the view;
 *   clusters_lifecycle.c  one cluster's life: backend calls (start, stop), the
 *                         readiness check, state changes with the registry and
 *                         the hosts file kept in step;
 *   clusters_pools.c      the periodic tick (TTL reaper, start timeouts, hot
 *                         pools), adoption after a restart, backend events,
 *                         and the manager's own start and end.
 *
 * Not for use outside these files.
 */
#ifndef SPARKPLANE_CORE_CLUSTERS_INTERNAL_H
#define SPARKPLANE_CORE_CLUSTERS_INTERNAL_H

#include <event2/event.h>
#include <jansson.h>
#include <sparkplane/backend.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster_registry.h"
#include "clusters.h"
#include "config.h"
#include "daemon.h"
#include "metrics.h"
#include "spark_connect_call.h"

#define CLUSTERS_READY_RETRY_MS 1000u   /* between readiness calls */
#define CLUSTERS_READY_CALL_MS  10000u  /* one readiness call */
#define CLUSTERS_WARMUP_CALL_MS 300000u /* the warm-up query (executors may be starting) */
/* Two tasks, so both the driver and an executor load what a query needs. */
#define CLUSTERS_WARMUP_QUERY       "SELECT count(*) FROM range(0, 1000, 1, 2)"
#define CLUSTERS_POOL_RETRY_MS      60000u /* after a warm start failed */
#define CLUSTERS_DEFAULT_ESTIMATE_S 60     /* before a cold start was measured */
#define CLUSTERS_TOKEN_BYTES        32
#define CLUSTERS_PROBE_USER         "sparkplane"
#define CLUSTERS_POOL_TEAM          ""

typedef enum cluster_op_kind {
    CLUSTER_OP_START,
    CLUSTER_OP_READY,
    CLUSTER_OP_SCALE,
    CLUSTER_OP_STOP,
    CLUSTER_OP_RECONCILE,
} cluster_op_kind;

/* One piece of background work on a cluster: a backend call or the readiness check. */
typedef struct cluster_op {
    clusters *owner;
    struct cluster_op *prev;
    struct cluster_op *next;
    cluster_op_kind kind;
    int abandoned; /* the plugins were reloaded: ignore the reply */
    char id[CLUSTER_ID_MAX + 1];
    char ref[CLUSTER_ID_MAX + 1];
    json_t *scale;       /* CLUSTER_OP_SCALE: the target */
    sc_call *call;       /* CLUSTER_OP_READY: the Config call under way */
    struct event *retry; /* CLUSTER_OP_READY: the next attempt */
    char session[37];    /* CLUSTER_OP_READY: one session for every attempt */
    int warming;         /* CLUSTER_OP_READY: Config answered, warm-up query next */
    char last_error[256];
} cluster_op;

struct clusters {
    daemon_state *daemon;
    struct event *tick;
    cluster_op *ops;
    int started;
    int draining;
    double cold_start_seconds; /* running average of measured cold starts; 0: none */
    uint64_t pool_retry_at_ms; /* no warm start before this (after a failure) */
    sp_metric *created_hot;
    sp_metric *created_cold;
    sp_metric *ready_seconds;
};

/* ---- clusters_lifecycle.c: small helpers ---- */

uint64_t clusters_now_ms(void);
double clusters_wall_seconds(void);
/* "2026-11-23T13:44:43.123Z" -> unix seconds; 0 when malformed. */
double clusters_parse_time(const char *text);
/* The string member `key`, or "" (never NULL). */
const char *clusters_str(const json_t *object, const char *key);
/* n random [a-z0-9] characters and a NUL. */
void clusters_random_suffix(char *out, size_t n);
int clusters_new_token(char out[2 * CLUSTERS_TOKEN_BYTES + 1]);
/* Not TERMINATED or FAILED. */
int clusters_state_live(const char *state);
const config_provisioning *clusters_cfg(const clusters *c);
/* A row with `pool` set: a warm cluster nobody owns yet. */
int clusters_is_warm(const json_t *row);
/* "env/region/size": a warm row's pool. */
void clusters_pool_key(const char *env, const char *region, const char *size, char *out,
                       size_t out_size);
/* A new cluster's id, namespace and endpoint (team "" for a warm cluster: no endpoint). */
void clusters_names(clusters *c, const json_t *spec, const char *team, char *id,
                    char *namespace_name, char *endpoint);

/* ---- clusters_lifecycle.c: the backend and background work ---- */

/* provisioning.backend when it is loaded and runs clusters, else NULL. */
const sp_backend_ops *clusters_backend(clusters *c, void **provider);
cluster_op *clusters_op_new(clusters *c, cluster_op_kind kind, const char *id, const char *ref);
void clusters_op_free(cluster_op *op);
/* Whether work of `kind` on row `id` is under way (and not abandoned). */
int clusters_op_running(const clusters *c, cluster_op_kind kind, const char *id);

/* ---- clusters_lifecycle.c: state changes ---- */

void clusters_write_hosts(clusters *c);
/* Puts a RUNNING user cluster into the gateway's registry. */
void clusters_route(clusters *c, const json_t *row);
/*
 * Moves a row to `to` (when its state is still `from`, NULL = any) with the reason and
 * field changes, then brings the registry and the hosts file along.  SP_OK, or the store's
 * answer.
 */
int clusters_transition(clusters *c, const char *id, const char *from, const char *to,
                        const char *reason, const json_t *fields, json_t **row_out);
/* Asks the backend to stop `ref` (the row `id`, "" for an orphan). */
void clusters_stop_backend(clusters *c, const char *id, const char *ref);
/* A live cluster becomes TERMINATING and is stopped; a warm one is stopped and forgotten. */
int clusters_terminate(clusters *c, const json_t *row, const char *reason, json_t **row_out);
/* FAILED with the reason (a warm one is forgotten), and whatever is left of it stopped. */
void clusters_fail_cluster(clusters *c, const char *id, const char *reason);
/* cluster_start for a PROVISIONING row; the readiness check follows its answer. */
void clusters_start_backend(clusters *c, const json_t *row);
/* Calls the new server until it answers (or the tick's start_timeout fails the cluster). */
void clusters_begin_ready(clusters *c, const char *id, const char *ref);

/* ---- clusters_pools.c ---- */

/* Arms the tick (provisioning.reap_interval) again. */
void clusters_schedule(clusters *c);

#endif
