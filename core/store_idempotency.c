/*
 * store_idempotency.c - the idempotency keys of creates, for every resource
 * kind (jobs and clusters) in the one idempotency_keys table.
 *
 * A key is scoped to its team and names one resource: (team, key) ->
 * request hash, resource_kind, resource_id, expiry.  A create looks its
 * key up inside its own BEGIN IMMEDIATE transaction and stores the key in
 * that same transaction, so "look up, then insert" cannot race.  A key of
 * another kind, or with another request hash, is "another request" and so a
 * conflict; an expired key counts as absent (a create drops it first), and
 * so does a key whose resource is gone.  The kind is a statement parameter,
 * so one set of statements serves every kind.
 *
 * The caller passes a fetch function for its kind, so a replay returns the
 * earlier resource exactly as a fresh read of it would.
 */
#include "store_internal.h"
#include "store_jobs.h"

#include <sparkplane/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_IDEMPOTENCY_KEY_MAX 255

static const char *const store_idempotency_sql[STORE_SQL_COUNT] = {
    [STORE_SQL_IDEMPOTENCY_DROP_EXPIRED_KEY] =
        "DELETE FROM idempotency_keys WHERE team = ?1 AND key = ?2 AND expires_at <= ?3",
    [STORE_SQL_IDEMPOTENCY_DROP_KEY] = "DELETE FROM idempotency_keys WHERE team = ?1 AND key = ?2",
    [STORE_SQL_IDEMPOTENCY_GET] = "SELECT request_hash, resource_kind, resource_id, expires_at "
                                  "FROM idempotency_keys WHERE team = ?1 AND key = ?2",
    [STORE_SQL_IDEMPOTENCY_INSERT] =
        "INSERT INTO idempotency_keys (team, key, request_hash, resource_kind, resource_id, "
        "created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STORE_SQL_IDEMPOTENCY_EXPIRE] = "DELETE FROM idempotency_keys WHERE expires_at <= ?1",
};

static sqlite3_stmt *store_idempotency_statement(store *s, store_sql_id id)
{
    return store_statement(s, id, store_idempotency_sql[id]);
}

/* Runs one of the idempotency_keys writes: SQLITE_OK or the SQLite code. */
static int store_idempotency_write(store *s, store_sql_id id, const char *const *texts, int count)
{
    return store_write_texts(store_idempotency_statement(s, id), texts, count);
}

int store_idempotency_check(const store_idempotency *idem, char *err, size_t err_size)
{
    if (idem == NULL || idem->key == NULL)
        return 0;
    if (idem->key[0] == '\0' || strlen(idem->key) > STORE_IDEMPOTENCY_KEY_MAX) {
        store_set_error(err, err_size, "idempotency key must be 1 to %d bytes",
                        STORE_IDEMPOTENCY_KEY_MAX);
        return -1;
    }
    if (idem->request_hash == NULL || idem->request_hash[0] == '\0') {
        store_set_error(err, err_size, "idempotency request_hash is empty");
        return -1;
    }
    if (idem->ttl_seconds == 0) {
        store_set_error(err, err_size, "idempotency ttl_seconds is 0; a key must live a while");
        return -1;
    }
    return 0;
}

/* One idempotency_keys row, as malloc'd copies. */
typedef struct store_idempotency_row {
    char *request_hash;
    char *kind;
    char *id;
    char *expires_at;
} store_idempotency_row;

static void store_idempotency_row_free(store_idempotency_row *row)
{
    free(row->request_hash);
    free(row->kind);
    free(row->id);
    free(row->expires_at);
}

static char *store_idempotency_copy(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return text != NULL ? strdup((const char *)text) : NULL;
}

