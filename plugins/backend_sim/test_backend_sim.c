/*
 * test_backend_sim.c - the built backend_sim.so, loaded into the mock host.
 *
 * The mock host never fires timers on its own: each mock_host_fire_timers()
 * runs the simulator's one wake-up, which performs every action due by the
 * time that wake was armed for.  So a test walks a job through its life a
 * stage at a time: fire once for the submit reply (and RUNNING), once more
 * for the end, once more for the job to be forgotten.  A daemon restart is
 * a second mock host given a copy of the first one's key/value records.
 *
 * Clusters are simulated in memory: a start answers after one wake (its
 * delay is the armed timer's), stop/scale/endpoint after the next wake,
 * and a restart (a new plugin instance) knows no cluster at all.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH TEST_BUILDDIR "/plugins/backend_sim/.libs/backend_sim.so"

/* What one reply carried. */
typedef struct answer {
    int calls;
    int status;
    json_t *doc;
    char message[256];
} answer;

typedef struct fixture {
    mock_host *host;
    const sp_backend_ops *ops;
    void *provider;
    json_t *events; /* every on_event document, in order */
    char err[512];
} fixture;

static void answer_reply(void *arg, int status, const char *json, const char *message)
{
    answer *a = arg;
    a->calls++;
    a->status = status;
    json_decref(a->doc);
    a->doc = json != NULL ? json_loads(json, 0, NULL) : NULL;
    snprintf(a->message, sizeof(a->message), "%s", message != NULL ? message : "");
}

static void answer_clear(answer *a)
{
    json_decref(a->doc);
    memset(a, 0, sizeof(*a));
}

/* A string field of the reply, or "(none)": a missing field fails an assertion, not the run. */
static const char *answer_string(const answer *a, const char *key)
{
    const char *value = json_string_value(json_object_get(a->doc, key));
    return value != NULL ? value : "(none)";
}

static const char *text_or_none(const char *text)
{
    return text != NULL ? text : "(none)";
}

static void fixture_event(void *host_arg, const char *json)
{
    fixture *f = host_arg;
    json_array_append_new(f->events, json_loads(json, 0, NULL));
}

/* Loads the plugin with options given as "key", "value", ..., NULL. */
static void fixture_open(fixture *f, ...)
{
    va_list ap;
    const char *key;

    memset(f, 0, sizeof(*f));
    f->events = json_array();
    f->host = mock_host_new();
    CU_ASSERT_FATAL(f->host != NULL);
    CU_ASSERT_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)) == 0);
    va_start(ap, f);
    while ((key = va_arg(ap, const char *)) != NULL)
        mock_host_set_option(f->host, key, va_arg(ap, const char *));
    va_end(ap);
}

static int fixture_init(fixture *f)
{
    int rc = mock_host_init(f->host, f->err, sizeof(f->err));
    if (rc != SP_OK)
        return rc;
    f->ops = mock_host_provider(f->host, SP_KIND_BACKEND, "sim", &f->provider);
    CU_ASSERT_FATAL(f->ops != NULL);
    f->ops->attach(f->provider, fixture_event, f);
    return rc;
}

static void fixture_close(fixture *f)
{
    mock_host_free(f->host);
    json_decref(f->events);
}

static void fixture_submit(fixture *f, const char *id, answer *a)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"attempt\":1,\"spec\":{\"name\":\"n\",\"team\":\"t\"},"
             "\"runtime\":{\"spark_version\":\"4.0\"}}",
             id);
    CU_ASSERT_EQUAL(f->ops->job_submit(f->provider, body, answer_reply, a), SP_OK);
}

/* The state job_status answers after one more wake (replies are always asynchronous). */
static const char *fixture_state(fixture *f, const char *id, answer *a)
{
    answer_clear(a);
    CU_ASSERT_EQUAL(f->ops->job_status(f->provider, id, answer_reply, a), SP_OK);
    CU_ASSERT_EQUAL(a->calls, 0);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a->calls, 1);
    return a->status == SP_OK ? answer_string(a, "state") : "(error)";
}

static const char *fixture_event_state(const fixture *f, size_t index, const char *id)
{
    json_t *event = json_array_get(f->events, index);
    CU_ASSERT_STRING_EQUAL(text_or_none(json_string_value(json_object_get(event, "id"))), id);
    CU_ASSERT_STRING_EQUAL(text_or_none(json_string_value(json_object_get(event, "kind"))), "job");
    return text_or_none(json_string_value(json_object_get(event, "state")));
}

/* Wakes the simulator until it reported `state` for `id` (jobs a ms apart end a ms apart). */
static int fixture_wake_until(fixture *f, const char *id, const char *state)
{
    for (int wakes = 0; wakes < 100; wakes++) {
        for (size_t i = 0; i < json_array_size(f->events); i++) {
            json_t *event = json_array_get(f->events, i);
            const char *event_id = json_string_value(json_object_get(event, "id"));
            const char *event_state = json_string_value(json_object_get(event, "state"));
            if (strcmp(text_or_none(event_id), id) == 0 &&
                strcmp(text_or_none(event_state), state) == 0)
                return 1;
        }
        mock_host_fire_timers(f->host);
    }
    return 0;
}

