/*
 * test_store_clusters.c - provisioned clusters in the store: creates with
 * their creation event, idempotent replays and key conflicts (also against
 * a job's key), the warm hand-over that deletes the warm row in the same
 * transaction, list filters (warm rows hidden unless asked for),
 * conditional updates and their events, notes, deletes, quota usage, the
 * reaper's expired list, and migration 4 on a version 3 database.
 *
 * Every test works in its own mkdtemp directory; a second, raw sqlite3
 * connection counts rows, so the assertions do not trust the store alone.
 */
#include "unit_test.h"
#include "store.h"
#include "store_clusters.h"
#include "store_jobs.h"

#include <jansson.h>
#include <sparkplane/plugin.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_dir.h"

static store *open_fresh(test_dir *dir)
{
    char err[256] = "";
    store *s = NULL;
    if (test_dir_make_named(dir, "test_store_clusters") != 0)
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

/* The first column of the first row as text into `out` ("" when none). */
static void raw_text(const char *path, const char *sql, char *out, size_t out_size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL)
        snprintf(out, out_size, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* A user cluster of `team` in dev/local, PROVISIONING, 4 cores, expiring at `expires_at`. */
static store_cluster_new user_cluster(const char *id, const char *team, const json_t *spec,
                                      const json_t *catalogs)
{
    store_cluster_new c = {.id = id,
                           .team = team,
                           .environment = "dev",
                           .region = "local",
                           .size = "small",
                           .state = "PROVISIONING",
                           .reason = "requested",
                           .backend = "local",
                           .backend_ref = id,
                           .endpoint = "sc://x-dev-local.example:15002",
                           .namespace_name = "sjns-x-dev-local",
                           .token = "secret-token",
                           .executors = 1,
                           .cores = 4,
                           .memory_mib = 4096,
                           .catalogs = catalogs,
                           .spec = spec,
                           .expires_at = "2999-01-01T00:00:00.000Z",
                           .created_by = "alice"};
    return c;
}

/* Creates a plain cluster of `team` in `environment`, in `state`. */
static store_create_result create_simple(store *s, const char *id, const char *team,
                                         const char *environment, const char *state)
{
    char err[256] = "";
    json_t *spec = json_pack("{s:s}", "team", team);
    store_cluster_new c = user_cluster(id, team, spec, NULL);
    c.environment = environment;
    c.state = state;
    store_create_result rc = store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err);
    if (rc != STORE_CREATED)
        fprintf(stderr, "\n    create %s: %s", id, err);
    json_decref(spec);
    return rc;
}

static store_create_result create_warm(store *s, const char *id, const char *state)
{
    char err[256] = "";
    json_t *spec = json_pack("{s:s}", "pool", "dev/local/small");
    store_cluster_new c = user_cluster(id, "", spec, NULL);
    c.pool = "dev/local/small";
    c.state = state;
    c.endpoint = NULL;
    c.created_by = NULL;
    store_create_result rc = store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err);
    if (rc != STORE_CREATED)
        fprintf(stderr, "\n    create warm %s: %s", id, err);
    json_decref(spec);
    return rc;
}

static const char *text_of(const json_t *row, const char *key)
{
    return json_string_value(json_object_get(row, key));
}

