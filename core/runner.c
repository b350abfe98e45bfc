/*
 * runner.c - the batch job runner: admission, hand-off, reconcile.
 *
 * One loop, level-driven: each tick reads what the store says and makes the
 * backends match (see runner.h).  Per job the runner keeps a small "flight"
 * record in memory - whether a backend call is outstanding and when to ask
 * again (backoff) - never the job's state itself, which lives in the store.
 * Every backend call carries a call record; a reload abandons the records
 * of the old plugin set so their jobs are asked again of the new one.
 *
 * Hand-off order keeps "never twice": PENDING -> SUBMITTED is written before
 * the backend is called.  If the backend declines for now (AGAIN,
 * UNAVAILABLE) the job goes back to PENDING with the reason; if the daemon
 * dies in between, the backend does not know the job and reconcile fails it
 * as lost instead of starting it again.
 */
#include "runner.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clusters.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "store_jobs.h"

#define RUNNER_ADMIT_BATCH 256
#define RUNNER_POLL_BATCH 1024
#define RUNNER_MAX_BACKOFF_FACTOR 8

typedef struct runner_flight {
    char id[64];
    int busy;                   /* a backend call is outstanding */
    uint64_t next_check_ms;     /* monotonic */
    uint64_t backoff_ms;
    uint64_t cancel_sent_ms;    /* last cancel request, 0 = never */
    int seen;                   /* marked during a tick, to drop finished flights */
    struct runner_flight *next;
} runner_flight;

typedef enum runner_call_kind {
    RUNNER_CALL_SUBMIT,
    RUNNER_CALL_STATUS,
    RUNNER_CALL_CANCEL,
    RUNNER_CALL_LOGS
} runner_call_kind;

typedef struct runner_call {
    runner *owner;
    runner_call_kind kind;
    char job_id[64];
    char backend[64];
    int abandoned;              /* the plugin set changed; ignore the reply */
    runner_logs_fn logs_done;
    void *logs_arg;
    struct runner_call *next;
} runner_call;

struct runner {
    daemon_state *daemon;
    struct event *tick;
    struct event *wake;
    runner_flight *flights;
    runner_call *calls;
    uint64_t keys_expired_ms;   /* last sweep of expired idempotency keys */
};

static const char *const runner_in_flight_states[] = {"SUBMITTED", "RUNNING", "CANCELLING",
                                                      NULL};
static const char *const runner_pending_states[] = {"PENDING", NULL};

static void runner_on_tick(evutil_socket_t fd, short what, void *arg);
static void runner_on_wake(evutil_socket_t fd, short what, void *arg);

/* ---- small helpers ----------------------------------------------------- */

static uint64_t runner_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

int runner_state_is_final(const char *state)
{
    return state && (strcmp(state, "SUCCEEDED") == 0 || strcmp(state, "FAILED") == 0 ||
                     strcmp(state, "CANCELLED") == 0);
}

static const char *runner_json_string(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

/* "job-" + 10 time characters + 16 random ones, Crockford base32: sortable, unguessable. */
static void runner_new_job_id(char out[32])
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    struct timespec now;
    unsigned char random[16];
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    if (RAND_bytes(random, sizeof(random)) != 1) {
        for (size_t i = 0; i < sizeof(random); i++)
            random[i] = (unsigned char)rand();
    }
    memcpy(out, "job-", 4);
    for (int i = 9; i >= 0; i--) {
        out[4 + i] = alphabet[ms & 31u];
        ms >>= 5;
    }
    for (int i = 0; i < 16; i++)
        out[14 + i] = alphabet[random[i] & 31u];
    out[30] = '\0';
}

static void runner_count(const char *name, const char *help, const char *labels)
{
    metrics_add(metrics_register(SP_METRIC_COUNTER, name, help, labels), 1);
}

static void runner_wake(runner *r)
{
    event_active(r->wake, EV_TIMEOUT, 0);
}

/* ---- flights and calls ------------------------------------------------- */

static runner_flight *runner_flight_get(runner *r, const char *id)
{
    for (runner_flight *f = r->flights; f; f = f->next)
        if (strcmp(f->id, id) == 0)
            return f;
    runner_flight *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->next = r->flights;
    r->flights = f;
    return f;
}