/* Copies the simulator's records ("slots" and every "slot/<n>") into another host. */
static void fixture_copy_records(fixture *from, fixture *to)
{
    sp_plugin_context *src = mock_host_context(from->host), *dst = mock_host_context(to->host);
    char *value, key[32];
    size_t len;
    long count;

    if (src->host->kv_get(src, "slots", &value, &len) != SP_OK)
        return;
    count = strtol(value, NULL, 10);
    CU_ASSERT_EQUAL(dst->host->kv_put(dst, "slots", value, len, to->err, sizeof(to->err)), SP_OK);
    free(value);
    for (long i = 0; i < count; i++) {
        snprintf(key, sizeof(key), "slot/%ld", i);
        if (src->host->kv_get(src, key, &value, &len) != SP_OK)
            continue;
        dst->host->kv_put(dst, key, value, len, to->err, sizeof(to->err));
        free(value);
    }
}

static double metric(const fixture *f, const char *name, const char *labels)
{
    char full[128];
    snprintf(full, sizeof(full), "sparkplane_backend_sim_jobs_%s", name);
    return mock_host_metric_value(f->host, full, labels);
}

static double metric_cluster(const fixture *f, const char *name)
{
    char full[128];
    snprintf(full, sizeof(full), "sparkplane_backend_sim_%s", name);
    return mock_host_metric_value(f->host, full, NULL);
}

static int delay_between(const fixture *f, uint64_t low, uint64_t high)
{
    uint64_t delay = mock_host_timer_delay(f->host, 0);
    return delay > low && delay <= high;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_descriptor_says_simulator(void)
{
    fixture f;
    const sp_plugin_descriptor *d;

    fixture_open(&f, NULL);
    d = mock_host_descriptor(f.host);
    CU_ASSERT_EQUAL(d->kind, SP_KIND_BACKEND);
    CU_ASSERT_STRING_EQUAL(d->name, "backend_sim");
    CU_ASSERT_PTR_NOT_NULL(strstr(d->description, "SIMULATOR"));
    CU_ASSERT_STRING_EQUAL(d->options[0].key, "run_duration");
    CU_ASSERT_STRING_EQUAL(d->options[0].default_value, "2s");
    CU_ASSERT_STRING_EQUAL(d->options[2].key, "failure_rate");
    CU_ASSERT_STRING_EQUAL(d->options[2].default_value, "0");
    CU_ASSERT_STRING_EQUAL(d->options[4].key, "max_concurrent_jobs");
    CU_ASSERT_STRING_EQUAL(d->options[4].default_value, "10000");
    CU_ASSERT_STRING_EQUAL(d->options[6].key, "cluster_start_delay");
    CU_ASSERT_STRING_EQUAL(d->options[6].default_value, "0");
    CU_ASSERT_STRING_EQUAL(d->options[7].key, "cluster_port");
    CU_ASSERT_STRING_EQUAL(d->options[7].default_value, "9");
    CU_ASSERT_STRING_EQUAL(d->options[8].key, "cluster_failure_rate");
    CU_ASSERT_STRING_EQUAL(d->options[8].default_value, "0");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "SIMULATED backend"));
    fixture_close(&f);
}

static void test_job_runs_to_success(void)
{
    fixture f;
    answer submit = {0}, status = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-a", &submit);
    CU_ASSERT_EQUAL(submit.calls, 0); /* never inside the call */
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 1);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(submit.calls, 1);
    CU_ASSERT_EQUAL(submit.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&submit, "state"), "SUBMITTED");
    CU_ASSERT_PTR_NOT_NULL(strstr(answer_string(&submit, "spark_app_id"), "app-sim-"));
    CU_ASSERT_EQUAL(json_array_size(f.events), 1);
    CU_ASSERT_STRING_EQUAL(fixture_event_state(&f, 0, "job-a"), "RUNNING");
    /* The one remaining wake is the end, run_duration (2 s by default) away. */
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_TRUE(delay_between(&f, 1500, 2000));
    CU_ASSERT_STRING_EQUAL(fixture_state(&f, "job-a", &status), "RUNNING");
    CU_ASSERT_EQUAL(metric(&f, "running", NULL), 1);

    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(json_array_size(f.events), 2);
    CU_ASSERT_STRING_EQUAL(fixture_event_state(&f, 1, "job-a"), "SUCCEEDED");
    CU_ASSERT_STRING_EQUAL(fixture_state(&f, "job-a", &status), "SUCCEEDED");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(status.doc, "exit_code")), 0);
    CU_ASSERT_EQUAL(submit.calls, 1); /* exactly once */
    CU_ASSERT_EQUAL(metric(&f, "submitted_total", NULL), 1);
    CU_ASSERT_EQUAL(metric(&f, "finished_total", "state=\"SUCCEEDED\""), 1);
    CU_ASSERT_EQUAL(metric(&f, "running", NULL), 0);
    answer_clear(&submit);
    answer_clear(&status);
    fixture_close(&f);
}