static void test_create_writes_row_and_event(void)
{
    test_dir dir;
    char err[256] = "", text[128];
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    json_t *spec = json_pack("{s:s, s:i}", "team", "data", "ttl_seconds", 3600);
    json_t *catalogs = json_pack("[s, s]", "pedregal", "sandbox");
    store_cluster_new c = user_cluster("sc-data-dev-local-a1", "data", spec, catalogs);
    json_t *row = NULL;
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, &row, err, sizeof err), STORE_CREATED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_STRING_EQUAL(text_of(row, "id"), "sc-data-dev-local-a1");
    CU_ASSERT_STRING_EQUAL(text_of(row, "state"), "PROVISIONING");
    CU_ASSERT_STRING_EQUAL(text_of(row, "namespace"), "sjns-x-dev-local");
    CU_ASSERT_STRING_EQUAL(text_of(row, "token"), "secret-token");
    CU_ASSERT_STRING_EQUAL(text_of(row, "created_by"), "alice");
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "pool")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "driver")));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "cores")), 4);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "memory_mib")), 4096);
    CU_ASSERT_TRUE(json_equal(json_object_get(row, "catalogs"), catalogs));
    CU_ASSERT_TRUE(json_equal(json_object_get(row, "spec"), spec));
    CU_ASSERT_STRING_EQUAL(text_of(row, "created_at"), text_of(row, "updated_at"));
    json_decref(row);
    /* The creation event, from nothing to PROVISIONING, with its reason. */
    json_t *events = NULL;
    CU_ASSERT_EQUAL_FATAL(store_cluster_events(s, "sc-data-dev-local-a1", &events), SP_OK);
    CU_ASSERT_EQUAL_FATAL(json_array_size(events), 1);
    json_t *first = json_array_get(events, 0);
    CU_ASSERT_TRUE(json_is_null(json_object_get(first, "from_state")));
    CU_ASSERT_STRING_EQUAL(text_of(first, "to_state"), "PROVISIONING");
    CU_ASSERT_STRING_EQUAL(text_of(first, "reason"), "requested");
    json_decref(events);
    /* The same id again is refused and leaves the one row. */
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already exists"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 1);
    raw_text(dir.db, "SELECT catalogs FROM clusters", text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "[\"pedregal\",\"sandbox\"]");
    json_decref(spec);
    json_decref(catalogs);
    close_and_remove(s, &dir);
}

static void test_create_refuses_bad_rows(void)
{
    test_dir dir;
    char err[256] = "";
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    json_t *spec = json_object();
    store_cluster_new c = user_cluster("sc-1", "data", spec, NULL);
    c.state = "BOOTING";
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'BOOTING' is not a cluster state"));
    c = user_cluster("sc-1", "", spec, NULL); /* no team and no pool */
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "team is empty"));
    c = user_cluster("sc-1", "data", spec, NULL);
    c.pool = "dev/local/small"; /* a pool with a team */
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "pool is set"));
    c = user_cluster("sc-1", "data", spec, NULL);
    c.expires_at = "tomorrow";
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expires_at"));
    c = user_cluster("sc-1", "data", spec, NULL);
    c.cores = -1;
    CU_ASSERT_EQUAL(store_cluster_create(s, &c, NULL, NULL, NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cores is -1"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters"), 0);
    json_decref(spec);
    close_and_remove(s, &dir);
}

static store_create_result create_keyed(store *s, const char *id, const char *key, const char *hash,
                                        json_t **row, char *err, size_t err_size)
{
    json_t *spec = json_pack("{s:s}", "hash", hash);
    store_cluster_new c = user_cluster(id, "data", spec, NULL);
    store_idempotency idem = {.key = key, .request_hash = hash, .ttl_seconds = 3600};
    store_create_result rc = store_cluster_create(s, &c, &idem, NULL, row, err, err_size);
    json_decref(spec);
    return rc;
}

