/*
 * test_store.c - the SQLite state store: schema creation and migration,
 * connection settings, the plugin key/value store, and refusing files it
 * must not touch (newer schema, corrupt bytes, a migration that fails).
 *
 * Every test works in its own mkdtemp directory, removed at the end; a
 * second, raw sqlite3 connection looks at the file the way an operator's
 * `sqlite3` shell would, so the assertions do not trust the store alone.
 */
#include <config.h>

#include "unit_test.h"
#include "store.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_dir.h"

static int raw_text(const char *path, const char *sql, char *out, size_t out_size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    out[0] = '\0';
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        snprintf(out, out_size, "%s", text != NULL ? (const char *)text : "(null)");
        rc = 0;
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rc;
}

static char *read_whole_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto done;
    buf = malloc((size_t)size + 1);
    if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
        goto done;
    }
    if (buf != NULL) {
        buf[size] = '\0';
        if (len_out != NULL)
            *len_out = (size_t)size;
    }
done:
    fclose(f);
    return buf;
}

static int write_whole_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t written = fwrite(data, 1, len, f);
    return fclose(f) == 0 && written == len ? 0 : -1;
}

static const char *const every_table[] = {
    "jobs",     "job_events", "idempotency_keys", "clusters",  "cluster_events",
    "sessions", "schedules",  "manifests",        "plugin_kv", NULL};

static void test_fresh_open_creates_every_table(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "";
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_TRUE(store_latest_version() >= 2);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), store_latest_version());
    for (int i = 0; every_table[i] != NULL; i++) {
        CU_ASSERT_EQUAL(store_table_exists(s, every_table[i]), 1);
        if (store_table_exists(s, every_table[i]) != 1)
            fprintf(stderr, "missing table %s\n", every_table[i]);
    }
    CU_ASSERT_EQUAL(store_table_exists(s, "no_such_table"), 0);
    CU_ASSERT_EQUAL(store_ping(s), 0);
    store_close(s);
    /* The version is in the file, not just in the connection. */
    CU_ASSERT_EQUAL(raw_int(dir.db, "PRAGMA user_version"), store_latest_version());
    test_dir_remove(&dir);
}

static void test_connection_uses_wal_and_foreign_keys(void)
{
    test_dir dir;
    store *s = NULL;
    store_settings settings;
    char err[512] = "", mode[32];
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(store_settings_read(s, &settings), 0);
    CU_ASSERT_STRING_EQUAL(settings.journal_mode, "wal");
    CU_ASSERT_EQUAL(settings.foreign_keys, 1);
    CU_ASSERT_EQUAL(settings.busy_timeout_ms, 5000);
    CU_ASSERT_EQUAL(settings.synchronous, 1);
    /* WAL is a property of the file: another process sees it too. */
    CU_ASSERT_EQUAL(raw_text(dir.db, "PRAGMA journal_mode", mode, sizeof mode), 0);
    CU_ASSERT_STRING_EQUAL(mode, "wal");
    store_close(s);
    test_dir_remove(&dir);
}

static void test_kv_put_get_overwrite_delete(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "", *value = NULL;
    size_t len = 0;
    static const char binary[] = {'a', '\0', 'b', '\xff'};
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);

    CU_ASSERT_EQUAL(store_kv_get(s, "backend_local", "port", &value, &len), 1);
    CU_ASSERT_PTR_NULL(value);
    CU_ASSERT_EQUAL(store_kv_put(s, "backend_local", "port", "15002", 5, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "backend_local", "port", &value, &len), 0);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_STRING_EQUAL(value, "15002"); /* NUL added on read */
    free(value);

    /* Overwrite with a shorter value: no tail of the old one survives. */
    CU_ASSERT_EQUAL(store_kv_put(s, "backend_local", "port", "9", 1, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "backend_local", "port", &value, NULL), 0);
    CU_ASSERT_STRING_EQUAL(value, "9");
    free(value);

    /* Keys are per plugin: the same key elsewhere is another value. */
    CU_ASSERT_EQUAL(store_kv_get(s, "backend_docker", "port", &value, &len), 1);
    CU_ASSERT_EQUAL(store_kv_put(s, "backend_docker", "port", binary, sizeof binary, err,
                                 sizeof err),
                    0);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "backend_docker", "port", &value, &len), 0);
    CU_ASSERT_EQUAL(len, sizeof binary);
    CU_ASSERT_EQUAL(memcmp(value, binary, sizeof binary), 0);
    free(value);

    /* An empty value is a value, not an absence. */
    CU_ASSERT_EQUAL(store_kv_put(s, "backend_local", "empty", NULL, 0, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "backend_local", "empty", &value, &len), 0);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_STRING_EQUAL(value, "");
    free(value);

    CU_ASSERT_EQUAL(store_kv_delete(s, "backend_local", "port"), 0);
    CU_ASSERT_EQUAL(store_kv_get(s, "backend_local", "port", &value, &len), 1);
    CU_ASSERT_EQUAL(store_kv_delete(s, "backend_local", "port"), 1);
    /* Deleting one plugin's key left the other plugin's alone. */
    CU_ASSERT_EQUAL(store_kv_get(s, "backend_docker", "port", &value, &len), 0);
    free(value);
    store_close(s);
    test_dir_remove(&dir);
}

