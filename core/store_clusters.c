/*
 * store_clusters.c - provisioned clusters, their events and their
 * idempotency keys in the store.
 *
 * The discipline of store_jobs.c: every write is one BEGIN IMMEDIATE
 * transaction, so the row, its cluster_events row, the idempotency key and
 * (for a hand-over) the deletion of the warm row commit together or not at
 * all.  IMMEDIATE takes the write lock before the first read, so the state
 * a change checks is the state it updates; the change is still written as
 * "UPDATE ... WHERE id = ? AND state = <what we read>" so the condition
 * lives in the SQL, as it must on a replicated engine.
 *
 * Idempotency keys share the idempotency_keys table and its code with jobs
 * (store_idempotency.c), scoped to the team, with resource_kind 'cluster';
 * a key that names a job is "another request" and so a conflict.  Expired
 * keys count as absent.
 *
 * An update is one cached statement for any set of fields: each settable
 * column has a flag and a value ("col = CASE WHEN ?flag THEN ?value ELSE
 * col END").  Lists have one statement with a team and one without, so a
 * team's lookups use the (team, environment, region, state) index; the
 * other filters are residual tests over that team's few clusters.  Warm
 * clusters have team "", so the same index finds a pool's clusters.
 *
 * Statements are prepared on first use and cached by store.c
 * (store_internal.h).  Rows become jansson objects keyed by column name,
 * with "catalogs" and "spec" parsed back into JSON.
 */
#include "store_clusters.h"
#include "store_internal.h"

#include <sparkplane/plugin.h>
#include <stdlib.h>
#include <string.h>

#define STORE_CLUSTER_COLUMNS                                                                      \
    "id, team, environment, region, size, state, backend, backend_ref, pool, endpoint, "           \
    "namespace, driver, token, executors, cores, memory_mib, catalogs, spec, reason, "             \
    "expires_at, created_by, created_at, updated_at"
#define STORE_CLUSTER_LIVE "('PROVISIONING', 'RUNNING', 'SCALING', 'TERMINATING')"

#define STORE_CLUSTER_LIST_SQL(team)                                                               \
    "SELECT " STORE_CLUSTER_COLUMNS " FROM clusters WHERE " team                                   \
    " (?2 IS NULL OR environment = ?2) AND (?3 IS NULL OR region = ?3) "                           \
    "AND (?4 IS NULL OR state = ?4) AND (?5 = 1 OR pool IS NULL) "                                 \
    "AND (?6 = 0 OR state NOT IN ('TERMINATED', 'FAILED')) "                                       \
    "ORDER BY created_at, id LIMIT ?7"

/* Each settable column, in the order of store_cluster_fields: "set it" flag, then value. */
#define STORE_CLUSTER_UPDATE_SQL                                                                   \
    "UPDATE clusters SET state = COALESCE(?3, state), updated_at = ?4, "                           \
    "driver = CASE WHEN ?5 THEN ?6 ELSE driver END, "                                              \
    "endpoint = CASE WHEN ?7 THEN ?8 ELSE endpoint END, "                                          \
    "executors = CASE WHEN ?9 THEN ?10 ELSE executors END, "                                       \
    "cores = CASE WHEN ?11 THEN ?12 ELSE cores END, "                                              \
    "memory_mib = CASE WHEN ?13 THEN ?14 ELSE memory_mib END, "                                    \
    "size = CASE WHEN ?15 THEN ?16 ELSE size END, "                                                \
    "expires_at = CASE WHEN ?17 THEN ?18 ELSE expires_at END, "                                    \
    "spec = CASE WHEN ?19 THEN ?20 ELSE spec END, "                                                \
    "reason = CASE WHEN ?21 THEN ?22 ELSE reason END "                                             \
    "WHERE id = ?1 AND state = ?2"

