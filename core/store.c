/*
 * store.c - the daemon's state in one SQLite database.
 *
 * Opening sets the connection up (WAL, foreign keys, a 5 s busy timeout,
 * synchronous=NORMAL, which WAL makes crash-safe), then walks the schema
 * forward with the migrations table below: migration N takes user_version
 * N-1 to N, each inside its own BEGIN IMMEDIATE ... COMMIT together with
 * `PRAGMA user_version = N`, so a database is always at exactly one known
 * version.  A database newer than this build is refused rather than
 * guessed at.  The statements the hot paths use are prepared once at open
 * and reset after every use; the statements of store_jobs.c and later
 * tables are prepared on first use into the same cache (store_internal.h),
 * so every SQL text is compiled once per connection.
 *
 * The schema is plain portable SQL (no WITHOUT ROWID, STRICT or SQLite
 * date functions) so a replicated engine can take the same DDL later.
 * Timestamps are TEXT in one fixed RFC 3339 UTC shape,
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", written by the code, never by SQL defaults:
 * with one width, string order is time order, which keyset pagination
 * and TTL sweeps rely on.
 *
 * Migrations are append-only: never edit a released step, add a new one.
 * A step that must rebuild a table would need foreign_keys off, which
 * cannot change inside a transaction; prefer ADD COLUMN and new tables.
 */
#include <config.h>

#include "store.h"
#include "store_internal.h"
#include "store_jobs.h"

#include <sparkplane/plugin.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_KV_KEY_MAX      256
#define STORE_KV_PLUGIN_MAX   256
#define STORE_KV_VALUE_MAX    (1024 * 1024)

typedef struct store_migration {
    const char *title; /* named in error messages */
    const char *sql;
} store_migration;

/* Migration 1: what jobs, idempotent submits, clusters and plugins need. */
static const char store_migration_core[] =
    "CREATE TABLE jobs (\n"
    "  id           TEXT PRIMARY KEY,\n"
    "  team         TEXT NOT NULL,\n"
    "  name         TEXT NOT NULL,\n"
    "  state        TEXT NOT NULL CHECK (state IN ('PENDING', 'SUBMITTED', 'RUNNING',\n"
    "               'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED', 'RETRYING')),\n"
    "  backend      TEXT,\n"                            /* NULL until placed */
    "  spec         TEXT NOT NULL,\n"                   /* the submitted job, JSON */
    "  spark_app_id TEXT,\n"
    "  attempt      INTEGER NOT NULL DEFAULT 1,\n"
    "  max_attempts INTEGER NOT NULL DEFAULT 1,\n"
    "  reason       TEXT,\n"                            /* why the last state change */
    "  submitted_by TEXT,\n"                            /* authenticated identity */
    "  created_at   TEXT NOT NULL,\n"
    "  updated_at   TEXT NOT NULL,\n"
    "  finished_at  TEXT\n"
    ");\n"
    /* GET /jobs: keyset pagination on (created_at, id), with or without state. */
    "CREATE INDEX jobs_team_created ON jobs (team, created_at, id);\n"
    "CREATE INDEX jobs_team_state_created ON jobs (team, state, created_at, id);\n"
    /* Reconcile loops scan the jobs that are not finished. */
    "CREATE INDEX jobs_state_updated ON jobs (state, updated_at);\n"
    "CREATE TABLE job_events (\n"
    "  id         INTEGER PRIMARY KEY,\n"
    "  job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
    "  at         TEXT NOT NULL,\n"
    "  from_state TEXT,\n"                              /* NULL for the creation event */
    "  to_state   TEXT NOT NULL,\n"
    "  reason     TEXT\n"
    ");\n"
    "CREATE INDEX job_events_job ON job_events (job_id, id);\n"
    "CREATE TABLE idempotency_keys (\n"
    "  team          TEXT NOT NULL,\n"
    "  key           TEXT NOT NULL,\n"
    "  request_hash  TEXT NOT NULL,\n"                  /* hex SHA-256 of the canonical body */
    "  resource_kind TEXT NOT NULL CHECK (resource_kind IN ('job', 'cluster')),\n"
    "  resource_id   TEXT NOT NULL,\n"
    "  created_at    TEXT NOT NULL,\n"
    "  expires_at    TEXT NOT NULL,\n"
    "  PRIMARY KEY (team, key)\n"
    ");\n"
    "CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);\n"
    "CREATE TABLE clusters (\n"
    "  id          TEXT PRIMARY KEY,\n"
    "  team        TEXT NOT NULL,\n"
    "  environment TEXT NOT NULL,\n"
    "  region      TEXT NOT NULL,\n"
    "  size        TEXT NOT NULL,\n"
    "  state       TEXT NOT NULL CHECK (state IN ('PROVISIONING', 'RUNNING', 'SCALING',\n"
    "              'TERMINATING', 'TERMINATED', 'FAILED')),\n"
    "  backend     TEXT,\n"
    "  endpoint    TEXT,\n"                             /* sc://... once known */
    "  spec        TEXT NOT NULL,\n"                    /* the request, JSON */
    "  reason      TEXT,\n"
    "  expires_at  TEXT,\n"                             /* NULL: no TTL */
    "  created_at  TEXT NOT NULL,\n"
    "  updated_at  TEXT NOT NULL\n"
    ");\n"
    /* Discovery and the gateway look clusters up by team/env/region. */
    "CREATE INDEX clusters_placement ON clusters (team, environment, region, state);\n"
    "CREATE INDEX clusters_team_created ON clusters (team, created_at, id);\n"
    /* The TTL sweeper finds expired live clusters. */
    "CREATE INDEX clusters_state_expires ON clusters (state, expires_at);\n"
    "CREATE TABLE cluster_events (\n"
    "  id         INTEGER PRIMARY KEY,\n"
    "  cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,\n"
    "  at         TEXT NOT NULL,\n"
    "  from_state TEXT,\n"
    "  to_state   TEXT NOT NULL,\n"
    "  reason     TEXT\n"
    ");\n"
    "CREATE INDEX cluster_events_cluster ON cluster_events (cluster_id, id);\n"
    "CREATE TABLE plugin_kv (\n"
    "  plugin     TEXT NOT NULL,\n"
    "  key        TEXT NOT NULL,\n"
    "  value      BLOB NOT NULL,\n"
    "  updated_at TEXT NOT NULL,\n"
    "  PRIMARY KEY (plugin, key)\n"
    ");\n";

