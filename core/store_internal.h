/*
 * store_internal.h - what the store's own files (store.c, store_jobs.c,
 * store_clusters.c, store_idempotency.c) share and nothing else includes:
 * the SQLite handle, the statement cache, binding and writing, the
 * write-transaction helpers, the timestamp shape and the idempotency keys
 * that jobs and clusters both take.
 *
 * Statements are named by an id and prepared on first use with
 * SQLITE_PREPARE_PERSISTENT; store.c keeps them until store_close, so each
 * SQL text is compiled once per connection.  A caller resets a statement
 * with store_statement_done() as soon as it has read what it needs, which
 * also lets the same statement run again inside one transaction.
 */
#ifndef SPARKPLANE_CORE_STORE_INTERNAL_H
#define SPARKPLANE_CORE_STORE_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_jobs.h" /* store_idempotency, store_create_result */

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
    /* store_idempotency.c: one set for every resource kind */
    STORE_SQL_IDEMPOTENCY_DROP_EXPIRED_KEY,
    STORE_SQL_IDEMPOTENCY_DROP_KEY,
    STORE_SQL_IDEMPOTENCY_GET,
    STORE_SQL_IDEMPOTENCY_INSERT,
    STORE_SQL_IDEMPOTENCY_EXPIRE,
    STORE_SQL_COUNT
} store_sql_id;

/* The connection (for sqlite3_errmsg and sqlite3_changes). */
sqlite3 *store_handle(store *s);

/* The cached statement `id`, prepared from `sql` on first use; NULL on error. */
sqlite3_stmt *store_statement(store *s, store_sql_id id, const char *sql);

/* Resets a statement and clears its bindings, ready for the next use. */
void store_statement_done(sqlite3_stmt *stmt);

/* Binds text, or SQL NULL for a NULL pointer; the caller keeps `text` alive. */
int store_bind_text(sqlite3_stmt *stmt, int index, const char *text);

/* Binds texts[i] to parameter first + i; stops at the first failure. */
int store_bind_texts(sqlite3_stmt *stmt, int first, const char *const *texts, int count);

/* Steps a write statement and resets it: SQLITE_OK or the SQLite code. */
int store_write(sqlite3_stmt *stmt);

/*
 * Binds texts to ?1..?count and steps the write; a NULL `stmt` (it did not
 * prepare) is SQLITE_ERROR.  SQLITE_OK or the SQLite code.
 */
int store_write_texts(sqlite3_stmt *stmt, const char *const *texts, int count);

/*
 * Rows as JSON: an object keyed by column name, NULL as null, integers as
 * integers, other values as strings - except the columns named in
 * `json_columns` (NULL-terminated; NULL for none), whose JSON text is
 * parsed back.  NULL when out of memory or such a text does not parse.
 */
json_t *store_row_json(sqlite3_stmt *stmt, const char *const *json_columns);

/*
 * Reads the one row of `stmt` keyed by ?1 = `id` and resets the statement
 * (NULL `stmt` is an error): SP_OK with *row_out, SP_NOT_FOUND, SP_ERROR.
 */
int store_fetch_row(sqlite3_stmt *stmt, const char *id, const char *const *json_columns,
                    json_t **row_out);

/* Reads column 0 of the row keyed by ?1 = `id` into `out`, then resets: SP codes as above. */
int store_fetch_text(sqlite3_stmt *stmt, const char *id, char *out, size_t out_size);

/*
 * Appends the rows of a bound `stmt` to `rows`, at most `limit`; *more says
 * a row was left over.  0, or -1 on error.  The caller resets `stmt`.
 */
int store_collect_rows(sqlite3_stmt *stmt, const char *const *json_columns, size_t limit,
                       json_t *rows, int *more);

/*
 * Every event of resource `id` from `events` (?1 = id), oldest first.  A
 * resource always has its creation event, so when there is none `state`
 * (?1 = id) says whether it exists: SP_OK with *events_out, SP_NOT_FOUND,
 * SP_ERROR.  Resets both statements.
 */
int store_fetch_events(sqlite3_stmt *events, sqlite3_stmt *state, const char *id,
                       json_t **events_out);

/* printf into the caller's message buffer; NULL or size 0 is fine. */
__attribute__((format(printf, 3, 4))) void store_set_error(char *err, size_t err_size,
                                                           const char *fmt, ...);

/* BEGIN IMMEDIATE / COMMIT: SQLITE_OK or the SQLite code. */
int store_transaction_begin(store *s);
int store_transaction_commit(store *s);
/* Harmless when SQLite already rolled back on its own. */
void store_transaction_rollback(store *s);

/* store_timestamp_now / store_timestamp_after: store_jobs.h. */

/* Whether text[0..len) is "YYYY-MM-DDTHH:MM:SS.mmmZ" exactly (text order is time order). */
int store_timestamp_valid(const char *text, size_t len);

/* ---- idempotency keys (store_idempotency.c) ----------------------------- */

/* The resource_kind an idempotency key names: "job" or "cluster" (the schema's CHECK). */
#define STORE_KIND_JOB     "job"
#define STORE_KIND_CLUSTER "cluster"

/* Reads resource `id` inside a transaction: SP_OK with *row_out, SP_NOT_FOUND, SP_ERROR. */
typedef int (*store_fetch_fn)(store *s, const char *id, json_t **row_out);

/* The key's own rules (length, hash, TTL); NULL idem or key is fine.  0 or -1 with err. */
int store_idempotency_check(const store_idempotency *idem, char *err, size_t err_size);

/*
 * Looks `idem->key` of `team` up inside the create's transaction, first
 * dropping it when expired.  STORE_CREATED means "no live key: go ahead";
 * STORE_REPLAYED fills *found with the earlier resource (read by `fetch`);
 * STORE_KEY_CONFLICT when the key names another kind or another request
 * hash; STORE_FAILED with err.  A key whose resource is gone is dropped and
 * counts as absent.
 */
store_create_result store_idempotency_lookup_for_create(store *s, const char *kind,
                                                        store_fetch_fn fetch, const char *team,
                                                        const store_idempotency *idem,
                                                        const char *now, json_t **found, char *err,
                                                        size_t err_size);

/* Stores the key for resource `kind` `id`, expiring after idem->ttl_seconds: 0 or -1 with err. */
int store_idempotency_insert(store *s, const char *kind, const char *team,
                             const store_idempotency *idem, const char *id, const char *now,
                             char *err, size_t err_size);

/* EXPLAIN QUERY PLAN of `sql`, its detail lines joined by "; " (tests). */
int store_explain(store *s, const char *sql, char *out, size_t out_size);

/* The plan of job statement `id` (store_jobs.c; tests check index use). */
int store_jobs_query_plan(store *s, store_sql_id id, char *out, size_t out_size);

#endif