static const char *const store_clusters_sql[STORE_SQL_COUNT] = {
    [STORE_SQL_CLUSTER_INSERT] =
        "INSERT INTO clusters (id, team, environment, region, size, state, backend, "
        "backend_ref, pool, endpoint, namespace, driver, token, executors, cores, memory_mib, "
        "catalogs, spec, reason, expires_at, created_by, created_at, updated_at) VALUES (?1, "
        "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
        "?21, ?22, ?22)",
    [STORE_SQL_CLUSTER_GET] = "SELECT " STORE_CLUSTER_COLUMNS " FROM clusters WHERE id = ?1",
    [STORE_SQL_CLUSTER_STATE] = "SELECT state FROM clusters WHERE id = ?1",
    [STORE_SQL_CLUSTER_UPDATE] = STORE_CLUSTER_UPDATE_SQL,
    [STORE_SQL_CLUSTER_DELETE] = "DELETE FROM clusters WHERE id = ?1",
    /* A hand-over takes only a warm cluster that is still up. */
    [STORE_SQL_CLUSTER_TAKE_WARM] =
        "DELETE FROM clusters WHERE id = ?1 AND pool IS NOT NULL AND state = 'RUNNING'",
    [STORE_SQL_CLUSTER_EVENT_INSERT] =
        "INSERT INTO cluster_events (cluster_id, at, from_state, to_state, reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STORE_SQL_CLUSTER_EVENTS] = "SELECT at, from_state, to_state, reason FROM cluster_events "
                                 "WHERE cluster_id = ?1 ORDER BY id",
    [STORE_SQL_CLUSTER_LIST_ALL] = STORE_CLUSTER_LIST_SQL(""),
    [STORE_SQL_CLUSTER_LIST_BY_TEAM] = STORE_CLUSTER_LIST_SQL("team = ?1 AND"),
    [STORE_SQL_CLUSTER_USAGE] = "SELECT count(*), COALESCE(sum(cores), 0) FROM clusters "
                                "WHERE team = ?1 AND pool IS NULL AND state IN " STORE_CLUSTER_LIVE,
    /* A TERMINATING cluster is already on its way out: the reaper leaves it. */
    [STORE_SQL_CLUSTER_EXPIRED] =
        "SELECT id FROM clusters WHERE state IN ('PROVISIONING', 'RUNNING', 'SCALING') "
        "AND expires_at IS NOT NULL AND expires_at <= ?1 AND pool IS NULL "
        "ORDER BY expires_at, id",
};

static const char *const store_cluster_states[] = {
    "PROVISIONING", "RUNNING", "SCALING", "TERMINATING", "TERMINATED", "FAILED", NULL,
};

/* The columns store_cluster_update may set, in the order of its ?flag/?value pairs. */
typedef enum store_cluster_field_kind {
    STORE_FIELD_TEXT,         /* a non-empty string */
    STORE_FIELD_TEXT_OR_NULL, /* null clears */
    STORE_FIELD_COUNT,        /* an integer >= 0 */
    STORE_FIELD_TIME_OR_NULL, /* the schema's timestamp shape; null clears */
    STORE_FIELD_OBJECT,       /* stored as JSON text */
} store_cluster_field_kind;

static const struct {
    const char *name;
    store_cluster_field_kind kind;
} store_cluster_fields[] = {
    {"driver", STORE_FIELD_TEXT_OR_NULL},     {"endpoint", STORE_FIELD_TEXT_OR_NULL},
    {"executors", STORE_FIELD_COUNT},         {"cores", STORE_FIELD_COUNT},
    {"memory_mib", STORE_FIELD_COUNT},        {"size", STORE_FIELD_TEXT},
    {"expires_at", STORE_FIELD_TIME_OR_NULL}, {"spec", STORE_FIELD_OBJECT},
    {"reason", STORE_FIELD_TEXT_OR_NULL},
};

#define STORE_CLUSTER_FIELD_COUNT (sizeof store_cluster_fields / sizeof store_cluster_fields[0])
#define STORE_CLUSTER_FIRST_FIELD_PARAM 5 /* ?5/?6 is the first flag/value pair */

/* What an update sets: values[i] is NULL when field i stays. */
typedef struct store_cluster_changes {
    const json_t *values[STORE_CLUSTER_FIELD_COUNT];
    char *spec_text;
    const char *reason; /* the transition's reason, when no "reason" field overrides it */
} store_cluster_changes;

static sqlite3_stmt *store_clusters_statement(store *s, store_sql_id id)
{
    return store_statement(s, id, store_clusters_sql[id]);
}

static int store_clusters_state_known(const char *state)
{
    for (size_t i = 0; state != NULL && store_cluster_states[i] != NULL; i++)
        if (strcmp(state, store_cluster_states[i]) == 0)
            return 1;
    return 0;
}