/* Migration 2: manifests, the schedules they declare, Spark Connect sessions. */
static const char store_migration_sessions[] =
    "CREATE TABLE manifests (\n"
    "  id         TEXT PRIMARY KEY,\n"
    "  team       TEXT NOT NULL,\n"
    "  name       TEXT NOT NULL,\n"
    "  kind       TEXT NOT NULL,\n"                     /* the manifest parser, e.g. dcp */
    "  revision   INTEGER NOT NULL DEFAULT 1,\n"        /* bumped on every apply */
    "  digest     TEXT NOT NULL,\n"                     /* hex SHA-256 of source */
    "  source     TEXT NOT NULL,\n"                     /* the YAML as applied */
    "  created_at TEXT NOT NULL,\n"
    "  updated_at TEXT NOT NULL,\n"
    "  UNIQUE (team, name)\n"
    ");\n"
    "CREATE TABLE schedules (\n"
    "  id          TEXT PRIMARY KEY,\n"
    "  team        TEXT NOT NULL,\n"
    "  name        TEXT NOT NULL,\n"
    "  manifest_id TEXT REFERENCES manifests (id) ON DELETE CASCADE,\n"
    "  kind        TEXT NOT NULL CHECK (kind IN ('cron', 'continuous')),\n"
    "  cron        TEXT,\n"                             /* NULL for continuous jobs */
    "  timezone    TEXT NOT NULL DEFAULT 'UTC',\n"
    "  job_spec    TEXT NOT NULL,\n"                    /* job template, JSON */
    "  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  next_run_at TEXT,\n"
    "  last_run_at TEXT,\n"
    "  last_job_id TEXT REFERENCES jobs (id) ON DELETE SET NULL,\n"
    "  created_at  TEXT NOT NULL,\n"
    "  updated_at  TEXT NOT NULL,\n"
    "  UNIQUE (team, name)\n"
    ");\n"
    /* The scheduler wakes for the earliest due enabled schedule. */
    "CREATE INDEX schedules_due ON schedules (enabled, next_run_at);\n"
    "CREATE INDEX schedules_manifest ON schedules (manifest_id);\n"
    "CREATE TABLE sessions (\n"
    "  cluster_id      TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,\n"
    "  user_id         TEXT NOT NULL,\n"
    "  session_id      TEXT NOT NULL,\n"
    "  driver_endpoint TEXT NOT NULL,\n"                /* host:port the session is pinned to */
    "  created_at      TEXT NOT NULL,\n"
    "  last_seen       TEXT NOT NULL,\n"
    "  PRIMARY KEY (cluster_id, user_id, session_id)\n"
    ");\n"
    /* Balancing counts sessions per driver; the idle sweeper scans last_seen. */
    "CREATE INDEX sessions_driver ON sessions (cluster_id, driver_endpoint);\n"
    "CREATE INDEX sessions_last_seen ON sessions (last_seen);\n";