static void runner_flight_drop_unseen(runner *r)
{
    runner_flight **p = &r->flights;
    while (*p) {
        runner_flight *f = *p;
        if (!f->seen && !f->busy) {
            *p = f->next;
            free(f);
            continue;
        }
        f->seen = 0;
        p = &f->next;
    }
}

static runner_call *runner_call_new(runner *r, runner_call_kind kind, const char *job_id,
                                    const char *backend)
{
    runner_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    call->owner = r;
    call->kind = kind;
    snprintf(call->job_id, sizeof(call->job_id), "%s", job_id);
    snprintf(call->backend, sizeof(call->backend), "%s", backend);
    call->next = r->calls;
    r->calls = call;
    return call;
}

static void runner_call_free(runner_call *call)
{
    runner *r = call->owner;
    for (runner_call **p = &r->calls; *p; p = &(*p)->next) {
        if (*p == call) {
            *p = call->next;
            break;
        }
    }
    free(call);
}

/* Marks a job's flight idle again and schedules its next check. */
static void runner_flight_settle(runner *r, const char *job_id, int changed)
{
    runner_flight *f = runner_flight_get(r, job_id);
    if (f == NULL)
        return;
    uint64_t base = r->daemon->cfg->reconcile_interval_ms;
    f->busy = 0;
    if (changed || f->backoff_ms == 0)
        f->backoff_ms = base;
    else if (f->backoff_ms < base * RUNNER_MAX_BACKOFF_FACTOR)
        f->backoff_ms *= 2;
    f->next_check_ms = runner_now_ms() + f->backoff_ms;
}

/* ---- backends ---------------------------------------------------------- */

static const sp_backend_ops *runner_backend(runner *r, const char *name, void **provider)
{
    const plugin_provider *p = plugin_set_find(r->daemon->plugins, SP_KIND_BACKEND, name);
    if (p == NULL)
        return NULL;
    *provider = p->provider;
    return p->ops;
}

static void runner_backend_names(runner *r, char *out, size_t out_size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < plugin_set_provider_count(r->daemon->plugins); i++) {
        const plugin_provider *p = plugin_set_provider_at(r->daemon->plugins, i);
        if (p->kind != SP_KIND_BACKEND)
            continue;
        int n = snprintf(out + used, out_size - used, "%s%s", used ? ", " : "", p->name);
        if (n < 0 || (size_t)n >= out_size - used)
            break;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(out, out_size, "none");
}

static const char *runner_job_backend(runner *r, const json_t *job)
{
    const char *backend = runner_json_string(job, "backend");
    if (backend == NULL)
        backend = runner_json_string(json_object_get(job, "spec"), "backend");
    return backend ? backend : r->daemon->cfg->runner_default_backend;
}

/* ---- applying what backends observe ------------------------------------ */

static void runner_transition(runner *r, const char *id, const char *from, const char *to,
                              const char *reason, const store_job_update *update)
{
    char err[256];
    int rc = store_job_transition(r->daemon->state, id, from, to, reason, update, err,
                                  sizeof(err));
    if (rc < 0) {
        log_fields(SP_LOG_ERROR, "runner", "cannot store a job transition", "job", id, "to", to,
                   "error", err, NULL);
        return;
    }
    if (rc == 0 && (from == NULL || strcmp(from, to) != 0)) {
        char labels[64];
        snprintf(labels, sizeof(labels), "state=\"%s\"", to);
        runner_count("sparkplane_jobs_transitions_total", "Job state changes by new state.",
                     labels);
        log_fields(SP_LOG_INFO, "runner", "job state", "job", id, "from", from ? from : "",
                   "to", to, "reason", reason ? reason : "", NULL);
    }
}

/*
 * A failed attempt of a job allowed more (max_attempts): RETRYING with the
 * failure, then PENDING again as the next attempt, so admission control
 * applies to the retry like to any job.  Returns 1 when it retried.
 */