static void test_idempotent_replay_and_conflicts(void)
{
    test_dir dir;
    char err[256] = "", text[64];
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    json_t *first = NULL, *again = NULL;
    CU_ASSERT_EQUAL(create_keyed(s, "sc-1", "k-1", "h-1", &first, err, sizeof err), STORE_CREATED);
    /* Same key, same request, a fresh id: the first cluster comes back, nothing is added. */
    CU_ASSERT_EQUAL(create_keyed(s, "sc-2", "k-1", "h-1", &again, err, sizeof err), STORE_REPLAYED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    CU_ASSERT_STRING_EQUAL(text_of(again, "id"), "sc-1");
    CU_ASSERT_STRING_EQUAL(text_of(again, "created_at"), text_of(first, "created_at"));
    raw_text(dir.db, "SELECT resource_kind FROM idempotency_keys WHERE key = 'k-1'", text,
             sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "cluster");
    /* Same key, another request: a conflict that writes nothing. */
    CU_ASSERT_EQUAL(create_keyed(s, "sc-3", "k-1", "h-2", NULL, err, sizeof err),
                    STORE_KEY_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already used for another request"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 1);
    /* A key a job of the team holds is another request too, whatever the hash. */
    json_t *job_spec = json_pack("{s:s}", "main", "local:///app.py");
    store_job_new job = {.id = "job-1",
                         .team = "data",
                         .name = "etl",
                         .max_attempts = 1,
                         .spec = job_spec,
                         .reason = "submitted"};
    store_idempotency job_key = {.key = "k-job", .request_hash = "h-1", .ttl_seconds = 3600};
    CU_ASSERT_EQUAL_FATAL(store_job_create(s, &job, &job_key, NULL, err, sizeof err),
                          STORE_CREATED);
    CU_ASSERT_EQUAL(create_keyed(s, "sc-4", "k-job", "h-1", NULL, err, sizeof err),
                    STORE_KEY_CONFLICT);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters WHERE id = 'sc-4'"), 0);
    /* An expired key is as good as absent: a new request may use it. */
    CU_ASSERT_EQUAL(raw_exec(dir.db, "UPDATE idempotency_keys SET expires_at = "
                                     "'2000-01-01T00:00:00.000Z' WHERE key = 'k-1'"),
                    0);
    CU_ASSERT_EQUAL(create_keyed(s, "sc-5", "k-1", "h-2", NULL, err, sizeof err), STORE_CREATED);
    raw_text(dir.db, "SELECT resource_id FROM idempotency_keys WHERE key = 'k-1'", text,
             sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "sc-5");
    /* The same request again after its cluster was deleted creates a new one. */
    CU_ASSERT_EQUAL(store_cluster_delete(s, "sc-5"), SP_OK);
    CU_ASSERT_EQUAL(create_keyed(s, "sc-6", "k-1", "h-2", NULL, err, sizeof err), STORE_CREATED);
    raw_text(dir.db, "SELECT resource_id FROM idempotency_keys WHERE key = 'k-1'", text,
             sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "sc-6");
    json_decref(job_spec);
    json_decref(first);
    json_decref(again);
    close_and_remove(s, &dir);
}

static store_create_result hand_over(store *s, const char *id, const char *warm_id, json_t **row,
                                     char *err, size_t err_size)
{
    json_t *spec = json_pack("{s:s}", "team", "data");
    store_cluster_new c = user_cluster(id, "data", spec, NULL);
    c.state = "RUNNING";
    c.reason = "handed over from the dev/local/small pool";
    c.backend_ref = warm_id;
    c.driver = "127.0.0.1:15100";
    store_idempotency idem = {.key = "k-warm", .request_hash = "h", .ttl_seconds = 60};
    store_create_result rc = store_cluster_create(s, &c, &idem, warm_id, row, err, err_size);
    json_decref(spec);
    return rc;
}

static void test_warm_hand_over(void)
{
    test_dir dir;
    char err[256] = "";
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(create_warm(s, "warm-1", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_warm(s, "warm-2", "PROVISIONING"), STORE_CREATED);
    json_t *row = NULL;
    CU_ASSERT_EQUAL(hand_over(s, "sc-data-1", "warm-1", &row, err, sizeof err), STORE_CREATED);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_STRING_EQUAL(text_of(row, "state"), "RUNNING");
    CU_ASSERT_STRING_EQUAL(text_of(row, "backend_ref"), "warm-1");
    CU_ASSERT_STRING_EQUAL(text_of(row, "driver"), "127.0.0.1:15100");
    json_decref(row);
    /* The warm row and its events went in the same transaction. */
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters WHERE id = 'warm-1'"), 0);
    CU_ASSERT_EQUAL(
        raw_int(dir.db, "SELECT count(*) FROM cluster_events WHERE cluster_id = 'warm-1'"), 0);
    /* Taken already: the second hand-over fails whole (no row, no key, no event). */
    CU_ASSERT_EQUAL(raw_exec(dir.db, "DELETE FROM idempotency_keys"), 0);
    CU_ASSERT_EQUAL(hand_over(s, "sc-data-2", "warm-1", NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_STRING_EQUAL(err, "warm cluster taken");
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters WHERE id = 'sc-data-2'"), 0);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM idempotency_keys"), 0);
    CU_ASSERT_EQUAL(
        raw_int(dir.db, "SELECT count(*) FROM cluster_events WHERE cluster_id = 'sc-data-2'"), 0);
    /* A warm cluster still starting cannot be handed over either, and stays. */
    CU_ASSERT_EQUAL(hand_over(s, "sc-data-3", "warm-2", NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_STRING_EQUAL(err, "warm cluster taken");
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters WHERE id = 'warm-2'"), 1);
    /* Nor a user's cluster that is RUNNING: only pool rows are warm. */
    CU_ASSERT_EQUAL(hand_over(s, "sc-data-4", "sc-data-1", NULL, err, sizeof err), STORE_FAILED);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM clusters WHERE id = 'sc-data-1'"), 1);
    close_and_remove(s, &dir);
}

static void test_get(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    json_t *row = NULL;
    CU_ASSERT_EQUAL(store_cluster_get(s, "sc-none", &row), SP_NOT_FOUND);
    CU_ASSERT_PTR_NULL(row);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-1", "data", "dev", "PROVISIONING"), STORE_CREATED);
    CU_ASSERT_EQUAL(store_cluster_get(s, "sc-1", &row), SP_OK);
    CU_ASSERT_STRING_EQUAL(text_of(row, "team"), "data");
    json_decref(row);
    close_and_remove(s, &dir);
}

/* The ids of a list, joined by ",", into `out`. */
static void list_ids(store *s, const store_cluster_filter *filter, char *out, size_t out_size)
{
    json_t *rows = NULL, *row;
    size_t i, used = 0;
    out[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(store_cluster_list(s, filter, &rows), SP_OK);
    json_array_foreach(rows, i, row) {
        const char *id = text_of(row, "id");
        used += (size_t)snprintf(out + used, out_size - used, "%s%s", i ? "," : "", id);
    }
    json_decref(rows);
}

static void test_list_filters(void)
{
    test_dir dir;
    char ids[256];
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-1", "data", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-2", "data", "prod", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-3", "ml", "dev", "PROVISIONING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-4", "data", "dev", "TERMINATED"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_warm(s, "warm-1", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL(raw_exec(dir.db, "UPDATE clusters SET region = 'eu' WHERE id = 'sc-2'"), 0);
    store_cluster_filter all = {0};
    list_ids(s, &all, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-2,sc-3,sc-4"); /* oldest first, no warm row */
    store_cluster_filter with_warm = {.include_warm = 1};
    list_ids(s, &with_warm, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-2,sc-3,sc-4,warm-1");
    store_cluster_filter pool = {.team = "", .environment = "dev", .include_warm = 1};
    list_ids(s, &pool, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "warm-1");
    store_cluster_filter team = {.team = "data"};
    list_ids(s, &team, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-2,sc-4");
    store_cluster_filter live = {.team = "data", .live_only = 1};
    list_ids(s, &live, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-2");
    store_cluster_filter env = {.environment = "dev"};
    list_ids(s, &env, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-3,sc-4");
    store_cluster_filter region = {.team = "data", .region = "eu"};
    list_ids(s, &region, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-2");
    store_cluster_filter state = {.state = "PROVISIONING"};
    list_ids(s, &state, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-3");
    store_cluster_filter limited = {.team = "data", .limit = 2};
    list_ids(s, &limited, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "sc-1,sc-2");
    store_cluster_filter nobody = {.team = "nobody"};
    list_ids(s, &nobody, ids, sizeof ids);
    CU_ASSERT_STRING_EQUAL(ids, "");
    close_and_remove(s, &dir);
}

static void test_update_conditional_with_fields_and_events(void)
{
    test_dir dir;
    char err[256] = "", text[64];
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-1", "data", "dev", "PROVISIONING"), STORE_CREATED);
    /* The caller saw another state: nothing is written. */
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", "RUNNING", "SCALING", "scale", NULL, NULL, err, sizeof err),
        SP_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is PROVISIONING, not RUNNING"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 1);
    /* PROVISIONING -> RUNNING with the driver known: row, reason and one event. */
    json_t *fields =
        json_pack("{s:s, s:i, s:i}", "driver", "127.0.0.1:15002", "executors", 2, "cores", 9);
    json_t *row = NULL;
    CU_ASSERT_EQUAL(store_cluster_update(s, "sc-1", "PROVISIONING", "RUNNING",
                                         "answered a Spark Connect call", fields, &row, err,
                                         sizeof err),
                    SP_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    CU_ASSERT_STRING_EQUAL(text_of(row, "state"), "RUNNING");
    CU_ASSERT_STRING_EQUAL(text_of(row, "driver"), "127.0.0.1:15002");
    CU_ASSERT_STRING_EQUAL(text_of(row, "reason"), "answered a Spark Connect call");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "executors")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "cores")), 9);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "memory_mib")), 4096); /* kept */
    CU_ASSERT_STRING_EQUAL(text_of(row, "size"), "small");
    json_decref(row);
    json_decref(fields);
    json_t *events = NULL;
    CU_ASSERT_EQUAL_FATAL(store_cluster_events(s, "sc-1", &events), SP_OK);
    CU_ASSERT_EQUAL_FATAL(json_array_size(events), 2);
    json_t *last = json_array_get(events, 1);
    CU_ASSERT_STRING_EQUAL(text_of(last, "from_state"), "PROVISIONING");
    CU_ASSERT_STRING_EQUAL(text_of(last, "to_state"), "RUNNING");
    CU_ASSERT_STRING_EQUAL(text_of(last, "reason"), "answered a Spark Connect call");
    json_decref(events);
    /* Fields alone, any state: expires_at null clears, spec is replaced; no event. */
    fields =
        json_pack("{s:n, s:{s:s}, s:s}", "expires_at", "spec", "size", "large", "size", "large");
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", NULL, NULL, NULL, fields, &row, err, sizeof err), SP_OK);
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "expires_at")));
    CU_ASSERT_STRING_EQUAL(text_of(json_object_get(row, "spec"), "size"), "large");
    CU_ASSERT_STRING_EQUAL(text_of(row, "size"), "large");
    CU_ASSERT_STRING_EQUAL(text_of(row, "state"), "RUNNING");
    json_decref(row);
    json_decref(fields);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 2);
    /* Bad fields are refused by name and change nothing. */
    fields = json_pack("{s:s}", "colour", "blue");
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", NULL, "FAILED", "x", fields, NULL, err, sizeof err),
        SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "colour"));
    json_decref(fields);
    fields = json_pack("{s:i}", "executors", -3);
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", NULL, NULL, NULL, fields, NULL, err, sizeof err),
        SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "executors: expected an integer >= 0"));
    json_decref(fields);
    fields = json_pack("{s:s}", "expires_at", "soon");
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", NULL, NULL, NULL, fields, NULL, err, sizeof err),
        SP_INVALID);
    json_decref(fields);
    raw_text(dir.db, "SELECT state FROM clusters WHERE id = 'sc-1'", text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "RUNNING");
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-1", NULL, "BROKEN", NULL, NULL, NULL, err, sizeof err),
        SP_INVALID);
    CU_ASSERT_EQUAL(
        store_cluster_update(s, "sc-none", NULL, "FAILED", "x", NULL, NULL, err, sizeof err),
        SP_NOT_FOUND);
    /* The same state again records no event. */
    CU_ASSERT_EQUAL(store_cluster_update(s, "sc-1", "RUNNING", "RUNNING", "still up", NULL, NULL,
                                         err, sizeof err),
                    SP_OK);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 2);
    close_and_remove(s, &dir);
}

