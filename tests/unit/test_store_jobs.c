/*
 * test_store_jobs.c - jobs, job events and idempotency keys in the store:
 * idempotent creates (replay, conflict, expired keys), conditional state
 * transitions and the event each one leaves, keyset pagination with every
 * filter, the runner's state queries, the query plans behind them, and a
 * 100k-row timing run (printed, never asserted).
 *
 * Every test works in its own mkdtemp directory; a second, raw sqlite3
 * connection counts rows, so the assertions do not trust the store alone.
 */
#include "unit_test.h"
#include "store.h"
#include "store_internal.h"
#include "store_jobs.h"

#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_dir.h"

/* A fresh directory and an open store in it; CU fatal when either fails. */
static store *open_fresh(test_dir *dir)
{
    char err[256] = "";
    store *s = NULL;
    if (test_dir_make_named(dir, "test_store_jobs") != 0)
        return NULL;
    if (store_open(dir->db, &s, err, sizeof err) != 0)
        fprintf(stderr, "store_open: %s\n", err);
    return s;
}

static void close_and_remove(store *s, test_dir *dir)
{
    store_close(s);
    test_dir_remove(dir);
}

/* Every first-column value of `sql`, in order, as a JSON array of strings. */
static json_t *raw_strings(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    json_t *out = json_array();
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK)
        while (sqlite3_step(stmt) == SQLITE_ROW)
            json_array_append_new(out, json_string((const char *)sqlite3_column_text(stmt, 0)));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static void job_id(char out[40], unsigned n)
{
    snprintf(out, 40, "job-%026u", n);
}

/* Creates job `n` of `team` named `name`; a NULL key is not idempotent. */
static store_create_result create_job(store *s, unsigned n, const char *team, const char *name,
                                      const char *key, const char *hash, json_t **job_out)
{
    char id[40], err[256] = "";
    job_id(id, n);
    json_t *spec = json_pack("{s:s, s:[s, i]}", "main", "local:///app.py", "args", name, (int)n);
    store_job_new job = {.id = id, .team = team, .name = name, .submitted_by = "alice",
                         .max_attempts = 3, .spec = spec, .reason = "submitted"};
    store_idempotency idem = {.key = key, .request_hash = hash, .ttl_seconds = 3600};
    store_create_result result = store_job_create(s, &job, &idem, job_out, err, sizeof err);
    json_decref(spec);
    return result;
}

static const char *text_of(const json_t *object, const char *key)
{
    return json_string_value(json_object_get(object, key));
}

static int timestamp_shaped(const char *text)
{
    return text != NULL && strlen(text) == 24 && text[10] == 'T' && text[19] == '.' &&
           text[23] == 'Z';
}

static void test_create_then_get(void)
{
    static const char *const keys[] = {
        "id", "name", "team", "state", "backend", "spark_app_id", "attempt", "max_attempts",
        "reason", "submitted_by", "created_at", "updated_at", "finished_at", "spec"};
    test_dir dir;
    store *s = open_fresh(&dir);
    json_t *job = NULL, *again = NULL, *events = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", NULL, NULL, &job), STORE_CREATED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    /* Exactly the keys of the API's job resource. */
    CU_ASSERT_EQUAL(json_object_size(job), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CU_ASSERT_PTR_NOT_NULL(json_object_get(job, keys[i]));
    CU_ASSERT_STRING_EQUAL(text_of(job, "id"), "job-00000000000000000000000001");
    CU_ASSERT_STRING_EQUAL(text_of(job, "state"), "PENDING");
    CU_ASSERT_STRING_EQUAL(text_of(job, "reason"), "submitted");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(job, "attempt")), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(job, "max_attempts")), 3);
    CU_ASSERT_TRUE(json_is_null(json_object_get(job, "backend")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(job, "finished_at")));
    CU_ASSERT_TRUE(timestamp_shaped(text_of(job, "created_at")));
    CU_ASSERT_STRING_EQUAL(text_of(job, "created_at"), text_of(job, "updated_at"));
    /* The spec comes back as an object, not as the text it is stored as. */
    CU_ASSERT_STRING_EQUAL(text_of(json_object_get(job, "spec"), "main"), "local:///app.py");
    CU_ASSERT_EQUAL(store_job_get(s, "job-00000000000000000000000001", &again), 0);
    CU_ASSERT_TRUE(json_equal(job, again));
    CU_ASSERT_EQUAL(store_job_events(s, "job-00000000000000000000000001", &events), 0);
    CU_ASSERT_EQUAL_FATAL(json_array_size(events), 1);
    json_t *created = json_array_get(events, 0);
    CU_ASSERT_TRUE(json_is_null(json_object_get(created, "from_state")));
    CU_ASSERT_STRING_EQUAL(text_of(created, "to_state"), "PENDING");
    CU_ASSERT_STRING_EQUAL(text_of(created, "reason"), "submitted");
    CU_ASSERT_STRING_EQUAL(text_of(created, "at"), text_of(job, "created_at"));
    json_decref(job);
    json_decref(again);
    json_decref(events);
    CU_ASSERT_EQUAL(store_job_get(s, "job-nope", &job), 1);
    CU_ASSERT_PTR_NULL(job);
    CU_ASSERT_EQUAL(store_job_events(s, "job-nope", &events), 1);
    CU_ASSERT_PTR_NULL(events);
    close_and_remove(s, &dir);
}