static int store_clusters_sql_error(store *s, const char *what, const char *id, char *err,
                                    size_t err_size)
{
    store_set_error(err, err_size, "%s for cluster %s failed: %s", what, id,
                    sqlite3_errmsg(store_handle(s)));
    return SP_ERROR;
}

/* The columns of a cluster row that hold JSON text. */
static const char *const store_clusters_json_columns[] = {"catalogs", "spec", NULL};

/* SP_OK and the row, SP_NOT_FOUND, SP_ERROR (a store_fetch_fn).  Works inside a transaction. */
static int store_clusters_fetch(store *s, const char *id, json_t **cluster_out)
{
    return store_fetch_row(store_clusters_statement(s, STORE_SQL_CLUSTER_GET), id,
                           store_clusters_json_columns, cluster_out);
}

int store_cluster_get(store *s, const char *id, json_t **cluster_out)
{
    if (cluster_out == NULL)
        return SP_ERROR;
    *cluster_out = NULL;
    if (s == NULL || id == NULL)
        return SP_ERROR;
    return store_clusters_fetch(s, id, cluster_out);
}

/* The state into `out`: SP_OK, SP_NOT_FOUND, SP_ERROR. */
static int store_clusters_read_state(store *s, const char *id, char *out, size_t out_size)
{
    return store_fetch_text(store_clusters_statement(s, STORE_SQL_CLUSTER_STATE), id, out,
                            out_size);
}

static int store_clusters_insert_event(store *s, const char *id, const char *at, const char *from,
                                       const char *to, const char *reason, char *err,
                                       size_t err_size)
{
    const char *texts[] = {id, at, from, to, reason};
    if (store_write_texts(store_clusters_statement(s, STORE_SQL_CLUSTER_EVENT_INSERT), texts, 5) ==
        SQLITE_OK)
        return SP_OK;
    return store_clusters_sql_error(s, "the event insert", id, err, err_size);
}

/* ---- create ------------------------------------------------------------- */

static int store_clusters_check_text(const char *value, const char *field, char *err,
                                     size_t err_size)
{
    if (value != NULL && value[0] != '\0')
        return 0;
    store_set_error(err, err_size, "cluster %s is empty", field);
    return -1;
}

static int store_clusters_check_idempotency(const store_cluster_new *cluster,
                                            const store_idempotency *idem, char *err,
                                            size_t err_size)
{
    if (store_idempotency_check(idem, err, err_size) != 0)
        return -1;
    if (idem != NULL && idem->key != NULL && cluster->team[0] == '\0') {
        store_set_error(err, err_size, "a warm cluster cannot have an idempotency key");
        return -1;
    }
    return 0;
}

/* A warm cluster has a pool and no team; a user's cluster a team and no pool. */
static int store_clusters_check_ownership(const store_cluster_new *cluster, char *err,
                                          size_t err_size)
{
    int warm = cluster->pool != NULL;
    if (cluster->team == NULL || (warm && cluster->pool[0] == '\0')) {
        store_set_error(err, err_size, "cluster %s is NULL or pool is empty",
                        cluster->team == NULL ? "team" : "pool");
        return -1;
    }
    if (warm != (cluster->team[0] == '\0')) {
        store_set_error(err, err_size,
                        warm ? "cluster pool is set but team is '%s'; a warm cluster "
                               "has team \"\""
                             : "cluster team is empty%s; only a warm cluster (with a "
                               "pool) has no team",
                        warm ? cluster->team : "");
        return -1;
    }
    return 0;
}

static int store_clusters_check_numbers(const store_cluster_new *cluster, char *err,
                                        size_t err_size)
{
    const struct {
        const char *name;
        int64_t value;
    } numbers[] = {{"executors", cluster->executors},
                   {"cores", cluster->cores},
                   {"memory_mib", cluster->memory_mib}};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (numbers[i].value < 0) {
            store_set_error(err, err_size, "cluster %s is %lld; it must be >= 0", numbers[i].name,
                            (long long)numbers[i].value);
            return -1;
        }
    return 0;
}

