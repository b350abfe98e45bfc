/*
 * backend_sim.c - a SIMULATED compute backend for load tests.  It runs no
 * process and no Spark: a job only "runs" on host timers.  It registers the
 * backend "sim", which is never the default - a job lands here only when
 * the config says `runner.default_backend: sim` or the job names it.
 *
 * Lifecycle of a job submitted at t (all times wall clock, in ms):
 *   [t, t+submit_delay)            SUBMITTED  (the submit reply comes at the end)
 *   [start, start+run_duration)    RUNNING    (reported by an event)
 *   then SUCCEEDED, or FAILED for `failure_rate` percent of jobs: the outcome
 *   is a hash of (seed, job id), so the same ids fail in every run.
 * A cancel ends the job at once (CANCELLED).  Finished jobs are kept for
 * `retain_finished` after the simulator noticed them, so the runner can read
 * their final state, then forgotten.
 *
 * Everything that happens later sits in one min-heap of actions ordered by
 * (due time, sequence), woken by ONE host timer armed for the earliest
 * action: no timer per job, so 10,000 jobs cost 10,000 heap entries, not
 * 10,000 libevent timers.  A wake runs every action due by the time it was
 * armed for (or by now, if later), which also makes tests that fire timers
 * by hand step through a job's life one stage at a time.  Every reply goes
 * through the heap, so it always arrives from the loop, never inside the
 * call that asked.
 *
 * Jobs live in memory (a slot array, and a jansson object id -> slot as the
 * index) and in the host key/value store: "slot/<n>" holds a job's record
 * (id, submit/start/end times, drawn outcome, cancel time) and "slots" the
 * number of slots ever used, because the kv store cannot be listed.  A record
 * is written on submit and cancel and deleted when forgotten; states are
 * derived from the times, so after a restart a job whose end passed during
 * the downtime is simply finished.
 *
 * Clusters are simulated too, in memory only: cluster_start answers after
 * `cluster_start_delay` with the endpoint 127.0.0.1:<cluster_port> (by
 * default port 9, where nothing answers, so the host's readiness call never
 * succeeds and the cluster stays PROVISIONING until its start_timeout), or
 * fails for `cluster_failure_rate` percent of the ids, drawn like the jobs'
 * outcome.  No process is started.  A cluster is known from its start until
 * its stop; reconcile lists the ones whose start succeeded, so a restarted
 * daemon finds none of them (a new plugin instance knows nothing).  Clusters
 * are few (team quotas, pools), so they sit in a list searched linearly.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sparkplane/sparkplane.h>

#define SIM_PLUGIN_NAME "backend_sim"
#define SIM_BACKEND_NAME "sim"
#define SIM_ID_MAX 128
#define SIM_KEY_MAX 32
#define SIM_MESSAGE_MAX 256
#define SIM_CLUSTER_ID_MAX 63 /* the host's cluster ids: [a-z0-9-]{1,63} */
#define SIM_EXECUTORS_MAX 100000

typedef enum sim_state {
    SIM_SUBMITTED = 0,
    SIM_RUNNING,
    SIM_SUCCEEDED,
    SIM_FAILED,
    SIM_CANCELLED
} sim_state;

static const char *const sim_state_names[] = {"SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED",
                                              "CANCELLED"};

typedef struct sim_job {
    char id[SIM_ID_MAX];
    char app_id[32];
    uint32_t slot;
    sim_state state;
    int fails;            /* the outcome drawn at submit */
    int64_t submitted_ms; /* wall clock */
    int64_t start_ms;
    int64_t end_ms;
    int64_t cancelled_ms; /* 0: not cancelled */
    unsigned pending;     /* queued actions pointing here: not freed while > 0 */
} sim_job;

/* A simulated cluster's life: STARTING until its start reply, then UP, or FAILED; STOPPED. */
typedef enum sim_cluster_state {
    SIM_CLUSTER_STARTING = 0,
    SIM_CLUSTER_UP,
    SIM_CLUSTER_FAILED,
    SIM_CLUSTER_STOPPED
} sim_cluster_state;

typedef struct sim_cluster {
    struct sim_cluster *next;
    char id[SIM_CLUSTER_ID_MAX + 1];
    sim_cluster_state state;
    int fails;        /* the start outcome drawn at cluster_start */
    int64_t ready_ms; /* when the start is answered (wall clock) */
    int64_t executors;
    unsigned pending; /* queued actions pointing here: not freed while > 0 */
} sim_cluster;

typedef enum sim_action_kind {
    SIM_ACTION_REPLY,        /* a prepared reply */
    SIM_ACTION_SUBMIT_REPLY, /* the submit reply, built when due */
    SIM_ACTION_START,        /* SUBMITTED -> RUNNING */
    SIM_ACTION_FINISH,       /* RUNNING -> SUCCEEDED | FAILED */
    SIM_ACTION_EVENT,        /* tell the host the job's state */
    SIM_ACTION_FORGET,       /* drop a finished job */
    SIM_ACTION_CLUSTER_START /* a cluster's start reply, built when due */
} sim_action_kind;

typedef struct sim_action {
    int64_t due_ms;
    uint64_t seq; /* ties keep submission order */
    sim_action_kind kind;
    sim_job *job;
    sim_cluster *cluster;
    sp_backend_reply_fn reply;
    void *reply_arg;
    int status;
    char *json;
    char *message;
} sim_action;

typedef struct sim_metrics {
    sp_metric *submitted;
    sp_metric *rejected;
    sp_metric *active;
    sp_metric *finished[3]; /* succeeded, failed, cancelled */
    sp_metric *clusters_up;
    sp_metric *cluster_starts_failed;
} sim_metrics;

typedef struct sim_backend {
    sp_plugin_context *ctx;
    const sp_host_api *host;
    int64_t run_duration_ms;
    int64_t submit_delay_ms;
    int64_t retain_ms;
    int64_t failure_rate; /* percent */
    uint64_t seed;
    size_t max_concurrent;
    int64_t cluster_start_delay_ms;
    int64_t cluster_port;
    int64_t cluster_failure_rate; /* percent */
    sim_cluster *clusters; /* every cluster not yet freed, ended ones included */
    size_t clusters_up;
    sim_job **slots; /* NULL entries are free */
    size_t slot_count;
    size_t slot_capacity;
    uint32_t *free_slots; /* a stack of the NULL entries */
    size_t free_count;
    size_t free_capacity;
    size_t slots_saved; /* the "slots" value in the kv store */
    json_t *index;      /* id -> slot number */
    size_t active;      /* SUBMITTED + RUNNING */
    sim_action *queue;  /* min-heap on (due_ms, seq) */
    size_t queue_count;
    size_t queue_capacity;
    uint64_t next_seq;
    sp_timer *wake;
    int64_t wake_due_ms;
    sp_backend_event_fn on_event;
    void *event_arg;
    sim_metrics metrics;
} sim_backend;

