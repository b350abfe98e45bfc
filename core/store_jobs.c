/*
 * store_jobs.c - batch jobs and their events in the store (their
 * idempotency keys: store_idempotency.c).
 *
 * Every write runs in one BEGIN IMMEDIATE transaction: the job row, its
 * job_events row and the idempotency row commit together or not at all,
 * and because IMMEDIATE takes the write lock before the first read, the
 * state a transition checks is still the state it updates.  A transition
 * is still written as "UPDATE ... WHERE id = ? AND state = <what we read>"
 * so the condition lives in the SQL, as it must on a replicated engine.
 *
 * GET /jobs is keyset-paginated, newest first on (created_at, id).  The page
 * token is base64url("created_at|id") of the last row sent; the next page
 * asks for rows whose (created_at, id) is smaller, which the (team,
 * [state,] created_at, id) indexes answer without sorting or skipping.  Each
 * filter shape (team? state? token?) has its own statement so SQLite can
 * plan it onto the right index once; the name filter is a residual test.
 *
 * Statements are prepared on first use and cached by store.c
 * (store_internal.h).  Rows become jansson objects keyed by column name.
 */
#include "store_jobs.h"
#include "store_internal.h"

#include <sparkplane/plugin.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define STORE_JOB_COLUMNS                                                                       \
    "id, name, team, state, backend, spark_app_id, attempt, max_attempts, reason, "              \
    "submitted_by, created_at, updated_at, finished_at, spec"
#define STORE_JOB_LIST_MAX      1000
#define STORE_STATE_COUNT       8
#define STORE_TOKEN_MAX         1024 /* characters of a page token */
#define STORE_TIMESTAMP_LEN     24   /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

/* Eight placeholders: there are eight states, so any set of them fits. */
#define STORE_STATE_SET "state IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"

#define STORE_JOB_LIST_SQL(where)                                                               \
    "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE " where " (?3 IS NULL OR name = ?3) "        \
    "ORDER BY created_at DESC, id DESC LIMIT ?4"
#define STORE_AFTER "(created_at, id) < (?5, ?6) AND"

static const char *const store_jobs_sql[STORE_SQL_COUNT] = {
    [STORE_SQL_JOB_INSERT] =
        "INSERT INTO jobs (id, team, name, state, backend, spec, attempt, max_attempts, "
        "submitted_by, reason, created_at, updated_at) "
        "VALUES (?1, ?2, ?3, 'PENDING', ?4, ?5, 1, ?6, ?7, ?8, ?9, ?9)",
    [STORE_SQL_JOB_GET] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE id = ?1",
    [STORE_SQL_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    /* Right-hand sides see the old row: "state = ?2" there means "same state again". */
    [STORE_SQL_JOB_UPDATE] =
        "UPDATE jobs SET state = ?2, "
        "reason = CASE WHEN state = ?2 THEN COALESCE(?3, reason) ELSE ?3 END, "
        "backend = COALESCE(?4, backend), spark_app_id = COALESCE(?5, spark_app_id), "
        "attempt = COALESCE(?6, attempt), updated_at = ?7, "
        "finished_at = CASE WHEN state = ?2 THEN finished_at ELSE ?8 END "
        "WHERE id = ?1 AND state = ?9",
    [STORE_SQL_JOB_EVENT_INSERT] =
        "INSERT INTO job_events (job_id, at, from_state, to_state, reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STORE_SQL_JOB_EVENTS] = "SELECT at, from_state, to_state, reason FROM job_events "
                             "WHERE job_id = ?1 ORDER BY id",
    [STORE_SQL_JOBS_IN_STATES] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE " STORE_STATE_SET
                                 " ORDER BY created_at, id LIMIT ?9",
    [STORE_SQL_JOBS_COUNT] = "SELECT count(*) FROM jobs WHERE " STORE_STATE_SET
                             " AND (?9 IS NULL OR team = ?9) AND (?10 IS NULL OR backend = ?10)",
    [STORE_SQL_JOB_LIST] = STORE_JOB_LIST_SQL(""),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_BY_TEAM] = STORE_JOB_LIST_SQL("team = ?1 AND"),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_BY_STATE] = STORE_JOB_LIST_SQL("state = ?2 AND"),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_BY_TEAM + STORE_JOB_LIST_BY_STATE] =
        STORE_JOB_LIST_SQL("team = ?1 AND state = ?2 AND"),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_AFTER] = STORE_JOB_LIST_SQL(STORE_AFTER),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_AFTER + STORE_JOB_LIST_BY_TEAM] =
        STORE_JOB_LIST_SQL("team = ?1 AND " STORE_AFTER),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_AFTER + STORE_JOB_LIST_BY_STATE] =
        STORE_JOB_LIST_SQL("state = ?2 AND " STORE_AFTER),
    [STORE_SQL_JOB_LIST + STORE_JOB_LIST_AFTER + STORE_JOB_LIST_BY_TEAM +
        STORE_JOB_LIST_BY_STATE] = STORE_JOB_LIST_SQL("team = ?1 AND state = ?2 AND " STORE_AFTER),
};

