/*
 * local_backend.h - what the files of the local backend share.
 *
 * backend_local.c owns the plugin (options, ops, job lifecycle);
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
/* A job id usable as a directory and key name: [A-Za-z0-9._-], 1..128, no leading '.' or '_'. */
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

#endif