/* The key of `team`, expired or not: SP_OK with *row (free it), SP_NOT_FOUND, SP_ERROR. */
static int store_idempotency_read(store *s, const char *team, const char *key,
                                  store_idempotency_row *row)
{
    sqlite3_stmt *stmt = store_idempotency_statement(s, STORE_SQL_IDEMPOTENCY_GET);
    const char *texts[] = {team, key};
    int result = SP_ERROR, rc;
    memset(row, 0, sizeof *row);
    if (stmt == NULL || store_bind_texts(stmt, 1, texts, 2) != SQLITE_OK)
        goto done;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        result = SP_NOT_FOUND;
    if (rc != SQLITE_ROW)
        goto done;
    row->request_hash = store_idempotency_copy(stmt, 0);
    row->kind = store_idempotency_copy(stmt, 1);
    row->id = store_idempotency_copy(stmt, 2);
    row->expires_at = store_idempotency_copy(stmt, 3);
    /* Every column is NOT NULL, so a NULL copy is out of memory. */
    if (row->request_hash != NULL && row->kind != NULL && row->id != NULL &&
        row->expires_at != NULL)
        result = SP_OK;
done:
    store_statement_done(stmt);
    if (result != SP_OK)
        store_idempotency_row_free(row);
    return result;
}

store_create_result store_idempotency_lookup_for_create(store *s, const char *kind,
                                                        store_fetch_fn fetch, const char *team,
                                                        const store_idempotency *idem,
                                                        const char *now, json_t **found, char *err,
                                                        size_t err_size)
{
    const char *expired[] = {team, idem->key, now};
    const char *key[] = {team, idem->key};
    store_idempotency_row row = {0};
    store_create_result result = STORE_FAILED;
    int rc = SP_ERROR;
    if (store_idempotency_write(s, STORE_SQL_IDEMPOTENCY_DROP_EXPIRED_KEY, expired, 3) == SQLITE_OK)
        rc = store_idempotency_read(s, team, idem->key, &row);
    if (rc == SP_NOT_FOUND)
        result = STORE_CREATED;
    if (rc != SP_OK)
        goto done;
    /* A key another kind of resource used is "another request" too. */
    if (strcmp(row.kind, kind) != 0 || strcmp(row.request_hash, idem->request_hash) != 0) {
        store_set_error(err, err_size,
                        "idempotency key '%s' of team %s was already used for another request",
                        idem->key, team);
        result = STORE_KEY_CONFLICT;
        goto done;
    }
    rc = fetch(s, row.id, found);
    if (rc == SP_OK)
        result = STORE_REPLAYED;
    /* The resource it named is gone: the key protects nothing, so it is free again. */
    else if (rc == SP_NOT_FOUND &&
             store_idempotency_write(s, STORE_SQL_IDEMPOTENCY_DROP_KEY, key, 2) == SQLITE_OK)
        result = STORE_CREATED;
done:
    if (result == STORE_FAILED)
        store_set_error(err, err_size, "looking up idempotency key '%s' failed: %s", idem->key,
                        sqlite3_errmsg(store_handle(s)));
    store_idempotency_row_free(&row);
    return result;
}

int store_idempotency_insert(store *s, const char *kind, const char *team,
                             const store_idempotency *idem, const char *id, const char *now,
                             char *err, size_t err_size)
{
    char expires[32];
    store_timestamp_after(idem->ttl_seconds, expires);
    const char *texts[] = {team, idem->key, idem->request_hash, kind, id, now, expires};
    if (store_idempotency_write(s, STORE_SQL_IDEMPOTENCY_INSERT, texts, 7) == SQLITE_OK)
        return 0;
    store_set_error(err, err_size, "storing the idempotency key for %s %s failed: %s", kind, id,
                    sqlite3_errmsg(store_handle(s)));
    return -1;
}

int store_idempotency_lookup(store *s, const char *team, const char *key, char kind_out[16],
                             char id_out[128], char hash_out[65])
{
    store_idempotency_row row;
    char now[32];
    store_timestamp_now(now);
    int result = store_idempotency_read(s, team, key, &row);
    if (result != SP_OK)
        return result;
    if (strcmp(row.expires_at, now) <= 0) {
        result = SP_NOT_FOUND; /* expired: as good as absent (a create drops it) */
    } else {
        snprintf(hash_out, 65, "%s", row.request_hash);
        snprintf(kind_out, 16, "%s", row.kind);
        snprintf(id_out, 128, "%s", row.id);
    }
    store_idempotency_row_free(&row);
    return result;
}

int64_t store_idempotency_expire(store *s)
{
    char now[32];
    const char *texts[] = {now};
    if (s == NULL)
        return -1;
    store_timestamp_now(now);
    if (store_idempotency_write(s, STORE_SQL_IDEMPOTENCY_EXPIRE, texts, 1) != SQLITE_OK)
        return -1;
    return sqlite3_changes(store_handle(s));
}