static void test_submit_delay_and_duration_are_options(void)
{
    fixture f;
    answer submit = {0};

    fixture_open(&f, "submit_delay", "5s", "run_duration", "90s", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-slow", &submit);
    CU_ASSERT_TRUE(delay_between(&f, 4500, 5000));
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(submit.calls, 1);
    CU_ASSERT_TRUE(delay_between(&f, 94000, 95000));
    answer_clear(&submit);
    fixture_close(&f);
}

/* Submits job-0..job-<n-1>, runs them all to the end; the failed ones as a bit string. */
static void run_outcomes(const char *rate, const char *seed, char *out, size_t n)
{
    fixture f;
    answer status = {0};
    char id[32];
    answer *submits = calloc(n, sizeof(*submits));

    fixture_open(&f, "failure_rate", rate, "seed", seed, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "job-%zu", i);
        fixture_submit(&f, id, &submits[i]);
    }
    /* Ends differ by the ms between submits: wake until every job reported RUNNING and its end. */
    for (int wakes = 0; json_array_size(f.events) < 2 * n && wakes < 1000; wakes++)
        mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(json_array_size(f.events), 2 * n);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "job-%zu", i);
        out[i] = strcmp(fixture_state(&f, id, &status), "FAILED") == 0 ? '1' : '0';
        if (out[i] == '1') {
            CU_ASSERT_PTR_NOT_NULL(strstr(answer_string(&status, "reason"), "simulated failure"));
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(status.doc, "exit_code")), 1);
        }
        answer_clear(&submits[i]);
    }
    out[n] = '\0';
    answer_clear(&status);
    free(submits);
    fixture_close(&f);
}

static void test_failures_follow_rate_and_seed(void)
{
    char first[201], again[201], other[201], none[201], all[201];
    size_t failed = 0;

    run_outcomes("30", "7", first, 200);
    run_outcomes("30", "7", again, 200);
    run_outcomes("30", "8", other, 200);
    run_outcomes("0", "7", none, 200);
    run_outcomes("100", "7", all, 200);
    for (size_t i = 0; i < 200; i++)
        failed += first[i] == '1';
    CU_ASSERT_TRUE(failed >= 40 && failed <= 80); /* 30 % of 200, loosely */
    CU_ASSERT_STRING_EQUAL(first, again);         /* reproducible */
    CU_ASSERT_STRING_NOT_EQUAL(first, other);     /* the seed matters */
    CU_ASSERT_PTR_NULL(strchr(none, '1'));
    CU_ASSERT_PTR_NULL(strchr(all, '0'));
}

static void test_capacity_answers_again(void)
{
    fixture f;
    answer a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0};

    fixture_open(&f, "max_concurrent_jobs", "2", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-1", &a1);
    fixture_submit(&f, "job-2", &a2);
    fixture_submit(&f, "job-3", &a3);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(a1.status, SP_OK);
    CU_ASSERT_EQUAL(a2.status, SP_OK);
    CU_ASSERT_EQUAL(a3.calls, 1);
    CU_ASSERT_EQUAL(a3.status, SP_AGAIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(a3.message, "max_concurrent_jobs"));
    CU_ASSERT_EQUAL(metric(&f, "rejected_total", NULL), 1);
    CU_ASSERT_TRUE(fixture_wake_until(&f, "job-1", "SUCCEEDED"));
    CU_ASSERT_TRUE(fixture_wake_until(&f, "job-2", "SUCCEEDED"));
    fixture_submit(&f, "job-3", &a4);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(a4.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&a4, "state"), "SUBMITTED");
    answer_clear(&a1);
    answer_clear(&a2);
    answer_clear(&a3);
    answer_clear(&a4);
    fixture_close(&f);
}

static void test_same_id_is_not_run_twice(void)
{
    fixture f;
    answer a1 = {0}, a2 = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-dup", &a1);
    mock_host_fire_timers(f.host);
    fixture_submit(&f, "job-dup", &a2);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(a2.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&a2, "state"), "RUNNING");
    CU_ASSERT_EQUAL(metric(&f, "submitted_total", NULL), 1);
    answer_clear(&a1);
    answer_clear(&a2);
    fixture_close(&f);
}

static void test_cancel_ends_the_job(void)
{
    fixture f;
    answer submit = {0}, cancel = {0}, status = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-c", &submit);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-c", answer_reply, &cancel), SP_OK);
    CU_ASSERT_EQUAL(cancel.calls, 0);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(cancel.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&cancel, "state"), "CANCELLED");
    CU_ASSERT_STRING_EQUAL(fixture_event_state(&f, 1, "job-c"), "CANCELLED");
    /* The end it would have had changes nothing. */
    mock_host_fire_timers(f.host);
    CU_ASSERT_STRING_EQUAL(fixture_state(&f, "job-c", &status), "CANCELLED");
    CU_ASSERT_EQUAL(json_array_size(f.events), 2);
    /* Cancelling a finished job answers its final state. */
    answer_clear(&cancel);
    f.ops->job_cancel(f.provider, "job-c", answer_reply, &cancel);
    mock_host_fire_timers(f.host);
    CU_ASSERT_STRING_EQUAL(answer_string(&cancel, "state"), "CANCELLED");
    answer_clear(&cancel);
    f.ops->job_cancel(f.provider, "job-nope", answer_reply, &cancel);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(cancel.status, SP_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(cancel.message, "job-nope"));
    CU_ASSERT_EQUAL(metric(&f, "finished_total", "state=\"CANCELLED\""), 1);
    answer_clear(&submit);
    answer_clear(&cancel);
    answer_clear(&status);
    fixture_close(&f);
}