static void test_note_and_delete(void)
{
    test_dir dir;
    char err[256] = "", text[64];
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-1", "data", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL(store_cluster_note(s, "sc-1", "ttl extended to 12h", err, sizeof err), SP_OK);
    raw_text(dir.db,
             "SELECT from_state || '>' || to_state || ' ' || reason FROM cluster_events "
             "ORDER BY id DESC",
             text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "RUNNING>RUNNING ttl extended to 12h");
    CU_ASSERT_EQUAL(store_cluster_note(s, "sc-none", "x", err, sizeof err), SP_NOT_FOUND);
    json_t *events = NULL;
    CU_ASSERT_EQUAL(store_cluster_events(s, "sc-none", &events), SP_NOT_FOUND);
    CU_ASSERT_PTR_NULL(events);
    CU_ASSERT_EQUAL(store_cluster_delete(s, "sc-1"), SP_OK);
    CU_ASSERT_EQUAL(store_cluster_delete(s, "sc-1"), SP_NOT_FOUND);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM cluster_events"), 0);
    close_and_remove(s, &dir);
}

static void test_usage_counts_live_user_clusters(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    int64_t clusters = -1, cores = -1;
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(store_cluster_usage(s, "data", &clusters, &cores), SP_OK);
    CU_ASSERT_EQUAL(clusters, 0);
    CU_ASSERT_EQUAL(cores, 0);
    const char *states[] = {"PROVISIONING", "RUNNING",    "SCALING",
                            "TERMINATING",  "TERMINATED", "FAILED"};
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "sc-%d", i);
        CU_ASSERT_EQUAL_FATAL(create_simple(s, id, "data", "dev", states[i]), STORE_CREATED);
    }
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-ml", "ml", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_warm(s, "warm-1", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL(raw_exec(dir.db, "UPDATE clusters SET cores = 10 WHERE id = 'sc-1'"), 0);
    CU_ASSERT_EQUAL(store_cluster_usage(s, "data", &clusters, &cores), SP_OK);
    CU_ASSERT_EQUAL(clusters, 4); /* not TERMINATED, not FAILED */
    CU_ASSERT_EQUAL(cores, 4 + 10 + 4 + 4);
    CU_ASSERT_EQUAL(store_cluster_usage(s, "", &clusters, &cores), SP_OK);
    CU_ASSERT_EQUAL(clusters, 0); /* warm clusters count against no team */
    close_and_remove(s, &dir);
}

