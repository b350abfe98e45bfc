/*
 * local_backend.h - what the files of the local backend share.
 *
 * backend_local.c owns the plugin (options, ops, job lifecycle, replies);
 * local_cluster.c runs Spark Connect clusters (standalone master, workers,
 * a Spark Connect server) and keeps their records;
 * local_command.c turns a job document into the spark-submit command;
 * local_log.c reads driver.log (application id, failure reason, slices);
 * local_record.c keeps the per-job records in the host's key/value store
 * and tells whether a recorded wrapper process is still ours.
 * None of this is exported: the plugin exports only its descriptor.
 */
#ifndef SPARKPLANE_BACKEND_LOCAL_H
#define SPARKPLANE_BACKEND_LOCAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sparkplane/sparkplane.h>

/* The options a command needs, read once at init. */
typedef struct local_settings {
    const char *work_directory;
    int64_t cores_per_job;
    const char *python;
    const char *java_home;      /* NULL: inherit */
    int event_log;              /* write Spark event logs into <job dir>/events */
    const char *const *extra_conf; /* "k=v", NULL-terminated */
} local_settings;

/* A built command: argv and env, NULL-terminated, owning their strings. */
typedef struct local_command {
    char **argv;
    size_t argc;
    char **env;
    size_t envc;
    char *job_dir;
} local_command;

/*
 * Validates the job document (spec.application, runtime.spark_home) and
 * builds the wrapper command for it.  SP_OK, or SP_INVALID / SP_ERROR with
 * a message naming the field.
 */
int local_command_build(const local_settings *settings, const char *job_id, json_t *job,
                        local_command *out, char *err, size_t err_size);
void local_command_free(local_command *command);
/* "512m", "2g", "1GiB", "2048" (MiB) or an integer (MiB) -> Spark's "<n><k|m|g|t>"; 0, or -1
 * when the value is not a size.  Jobs' and clusters' memory settings both go through it. */
int local_memory_text(json_t *value, char *out, size_t out_size);
/* Clusters live in <work_directory>/clusters/<id>/, beside the job folders. */
#define LOCAL_CLUSTERS_DIRECTORY "clusters"

/* A job id usable as a directory and key name: [A-Za-z0-9._-], 1..128, no leading '.' or '_',
 * not "clusters". */
int local_job_id_valid(const char *job_id);

/* ---- driver.log --------------------------------------------------------- */

/* Scans driver.log from *scan_offset for "local-<digits>"; malloc'd id or NULL. */
char *local_log_find_app_id(const char *log_path, uint64_t *scan_offset);
/* The last meaningful error lines of driver.log (<= max_len bytes), malloc'd; "" when none. */
char *local_log_failure_lines(const char *log_path, size_t max_len);
/*
 * Reads up to `limit` bytes from `offset` as valid UTF-8 (invalid bytes
 * become U+FFFD; a sequence cut by the limit is left for the next read).
 * *data_out is malloc'd; *next_out the offset after what was consumed;
 * *size_out the file size (0 when it does not exist yet).
 */
int local_log_read(const char *log_path, uint64_t offset, uint64_t limit, char **data_out,
                   uint64_t *next_out, uint64_t *size_out, char *err, size_t err_size);

/* ---- records and processes ---------------------------------------------- */

/* Start time of a process in clock ticks since boot, from /proc; 0 when unknown. */
unsigned long long local_process_start_ticks(long pid);
/* 1 while `pid` is the live (not zombie) process that started at `start_ticks` (0: any). */
int local_process_alive(long pid, unsigned long long start_ticks);
/* Reads <dir>/exit_code: 1 and *code when present and well-formed, else 0. */
int local_exit_file_read(const char *job_dir, int *code);

/* Record of one job in the kv store (key = job id), and the index of jobs in flight. */
#define LOCAL_INDEX_KEY "_index"
int local_record_put(sp_plugin_context *ctx, const char *job_id, json_t *record, char *err,
                     size_t err_size);
/* SP_OK with a new reference, SP_NOT_FOUND, or SP_ERROR for a record that is not JSON. */
int local_record_get(sp_plugin_context *ctx, const char *job_id, json_t **record_out);
/* The ids in flight (a new array; empty when there is no index). */
json_t *local_index_load(sp_plugin_context *ctx);
int local_index_update(sp_plugin_context *ctx, const char *job_id, int present);

/* ---- replies (backend_local.c) ---------------------------------------------- */

/* A reply waiting for its 0 ms timer: every op answers from the loop, never inside the call. */
typedef struct local_reply local_reply;
/* Queues a reply on `pending`; takes `doc` (may be NULL). */
void local_reply_later(sp_plugin_context *ctx, local_reply **pending, sp_backend_reply_fn fn,
                       void *arg, int status, json_t *doc, const char *message);
/* Drops the replies not sent yet (unload): their callers are gone with the host's state. */
void local_replies_drop(sp_plugin_context *ctx, local_reply **pending);

/* ---- clusters (local_cluster.c) ------------------------------------------------ */

typedef struct local_cluster_settings {
    const char *work_directory;     /* clusters live in <work_directory>/clusters/<id>/ */
    const char *java_home;          /* NULL: inherit */
    const char *python;             /* PYSPARK_PYTHON of the server and the executors */
    const char *daemon_memory;      /* SPARK_DAEMON_MEMORY of the master and the workers */
    const char *const *extra_conf;  /* "k=v", NULL-terminated, after the cluster's own conf */
    int64_t grace_ms;               /* SIGTERM -> SIGKILL */
    int64_t start_timeout_ms;       /* a start (or a scale up) that takes longer fails */
} local_cluster_settings;

typedef struct local_clusters local_clusters;

/* The clusters of this backend; re-adopts the ones an earlier daemon recorded.  NULL: no memory. */
local_clusters *local_clusters_new(sp_plugin_context *ctx, const local_cluster_settings *settings);
/* Forgets everything in memory; the processes run on for the next daemon to adopt. */
void local_clusters_free(local_clusters *clusters);
void local_clusters_attach(local_clusters *clusters, sp_backend_event_fn on_event, void *host_arg);
/* Notices clusters whose server or master died by itself (FAILED event). */
void local_clusters_poll(local_clusters *clusters);
/* [{"id","endpoint","executors"}] of live clusters; stops the partly dead ones. */
json_t *local_clusters_reconcile(local_clusters *clusters);

int local_cluster_start(local_clusters *clusters, const char *cluster_json,
                        sp_backend_reply_fn reply, void *arg);
int local_cluster_scale(local_clusters *clusters, const char *cluster_id, const char *scale_json,
                        sp_backend_reply_fn reply, void *arg);
int local_cluster_stop(local_clusters *clusters, const char *cluster_id,
                       sp_backend_reply_fn reply, void *arg);
int local_cluster_endpoint(local_clusters *clusters, const char *cluster_id,
                           sp_backend_reply_fn reply, void *arg);

#endif