static const sp_option_spec sim_options[] = {
    {"run_duration", SP_OPTION_DURATION, "2s", 0, "how long a simulated job runs"},
    {"submit_delay", SP_OPTION_DURATION, "0", 0, "delay before a submit is answered"},
    {"failure_rate", SP_OPTION_INT, "0", 0, "percent of jobs that end FAILED (0..100)"},
    {"seed", SP_OPTION_INT, "1", 0, "seed of the failure draw: same seed, same failed ids"},
    {"max_concurrent_jobs", SP_OPTION_INT, "10000", 0,
     "jobs running at once; more are answered AGAIN (stay PENDING)"},
    {"retain_finished", SP_OPTION_DURATION, "10m", 0,
     "how long a finished job is remembered for status and logs"},
    {"cluster_start_delay", SP_OPTION_DURATION, "0", 0,
     "delay before a simulated cluster start is answered"},
    {"cluster_port", SP_OPTION_INT, "9", 0,
     "port of every simulated cluster endpoint 127.0.0.1:<port> (9: nothing answers)"},
    {"cluster_failure_rate", SP_OPTION_INT, "0", 0,
     "percent of cluster starts that fail (0..100), drawn from the seed and the cluster id"},
    {NULL, 0, NULL, 0, NULL}};

static void sim_on_wake(void *arg);

static int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sim_state_is_final(sim_state state)
{
    return state == SIM_SUCCEEDED || state == SIM_FAILED || state == SIM_CANCELLED;
}

/* ---- the deterministic failure draw ---------------------------------------- */

static uint64_t sim_hash_text(const char *text)
{
    uint64_t hash = 14695981039346656037ull; /* FNV-1a */
    for (; *text != '\0'; text++)
        hash = (hash ^ (unsigned char)*text) * 1099511628211ull;
    return hash;
}

/* splitmix64's finaliser: spreads the seed over every bit of the result. */
static uint64_t sim_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* 1 for `rate` percent of the ids: the same (seed, id) always draws the same. */
static int sim_draw_failure(const sim_backend *b, const char *id, int64_t rate)
{
    return (int64_t)(sim_mix(sim_hash_text(id) ^ sim_mix(b->seed)) % 100) < rate;
}

/* ---- the action queue ------------------------------------------------------- */

static int sim_action_before(const sim_action *a, const sim_action *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

/* Arms the one timer for the earliest action, unless it is armed early enough. */
static void sim_wake_arm(sim_backend *b)
{
    int64_t due, now;

    if (b->queue_count == 0)
        return;
    due = b->queue[0].due_ms;
    if (b->wake != NULL && b->wake_due_ms <= due)
        return;
    if (b->wake != NULL)
        b->host->timer_cancel(b->wake);
    now = sim_now_ms();
    b->wake = b->host->timer_start(b->ctx, due > now ? (uint64_t)(due - now) : 0, 0, sim_on_wake,
                                   b);
    b->wake_due_ms = due;
    if (b->wake == NULL)
        b->host->log(b->ctx, SP_LOG_ERROR, "cannot start a timer: simulated jobs are stalled");
}

static int sim_queue_push(sim_backend *b, sim_action action)
{
    size_t i;

    if (b->queue_count == b->queue_capacity) {
        size_t capacity = b->queue_capacity ? b->queue_capacity * 2 : 256;
        sim_action *grown = realloc(b->queue, capacity * sizeof(*grown));
        if (grown == NULL)
            return SP_ERROR;
        b->queue = grown;
        b->queue_capacity = capacity;
    }
    action.seq = b->next_seq++;
    if (action.job != NULL)
        action.job->pending++;
    if (action.cluster != NULL)
        action.cluster->pending++;
    for (i = b->queue_count++; i > 0; i = (i - 1) / 2) {
        if (!sim_action_before(&action, &b->queue[(i - 1) / 2]))
            break;
        b->queue[i] = b->queue[(i - 1) / 2];
    }
    b->queue[i] = action;
    sim_wake_arm(b);
    return SP_OK;
}

static sim_action sim_queue_pop(sim_backend *b)
{
    sim_action top = b->queue[0];
    sim_action last = b->queue[--b->queue_count];
    size_t i = 0, child;

    while ((child = 2 * i + 1) < b->queue_count) {
        if (child + 1 < b->queue_count && sim_action_before(&b->queue[child + 1], &b->queue[child]))
            child++;
        if (!sim_action_before(&b->queue[child], &last))
            break;
        b->queue[i] = b->queue[child];
        i = child;
    }
    if (b->queue_count > 0)
        b->queue[i] = last;
    return top;
}

static int sim_queue_job(sim_backend *b, sim_action_kind kind, sim_job *job, int64_t due_ms)
{
    return sim_queue_push(b, (sim_action){.due_ms = due_ms, .kind = kind, .job = job});
}

/*
 * Queues reply(arg, status, doc, message) for `due_ms`.  Takes `doc` (may be
 * NULL).  SP_ERROR when out of memory: then the reply will never come.
 */
static int sim_queue_reply(sim_backend *b, int64_t due_ms, sp_backend_reply_fn reply, void *arg,
                           int status, json_t *doc, const char *message)
{
    sim_action action = {.due_ms = due_ms, .kind = SIM_ACTION_REPLY, .reply = reply,
                         .reply_arg = arg, .status = status};

    action.json = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    action.message = message != NULL ? strdup(message) : NULL;
    json_decref(doc);
    if ((doc != NULL && action.json == NULL) || (message != NULL && action.message == NULL) ||
        sim_queue_push(b, action) != SP_OK) {
        free(action.json);
        free(action.message);
        return SP_ERROR;
    }
    return SP_OK;
}

/* An error answered later with a message naming what was wrong. */
static int sim_queue_error(sim_backend *b, sp_backend_reply_fn reply, void *arg, int status,
                           const char *fmt, ...) SP_PRINTF(5, 6);
static int sim_queue_error(sim_backend *b, sp_backend_reply_fn reply, void *arg, int status,
                           const char *fmt, ...)
{
    char message[SIM_MESSAGE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return sim_queue_reply(b, sim_now_ms(), reply, arg, status, NULL, message);
}

/* ---- jobs: index, metrics, documents ---------------------------------------- */

static sim_job *sim_job_find(const sim_backend *b, const char *id)
{
    json_t *slot = id != NULL ? json_object_get(b->index, id) : NULL;
    json_int_t n = slot != NULL ? json_integer_value(slot) : -1;
    return n >= 0 && (size_t)n < b->slot_count ? b->slots[n] : NULL;
}

/* Named like backend_local's, with "sim" in the name: the two never mix on a dashboard. */
static void sim_metrics_register(sim_backend *b)
{
    static const char *const labels[] = {"state=\"SUCCEEDED\"", "state=\"FAILED\"",
                                         "state=\"CANCELLED\""};
    sp_plugin_context *ctx = b->ctx;

    b->metrics.submitted = b->host->metric_register(ctx, SP_METRIC_COUNTER,
                                                    "sparkplane_backend_sim_jobs_submitted_total",
                                                    "Simulated jobs accepted", NULL);
    b->metrics.rejected = b->host->metric_register(
        ctx, SP_METRIC_COUNTER, "sparkplane_backend_sim_jobs_rejected_total",
        "Simulated submits answered AGAIN (max_concurrent_jobs reached)", NULL);
    b->metrics.active = b->host->metric_register(ctx, SP_METRIC_GAUGE,
                                                 "sparkplane_backend_sim_jobs_running",
                                                 "Simulated jobs submitted or running", NULL);
    for (size_t i = 0; i < 3; i++)
        b->metrics.finished[i] = b->host->metric_register(
            ctx, SP_METRIC_COUNTER, "sparkplane_backend_sim_jobs_finished_total",
            "Simulated jobs that ended, by final state", labels[i]);
    b->metrics.clusters_up = b->host->metric_register(
        ctx, SP_METRIC_GAUGE, "sparkplane_backend_sim_clusters_running",
        "Simulated clusters whose start succeeded and that were not stopped", NULL);
    b->metrics.cluster_starts_failed = b->host->metric_register(
        ctx, SP_METRIC_COUNTER, "sparkplane_backend_sim_cluster_starts_failed_total",
        "Simulated cluster starts answered with an error (cluster_failure_rate)", NULL);
}

/* Leaves SUBMITTED/RUNNING for a final state and counts it. */
static void sim_job_end(sim_backend *b, sim_job *job, sim_state final_state)
{
    if (!sim_state_is_final(job->state)) {
        b->active--;
        b->host->metric_set(b->metrics.active, (double)b->active);
    }
    job->state = final_state;
    b->host->metric_add(b->metrics.finished[final_state - SIM_SUCCEEDED], 1);
}

/* The job_status shape: {"state", "spark_app_id", "reason"?, "exit_code"?}. */
static json_t *sim_job_status_doc(const sim_backend *b, const sim_job *job)
{
    char reason[SIM_MESSAGE_MAX];
    json_t *doc = json_pack("{s:s, s:s}", "state", sim_state_names[job->state], "spark_app_id",
                            job->app_id);

    if (doc == NULL)
        return NULL;
    if (job->state == SIM_SUCCEEDED) {
        json_object_set_new(doc, "exit_code", json_integer(0));
    } else if (job->state == SIM_FAILED) {
        snprintf(reason, sizeof(reason),
                 "simulated failure (backend_sim failure_rate %" PRId64 "%%, seed %" PRIu64 ")",
                 b->failure_rate, b->seed);
        json_object_set_new(doc, "reason", json_string(reason));
        json_object_set_new(doc, "exit_code", json_integer(1));
    } else if (job->state == SIM_CANCELLED) {
        json_object_set_new(doc, "reason", json_string("cancelled (simulated)"));
    }
    return doc;
}

static void sim_job_emit_event(sim_backend *b, const sim_job *job)
{
    json_t *doc;
    char *text;

    if (b->on_event == NULL || (doc = sim_job_status_doc(b, job)) == NULL)
        return;
    json_object_set_new(doc, "kind", json_string("job"));
    json_object_set_new(doc, "id", json_string(job->id));
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text != NULL)
        b->on_event(b->event_arg, text);
    free(text);
}

/* ---- persistence in the host kv store --------------------------------------- */

static void sim_slot_key(char key[SIM_KEY_MAX], uint32_t slot)
{
    snprintf(key, SIM_KEY_MAX, "slot/%" PRIu32, slot);
}

static int sim_job_save(sim_backend *b, const sim_job *job, char *err, size_t err_size)
{
    char key[SIM_KEY_MAX], count[24];
    json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:b, s:I}", "id", job->id, "submitted_ms",
                            (json_int_t)job->submitted_ms, "start_ms", (json_int_t)job->start_ms,
                            "end_ms", (json_int_t)job->end_ms, "fails", job->fails,
                            "cancelled_ms", (json_int_t)job->cancelled_ms);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = SP_ERROR;

    json_decref(doc);
    if (text == NULL) {
        snprintf(err, err_size, "out of memory");
        goto done;
    }
    sim_slot_key(key, job->slot);
    rc = b->host->kv_put(b->ctx, key, text, strlen(text), err, err_size);
    if (rc != SP_OK || b->slot_count <= b->slots_saved)
        goto done;
    snprintf(count, sizeof(count), "%zu", b->slot_count);
    rc = b->host->kv_put(b->ctx, "slots", count, strlen(count), err, err_size);
    if (rc == SP_OK)
        b->slots_saved = b->slot_count;