static void test_replay_and_conflict(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    json_t *first = NULL, *replay = NULL, *conflict = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", "k1", "hash-a", &first), STORE_CREATED);
    /* Same key, same request: the first job again, nothing new written. */
    CU_ASSERT_EQUAL(create_job(s, 2, "data", "etl", "k1", "hash-a", &replay), STORE_REPLAYED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(replay);
    CU_ASSERT_TRUE(json_equal(first, replay));
    /* Same key, another request: a conflict, nothing written. */
    CU_ASSERT_EQUAL(create_job(s, 3, "data", "etl", "k1", "hash-b", &conflict),
                    STORE_KEY_CONFLICT);
    CU_ASSERT_PTR_NULL(conflict);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM jobs"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM job_events"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM idempotency_keys"), 1);
    /* Keys belong to a team: another team may use the same one. */
    CU_ASSERT_EQUAL(create_job(s, 4, "web", "etl", "k1", "hash-b", NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM jobs"), 2);
    json_decref(first);
    json_decref(replay);
    close_and_remove(s, &dir);
}

static void test_expired_key_is_free_again(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    json_t *job = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", "k1", "hash-a", NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(create_job(s, 2, "data", "etl", "k2", "hash-a", NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(raw_exec(dir.db, "UPDATE idempotency_keys SET expires_at = "
                                     "'2001-01-01T00:00:00.000Z' WHERE key = 'k1'"),
                    0);
    /* Another request under the expired key is a new job, not a conflict. */
    CU_ASSERT_EQUAL(create_job(s, 3, "data", "etl", "k1", "hash-b", &job), STORE_CREATED);
    CU_ASSERT_STRING_EQUAL(text_of(job, "id"), "job-00000000000000000000000003");
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM idempotency_keys WHERE key = 'k1' "
                                    "AND resource_id = 'job-00000000000000000000000003' "
                                    "AND expires_at > '2026'"),
                    1);
    /* The sweeper deletes only what expired. */
    CU_ASSERT_EQUAL(raw_exec(dir.db, "UPDATE idempotency_keys SET expires_at = "
                                     "'2001-01-01T00:00:00.000Z' WHERE key = 'k2'"),
                    0);
    CU_ASSERT_EQUAL(store_idempotency_expire(s), 1);
    CU_ASSERT_EQUAL(store_idempotency_expire(s), 0);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM idempotency_keys"), 1);
    json_decref(job);
    close_and_remove(s, &dir);
}