static void test_kv_refuses_oversized_and_empty_names(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "", key[300], *value = NULL;
    size_t mib = 1024 * 1024, len = 0;
    char *big = calloc(1, mib + 1);
    CU_ASSERT_FATAL(big != NULL);
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);

    memset(key, 'k', sizeof key);
    key[256] = '\0'; /* exactly at the limit */
    CU_ASSERT_EQUAL(store_kv_put(s, "p", key, "v", 1, err, sizeof err), 0);
    key[256] = 'k';
    key[257] = '\0';
    err[0] = '\0';
    CU_ASSERT_EQUAL(store_kv_put(s, "p", key, "v", 1, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "kv key is 257 bytes; the limit is 256"));
    CU_ASSERT_EQUAL(store_kv_get(s, "p", key, &value, &len), -1);

    CU_ASSERT_EQUAL(store_kv_put(s, "p", "big", big, mib, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "p", "big", &value, &len), 0);
    CU_ASSERT_EQUAL(len, mib);
    free(value);
    err[0] = '\0';
    CU_ASSERT_EQUAL(store_kv_put(s, "p", "big", "x", 0, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_kv_put(s, "p", "big", big, mib + 1, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "value for key 'big' is 1048577 bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "1 MiB"));
    /* The refused write changed nothing. */
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "p", "big", &value, &len), 0);
    CU_ASSERT_EQUAL(len, 0);
    free(value);

    CU_ASSERT_EQUAL(store_kv_put(s, "p", "", "v", 1, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "kv key is empty"));
    CU_ASSERT_EQUAL(store_kv_put(s, "", "k", "v", 1, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "plugin name is empty"));
    CU_ASSERT_EQUAL(store_kv_put(s, "p", "k", NULL, 3, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "NULL"));
    store_close(s);
    free(big);
    test_dir_remove(&dir);
}

static void test_reopen_keeps_data(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "", *value = NULL;
    size_t len = 0;
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_kv_put(s, "auth_token", "rotation", "42", 2, err, sizeof err), 0);
    store_close(s);
    s = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), store_latest_version());
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "auth_token", "rotation", &value, &len), 0);
    CU_ASSERT_STRING_EQUAL(value, "42");
    free(value);
    store_close(s);
    test_dir_remove(&dir);
}

/* A database written by version 1, with rows, loaded from its SQL dump. */
static int load_v1_dump(const char *db_path)
{
    char *sql = read_whole_file(TEST_SRCDIR "/data/schema_v1.sql", NULL);
    if (sql == NULL)
        return -1;
    int rc = raw_exec(db_path, sql);
    free(sql);
    return rc;
}

static void assert_v1_rows_survived(const char *path)
{
    char text[128];
    CU_ASSERT_EQUAL(raw_int(path, "SELECT count(*) FROM jobs"), 2);
    CU_ASSERT_EQUAL(raw_int(path, "SELECT count(*) FROM job_events"), 4);
    CU_ASSERT_EQUAL(raw_int(path, "SELECT count(*) FROM idempotency_keys"), 1);
    CU_ASSERT_EQUAL(raw_int(path, "SELECT count(*) FROM cluster_events"), 2);
    raw_text(path, "SELECT reason FROM jobs WHERE id = 'job-0002'", text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "retrying after executor loss");
    /* Columns a later migration added have their defaults on old rows. */
    raw_text(path, "SELECT catalogs FROM clusters WHERE id = 'cl-0001'", text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "[]");
    raw_text(path, "SELECT schedule_id FROM jobs WHERE id = 'job-0001'", text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "(null)");
}

static void test_migrates_a_version_1_database(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "", *value = NULL;
    size_t len = 0;
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(load_v1_dump(dir.db), 0);
    CU_ASSERT_EQUAL_FATAL(raw_int(dir.db, "PRAGMA user_version"), 1);

    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), store_latest_version());
    for (int i = 0; every_table[i] != NULL; i++)
        CU_ASSERT_EQUAL(store_table_exists(s, every_table[i]), 1);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "backend_local", "next_port", &value, &len), 0);
    CU_ASSERT_STRING_EQUAL(value, "15003");
    free(value);
    CU_ASSERT_EQUAL_FATAL(store_kv_get(s, "auth_token", "binary", &value, &len), 0);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_EQUAL(memcmp(value, "\x00\xff\x01\x02", 4), 0);
    free(value);
    store_close(s);

    assert_v1_rows_survived(dir.db);
    /* The migrated schema still cascades job events with their job. */
    CU_ASSERT_EQUAL(raw_exec(dir.db, "PRAGMA foreign_keys = ON;"
                                     "DELETE FROM jobs WHERE id = 'job-0001'"),
                    0);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM job_events"), 1);
    test_dir_remove(&dir);
}