/* Migration 3: which schedule started a job; the catalogs a cluster mounts. */
static const char store_migration_lineage[] =
    "ALTER TABLE jobs ADD COLUMN schedule_id TEXT\n"
    "  REFERENCES schedules (id) ON DELETE SET NULL;\n"
    "CREATE INDEX jobs_schedule ON jobs (schedule_id, created_at);\n"
    "ALTER TABLE clusters ADD COLUMN catalogs TEXT NOT NULL DEFAULT '[]';\n";

/*
 * Migration 4: what provisioning keeps per cluster.  backend_ref is the
 * name the backend knows it by (a warm cluster keeps it when handed over
 * under a user's id); pool is set only on warm, unassigned clusters, whose
 * team is "" - so the (team, environment, region, state) index finds them.
 */
static const char store_migration_provisioning[] =
    "ALTER TABLE clusters ADD COLUMN backend_ref TEXT;\n"
    "ALTER TABLE clusters ADD COLUMN pool TEXT;\n"            /* "env/region/size" when warm */
    "ALTER TABLE clusters ADD COLUMN namespace TEXT;\n"
    "ALTER TABLE clusters ADD COLUMN driver TEXT;\n"          /* host:port once known */
    "ALTER TABLE clusters ADD COLUMN token TEXT;\n"           /* its Spark Connect token */
    "ALTER TABLE clusters ADD COLUMN executors INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE clusters ADD COLUMN cores INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE clusters ADD COLUMN memory_mib INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE clusters ADD COLUMN created_by TEXT;\n";

/* Index i holds migration i + 1. Append only. */
static const store_migration store_migrations[] = {
    {"core tables", store_migration_core},
    {"manifests, schedules and sessions", store_migration_sessions},
    {"job lineage and cluster catalogs", store_migration_lineage},
    {"cluster provisioning columns", store_migration_provisioning},
};

#define STORE_MIGRATION_COUNT ((int)(sizeof store_migrations / sizeof store_migrations[0]))

struct store {
    sqlite3 *db;
    sqlite3_stmt *kv_put;
    sqlite3_stmt *kv_get;
    sqlite3_stmt *kv_delete;
    sqlite3_stmt *ping;
    sqlite3_stmt *table_exists;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *statements[STORE_SQL_COUNT]; /* prepared on first use */
};

int store_latest_version(void)
{
    return STORE_MIGRATION_COUNT;
}

void store_set_error(char *err, size_t err_size, const char *fmt, ...)
{
    if (err == NULL || err_size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
}

/* SQLITE_NOTADB / SQLITE_CORRUPT mean the file itself is bad, not our SQL. */
static int store_is_damaged(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT;
}

static void store_set_sql_error(store *s, const char *path, const char *what, int rc, char *err,
                                size_t err_size)
{
    const char *detail = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    if (store_is_damaged(rc))
        store_set_error(err, err_size,
                        "%s is not a readable SQLite database (corrupt, or another kind of "
                        "file): %s; refusing to open",
                        path, detail);
    else
        store_set_error(err, err_size, "%s: %s: %s", path, what, detail);
}

/* Runs one statement that answers a single integer (PRAGMAs, SELECT 1). */
static int store_query_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        goto done;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(stmt, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_EMPTY; /* e.g. a PRAGMA this build does not know */
    }
done:
    sqlite3_finalize(stmt);
    return rc;
}