done:
    free(text);
    return rc;
}

/* ---- slots: creating and forgetting jobs ----------------------------------- */

/* A free slot (the most recently freed), else a new one at the end. */
static int sim_slot_take(sim_backend *b, uint32_t *slot_out)
{
    sim_job **grown;
    size_t capacity;

    if (b->free_count > 0) {
        *slot_out = b->free_slots[--b->free_count];
        return SP_OK;
    }
    if (b->slot_count == b->slot_capacity) {
        capacity = b->slot_capacity < 64 ? 64 : b->slot_capacity * 2;
        grown = realloc(b->slots, capacity * sizeof(*grown));
        if (grown == NULL)
            return SP_ERROR;
        b->slots = grown;
        b->slot_capacity = capacity;
    }
    b->slots[b->slot_count] = NULL;
    *slot_out = (uint32_t)b->slot_count++;
    return SP_OK;
}

/* Frees a slot for reuse; the free list can always hold every slot. */
static int sim_slot_release(sim_backend *b, uint32_t slot)
{
    uint32_t *grown;

    b->slots[slot] = NULL;
    if (b->free_count == b->free_capacity) {
        size_t capacity = b->free_capacity < 64 ? 64 : b->free_capacity * 2;
        grown = realloc(b->free_slots, capacity * sizeof(*grown));
        if (grown == NULL)
            return SP_ERROR; /* the slot is lost until a restart: harmless */
        b->free_slots = grown;
        b->free_capacity = capacity;
    }
    b->free_slots[b->free_count++] = slot;
    return SP_OK;
}

/* Puts a job into a slot and the index; SP_ERROR (job not taken) when out of memory. */
static int sim_job_insert(sim_backend *b, sim_job *job)
{
    if (sim_slot_take(b, &job->slot) != SP_OK)
        return SP_ERROR;
    if (json_object_set_new(b->index, job->id, json_integer(job->slot)) != 0) {
        sim_slot_release(b, job->slot);
        return SP_ERROR;
    }
    b->slots[job->slot] = job;
    if (!sim_state_is_final(job->state))
        b->active++;
    b->host->metric_set(b->metrics.active, (double)b->active);
    return SP_OK;
}

/* Undoes sim_job_insert and frees the job (its kv record is the caller's). */
static void sim_job_remove(sim_backend *b, sim_job *job)
{
    if (!sim_state_is_final(job->state)) {
        b->active--;
        b->host->metric_set(b->metrics.active, (double)b->active);
    }
    json_object_del(b->index, job->id);
    sim_slot_release(b, job->slot);
    free(job);
}