static const char *const store_job_states[STORE_STATE_COUNT] = {
    "PENDING", "SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED",
    "RETRYING",
};

/* The columns of a job row that hold JSON text. */
static const char *const store_jobs_json_columns[] = {"spec", NULL};

static sqlite3_stmt *store_jobs_statement(store *s, store_sql_id id)
{
    return store_statement(s, id, store_jobs_sql[id]);
}

/* The public 0 / 1 (absent) / -1 of SP_OK / SP_NOT_FOUND / SP_ERROR. */
static int store_jobs_result(int rc)
{
    return rc == SP_OK ? 0 : rc == SP_NOT_FOUND ? 1 : -1;
}

static int store_jobs_state_known(const char *state)
{
    for (size_t i = 0; state != NULL && i < STORE_STATE_COUNT; i++)
        if (strcmp(state, store_job_states[i]) == 0)
            return 1;
    return 0;
}

static int store_jobs_state_final(const char *state)
{
    return strcmp(state, "SUCCEEDED") == 0 || strcmp(state, "FAILED") == 0 ||
           strcmp(state, "CANCELLED") == 0;
}

/* SP_OK and the job, SP_NOT_FOUND, SP_ERROR (a store_fetch_fn).  Works inside a transaction. */
static int store_jobs_fetch(store *s, const char *id, json_t **job_out)
{
    return store_fetch_row(store_jobs_statement(s, STORE_SQL_JOB_GET), id, store_jobs_json_columns,
                           job_out);
}

int store_job_get(store *s, const char *id, json_t **job_out)
{
    if (job_out == NULL)
        return -1;
    *job_out = NULL;
    if (s == NULL || id == NULL)
        return -1;
    return store_jobs_result(store_jobs_fetch(s, id, job_out));
}

static int store_jobs_check_text(const char *value, const char *field, char *err, size_t err_size)
{
    if (value != NULL && value[0] != '\0')
        return 0;
    store_set_error(err, err_size, "job %s is empty", field);
    return -1;
}

static int store_jobs_check_new(store *s, const store_job_new *job,
                                const store_idempotency *idem, char *err, size_t err_size)
{
    if (s == NULL || job == NULL) {
        store_set_error(err, err_size, "no store or no job given");
        return -1;
    }
    if (store_jobs_check_text(job->id, "id", err, err_size) != 0 ||
        store_jobs_check_text(job->team, "team", err, err_size) != 0 ||
        store_jobs_check_text(job->name, "name", err, err_size) != 0)
        return -1;
    if (job->max_attempts < 1) {
        store_set_error(err, err_size, "job max_attempts is %d; it must be >= 1",
                        job->max_attempts);
        return -1;
    }
    if (!json_is_object(job->spec)) {
        store_set_error(err, err_size, "job spec must be a JSON object");
        return -1;
    }
    return store_idempotency_check(idem, err, err_size);
}

static int store_jobs_sql_error(store *s, const char *what, const char *id, char *err,
                                size_t err_size)
{
    store_set_error(err, err_size, "%s for job %s failed: %s", what, id,
                    sqlite3_errmsg(store_handle(s)));
    return -1;
}

