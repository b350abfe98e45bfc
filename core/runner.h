/*
 * runner.h - batch jobs from submission to a final state.
 *
 * The store is the truth.  runner_submit() validates placement (backend,
 * spark_version), stores the job as PENDING (idempotently) and wakes the
 * loop.  The loop is level-driven: every tick (and on wake-ups) it
 *   - admits PENDING jobs within the limits (per backend starting/running,
 *     per team running) and hands them to their backend (-> SUBMITTED),
 *     leaving the others PENDING with the reason visible in the API;
 *   - asks backends for the state of SUBMITTED, RUNNING and CANCELLING jobs,
 *     with per-job backoff, and stores what changed;
 *   - applies what backends report on their own (sp_backend_ops.attach).
 * Nothing blocks: every backend call is asynchronous.
 *
 * After a restart the same loop re-attaches: in-flight jobs are asked for,
 * and a job its backend no longer knows ends FAILED with that reason.  A job
 * is handed to a backend only from PENDING, by a conditional transition, so
 * it never runs twice.
 *
 * The normalised job document (the REST layer builds it) that the runner
 * reads and passes on:
 *   {"name","team","environment","region","backend"?,"spark_version",
 *    "application":{"file","class"?,"args":[],"py_files":[],"jars":[],"conf":{}},
 *    "resources":{"driver":{"cores","memory"},"executor":{"cores","memory","instances"},
 *                 "dynamic_allocation":{"enabled","min_executors","max_executors"}},
 *    "max_attempts"?}
 */
#ifndef SPARKPLANE_CORE_RUNNER_H
#define SPARKPLANE_CORE_RUNNER_H

#include <jansson.h>
#include <sparkplane/auth.h>

typedef struct runner runner;
struct daemon_state;

runner *runner_new(struct daemon_state *daemon);
void runner_free(runner *r);

/* Starts the loop (first tick re-attaches in-flight jobs). */
void runner_start(runner *r);

/* The plugin set changed (reload): attach to the new set's backends. */
void runner_plugins_changed(runner *r);

typedef struct runner_submission {
    const sp_principal *principal;
    json_t *spec;                   /* normalised job; borrowed */
    const char *idempotency_key;    /* NULL: none */
    const char *request_hash;       /* hex SHA-256 of the canonical request */
} runner_submission;

/*
 * SP_OK: *job_out is the new job (*replayed 0) or the earlier job for the
 * same key and request (*replayed 1).  SP_CONFLICT: the key was used for
 * another request.  SP_INVALID: unknown backend or spark_version (err says
 * which and lists the known ones).  SP_ERROR: the store failed.
 */
int runner_submit(runner *r, const runner_submission *submission, json_t **job_out,
                  int *replayed, char *err, size_t err_size);

/*
 * Cancels a job the caller may see.  SP_OK: *job_out is the job, now
 * CANCELLING (or CANCELLED when it never reached a backend).  SP_CONFLICT:
 * it already finished (err names the state).  SP_NOT_FOUND: no such job.
 */
int runner_cancel(runner *r, const char *job_id, json_t **job_out, char *err, size_t err_size);

/*
 * A slice of a job's driver log from its backend.  `done` runs once:
 * status SP_OK with the bytes, the offset after them and whether the log
 * is complete (the job finished and nothing follows), or an error.
 */
typedef void (*runner_logs_fn)(void *arg, int status, const char *data, size_t len,
                               uint64_t next_offset, int complete, const char *message);
int runner_logs(runner *r, const char *job_id, uint64_t offset, uint64_t limit,
                runner_logs_fn done, void *arg);

/* Whether a state is final (SUCCEEDED, FAILED, CANCELLED). */
int runner_state_is_final(const char *state);

#endif