static int store_query_text(sqlite3 *db, const char *sql, char *out, size_t out_size)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        goto done;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        snprintf(out, out_size, "%s", text != NULL ? (const char *)text : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_EMPTY;
    }
done:
    sqlite3_finalize(stmt);
    return rc;
}

/* WAL lets readers run beside the one writer; in-memory databases cannot use it. */
static int store_enable_wal(store *s, const char *path, char *err, size_t err_size)
{
    char mode[16] = "";
    int rc = store_query_text(s->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
    if (rc != SQLITE_OK) {
        store_set_sql_error(s, path, "enabling WAL", rc, err, err_size);
        return -1;
    }
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        store_set_error(err, err_size, "%s: journal_mode stayed '%s', WAL is required", path,
                        mode);
        return -1;
    }
    return 0;
}

static int store_configure_connection(store *s, const char *path, char *err, size_t err_size)
{
    int on = 0, rc;
    sqlite3_extended_result_codes(s->db, 1);
    /* First, so the switch to WAL waits for another process's lock too. */
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (store_enable_wal(s, path, err, err_size) != 0)
        return -1;
    rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL,
                      NULL, NULL);
    if (rc != SQLITE_OK) {
        store_set_sql_error(s, path, "setting synchronous and foreign_keys", rc, err, err_size);
        return -1;
    }
    /* A build without foreign key support accepts the PRAGMA silently. */
    if (store_query_int(s->db, "PRAGMA foreign_keys", &on) != SQLITE_OK || on != 1) {
        store_set_error(err, err_size, "%s: this SQLite cannot enforce foreign keys", path);
        return -1;
    }
    return 0;
}

static int store_read_version(store *s, const char *path, int *version, char *err,
                              size_t err_size)
{
    int rc = store_query_int(s->db, "PRAGMA user_version", version);
    if (rc != SQLITE_OK) {
        store_set_sql_error(s, path, "reading the schema version", rc, err, err_size);
        return -1;
    }
    if (*version < 0) {
        store_set_error(err, err_size,
                        "%s: database schema version %d is invalid; refusing to open", path,
                        *version);
        return -1;
    }
    if (*version > STORE_MIGRATION_COUNT) {
        store_set_error(err, err_size,
                        "%s: database schema version %d is newer than this sparkplaned (%d); "
                        "refusing to open",
                        path, *version, STORE_MIGRATION_COUNT);
        return -1;
    }
    return 0;
}

static void store_rollback(store *s)
{
    /* Fails harmlessly when SQLite already rolled back on its own. */
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/*
 * Applies migration `number` when the database is still at number - 1.
 * Another process may have migrated between our read and our lock, so the
 * version is read again under the write lock; *version says where it is.
 */
static int store_apply_migration(store *s, const char *path, int number, int *version, char *err,
                                 size_t err_size)
{
    const store_migration *m = &store_migrations[number - 1];
    char set_version[48];
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_set_sql_error(s, path, "locking for migration", rc, err, err_size);
        return -1;
    }
    if (store_read_version(s, path, version, err, err_size) != 0)
        goto fail;
    if (*version != number - 1) { /* someone else moved it on */
        store_rollback(s);
        return 0;
    }
    snprintf(set_version, sizeof set_version, "PRAGMA user_version = %d", number);
    rc = sqlite3_exec(s->db, m->sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, set_version, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_set_error(err, err_size,
                        "%s: migration %d (%s) failed: %s; rolled back, schema stays at "
                        "version %d",
                        path, number, m->title, sqlite3_errmsg(s->db), number - 1);
        goto fail;
    }
    *version = number;
    return 0;
fail:
    store_rollback(s);
    return -1;
}