static int store_jobs_insert_row(store *s, const store_job_new *job, const char *spec_text,
                                 const char *now, char *err, size_t err_size)
{
    sqlite3_stmt *stmt = store_jobs_statement(s, STORE_SQL_JOB_INSERT);
    const char *texts[] = {job->id, job->team, job->name, job->backend, spec_text};
    const char *more[] = {job->submitted_by, job->reason, now};
    if (stmt == NULL)
        return store_jobs_sql_error(s, "preparing the insert", job->id, err, err_size);
    int rc = store_bind_texts(stmt, 1, texts, 5);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 6, job->max_attempts);
    if (rc == SQLITE_OK)
        rc = store_bind_texts(stmt, 7, more, 3);
    if (rc == SQLITE_OK)
        rc = store_write(stmt);
    store_statement_done(stmt);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        store_set_error(err, err_size, "job id %s already exists", job->id);
        return -1;
    }
    return rc == SQLITE_OK ? 0 : store_jobs_sql_error(s, "insert", job->id, err, err_size);
}

static int store_jobs_insert_event(store *s, const char *id, const char *at, const char *from,
                                   const char *to, const char *reason, char *err, size_t err_size)
{
    const char *texts[] = {id, at, from, to, reason};
    if (store_write_texts(store_jobs_statement(s, STORE_SQL_JOB_EVENT_INSERT), texts, 5) ==
        SQLITE_OK)
        return 0;
    return store_jobs_sql_error(s, "the event insert", id, err, err_size);
}

/* The writes of a create, after the key check: row, creation event, key, result. */
static int store_jobs_insert_all(store *s, const store_job_new *job,
                                 const store_idempotency *idem, const char *spec_text,
                                 const char *now, json_t **found, char *err, size_t err_size)
{
    if (store_jobs_insert_row(s, job, spec_text, now, err, err_size) != 0 ||
        store_jobs_insert_event(s, job->id, now, NULL, "PENDING", job->reason, err, err_size) != 0)
        return -1;
    if (idem != NULL && idem->key != NULL &&
        store_idempotency_insert(s, STORE_KIND_JOB, job->team, idem, job->id, now, err, err_size) !=
            0)
        return -1;
    if (found != NULL && store_jobs_fetch(s, job->id, found) != SP_OK)
        return store_jobs_sql_error(s, "reading back the new row", job->id, err, err_size);
    return 0;
}

store_create_result store_job_create(store *s, const store_job_new *job,
                                     const store_idempotency *idem, json_t **job_out,
                                     char *err, size_t err_size)
{
    store_create_result result = STORE_FAILED;
    json_t *found = NULL;
    char *spec_text = NULL;
    char now[32];
    if (job_out != NULL)
        *job_out = NULL;
    if (store_jobs_check_new(s, job, idem, err, err_size) != 0)
        return STORE_FAILED;
    spec_text = json_dumps(job->spec, JSON_COMPACT);
    if (spec_text == NULL) {
        store_set_error(err, err_size, "job spec of %s cannot be serialised", job->id);
        return STORE_FAILED;
    }
    store_timestamp_now(now);
    if (store_transaction_begin(s) != SQLITE_OK) {
        store_jobs_sql_error(s, "starting the create transaction", job->id, err, err_size);
        goto done;
    }
    if (idem != NULL && idem->key != NULL) {
        result = store_idempotency_lookup_for_create(s, STORE_KIND_JOB, store_jobs_fetch, job->team,
                                                     idem, now, &found, err, err_size);
        if (result != STORE_CREATED)
            goto rollback; /* a replay or a conflict writes nothing */
    }
    result = STORE_FAILED;
    if (store_jobs_insert_all(s, job, idem, spec_text, now, job_out ? &found : NULL, err,
                              err_size) != 0)
        goto rollback;
    if (store_transaction_commit(s) != SQLITE_OK) {
        store_jobs_sql_error(s, "committing the create", job->id, err, err_size);
        goto rollback;
    }
    result = STORE_CREATED;
    goto done;
rollback:
    store_transaction_rollback(s);
done:
    if (job_out != NULL && (result == STORE_CREATED || result == STORE_REPLAYED))
        *job_out = found;
    else
        json_decref(found);
    free(spec_text);
    return result;
}

/* The job's state into `out`: 0, 1 when absent, -1 on error. */
static int store_jobs_read_state(store *s, const char *id, char *out, size_t out_size)
{
    return store_jobs_result(
        store_fetch_text(store_jobs_statement(s, STORE_SQL_JOB_STATE), id, out, out_size));
}