static void test_logs_grow_and_complete(void)
{
    fixture f;
    answer submit = {0}, logs = {0};
    char whole[2048];
    json_int_t next;

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-log", &submit);
    mock_host_fire_timers(f.host);
    f.ops->job_logs(f.provider, "job-log", 0, 1 << 20, answer_reply, &logs);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL_FATAL(logs.status, SP_OK);
    snprintf(whole, sizeof(whole), "%s", answer_string(&logs, "data"));
    CU_ASSERT_PTR_NOT_NULL(strstr(whole, "SIMULATED job job-log"));
    CU_ASSERT_PTR_NOT_NULL(strstr(whole, "running for 2000 ms"));
    CU_ASSERT_FALSE(json_is_true(json_object_get(logs.doc, "complete")));
    next = json_integer_value(json_object_get(logs.doc, "next_offset"));
    CU_ASSERT_EQUAL(next, (json_int_t)strlen(whole));

    mock_host_fire_timers(f.host); /* the job ends: the log only grows */
    answer_clear(&logs);
    f.ops->job_logs(f.provider, "job-log", (uint64_t)next, 10, answer_reply, &logs);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(strlen(answer_string(&logs, "data")), 10);
    CU_ASSERT_FALSE(json_is_true(json_object_get(logs.doc, "complete")));
    answer_clear(&logs);
    f.ops->job_logs(f.provider, "job-log", (uint64_t)next, 4096, answer_reply, &logs);
    mock_host_fire_timers(f.host);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer_string(&logs, "data"), "finished: SUCCEEDED"));
    CU_ASSERT_TRUE(json_is_true(json_object_get(logs.doc, "complete")));
    answer_clear(&logs);
    f.ops->job_logs(f.provider, "job-nope", 0, 10, answer_reply, &logs);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(logs.status, SP_NOT_FOUND);
    answer_clear(&submit);
    answer_clear(&logs);
    fixture_close(&f);
}

static void test_bad_input_is_invalid(void)
{
    static const struct {
        const char *body;
        const char *names;
    } cases[] = {{"not json", "not a JSON object"},
                 {"[1,2]", "not a JSON object"},
                 {"{\"attempt\":1}", "\"id\""},
                 {"{\"id\":42}", "\"id\""},
                 {"{\"id\":\"\"}", "\"id\""},
                 {"{\"id\":\"job-x\",\"spec\":[]}", "\"spec\""}};
    fixture f;
    answer a = {0}, status = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        answer_clear(&a);
        CU_ASSERT_EQUAL(f.ops->job_submit(f.provider, cases[i].body, answer_reply, &a), SP_OK);
        mock_host_fire_timers(f.host);
        CU_ASSERT_EQUAL(a.status, SP_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(a.message, cases[i].names));
    }
    CU_ASSERT_STRING_EQUAL(fixture_state(&f, "job-x", &status), "(error)");
    CU_ASSERT_EQUAL(status.status, SP_NOT_FOUND);
    CU_ASSERT_EQUAL(metric(&f, "submitted_total", NULL), 0);
    answer_clear(&a);
    answer_clear(&status);
    fixture_close(&f);
}

static void test_bad_options_fail_init(void)
{
    fixture f;

    fixture_open(&f, "failure_rate", "101", NULL);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "failure_rate"));
    fixture_close(&f);
    fixture_open(&f, "max_concurrent_jobs", "0", NULL);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "max_concurrent_jobs"));
    fixture_close(&f);
}

/* Sorted ids of a reconcile answer, comma-joined. */
static void reconcile_ids(fixture *f, char *out, size_t size)
{
    answer a = {0};
    json_t *jobs;
    size_t len = 0;

    CU_ASSERT_EQUAL(f->ops->reconcile(f->provider, answer_reply, &a), SP_OK);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a.status, SP_OK);
    jobs = json_object_get(a.doc, "jobs");
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(jobs); i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "," : "",
                                text_or_none(json_string_value(json_array_get(jobs, i))));
    answer_clear(&a);
}