static void sim_job_forget(sim_backend *b, sim_job *job)
{
    char key[SIM_KEY_MAX];

    sim_slot_key(key, job->slot);
    b->host->kv_delete(b->ctx, key);
    sim_job_remove(b, job);
}

static void sim_job_set_app_id(sim_job *job)
{
    snprintf(job->app_id, sizeof(job->app_id), "app-sim-%016" PRIx64, sim_hash_text(job->id));
}

/* ---- clusters: the list and the start reply ---------------------------------- */

/* The cluster `id` that is starting or up, or NULL. */
static sim_cluster *sim_cluster_find(const sim_backend *b, const char *id)
{
    for (sim_cluster *cluster = b->clusters; id != NULL && cluster != NULL; cluster = cluster->next)
        if (cluster->state <= SIM_CLUSTER_UP && strcmp(cluster->id, id) == 0)
            return cluster;
    return NULL;
}

/* Frees the ended clusters no queued action points to any more. */
static void sim_cluster_collect(sim_backend *b)
{
    sim_cluster **link = &b->clusters;

    while (*link != NULL) {
        sim_cluster *cluster = *link;
        if (cluster->state >= SIM_CLUSTER_FAILED && cluster->pending == 0) {
            *link = cluster->next;
            free(cluster);
        } else {
            link = &cluster->next;
        }
    }
}

/* Moves a cluster to `state`, keeping the count of clusters up. */
static void sim_cluster_set_state(sim_backend *b, sim_cluster *cluster, sim_cluster_state state)
{
    if (cluster->state == SIM_CLUSTER_UP)
        b->clusters_up--;
    if (state == SIM_CLUSTER_UP)
        b->clusters_up++;
    cluster->state = state;
    b->host->metric_set(b->metrics.clusters_up, (double)b->clusters_up);
}

/* {"endpoint": "127.0.0.1:<cluster_port>", "executors": N}, and "state": "RUNNING" if asked. */
static json_t *sim_cluster_doc(const sim_backend *b, const sim_cluster *cluster, int with_state)
{
    char endpoint[32];
    json_t *doc;

    snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%" PRId64, b->cluster_port);
    doc =
        json_pack("{s:s, s:I}", "endpoint", endpoint, "executors", (json_int_t)cluster->executors);
    if (doc != NULL && with_state)
        json_object_set_new(doc, "state", json_string("RUNNING"));
    return doc;
}

/* The start reply, when due: up, the drawn failure, or stopped meanwhile. */
static void sim_cluster_answer_start(sim_backend *b, sim_action *action)
{
    sim_cluster *cluster = action->cluster;
    char message[SIM_MESSAGE_MAX];
    json_t *doc = NULL;
    char *text = NULL;
    int status = SP_ERROR;

    if (cluster->state == SIM_CLUSTER_STARTING && cluster->fails) {
        sim_cluster_set_state(b, cluster, SIM_CLUSTER_FAILED);
        b->host->metric_add(b->metrics.cluster_starts_failed, 1);
    } else if (cluster->state == SIM_CLUSTER_STARTING) {
        sim_cluster_set_state(b, cluster, SIM_CLUSTER_UP);
    }
    if (cluster->state == SIM_CLUSTER_UP) {
        doc = sim_cluster_doc(b, cluster, 0);
        text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        status = text != NULL ? SP_OK : SP_ERROR;
        snprintf(message, sizeof(message), "backend_sim: out of memory");
    } else if (cluster->state == SIM_CLUSTER_FAILED) {
        snprintf(message, sizeof(message),
                 "simulated start failure (backend_sim cluster_failure_rate %" PRId64
                 "%%, seed %" PRIu64 ")",
                 b->cluster_failure_rate, b->seed);
    } else {
        snprintf(message, sizeof(message), "simulated cluster %s was stopped before it came up",
                 cluster->id);
    }
    action->reply(action->reply_arg, status, text, status == SP_OK ? NULL : message);
    json_decref(doc);
    free(text);
}

/* ---- running due actions ----------------------------------------------------- */

static void sim_run_job_action(sim_backend *b, sim_action *action, int64_t now)
{
    sim_job *job = action->job;

    switch (action->kind) {
    case SIM_ACTION_START:
        if (job->state != SIM_SUBMITTED)
            break;
        job->state = SIM_RUNNING;
        sim_job_emit_event(b, job);
        break;
    case SIM_ACTION_FINISH:
        if (sim_state_is_final(job->state))
            break;
        sim_job_end(b, job, job->fails ? SIM_FAILED : SIM_SUCCEEDED);
        sim_job_emit_event(b, job);
        if (sim_queue_job(b, SIM_ACTION_FORGET, job, now + b->retain_ms) != SP_OK)
            b->host->log(b->ctx, SP_LOG_WARN, "job %s: out of memory, kept forever", job->id);
        break;
    case SIM_ACTION_EVENT:
        sim_job_emit_event(b, job);
        break;
    case SIM_ACTION_FORGET:
        if (job->pending > 0) /* a late START/FINISH of a cancelled job: try again later */
            sim_queue_job(b, SIM_ACTION_FORGET, job, now + b->retain_ms);
        else
            sim_job_forget(b, job);
        break;
    default:
        break;
    }
}

static void sim_run_action(sim_backend *b, sim_action *action, int64_t now)
{
    json_t *doc;
    char *text;

    if (action->job != NULL)
        action->job->pending--;
    if (action->cluster != NULL)
        action->cluster->pending--;
    if (action->kind == SIM_ACTION_CLUSTER_START) {
        sim_cluster_answer_start(b, action);
        sim_cluster_collect(b);
    } else if (action->kind == SIM_ACTION_REPLY) {
        action->reply(action->reply_arg, action->status, action->json, action->message);
        free(action->json);
        free(action->message);
    } else if (action->kind == SIM_ACTION_SUBMIT_REPLY) {
        doc = sim_job_status_doc(b, action->job);
        text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        action->reply(action->reply_arg, text != NULL ? SP_OK : SP_ERROR, text,
                      text != NULL ? NULL : "backend_sim: out of memory");
        free(text);
    } else {
        sim_run_job_action(b, action, now);
    }
}

/*
 * Runs every action due by the time the timer was armed for (or by now),
 * queued before this wake began: what the actions queue (a reply asked for
 * from inside a reply) waits for the next wake, so a wake always ends.
 */
static void sim_on_wake(void *arg)
{
    sim_backend *b = arg;
    int64_t now = sim_now_ms();
    int64_t limit = b->wake_due_ms > now ? b->wake_due_ms : now;
    uint64_t seq_limit = b->next_seq;

    b->wake = NULL; /* one-shot: the host frees it after this call */
    while (b->queue_count > 0 && b->queue[0].due_ms <= limit && b->queue[0].seq < seq_limit) {
        sim_action action = sim_queue_pop(b);
        sim_run_action(b, &action, now);
    }
    sim_wake_arm(b);
}