static int store_clusters_check_new(store *s, const store_cluster_new *cluster,
                                    const store_idempotency *idem, char *err, size_t err_size)
{
    if (s == NULL || cluster == NULL) {
        store_set_error(err, err_size, "no store or no cluster given");
        return -1;
    }
    if (store_clusters_check_text(cluster->id, "id", err, err_size) != 0 ||
        store_clusters_check_text(cluster->environment, "environment", err, err_size) != 0 ||
        store_clusters_check_text(cluster->region, "region", err, err_size) != 0 ||
        store_clusters_check_text(cluster->size, "size", err, err_size) != 0 ||
        store_clusters_check_ownership(cluster, err, err_size) != 0 ||
        store_clusters_check_numbers(cluster, err, err_size) != 0)
        return -1;
    if (!store_clusters_state_known(cluster->state)) {
        store_set_error(err, err_size, "cluster state '%s' is not a cluster state",
                        cluster->state != NULL ? cluster->state : "(null)");
        return -1;
    }
    if (!json_is_object(cluster->spec)) {
        store_set_error(err, err_size, "cluster spec must be a JSON object");
        return -1;
    }
    if (cluster->catalogs != NULL && !json_is_array(cluster->catalogs)) {
        store_set_error(err, err_size, "cluster catalogs must be a JSON array");
        return -1;
    }
    if (cluster->expires_at != NULL &&
        !store_timestamp_valid(cluster->expires_at, strlen(cluster->expires_at))) {
        store_set_error(err, err_size, "cluster expires_at '%s' is not YYYY-MM-DDTHH:MM:SS.mmmZ",
                        cluster->expires_at);
        return -1;
    }
    return store_clusters_check_idempotency(cluster, idem, err, err_size);
}

/* The hand-over: deletes the warm row, or fails with "warm cluster taken". */
static int store_clusters_take_warm(store *s, const char *warm_id, char *err, size_t err_size)
{
    const char *texts[] = {warm_id};
    if (store_write_texts(store_clusters_statement(s, STORE_SQL_CLUSTER_TAKE_WARM), texts, 1) !=
        SQLITE_OK)
        return store_clusters_sql_error(s, "taking the warm cluster", warm_id, err, err_size);
    if (sqlite3_changes(store_handle(s)) == 1)
        return SP_OK;
    store_set_error(err, err_size, "warm cluster taken");
    return SP_CONFLICT;
}

static int store_clusters_insert_row(store *s, const store_cluster_new *cluster,
                                     const char *catalogs_text, const char *spec_text,
                                     const char *now, char *err, size_t err_size)
{
    sqlite3_stmt *stmt = store_clusters_statement(s, STORE_SQL_CLUSTER_INSERT);
    const char *head[] = {cluster->id,       cluster->team,           cluster->environment,
                          cluster->region,   cluster->size,           cluster->state,
                          cluster->backend,  cluster->backend_ref,    cluster->pool,
                          cluster->endpoint, cluster->namespace_name, cluster->driver,
                          cluster->token};
    const int64_t numbers[] = {cluster->executors, cluster->cores, cluster->memory_mib};
    const char *tail[] = {catalogs_text,       spec_text,           cluster->reason,
                          cluster->expires_at, cluster->created_by, now};
    if (stmt == NULL)
        return store_clusters_sql_error(s, "preparing the insert", cluster->id, err, err_size);
    int rc = store_bind_texts(stmt, 1, head, 13);
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_int64(stmt, 14 + i, numbers[i]);
    if (rc == SQLITE_OK)
        rc = store_bind_texts(stmt, 17, tail, 6);
    if (rc == SQLITE_OK)
        rc = store_write(stmt);
    store_statement_done(stmt);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        store_set_error(err, err_size, "cluster id %s already exists", cluster->id);
        return SP_CONFLICT;
    }
    return rc == SQLITE_OK ? SP_OK
                           : store_clusters_sql_error(s, "insert", cluster->id, err, err_size);
}

/* The writes of a create, after the key check: warm row, row, event, key, result. */
static int store_clusters_insert_all(store *s, const store_cluster_new *cluster,
                                     const store_idempotency *idem, const char *warm_id,
                                     const char *catalogs_text, const char *spec_text,
                                     const char *now, json_t **found, char *err, size_t err_size)
{
    if (warm_id != NULL && store_clusters_take_warm(s, warm_id, err, err_size) != SP_OK)
        return -1;
    if (store_clusters_insert_row(s, cluster, catalogs_text, spec_text, now, err, err_size) !=
            SP_OK ||
        store_clusters_insert_event(s, cluster->id, now, NULL, cluster->state, cluster->reason, err,
                                    err_size) != SP_OK)
        return -1;
    if (idem != NULL && idem->key != NULL &&
        store_idempotency_insert(s, STORE_KIND_CLUSTER, cluster->team, idem, cluster->id, now, err,
                                 err_size) != 0)
        return -1;
    if (found != NULL && store_clusters_fetch(s, cluster->id, found) != SP_OK) {
        store_clusters_sql_error(s, "reading back the new row", cluster->id, err, err_size);
        return -1;
    }
    return 0;
}