static void test_restart_resumes_and_finishes(void)
{
    fixture before, after;
    answer s1 = {0}, s2 = {0}, s3 = {0}, status = {0};
    char ids[256];

    /* All three outlive the "downtime" (1 h); job-gone is cancelled before it. */
    fixture_open(&before, "run_duration", "1h", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&before), SP_OK);
    fixture_submit(&before, "job-short", &s1);
    fixture_submit(&before, "job-long", &s2);
    fixture_submit(&before, "job-gone", &s3);
    mock_host_fire_timers(before.host);
    CU_ASSERT_STRING_EQUAL(answer_string(&s2, "state"), "SUBMITTED");
    before.ops->job_cancel(before.provider, "job-gone", answer_reply, &status);
    mock_host_fire_timers(before.host);
    reconcile_ids(&before, ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "job-short,job-long,job-gone");

    fixture_open(&after, "run_duration", "1h", "retain_finished", "2h", NULL);
    fixture_copy_records(&before, &after);
    fixture_close(&before);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&after), SP_OK);
    reconcile_ids(&after, ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "job-short,job-long,job-gone");
    CU_ASSERT_STRING_EQUAL(fixture_state(&after, "job-long", &status), "RUNNING");
    CU_ASSERT_STRING_EQUAL(fixture_state(&after, "job-gone", &status), "CANCELLED");
    CU_ASSERT_EQUAL(metric(&after, "running", NULL), 2);
    /* Its end is still an hour away, then it finishes as usual. */
    CU_ASSERT_TRUE(delay_between(&after, 3500000, 3600000));
    CU_ASSERT_TRUE(fixture_wake_until(&after, "job-long", "SUCCEEDED"));
    CU_ASSERT_STRING_EQUAL(fixture_state(&after, "job-long", &status), "SUCCEEDED");
    answer_clear(&s1);
    answer_clear(&s2);
    answer_clear(&s3);
    answer_clear(&status);
    fixture_close(&after);
}

static void test_end_passed_during_downtime(void)
{
    fixture before, after;
    answer submit = {0}, status = {0};

    fixture_open(&before, "run_duration", "30ms", "failure_rate", "100", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&before), SP_OK);
    fixture_submit(&before, "job-short", &submit);
    mock_host_fire_timers(before.host); /* RUNNING, then the daemon "dies" */
    CU_ASSERT_STRING_EQUAL(fixture_state(&before, "job-short", &status), "RUNNING");
    usleep(60 * 1000);

    fixture_open(&after, "run_duration", "30ms", "failure_rate", "100", NULL);
    fixture_copy_records(&before, &after);
    fixture_close(&before);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&after), SP_OK);
    CU_ASSERT_STRING_EQUAL(fixture_state(&after, "job-short", &status), "FAILED");
    CU_ASSERT_TRUE(mock_host_logged(after.host, SP_LOG_INFO, "1 jobs resumed"));
    answer_clear(&submit);
    answer_clear(&status);
    fixture_close(&after);
}

static void test_finished_jobs_are_forgotten(void)
{
    fixture f, after;
    answer submit = {0}, status = {0};
    char ids[64];

    fixture_open(&f, "retain_finished", "1m", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_submit(&f, "job-old", &submit);
    mock_host_fire_timers(f.host); /* reply + RUNNING */
    mock_host_fire_timers(f.host); /* SUCCEEDED */
    CU_ASSERT_TRUE(delay_between(&f, 55000, 60000));
    mock_host_fire_timers(f.host); /* retain_finished has passed */
    CU_ASSERT_STRING_EQUAL(fixture_state(&f, "job-old", &status), "(error)");
    CU_ASSERT_EQUAL(status.status, SP_NOT_FOUND);
    reconcile_ids(&f, ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "");
    /* Its record is gone too, and its slot is used again. */
    fixture_open(&after, NULL);
    fixture_copy_records(&f, &after);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&after), SP_OK);
    reconcile_ids(&after, ids, sizeof(ids));
    CU_ASSERT_STRING_EQUAL(ids, "");
    fixture_close(&after);
    answer_clear(&submit);
    fixture_submit(&f, "job-new", &submit);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(submit.status, SP_OK);
    answer_clear(&submit);
    answer_clear(&status);
    fixture_close(&f);
}


/* ---- clusters ------------------------------------------------------------------------- */

static void fixture_cluster_start(fixture *f, const char *id, int executors, answer *a)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"team\":\"analytics\",\"environment\":\"dev\",\"region\":\"local\","
             "\"namespace\":\"sjns-analytics-dev-local\",\"resources\":{\"driver\":{\"cores\":1,"
             "\"memory\":\"1g\"},\"executors\":%d,\"executor\":{\"cores\":1,\"memory\":\"1g\"}},"
             "\"conf\":{},\"token\":\"t\",\"runtime\":{\"spark_version\":\"4.0\"}}",
             id, executors);
    CU_ASSERT_EQUAL(f->ops->cluster_start(f->provider, body, answer_reply, a), SP_OK);
}

/* Runs one cluster operation to its reply: the status it answered. */
static int fixture_cluster_stop(fixture *f, const char *id, answer *a)
{
    answer_clear(a);
    CU_ASSERT_EQUAL(f->ops->cluster_stop(f->provider, id, answer_reply, a), SP_OK);
    CU_ASSERT_EQUAL(a->calls, 0);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a->calls, 1);
    return a->status;
}

static int fixture_cluster_endpoint(fixture *f, const char *id, answer *a)
{
    answer_clear(a);
    CU_ASSERT_EQUAL(f->ops->cluster_endpoint(f->provider, id, answer_reply, a), SP_OK);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a->calls, 1);
    return a->status;
}

static int fixture_cluster_scale(fixture *f, const char *id, const char *body, answer *a)
{
    answer_clear(a);
    CU_ASSERT_EQUAL(f->ops->cluster_scale(f->provider, id, body, answer_reply, a), SP_OK);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a->calls, 1);
    return a->status;
}