/* ---- loading what a previous run left ----------------------------------------- */

/* Reads one record; 1 when it is malformed (the caller logs and skips it). */
static int sim_job_parse(const char *text, sim_job *job)
{
    json_t *doc = json_loads(text, 0, NULL);
    const char *id = NULL;
    json_int_t submitted = 0, start = 0, end = 0, cancelled = 0;
    int fails = 0, bad;

    bad = doc == NULL ||
          json_unpack(doc, "{s:s, s:I, s:I, s:I, s:b, s:I}", "id", &id, "submitted_ms", &submitted,
                      "start_ms", &start, "end_ms", &end, "fails", &fails, "cancelled_ms",
                      &cancelled) != 0 ||
          strlen(id) == 0 || strlen(id) >= SIM_ID_MAX;
    if (!bad) {
        snprintf(job->id, sizeof(job->id), "%s", id);
        job->submitted_ms = submitted;
        job->start_ms = start;
        job->end_ms = end;
        job->fails = fails;
        job->cancelled_ms = cancelled;
    }
    json_decref(doc);
    return bad;
}

/* The state a record means at `now`, and the actions still ahead of it. */
static int sim_job_resume(sim_backend *b, sim_job *job, int64_t now)
{
    int rc = SP_OK;

    if (job->cancelled_ms != 0)
        job->state = SIM_CANCELLED;
    else if (now >= job->end_ms)
        job->state = job->fails ? SIM_FAILED : SIM_SUCCEEDED;
    else if (now >= job->start_ms)
        job->state = SIM_RUNNING;
    else
        job->state = SIM_SUBMITTED;
    if (job->state == SIM_SUBMITTED)
        rc = sim_queue_job(b, SIM_ACTION_START, job, job->start_ms);
    if (rc == SP_OK && !sim_state_is_final(job->state))
        rc = sim_queue_job(b, SIM_ACTION_FINISH, job, job->end_ms);
    if (rc == SP_OK && sim_state_is_final(job->state))
        rc = sim_queue_job(b, SIM_ACTION_FORGET, job, now + b->retain_ms);
    return rc;
}

/* Loads "slot/<slot>": a job, or a free slot when absent or malformed. */
static int sim_load_slot(sim_backend *b, uint32_t slot, char *err, size_t err_size)
{
    char key[SIM_KEY_MAX], *text = NULL;
    sim_job *job = NULL;
    int rc;

    sim_slot_key(key, slot);
    rc = b->host->kv_get(b->ctx, key, &text, NULL);
    if (rc == SP_NOT_FOUND)
        return sim_slot_release(b, slot);
    if (rc != SP_OK || (job = calloc(1, sizeof(*job))) == NULL) {
        snprintf(err, err_size, "cannot read kv %s (status %d)", key, rc);
        goto fail;
    }
    if (sim_job_parse(text, job) != 0 || sim_job_find(b, job->id) != NULL) {
        b->host->log(b->ctx, SP_LOG_WARN, "kv %s: not a job record, dropped", key);
        b->host->kv_delete(b->ctx, key);
        free(job);
        free(text);
        return sim_slot_release(b, slot);
    }
    if (json_object_set_new(b->index, job->id, json_integer(slot)) != 0) {
        snprintf(err, err_size, "out of memory loading %s", key);
        goto fail;
    }
    sim_job_set_app_id(job);
    job->slot = slot;
    job->state = SIM_SUBMITTED; /* counted active until sim_resume_all says otherwise */
    b->slots[slot] = job;
    b->active++;
    free(text);
    return SP_OK;
fail:
    free(job);
    free(text);
    return SP_ERROR;
}

static int sim_load(sim_backend *b, char *err, size_t err_size)
{
    char *text = NULL;
    long long count = 0;
    int rc = b->host->kv_get(b->ctx, "slots", &text, NULL);

    if (rc == SP_NOT_FOUND)
        return SP_OK;
    if (rc != SP_OK || sscanf(text, "%lld", &count) != 1 || count < 0 || count > UINT32_MAX) {
        snprintf(err, err_size, "kv \"slots\" is unreadable");
        free(text);
        return SP_ERROR;
    }
    free(text);
    b->slot_capacity = (size_t)count + 64;
    b->slots = calloc(b->slot_capacity, sizeof(*b->slots));
    if (b->slots == NULL) {
        snprintf(err, err_size, "out of memory for %lld slots", count);
        return SP_ERROR;
    }
    b->slot_count = b->slots_saved = (size_t)count;
    /* Backwards, so the free stack hands out low slots first. */
    for (uint32_t i = (uint32_t)count; i-- > 0;) {
        if (sim_load_slot(b, i, err, err_size) != SP_OK) {
            if (err[0] == '\0')
                snprintf(err, err_size, "out of memory loading slot %" PRIu32, i);
            return SP_ERROR;
        }
    }
    return SP_OK;
}

/* After sim_load: every job gets the state its times say and its actions. */
static int sim_resume_all(sim_backend *b, char *err, size_t err_size)
{
    int64_t now = sim_now_ms();

    for (size_t i = 0; i < b->slot_count; i++) {
        sim_job *job = b->slots[i];
        if (job == NULL)
            continue;
        if (sim_job_resume(b, job, now) != SP_OK) {
            snprintf(err, err_size, "out of memory resuming %s", job->id);
            return SP_ERROR;
        }
        if (sim_state_is_final(job->state))
            b->active--;
    }
    b->host->metric_set(b->metrics.active, (double)b->active);
    return SP_OK;
}

/* ---- backend operations ---------------------------------------------------------- */

static void sim_attach(void *provider, sp_backend_event_fn on_event, void *host_arg)
{
    sim_backend *b = provider;
    b->on_event = on_event;
    b->event_arg = host_arg;
}

/* The id of a submit document, or NULL with `problem` set. */
static const char *sim_submit_id(const json_t *doc, const char **problem)
{
    const json_t *id = json_object_get(doc, "id");
    const json_t *spec = json_object_get(doc, "spec");

    *problem = NULL;
    if (!json_is_object(doc))
        *problem = "job_json: not a JSON object";
    else if (!json_is_string(id) || json_string_length(id) == 0)
        *problem = "job_json: \"id\" must be a non-empty string";
    else if (json_string_length(id) >= SIM_ID_MAX || strlen(json_string_value(id)) !=
                                                          json_string_length(id))
        *problem = "job_json: \"id\" is too long or holds a NUL";
    else if (spec != NULL && !json_is_object(spec))
        *problem = "job_json: \"spec\" must be an object";
    return *problem == NULL ? json_string_value(id) : NULL;
}

static sim_job *sim_job_new(sim_backend *b, const char *id, int64_t now)
{
    sim_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    snprintf(job->id, sizeof(job->id), "%s", id);
    sim_job_set_app_id(job);
    job->state = SIM_SUBMITTED;
    job->fails = sim_draw_failure(b, id, b->failure_rate);
    job->submitted_ms = now;
    job->start_ms = now + b->submit_delay_ms;
    job->end_ms = job->start_ms + b->run_duration_ms;
    return job;
}