static int runner_retry(runner *r, const json_t *job, const char *current, const char *failure,
                        const store_job_update *update)
{
    json_int_t attempt = json_integer_value(json_object_get(job, "attempt"));
    json_int_t max_attempts = json_integer_value(json_object_get(job, "max_attempts"));
    const char *id = runner_json_string(job, "id");
    char reason[768];
    if (attempt < 1 || attempt >= max_attempts)
        return 0;
    snprintf(reason, sizeof(reason), "attempt %lld of %lld failed: %s", (long long)attempt,
             (long long)max_attempts, failure ? failure : "no reason given");
    runner_transition(r, id, current, "RETRYING", reason, update);
    store_job_update next = {.attempt = (int)attempt + 1};
    snprintf(reason, sizeof(reason), "retrying: attempt %lld of %lld", (long long)attempt + 1,
             (long long)max_attempts);
    runner_transition(r, id, "RETRYING", "PENDING", reason, &next);
    runner_count("sparkplane_jobs_retries_total", "Failed attempts that were retried.", NULL);
    return 1;
}

/*
 * Brings the stored job in line with what its backend reports
 * ({"state","spark_app_id"?,"reason"?}).  Returns 1 when something changed.
 */
static int runner_apply_observation(runner *r, const char *job_id, const json_t *observed)
{
    json_t *job = NULL;
    int changed = 0;
    if (store_job_get(r->daemon->state, job_id, &job) != 0)
        return 0;
    const char *current = runner_json_string(job, "state");
    const char *seen = runner_json_string(observed, "state");
    const char *app_id = runner_json_string(observed, "spark_app_id");
    const char *reason = runner_json_string(observed, "reason");
    const char *stored_app = runner_json_string(job, "spark_app_id");
    store_job_update update = {0};
    char text[512];

    if (runner_state_is_final(current) || seen == NULL)
        goto done;
    if (app_id && (stored_app == NULL || strcmp(stored_app, app_id) != 0))
        update.spark_app_id = app_id;

    if (strcmp(seen, "FAILED") == 0 && strcmp(current, "CANCELLING") != 0 &&
        runner_retry(r, job, current, reason, &update)) {
        changed = 1;
    } else if (runner_state_is_final(seen)) {
        if (reason == NULL) {
            snprintf(text, sizeof(text), "%s on backend %s",
                     strcmp(seen, "SUCCEEDED") == 0 ? "finished" : "ended", runner_job_backend(r, job));
            reason = text;
        }
        runner_transition(r, job_id, current, seen, reason, &update);
        changed = 1;
    } else if (strcmp(seen, "RUNNING") == 0 && strcmp(current, "SUBMITTED") == 0) {
        snprintf(text, sizeof(text), "running on backend %s", runner_job_backend(r, job));
        runner_transition(r, job_id, current, "RUNNING", text, &update);
        changed = 1;
    } else if (update.spark_app_id) {
        runner_transition(r, job_id, current, current, runner_json_string(job, "reason"),
                          &update);
        changed = 1;
    }
done:
    json_decref(job);
    return changed;
}

static void runner_on_backend_event(void *host_arg, const char *text)
{
    runner *r = host_arg;
    json_error_t jerr;
    json_t *event = json_loads(text ? text : "", 0, &jerr);
    const char *id = runner_json_string(event, "id");
    const char *kind = runner_json_string(event, "kind");
    if (kind != NULL && strcmp(kind, "cluster") == 0) {
        /* a backend has one event callback: cluster events go on to their owner */
        if (r->daemon->clusters)
            clusters_backend_event(r->daemon->clusters, text);
    } else if (id == NULL) {
        log_msg(SP_LOG_WARN, "runner", "ignoring a backend event without an id: %.200s",
                text ? text : "");
    } else if (runner_apply_observation(r, id, event)) {
        runner_flight_settle(r, id, 1);
        runner_wake(r); /* capacity may have freed up */
    }
    json_decref(event);
}

/* ---- submit ------------------------------------------------------------- */

static void runner_on_submit_reply(void *arg, int status, const char *json, const char *message)
{
    runner_call *call = arg;
    runner *r = call->owner;
    char reason[512];
    if (call->abandoned) {
        runner_call_free(call);
        return;
    }
    if (status == SP_OK) {
        json_t *observed = json_loads(json ? json : "{}", 0, NULL);
        runner_apply_observation(r, call->job_id, observed);
        json_decref(observed);
    } else if (status == SP_AGAIN || status == SP_UNAVAILABLE) {
        snprintf(reason, sizeof(reason), "waiting: backend %s: %s", call->backend,
                 message ? message : "not available");
        runner_transition(r, call->job_id, "SUBMITTED", "PENDING", reason, NULL);
    } else {
        snprintf(reason, sizeof(reason), "backend %s refused the job: %s", call->backend,
                 message ? message : "no reason given");
        runner_transition(r, call->job_id, "SUBMITTED", "FAILED", reason, NULL);
    }
    runner_flight_settle(r, call->job_id, 1);
    runner_call_free(call);
}