static json_int_t answer_integer(const answer *a, const char *key)
{
    const json_t *value = json_object_get(a->doc, key);
    return json_is_integer(value) ? json_integer_value(value) : -1;
}

/* "id@endpoint/executors,..." of the clusters reconcile reports, sorted by id. */
static void reconcile_clusters(fixture *f, char *out, size_t size)
{
    answer a = {0};
    json_t *clusters;
    const char *items[16];
    size_t count, len = 0;

    CU_ASSERT_EQUAL(f->ops->reconcile(f->provider, answer_reply, &a), SP_OK);
    mock_host_fire_timers(f->host);
    CU_ASSERT_EQUAL(a.status, SP_OK);
    clusters = json_object_get(a.doc, "clusters");
    CU_ASSERT_TRUE(json_is_array(clusters));
    count = json_array_size(clusters) < 16 ? json_array_size(clusters) : 16;
    for (size_t i = 0; i < count; i++)
        items[i] =
            text_or_none(json_string_value(json_object_get(json_array_get(clusters, i), "id")));
    /* Sorted: the order of the list is not part of the contract. */
    for (size_t i = 1; i < count; i++)
        for (size_t j = i; j > 0 && strcmp(items[j - 1], items[j]) > 0; j--) {
            const char *swap = items[j];
            items[j] = items[j - 1];
            items[j - 1] = swap;
        }
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        json_t *item = NULL;
        for (size_t k = 0; k < json_array_size(clusters); k++)
            if (strcmp(items[i], text_or_none(json_string_value(
                                     json_object_get(json_array_get(clusters, k), "id")))) == 0)
                item = json_array_get(clusters, k);
        len += (size_t)snprintf(out + len, size - len, "%s%s@%s/%lld", i ? "," : "", items[i],
                                text_or_none(json_string_value(json_object_get(item, "endpoint"))),
                                (long long)json_integer_value(json_object_get(item, "executors")));
    }
    answer_clear(&a);
}

static void test_cluster_start_answers_an_endpoint(void)
{
    fixture f;
    answer start = {0}, a = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-analytics-dev-local-abc123", 2, &start);
    CU_ASSERT_EQUAL(start.calls, 0); /* never inside the call */
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 0);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(start.calls, 1);
    CU_ASSERT_EQUAL(start.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&start, "endpoint"), "127.0.0.1:9");
    CU_ASSERT_EQUAL(answer_integer(&start, "executors"), 2);
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 1);
    CU_ASSERT_EQUAL(fixture_cluster_endpoint(&f, "sc-analytics-dev-local-abc123", &a), SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&a, "endpoint"), "127.0.0.1:9");
    CU_ASSERT_STRING_EQUAL(answer_string(&a, "state"), "RUNNING");
    CU_ASSERT_EQUAL(answer_integer(&a, "executors"), 2);
    CU_ASSERT_EQUAL(json_array_size(f.events), 0); /* a simulated cluster never dies by itself */
    CU_ASSERT_EQUAL(start.calls, 1);               /* exactly once */
    answer_clear(&start);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_cluster_delay_and_port_are_options(void)
{
    fixture f;
    answer start = {0}, again = {0}, a = {0};

    fixture_open(&f, "cluster_start_delay", "5s", "cluster_port", "15099", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-slow", 1, &start);
    CU_ASSERT_TRUE(delay_between(&f, 4500, 5000));
    /* While it starts it is known but not up: scale and endpoint say so, reconcile omits it. */
    CU_ASSERT_EQUAL(fixture_cluster_endpoint(&f, "sc-slow", &a), SP_AGAIN);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.message, "still starting"));
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-slow", "{\"executors\":3}", &a), SP_AGAIN);
    CU_ASSERT_EQUAL(start.calls, 0);
    /* A second start of the same id is the same cluster, answered when it comes up: the one
     * wake left is still the first start's, and it answers both. */
    fixture_cluster_start(&f, "sc-slow", 1, &again);
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_TRUE(delay_between(&f, 4000, 5000));
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(start.calls, 1);
    CU_ASSERT_EQUAL(again.calls, 1);
    CU_ASSERT_EQUAL(start.status, SP_OK);
    CU_ASSERT_EQUAL(again.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(answer_string(&start, "endpoint"), "127.0.0.1:15099");
    CU_ASSERT_STRING_EQUAL(answer_string(&again, "endpoint"), "127.0.0.1:15099");
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 1);
    answer_clear(&start);
    answer_clear(&again);
    answer_clear(&a);
    fixture_close(&f);
}

/* Starts sc-0..sc-<n-1>; the ones whose start failed as a bit string. */
static void run_cluster_outcomes(const char *rate, const char *seed, char *out, size_t n)
{
    fixture f;
    char id[32];
    answer *starts = calloc(n, sizeof(*starts));

    fixture_open(&f, "cluster_failure_rate", rate, "seed", seed, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "sc-%zu", i);
        fixture_cluster_start(&f, id, 1, &starts[i]);
    }
    mock_host_fire_timers(f.host);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(starts[i].calls, 1);
        out[i] = starts[i].status == SP_OK ? '0' : '1';
        if (out[i] == '1') {
            CU_ASSERT_EQUAL(starts[i].status, SP_ERROR);
            CU_ASSERT_PTR_NOT_NULL(strstr(starts[i].message, "simulated start failure"));
        }
        answer_clear(&starts[i]);
    }
    out[n] = '\0';
    free(starts);
    fixture_close(&f);
}

