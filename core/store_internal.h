/*
 * store_internal.h - what the store's own files (store.c, store_jobs.c,
 * store_clusters.c) share and nothing else includes: the SQLite handle,
 * the statement cache, the write-transaction helpers and the timestamp
 * shape.
 *
 * Statements are named by an id and prepared on first use with
 * SQLITE_PREPARE_PERSISTENT; store.c keeps them until store_close, so each
 * SQL text is compiled once per connection.  A caller resets a statement
 * with store_statement_done() as soon as it has read what it needs, which
 * also lets the same statement run again inside one transaction.
 */
#ifndef SPARKPLANE_CORE_STORE_INTERNAL_H
#define SPARKPLANE_CORE_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The job list has one statement per filter shape, so each can use its index. */
#define STORE_JOB_LIST_BY_TEAM   1 /* bit: team = ? */
#define STORE_JOB_LIST_BY_STATE  2 /* bit: state = ? */
#define STORE_JOB_LIST_AFTER     4 /* bit: a page token's (created_at, id) */
#define STORE_JOB_LIST_VARIANTS  8

typedef enum store_sql_id {
    STORE_SQL_JOB_INSERT,
    STORE_SQL_JOB_GET,
    STORE_SQL_JOB_STATE,
    STORE_SQL_JOB_UPDATE,
    STORE_SQL_JOB_EVENT_INSERT,
    STORE_SQL_JOB_EVENTS,
    STORE_SQL_JOBS_IN_STATES,
    STORE_SQL_JOBS_COUNT,
    STORE_SQL_IDEMPOTENCY_DROP_EXPIRED_KEY,
    STORE_SQL_IDEMPOTENCY_DROP_KEY,
    STORE_SQL_IDEMPOTENCY_GET,
    STORE_SQL_IDEMPOTENCY_INSERT,
    STORE_SQL_IDEMPOTENCY_EXPIRE,
    /* STORE_SQL_JOB_LIST + (STORE_JOB_LIST_* bits) */
    STORE_SQL_JOB_LIST,
    /* store_clusters.c */
    STORE_SQL_CLUSTER_INSERT = STORE_SQL_JOB_LIST + STORE_JOB_LIST_VARIANTS,
    STORE_SQL_CLUSTER_GET,
    STORE_SQL_CLUSTER_STATE,
    STORE_SQL_CLUSTER_UPDATE,
    STORE_SQL_CLUSTER_DELETE,
    STORE_SQL_CLUSTER_TAKE_WARM,
    STORE_SQL_CLUSTER_EVENT_INSERT,
    STORE_SQL_CLUSTER_EVENTS,
    STORE_SQL_CLUSTER_LIST_ALL,
    STORE_SQL_CLUSTER_LIST_BY_TEAM,
    STORE_SQL_CLUSTER_USAGE,
    STORE_SQL_CLUSTER_EXPIRED,
    STORE_SQL_CLUSTER_KEY_DROP_EXPIRED,
    STORE_SQL_CLUSTER_KEY_DROP,
    STORE_SQL_CLUSTER_KEY_GET,
    STORE_SQL_CLUSTER_KEY_INSERT,
    STORE_SQL_COUNT
} store_sql_id;

/* The connection (for sqlite3_errmsg and sqlite3_changes). */
sqlite3 *store_handle(store *s);

/* The cached statement `id`, prepared from `sql` on first use; NULL on error. */
sqlite3_stmt *store_statement(store *s, store_sql_id id, const char *sql);

/* Resets a statement and clears its bindings, ready for the next use. */
void store_statement_done(sqlite3_stmt *stmt);

/* BEGIN IMMEDIATE / COMMIT: SQLITE_OK or the SQLite code. */
int store_transaction_begin(store *s);
int store_transaction_commit(store *s);
/* Harmless when SQLite already rolled back on its own. */
void store_transaction_rollback(store *s);

/* store_timestamp_now / store_timestamp_after: store_jobs.h. */

/* EXPLAIN QUERY PLAN of `sql`, its detail lines joined by "; " (tests). */
int store_explain(store *s, const char *sql, char *out, size_t out_size);

/* The plan of job statement `id` (store_jobs.c; tests check index use). */
int store_jobs_query_plan(store *s, store_sql_id id, char *out, size_t out_size);

#endif