static json_t *runner_backend_document(runner *r, const json_t *job)
{
    const json_t *spec = json_object_get(job, "spec");
    const char *version = runner_json_string(spec, "spark_version");
    const config_spark_version *rt =
        version ? config_find_spark_version(r->daemon->cfg, version) : NULL;
    json_t *runtime = json_pack("{s:s?}", "spark_version", version);
    if (rt && rt->spark_home)
        json_object_set_new(runtime, "spark_home", json_string(rt->spark_home));
    if (rt && rt->image)
        json_object_set_new(runtime, "image", json_string(rt->image));
    return json_pack("{s:O, s:O, s:O, s:o}", "id", json_object_get(job, "id"), "attempt",
                     json_object_get(job, "attempt"), "spec", spec, "runtime", runtime);
}

/* Hands one PENDING job to its backend. */
static void runner_hand_off(runner *r, const json_t *job, const char *backend)
{
    const char *id = runner_json_string(job, "id");
    void *provider;
    const sp_backend_ops *ops = runner_backend(r, backend, &provider);
    char reason[256];
    store_job_update update = {.backend = backend};

    snprintf(reason, sizeof(reason), "handed to backend %s", backend);
    if (store_job_transition(r->daemon->state, id, "PENDING", "SUBMITTED", reason, &update,
                             reason, sizeof(reason)) != 0)
        return; /* cancelled or moved meanwhile */
    runner_count("sparkplane_jobs_transitions_total", "Job state changes by new state.",
                 "state=\"SUBMITTED\"");
    runner_flight *f = runner_flight_get(r, id);
    runner_call *call = runner_call_new(r, RUNNER_CALL_SUBMIT, id, backend);
    json_t *document = runner_backend_document(r, job);
    char *text = json_dumps(document, JSON_COMPACT);
    json_decref(document);
    if (f == NULL || call == NULL || text == NULL ||
        !SP_HAS_FIELD(ops, sp_backend_ops, job_submit) || ops->job_submit == NULL) {
        free(text);
        if (call)
            runner_call_free(call);
        runner_transition(r, id, "SUBMITTED", "FAILED", "backend cannot run batch jobs", NULL);
        return;
    }
    f->busy = 1;
    f->seen = 1;
    int status = ops->job_submit(provider, text, runner_on_submit_reply, call);
    free(text);
    if (status != SP_OK)
        runner_on_submit_reply(call, status, NULL, "the backend refused the call");
}

/* ---- admission ---------------------------------------------------------- */

/*
 * Load counts for one admission pass: read from the store once per backend
 * and team, then kept up to date as the pass hands jobs off.
 */
#define RUNNER_LOAD_SLOTS 64

typedef struct runner_load {
    char name[64];
    int is_team;
    int64_t starting;           /* backends: SUBMITTED */
    int64_t running;            /* SUBMITTED + RUNNING + CANCELLING */
} runner_load;

typedef struct runner_admission {
    runner_load loads[RUNNER_LOAD_SLOTS];
    size_t count;
} runner_admission;

static runner_load *runner_load_of(runner *r, runner_admission *pass, const char *name,
                                   int is_team)
{
    static const char *const starting[] = {"SUBMITTED", NULL};
    for (size_t i = 0; i < pass->count; i++)
        if (pass->loads[i].is_team == is_team && strcmp(pass->loads[i].name, name) == 0)
            return &pass->loads[i];
    if (pass->count == RUNNER_LOAD_SLOTS)
        return NULL; /* too many distinct names in one pass: the rest wait a tick */
    runner_load *load = &pass->loads[pass->count++];
    memset(load, 0, sizeof(*load));
    snprintf(load->name, sizeof(load->name), "%s", name);
    load->is_team = is_team;
    store *st = r->daemon->state;
    if (is_team) {
        store_jobs_count(st, runner_in_flight_states, name, NULL, &load->running);
    } else {
        store_jobs_count(st, starting, NULL, name, &load->starting);
        store_jobs_count(st, runner_in_flight_states, NULL, name, &load->running);
    }
    return load;
}