static void test_cluster_failures_follow_rate_and_seed(void)
{
    char first[201], again[201], other[201], none[201], all[201];
    size_t failed = 0;

    run_cluster_outcomes("30", "7", first, 200);
    run_cluster_outcomes("30", "7", again, 200);
    run_cluster_outcomes("30", "8", other, 200);
    run_cluster_outcomes("0", "7", none, 200);
    run_cluster_outcomes("100", "7", all, 200);
    for (size_t i = 0; i < 200; i++)
        failed += first[i] == '1';
    CU_ASSERT_TRUE(failed >= 40 && failed <= 80);
    CU_ASSERT_STRING_EQUAL(first, again);
    CU_ASSERT_STRING_NOT_EQUAL(first, other);
    CU_ASSERT_PTR_NULL(strchr(none, '1'));
    CU_ASSERT_PTR_NULL(strchr(all, '0'));
}

static void test_failed_cluster_is_not_kept(void)
{
    fixture f;
    answer start = {0}, a = {0};
    char list[256];

    fixture_open(&f, "cluster_failure_rate", "100", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-doomed", 1, &start);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(start.status, SP_ERROR);
    CU_ASSERT_EQUAL(metric_cluster(&f, "cluster_starts_failed_total"), 1);
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 0);
    CU_ASSERT_EQUAL(fixture_cluster_stop(&f, "sc-doomed", &a), SP_NOT_FOUND);
    reconcile_clusters(&f, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "");
    answer_clear(&start);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_cluster_scale_changes_executors(void)
{
    fixture f;
    answer start = {0}, a = {0};

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-grow", 1, &start);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-grow",
                                          "{\"executors\":4,\"executor\":{\"cores\":1,"
                                          "\"memory\":\"1g\"}}",
                                          &a),
                    SP_OK);
    CU_ASSERT_EQUAL(answer_integer(&a, "executors"), 4);
    CU_ASSERT_EQUAL(fixture_cluster_endpoint(&f, "sc-grow", &a), SP_OK);
    CU_ASSERT_EQUAL(answer_integer(&a, "executors"), 4);
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-grow", "{\"executors\":0}", &a), SP_OK);
    CU_ASSERT_EQUAL(answer_integer(&a, "executors"), 0);
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-grow", "{\"executors\":\"4\"}", &a), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.message, "\"executors\""));
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-grow", "not json", &a), SP_INVALID);
    CU_ASSERT_EQUAL(fixture_cluster_scale(&f, "sc-nope", "{\"executors\":2}", &a), SP_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.message, "sc-nope"));
    CU_ASSERT_EQUAL(fixture_cluster_endpoint(&f, "sc-grow", &a), SP_OK);
    CU_ASSERT_EQUAL(answer_integer(&a, "executors"), 0); /* refused scales changed nothing */
    answer_clear(&start);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_cluster_stop_forgets_it(void)
{
    fixture f;
    answer start = {0}, a = {0};
    char list[256];

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-a", 1, &start);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(fixture_cluster_stop(&f, "sc-a", &a), SP_OK);
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 0);
    CU_ASSERT_EQUAL(fixture_cluster_stop(&f, "sc-a", &a), SP_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(a.message, "sc-a"));
    CU_ASSERT_EQUAL(fixture_cluster_endpoint(&f, "sc-a", &a), SP_NOT_FOUND);
    CU_ASSERT_EQUAL(fixture_cluster_stop(&f, "sc-never", &a), SP_NOT_FOUND);
    reconcile_clusters(&f, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "");
    /* The same id may start again afterwards: a new cluster. */
    answer_clear(&start);
    fixture_cluster_start(&f, "sc-a", 3, &start);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(start.status, SP_OK);
    CU_ASSERT_EQUAL(answer_integer(&start, "executors"), 3);
    answer_clear(&start);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_cluster_stopped_while_starting(void)
{
    fixture f;
    answer start = {0}, stop = {0};

    fixture_open(&f, "cluster_start_delay", "1m", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-quick", 1, &start);
    CU_ASSERT_EQUAL(f.ops->cluster_stop(f.provider, "sc-quick", answer_reply, &stop), SP_OK);
    /* The stop answers at once; the start answers when it was due, as stopped. */
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_TRUE(mock_host_timer_delay(f.host, 0) <= 100);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(stop.calls, 1);
    CU_ASSERT_EQUAL(stop.status, SP_OK);
    CU_ASSERT_EQUAL(start.calls, 0);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(start.calls, 1);
    CU_ASSERT_EQUAL(start.status, SP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(start.message, "stopped before it came up"));
    CU_ASSERT_EQUAL(metric_cluster(&f, "clusters_running"), 0);
    answer_clear(&start);
    answer_clear(&stop);
    fixture_close(&f);
}

static void test_reconcile_lists_clusters_up(void)
{
    fixture f, after;
    answer s1 = {0}, s2 = {0}, s3 = {0}, a = {0};
    char list[512];

    fixture_open(&f, "cluster_port", "15002", NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    fixture_cluster_start(&f, "sc-b", 2, &s1);
    fixture_cluster_start(&f, "sc-a", 1, &s2);
    fixture_cluster_start(&f, "sc-gone", 1, &s3);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(fixture_cluster_stop(&f, "sc-gone", &a), SP_OK);
    reconcile_clusters(&f, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "sc-a@127.0.0.1:15002/1,sc-b@127.0.0.1:15002/2");
    /* A restart is a new instance: clusters live in memory only, so it reports none. */
    fixture_open(&after, "cluster_port", "15002", NULL);
    fixture_copy_records(&f, &after);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&after), SP_OK);
    reconcile_clusters(&after, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "");
    CU_ASSERT_EQUAL(fixture_cluster_stop(&after, "sc-a", &a), SP_NOT_FOUND);
    fixture_close(&after);
    answer_clear(&s1);
    answer_clear(&s2);
    answer_clear(&s3);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_bad_cluster_input_is_invalid(void)
{
    static const struct {
        const char *body;
        const char *names;
    } cases[] = {
        {"not json", "not a JSON object"},
        {"[1]", "not a JSON object"},
        {"{\"resources\":{\"executors\":1}}", "\"id\""},
        {"{\"id\":\"Upper-Case\",\"resources\":{\"executors\":1}}", "\"id\""},
        {"{\"id\":\"\",\"resources\":{\"executors\":1}}", "\"id\""},
        {"{\"id\":\"sc-0123456789012345678901234567890123456789012345678901234567890\","
         "\"resources\":{\"executors\":1}}",
         "\"id\""},
        {"{\"id\":\"sc-x\"}", "\"resources\""},
        {"{\"id\":\"sc-x\",\"resources\":{\"executors\":-1}}", "\"resources.executors\""},
        {"{\"id\":\"sc-x\",\"resources\":{\"executors\":\"2\"}}", "\"resources.executors\""}};
    fixture f;
    answer a = {0};
    char list[64];

    fixture_open(&f, NULL);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        answer_clear(&a);
        CU_ASSERT_EQUAL(f.ops->cluster_start(f.provider, cases[i].body, answer_reply, &a), SP_OK);
        mock_host_fire_timers(f.host);
        CU_ASSERT_EQUAL(a.status, SP_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(a.message, cases[i].names));
    }
    reconcile_clusters(&f, list, sizeof(list));
    CU_ASSERT_STRING_EQUAL(list, "");
    CU_ASSERT_EQUAL(f.ops->cluster_start(f.provider, "{}", NULL, NULL), SP_INVALID);
    answer_clear(&a);
    fixture_close(&f);
}