static int store_migrate(store *s, const char *path, int target, char *err, size_t err_size)
{
    int version = 0;
    if (store_read_version(s, path, &version, err, err_size) != 0)
        return -1;
    while (version < target)
        if (store_apply_migration(s, path, version + 1, &version, err, err_size) != 0)
            return -1;
    return 0;
}

static const char store_sql_kv_put[] =
    "INSERT INTO plugin_kv (plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at";
static const char store_sql_kv_get[] = "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2";
static const char store_sql_kv_delete[] = "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2";
static const char store_sql_ping[] = "SELECT 1";
static const char store_sql_table_exists[] =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
static const char store_sql_begin[] = "BEGIN IMMEDIATE";
static const char store_sql_commit[] = "COMMIT";
static const char store_sql_rollback[] = "ROLLBACK";

static int store_prepare_statements(store *s, const char *path, char *err, size_t err_size)
{
    const struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } todo[] = {
        {&s->kv_put, store_sql_kv_put},
        {&s->kv_get, store_sql_kv_get},
        {&s->kv_delete, store_sql_kv_delete},
        {&s->ping, store_sql_ping},
        {&s->table_exists, store_sql_table_exists},
        {&s->begin, store_sql_begin},
        {&s->commit, store_sql_commit},
        {&s->rollback, store_sql_rollback},
    };
    for (size_t i = 0; i < sizeof todo / sizeof todo[0]; i++) {
        int rc = sqlite3_prepare_v3(s->db, todo[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    todo[i].stmt, NULL);
        if (rc != SQLITE_OK) {
            store_set_sql_error(s, path, "preparing statements", rc, err, err_size);
            return -1;
        }
    }
    return 0;
}

int store_open_at_version(const char *path, int version, store **out, char *err,
                          size_t err_size)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    store *s = NULL;
    if (out == NULL || path == NULL || path[0] == '\0') {
        store_set_error(err, err_size, "database path is empty");
        return -1;
    }
    *out = NULL;
    /* Version 1 is the first with plugin_kv, which the prepared statements need. */
    if (version < 1 || version > STORE_MIGRATION_COUNT) {
        store_set_error(err, err_size, "%s: schema version %d is not between 1 and %d", path,
                        version, STORE_MIGRATION_COUNT);
        return -1;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        store_set_error(err, err_size, "%s: out of memory", path);
        return -1;
    }
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        store_set_sql_error(s, path, "cannot open the database", rc, err, err_size);
        goto fail;
    }
    /* READWRITE quietly falls back to read-only on a write-protected file. */
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        store_set_error(err, err_size, "%s: the database is read-only; sparkplaned writes its "
                        "state there", path);
        goto fail;
    }
    if (store_configure_connection(s, path, err, err_size) != 0 ||
        store_migrate(s, path, version, err, err_size) != 0 ||
        store_prepare_statements(s, path, err, err_size) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    store_close(s);
    return -1;
}

int store_open(const char *path, store **out, char *err, size_t err_size)
{
    return store_open_at_version(path, STORE_MIGRATION_COUNT, out, err, err_size);
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    sqlite3_finalize(s->kv_put);
    sqlite3_finalize(s->kv_get);
    sqlite3_finalize(s->kv_delete);
    sqlite3_finalize(s->ping);
    sqlite3_finalize(s->table_exists);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    for (size_t i = 0; i < STORE_SQL_COUNT; i++)
        sqlite3_finalize(s->statements[i]);
    /* close_v2: never leaves the handle open because of a forgotten statement. */
    sqlite3_close_v2(s->db);
    free(s);
}

int store_schema_version(store *s)
{
    int version = -1;
    if (s == NULL || store_query_int(s->db, "PRAGMA user_version", &version) != SQLITE_OK)
        return -1;
    return version;
}