/* Stores a new job and queues its life; SP_OK, or an error reply is queued. */
static int sim_submit_new(sim_backend *b, const char *id, sp_backend_reply_fn reply, void *arg)
{
    char err[SIM_MESSAGE_MAX];
    int64_t now = sim_now_ms();
    sim_job *job = sim_job_new(b, id, now);

    if (job == NULL || sim_job_insert(b, job) != SP_OK) {
        free(job);
        return SP_ERROR;
    }
    if (sim_job_save(b, job, err, sizeof(err)) != SP_OK) {
        sim_job_remove(b, job);
        return sim_queue_error(b, reply, arg, SP_UNAVAILABLE,
                               "backend_sim: cannot record job %s: %s", id, err);
    }
    b->host->metric_add(b->metrics.submitted, 1);
    if (sim_queue_push(b, (sim_action){.due_ms = job->start_ms, .kind = SIM_ACTION_SUBMIT_REPLY,
                                       .job = job, .reply = reply, .reply_arg = arg}) != SP_OK ||
        sim_queue_job(b, SIM_ACTION_START, job, job->start_ms) != SP_OK ||
        sim_queue_job(b, SIM_ACTION_FINISH, job, job->end_ms) != SP_OK)
        b->host->log(b->ctx, SP_LOG_ERROR, "job %s: out of memory, its life is cut short", id);
    return SP_OK;
}

static int sim_job_submit(void *provider, const char *job_json, sp_backend_reply_fn reply,
                          void *arg)
{
    sim_backend *b = provider;
    const char *problem, *id;
    sim_job *job;
    json_t *doc = job_json != NULL ? json_loads(job_json, 0, NULL) : NULL;
    int rc;

    if (reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    id = sim_submit_id(doc, &problem);
    if (id == NULL)
        rc = sim_queue_error(b, reply, arg, SP_INVALID, "%s", problem);
    else if ((job = sim_job_find(b, id)) != NULL) /* again: the same job, never a second run */
        rc = sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK, sim_job_status_doc(b, job), NULL);
    else if (b->active >= b->max_concurrent) {
        b->host->metric_add(b->metrics.rejected, 1);
        rc = sim_queue_error(b, reply, arg, SP_AGAIN,
                             "backend sim is at capacity: %zu jobs running "
                             "(backend_sim max_concurrent_jobs)",
                             b->active);
    } else
        rc = sim_submit_new(b, id, reply, arg);
    json_decref(doc);
    return rc;
}

static int sim_job_status(void *provider, const char *job_id, sp_backend_reply_fn reply, void *arg)
{
    sim_backend *b = provider;
    sim_job *job = sim_job_find(b, job_id);

    if (reply == NULL)
        return SP_INVALID;
    if (job == NULL)
        return sim_queue_error(b, reply, arg, SP_NOT_FOUND, "backend sim has no job %s",
                               job_id != NULL ? job_id : "(null)");
    return sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK, sim_job_status_doc(b, job), NULL);
}

static int sim_job_cancel(void *provider, const char *job_id, sp_backend_reply_fn reply, void *arg)
{
    sim_backend *b = provider;
    sim_job *job = sim_job_find(b, job_id);
    char err[SIM_MESSAGE_MAX];
    int64_t now = sim_now_ms();

    if (reply == NULL)
        return SP_INVALID;
    if (job == NULL)
        return sim_queue_error(b, reply, arg, SP_NOT_FOUND, "backend sim has no job %s",
                               job_id != NULL ? job_id : "(null)");
    if (!sim_state_is_final(job->state)) {
        job->cancelled_ms = now;
        sim_job_end(b, job, SIM_CANCELLED);
        if (sim_job_save(b, job, err, sizeof(err)) != SP_OK)
            b->host->log(b->ctx, SP_LOG_WARN, "job %s: cancel not recorded: %s", job->id, err);
        sim_queue_job(b, SIM_ACTION_EVENT, job, now);
        sim_queue_job(b, SIM_ACTION_FORGET, job, now + b->retain_ms);
    }
    return sim_queue_reply(b, now, reply, arg, SP_OK, sim_job_status_doc(b, job), NULL);
}

static void sim_log_line(char *out, size_t size, size_t *len, int64_t at_ms, const char *level,
                         const char *fmt, ...) SP_PRINTF(6, 7);
static void sim_log_line(char *out, size_t size, size_t *len, int64_t at_ms, const char *level,
                         const char *fmt, ...)
{
    time_t seconds = (time_t)(at_ms / 1000);
    struct tm tm;
    va_list ap;
    int n;

    if (*len >= size)
        return;
    gmtime_r(&seconds, &tm);
    n = snprintf(out + *len, size - *len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s sim: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(at_ms % 1000), level);
    *len += n > 0 ? (size_t)n : 0;
    if (*len >= size)
        return;
    va_start(ap, fmt);
    n = vsnprintf(out + *len, size - *len, fmt, ap);
    va_end(ap);
    *len += n > 0 ? (size_t)n : 0;
    if (*len < size)
        out[(*len)++] = '\n';
}

/* The synthetic driver log: lines are only ever appended as the job moves on. */
static size_t sim_job_log_text(const sim_backend *b, const sim_job *job, char *out, size_t size)
{
    size_t len = 0;

    sim_log_line(out, size, &len, job->submitted_ms, "INFO",
                 "SIMULATED job %s (backend_sim: no process, no Spark)", job->id);
    sim_log_line(out, size, &len, job->submitted_ms, "INFO", "submitted as %s", job->app_id);
    if (job->state == SIM_SUBMITTED)
        return len < size ? len : size;
    sim_log_line(out, size, &len, job->start_ms, "INFO", "running for %" PRId64 " ms",
                 job->end_ms - job->start_ms);
    if (job->state == SIM_SUCCEEDED)
        sim_log_line(out, size, &len, job->end_ms, "INFO", "finished: SUCCEEDED (exit code 0)");
    else if (job->state == SIM_FAILED)
        sim_log_line(out, size, &len, job->end_ms, "ERROR",
                     "simulated failure (failure_rate %" PRId64 "%%): FAILED (exit code 1)",
                     b->failure_rate);
    else if (job->state == SIM_CANCELLED)
        sim_log_line(out, size, &len, job->cancelled_ms, "WARN", "cancelled: CANCELLED");
    return len < size ? len : size;
}

