/*
 * backend_local.c - the "local" backend: real Spark on this machine.
 *
 * Each job is one spark-submit with --master local[N], started through the
 * host's process_spawn inside a small /bin/sh wrapper (local_command.c) in
 * its own directory <work_directory>/<job id>/ (driver.log, exit_code,
 * pid, events/).  The host puts it in its own process group, so the group
 * id is the wrapper's pid and a cancel reaches the JVM and Python too.
 *
 * While the daemon lives, the host's on_exit tells us when a job ended and
 * exit_code says how.  Every job is also recorded in the host's key/value
 * store (local_record.c), so a restarted daemon re-attaches: it cannot wait
 * for a process it did not start, so a repeating poll looks at /proc and
 * the exit_code file instead.  The same poll reads the Spark application
 * id from driver.log as soon as Spark prints it.  Changes are reported
 * through the attach callback; every op replies from a 0 ms timer, never
 * from inside the call, as sparkplane/backend.h asks.
 *
 * A job is in memory only while it is in flight; a finished job is
 * answered from its record, so memory does not grow with history.
 *
 * Clusters (cluster_start/scale/stop/endpoint) are local_cluster.c's; this
 * file only hands them the options, the poll tick and the attach callback.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local_backend.h"

#define LOCAL_REASON_MAX 1024

static const char *const local_final_states[] = {"SUCCEEDED", "FAILED", "CANCELLED"};

typedef struct local_backend local_backend;

typedef struct local_job {
    local_backend *backend;
    char *id;
    char *dir;
    char *log_path;
    long pid;                      /* the wrapper, leader of the job's process group */
    unsigned long long start_ticks;
    double started;                /* epoch seconds */
    json_int_t attempt;
    sp_process *process;           /* NULL once it exited, or after a re-attach */
    sp_timer *kill_timer;
    int cancelled;
    int discard;                   /* could not be recorded: killed, forgotten on exit */
    char *app_id;
    uint64_t app_id_scan;
    struct local_job *next;
} local_job;

struct local_reply {
    sp_plugin_context *ctx;
    local_reply **pending;         /* the list it waits on */
    sp_backend_reply_fn fn;
    void *arg;
    int status;
    char *json;
    char *message;
    sp_timer *timer;
    struct local_reply *next;
};

struct local_backend {
    sp_plugin_context *ctx;
    local_settings settings;
    char **extra_conf;
    int64_t max_jobs;
    int64_t grace_ms;
    local_job *jobs;
    local_reply *replies;
    local_clusters *clusters;
    sp_timer *poll_timer;
    sp_backend_event_fn on_event;
    void *event_arg;
    sp_metric *running_metric;
    sp_metric *finished_metric[3];
};

static const sp_option_spec local_options[] = {
    {"work_directory", SP_OPTION_STRING, NULL, 1,
     "directory for per-job folders (driver.log, exit_code, pid, events)"},
    {"max_concurrent_jobs", SP_OPTION_INT, "2", 0,
     "jobs running at once; more are refused with AGAIN and wait in PENDING"},
    {"cores_per_job", SP_OPTION_INT, "1", 0, "N in --master local[N]"},
    {"python", SP_OPTION_STRING, "python3", 0,
     "interpreter for .py jobs (PYSPARK_PYTHON); it must be able to import pyspark"},
    {"cancel_grace_period", SP_OPTION_DURATION, "10s", 0,
     "time between SIGTERM and SIGKILL when a job is cancelled"},
    {"java_home", SP_OPTION_STRING, NULL, 0, "JAVA_HOME for spark-submit (default: inherited)"},
    {"extra_conf", SP_OPTION_STRING_LIST, "[spark.ui.enabled=false]", 0,
     "key=value Spark settings added to every job (after the job's own)"},
    {"event_log", SP_OPTION_BOOL, "true", 0,
     "write Spark event logs to <job dir>/events (also how the application id is learned)"},
    {"poll_interval", SP_OPTION_DURATION, "1s", 0,
     "how often running jobs are checked for their application id and, after a restart, exit; "
     "and clusters for a server or master that died"},
    {"cluster_start_timeout", SP_OPTION_DURATION, "5m", 0,
     "a cluster whose Spark Connect port does not open in this time (or a scale whose workers do "
     "not register) fails"},
    {"daemon_memory", SP_OPTION_STRING, "256m", 0,
     "SPARK_DAEMON_MEMORY: heap of each cluster's standalone master and worker JVMs"},
    {NULL, 0, NULL, 0, NULL}};

/* ---- small helpers ---------------------------------------------------- */

static double local_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static local_job *local_job_find(local_backend *b, const char *job_id)
{
    for (local_job *job = b->jobs; job != NULL; job = job->next)
        if (strcmp(job->id, job_id) == 0)
            return job;
    return NULL;
}