static void test_expired_lists_live_user_clusters_by_expiry(void)
{
    test_dir dir;
    store *s = open_fresh(&dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-late", "data", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-early", "data", "dev", "SCALING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-future", "data", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-forever", "data", "dev", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-ending", "data", "dev", "TERMINATING"),
                          STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_simple(s, "sc-done", "data", "dev", "TERMINATED"), STORE_CREATED);
    CU_ASSERT_EQUAL_FATAL(create_warm(s, "warm-1", "RUNNING"), STORE_CREATED);
    CU_ASSERT_EQUAL(raw_exec(dir.db,
                             "UPDATE clusters SET expires_at = '2010-01-01T00:00:00.000Z';"
                             "UPDATE clusters SET expires_at = '2001-01-01T00:00:00.000Z' "
                             "WHERE id = 'sc-early';"
                             "UPDATE clusters SET expires_at = '2030-01-01T00:00:00.000Z' "
                             "WHERE id = 'sc-future';"
                             "UPDATE clusters SET expires_at = NULL WHERE id = 'sc-forever'"),
                    0);
    json_t *ids = NULL;
    CU_ASSERT_EQUAL_FATAL(store_cluster_expired(s, "2020-01-01T00:00:00.000Z", &ids), SP_OK);
    CU_ASSERT_EQUAL_FATAL(json_array_size(ids), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(ids, 0)), "sc-early");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(ids, 1)), "sc-late");
    json_decref(ids);
    /* The boundary is inclusive. */
    CU_ASSERT_EQUAL_FATAL(store_cluster_expired(s, "2001-01-01T00:00:00.000Z", &ids), SP_OK);
    CU_ASSERT_EQUAL(json_array_size(ids), 1);
    json_decref(ids);
    close_and_remove(s, &dir);
}