static int sim_job_logs(void *provider, const char *job_id, uint64_t offset, uint64_t limit,
                        sp_backend_reply_fn reply, void *arg)
{
    sim_backend *b = provider;
    sim_job *job = sim_job_find(b, job_id);
    char text[2048];
    size_t len, start, count;
    json_t *doc;

    if (reply == NULL)
        return SP_INVALID;
    if (job == NULL)
        return sim_queue_error(b, reply, arg, SP_NOT_FOUND, "backend sim has no job %s",
                               job_id != NULL ? job_id : "(null)");
    len = sim_job_log_text(b, job, text, sizeof(text));
    start = offset < len ? (size_t)offset : len;
    count = limit < len - start ? (size_t)limit : len - start;
    doc = json_pack("{s:s%, s:I, s:b}", "data", text + start, count, "next_offset",
                    (json_int_t)(start + count), "complete",
                    sim_state_is_final(job->state) && start + count >= len);
    if (doc == NULL)
        return SP_ERROR;
    return sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK, doc, NULL);
}

/* ---- cluster operations ------------------------------------------------------------ */

/* [a-z0-9-]{1,63}: the host's cluster ids. */
static int sim_cluster_id_valid(const char *id)
{
    size_t len = id != NULL ? strlen(id) : 0;

    if (len == 0 || len > SIM_CLUSTER_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return 0;
    return 1;
}

/* The id and executors of a cluster_start document, or NULL with `problem` set. */
static const char *sim_cluster_start_fields(const json_t *doc, json_int_t *executors,
                                            const char **problem)
{
    const json_t *id = json_object_get(doc, "id");
    const json_t *resources = json_object_get(doc, "resources");
    const json_t *count = json_object_get(resources, "executors");

    *problem = NULL;
    if (!json_is_object(doc))
        *problem = "cluster_json: not a JSON object";
    else if (!json_is_string(id) || !sim_cluster_id_valid(json_string_value(id)) ||
             strlen(json_string_value(id)) != json_string_length(id))
        *problem = "cluster_json: \"id\" must match [a-z0-9-]{1,63}";
    else if (!json_is_object(resources))
        *problem = "cluster_json: \"resources\" must be an object";
    else if (!json_is_integer(count) || json_integer_value(count) < 0 ||
             json_integer_value(count) > SIM_EXECUTORS_MAX)
        *problem = "cluster_json: \"resources.executors\" must be an integer from 0 to 100000";
    if (*problem != NULL)
        return NULL;
    *executors = json_integer_value(count);
    return json_string_value(id);
}

static int sim_cluster_start(void *provider, const char *cluster_json, sp_backend_reply_fn reply,
                             void *arg)
{
    sim_backend *b = provider;
    json_t *doc = cluster_json != NULL ? json_loads(cluster_json, 0, NULL) : NULL;
    json_int_t executors = 0;
    const char *problem, *id = sim_cluster_start_fields(doc, &executors, &problem);
    sim_cluster *cluster;
    int64_t now = sim_now_ms();
    int rc;

    if (reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    if (id == NULL) {
        rc = sim_queue_error(b, reply, arg, SP_INVALID, "%s", problem);
        goto done;
    }
    /* Again for a cluster it knows: the same cluster answers, never a second one. */
    cluster = sim_cluster_find(b, id);
    if (cluster == NULL) {
        if ((cluster = calloc(1, sizeof(*cluster))) == NULL) {
            rc = SP_ERROR;
            goto done;
        }
        snprintf(cluster->id, sizeof(cluster->id), "%s", id);
        cluster->executors = executors;
        cluster->fails = sim_draw_failure(b, id, b->cluster_failure_rate);
        cluster->ready_ms = now + b->cluster_start_delay_ms;
        cluster->next = b->clusters;
        b->clusters = cluster;
    }
    rc = sim_queue_push(b, (sim_action){.due_ms = cluster->ready_ms > now ? cluster->ready_ms : now,
                                        .kind = SIM_ACTION_CLUSTER_START,
                                        .cluster = cluster,
                                        .reply = reply,
                                        .reply_arg = arg});
    if (rc != SP_OK && cluster->state == SIM_CLUSTER_STARTING && cluster->pending == 0) {
        cluster->state = SIM_CLUSTER_STOPPED; /* never answered: forget it */
        sim_cluster_collect(b);
    }
done:
    json_decref(doc);
    return rc;
}

/* The cluster `id` for an operation that needs it up; NULL after queueing the error. */
static sim_cluster *sim_cluster_for(sim_backend *b, const char *id, sp_backend_reply_fn reply,
                                    void *arg, int *rc)
{
    sim_cluster *cluster = sim_cluster_find(b, id);

    if (cluster == NULL)
        *rc = sim_queue_error(b, reply, arg, SP_NOT_FOUND, "backend sim has no cluster %s",
                              id != NULL ? id : "(null)");
    else if (cluster->state == SIM_CLUSTER_STARTING)
        *rc = sim_queue_error(b, reply, arg, SP_AGAIN, "simulated cluster %s is still starting",
                              cluster->id);
    else
        return cluster;
    return NULL;
}

static int sim_cluster_scale(void *provider, const char *cluster_id, const char *scale_json,
                             sp_backend_reply_fn reply, void *arg)
{
    sim_backend *b = provider;
    json_t *doc = scale_json != NULL ? json_loads(scale_json, 0, NULL) : NULL;
    const json_t *count = json_object_get(doc, "executors");
    sim_cluster *cluster;
    int rc = SP_OK;

    if (reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    if (!json_is_integer(count) || json_integer_value(count) < 0 ||
        json_integer_value(count) > SIM_EXECUTORS_MAX)
        rc = sim_queue_error(b, reply, arg, SP_INVALID,
                             "scale_json: \"executors\" must be an integer from 0 to 100000");
    else if ((cluster = sim_cluster_for(b, cluster_id, reply, arg, &rc)) != NULL) {
        cluster->executors = json_integer_value(count);
        rc = sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK,
                             json_pack("{s:I}", "executors", (json_int_t)cluster->executors), NULL);
    }
    json_decref(doc);
    return rc;
}

/* Stops at once (nothing runs); a start still pending is answered as stopped. */
static int sim_cluster_stop(void *provider, const char *cluster_id, sp_backend_reply_fn reply,
                            void *arg)
{
    sim_backend *b = provider;
    sim_cluster *cluster = sim_cluster_find(b, cluster_id);

    if (reply == NULL)
        return SP_INVALID;
    if (cluster == NULL)
        return sim_queue_error(b, reply, arg, SP_NOT_FOUND, "backend sim has no cluster %s",
                               cluster_id != NULL ? cluster_id : "(null)");
    sim_cluster_set_state(b, cluster, SIM_CLUSTER_STOPPED);
    sim_cluster_collect(b);
    return sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK, NULL, NULL);
}

static int sim_cluster_endpoint(void *provider, const char *cluster_id, sp_backend_reply_fn reply,
                                void *arg)
{
    sim_backend *b = provider;
    sim_cluster *cluster;
    int rc = SP_OK;

    if (reply == NULL)
        return SP_INVALID;
    if ((cluster = sim_cluster_for(b, cluster_id, reply, arg, &rc)) != NULL)
        rc = sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK, sim_cluster_doc(b, cluster, 1),
                             NULL);
    return rc;
}

/* ---- reconcile -------------------------------------------------------------------------- */