static int store_jobs_check_transition(store *s, const char *id, const char *from_state,
                                       const char *to_state, const store_job_update *update,
                                       char *err, size_t err_size)
{
    if (s == NULL || id == NULL || id[0] == '\0') {
        store_set_error(err, err_size, "transition needs a store and a job id");
        return -1;
    }
    if (!store_jobs_state_known(to_state)) {
        store_set_error(err, err_size, "to_state '%s' is not a job state",
                        to_state != NULL ? to_state : "(null)");
        return -1;
    }
    if (from_state != NULL && !store_jobs_state_known(from_state)) {
        store_set_error(err, err_size, "from_state '%s' is not a job state", from_state);
        return -1;
    }
    if (update != NULL && update->attempt < 0) {
        store_set_error(err, err_size, "attempt is %d; it must be >= 1 (0 leaves it)",
                        update->attempt);
        return -1;
    }
    return 0;
}

/* The row update, conditional on the state read under the write lock. */
static int store_jobs_update_row(store *s, const char *id, const char *current,
                                 const char *to_state, const char *reason,
                                 const store_job_update *update, const char *now)
{
    sqlite3_stmt *stmt = store_jobs_statement(s, STORE_SQL_JOB_UPDATE);
    const char *texts[] = {id, to_state, reason, update ? update->backend : NULL,
                           update ? update->spark_app_id : NULL};
    const char *tail[] = {now, store_jobs_state_final(to_state) ? now : NULL, current};
    int rc = stmt == NULL ? SQLITE_ERROR : store_bind_texts(stmt, 1, texts, 5);
    if (rc == SQLITE_OK)
        rc = update != NULL && update->attempt > 0 ? sqlite3_bind_int(stmt, 6, update->attempt)
                                                   : sqlite3_bind_null(stmt, 6);
    if (rc == SQLITE_OK)
        rc = store_bind_texts(stmt, 7, tail, 3);
    if (rc == SQLITE_OK)
        rc = store_write(stmt);
    store_statement_done(stmt);
    if (rc != SQLITE_OK)
        return -1;
    return sqlite3_changes(store_handle(s)) == 1 ? 0 : 1;
}

int store_job_transition(store *s, const char *id, const char *from_state, const char *to_state,
                         const char *reason, const store_job_update *update, char *err,
                         size_t err_size)
{
    char current[32], now[32];
    int result = -1;
    if (store_jobs_check_transition(s, id, from_state, to_state, update, err, err_size) != 0)
        return -1;
    if (store_transaction_begin(s) != SQLITE_OK)
        return store_jobs_sql_error(s, "starting the transition", id, err, err_size);
    result = store_jobs_read_state(s, id, current, sizeof current);
    if (result == 1) {
        store_set_error(err, err_size, "job %s does not exist", id);
        result = 2;
    }
    if (result != 0)
        goto rollback;
    if (from_state != NULL ? strcmp(current, from_state) != 0 : store_jobs_state_final(current)) {
        store_set_error(err, err_size, "job %s is %s, not %s", id, current,
                        from_state != NULL ? from_state : "an unfinished state");
        result = 1;
        goto rollback;
    }
    store_timestamp_now(now);
    result = store_jobs_update_row(s, id, current, to_state, reason, update, now);
    if (result == -1)
        store_jobs_sql_error(s, "the state update", id, err, err_size);
    if (result == 1) /* cannot happen under the write lock; the SQL checks anyway */
        store_set_error(err, err_size, "job %s changed state during the transition", id);
    if (result == 0 && strcmp(current, to_state) != 0)
        result = store_jobs_insert_event(s, id, now, current, to_state, reason, err, err_size);
    if (result == 0 && store_transaction_commit(s) != SQLITE_OK)
        result = store_jobs_sql_error(s, "committing the transition", id, err, err_size);
    if (result == 0)
        return 0;
rollback:
    store_transaction_rollback(s);
    return result;
}

int store_job_events(store *s, const char *id, json_t **events_out)
{
    if (events_out == NULL)
        return -1;
    *events_out = NULL;
    if (s == NULL || id == NULL)
        return -1;
    return store_jobs_result(store_fetch_events(store_jobs_statement(s, STORE_SQL_JOB_EVENTS),
                                                store_jobs_statement(s, STORE_SQL_JOB_STATE), id,
                                                events_out));
}

