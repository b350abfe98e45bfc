/*
 * sparkplane/backend.h - compute backends (local, Docker, SK8, EMR).
 *
 * A backend plugin registers an sp_backend_ops table.  Every operation is
 * asynchronous: it starts the work, returns SP_OK (or an error at once),
 * and later calls the reply function exactly once from the event loop.
 * Specs travel as JSON text so the table stays stable while the job and
 * cluster shapes grow; the runner documents their fields.
 *
 * A backend reports state changes it observes on its own (a container
 * exited, a pod was evicted) through the `on_event` callback the host sets
 * in sp_backend_ops.attach(); reconcile() asks it to report the state of
 * everything it owns after a restart.
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