static void test_create_rejects_bad_input(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    char err[256] = "";
    json_t *spec = json_object(), *array = json_array();
    store_job_new job = {.id = "job-x", .team = "data", .name = "etl", .max_attempts = 1,
                         .spec = spec};
    store_idempotency idem = {.key = "kx", .request_hash = "h", .ttl_seconds = 60};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", NULL, NULL, NULL), STORE_CREATED);
    /* A duplicate id fails whole: its idempotency key is not kept either. */
    job.id = "job-00000000000000000000000001";
    CU_ASSERT_EQUAL(store_job_create(s, &job, &idem, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "job-00000000000000000000000001 already exists"));
    job.id = "job-x";
    job.max_attempts = 0;
    CU_ASSERT_EQUAL(store_job_create(s, &job, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "max_attempts"));
    job.max_attempts = 1;
    job.spec = array;
    CU_ASSERT_EQUAL(store_job_create(s, &job, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "spec"));
    job.spec = spec;
    job.team = "";
    CU_ASSERT_EQUAL(store_job_create(s, &job, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "team"));
    job.team = "data";
    idem.request_hash = "";
    CU_ASSERT_EQUAL(store_job_create(s, &job, &idem, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "request_hash"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM jobs"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM job_events"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM idempotency_keys"), 0);
    json_decref(spec);
    json_decref(array);
    close_and_remove(s, &dir);
}

/* The (from_state -> to_state) of every event of job 1, e.g. "-PENDING,PENDING-SUBMITTED". */
static void event_trail(store *s, const char *id, char *out, size_t out_size)
{
    json_t *events = NULL, *event;
    size_t i, used = 0;
    out[0] = '\0';
    if (store_job_events(s, id, &events) != 0)
        return;
    json_array_foreach(events, i, event)
    {
        const char *from = text_of(event, "from_state");
        used += (size_t)snprintf(out + used, out_size - used, "%s%s-%s", i > 0 ? "," : "",
                                 from != NULL ? from : "", text_of(event, "to_state"));
    }
    json_decref(events);
}

static void test_transitions_write_one_event_each(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    char err[256] = "", trail[256];
    const char *id = "job-00000000000000000000000001";
    json_t *job = NULL;
    store_job_update placed = {.backend = "local"};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", NULL, NULL, NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(store_job_transition(s, id, "PENDING", "SUBMITTED", "placed", &placed, err,
                                         sizeof err),
                    0);
    /* A writer that still believes PENDING loses and writes nothing. */
    CU_ASSERT_EQUAL(
        store_job_transition(s, id, "PENDING", "CANCELLED", "stale", NULL, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is SUBMITTED, not PENDING"));
    /* Same state again: a new reason, no event. */
    CU_ASSERT_EQUAL(store_job_transition(s, id, "SUBMITTED", "SUBMITTED", "queue full", NULL, err,
                                         sizeof err),
                    0);
    CU_ASSERT_EQUAL(store_job_get(s, id, &job), 0);
    CU_ASSERT_STRING_EQUAL(text_of(job, "state"), "SUBMITTED");
    CU_ASSERT_STRING_EQUAL(text_of(job, "reason"), "queue full");
    CU_ASSERT_STRING_EQUAL(text_of(job, "backend"), "local");
    json_decref(job);
    store_job_update running = {.spark_app_id = "app-7"};
    CU_ASSERT_EQUAL(
        store_job_transition(s, id, NULL, "RUNNING", "started", &running, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_job_transition(s, id, NULL, "SUCCEEDED", "exit 0", NULL, err,
                                         sizeof err),
                    0);
    /* "Whatever it is" never moves a finished job. */
    CU_ASSERT_EQUAL(
        store_job_transition(s, id, NULL, "CANCELLING", "too late", NULL, err, sizeof err), 1);
    CU_ASSERT_EQUAL(store_job_get(s, id, &job), 0);
    CU_ASSERT_STRING_EQUAL(text_of(job, "state"), "SUCCEEDED");
    CU_ASSERT_STRING_EQUAL(text_of(job, "spark_app_id"), "app-7");
    CU_ASSERT_STRING_EQUAL(text_of(job, "backend"), "local");
    CU_ASSERT_TRUE(timestamp_shaped(text_of(job, "finished_at")));
    json_decref(job);
    event_trail(s, id, trail, sizeof trail);
    CU_ASSERT_STRING_EQUAL(trail, "-PENDING,PENDING-SUBMITTED,SUBMITTED-RUNNING,"
                                  "RUNNING-SUCCEEDED");
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM job_events"), 4);
    close_and_remove(s, &dir);
}

static void test_transition_errors_and_retry(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    char err[256] = "", trail[256];
    const char *id = "job-00000000000000000000000001";
    json_t *job = NULL;
    store_job_update retry = {.attempt = 2};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(create_job(s, 1, "data", "etl", NULL, NULL, NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(store_job_transition(s, "job-nope", NULL, "RUNNING", "x", NULL, err,
                                         sizeof err),
                    2);
    CU_ASSERT_EQUAL(store_job_transition(s, id, NULL, "DONE", "x", NULL, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "to_state 'DONE'"));
    CU_ASSERT_EQUAL(store_job_transition(s, id, "WAITING", "RUNNING", "x", NULL, err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "from_state 'WAITING'"));
    CU_ASSERT_EQUAL(store_job_transition(s, id, "PENDING", "FAILED", "oom", NULL, err, sizeof err),
                    0);
    /* A retry names the finished state it leaves; finished_at is cleared. */
    CU_ASSERT_EQUAL(
        store_job_transition(s, id, "FAILED", "RETRYING", "retry 2", &retry, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_job_get(s, id, &job), 0);
    CU_ASSERT_STRING_EQUAL(text_of(job, "state"), "RETRYING");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(job, "attempt")), 2);
    CU_ASSERT_TRUE(json_is_null(json_object_get(job, "finished_at")));
    json_decref(job);
    event_trail(s, id, trail, sizeof trail);
    CU_ASSERT_STRING_EQUAL(trail, "-PENDING,PENDING-FAILED,FAILED-RETRYING");
    close_and_remove(s, &dir);
}

/* Two connections that both saw PENDING: exactly one transition wins. */
static void test_two_writers_never_both_win(void)
{
    test_dir dir;
    store *first = open_fresh(&dir), *second = NULL;
    char err[256] = "";
    const char *id = "job-00000000000000000000000001";
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &second, err, sizeof err), 0);
    CU_ASSERT_EQUAL(create_job(first, 1, "data", "etl", NULL, NULL, NULL), STORE_CREATED);
    CU_ASSERT_EQUAL(
        store_job_transition(second, id, "PENDING", "CANCELLED", "user", NULL, err, sizeof err),
        0);
    CU_ASSERT_EQUAL(
        store_job_transition(first, id, "PENDING", "SUBMITTED", "placed", NULL, err, sizeof err),
        1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM job_events"), 2);
    store_close(second);
    close_and_remove(first, &dir);
}

/* Fills two teams with jobs whose created_at often ties, so ids must break ties. */
static void fill_for_listing(store *s, const char *db)
{
    static const char *const names[] = {"etl", "report", "train"};
    char id[40], err[256];
    for (unsigned n = 1; n <= 75; n++) {
        create_job(s, n, n % 4 == 0 ? "web" : "data", names[n % 3], NULL, NULL, NULL);
        job_id(id, n);
        if (n % 5 == 0)
            store_job_transition(s, id, NULL, "RUNNING", "r", NULL, err, sizeof err);
    }
    raw_exec(db, "UPDATE jobs SET created_at = '2030-01-01T00:00:00.000Z' WHERE rowid % 3 = 0;"
                 "UPDATE jobs SET created_at = '2029-01-01T00:00:00.000Z' WHERE rowid % 7 = 0");
}

/* Walks every page of `filter` and checks the ids against the raw query `expect_sql`. */
static void check_pages(store *s, const char *db, store_job_filter filter, const char *expect_sql)
{
    json_t *expected = raw_strings(db, expect_sql), *seen = json_array();
    char *token = NULL;
    int pages = 0;
    do {
        json_t *jobs = NULL, *job;
        char *next = NULL;
        size_t i;
        filter.page_token = token;
        CU_ASSERT_EQUAL_FATAL(store_job_list(s, &filter, &jobs, &next), 0);
        CU_ASSERT_TRUE(json_array_size(jobs) <= filter.limit);
        /* A next token only when rows follow: never an empty last page. */
        if (next != NULL)
            CU_ASSERT_EQUAL(json_array_size(jobs), filter.limit);
        json_array_foreach(jobs, i, job) json_array_append(seen, json_object_get(job, "id"));
        json_decref(jobs);
        free(token);
        token = next;
        pages++;
    } while (token != NULL && pages < 1000);
    CU_ASSERT_TRUE(json_array_size(expected) > 0);
    CU_ASSERT_TRUE(json_equal(seen, expected));
    if (!json_equal(seen, expected))
        fprintf(stderr, "\nlisted %zu ids, expected %zu for %s\n", json_array_size(seen),
                json_array_size(expected), expect_sql);
    json_decref(seen);
    json_decref(expected);
}

#define ORDER " ORDER BY created_at DESC, id DESC"

static void test_list_pages_cover_every_row_once(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fill_for_listing(s, dir.db);
    store_job_filter team = {.team = "data", .limit = 7};
    check_pages(s, dir.db, team, "SELECT id FROM jobs WHERE team = 'data'" ORDER);
    store_job_filter running = {.team = "data", .state = "RUNNING", .limit = 2};
    check_pages(s, dir.db, running,
                "SELECT id FROM jobs WHERE team = 'data' AND state = 'RUNNING'" ORDER);
    store_job_filter named = {.team = "web", .name = "etl", .limit = 3};
    check_pages(s, dir.db, named, "SELECT id FROM jobs WHERE team = 'web' AND name = 'etl'" ORDER);
    store_job_filter all_three = {.team = "data", .state = "PENDING", .name = "report",
                                  .limit = 4};
    check_pages(s, dir.db, all_three,
                "SELECT id FROM jobs WHERE team = 'data' AND state = 'PENDING' "
                "AND name = 'report'" ORDER);
    store_job_filter everyone = {.limit = 10};
    check_pages(s, dir.db, everyone, "SELECT id FROM jobs" ORDER);
    store_job_filter one_page = {.state = "RUNNING", .limit = 1000};
    check_pages(s, dir.db, one_page, "SELECT id FROM jobs WHERE state = 'RUNNING'" ORDER);
    store_job_filter single = {.team = "web", .limit = 1};
    check_pages(s, dir.db, single, "SELECT id FROM jobs WHERE team = 'web'" ORDER);
    close_and_remove(s, &dir);
}

static char *base64url(const char *plain)
{
    size_t len = strlen(plain);
    char *out = calloc(1, 4 * (len / 3 + 1) + 1);
    int used = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, (int)len);
    while (used > 0 && out[used - 1] == '=')
        out[--used] = '\0';
    for (char *c = out; *c != '\0'; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return out;
}

static void test_bad_page_token_and_limit(void)
{
    static const char *const bad_plain[] = {
        "no bar at all", "2030-01-01T00:00:00.000Z|", "2030-01-01 00:00:00.000Z|job-1",
        "2030-01-01T00:00:00Z|job-1", "|job-1"};
    test_dir dir;
    store *s = open_fresh(&dir);
    json_t *jobs = NULL;
    char *next = NULL;
    store_job_filter filter = {.team = "data", .limit = 2};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    fill_for_listing(s, dir.db);
    const char *bad_tokens[] = {"!!!!", "a", "QUJD=", "job-1|2030"};
    for (size_t i = 0; i < sizeof bad_tokens / sizeof bad_tokens[0]; i++) {
        filter.page_token = bad_tokens[i];
        CU_ASSERT_EQUAL(store_job_list(s, &filter, &jobs, &next), -2);
        CU_ASSERT_PTR_NULL(jobs);
        CU_ASSERT_PTR_NULL(next);
    }
    for (size_t i = 0; i < sizeof bad_plain / sizeof bad_plain[0]; i++) {
        char *token = base64url(bad_plain[i]);
        filter.page_token = token;
        CU_ASSERT_EQUAL(store_job_list(s, &filter, &jobs, &next), -2);
        free(token);
    }
    /* A well-formed token of ours (even for a row now gone) is a position, not an error. */
    char *token = base64url("2030-01-01T00:00:00.000Z|job-zzz");
    filter.page_token = token;
    CU_ASSERT_EQUAL(store_job_list(s, &filter, &jobs, &next), 0);
    CU_ASSERT_EQUAL(json_array_size(jobs), 2);
    json_decref(jobs);
    free(next);
    free(token);
    filter.page_token = NULL;
    filter.limit = 0;
    CU_ASSERT_EQUAL(store_job_list(s, &filter, &jobs, &next), -1);
    filter.limit = 1001;
    CU_ASSERT_EQUAL(store_job_list(s, &filter, &jobs, &next), -1);
    close_and_remove(s, &dir);
}

static void test_runner_queries(void)
{
    static const char *const live[] = {"PENDING", "RUNNING", "PENDING", NULL};
    static const char *const unfinished[] = {"PENDING", "SUBMITTED", "RUNNING", NULL};
    static const char *const done[] = {"SUCCEEDED", NULL};
    static const char *const bogus[] = {"PENDING", "DONE", NULL};
    test_dir dir;
    store *s = open_fresh(&dir);
    char err[256];
    json_t *jobs = NULL;
    int64_t count = -1;
    store_job_update local = {.backend = "local"}, sim = {.backend = "sim"};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (unsigned n = 1; n <= 5; n++)
        create_job(s, n, n == 5 ? "web" : "data", "etl", NULL, NULL, NULL);
    store_job_transition(s, "job-00000000000000000000000001", NULL, "RUNNING", "", &local, err,
                         sizeof err);
    store_job_transition(s, "job-00000000000000000000000002", NULL, "SUBMITTED", "", &sim, err,
                         sizeof err);
    store_job_transition(s, "job-00000000000000000000000003", NULL, "SUCCEEDED", "", NULL, err,
                         sizeof err);
    CU_ASSERT_EQUAL(store_jobs_in_states(s, live, 0, &jobs), 0);
    CU_ASSERT_EQUAL_FATAL(json_array_size(jobs), 3);
    /* Oldest first. */
    CU_ASSERT_STRING_EQUAL(text_of(json_array_get(jobs, 0), "id"),
                           "job-00000000000000000000000001");
    CU_ASSERT_STRING_EQUAL(text_of(json_array_get(jobs, 1), "id"),
                           "job-00000000000000000000000004");
    CU_ASSERT_STRING_EQUAL(text_of(json_array_get(jobs, 2), "id"),
                           "job-00000000000000000000000005");
    json_decref(jobs);
    CU_ASSERT_EQUAL(store_jobs_in_states(s, live, 2, &jobs), 0);
    CU_ASSERT_EQUAL(json_array_size(jobs), 2);
    json_decref(jobs);
    CU_ASSERT_EQUAL(store_jobs_in_states(s, bogus, 0, &jobs), -1);
    CU_ASSERT_PTR_NULL(jobs);
    CU_ASSERT_EQUAL(store_jobs_count(s, unfinished, NULL, NULL, &count), 0);
    CU_ASSERT_EQUAL(count, 4);
    CU_ASSERT_EQUAL(store_jobs_count(s, unfinished, "data", NULL, &count), 0);
    CU_ASSERT_EQUAL(count, 3);
    CU_ASSERT_EQUAL(store_jobs_count(s, unfinished, NULL, "sim", &count), 0);
    CU_ASSERT_EQUAL(count, 1);
    CU_ASSERT_EQUAL(store_jobs_count(s, done, "web", NULL, &count), 0);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_EQUAL(store_jobs_count(s, bogus, NULL, NULL, &count), -1);
    close_and_remove(s, &dir);
}

static void expect_plan(store *s, store_sql_id id, const char *index)
{
    char plan[1024] = "";
    CU_ASSERT_EQUAL_FATAL(store_jobs_query_plan(s, id, plan, sizeof plan), 0);
    int ok = strstr(plan, index) != NULL && strstr(plan, "SCAN jobs") == NULL &&
             strstr(plan, "TEMP B-TREE") == NULL;
    CU_ASSERT_TRUE(ok);
    if (!ok)
        fprintf(stderr, "\nplan of statement %d: %s\n", (int)id, plan);
}

static void test_query_plans_use_indexes(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    char plan[1024] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const int team = STORE_SQL_JOB_LIST + STORE_JOB_LIST_BY_TEAM;
    const int state = STORE_JOB_LIST_BY_STATE, after = STORE_JOB_LIST_AFTER;
    expect_plan(s, (store_sql_id)team, "USING INDEX jobs_team_created (team=?)");
    expect_plan(s, (store_sql_id)(team + after),
                "USING INDEX jobs_team_created (team=? AND (created_at,id)<(?,?))");
    expect_plan(s, (store_sql_id)(team + state),
                "USING INDEX jobs_team_state_created (team=? AND state=?)");
    expect_plan(s, (store_sql_id)(team + state + after),
                "USING INDEX jobs_team_state_created (team=? AND state=? AND "
                "(created_at,id)<(?,?))");
    /* GET by id is a primary key lookup. */
    expect_plan(s, STORE_SQL_JOB_GET, "SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (id=?)");
    CU_ASSERT_EQUAL(store_jobs_query_plan(s, STORE_SQL_JOBS_IN_STATES, plan, sizeof plan), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(plan, "USING INDEX jobs_state_updated (state=?)"));
    CU_ASSERT_EQUAL(store_jobs_query_plan(s, STORE_SQL_JOBS_COUNT, plan, sizeof plan), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(plan, "jobs_state_updated (state=?)"));
    close_and_remove(s, &dir);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

#define BIG_ROWS 100000u
#define BIG_TEAMS 10u

/* Walks the first `pages` pages of one team; returns how many rows it saw. */
static size_t walk_pages(store *s, const char *team, size_t limit, int pages)
{
    store_job_filter filter = {.team = team, .limit = limit};
    char *token = NULL;
    size_t rows = 0;
    for (int page = 0; page < pages; page++) {
        json_t *jobs = NULL;
        char *next = NULL;
        filter.page_token = token;
        if (store_job_list(s, &filter, &jobs, &next) != 0)
            break;
        rows += json_array_size(jobs);
        json_decref(jobs);
        free(token);
        token = next;
    }
    free(token);
    return rows;
}

static void test_hundred_thousand_rows(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    struct timespec start;
    char team[16], id[40];
    int64_t count = 0;
    static const char *const pending[] = {"PENDING", NULL};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned created = 0;
    for (unsigned n = 1; n <= BIG_ROWS; n++) {
        snprintf(team, sizeof team, "team-%u", n % BIG_TEAMS);
        /* Every tenth submit carries a key, as retried clients would. */
        char key[32];
        snprintf(key, sizeof key, "key-%u", n);
        created += create_job(s, n, team, n % 2 ? "etl" : "report", n % 10 ? NULL : key,
                              n % 10 ? NULL : "hash", NULL) == STORE_CREATED;
    }
    double insert_s = seconds_since(&start);
    CU_ASSERT_EQUAL(created, BIG_ROWS);
    CU_ASSERT_EQUAL(store_jobs_count(s, pending, NULL, NULL, &count), 0);
    CU_ASSERT_EQUAL(count, BIG_ROWS);
    clock_gettime(CLOCK_MONOTONIC, &start);
    size_t listed = walk_pages(s, "team-3", 100, 50);
    double list_s = seconds_since(&start);
    CU_ASSERT_EQUAL(listed, 5000);
    clock_gettime(CLOCK_MONOTONIC, &start);
    size_t found = 0;
    for (unsigned n = 1; n <= 10000; n++) {
        json_t *job = NULL;
        job_id(id, (n * 7919u) % BIG_ROWS + 1);
        found += store_job_get(s, id, &job) == 0;
        json_decref(job);
    }
    double get_s = seconds_since(&start);
    CU_ASSERT_EQUAL(found, 10000);
    printf("\n    %u creates: %.2f s (%.1f us each); 50 pages of 100: %.3f s (%.2f ms/page); "
           "10000 gets: %.3f s (%.1f us each)\n",
           BIG_ROWS, insert_s, insert_s * 1e6 / BIG_ROWS, list_s, list_s * 1e3 / 50, get_s,
           get_s * 1e6 / 10000);
    close_and_remove(s, &dir);
}

static const unit_test_case cases[] = {
    {"create then get: the API's keys, spec as an object, one creation event",
     test_create_then_get},
    {"same key and request replays; another request conflicts", test_replay_and_conflict},
    {"an expired key is free again; the sweeper deletes only expired keys",
     test_expired_key_is_free_again},
    {"bad input and duplicate ids write nothing", test_create_rejects_bad_input},
    {"each transition writes one event; stale ones write nothing",
     test_transitions_write_one_event_each},
    {"unknown jobs and states; a retry leaves a finished state", test_transition_errors_and_retry},
    {"two writers that saw the same state never both win", test_two_writers_never_both_win},
    {"pages return every row once, newest first, with every filter",
     test_list_pages_cover_every_row_once},
    {"a page token that is not ours is -2; limits are checked", test_bad_page_token_and_limit},
    {"jobs in states, oldest first, and counts", test_runner_queries},
    {"list and get use indexes (EXPLAIN QUERY PLAN)", test_query_plans_use_indexes},
    {"100k jobs: create, list and get timings", test_hundred_thousand_rows},
    {NULL, NULL}};

UNIT_TEST_MAIN("store_jobs", cases)