/* The JSON texts of the catalogs and spec columns; -1 when out of memory. */
static int store_clusters_serialise(const store_cluster_new *cluster, char **catalogs_text,
                                    char **spec_text, char *err, size_t err_size)
{
    *catalogs_text =
        cluster->catalogs != NULL ? json_dumps(cluster->catalogs, JSON_COMPACT) : strdup("[]");
    *spec_text = json_dumps(cluster->spec, JSON_COMPACT);
    if (*catalogs_text != NULL && *spec_text != NULL)
        return 0;
    store_set_error(err, err_size, "catalogs or spec of cluster %s cannot be serialised",
                    cluster->id);
    return -1;
}

store_create_result store_cluster_create(store *s, const store_cluster_new *cluster,
                                         const store_idempotency *idem, const char *warm_id,
                                         json_t **cluster_out, char *err, size_t err_size)
{
    store_create_result result = STORE_FAILED;
    json_t *found = NULL;
    char *catalogs_text = NULL, *spec_text = NULL;
    char now[32];
    if (cluster_out != NULL)
        *cluster_out = NULL;
    if (store_clusters_check_new(s, cluster, idem, err, err_size) != 0 ||
        store_clusters_serialise(cluster, &catalogs_text, &spec_text, err, err_size) != 0)
        goto done;
    store_timestamp_now(now);
    if (store_transaction_begin(s) != SQLITE_OK) {
        store_clusters_sql_error(s, "starting the create transaction", cluster->id, err, err_size);
        goto done;
    }
    if (idem != NULL && idem->key != NULL) {
        result =
            store_idempotency_lookup_for_create(s, STORE_KIND_CLUSTER, store_clusters_fetch,
                                                cluster->team, idem, now, &found, err, err_size);
        if (result != STORE_CREATED)
            goto rollback; /* a replay or a conflict writes nothing, and takes no warm row */
    }
    result = STORE_FAILED;
    if (store_clusters_insert_all(s, cluster, idem, warm_id, catalogs_text, spec_text, now,
                                  cluster_out ? &found : NULL, err, err_size) != 0)
        goto rollback;
    if (store_transaction_commit(s) != SQLITE_OK) {
        store_clusters_sql_error(s, "committing the create", cluster->id, err, err_size);
        goto rollback;
    }
    result = STORE_CREATED;
    goto done;
rollback:
    store_transaction_rollback(s);
done:
    if (cluster_out != NULL && (result == STORE_CREATED || result == STORE_REPLAYED))
        *cluster_out = found;
    else
        json_decref(found);
    free(catalogs_text);
    free(spec_text);
    return result;
}

/* ---- list --------------------------------------------------------------- */

static int store_clusters_bind_filter(sqlite3_stmt *stmt, const store_cluster_filter *filter)
{
    const char *texts[] = {filter->environment, filter->region, filter->state};
    int rc = filter->team != NULL ? store_bind_text(stmt, 1, filter->team) : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = store_bind_texts(stmt, 2, texts, 3);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 5, filter->include_warm ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 6, filter->live_only ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 7,
                                filter->limit == 0 ? INT64_MAX : (sqlite3_int64)filter->limit);
    return rc;
}

int store_cluster_list(store *s, const store_cluster_filter *filter, json_t **clusters_out)
{
    sqlite3_stmt *stmt = NULL;
    json_t *clusters = NULL;
    int more = 0, result = SP_ERROR;
    if (clusters_out == NULL)
        return SP_ERROR;
    *clusters_out = NULL;
    if (s == NULL || filter == NULL)
        return SP_ERROR;
    stmt = store_clusters_statement(s, filter->team != NULL ? STORE_SQL_CLUSTER_LIST_BY_TEAM
                                                            : STORE_SQL_CLUSTER_LIST_ALL);
    if (stmt == NULL || store_clusters_bind_filter(stmt, filter) != SQLITE_OK ||
        (clusters = json_array()) == NULL)
        goto done;
    /* The statement's LIMIT already bounds the rows. */
    if (store_collect_rows(stmt, store_clusters_json_columns, SIZE_MAX, clusters, &more) == 0)
        result = SP_OK;
done:
    store_statement_done(stmt);
    if (result == SP_OK)
        *clusters_out = clusters;
    else
        json_decref(clusters);
    return result;
}