static void test_open_at_version_then_upgrade(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "";
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open_at_version(dir.db, 1, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), 1);
    CU_ASSERT_EQUAL(store_table_exists(s, "jobs"), 1);
    CU_ASSERT_EQUAL(store_table_exists(s, "sessions"), 0);
    store_close(s);
    s = NULL;
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), store_latest_version());
    CU_ASSERT_EQUAL(store_table_exists(s, "sessions"), 1);
    store_close(s);
    s = NULL;

    CU_ASSERT_EQUAL(store_open_at_version(dir.db, 0, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "schema version 0 is not between 1 and"));
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(store_open(NULL, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "path is empty"));
    test_dir_remove(&dir);
}

static void test_refuses_a_newer_schema(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "", expected[200], sql[64];
    int future = store_latest_version() + 4;
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    snprintf(sql, sizeof sql, "CREATE TABLE t (x); PRAGMA user_version = %d", future);
    CU_ASSERT_EQUAL_FATAL(raw_exec(dir.db, sql), 0);

    CU_ASSERT_EQUAL(store_open(dir.db, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(s);
    snprintf(expected, sizeof expected,
             "database schema version %d is newer than this sparkplaned (%d); refusing to open",
             future, store_latest_version());
    CU_ASSERT_PTR_NOT_NULL(strstr(err, expected));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, dir.db));
    /* Untouched: no tables were added, the version is unchanged. */
    CU_ASSERT_EQUAL(raw_int(dir.db, "PRAGMA user_version"), future);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM sqlite_master"), 1);
    test_dir_remove(&dir);
}

static void assert_refused_unchanged(const char *path, const char *bytes, size_t len)
{
    store *s = NULL;
    char err[512] = "";
    size_t after_len = 0;
    CU_ASSERT_EQUAL_FATAL(write_whole_file(path, bytes, len), 0);
    CU_ASSERT_EQUAL(store_open(path, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a readable SQLite database"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "refusing to open"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    char *after = read_whole_file(path, &after_len);
    CU_ASSERT_FATAL(after != NULL);
    CU_ASSERT_EQUAL(after_len, len);
    CU_ASSERT_EQUAL(memcmp(after, bytes, len), 0);
    free(after);
}

static void test_refuses_a_corrupt_file(void)
{
    test_dir dir;
    char bytes[8192];
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    srand(20240501); /* the same "random" bytes every run */
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (char)(rand() & 0xff);
    assert_refused_unchanged(dir.db, bytes, sizeof bytes);
    /* A real SQLite header over garbage is just as unreadable. */
    memcpy(bytes, "SQLite format 3", 16);
    assert_refused_unchanged(dir.db, bytes, sizeof bytes);
    test_dir_remove(&dir);
}

/*
 * Migration 2 creates manifests, then schedules, then sessions.  A v1 file
 * that already has a `sessions` table makes the last CREATE fail after the
 * first two succeeded: all of the step must roll back.
 */
static void test_failing_migration_rolls_back(void)
{
    test_dir dir;
    store *s = NULL;
    char err[512] = "";
    CU_ASSERT_FATAL(test_dir_make_named(&dir, "test_store") == 0);
    CU_ASSERT_EQUAL_FATAL(store_open_at_version(dir.db, 1, &s, err, sizeof err), 0);
    store_close(s);
    s = NULL;
    CU_ASSERT_EQUAL_FATAL(raw_exec(dir.db, "CREATE TABLE sessions (legacy TEXT)"), 0);

    CU_ASSERT_EQUAL(store_open(dir.db, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "migration 2 (manifests, schedules and sessions)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "table sessions already exists"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "schema stays at version 1"));
    CU_ASSERT_EQUAL(raw_int(dir.db, "PRAGMA user_version"), 1);
    CU_ASSERT_EQUAL(raw_int(dir.db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                    "('manifests', 'schedules')"),
                    0);

    /* Once the operator removes the obstacle, the same file migrates. */
    CU_ASSERT_EQUAL_FATAL(raw_exec(dir.db, "DROP TABLE sessions"), 0);
    CU_ASSERT_EQUAL_FATAL(store_open(dir.db, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(store_schema_version(s), store_latest_version());
    store_close(s);
    test_dir_remove(&dir);
}

static const unit_test_case cases[] = {
    {"a fresh database has every table at the latest version",
     test_fresh_open_creates_every_table},
    {"the connection uses WAL, foreign keys and a busy timeout",
     test_connection_uses_wal_and_foreign_keys},
    {"kv put, get, overwrite, delete and absent keys", test_kv_put_get_overwrite_delete},
    {"kv refuses oversized keys and values and empty names",
     test_kv_refuses_oversized_and_empty_names},
    {"data survives close and reopen", test_reopen_keeps_data},
    {"a version 1 database with rows migrates to the latest", test_migrates_a_version_1_database},
    {"open at version 1, then upgrade", test_open_at_version_then_upgrade},
    {"a database from a newer sparkplaned is refused", test_refuses_a_newer_schema},
    {"a corrupt file is refused and left as it was", test_refuses_a_corrupt_file},
    {"a failing migration rolls back whole", test_failing_migration_rolls_back},
    {NULL, NULL}};

UNIT_TEST_MAIN("store", cases)