static int runner_admission_reason(runner *r, runner_admission *pass, const json_t *job,
                                   const char *backend, char *reason, size_t reason_size)
{
    const config *cfg = r->daemon->cfg;
    const char *team = runner_json_string(job, "team");
    void *provider;

    if (runner_backend(r, backend, &provider) == NULL) {
        char names[256];
        runner_backend_names(r, names, sizeof(names));
        snprintf(reason, reason_size, "waiting: backend '%s' is not loaded (loaded: %s)",
                 backend, names);
        return 1;
    }
    runner_load *b = runner_load_of(r, pass, backend, 0);
    runner_load *t = runner_load_of(r, pass, team ? team : "", 1);
    if (b == NULL || t == NULL) {
        snprintf(reason, reason_size, "waiting: admission is busy; next pass");
        return 1;
    }
    if ((uint64_t)b->starting >= cfg->max_starting_per_backend) {
        snprintf(reason, reason_size,
                 "waiting: %lld job(s) starting on backend %s "
                 "(runner.max_starting_per_backend=%llu)",
                 (long long)b->starting, backend,
                 (unsigned long long)cfg->max_starting_per_backend);
        return 1;
    }
    if ((uint64_t)b->running >= cfg->max_running_per_backend) {
        snprintf(reason, reason_size,
                 "waiting: %lld job(s) running on backend %s (runner.max_running_per_backend=%llu)",
                 (long long)b->running, backend,
                 (unsigned long long)cfg->max_running_per_backend);
        return 1;
    }
    if ((uint64_t)t->running >= cfg->max_running_per_team) {
        snprintf(reason, reason_size,
                 "waiting: team %s has %lld job(s) running (runner.max_running_per_team=%llu)",
                 team, (long long)t->running, (unsigned long long)cfg->max_running_per_team);
        return 1;
    }
    /* Admitted: count it now so the rest of the pass sees the new load. */
    b->starting++;
    b->running++;
    t->running++;
    return 0;
}

static void runner_admit(runner *r)
{
    json_t *pending = NULL;
    runner_admission pass = {.count = 0};
    char reason[512];
    if (store_jobs_in_states(r->daemon->state, runner_pending_states, RUNNER_ADMIT_BATCH,
                             &pending) != 0)
        return;
    size_t i;
    json_t *job;
    json_array_foreach(pending, i, job)
    {
        const char *id = runner_json_string(job, "id");
        const char *backend = runner_job_backend(r, job);
        if (runner_admission_reason(r, &pass, job, backend, reason, sizeof(reason))) {
            const char *old = runner_json_string(job, "reason");
            if (old == NULL || strcmp(old, reason) != 0)
                runner_transition(r, id, "PENDING", "PENDING", reason, NULL);
            continue;
        }
        runner_hand_off(r, job, backend);
    }
    json_decref(pending);
}

/* ---- status and cancel ------------------------------------------------- */

static void runner_on_status_reply(void *arg, int status, const char *json, const char *message)
{
    runner_call *call = arg;
    runner *r = call->owner;
    char reason[512];
    int changed = 0;
    if (call->abandoned) {
        runner_call_free(call);
        return;
    }
    if (status == SP_OK) {
        json_t *observed = json_loads(json ? json : "{}", 0, NULL);
        changed = runner_apply_observation(r, call->job_id, observed);
        json_decref(observed);
    } else if (status == SP_NOT_FOUND) {
        snprintf(reason, sizeof(reason),
                 "lost: backend %s no longer knows this job (for example after a restart "
                 "before it started)",
                 call->backend);
        runner_transition(r, call->job_id, NULL, "FAILED", reason, NULL);
        changed = 1;
    } else {
        log_fields(SP_LOG_WARN, "runner", "status check failed", "job", call->job_id, "backend",
                   call->backend, "error", message ? message : "", NULL);
    }
    runner_flight_settle(r, call->job_id, changed);
    if (changed)
        runner_wake(r);
    runner_call_free(call);
}

static void runner_on_cancel_reply(void *arg, int status, const char *json, const char *message)
{
    runner_call *call = arg;
    runner *r = call->owner;
    if (!call->abandoned) {
        if (status != SP_OK)
            log_fields(SP_LOG_WARN, "runner", "cancel failed; will retry", "job", call->job_id,
                       "backend", call->backend, "error", message ? message : "", NULL);
        else if (json != NULL) {
            json_t *observed = json_loads(json, 0, NULL);
            runner_apply_observation(r, call->job_id, observed);
            json_decref(observed);
        }
        runner_flight_settle(r, call->job_id, 1);
    }
    runner_call_free(call);
}