static void test_migration_4_on_a_version_3_database(void)
{
    test_dir dir;
    char err[256] = "";
    store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(test_dir_make_named(&dir, "test_store_clusters"), 0);
    CU_ASSERT_EQUAL_FATAL(store_open_at_version(dir.db, 3, &s, err, sizeof err), 0);
    store_close(s);
    CU_ASSERT_EQUAL(raw_exec(dir.db,
                             "INSERT INTO clusters (id, team, environment, region, size, state, "
                             "spec, created_at, updated_at) VALUES ('sc-old', 'data', 'dev', "
                             "'local', 'small', 'RUNNING', '{}', '2020-01-01T00:00:00.000Z', "
                             "'2020-01-01T00:00:00.000Z')"),
                    0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_TRUE(store_schema_version(s) >= 4);
    json_t *row = NULL;
    CU_ASSERT_EQUAL_FATAL(store_cluster_get(s, "sc-old", &row), SP_OK);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(row, "executors")), 0);
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "pool")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(row, "backend_ref")));
    CU_ASSERT_EQUAL(json_array_size(json_object_get(row, "catalogs")), 0);
    json_decref(row);
    close_and_remove(s, &dir);
}

static const unit_test_case cases[] = {
    {"create writes the row and its creation event", test_create_writes_row_and_event},
    {"create refuses bad rows and writes nothing", test_create_refuses_bad_rows},
    {"idempotent replay, key conflicts, a job's key, expired keys",
     test_idempotent_replay_and_conflicts},
    {"warm hand-over deletes the warm row or fails whole", test_warm_hand_over},
    {"get", test_get},
    {"list filters; warm rows only when asked for", test_list_filters},
    {"update: expect_state, fields, events", test_update_conditional_with_fields_and_events},
    {"note and delete", test_note_and_delete},
    {"usage counts a team's live clusters and cores", test_usage_counts_live_user_clusters},
    {"expired: live user clusters, oldest expiry first",
     test_expired_lists_live_user_clusters_by_expiry},
    {"migration 4 on a version 3 database", test_migration_4_on_a_version_3_database},
    {NULL, NULL}};

UNIT_TEST_MAIN("store_clusters", cases)