int store_settings_read(store *s, store_settings *out)
{
    if (s == NULL || out == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    if (store_query_text(s->db, "PRAGMA journal_mode", out->journal_mode,
                         sizeof out->journal_mode) != SQLITE_OK ||
        store_query_int(s->db, "PRAGMA foreign_keys", &out->foreign_keys) != SQLITE_OK ||
        store_query_int(s->db, "PRAGMA busy_timeout", &out->busy_timeout_ms) != SQLITE_OK ||
        store_query_int(s->db, "PRAGMA synchronous", &out->synchronous) != SQLITE_OK)
        return -1;
    return 0;
}

/* Makes a prepared statement ready for its next use. */
static void store_release(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

int store_ping(store *s)
{
    if (s == NULL)
        return -1;
    int rc = sqlite3_step(s->ping);
    int ok = rc == SQLITE_ROW && sqlite3_column_int(s->ping, 0) == 1;
    store_release(s->ping);
    return ok ? 0 : -1;
}

/* Far enough for any TTL, near enough that the year keeps four digits. */
#define STORE_TIMESTAMP_MAX_AHEAD (100ull * 366 * 24 * 3600)

/* "YYYY-MM-DDTHH:MM:SS.mmmZ": the one timestamp shape of the schema. */
void store_timestamp_after(uint64_t seconds, char out[32])
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    if (seconds > STORE_TIMESTAMP_MAX_AHEAD)
        seconds = STORE_TIMESTAMP_MAX_AHEAD;
    time_t when = now.tv_sec + (time_t)seconds;
    gmtime_r(&when, &tm);
    unsigned millis = (unsigned)(now.tv_nsec / 1000000L) % 1000u;
    size_t used = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + used, 32 - used, ".%03uZ", millis);
}

void store_timestamp_now(char out[32])
{
    store_timestamp_after(0, out);
}

int store_timestamp_valid(const char *text, size_t len)
{
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    if (text == NULL || len != sizeof shape - 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int want_digit = shape[i] == '0';
        int is_digit = text[i] >= '0' && text[i] <= '9';
        if (want_digit ? !is_digit : text[i] != shape[i])
            return 0;
    }
    return 1;
}

static int store_check_kv_names(const char *plugin, const char *key, char *err, size_t err_size)
{
    if (plugin == NULL || plugin[0] == '\0') {
        store_set_error(err, err_size, "kv plugin name is empty");
        return -1;
    }
    if (strlen(plugin) > STORE_KV_PLUGIN_MAX) {
        store_set_error(err, err_size, "kv plugin name is %zu bytes; the limit is %d",
                        strlen(plugin), STORE_KV_PLUGIN_MAX);
        return -1;
    }
    if (key == NULL || key[0] == '\0') {
        store_set_error(err, err_size, "kv key is empty");
        return -1;
    }
    if (strlen(key) > STORE_KV_KEY_MAX) {
        store_set_error(err, err_size, "kv key is %zu bytes; the limit is %d", strlen(key),
                        STORE_KV_KEY_MAX);
        return -1;
    }
    return 0;
}

