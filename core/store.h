/*
 * store.h - the daemon's state in one SQL database (SQLite, WAL).
 *
 * The store is the single source of truth: the API answers from it and
 * reconcile loops make backends match it.  All SQL lives behind this
 * interface, in plain portable SQL, so a replicated engine can replace
 * SQLite later without touching callers.
 *
 * Opening applies every pending migration inside one transaction each
 * (schema version in PRAGMA user_version).  Writes use BEGIN IMMEDIATE;
 * statements are prepared once and reused.
 */
#ifndef SPARKPLANE_CORE_STORE_H
#define SPARKPLANE_CORE_STORE_H

#include <stddef.h>

typedef struct store store;

/* The schema version this build writes. */
int store_latest_version(void);

/* Opens (creating) and migrates to the latest version. 0 or -1 + message. */
int store_open(const char *path, store **out, char *err, size_t err_size);

/* Opens and migrates only up to `version` (tests of migrations). */
int store_open_at_version(const char *path, int version, store **out, char *err,
                          size_t err_size);

void store_close(store *s);

/* PRAGMA user_version of the open database. */
int store_schema_version(store *s);

/* The connection settings in force (diagnostics and tests). */
typedef struct store_settings {
    char journal_mode[16]; /* "wal" ("memory" for ":memory:") */
    int foreign_keys;      /* 1 when enforced */
    int busy_timeout_ms;
    int synchronous;       /* 1 = NORMAL */
} store_settings;
int store_settings_read(store *s, store_settings *out);

/* Cheap liveness check for /readyz: 0 when a trivial query answers. */
int store_ping(store *s);

/* Per-plugin key/value store.  Values are bytes (NUL added on read). */
int store_kv_put(store *s, const char *plugin, const char *key, const void *value,
                 size_t len, char *err, size_t err_size);
/* 0 and a malloc'd copy; 1 when absent; -1 on error. */
int store_kv_get(store *s, const char *plugin, const char *key, char **value_out,
                 size_t *len_out);
/* 0 deleted, 1 absent, -1 error. */
int store_kv_delete(store *s, const char *plugin, const char *key);

/* Whether a migration created `table` (tests): 1 yes, 0 no, -1 error. */
int store_table_exists(store *s, const char *table);

#endif