static size_t local_jobs_running(const local_backend *b)
{
    size_t n = 0;
    for (const local_job *job = b->jobs; job != NULL; job = job->next)
        n += !job->discard;
    return n;
}

static void local_job_unlink(local_backend *b, local_job *job)
{
    for (local_job **link = &b->jobs; *link != NULL; link = &(*link)->next) {
        if (*link == job) {
            *link = job->next;
            break;
        }
    }
    b->ctx->host->metric_set(b->running_metric, (double)local_jobs_running(b));
}

static void local_job_free(local_job *job)
{
    if (job == NULL)
        return;
    if (job->kill_timer != NULL)
        job->backend->ctx->host->timer_cancel(job->kill_timer);
    free(job->id);
    free(job->dir);
    free(job->log_path);
    free(job->app_id);
    free(job);
}

static local_job *local_job_new(local_backend *b, const char *job_id, const char *dir)
{
    local_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->backend = b;
    job->id = strdup(job_id);
    job->dir = strdup(dir);
    if (job->id == NULL || job->dir == NULL ||
        asprintf(&job->log_path, "%s/driver.log", dir) < 0) {
        job->log_path = NULL;
        local_job_free(job);
        return NULL;
    }
    job->next = b->jobs;
    b->jobs = job;
    b->ctx->host->metric_set(b->running_metric, (double)local_jobs_running(b));
    return job;
}

/* ---- replies and events ------------------------------------------------ */

static void local_reply_fire(void *arg)
{
    local_reply *reply = arg;
    for (local_reply **link = reply->pending; *link != NULL; link = &(*link)->next) {
        if (*link == reply) {
            *link = reply->next;
            break;
        }
    }
    reply->fn(reply->arg, reply->status, reply->json, reply->message);
    free(reply->json);
    free(reply->message);
    free(reply);
}

void local_reply_later(sp_plugin_context *ctx, local_reply **pending, sp_backend_reply_fn fn,
                       void *arg, int status, json_t *doc, const char *message)
{
    local_reply *reply = calloc(1, sizeof(*reply));
    if (reply == NULL) {
        json_decref(doc);
        fn(arg, SP_ERROR, NULL, "out of memory");
        return;
    }
    *reply = (local_reply){ctx, pending, fn, arg, status, NULL, NULL, NULL, *pending};
    reply->json = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    reply->message = message != NULL ? strdup(message) : NULL;
    json_decref(doc);
    *pending = reply;
    reply->timer = ctx->host->timer_start(ctx, 0, 0, local_reply_fire, reply);
    if (reply->timer == NULL)
        local_reply_fire(reply); /* a host without timers: better now than never */
}

void local_replies_drop(sp_plugin_context *ctx, local_reply **pending)
{
    while (*pending != NULL) {
        local_reply *reply = *pending;
        *pending = reply->next;
        if (reply->timer != NULL)
            ctx->host->timer_cancel(reply->timer);
        free(reply->json);
        free(reply->message);
        free(reply);
    }
}

/* The job ops' replies. */
static void local_job_reply(local_backend *b, sp_backend_reply_fn fn, void *arg, int status,
                            json_t *doc, const char *message)
{
    local_reply_later(b->ctx, &b->replies, fn, arg, status, doc, message);
}

static json_t *local_state_doc(const char *state, const char *app_id, const char *reason,
                               int exit_code)
{
    json_t *doc = json_pack("{s:s}", "state", state);
    if (app_id != NULL)
        json_object_set_new(doc, "spark_app_id", json_string(app_id));
    if (reason != NULL)
        json_object_set_new(doc, "reason", json_string(reason));
    if (exit_code >= 0)
        json_object_set_new(doc, "exit_code", json_integer(exit_code));
    return doc;
}