/* Starts one status (or, for CANCELLING jobs not yet told, cancel) call. */
static void runner_check(runner *r, const json_t *job, uint64_t now)
{
    const char *id = runner_json_string(job, "id");
    const char *state = runner_json_string(job, "state");
    const char *backend = runner_job_backend(r, job);
    runner_flight *f = runner_flight_get(r, id);
    void *provider;
    if (f == NULL)
        return;
    f->seen = 1;
    if (f->busy || f->next_check_ms > now)
        return;
    const sp_backend_ops *ops = runner_backend(r, backend, &provider);
    if (ops == NULL)
        return; /* backend not loaded: the job waits for it */

    int cancel = strcmp(state, "CANCELLING") == 0 &&
                 (f->cancel_sent_ms == 0 ||
                  now - f->cancel_sent_ms > 4 * r->daemon->cfg->reconcile_interval_ms);
    runner_call *call =
        runner_call_new(r, cancel ? RUNNER_CALL_CANCEL : RUNNER_CALL_STATUS, id, backend);
    if (call == NULL)
        return;
    f->busy = 1;
    int status;
    if (cancel && SP_HAS_FIELD(ops, sp_backend_ops, job_cancel) && ops->job_cancel) {
        f->cancel_sent_ms = now;
        status = ops->job_cancel(provider, id, runner_on_cancel_reply, call);
        if (status != SP_OK)
            runner_on_cancel_reply(call, status, NULL, "the backend refused the call");
    } else if (SP_HAS_FIELD(ops, sp_backend_ops, job_status) && ops->job_status) {
        status = ops->job_status(provider, id, runner_on_status_reply, call);
        if (status != SP_OK)
            runner_on_status_reply(call, status, NULL, "the backend refused the call");
    } else {
        runner_call_free(call);
        f->busy = 0;
    }
}

static void runner_reconcile(runner *r)
{
    json_t *jobs = NULL;
    uint64_t now = runner_now_ms();
    if (store_jobs_in_states(r->daemon->state, runner_in_flight_states, RUNNER_POLL_BATCH,
                             &jobs) != 0)
        return;
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job) runner_check(r, job, now);
    json_decref(jobs);
    runner_flight_drop_unseen(r);
}

#define RUNNER_KEY_SWEEP_MS 60000

/* Idempotency keys past runner.idempotency_ttl leave the store once a minute. */
static void runner_sweep_keys(runner *r)
{
    uint64_t now = runner_now_ms();
    if (r->keys_expired_ms != 0 && now - r->keys_expired_ms < RUNNER_KEY_SWEEP_MS)
        return;
    r->keys_expired_ms = now;
    int64_t removed = store_idempotency_expire(r->daemon->state);
    if (removed > 0)
        log_msg(SP_LOG_DEBUG, "runner", "%lld expired idempotency key(s) removed",
                (long long)removed);
}

static void runner_on_tick(evutil_socket_t fd, short what, void *arg)
{
    runner *r = arg;
    if (r->daemon->draining || r->daemon->state == NULL)
        return;
    runner_reconcile(r);
    runner_admit(r);
    runner_sweep_keys(r);
}

/*
 * A submission or a finished job: only admission can change, so the full
 * reconcile waits for the next tick.  Wake-ups in one loop turn coalesce.
 */
static void runner_on_wake(evutil_socket_t fd, short what, void *arg)
{
    runner *r = arg;
    if (r->daemon->draining || r->daemon->state == NULL)
        return;
    runner_admit(r);
}

/* ---- public API -------------------------------------------------------- */

runner *runner_new(daemon_state *daemon)
{
    runner *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->daemon = daemon;
    r->tick = event_new(daemon->base, -1, EV_PERSIST, runner_on_tick, r);
    r->wake = event_new(daemon->base, -1, 0, runner_on_wake, r);
    if (r->tick == NULL || r->wake == NULL) {
        runner_free(r);
        return NULL;
    }
    return r;
}

