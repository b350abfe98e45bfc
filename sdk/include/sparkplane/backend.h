/*
 * sparkplane/backend.h - compute backends (local, Docker, SK8, EMR).
 *
 * A backend plugin registers an sp_backend_ops table.  Every operation is
 * asynchronous: it starts the work, returns SP_OK (or an error at once),
 * and later calls the reply function exactly once from the event loop.
 * Specs travel as JSON text so the table stays stable while the job and
 * cluster shapes grow.  A backend ignores fields it does not know.
 *
 * job_submit(job_json):
 *   {"id": "job-...", "attempt": 1,
 *    "spec": {the normalised job: name, team, application{file, class, args,
 *             py_files, jars, conf}, resources{driver, executor,
 *             dynamic_allocation}, spark_version, ...},
 *    "runtime": {"spark_version": "4.0", "spark_home": "...", "image": "..."}}
 *   reply SP_OK {"state": "SUBMITTED"|"RUNNING", "spark_app_id"?: "..."};
 *   SP_AGAIN: at capacity, try later (the job stays PENDING, message shown);
 *   SP_UNAVAILABLE: the engine is down (stays PENDING, message shown);
 *   SP_INVALID: this job can never run here (it FAILS with the message).
 *
 * job_status(id): reply SP_OK {"state": "SUBMITTED"|"RUNNING"|"SUCCEEDED"|
 *   "FAILED"|"CANCELLED", "spark_app_id"?, "reason"?, "exit_code"?};
 *   SP_NOT_FOUND: the backend does not know the job (it FAILS as lost).
 *
 * job_cancel(id): reply SP_OK once the stop has begun; job_status later
 *   reports CANCELLED.  A job that already ended replies its final state.
 *
 * job_logs(id, offset, limit): reply SP_OK {"data": "<text>", "next_offset": N,
 *   "complete": true|false} - the driver log from byte `offset`, at most
 *   `limit` bytes (invalid UTF-8 replaced); complete once the job ended and
 *   nothing is left.
 *
 * attach(on_event): the backend calls on_event(host_arg, json) whenever it
 *   notices a change by itself, with the job_status shape plus "id".
 *
 * reconcile(): reply SP_OK {"jobs": ["job-...", ...], "clusters": [{"id",
 *   "endpoint", "executors"}, ...]} - every job and cluster the backend
 *   still owns after a restart ("clusters" may be absent).  The host stops
 *   clusters it does not know with cluster_stop.
 *
 * Clusters (Spark Connect; ABI 1.1).  A backend without clusters leaves
 * these NULL.  The id is the host's name for the cluster ([a-z0-9-], at
 * most 63 bytes); it stays the same for the cluster's whole life.
 *
 * cluster_start(cluster_json):
 *   {"id": "...", "team": "..." ("" for a warm cluster), "environment",
 *    "region", "namespace",
 *    "resources": {"driver": {"cores": 1, "memory": "1g"}, "executors": 2,
 *                  "executor": {"cores": 1, "memory": "1g"}},
 *    "conf": {"spark.sql.catalog.x": "...", ...},   Spark settings to start with
 *    "token": "...",          the server's pre-shared Spark Connect token
 *    "runtime": {"spark_version", "spark_home"?, "image"?}}
 *   reply SP_OK {"endpoint": "host:port", "executors": N} once the Spark
 *   Connect port accepts connections (the host then checks that it answers
 *   a real call before the cluster is RUNNING); SP_AGAIN / SP_UNAVAILABLE
 *   (try later, message shown), SP_INVALID (never possible here: the
 *   cluster FAILS), SP_ERROR (it did not come up: the reason, e.g. the end
 *   of its log).
 *
 * cluster_scale(id, scale_json): {"executors": N, "executor": {"cores",
 *   "memory"}} - reply SP_OK {"executors": N} once the new capacity is
 *   registered (or the removed capacity is gone).  What "executors" means is
 *   the backend's to document (local: standalone workers).
 *
 * cluster_stop(id): reply SP_OK once every process/container of the
 *   cluster is gone; SP_NOT_FOUND when the backend has no such cluster.
 *
 * cluster_endpoint(id): reply SP_OK {"endpoint", "executors", "state":
 *   "RUNNING"|"FAILED", "reason"?}; SP_NOT_FOUND.
 *
 * A cluster that dies by itself is reported through attach's on_event:
 *   {"kind": "cluster", "id", "state": "FAILED", "reason"}.
 */
#ifndef SPARKPLANE_BACKEND_H
#define SPARKPLANE_BACKEND_H

#include <sparkplane/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reply to one operation: status, and a JSON document (or NULL). */
typedef void (*sp_backend_reply_fn)(void *arg, int status, const char *json,
                                    const char *message);

/* An event the backend noticed by itself: {"kind":"job","id":...,"state":...}. */
typedef void (*sp_backend_event_fn)(void *host_arg, const char *json);

typedef struct sp_backend_ops {
    uint32_t size;
    void (*attach)(void *provider, sp_backend_event_fn on_event, void *host_arg);
    /* Batch jobs. */
    int (*job_submit)(void *provider, const char *job_json, sp_backend_reply_fn reply, void *arg);
    int (*job_status)(void *provider, const char *job_id, sp_backend_reply_fn reply, void *arg);
    int (*job_cancel)(void *provider, const char *job_id, sp_backend_reply_fn reply, void *arg);
    int (*job_logs)(void *provider, const char *job_id, uint64_t offset, uint64_t limit,
                    sp_backend_reply_fn reply, void *arg);
    /* Clusters (Spark Connect). */
    int (*cluster_start)(void *provider, const char *cluster_json, sp_backend_reply_fn reply, void *arg);
    int (*cluster_scale)(void *provider, const char *cluster_id, const char *scale_json,
                         sp_backend_reply_fn reply, void *arg);
    int (*cluster_stop)(void *provider, const char *cluster_id, sp_backend_reply_fn reply, void *arg);
    int (*cluster_endpoint)(void *provider, const char *cluster_id, sp_backend_reply_fn reply, void *arg);
    /* After a restart: report everything this backend owns. */
    int (*reconcile)(void *provider, sp_backend_reply_fn reply, void *arg);
} sp_backend_ops;

#ifdef __cplusplus
}
#endif

#endif /* SPARKPLANE_BACKEND_H */