/* Tells the host about a change it did not ask for; takes `doc`. */
static void local_emit(local_backend *b, const char *job_id, json_t *doc)
{
    char *text = NULL;
    if (b->on_event != NULL && doc != NULL) {
        json_object_set_new(doc, "kind", json_string("job"));
        json_object_set_new(doc, "id", json_string(job_id));
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(doc);
    if (text != NULL)
        b->on_event(b->event_arg, text);
    free(text);
}

/* ---- records ------------------------------------------------------------ */

static json_t *local_job_record(const local_job *job, const char *state, const char *reason,
                                int exit_code)
{
    json_t *record = json_pack("{s:I,s:I,s:s,s:f,s:I,s:s,s:b}", "pid", (json_int_t)job->pid,
                               "start_ticks", (json_int_t)job->start_ticks, "dir", job->dir,
                               "started", job->started, "attempt", job->attempt, "state", state,
                               "cancelled", job->cancelled);
    if (record == NULL)
        return NULL;
    if (job->app_id != NULL)
        json_object_set_new(record, "spark_app_id", json_string(job->app_id));
    if (reason != NULL)
        json_object_set_new(record, "reason", json_string(reason));
    if (exit_code >= 0)
        json_object_set_new(record, "exit_code", json_integer(exit_code));
    return record;
}

static int local_job_save(local_job *job, const char *state, const char *reason, int exit_code)
{
    sp_plugin_context *ctx = job->backend->ctx;
    json_t *record = local_job_record(job, state, reason, exit_code);
    char err[256] = "out of memory";
    int rc = record != NULL ? local_record_put(ctx, job->id, record, err, sizeof(err))
                            : SP_ERROR;
    json_decref(record);
    if (rc != SP_OK)
        ctx->host->log(ctx, SP_LOG_WARN, "cannot record job %s: %s", job->id, err);
    return rc;
}

/* A job recorded by an earlier daemon, back in memory (its process is not ours to wait for). */
static local_job *local_job_adopt(local_backend *b, const char *job_id, json_t *record)
{
    const char *dir = json_string_value(json_object_get(record, "dir"));
    local_job *job;
    if (dir == NULL || !json_is_integer(json_object_get(record, "pid")))
        return NULL;
    if ((job = local_job_new(b, job_id, dir)) == NULL)
        return NULL;
    job->pid = (long)json_integer_value(json_object_get(record, "pid"));
    job->start_ticks =
        (unsigned long long)json_integer_value(json_object_get(record, "start_ticks"));
    job->started = json_number_value(json_object_get(record, "started"));
    job->attempt = json_integer_value(json_object_get(record, "attempt"));
    job->cancelled = json_is_true(json_object_get(record, "cancelled"));
    if (json_is_string(json_object_get(record, "spark_app_id")))
        job->app_id = strdup(json_string_value(json_object_get(record, "spark_app_id")));
    return job;
}

static int local_state_is_final(const char *state)
{
    for (size_t i = 0; i < 3; i++)
        if (state != NULL && strcmp(state, local_final_states[i]) == 0)
            return 1;
    return 0;
}

/* ---- finishing a job ---------------------------------------------------- */

/* Why a job failed: the log's error lines, after `prefix` when there is one. */
static char *local_failure_reason(const local_job *job, const char *prefix, int exit_code)
{
    char *lines = local_log_failure_lines(job->log_path, LOCAL_REASON_MAX);
    char *reason = NULL;
    int rc;
    if (prefix != NULL && lines != NULL && lines[0] != '\0')
        rc = asprintf(&reason, "%s\n%s", prefix, lines);
    else if (prefix != NULL)
        rc = asprintf(&reason, "%s", prefix);
    else if (lines != NULL && lines[0] != '\0')
        rc = asprintf(&reason, "%s", lines);
    else
        rc = asprintf(&reason, "spark-submit exited with code %d (driver.log has no error lines)",
                      exit_code);
    free(lines);
    return rc < 0 ? NULL : reason;
}

/*
 * The job ended: record its final state, leave the index, count it, tell
 * the host, forget it.  exit_code -1: none recorded; term_signal: what
 * killed the wrapper (0: unknown, it just disappeared).
 */
static void local_job_finish(local_job *job, int exit_code, int term_signal)
{
    local_backend *b = job->backend;
    const char *state = "FAILED";
    char *reason = NULL, prefix[128];
    size_t state_index = 1;

    if (job->cancelled) {
        kill(-(pid_t)job->pid, SIGKILL); /* whatever the wrapper left in its group */
        state = "CANCELLED", state_index = 2;
        reason = strdup("cancelled");
    } else if (exit_code == 0) {
        state = "SUCCEEDED", state_index = 0;
    } else {
        if (exit_code < 0 && term_signal > 0)
            snprintf(prefix, sizeof(prefix), "driver killed by signal %d (%s)", term_signal,
                     strsignal(term_signal));
        else if (exit_code < 0)
            snprintf(prefix, sizeof(prefix), "driver process disappeared (no exit code recorded)");
        else if (exit_code > 128 && exit_code < 128 + 65)
            snprintf(prefix, sizeof(prefix), "spark-submit ended by signal %d (%s)",
                     exit_code - 128, strsignal(exit_code - 128));
        int signalled = exit_code < 0 || (exit_code > 128 && exit_code < 128 + 65);
        reason = local_failure_reason(job, signalled ? prefix : NULL, exit_code);
    }
    if (job->app_id == NULL)
        job->app_id = local_log_find_app_id(job->log_path, &job->app_id_scan);
    local_job_unlink(b, job);
    local_job_save(job, state, reason, exit_code);
    local_index_update(b->ctx, job->id, 0);
    b->ctx->host->metric_add(b->finished_metric[state_index], 1);
    b->ctx->host->log(b->ctx, SP_LOG_INFO, "job %s %s%s%s", job->id, state,
                      reason != NULL ? ": " : "", reason != NULL ? reason : "");
    local_emit(b, job->id, local_state_doc(state, job->app_id, reason, exit_code));
    free(reason);
    local_job_free(job);
}

/* The host saw the wrapper exit (only while the daemon that started it lives). */
static void local_on_exit(void *arg, int exit_code, int term_signal)
{
    local_job *job = arg;
    int recorded;
    job->process = NULL;
    if (job->discard) {
        local_job_unlink(job->backend, job);
        local_job_free(job);
        return;
    }
    if (local_exit_file_read(job->dir, &recorded))
        exit_code = recorded;
    local_job_finish(job, exit_code, exit_code >= 0 ? 0 : term_signal);
}

/* A re-attached job: still running?  Finishes (and frees) it when not; 1 then. */
static int local_job_check_detached(local_job *job)
{
    int code;
    if (job->process != NULL || local_process_alive(job->pid, job->start_ticks))
        return 0;
    local_job_finish(job, local_exit_file_read(job->dir, &code) ? code : -1, 0);
    return 1;
}

/* The application id, once Spark printed it: recorded and reported. */
static void local_job_look_for_app_id(local_job *job)
{
    if (job->app_id != NULL || job->discard)
        return;
    job->app_id = local_log_find_app_id(job->log_path, &job->app_id_scan);
    if (job->app_id == NULL)
        return;
    local_job_save(job, "RUNNING", NULL, -1);
    local_emit(job->backend, job->id, local_state_doc("RUNNING", job->app_id, NULL, -1));
}

/*
 * Walks a copy of the ids: an event may make the host call back into us
 * (job_status finishes a job it finds gone), which changes the list.
 */
static void local_poll(void *arg)
{
    local_backend *b = arg;
    size_t count = local_jobs_running(b) + 1, n = 0;
    char **ids = calloc(count, sizeof(*ids));
    local_job *job;
    for (job = b->jobs; ids != NULL && job != NULL && n < count; job = job->next)
        if (!job->discard && (ids[n] = strdup(job->id)) != NULL)
            n++;
    for (size_t i = 0; i < n; i++) {
        job = local_job_find(b, ids[i]);
        if (job != NULL && !local_job_check_detached(job))
            local_job_look_for_app_id(job);
        free(ids[i]);
    }
    free(ids);
    local_clusters_poll(b->clusters);
}

/* ---- job_submit ----------------------------------------------------------- */

/* A fresh job directory: stale exit_code and pid from an earlier attempt removed. */
static int local_dir_prepare(const local_backend *b, const char *dir, char *err,
                             size_t err_size)
{
    static const char *const stale[] = {"exit_code", "exit_code.tmp", "pid"};
    char path[4096];
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create job directory %s: %s", dir, strerror(errno));
        return SP_ERROR;
    }
    for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, stale[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/events", dir);
    if (b->settings.event_log && mkdir(path, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create %.900s: %s", path, strerror(errno));
        return SP_ERROR;
    }
    return SP_OK;
}

static void local_pid_file_write(const local_job *job)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/pid", job->dir);
    if ((f = fopen(path, "we")) == NULL)
        return;
    fprintf(f, "%ld\n", job->pid);
    fclose(f);
}

static int local_job_spawn(local_backend *b, local_job *job, const local_command *command,
                           char *err, size_t err_size)
{
    sp_process_spec spec = {
        .size = sizeof(spec),
        .argv = (const char *const *)command->argv,
        .env = (const char *const *)command->env,
        .cwd = command->job_dir,
        .on_exit = local_on_exit,
        .arg = job,
    };
    int rc = b->ctx->host->process_spawn(b->ctx, &spec, &job->process, err, err_size);
    if (rc != SP_OK)
        return rc;
    job->pid = b->ctx->host->process_pid(job->process);
    job->start_ticks = local_process_start_ticks(job->pid);
    job->started = local_now();
    local_pid_file_write(job);
    return SP_OK;
}

/* Records the started job; a job that cannot be recorded must not run unseen. */
static int local_job_record_start(local_backend *b, local_job *job, char *err, size_t err_size)
{
    if (local_job_save(job, "RUNNING", NULL, -1) == SP_OK &&
        local_index_update(b->ctx, job->id, 1) == SP_OK)
        return SP_OK;
    job->discard = 1;
    b->ctx->host->process_signal(job->process, SIGKILL);
    b->ctx->host->kv_delete(b->ctx, job->id);
    snprintf(err, err_size, "cannot record job %s in the state store; not started", job->id);
    return SP_UNAVAILABLE;
}

static int local_submit_start(local_backend *b, const char *job_id, json_t *job_doc, char *err,
                              size_t err_size)
{
    local_command command;
    local_job *job = NULL;
    int rc;

    if ((rc = local_command_build(&b->settings, job_id, job_doc, &command, err, err_size)) !=
        SP_OK)
        return rc;
    if ((rc = local_dir_prepare(b, command.job_dir, err, err_size)) != SP_OK)
        goto done;
    if ((job = local_job_new(b, job_id, command.job_dir)) == NULL) {
        snprintf(err, err_size, "out of memory");
        rc = SP_ERROR;
        goto done;
    }
    job->attempt = json_integer_value(json_object_get(job_doc, "attempt"));
    if ((rc = local_job_spawn(b, job, &command, err, err_size)) != SP_OK) {
        rc = rc == SP_INVALID ? SP_INVALID : SP_UNAVAILABLE;
        local_job_unlink(b, job);
        local_job_free(job);
        goto done;
    }
    if ((rc = local_job_record_start(b, job, err, err_size)) == SP_OK)
        b->ctx->host->log(b->ctx, SP_LOG_INFO, "job %s started: pid %ld, %s", job_id, job->pid,
                          job->dir);
done:
    local_command_free(&command);
    return rc;
}

static int local_job_submit(void *provider, const char *job_json, sp_backend_reply_fn reply,
                            void *arg)
{
    local_backend *b = provider;
    json_t *doc = job_json != NULL ? json_loads(job_json, 0, NULL) : NULL;
    const char *job_id = json_string_value(json_object_get(doc, "id"));
    char err[1024] = "";
    int rc = SP_INVALID;

    if (reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    if (!json_is_object(doc))
        snprintf(err, sizeof(err), "the job document is not a JSON object");
    else if (!local_job_id_valid(job_id))
        snprintf(err, sizeof(err), "id must be 1-128 characters of [A-Za-z0-9._-]");
    else if (local_job_find(b, job_id) != NULL)
        rc = SP_OK; /* already running: a repeated submit changes nothing */
    else if (local_jobs_running(b) >= (size_t)b->max_jobs) {
        rc = SP_AGAIN;
        snprintf(err, sizeof(err), "local backend at capacity (%zu jobs running)",
                 local_jobs_running(b));
    } else
        rc = local_submit_start(b, job_id, doc, err, sizeof(err));
    json_decref(doc);
    local_job_reply(b, reply, arg, rc, rc == SP_OK ? local_state_doc("RUNNING", NULL, NULL, -1)
                                                     : NULL,
                      rc == SP_OK ? NULL : err);
    return SP_OK;
}

/* ---- job_status, job_cancel ---------------------------------------------- */

/*
 * The job in memory, checked against /proc when it was re-attached; NULL
 * when it is not in flight.  *record_out then gets its record, if any.
 */
static local_job *local_job_lookup(local_backend *b, const char *job_id, json_t **record_out)
{
    local_job *job = local_job_find(b, job_id);
    json_t *record = NULL;
    *record_out = NULL;
    if (job == NULL && local_job_id_valid(job_id) &&
        local_record_get(b->ctx, job_id, &record) == SP_OK &&
        !local_state_is_final(json_string_value(json_object_get(record, "state"))))
        job = local_job_adopt(b, job_id, record); /* recorded but not indexed */
    if (job != NULL && !job->discard && !local_job_check_detached(job)) {
        json_decref(record);
        return job;
    }
    json_decref(record);
    if (local_job_id_valid(job_id) && local_record_get(b->ctx, job_id, &record) == SP_OK)
        *record_out = record;
    return NULL;
}

static json_t *local_record_state_doc(json_t *record)
{
    json_t *code = json_object_get(record, "exit_code");
    return local_state_doc(json_string_value(json_object_get(record, "state")),
                           json_string_value(json_object_get(record, "spark_app_id")),
                           json_string_value(json_object_get(record, "reason")),
                           json_is_integer(code) ? (int)json_integer_value(code) : -1);
}

static int local_job_status(void *provider, const char *job_id, sp_backend_reply_fn reply,
                            void *arg)
{
    local_backend *b = provider;
    json_t *record = NULL;
    local_job *job;
    char message[256];

    if (job_id == NULL || reply == NULL)
        return SP_INVALID;
    job = local_job_lookup(b, job_id, &record);
    if (job != NULL) {
        local_job_look_for_app_id(job);
        local_job_reply(b, reply, arg, SP_OK, local_state_doc("RUNNING", job->app_id, NULL, -1),
                          NULL);
    } else if (record != NULL) {
        local_job_reply(b, reply, arg, SP_OK, local_record_state_doc(record), NULL);
    } else {
        snprintf(message, sizeof(message), "the local backend has no job '%.128s'", job_id);
        local_job_reply(b, reply, arg, SP_NOT_FOUND, NULL, message);
    }
    json_decref(record);
    return SP_OK;
}

static void local_kill_after_grace(void *arg)
{
    local_job *job = arg;
    job->kill_timer = NULL; /* a one-shot timer is gone once it fired */
    job->backend->ctx->host->log(job->backend->ctx, SP_LOG_WARN,
                                 "job %s still running after the grace period: SIGKILL", job->id);
    kill(-(pid_t)job->pid, SIGKILL);
}

/* SIGTERM to the job's group now, SIGKILL after the grace period. */
static void local_job_stop(local_backend *b, local_job *job)
{
    job->cancelled = 1;
    local_job_save(job, "RUNNING", NULL, -1); /* so a restart still ends it CANCELLED */
    if (job->process != NULL)
        b->ctx->host->process_signal(job->process, b->grace_ms > 0 ? SIGTERM : SIGKILL);
    else
        kill(-(pid_t)job->pid, b->grace_ms > 0 ? SIGTERM : SIGKILL);
    if (b->grace_ms > 0)
        job->kill_timer = b->ctx->host->timer_start(b->ctx, (uint64_t)b->grace_ms, 0,
                                                    local_kill_after_grace, job);
    b->ctx->host->log(b->ctx, SP_LOG_INFO, "job %s: cancelling (pid %ld)", job->id, job->pid);
}

static int local_job_cancel(void *provider, const char *job_id, sp_backend_reply_fn reply,
                            void *arg)
{
    local_backend *b = provider;
    json_t *record = NULL;
    local_job *job;
    char message[256];

    if (job_id == NULL || reply == NULL)
        return SP_INVALID;
    job = local_job_lookup(b, job_id, &record);
    if (job != NULL) {
        if (!job->cancelled)
            local_job_stop(b, job);
        local_job_reply(b, reply, arg, SP_OK, local_state_doc("CANCELLING", job->app_id, NULL,
                                                                -1),
                          NULL);
    } else if (record != NULL) {
        local_job_reply(b, reply, arg, SP_OK, local_record_state_doc(record), NULL);
    } else {
        snprintf(message, sizeof(message), "the local backend has no job '%.128s'", job_id);
        local_job_reply(b, reply, arg, SP_NOT_FOUND, NULL, message);
    }
    json_decref(record);
    return SP_OK;
}

/* ---- job_logs, reconcile, attach ------------------------------------------ */

static int local_job_logs(void *provider, const char *job_id, uint64_t offset, uint64_t limit,
                          sp_backend_reply_fn reply, void *arg)
{
    local_backend *b = provider;
    json_t *record = NULL;
    local_job *job;
    char *path = NULL, *data = NULL, message[256];
    uint64_t next = offset, size = 0;
    int rc = SP_NOT_FOUND;

    if (job_id == NULL || reply == NULL)
        return SP_INVALID;
    job = local_job_lookup(b, job_id, &record);
    snprintf(message, sizeof(message), "the local backend has no job '%.128s'", job_id);
    if (job != NULL)
        path = strdup(job->log_path);
    else if (json_is_string(json_object_get(record, "dir")) &&
             asprintf(&path, "%s/driver.log", json_string_value(json_object_get(record, "dir"))) <
                 0)
        path = NULL;
    if (path != NULL)
        rc = local_log_read(path, offset, limit, &data, &next, &size, message, sizeof(message));
    if (rc == SP_OK)
        local_job_reply(b, reply, arg, SP_OK,
                          json_pack("{s:s,s:I,s:b}", "data", data, "next_offset",
                                    (json_int_t)next, "complete", job == NULL && next >= size),
                          NULL);
    else
        local_job_reply(b, reply, arg, rc, NULL, message);
    free(path);
    free(data);
    json_decref(record);
    return SP_OK;
}

static int local_reconcile(void *provider, sp_backend_reply_fn reply, void *arg)
{
    local_backend *b = provider;
    json_t *ids = json_array();
    if (reply == NULL) {
        json_decref(ids);
        return SP_INVALID;
    }
    for (local_job *job = b->jobs; job != NULL; job = job->next)
        if (!job->discard)
            json_array_append_new(ids, json_string(job->id));
    local_job_reply(b, reply, arg, SP_OK,
                    json_pack("{s:o,s:o}", "jobs", ids, "clusters",
                              local_clusters_reconcile(b->clusters)),
                    NULL);
    return SP_OK;
}

static void local_attach(void *provider, sp_backend_event_fn on_event, void *host_arg)
{
    local_backend *b = provider;
    b->on_event = on_event;
    b->event_arg = host_arg;
    local_clusters_attach(b->clusters, on_event, host_arg);
}

/* ---- clusters: local_cluster.c does the work --------------------------------- */

static int local_op_cluster_start(void *provider, const char *cluster_json,
                                  sp_backend_reply_fn reply, void *arg)
{
    return local_cluster_start(((local_backend *)provider)->clusters, cluster_json, reply, arg);
}

static int local_op_cluster_scale(void *provider, const char *cluster_id, const char *scale_json,
                                  sp_backend_reply_fn reply, void *arg)
{
    return local_cluster_scale(((local_backend *)provider)->clusters, cluster_id, scale_json,
                               reply, arg);
}

static int local_op_cluster_stop(void *provider, const char *cluster_id,
                                 sp_backend_reply_fn reply, void *arg)
{
    return local_cluster_stop(((local_backend *)provider)->clusters, cluster_id, reply, arg);
}

static int local_op_cluster_endpoint(void *provider, const char *cluster_id,
                                     sp_backend_reply_fn reply, void *arg)
{
    return local_cluster_endpoint(((local_backend *)provider)->clusters, cluster_id, reply, arg);
}

static const sp_backend_ops local_ops = {
    .size = sizeof(sp_backend_ops),
    .attach = local_attach,
    .job_submit = local_job_submit,
    .job_status = local_job_status,
    .job_cancel = local_job_cancel,
    .job_logs = local_job_logs,
    .cluster_start = local_op_cluster_start,
    .cluster_scale = local_op_cluster_scale,
    .cluster_stop = local_op_cluster_stop,
    .cluster_endpoint = local_op_cluster_endpoint,
    .reconcile = local_reconcile,
};

/* ---- init, fini ------------------------------------------------------------- */

/* extra_conf as a NULL-terminated copy; every item must be key=value. */
static int local_settings_extra_conf(local_backend *b, char *err, size_t err_size)
{
    sp_plugin_context *ctx = b->ctx;
    size_t count = ctx->host->option_list_count(ctx, "extra_conf");
    if ((b->extra_conf = calloc(count + 1, sizeof(char *))) == NULL) {
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    for (size_t i = 0; i < count; i++) {
        const char *item = ctx->host->option_list_item(ctx, "extra_conf", i);
        const char *eq = item != NULL ? strchr(item, '=') : NULL;
        if (eq == NULL || eq == item) {
            snprintf(err, err_size, "extra_conf[%zu] '%s' is not key=value", i,
                     item != NULL ? item : "");
            return SP_INVALID;
        }
        if ((b->extra_conf[i] = strdup(item)) == NULL) {
            snprintf(err, err_size, "out of memory");
            return SP_ERROR;
        }
    }
    b->settings.extra_conf = (const char *const *)b->extra_conf;
    return SP_OK;
}

static int local_settings_read(local_backend *b, char *err, size_t err_size)
{
    sp_plugin_context *ctx = b->ctx;
    const sp_host_api *host = ctx->host;
    const char *work = host->option_string(ctx, "work_directory");

    b->settings.work_directory = work;
    b->settings.cores_per_job = host->option_int(ctx, "cores_per_job");
    b->settings.python = host->option_string(ctx, "python");
    b->settings.java_home = host->option_string(ctx, "java_home");
    b->settings.event_log = host->option_int(ctx, "event_log") != 0;
    b->max_jobs = host->option_int(ctx, "max_concurrent_jobs");
    b->grace_ms = host->option_int(ctx, "cancel_grace_period");
    if (work == NULL || work[0] != '/') {
        snprintf(err, err_size, "work_directory must be an absolute path");
        return SP_INVALID;
    }
    if (b->max_jobs < 1 || b->settings.cores_per_job < 1 || b->settings.cores_per_job > 1024) {
        snprintf(err, err_size, b->max_jobs < 1 ? "max_concurrent_jobs must be at least 1"
                                                : "cores_per_job must be from 1 to 1024");
        return SP_INVALID;
    }
    if (b->settings.python == NULL || b->settings.python[0] == '\0') {
        snprintf(err, err_size, "python must name an interpreter");
        return SP_INVALID;
    }
    if (mkdir(work, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "work_directory %s: %s", work, strerror(errno));
        return SP_ERROR;
    }
    if (access(work, W_OK | X_OK) != 0) {
        snprintf(err, err_size, "work_directory %s is not writable: %s", work, strerror(errno));
        return SP_ERROR;
    }
    return local_settings_extra_conf(b, err, err_size);
}

static void local_metrics_register(local_backend *b)
{
    sp_plugin_context *ctx = b->ctx;
    char labels[64];
    b->running_metric =
        ctx->host->metric_register(ctx, SP_METRIC_GAUGE, "sparkplane_backend_local_jobs_running",
                                   "Spark jobs the local backend is running", NULL);
    for (size_t i = 0; i < 3; i++) {
        snprintf(labels, sizeof(labels), "state=\"%s\"", local_final_states[i]);
        b->finished_metric[i] = ctx->host->metric_register(
            ctx, SP_METRIC_COUNTER, "sparkplane_backend_local_jobs_finished_total",
            "Spark jobs the local backend saw end, by final state", labels);
    }
}

/* Jobs an earlier daemon started: back in memory, checked by the poll. */
static void local_reattach(local_backend *b)
{
    json_t *index = local_index_load(b->ctx), *item, *record;
    size_t i;
    json_array_foreach(index, i, item) {
        const char *job_id = json_string_value(item);
        record = NULL;
        if (job_id == NULL || local_job_find(b, job_id) != NULL)
            continue;
        if (local_record_get(b->ctx, job_id, &record) != SP_OK ||
            local_state_is_final(json_string_value(json_object_get(record, "state"))) ||
            local_job_adopt(b, job_id, record) == NULL) {
            b->ctx->host->log(b->ctx, SP_LOG_WARN, "job %s: no usable record, not re-attached",
                              job_id);
            local_index_update(b->ctx, job_id, 0);
        } else {
            b->ctx->host->log(b->ctx, SP_LOG_INFO, "job %s re-attached", job_id);
        }
        json_decref(record);
    }
    json_decref(index);
}

/* The cluster half of the backend, with the options it needs. */
static int local_clusters_open(local_backend *b, char *err, size_t err_size)
{
    sp_plugin_context *ctx = b->ctx;
    local_cluster_settings settings = {
        .work_directory = b->settings.work_directory,
        .java_home = b->settings.java_home,
        .python = b->settings.python,
        .daemon_memory = ctx->host->option_string(ctx, "daemon_memory"),
        .extra_conf = b->settings.extra_conf,
        .grace_ms = b->grace_ms,
        .start_timeout_ms = ctx->host->option_int(ctx, "cluster_start_timeout"),
    };
    if (settings.start_timeout_ms <= 0) {
        snprintf(err, err_size, "cluster_start_timeout must be positive");
        return SP_INVALID;
    }
    if (settings.daemon_memory == NULL || settings.daemon_memory[0] == '\0' ||
        strspn(settings.daemon_memory, "0123456789") == 0 ||
        strspn(settings.daemon_memory, "0123456789kKmMgG") != strlen(settings.daemon_memory)) {
        snprintf(err, err_size, "daemon_memory must be a JVM heap size such as 256m or 1g");
        return SP_INVALID;
    }
    if ((b->clusters = local_clusters_new(ctx, &settings)) == NULL) {
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    return SP_OK;
}

static void local_backend_free(local_backend *b)
{
    if (b == NULL)
        return;
    if (b->poll_timer != NULL)
        b->ctx->host->timer_cancel(b->poll_timer);
    while (b->jobs != NULL) {
        local_job *job = b->jobs;
        b->jobs = job->next;
        local_job_free(job); /* the process runs on; the next daemon re-attaches */
    }
    local_clusters_free(b->clusters);
    local_replies_drop(b->ctx, &b->replies);
    for (size_t i = 0; b->extra_conf != NULL && b->extra_conf[i] != NULL; i++)
        free(b->extra_conf[i]);
    free(b->extra_conf);
    free(b);
}

static int local_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    local_backend *b = calloc(1, sizeof(*b));
    int64_t poll_ms;
    int rc;

    if (b == NULL) {
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    b->ctx = ctx;
    if ((rc = local_settings_read(b, err, err_size)) != SP_OK)
        goto fail;
    local_metrics_register(b);
    local_reattach(b);
    if ((rc = local_clusters_open(b, err, err_size)) != SP_OK)
        goto fail;
    poll_ms = ctx->host->option_int(ctx, "poll_interval");
    b->poll_timer = ctx->host->timer_start(ctx, (uint64_t)(poll_ms > 0 ? poll_ms : 1000), 1,
                                           local_poll, b);
    rc = ctx->host->register_provider(ctx, SP_KIND_BACKEND, "local", &local_ops, b);
    if (rc != SP_OK) {
        snprintf(err, err_size, "cannot register backend 'local' (status %d)", rc);
        goto fail;
    }
    ctx->user_data = b;
    return SP_OK;
fail:
    local_backend_free(b);
    return rc;
}

static void local_fini(sp_plugin_context *ctx)
{
    local_backend_free(ctx->user_data);
    ctx->user_data = NULL;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_BACKEND,
    .name = "backend_local",
    .version = "1.0.0",
    .description = "runs Spark jobs (spark-submit --master local[N]) and Spark Connect clusters "
                   "(standalone master, workers, a Spark Connect server) on this machine",
    .options = local_options,
    .init = local_init,
    .fini = local_fini,
};