static void runner_attach_backends(runner *r)
{
    for (size_t i = 0; i < plugin_set_provider_count(r->daemon->plugins); i++) {
        const plugin_provider *p = plugin_set_provider_at(r->daemon->plugins, i);
        const sp_backend_ops *ops = p->ops;
        if (p->kind == SP_KIND_BACKEND && SP_HAS_FIELD(ops, sp_backend_ops, attach) &&
            ops->attach)
            ops->attach(p->provider, runner_on_backend_event, r);
    }
}

static void runner_schedule(runner *r)
{
    uint64_t ms = r->daemon->cfg->reconcile_interval_ms;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    event_add(r->tick, &tv);
}

void runner_start(runner *r)
{
    runner_attach_backends(r);
    runner_schedule(r);
    event_active(r->tick, EV_TIMEOUT, 0); /* re-attach in-flight jobs at once */
}

void runner_plugins_changed(runner *r)
{
    for (runner_call *call = r->calls; call; call = call->next) {
        if (call->abandoned)
            continue;
        call->abandoned = 1;
        if (call->kind == RUNNER_CALL_LOGS) {
            call->logs_done(call->logs_arg, SP_UNAVAILABLE, NULL, 0, 0, 0,
                            "the backend was reloaded; try again");
            continue;
        }
        runner_flight *f = runner_flight_get(r, call->job_id);
        if (f)
            f->busy = 0;
    }
    runner_attach_backends(r);
    runner_schedule(r); /* the interval may have changed */
    event_active(r->tick, EV_TIMEOUT, 0);
}

void runner_free(runner *r)
{
    if (r == NULL)
        return;
    if (r->tick)
        event_free(r->tick);
    if (r->wake)
        event_free(r->wake);
    while (r->flights) {
        runner_flight *next = r->flights->next;
        free(r->flights);
        r->flights = next;
    }
    while (r->calls) {
        runner_call *next = r->calls->next;
        free(r->calls);
        r->calls = next;
    }
    free(r);
}

static int runner_check_placement(runner *r, const json_t *spec, char *err, size_t err_size)
{
    const char *backend = runner_json_string(spec, "backend");
    const char *version = runner_json_string(spec, "spark_version");
    void *provider;
    char names[256];
    const config *cfg = r->daemon->cfg;

    if (backend == NULL)
        backend = cfg->runner_default_backend;
    if (runner_backend(r, backend, &provider) == NULL) {
        runner_backend_names(r, names, sizeof(names));
        snprintf(err, err_size, "backend: '%s' is not available (loaded backends: %s)", backend,
                 names);
        return SP_INVALID;
    }
    if (version == NULL || config_find_spark_version(cfg, version) == NULL) {
        size_t used = 0;
        names[0] = '\0';
        for (size_t i = 0; i < cfg->spark_version_count && used < sizeof(names); i++) {
            int n = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                             cfg->spark_versions[i].version);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        snprintf(err, err_size, "spark_version: '%s' is not configured (known versions: %s)",
                 version ? version : "", cfg->spark_version_count ? names : "none");
        return SP_INVALID;
    }
    return SP_OK;
}

int runner_submit(runner *r, const runner_submission *submission, json_t **job_out,
                  int *replayed, char *err, size_t err_size)
{
    const json_t *spec = submission->spec;
    char id[32];
    int status = runner_check_placement(r, spec, err, err_size);
    if (status != SP_OK)
        return status;

    json_t *attempts = json_object_get(spec, "max_attempts");
    runner_new_job_id(id);
    store_job_new job = {
        .id = id,
        .team = runner_json_string(spec, "team"),
        .name = runner_json_string(spec, "name"),
        .backend = NULL,
        .submitted_by = submission->principal ? submission->principal->subject : NULL,
        .max_attempts = json_is_integer(attempts) ? (int)json_integer_value(attempts) : 1,
        .spec = spec,
        .reason = "submitted",
    };
    store_idempotency idem = {
        .key = submission->idempotency_key,
        .request_hash = submission->request_hash,
        .ttl_seconds = r->daemon->cfg->idempotency_ttl_ms / 1000,
    };
    switch (store_job_create(r->daemon->state, &job, &idem, job_out, err, err_size)) {
    case STORE_CREATED:
        *replayed = 0;
        runner_count("sparkplane_jobs_submitted_total", "Jobs accepted by the API.", NULL);
        log_fields(SP_LOG_INFO, "runner", "job submitted", "job", id, "team", job.team, "by",
                   job.submitted_by ? job.submitted_by : "", NULL);
        runner_wake(r);
        return SP_OK;
    case STORE_REPLAYED:
        *replayed = 1;
        return SP_OK;
    case STORE_KEY_CONFLICT:
        snprintf(err, err_size,
                 "Idempotency-Key '%s' was already used with a different request",
                 idem.key ? idem.key : "");
        return SP_CONFLICT;
    default:
        return SP_ERROR;
    }
}