static int store_bind_kv_names(sqlite3_stmt *stmt, const char *plugin, const char *key)
{
    int rc = sqlite3_bind_text(stmt, 1, plugin, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
    return rc;
}

int store_kv_put(store *s, const char *plugin, const char *key, const void *value, size_t len,
                 char *err, size_t err_size)
{
    char now[32];
    int rc;
    if (s == NULL) {
        store_set_error(err, err_size, "kv store is not open");
        return -1;
    }
    if (store_check_kv_names(plugin, key, err, err_size) != 0)
        return -1;
    if (value == NULL && len > 0) {
        store_set_error(err, err_size, "kv value is NULL but its length is %zu", len);
        return -1;
    }
    if (len > STORE_KV_VALUE_MAX) {
        store_set_error(err, err_size,
                        "kv value for key '%s' is %zu bytes; the limit is %d (1 MiB)", key, len,
                        STORE_KV_VALUE_MAX);
        return -1;
    }
    store_timestamp_now(now);
    rc = store_bind_kv_names(s->kv_put, plugin, key);
    /* bind_blob with a NULL pointer would store SQL NULL, not an empty value. */
    if (rc == SQLITE_OK)
        rc = len == 0 ? sqlite3_bind_zeroblob(s->kv_put, 3, 0)
                      : sqlite3_bind_blob(s->kv_put, 3, value, (int)len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(s->kv_put, 4, now, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s->kv_put);
    if (rc != SQLITE_DONE)
        store_set_error(err, err_size, "kv put of key '%s' for plugin %s failed: %s", key, plugin,
                        sqlite3_errmsg(s->db));
    store_release(s->kv_put);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int store_copy_value(sqlite3_stmt *stmt, char **value_out, size_t *len_out)
{
    const void *blob = sqlite3_column_blob(stmt, 0);
    size_t len = (size_t)sqlite3_column_bytes(stmt, 0);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    if (len > 0)
        memcpy(copy, blob, len);
    copy[len] = '\0';
    *value_out = copy;
    if (len_out != NULL)
        *len_out = len;
    return 0;
}

int store_kv_get(store *s, const char *plugin, const char *key, char **value_out,
                 size_t *len_out)
{
    int result = -1, rc;
    if (value_out == NULL)
        return -1;
    *value_out = NULL;
    if (s == NULL || store_check_kv_names(plugin, key, NULL, 0) != 0)
        return -1;
    if (store_bind_kv_names(s->kv_get, plugin, key) != SQLITE_OK)
        goto done;
    rc = sqlite3_step(s->kv_get);
    if (rc == SQLITE_ROW)
        result = store_copy_value(s->kv_get, value_out, len_out);
    else if (rc == SQLITE_DONE)
        result = 1;
done:
    store_release(s->kv_get);
    return result;
}

int store_kv_delete(store *s, const char *plugin, const char *key)
{
    int result = -1;
    if (s == NULL || store_check_kv_names(plugin, key, NULL, 0) != 0)
        return -1;
    if (store_bind_kv_names(s->kv_delete, plugin, key) != SQLITE_OK)
        goto done;
    if (sqlite3_step(s->kv_delete) == SQLITE_DONE)
        result = sqlite3_changes(s->db) > 0 ? 0 : 1;
done:
    store_release(s->kv_delete);
    return result;
}

int store_table_exists(store *s, const char *table)
{
    int result = -1, rc;
    if (s == NULL || table == NULL)
        return -1;
    if (sqlite3_bind_text(s->table_exists, 1, table, -1, SQLITE_STATIC) != SQLITE_OK)
        goto done;
    rc = sqlite3_step(s->table_exists);
    if (rc == SQLITE_ROW)
        result = 1;
    else if (rc == SQLITE_DONE)
        result = 0;
done:
    store_release(s->table_exists);
    return result;
}

sqlite3 *store_handle(store *s)
{
    return s->db;
}

sqlite3_stmt *store_statement(store *s, store_sql_id id, const char *sql)
{
    if (s == NULL || id >= STORE_SQL_COUNT || sql == NULL)
        return NULL;
    if (s->statements[id] == NULL &&
        sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->statements[id],
                           NULL) != SQLITE_OK)
        return NULL;
    return s->statements[id];
}

void store_statement_done(sqlite3_stmt *stmt)
{
    if (stmt != NULL)
        store_release(stmt);
}

int store_bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    if (text == NULL)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC);
}

int store_bind_texts(sqlite3_stmt *stmt, int first, const char *const *texts, int count)
{
    int rc = SQLITE_OK;
    for (int i = 0; i < count && rc == SQLITE_OK; i++)
        rc = store_bind_text(stmt, first + i, texts[i]);
    return rc;
}

int store_write(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    store_statement_done(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_write_texts(sqlite3_stmt *stmt, const char *const *texts, int count)
{
    if (stmt == NULL)
        return SQLITE_ERROR;
    int rc = store_bind_texts(stmt, 1, texts, count);
    if (rc == SQLITE_OK)
        return store_write(stmt);
    store_statement_done(stmt);
    return rc;
}

static int store_is_json_column(const char *name, const char *const *json_columns)
{
    for (const char *const *column = json_columns; column != NULL && *column != NULL; column++)
        if (strcmp(name, *column) == 0)
            return 1;
    return 0;
}

static json_t *store_column_json(sqlite3_stmt *stmt, int column, const char *const *json_columns)
{
    switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_NULL:
        return json_null();
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(stmt, column));
    default:
        break;
    }
    const char *text = (const char *)sqlite3_column_text(stmt, column);
    size_t len = (size_t)sqlite3_column_bytes(stmt, column);
    if (store_is_json_column(sqlite3_column_name(stmt, column), json_columns))
        return json_loadb(text, len, 0, NULL);
    return json_stringn(text, len);
}

