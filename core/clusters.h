/*
 * clusters.h - provisioned Spark Connect clusters: the lifecycle behind
 * /api/v1/clusters, hot pools, the TTL reaper, discovery and the hosts
 * file.
 *
 * The store is the truth; this module drives the cluster backend
 * (provisioning.backend) to match it and puts RUNNING clusters into the
 * gateway's registry.  A cluster is RUNNING only after its Spark Connect
 * server answered a real call through the gateway's upstream pool.
 *
 * The operations below are what the REST handlers call.  They check the
 * caller (team membership; a viewer may read but not write), validate
 * with cluster_spec, write the store and return the public view of the
 * cluster:
 *
 *   {"cluster_id", "team", "environment", "region", "size", "status",
 *    "endpoint", "namespace", "catalogs", "executors", "cores",
 *    "expires_at", "ttl", "estimated_ready_seconds", "reason",
 *    "created_by", "created_at", "updated_at"}
 *
 * Backend work goes on in the background.  A cluster of another team
 * answers 404, exactly like one that does not exist.
 */
#ifndef SPARKPLANE_CORE_CLUSTERS_H
#define SPARKPLANE_CORE_CLUSTERS_H

#include <jansson.h>
#include <sparkplane/auth.h>

#include "config.h"
#include "diag.h"

struct daemon_state;
typedef struct clusters clusters;

typedef struct clusters_error {
    int status;                 /* HTTP status */
    char code[32];              /* "invalid_request", "forbidden", "not_found", "conflict",
                                   "quota_exceeded", "idempotency_conflict", "unavailable",
                                   "internal" */
    char field[64];             /* the field at fault, or "" */
    char message[512];
    char denial[128];           /* set when a 404 hides another team's cluster (audit.h) */
} clusters_error;

clusters *clusters_new(struct daemon_state *daemon);
void clusters_free(clusters *c);

/* Start and reload: takes the new configuration (pools, reaper period). */
int clusters_configure(clusters *c, const config *cfg, diag_list *problems);
/* After plugins are loaded: reconcile with the backend, then reaper and pools. */
void clusters_start(clusters *c);
/* After a reload replaced the plugins: re-attach and adopt from the new backend instance. */
void clusters_plugins_changed(clusters *c);
/*
 * A backend event {"kind": "cluster", "id": <backend ref>, "state": "FAILED", "reason"}:
 * the runner owns each backend's single event callback and passes these on.
 */
void clusters_backend_event(clusters *c, const char *json);
/* Draining: no new clusters, warm or not. */
void clusters_drain(clusters *c);

/* Each: 0 with *out (new reference), or -1 with err filled. */
/* POST /clusters: *created = 1 for a new cluster (201), 0 for a replay (200). */
int clusters_create(clusters *c, const sp_principal *caller, const json_t *body,
                    const char *idempotency_key, json_t **out, int *created, clusters_error *err);
int clusters_get(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                 clusters_error *err);
/* GET /clusters: any filter may be NULL; team NULL = the caller's teams. */
int clusters_list(clusters *c, const sp_principal *caller, const char *team,
                  const char *environment, const char *region, const char *status,
                  json_t **out, clusters_error *err);
/* DELETE /clusters/{id}: 202 with the cluster TERMINATING (or as it is when already ended). */
int clusters_delete(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                    clusters_error *err);
int clusters_scale(clusters *c, const sp_principal *caller, const char *id, const json_t *body,
                   json_t **out, clusters_error *err);
int clusters_set_ttl(clusters *c, const sp_principal *caller, const char *id,
                     const json_t *body, json_t **out, clusters_error *err);
/* GET /clusters/{id}/events: {"cluster_id", "events": [...]} */
int clusters_events(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                    clusters_error *err);
/* GET /discovery: {"cluster_id", "endpoint", "region", "fallback": bool, "status"} */
int clusters_discover(clusters *c, const sp_principal *caller, const char *team,
                      const char *environment, const char *region, json_t **out,
                      clusters_error *err);

#endif