int runner_cancel(runner *r, const char *job_id, json_t **job_out, char *err, size_t err_size)
{
    json_t *job = NULL;
    if (store_job_get(r->daemon->state, job_id, &job) != 0) {
        snprintf(err, err_size, "no job %s", job_id);
        return SP_NOT_FOUND;
    }
    const char *state = runner_json_string(job, "state");
    int rc;
    if (runner_state_is_final(state)) {
        snprintf(err, err_size, "job %s already finished (%s)", job_id, state);
        json_decref(job);
        return SP_CONFLICT;
    }
    if (strcmp(state, "PENDING") == 0)
        rc = store_job_transition(r->daemon->state, job_id, "PENDING", "CANCELLED",
                                  "cancelled before it started", NULL, err, err_size);
    else if (strcmp(state, "CANCELLING") == 0)
        rc = 0;
    else
        rc = store_job_transition(r->daemon->state, job_id, state, "CANCELLING",
                                  "cancel requested", NULL, err, err_size);
    json_decref(job);
    if (rc == 1) /* it moved meanwhile: answer with what it is now */
        return runner_cancel(r, job_id, job_out, err, err_size);
    if (rc != 0)
        return SP_ERROR;
    runner_flight *f = runner_flight_get(r, job_id);
    if (f)
        f->next_check_ms = 0;
    runner_wake(r);
    return store_job_get(r->daemon->state, job_id, job_out) == 0 ? SP_OK : SP_ERROR;
}

static void runner_on_logs_reply(void *arg, int status, const char *json, const char *message)
{
    runner_call *call = arg;
    if (call->abandoned) {
        runner_call_free(call);
        return;
    }
    json_t *doc = status == SP_OK ? json_loads(json ? json : "{}", 0, NULL) : NULL;
    const char *data = runner_json_string(doc, "data");
    json_t *next = json_object_get(doc, "next_offset");
    if (status == SP_OK && (data == NULL || !json_is_integer(next)))
        call->logs_done(call->logs_arg, SP_ERROR, NULL, 0, 0, 0,
                        "the backend answered logs in an unexpected shape");
    else if (status == SP_OK)
        call->logs_done(call->logs_arg, SP_OK, data, strlen(data),
                        (uint64_t)json_integer_value(next),
                        json_is_true(json_object_get(doc, "complete")), NULL);
    else
        call->logs_done(call->logs_arg, status, NULL, 0, 0, 0,
                        message ? message : "the backend has no logs for this job");
    json_decref(doc);
    runner_call_free(call);
}

int runner_logs(runner *r, const char *job_id, uint64_t offset, uint64_t limit,
                runner_logs_fn done, void *arg)
{
    json_t *job = NULL;
    void *provider;
    char backend[64];
    if (store_job_get(r->daemon->state, job_id, &job) != 0)
        return SP_NOT_FOUND;
    const char *stored = runner_json_string(job, "backend");
    if (stored == NULL) {
        /* Never handed to a backend: an empty log, complete once the job is over. */
        int final = runner_state_is_final(runner_json_string(job, "state"));
        json_decref(job);
        done(arg, SP_OK, "", 0, offset, final, NULL);
        return SP_OK;
    }
    snprintf(backend, sizeof(backend), "%s", stored);
    json_decref(job);
    const sp_backend_ops *ops = runner_backend(r, backend, &provider);
    if (ops == NULL || !SP_HAS_FIELD(ops, sp_backend_ops, job_logs) || ops->job_logs == NULL)
        return SP_UNAVAILABLE;
    runner_call *call = runner_call_new(r, RUNNER_CALL_LOGS, job_id, backend);
    if (call == NULL)
        return SP_ERROR;
    call->logs_done = done;
    call->logs_arg = arg;
    int status = ops->job_logs(provider, job_id, offset, limit, runner_on_logs_reply, call);
    if (status != SP_OK)
        runner_call_free(call);
    return status;
}