/* ---- update ------------------------------------------------------------- */

static int store_clusters_field_index(const char *name)
{
    for (size_t i = 0; i < STORE_CLUSTER_FIELD_COUNT; i++)
        if (strcmp(store_cluster_fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Whether `value` fits field `index`; the message names the field otherwise. */
static int store_clusters_field_valid(size_t index, const json_t *value, char *err, size_t err_size)
{
    const char *name = store_cluster_fields[index].name;
    const char *text = json_string_value(value);
    switch (store_cluster_fields[index].kind) {
    case STORE_FIELD_TEXT:
        if (text != NULL && text[0] != '\0')
            return 1;
        store_set_error(err, err_size, "%s: expected a non-empty string", name);
        return 0;
    case STORE_FIELD_TEXT_OR_NULL:
        if (json_is_null(value) || text != NULL)
            return 1;
        store_set_error(err, err_size, "%s: expected a string or null", name);
        return 0;
    case STORE_FIELD_COUNT:
        if (json_is_integer(value) && json_integer_value(value) >= 0)
            return 1;
        store_set_error(err, err_size, "%s: expected an integer >= 0", name);
        return 0;
    case STORE_FIELD_TIME_OR_NULL:
        if (json_is_null(value) || (text != NULL && store_timestamp_valid(text, strlen(text))))
            return 1;
        store_set_error(err, err_size, "%s: expected null or a timestamp YYYY-MM-DDTHH:MM:SS.mmmZ",
                        name);
        return 0;
    case STORE_FIELD_OBJECT:
        if (json_is_object(value))
            return 1;
        store_set_error(err, err_size, "%s: expected a JSON object", name);
        return 0;
    }
    return 0;
}

/* Fills `changes` from `fields`: SP_OK, SP_INVALID (message names the field), SP_ERROR. */
static int store_clusters_read_changes(const json_t *fields, store_cluster_changes *changes,
                                       char *err, size_t err_size)
{
    const char *name;
    json_t *value;
    if (fields == NULL)
        return SP_OK;
    if (!json_is_object(fields)) {
        store_set_error(err, err_size, "fields must be a JSON object");
        return SP_INVALID;
    }
    json_object_foreach((json_t *)fields, name, value) {
        int index = store_clusters_field_index(name);
        if (index < 0) {
            store_set_error(err, err_size, "%s: not a cluster field an update may set", name);
            return SP_INVALID;
        }
        if (!store_clusters_field_valid((size_t)index, value, err, err_size))
            return SP_INVALID;
        changes->values[index] = value;
    }
    const json_t *spec = changes->values[store_clusters_field_index("spec")];
    if (spec != NULL && (changes->spec_text = json_dumps(spec, JSON_COMPACT)) == NULL) {
        store_set_error(err, err_size, "spec: cannot be serialised");
        return SP_ERROR;
    }
    return SP_OK;
}

static int store_clusters_bind_change(sqlite3_stmt *stmt, const store_cluster_changes *changes,
                                      size_t index)
{
    int flag = STORE_CLUSTER_FIRST_FIELD_PARAM + 2 * (int)index, param = flag + 1;
    const json_t *value = changes->values[index];
    /* A transition's reason becomes the row's reason unless a "reason" field says otherwise. */
    if (value == NULL && changes->reason != NULL &&
        strcmp(store_cluster_fields[index].name, "reason") == 0) {
        int rc = sqlite3_bind_int(stmt, flag, 1);
        return rc == SQLITE_OK ? store_bind_text(stmt, param, changes->reason) : rc;
    }
    int rc = sqlite3_bind_int(stmt, flag, value != NULL);
    if (rc != SQLITE_OK || value == NULL || json_is_null(value))
        return rc == SQLITE_OK ? sqlite3_bind_null(stmt, param) : rc;
    if (json_is_integer(value))
        return sqlite3_bind_int64(stmt, param, json_integer_value(value));
    if (json_is_object(value))
        return store_bind_text(stmt, param, changes->spec_text);
    return store_bind_text(stmt, param, json_string_value(value));
}

/* The row update, conditional on the state read under the write lock: SP_OK or SP_ERROR. */
static int store_clusters_update_row(store *s, const char *id, const char *current,
                                     const char *to_state, const store_cluster_changes *changes,
                                     const char *now, char *err, size_t err_size)
{
    sqlite3_stmt *stmt = store_clusters_statement(s, STORE_SQL_CLUSTER_UPDATE);
    const char *texts[] = {id, current, to_state, now};
    int rc = stmt == NULL ? SQLITE_ERROR : store_bind_texts(stmt, 1, texts, 4);
    for (size_t i = 0; i < STORE_CLUSTER_FIELD_COUNT && rc == SQLITE_OK; i++)
        rc = store_clusters_bind_change(stmt, changes, i);
    if (rc == SQLITE_OK)
        rc = store_write(stmt);
    store_statement_done(stmt);
    if (rc != SQLITE_OK)
        return store_clusters_sql_error(s, "the update", id, err, err_size);
    if (sqlite3_changes(store_handle(s)) == 1)
        return SP_OK;
    /* Cannot happen under the write lock; the SQL checks anyway. */
    store_set_error(err, err_size, "cluster %s changed state during the update", id);
    return SP_ERROR;
}

static int store_clusters_check_update(store *s, const char *id, const char *expect_state,
                                       const char *to_state, char *err, size_t err_size)
{
    if (s == NULL || id == NULL || id[0] == '\0') {
        store_set_error(err, err_size, "an update needs a store and a cluster id");
        return SP_INVALID;
    }
    if (to_state != NULL && !store_clusters_state_known(to_state)) {
        store_set_error(err, err_size, "to_state '%s' is not a cluster state", to_state);
        return SP_INVALID;
    }
    if (expect_state != NULL && !store_clusters_state_known(expect_state)) {
        store_set_error(err, err_size, "expect_state '%s' is not a cluster state", expect_state);
        return SP_INVALID;
    }
    return SP_OK;
}

/* Inside the transaction: the current state, checked against expect_state. */
static int store_clusters_current_state(store *s, const char *id, const char *expect_state,
                                        char *current, size_t current_size, char *err,
                                        size_t err_size)
{
    int rc = store_clusters_read_state(s, id, current, current_size);
    if (rc == SP_NOT_FOUND)
        store_set_error(err, err_size, "cluster %s does not exist", id);
    else if (rc != SP_OK)
        store_clusters_sql_error(s, "reading the state", id, err, err_size);
    else if (expect_state != NULL && strcmp(current, expect_state) != 0) {
        store_set_error(err, err_size, "cluster %s is %s, not %s", id, current, expect_state);
        rc = SP_CONFLICT;
    }
    return rc;
}

int store_cluster_update(store *s, const char *id, const char *expect_state, const char *to_state,
                         const char *reason, const json_t *fields, json_t **cluster_out, char *err,
                         size_t err_size)
{
    store_cluster_changes changes = {.reason = to_state != NULL ? reason : NULL};
    char current[32], now[32];
    int result;
    if (cluster_out != NULL)
        *cluster_out = NULL;
    result = store_clusters_check_update(s, id, expect_state, to_state, err, err_size);
    if (result == SP_OK)
        result = store_clusters_read_changes(fields, &changes, err, err_size);
    if (result != SP_OK)
        goto done;
    if (store_transaction_begin(s) != SQLITE_OK) {
        result = store_clusters_sql_error(s, "starting the update", id, err, err_size);
        goto done;
    }
    result =
        store_clusters_current_state(s, id, expect_state, current, sizeof current, err, err_size);
    if (result != SP_OK)
        goto rollback;
    store_timestamp_now(now);
    result = store_clusters_update_row(s, id, current, to_state, &changes, now, err, err_size);
    if (result == SP_OK && to_state != NULL && strcmp(current, to_state) != 0)
        result = store_clusters_insert_event(s, id, now, current, to_state, reason, err, err_size);
    if (result == SP_OK && cluster_out != NULL && store_clusters_fetch(s, id, cluster_out) != SP_OK)
        result = store_clusters_sql_error(s, "reading back the row", id, err, err_size);
    if (result == SP_OK && store_transaction_commit(s) != SQLITE_OK)
        result = store_clusters_sql_error(s, "committing the update", id, err, err_size);
    if (result == SP_OK)
        goto done;
rollback:
    store_transaction_rollback(s);
    if (cluster_out != NULL) {
        json_decref(*cluster_out);
        *cluster_out = NULL;
    }
done:
    free(changes.spec_text);
    return result;
}

/* ---- notes, deletes, events --------------------------------------------- */

int store_cluster_note(store *s, const char *id, const char *reason, char *err, size_t err_size)
{
    char current[32], now[32];
    int result;
    if (s == NULL || id == NULL || reason == NULL) {
        store_set_error(err, err_size, "a note needs a store, a cluster id and a reason");
        return SP_INVALID;
    }
    if (store_transaction_begin(s) != SQLITE_OK)
        return store_clusters_sql_error(s, "starting the note", id, err, err_size);
    result = store_clusters_current_state(s, id, NULL, current, sizeof current, err, err_size);
    store_timestamp_now(now);
    /* from_state = to_state: the event says something happened without a change. */
    if (result == SP_OK)
        result = store_clusters_insert_event(s, id, now, current, current, reason, err, err_size);
    if (result == SP_OK && store_transaction_commit(s) != SQLITE_OK)
        result = store_clusters_sql_error(s, "committing the note", id, err, err_size);
    if (result != SP_OK)
        store_transaction_rollback(s);
    return result;
}

int store_cluster_delete(store *s, const char *id)
{
    const char *texts[] = {id};
    if (s == NULL || id == NULL)
        return SP_ERROR;
    if (store_write_texts(store_clusters_statement(s, STORE_SQL_CLUSTER_DELETE), texts, 1) !=
        SQLITE_OK)
        return SP_ERROR;
    /* ON DELETE CASCADE takes its events and sessions with it. */
    return sqlite3_changes(store_handle(s)) == 1 ? SP_OK : SP_NOT_FOUND;
}

int store_cluster_events(store *s, const char *id, json_t **events_out)
{
    if (events_out == NULL)
        return SP_ERROR;
    *events_out = NULL;
    if (s == NULL || id == NULL)
        return SP_ERROR;
    return store_fetch_events(store_clusters_statement(s, STORE_SQL_CLUSTER_EVENTS),
                              store_clusters_statement(s, STORE_SQL_CLUSTER_STATE), id, events_out);
}

/* ---- quotas and the reaper ---------------------------------------------- */

int store_cluster_usage(store *s, const char *team, int64_t *clusters_out, int64_t *cores_out)
{
    sqlite3_stmt *stmt = NULL;
    int result = SP_ERROR;
    if (clusters_out == NULL || cores_out == NULL)
        return SP_ERROR;
    *clusters_out = 0;
    *cores_out = 0;
    if (s == NULL || team == NULL)
        return SP_ERROR;
    stmt = store_clusters_statement(s, STORE_SQL_CLUSTER_USAGE);
    if (stmt == NULL || store_bind_text(stmt, 1, team) != SQLITE_OK)
        goto done;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *clusters_out = sqlite3_column_int64(stmt, 0);
        *cores_out = sqlite3_column_int64(stmt, 1);
        result = SP_OK;
    }
done:
    store_statement_done(stmt);
    return result;
}

int store_cluster_expired(store *s, const char *now_text, json_t **ids_out)
{
    sqlite3_stmt *stmt = NULL;
    json_t *ids = NULL;
    int rc, result = SP_ERROR;
    if (ids_out == NULL)
        return SP_ERROR;
    *ids_out = NULL;
    if (s == NULL || now_text == NULL)
        return SP_ERROR;
    stmt = store_clusters_statement(s, STORE_SQL_CLUSTER_EXPIRED);
    if (stmt == NULL || store_bind_text(stmt, 1, now_text) != SQLITE_OK ||
        (ids = json_array()) == NULL)
        goto done;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        if (json_array_append_new(ids, json_string((const char *)sqlite3_column_text(stmt, 0))) !=
            0)
            goto done;
    if (rc == SQLITE_DONE)
        result = SP_OK;
done:
    store_statement_done(stmt);
    if (result == SP_OK)
        *ids_out = ids;
    else
        json_decref(ids);
    return result;
}