/* Binds the distinct known `states` to ?1..?8 (the rest stay NULL); -1 on an unknown one. */
static int store_jobs_bind_states(sqlite3_stmt *stmt, const char *const *states)
{
    const char *bound[STORE_STATE_COUNT];
    int count = 0;
    for (const char *const *state = states; *state != NULL; state++) {
        int seen = 0;
        if (!store_jobs_state_known(*state))
            return -1;
        for (int i = 0; i < count; i++)
            seen |= strcmp(bound[i], *state) == 0;
        if (seen)
            continue; /* distinct known states always fit the eight placeholders */
        bound[count] = *state;
        if (store_bind_text(stmt, ++count, *state) != SQLITE_OK)
            return -1;
    }
    return 0;
}

/* base64url without padding of "created_at|id": opaque to clients, cheap to check. */
static char *store_jobs_token_encode(const char *created_at, const char *id)
{
    size_t at_len = strlen(created_at), len = at_len + 1 + strlen(id);
    char *plain = malloc(len + 1);
    char *token = malloc(4 * ((len + 2) / 3) + 1);
    if (plain == NULL || token == NULL || len > STORE_TOKEN_MAX / 4 * 3)
        goto fail;
    memcpy(plain, created_at, at_len);
    plain[at_len] = '|';
    memcpy(plain + at_len + 1, id, len - at_len); /* with its NUL */
    int used = EVP_EncodeBlock((unsigned char *)token, (const unsigned char *)plain, (int)len);
    while (used > 0 && token[used - 1] == '=')
        used--;
    token[used] = '\0';
    for (char *c = token; *c != '\0'; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    free(plain);
    return token;
fail:
    free(plain);
    free(token);
    return NULL;
}

/* Turns base64url back into standard, padded base64 in `out` (size >= len + 3). */
static int store_jobs_token_to_base64(const char *token, size_t len, char *out)
{
    if (len == 0 || len > STORE_TOKEN_MAX || len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!plain && c != '-' && c != '_')
            return -1;
        out[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t padded = len;
    while (padded % 4 != 0)
        out[padded++] = '=';
    out[padded] = '\0';
    return (int)(padded - len);
}

/*
 * Decodes a page token into `created_at` and a malloc'd id: 0, or -1 when it
 * is not one of ours (bad characters, bad shape, bad timestamp).
 */
static int store_jobs_token_decode(const char *token, char created_at[32], char **id_out)
{
    size_t len = strlen(token);
    char *base64 = malloc(len + 4);
    unsigned char *plain = malloc(len + 4);
    int result = -1;
    int padding = base64 != NULL ? store_jobs_token_to_base64(token, len, base64) : -1;
    if (padding < 0 || plain == NULL)
        goto done;
    int decoded = EVP_DecodeBlock(plain, (const unsigned char *)base64, (int)strlen(base64));
    if (decoded < padding)
        goto done;
    decoded -= padding; /* EVP_DecodeBlock counts the zero bytes padding stands for */
    plain[decoded] = '\0';
    char *bar = memchr(plain, '|', (size_t)decoded);
    if (bar == NULL || strlen((char *)plain) != (size_t)decoded || bar[1] == '\0' ||
        !store_timestamp_valid((char *)plain, (size_t)(bar - (char *)plain)))
        goto done;
    memcpy(created_at, plain, STORE_TIMESTAMP_LEN);
    created_at[STORE_TIMESTAMP_LEN] = '\0';
    *id_out = strdup(bar + 1);
    result = *id_out != NULL ? 0 : -1;
done:
    free(base64);
    free(plain);
    return result;
}

/* The token for the page after `rows` (its last row's key). */
static int store_jobs_next_token(json_t *rows, char **next_out)
{
    json_t *last = json_array_get(rows, json_array_size(rows) - 1);
    const char *created_at = json_string_value(json_object_get(last, "created_at"));
    const char *id = json_string_value(json_object_get(last, "id"));
    if (created_at == NULL || id == NULL)
        return -1;
    *next_out = store_jobs_token_encode(created_at, id);
    return *next_out != NULL ? 0 : -1;
}

static int store_jobs_bind_list(sqlite3_stmt *stmt, int variant, const store_job_filter *filter,
                                const char *after_at, const char *after_id)
{
    int rc = SQLITE_OK;
    if (variant & STORE_JOB_LIST_BY_TEAM)
        rc = store_bind_text(stmt, 1, filter->team);
    if (rc == SQLITE_OK && (variant & STORE_JOB_LIST_BY_STATE))
        rc = store_bind_text(stmt, 2, filter->state);
    if (rc == SQLITE_OK)
        rc = store_bind_text(stmt, 3, filter->name);
    /* One row more than asked says whether another page follows. */
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, (sqlite3_int64)filter->limit + 1);
    if (rc == SQLITE_OK && (variant & STORE_JOB_LIST_AFTER))
        rc = store_bind_text(stmt, 5, after_at);
    if (rc == SQLITE_OK && (variant & STORE_JOB_LIST_AFTER))
        rc = store_bind_text(stmt, 6, after_id);
    return rc == SQLITE_OK ? 0 : -1;
}

int store_job_list(store *s, const store_job_filter *filter, json_t **jobs_out,
                   char **next_token_out)
{
    sqlite3_stmt *stmt = NULL;
    json_t *jobs = NULL;
    char after_at[32] = "", *after_id = NULL;
    int variant = 0, more = 0, result = -1;
    if (jobs_out == NULL || next_token_out == NULL)
        return -1;
    *jobs_out = NULL;
    *next_token_out = NULL;
    if (s == NULL || filter == NULL || filter->limit < 1 || filter->limit > STORE_JOB_LIST_MAX)
        return -1;
    if (filter->page_token != NULL && filter->page_token[0] != '\0') {
        if (store_jobs_token_decode(filter->page_token, after_at, &after_id) != 0)
            return -2;
        variant |= STORE_JOB_LIST_AFTER;
    }
    variant |= filter->team != NULL ? STORE_JOB_LIST_BY_TEAM : 0;
    variant |= filter->state != NULL ? STORE_JOB_LIST_BY_STATE : 0;
    stmt = store_jobs_statement(s, (store_sql_id)(STORE_SQL_JOB_LIST + variant));
    if (stmt == NULL || store_jobs_bind_list(stmt, variant, filter, after_at, after_id) != 0 ||
        (jobs = json_array()) == NULL)
        goto done;
    result = store_collect_rows(stmt, store_jobs_json_columns, filter->limit, jobs, &more);
    if (result == 0 && more)
        result = store_jobs_next_token(jobs, next_token_out);
done:
    store_statement_done(stmt);
    free(after_id);
    if (result == 0)
        *jobs_out = jobs;
    else
        json_decref(jobs);
    return result;
}

int store_jobs_in_states(store *s, const char *const *states, size_t limit, json_t **jobs_out)
{
    sqlite3_stmt *stmt = NULL;
    json_t *jobs = NULL;
    int more = 0, result = -1;
    if (jobs_out == NULL)
        return -1;
    *jobs_out = NULL;
    if (s == NULL || states == NULL)
        return -1;
    stmt = store_jobs_statement(s, STORE_SQL_JOBS_IN_STATES);
    if (stmt == NULL || store_jobs_bind_states(stmt, states) != 0 ||
        sqlite3_bind_int64(stmt, 9, limit == 0 ? INT64_MAX : (sqlite3_int64)limit) != SQLITE_OK ||
        (jobs = json_array()) == NULL)
        goto done;
    result = store_collect_rows(stmt, store_jobs_json_columns, limit == 0 ? SIZE_MAX : limit, jobs,
                                &more);
done:
    store_statement_done(stmt);
    if (result == 0)
        *jobs_out = jobs;
    else
        json_decref(jobs);
    return result;
}

int store_jobs_count(store *s, const char *const *states, const char *team, const char *backend,
                     int64_t *count_out)
{
    sqlite3_stmt *stmt = NULL;
    int result = -1;
    if (count_out == NULL)
        return -1;
    *count_out = 0;
    if (s == NULL || states == NULL)
        return -1;
    stmt = store_jobs_statement(s, STORE_SQL_JOBS_COUNT);
    if (stmt == NULL || store_jobs_bind_states(stmt, states) != 0 ||
        store_bind_text(stmt, 9, team) != SQLITE_OK ||
        store_bind_text(stmt, 10, backend) != SQLITE_OK)
        goto done;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *count_out = sqlite3_column_int64(stmt, 0);
        result = 0;
    }
done:
    store_statement_done(stmt);
    return result;
}

int store_jobs_query_plan(store *s, store_sql_id id, char *out, size_t out_size)
{
    if (id >= STORE_SQL_COUNT || store_jobs_sql[id] == NULL)
        return -1;
    return store_explain(s, store_jobs_sql[id], out, out_size);
}
