/*
 * store_clusters.h - provisioned clusters and their events in the store.
 *
 * Rows come back as jansson objects with every column (the REST layer
 * builds its public view from them; `token` and `backend_ref` never leave
 * the daemon):
 *
 *   {"id", "team", "environment", "region", "size", "state", "backend",
 *    "backend_ref", "pool", "endpoint", "namespace", "driver", "token",
 *    "executors", "cores", "memory_mib", "catalogs": [...], "spec": {...},
 *    "reason", "expires_at", "created_by", "created_at", "updated_at"}
 *
 * (absent values are JSON null).  A warm (pre-started, unassigned)
 * cluster is a row with `pool` set ("env/region/size") and team ""; it
 * is never listed to users.  `backend_ref` is the name the backend knows
 * the cluster by, so a warm cluster keeps its processes when it is
 * handed over under a user-facing id.  Every state change writes the row
 * and a cluster_events row in one BEGIN IMMEDIATE transaction, and is
 * conditional on the state the caller saw.
 */
#ifndef SPARKPLANE_CORE_STORE_CLUSTERS_H
#define SPARKPLANE_CORE_STORE_CLUSTERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_jobs.h"   /* store_idempotency, store_create_result */

typedef struct store_cluster_new {
    const char *id;
    const char *team;            /* "" for a warm cluster */
    const char *environment;
    const char *region;
    const char *size;
    const char *state;           /* "PROVISIONING", or "RUNNING" for a hand-over */
    const char *reason;          /* of the creation event */
    const char *backend;
    const char *backend_ref;
    const char *pool;            /* NULL for a user's cluster */
    const char *endpoint;        /* "sc://..." or NULL */
    const char *namespace_name;  /* "sjns-..." or NULL */
    const char *driver;          /* "host:port" or NULL until known */
    const char *token;           /* the cluster's Spark Connect token */
    int64_t executors;
    int64_t cores;
    int64_t memory_mib;
    const json_t *catalogs;      /* array of names */
    const json_t *spec;          /* the normalised request */
    const char *expires_at;      /* NULL: persistent / no TTL */
    const char *created_by;      /* principal subject, or NULL */
} store_cluster_new;

/*
 * Inserts the row with its creation event and, when idem->key is set,
 * the idempotency row (resource_kind 'cluster') in one transaction.  A key
 * that names a job is a conflict.  With `warm_id` non-NULL, the warm row
 * of that id is deleted in the same transaction (the hand-over); if it is
 * gone or no longer RUNNING the result is STORE_FAILED with err "warm
 * cluster taken" and nothing is written.
 */
store_create_result store_cluster_create(store *s, const store_cluster_new *cluster,
                                         const store_idempotency *idem, const char *warm_id,
                                         json_t **cluster_out, char *err, size_t err_size);

/* SP_OK with a new reference, SP_NOT_FOUND, SP_ERROR. */
int store_cluster_get(store *s, const char *id, json_t **cluster_out);

typedef struct store_cluster_filter {
    const char *team;            /* NULL: every team (admin) */
    const char *environment;     /* NULL: any */
    const char *region;
    const char *state;
    int include_warm;            /* 0: rows with pool set are left out */
    int live_only;               /* 1: not TERMINATED/FAILED */
    size_t limit;                /* 0: no limit */
} store_cluster_filter;

/* Rows matching, oldest first, as a new array. SP_OK / SP_ERROR. */
int store_cluster_list(store *s, const store_cluster_filter *filter, json_t **clusters_out);

/*
 * Changes a row.  `expect_state` (NULL: any) must be the current state or
 * SP_CONFLICT is returned and nothing is written.  `to_state` (NULL: keep)
 * writes an event with `reason` when given.  `fields` (may be NULL) sets
 * columns: "driver", "endpoint", "executors", "cores", "memory_mib",
 * "size", "expires_at" (null clears), "spec", "reason"; other keys are
 * SP_INVALID.  SP_OK with *cluster_out (may be NULL) the new row,
 * SP_NOT_FOUND, SP_CONFLICT, SP_ERROR.
 */
int store_cluster_update(store *s, const char *id, const char *expect_state,
                         const char *to_state, const char *reason, const json_t *fields,
                         json_t **cluster_out, char *err, size_t err_size);

/* Writes an event without a state change (e.g. "ttl extended to ..."). */
int store_cluster_note(store *s, const char *id, const char *reason, char *err, size_t err_size);

/* Deletes a row (warm clusters that were stopped); SP_OK / SP_NOT_FOUND / SP_ERROR. */
int store_cluster_delete(store *s, const char *id);

/* Events oldest first: [{"at","from_state","to_state","reason"}]. */
int store_cluster_events(store *s, const char *id, json_t **events_out);

/* A team's live clusters (not warm, not TERMINATED/FAILED): count and cores. */
int store_cluster_usage(store *s, const char *team, int64_t *clusters_out, int64_t *cores_out);

/* Live user clusters whose expires_at <= now_text, oldest expiry first (ids). */
int store_cluster_expired(store *s, const char *now_text, json_t **ids_out);

#endif