json_t *store_row_json(sqlite3_stmt *stmt, const char *const *json_columns)
{
    json_t *row = json_object();
    int columns = sqlite3_column_count(stmt);
    for (int i = 0; row != NULL && i < columns; i++)
        if (json_object_set_new(row, sqlite3_column_name(stmt, i),
                                store_column_json(stmt, i, json_columns)) != 0) {
            json_decref(row);
            row = NULL;
        }
    return row;
}

int store_fetch_row(sqlite3_stmt *stmt, const char *id, const char *const *json_columns,
                    json_t **row_out)
{
    int result = SP_ERROR;
    if (stmt == NULL || store_bind_text(stmt, 1, id) != SQLITE_OK)
        goto done;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        result = SP_NOT_FOUND;
    else if (rc == SQLITE_ROW && (*row_out = store_row_json(stmt, json_columns)) != NULL)
        result = SP_OK;
done:
    store_statement_done(stmt);
    return result;
}

int store_fetch_text(sqlite3_stmt *stmt, const char *id, char *out, size_t out_size)
{
    int result = SP_ERROR;
    if (stmt == NULL || store_bind_text(stmt, 1, id) != SQLITE_OK)
        goto done;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        result = SP_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        snprintf(out, out_size, "%s", (const char *)sqlite3_column_text(stmt, 0));
        result = SP_OK;
    }
done:
    store_statement_done(stmt);
    return result;
}

int store_collect_rows(sqlite3_stmt *stmt, const char *const *json_columns, size_t limit,
                       json_t *rows, int *more)
{
    int rc;
    *more = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (json_array_size(rows) == limit) {
            *more = 1;
            return 0;
        }
        if (json_array_append_new(rows, store_row_json(stmt, json_columns)) != 0)
            return -1;
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

int store_fetch_events(sqlite3_stmt *events, sqlite3_stmt *state, const char *id,
                       json_t **events_out)
{
    json_t *rows = json_array();
    char current[32];
    int more = 0, result = SP_ERROR;
    if (events == NULL || rows == NULL || store_bind_text(events, 1, id) != SQLITE_OK)
        goto done;
    if (store_collect_rows(events, NULL, SIZE_MAX, rows, &more) != 0)
        goto done;
    result =
        json_array_size(rows) > 0 ? SP_OK : store_fetch_text(state, id, current, sizeof current);
done:
    store_statement_done(events);
    if (result == SP_OK)
        *events_out = rows;
    else
        json_decref(rows);
    return result;
}

/* Steps a statement that answers no rows and leaves it ready again. */
static int store_step_once(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_transaction_begin(store *s)
{
    return store_step_once(s->begin);
}

int store_transaction_commit(store *s)
{
    return store_step_once(s->commit);
}

void store_transaction_rollback(store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        store_step_once(s->rollback);
}

int store_explain(store *s, const char *sql, char *out, size_t out_size)
{
    sqlite3_stmt *stmt = NULL;
    char *text = NULL;
    size_t used = 0;
    int rc = -1;
    if (s == NULL || sql == NULL || out == NULL || out_size == 0)
        return -1;
    out[0] = '\0';
    text = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    if (text == NULL || sqlite3_prepare_v2(s->db, text, -1, &stmt, NULL) != SQLITE_OK)
        goto done;
    /* Columns: id, parent, notused, detail. */
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *detail = sqlite3_column_text(stmt, 3);
        int n = snprintf(out + used, out_size - used, "%s%s", used > 0 ? "; " : "",
                         detail != NULL ? (const char *)detail : "");
        if (n < 0 || (size_t)n >= out_size - used)
            break;
        used += (size_t)n;
    }
    rc = rc == SQLITE_DONE ? 0 : -1;
done:
    sqlite3_finalize(stmt);
    sqlite3_free(text);
    return rc;
}