/* [{"id", "endpoint", "executors"}] of the clusters whose start succeeded. */
static json_t *sim_clusters_up_list(const sim_backend *b)
{
    json_t *list = json_array();

    for (const sim_cluster *cluster = b->clusters; list != NULL && cluster != NULL;
         cluster = cluster->next) {
        json_t *item;
        if (cluster->state != SIM_CLUSTER_UP)
            continue;
        item = sim_cluster_doc(b, cluster, 0);
        if (item == NULL || json_object_set_new(item, "id", json_string(cluster->id)) != 0 ||
            json_array_append_new(list, item) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static int sim_reconcile(void *provider, sp_backend_reply_fn reply, void *arg)
{
    sim_backend *b = provider;
    json_t *ids = json_array();
    json_t *clusters = sim_clusters_up_list(b);

    if (reply == NULL || ids == NULL || clusters == NULL) {
        json_decref(ids);
        json_decref(clusters);
        return reply == NULL ? SP_INVALID : SP_ERROR;
    }
    for (size_t i = 0; i < b->slot_count; i++)
        if (b->slots[i] != NULL && json_array_append_new(ids, json_string(b->slots[i]->id)) != 0)
            goto fail;
    return sim_queue_reply(b, sim_now_ms(), reply, arg, SP_OK,
                           json_pack("{s:o, s:o}", "jobs", ids, "clusters", clusters), NULL);
fail:
    json_decref(ids);
    json_decref(clusters);
    return SP_ERROR;
}

static const sp_backend_ops sim_ops = {
    .size = sizeof(sp_backend_ops),
    .attach = sim_attach,
    .job_submit = sim_job_submit,
    .job_status = sim_job_status,
    .job_cancel = sim_job_cancel,
    .job_logs = sim_job_logs,
    .cluster_start = sim_cluster_start,
    .cluster_scale = sim_cluster_scale,
    .cluster_stop = sim_cluster_stop,
    .cluster_endpoint = sim_cluster_endpoint,
    .reconcile = sim_reconcile,
};

/* ---- lifecycle --------------------------------------------------------------------- */

static int sim_read_options(sim_backend *b, char *err, size_t err_size)
{
    int64_t seed, max_jobs;

    b->run_duration_ms = b->host->option_int(b->ctx, "run_duration");
    b->submit_delay_ms = b->host->option_int(b->ctx, "submit_delay");
    b->retain_ms = b->host->option_int(b->ctx, "retain_finished");
    b->failure_rate = b->host->option_int(b->ctx, "failure_rate");
    seed = b->host->option_int(b->ctx, "seed");
    max_jobs = b->host->option_int(b->ctx, "max_concurrent_jobs");
    b->cluster_start_delay_ms = b->host->option_int(b->ctx, "cluster_start_delay");
    b->cluster_port = b->host->option_int(b->ctx, "cluster_port");
    b->cluster_failure_rate = b->host->option_int(b->ctx, "cluster_failure_rate");
    if (b->failure_rate < 0 || b->failure_rate > 100) {
        snprintf(err, err_size, "failure_rate must be a percent in 0..100, got %" PRId64,
                 b->failure_rate);
        return SP_INVALID;
    }
    if (max_jobs < 1) {
        snprintf(err, err_size, "max_concurrent_jobs must be at least 1, got %" PRId64, max_jobs);
        return SP_INVALID;
    }
    if (b->run_duration_ms < 0 || b->submit_delay_ms < 0 || b->retain_ms < 0 ||
        b->cluster_start_delay_ms < 0) {
        snprintf(
            err, err_size,
            "run_duration, submit_delay, retain_finished and cluster_start_delay must be >= 0");
        return SP_INVALID;
    }
    if (b->cluster_failure_rate < 0 || b->cluster_failure_rate > 100) {
        snprintf(err, err_size, "cluster_failure_rate must be a percent in 0..100, got %" PRId64,
                 b->cluster_failure_rate);
        return SP_INVALID;
    }
    if (b->cluster_port < 1 || b->cluster_port > 65535) {
        snprintf(err, err_size, "cluster_port must be a TCP port in 1..65535, got %" PRId64,
                 b->cluster_port);
        return SP_INVALID;
    }
    b->seed = (uint64_t)seed;
    b->max_concurrent = (size_t)max_jobs;
    return SP_OK;
}

static void sim_backend_free(sim_backend *b)
{
    if (b == NULL)
        return;
    if (b->wake != NULL)
        b->host->timer_cancel(b->wake);
    /* Pending replies are dropped: the host is unloading us and no longer waits. */
    for (size_t i = 0; i < b->queue_count; i++) {
        free(b->queue[i].json);
        free(b->queue[i].message);
    }
    for (size_t i = 0; i < b->slot_count; i++)
        free(b->slots[i]);
    while (b->clusters != NULL) {
        sim_cluster *next = b->clusters->next;
        free(b->clusters);
        b->clusters = next;
    }
    free(b->queue);
    free(b->slots);
    free(b->free_slots);
    json_decref(b->index);
    free(b);
}

static int sim_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    sim_backend *b = calloc(1, sizeof(*b));
    int rc = SP_ERROR;

    err[0] = '\0';
    if (b == NULL || (b->index = json_object()) == NULL) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    b->ctx = ctx;
    b->host = ctx->host;
    if ((rc = sim_read_options(b, err, err_size)) != SP_OK)
        goto fail;
    sim_metrics_register(b);
    if ((rc = sim_load(b, err, err_size)) != SP_OK ||
        (rc = sim_resume_all(b, err, err_size)) != SP_OK)
        goto fail;
    rc = b->host->register_provider(ctx, SP_KIND_BACKEND, SIM_BACKEND_NAME, &sim_ops, b);
    if (rc != SP_OK) {
        snprintf(err, err_size, "cannot register backend \"%s\" (status %d)", SIM_BACKEND_NAME, rc);
        goto fail;
    }
    ctx->user_data = b;
    b->host->log(ctx, SP_LOG_INFO,
                 "SIMULATED backend \"sim\" for load tests (no Spark runs): run_duration=%" PRId64
                 "ms failure_rate=%" PRId64 "%% seed=%" PRIu64 ", %zu jobs resumed; clusters "
                 "answer at 127.0.0.1:%" PRId64 " (cluster_failure_rate=%" PRId64 "%%)",
                 b->run_duration_ms, b->failure_rate, b->seed, json_object_size(b->index),
                 b->cluster_port, b->cluster_failure_rate);
    return SP_OK;
fail:
    sim_backend_free(b);
    return rc;
}

static void sim_fini(sp_plugin_context *ctx)
{
    sim_backend_free(ctx->user_data);
    ctx->user_data = NULL;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_BACKEND,
    .name = SIM_PLUGIN_NAME,
    .version = "1.0.0",
    .description = "SIMULATOR for load and API tests: backend \"sim\" runs jobs and clusters on "
                   "timers, no Spark",
    .options = sim_options,
    .init = sim_init,
    .fini = sim_fini,
};