static void test_bad_cluster_options_fail_init(void)
{
    fixture f;

    fixture_open(&f, "cluster_failure_rate", "-1", NULL);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "cluster_failure_rate"));
    fixture_close(&f);
    fixture_open(&f, "cluster_port", "0", NULL);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "cluster_port"));
    fixture_close(&f);
    fixture_open(&f, "cluster_port", "65536", NULL);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    fixture_close(&f);
}

static const unit_test_case cases[] = {
    {"the descriptor says it is a simulator", test_descriptor_says_simulator},
    {"a job is SUBMITTED, RUNNING, then SUCCEEDED", test_job_runs_to_success},
    {"submit_delay and run_duration set the timers", test_submit_delay_and_duration_are_options},
    {"failures follow failure_rate and the seed", test_failures_follow_rate_and_seed},
    {"max_concurrent_jobs answers AGAIN", test_capacity_answers_again},
    {"the same id is not run twice", test_same_id_is_not_run_twice},
    {"cancel ends the job", test_cancel_ends_the_job},
    {"logs grow and complete", test_logs_grow_and_complete},
    {"bad submit input is INVALID", test_bad_input_is_invalid},
    {"bad options fail init", test_bad_options_fail_init},
    {"a restart resumes jobs", test_restart_resumes_and_finishes},
    {"a job whose end passed during downtime is finished", test_end_passed_during_downtime},
    {"finished jobs are forgotten after retain_finished", test_finished_jobs_are_forgotten},
    {"a cluster start answers an endpoint", test_cluster_start_answers_an_endpoint},
    {"cluster_start_delay and cluster_port are options", test_cluster_delay_and_port_are_options},
    {"cluster start failures follow the rate and the seed",
     test_cluster_failures_follow_rate_and_seed},
    {"a cluster whose start failed is not kept", test_failed_cluster_is_not_kept},
    {"cluster_scale changes the executors", test_cluster_scale_changes_executors},
    {"cluster_stop forgets the cluster", test_cluster_stop_forgets_it},
    {"a cluster stopped while it starts", test_cluster_stopped_while_starting},
    {"reconcile lists the clusters up, a restart none", test_reconcile_lists_clusters_up},
    {"bad cluster input is INVALID", test_bad_cluster_input_is_invalid},
    {"bad cluster options fail init", test_bad_cluster_options_fail_init},
    {NULL, NULL}};

UNIT_TEST_MAIN("backend_sim", cases)
