/*
 * clusters.c - provisioned Spark Connect clusters: the operations behind the
 * REST routes (clusters.h) - who may do what, validation, create (cold, or by
 * handing a warm cluster over), scale, ttl, delete, events, discovery and the
 * public view.  The lifecycle is in clusters_lifecycle.c, the periodic work
 * in clusters_pools.c (clusters_internal.h).
 *
 * The store is the truth.  A row moves PROVISIONING -> RUNNING (after the
 * backend's cluster_start answered and the server answered a real Config
 * call) -> SCALING -> RUNNING ... -> TERMINATING -> TERMINATED, or FAILED
 * with the reason; every change is an event (store_clusters.h).  RUNNING
 * user clusters are in the gateway's registry with the cluster's own token
 * and its catalog settings, which the gateway sets in each new session.
 *
 * Warm clusters are rows with `pool` set and no team: started like any
 * other, never listed, and handed over by creating the user's row and
 * deleting the warm one in one transaction; the processes stay (the
 * backend knows the cluster by `backend_ref`).  A periodic tick
 * (provisioning.reap_interval) ends expired clusters, fails clusters that
 * take longer than start_timeout, and refills the pools within
 * pool_budget.  After a start or a reload the backend's reconcile reply
 * says which clusters still run: those are adopted, the rest end.
 */
#include <config.h>

#include "clusters_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_spec.h"
#include "gateway.h"
#include "job_spec.h"
#include "log.h"
#include "principal.h"
#include "store_clusters.h"
#include "store_jobs.h"

/* ---- errors ----------------------------------------------------------------------------- */

static __attribute__((format(printf, 5, 6))) int clusters_fail(clusters_error *err, int status,
                                                               const char *code, const char *field,
                                                               const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int clusters_store_failed(clusters_error *err)
{
    return clusters_fail(err, 500, "internal", NULL, "the cluster store failed");
}

/* [a-z0-9]{n}: the readable random part of ids. */
/* ---- who may do what ------------------------------------------------------------------------ */

static int clusters_check_member(const sp_principal *caller, const char *team, int write,
                                 clusters_error *err)
{
    if (!principal_in_team(caller, team))
        return clusters_fail(err, 403, "forbidden", "team",
                             "%.200s is not a member of team '%.64s'", caller->subject, team);
    if (write && !principal_may_write(caller))
        return clusters_fail(err, 403, "forbidden", NULL,
                             "the viewer role may read clusters but not change them");
    return 0;
}

/* The row `id` if the caller may see it (404 otherwise, also for warm clusters). */
static json_t *clusters_load_visible(clusters *c, const sp_principal *caller, const char *id,
                                     clusters_error *err)
{
    json_t *row = NULL;
    int rc = cluster_registry_valid_id(id) ? store_cluster_get(c->daemon->state, id, &row)
                                           : SP_NOT_FOUND;
    if (rc == SP_OK && !clusters_is_warm(row) &&
        principal_in_team(caller, clusters_str(row, "team")))
        return row;
    if (rc == SP_OK && !clusters_is_warm(row))
        snprintf(err->denial, sizeof(err->denial), "cluster belongs to team %.64s",
                 clusters_str(row, "team"));
    json_decref(row);
    if (rc == SP_ERROR)
        clusters_store_failed(err);
    else
        clusters_fail(err, 404, "not_found", NULL, "no cluster '%.80s'", id);
    return NULL;
}

/* ---- the public view ------------------------------------------------------------------------ */

static json_t *clusters_view(const clusters *c, const json_t *row)
{
    const json_t *spec = json_object_get(row, "spec");
    const char *state = clusters_str(row, "state");
    int estimate = 0;
    if (strcmp(state, "PROVISIONING") == 0) {
        double average =
            c->cold_start_seconds > 0 ? c->cold_start_seconds : CLUSTERS_DEFAULT_ESTIMATE_S;
        double waited =
            clusters_wall_seconds() - clusters_parse_time(clusters_str(row, "created_at"));
        estimate = average > waited ? (int)(average - waited + 0.5) : 1;
    }
    json_t *catalogs = json_object_get(row, "catalogs");
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:O?, s:o, s:O?, s:O?, s:O?, s:O?, s:i, s:O?, "
        "s:O?, s:O?, s:O?}",
        "cluster_id", clusters_str(row, "id"), "team", clusters_str(row, "team"), "environment",
        clusters_str(row, "environment"), "region", clusters_str(row, "region"), "size",
        clusters_str(row, "size"), "status", state, "endpoint", json_object_get(row, "endpoint"),
        "namespace", json_object_get(row, "namespace"), "catalogs",
        catalogs ? json_incref(catalogs) : json_array(), "executors",
        json_object_get(row, "executors"), "cores", json_object_get(row, "cores"), "expires_at",
        json_object_get(row, "expires_at"), "ttl", json_object_get(spec, "ttl"),
        "estimated_ready_seconds", estimate, "reason", json_object_get(row, "reason"), "created_by",
        json_object_get(row, "created_by"), "created_at", json_object_get(row, "created_at"),
        "updated_at", json_object_get(row, "updated_at"));
}

/* ---- create -----------------------------------------------------------------------------------
 */

/* A replay of an earlier create: 1 with *out, 0 when the key is new, -1 with err. */
static int clusters_replay(clusters *c, const char *team, const char *key, const char *hash,
                           json_t **out, clusters_error *err)
{
    char kind[16], id[128], stored_hash[65];
    int rc = store_idempotency_lookup(c->daemon->state, team, key, kind, id, stored_hash);
    if (rc == SP_NOT_FOUND)
        return 0;
    if (rc != SP_OK)
        return clusters_store_failed(err);
    if (strcmp(kind, "cluster") != 0 || strcmp(stored_hash, hash) != 0)
        return clusters_fail(err, 409, "idempotency_conflict", "Idempotency-Key",
                             "idempotency key '%.128s' of team %.64s was already used for "
                             "another request",
                             key, team);
    json_t *row = NULL;
    if (store_cluster_get(c->daemon->state, id, &row) != SP_OK)
        return 0; /* the cluster it named is gone: the key is free again */
    *out = clusters_view(c, row);
    json_decref(row);
    return 1;
}

/* 409 when the placement is taken (by a live cluster or a configured one). */
static int clusters_check_placement(clusters *c, const json_t *spec, clusters_error *err)
{
    const char *team = clusters_str(spec, "team");
    const char *env = clusters_str(spec, "environment");
    const char *region = clusters_str(spec, "region");
    store_cluster_filter filter = {
        .team = team, .environment = env, .region = region, .live_only = 1};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) != SP_OK)
        return clusters_store_failed(err);
    json_t *holder = json_array_get(rows, 0);
    if (holder != NULL) {
        clusters_fail(err, 409, "conflict", "region",
                      "team %s already has cluster '%s' (%s) in %s/%s: use it, or delete it "
                      "first",
                      team, clusters_str(holder, "id"), clusters_str(holder, "state"), env, region);
        json_decref(rows);
        return -1;
    }
    json_decref(rows);
    const cluster_entry *configured =
        cluster_registry_find_placement(gateway_registry(c->daemon->gateway), team, env, region);
    if (configured != NULL && !configured->provisioned)
        return clusters_fail(err, 409, "conflict", "region",
                             "team %s has the configured cluster '%s' in %s/%s", team,
                             configured->id, env, region);
    return 0;
}

static int clusters_check_quota(clusters *c, const json_t *spec, clusters_error *err)
{
    const char *team = clusters_str(spec, "team");
    const config_quota *quota = config_team_quota(c->daemon->cfg, team);
    int64_t count = 0, cores = 0;
    if (store_cluster_usage(c->daemon->state, team, &count, &cores) != SP_OK)
        return clusters_store_failed(err);
    int64_t want = json_integer_value(json_object_get(spec, "cores"));
    if ((uint64_t)count + 1 > quota->clusters)
        return clusters_fail(err, 429, "quota_exceeded", "team",
                             "team %s has %lld live cluster(s); its quota is %llu", team,
                             (long long)count, (unsigned long long)quota->clusters);
    if ((uint64_t)(cores + want) > quota->cores)
        return clusters_fail(err, 429, "quota_exceeded", "size",
                             "size '%s' needs %lld cores; team %s uses %lld of its %llu",
                             clusters_str(spec, "size"), (long long)want, team, (long long)cores,
                             (unsigned long long)quota->cores);
    return 0;
}

/* The oldest RUNNING warm cluster of the spec's pool, or NULL. */
static json_t *clusters_take_warm(clusters *c, const json_t *spec)
{
    char pool[256];
    clusters_pool_key(clusters_str(spec, "environment"), clusters_str(spec, "region"),
                      clusters_str(spec, "size"), pool, sizeof(pool));
    store_cluster_filter filter = {
        .team = CLUSTERS_POOL_TEAM, .state = "RUNNING", .include_warm = 1};
    json_t *rows = NULL, *found = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) != SP_OK)
        return NULL;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (strcmp(clusters_str(row, "pool"), pool) == 0) {
            found = json_incref(row);
            break;
        }
    }
    json_decref(rows);
    return found;
}

/* The new row's fields that every create shares. */

static int clusters_insert(clusters *c, const sp_principal *caller, const json_t *spec,
                           const char *key, const char *hash, json_t **out, clusters_error *err)
{
    const char *team = clusters_str(spec, "team");
    char id[CLUSTER_ID_MAX + 1], namespace_name[128], endpoint[512], token[80], expires[32];
    char err_text[256], reason[512];
    clusters_names(c, spec, team, id, namespace_name, endpoint);
    uint64_t ttl = (uint64_t)json_integer_value(json_object_get(spec, "ttl_seconds"));
    if (ttl > 0)
        store_timestamp_after(ttl, expires);
    json_t *warm = clusters_take_warm(c, spec);
    if (warm == NULL && clusters_new_token(token) != 0)
        return clusters_fail(err, 500, "internal", NULL, "no randomness for the cluster token");
    if (warm)
        snprintf(reason, sizeof(reason), "requested by %.200s; warm cluster %s handed over",
                 caller->subject, clusters_str(warm, "id"));
    else
        snprintf(reason, sizeof(reason), "requested by %.200s", caller->subject);
    const json_t *resources = json_object_get(spec, "resources");
    store_cluster_new row = {
        .id = id,
        .team = team,
        .environment = clusters_str(spec, "environment"),
        .region = clusters_str(spec, "region"),
        .size = clusters_str(spec, "size"),
        .state = warm ? "RUNNING" : "PROVISIONING",
        .reason = reason,
        .backend = clusters_cfg(c)->backend,
        .backend_ref = warm ? clusters_str(warm, "backend_ref") : id,
        .endpoint = endpoint,
        .namespace_name = namespace_name,
        .driver = warm ? clusters_str(warm, "driver") : NULL,
        .token = warm ? clusters_str(warm, "token") : token,
        .executors = json_integer_value(json_object_get(resources, "executors")),
        .cores = json_integer_value(json_object_get(spec, "cores")),
        .memory_mib = json_integer_value(json_object_get(spec, "memory_mib")),
        .catalogs = json_object_get(spec, "catalogs"),
        .spec = spec,
        .expires_at = ttl > 0 ? expires : NULL,
        .created_by = caller->subject,
    };
    store_idempotency idem = {
        .key = key, .request_hash = hash, .ttl_seconds = c->daemon->cfg->idempotency_ttl_ms / 1000};
    json_t *stored = NULL;
    store_create_result result = store_cluster_create(c->daemon->state, &row, key ? &idem : NULL,
                                                      warm ? clusters_str(warm, "id") : NULL,
                                                      &stored, err_text, sizeof(err_text));
    json_decref(warm);
    if (result == STORE_FAILED && warm != NULL) {
        /* the warm cluster was taken meanwhile (or the store failed): start cold instead */
        return clusters_fail(err, 503, "unavailable", NULL, "%s; try again", err_text);
    }
    if (result == STORE_KEY_CONFLICT)
        return clusters_fail(err, 409, "idempotency_conflict", "Idempotency-Key", "%s", err_text);
    if (result != STORE_CREATED && result != STORE_REPLAYED) {
        log_msg(SP_LOG_ERROR, "clusters", "cluster not stored: %s", err_text);
        return clusters_store_failed(err);
    }
    if (result == STORE_CREATED) {
        metrics_add(warm ? c->created_hot : c->created_cold, 1);
        log_msg(SP_LOG_INFO, "clusters", "cluster %s for team %s: %s (%s)", id, team, row.state,
                reason);
        if (strcmp(row.state, "RUNNING") == 0) {
            clusters_route(c, stored);
            clusters_write_hosts(c);
            clusters_schedule(c); /* refill the pool */
        } else {
            clusters_start_backend(c, stored);
        }
    }
    *out = clusters_view(c, stored);
    json_decref(stored);
    return 0;
}

int clusters_create(clusters *c, const sp_principal *caller, const json_t *body,
                    const char *idempotency_key, json_t **out, int *created, clusters_error *err)
{
    const config *cfg = c->daemon->cfg;
    const config_provisioning *p = &cfg->provisioning;
    cluster_spec_error spec_error;
    json_t *spec = NULL;
    const char *token_field = NULL;
    int rc = -1;
    *created = 0;
    int status = cluster_spec_normalise(cfg, body, &spec, &token_field, &spec_error);
    if (status == SP_INVALID)
        return clusters_fail(err, 400, "invalid_request", spec_error.field, "%s",
                             spec_error.message);
    if (status != SP_OK)
        return clusters_fail(err, 500, "internal", NULL, "out of memory");
    const char *team = clusters_str(spec, "team");
    const char *key = idempotency_key ? idempotency_key : token_field;
    char hash[JOB_SPEC_HASH_SIZE];
    if (clusters_check_member(caller, team, 1, err) != 0)
        goto done;
    if (key && !job_spec_idempotency_key_valid(key)) {
        clusters_fail(err, 400, "invalid_request", "Idempotency-Key",
                      "Idempotency-Key: expected 1 to 128 of [A-Za-z0-9._:-]");
        goto done;
    }
    if (job_spec_hash(spec, hash) != 0) {
        clusters_fail(err, 500, "internal", NULL, "cannot hash the request");
        goto done;
    }
    if (key) {
        int replay = clusters_replay(c, team, key, hash, out, err);
        if (replay != 0) {
            rc = replay > 0 ? 0 : -1;
            goto done;
        }
    }
    if (c->draining) {
        clusters_fail(err, 503, "unavailable", NULL, "the daemon is shutting down");
        goto done;
    }
    void *provider = NULL;
    if (clusters_backend(c, &provider) == NULL) {
        clusters_fail(err, 503, "unavailable", NULL,
                      "provisioning.backend '%s' is not loaded or does not run clusters",
                      p->backend);
        goto done;
    }
    if (clusters_check_placement(c, spec, err) != 0 || clusters_check_quota(c, spec, err) != 0)
        goto done;
    rc = clusters_insert(c, caller, spec, key, hash, out, err);
    if (rc == 0)
        *created = 1;
done:
    json_decref(spec);
    return rc;
}

/* ---- read, delete, scale, ttl ------------------------------------------------------------- */

int clusters_get(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                 clusters_error *err)
{
    json_t *row = clusters_load_visible(c, caller, id, err);
    if (row == NULL)
        return -1;
    *out = clusters_view(c, row);
    json_decref(row);
    return 0;
}

int clusters_list(clusters *c, const sp_principal *caller, const char *team,
                  const char *environment, const char *region, const char *status, json_t **out,
                  clusters_error *err)
{
    if (team != NULL && !principal_in_team(caller, team))
        return clusters_fail(err, 403, "forbidden", "team",
                             "%.200s is not a member of team '%.64s'", caller->subject, team);
    store_cluster_filter filter = {
        .team = team, .environment = environment, .region = region, .state = status};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) != SP_OK)
        return clusters_store_failed(err);
    json_t *items = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (!clusters_is_warm(row) && principal_in_team(caller, clusters_str(row, "team")))
            json_array_append_new(items, clusters_view(c, row));
    }
    json_decref(rows);
    *out = json_pack("{s:o}", "clusters", items);
    return 0;
}

int clusters_delete(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                    clusters_error *err)
{
    json_t *row = clusters_load_visible(c, caller, id, err);
    if (row == NULL)
        return -1;
    json_t *after = NULL;
    char reason[320];
    snprintf(reason, sizeof(reason), "deleted by %.200s", caller->subject);
    int rc = clusters_check_member(caller, clusters_str(row, "team"), 1, err) == 0
                 ? clusters_terminate(c, row, reason, &after)
                 : SP_INVALID;
    json_decref(row);
    if (rc == SP_INVALID)
        return -1;
    if (rc != SP_OK || after == NULL)
        return clusters_fail(err, 409, "conflict", NULL,
                             "cluster '%.80s' changed meanwhile; try again", id);
    *out = clusters_view(c, after);
    json_decref(after);
    return 0;
}

static void clusters_on_scaled(void *arg, int status, const char *json, const char *message)
{
    cluster_op *op = arg;
    clusters *c = op->owner;
    char id[CLUSTER_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", op->id);
    json_t *target = json_incref(op->scale);
    int abandoned = op->abandoned;
    clusters_op_free(op);
    if (abandoned) {
        json_decref(target);
        return;
    }
    char reason[768];
    json_t *fields = NULL;
    if (status == SP_OK) {
        json_t *reply = json ? json_loads(json, 0, NULL) : NULL;
        json_int_t executors = json_is_integer(json_object_get(reply, "executors"))
                                   ? json_integer_value(json_object_get(reply, "executors"))
                                   : json_integer_value(json_object_get(target, "executors"));
        fields = json_pack("{s:I, s:O, s:O, s:O}", "executors", executors, "cores",
                           json_object_get(target, "cores"), "memory_mib",
                           json_object_get(target, "memory_mib"), "spec",
                           json_object_get(target, "spec"));
        if (json_is_string(json_object_get(target, "size")))
            json_object_set(fields, "size", json_object_get(target, "size"));
        snprintf(reason, sizeof(reason), "scaled to %lld executor(s)", (long long)executors);
        json_decref(reply);
    } else {
        snprintf(reason, sizeof(reason), "scaling failed, capacity unchanged: %s",
                 message && message[0] ? message : "no reason given");
    }
    clusters_transition(c, id, "SCALING", "RUNNING", reason, fields, NULL);
    json_decref(fields);
    json_decref(target);
}

/* "1g", "512m" (cluster_spec's normal form) -> MiB; 0 when malformed. */
static json_int_t clusters_memory_mib(const char *text)
{
    char *end = NULL;
    unsigned long long n = text ? strtoull(text, &end, 10) : 0;
    if (end == NULL || end == text)
        return 0;
    if (*end == 'g' || *end == 'G')
        return (json_int_t)(n * 1024);
    return *end == 'm' || *end == 'M' ? (json_int_t)n : 0;
}

/* The target of a scale: the backend's document plus what the row will say after it. */
static json_t *clusters_scale_target(const json_t *row, const json_t *scale)
{
    json_t *spec = json_deep_copy(json_object_get(row, "spec"));
    json_t *resources = json_object_get(spec, "resources");
    const json_t *driver = json_object_get(resources, "driver");
    const json_t *executor = json_object_get(scale, "executor");
    json_int_t executors = json_integer_value(json_object_get(scale, "executors"));
    json_int_t cores = json_integer_value(json_object_get(driver, "cores")) +
                       executors * json_integer_value(json_object_get(executor, "cores"));
    json_int_t memory = clusters_memory_mib(clusters_str(driver, "memory")) +
                        executors * clusters_memory_mib(clusters_str(executor, "memory"));
    json_object_set_new(resources, "executors", json_integer(executors));
    json_object_set(resources, "executor", (json_t *)executor);
    json_object_set_new(spec, "cores", json_integer(cores));
    json_object_set_new(spec, "memory_mib", json_integer(memory));
    if (json_is_string(json_object_get(scale, "size")))
        json_object_set(spec, "size", json_object_get(scale, "size"));
    json_t *target = json_pack("{s:I, s:O, s:I, s:I, s:o}", "executors", executors, "executor",
                               executor, "cores", cores, "memory_mib", memory, "spec", spec);
    if (target && json_is_string(json_object_get(scale, "size")))
        json_object_set(target, "size", json_object_get(scale, "size"));
    return target;
}

int clusters_scale(clusters *c, const sp_principal *caller, const char *id, const json_t *body,
                   json_t **out, clusters_error *err)
{
    json_t *row = clusters_load_visible(c, caller, id, err);
    if (row == NULL)
        return -1;
    int rc = -1;
    json_t *scale = NULL, *target = NULL, *after = NULL;
    cluster_spec_error spec_error;
    void *provider = NULL;
    const sp_backend_ops *ops = clusters_backend(c, &provider);
    if (clusters_check_member(caller, clusters_str(row, "team"), 1, err) != 0)
        goto done;
    int status =
        cluster_spec_scale(c->daemon->cfg, json_object_get(row, "spec"), body, &scale, &spec_error);
    if (status != SP_OK) {
        clusters_fail(err, status == SP_INVALID ? 400 : 500,
                      status == SP_INVALID ? "invalid_request" : "internal", spec_error.field, "%s",
                      status == SP_INVALID ? spec_error.message : "out of memory");
        goto done;
    }
    if (strcmp(clusters_str(row, "state"), "RUNNING") != 0) {
        clusters_fail(err, 409, "conflict", NULL,
                      "cluster '%s' is %s; only a RUNNING cluster "
                      "can be scaled",
                      id, clusters_str(row, "state"));
        goto done;
    }
    if (ops == NULL || !SP_HAS_FIELD(ops, sp_backend_ops, cluster_scale) ||
        ops->cluster_scale == NULL) {
        clusters_fail(err, 501, "not_supported", NULL, "the %s backend cannot scale clusters",
                      clusters_cfg(c)->backend);
        goto done;
    }
    target = clusters_scale_target(row, scale);
    const config_quota *quota = config_team_quota(c->daemon->cfg, clusters_str(row, "team"));
    int64_t count = 0, cores = 0;
    if (target == NULL ||
        store_cluster_usage(c->daemon->state, clusters_str(row, "team"), &count, &cores) != SP_OK) {
        clusters_store_failed(err);
        goto done;
    }
    int64_t now_cores = json_integer_value(json_object_get(row, "cores"));
    int64_t new_cores = json_integer_value(json_object_get(target, "cores"));
    if ((uint64_t)(cores - now_cores + new_cores) > quota->cores) {
        clusters_fail(err, 429, "quota_exceeded", "executors",
                      "%lld cores would take team %s to %lld of its %llu", (long long)new_cores,
                      clusters_str(row, "team"), (long long)(cores - now_cores + new_cores),
                      (unsigned long long)quota->cores);
        goto done;
    }
    char reason[320];
    snprintf(reason, sizeof(reason), "%.200s asked for %lld executor(s)", caller->subject,
             (long long)json_integer_value(json_object_get(target, "executors")));
    if (clusters_transition(c, id, "RUNNING", "SCALING", reason, NULL, &after) != SP_OK) {
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' changed meanwhile; try again", id);
        goto done;
    }
    cluster_op *op = clusters_op_new(c, CLUSTER_OP_SCALE, id, clusters_str(row, "backend_ref"));
    json_t *doc = json_pack("{s:O, s:O}", "executors", json_object_get(target, "executors"),
                            "executor", json_object_get(target, "executor"));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (op == NULL || text == NULL) {
        if (op)
            clusters_op_free(op);
        clusters_transition(c, id, "SCALING", "RUNNING", "scaling failed: out of memory", NULL,
                            NULL);
        free(text);
        clusters_fail(err, 500, "internal", NULL, "out of memory");
        goto done;
    }
    op->scale = json_incref(target);
    if (ops->cluster_scale(provider, clusters_str(row, "backend_ref"), text, clusters_on_scaled,
                           op) != SP_OK)
        clusters_on_scaled(op, SP_ERROR, NULL, "the backend refused the scale");
    free(text);
    *out = clusters_view(c, after);
    rc = 0;
done:
    json_decref(after);
    json_decref(target);
    json_decref(scale);
    json_decref(row);
    return rc;
}

int clusters_set_ttl(clusters *c, const sp_principal *caller, const char *id, const json_t *body,
                     json_t **out, clusters_error *err)
{
    json_t *row = clusters_load_visible(c, caller, id, err);
    if (row == NULL)
        return -1;
    int rc = -1;
    uint64_t ttl = 0;
    cluster_spec_error spec_error;
    json_t *fields = NULL, *after = NULL;
    if (clusters_check_member(caller, clusters_str(row, "team"), 1, err) != 0)
        goto done;
    if (cluster_spec_ttl_request(c->daemon->cfg, clusters_str(row, "environment"), body, &ttl,
                                 &spec_error) != SP_OK) {
        clusters_fail(err, 400, "invalid_request", spec_error.field, "%s", spec_error.message);
        goto done;
    }
    if (!clusters_state_live(clusters_str(row, "state")) ||
        strcmp(clusters_str(row, "state"), "TERMINATING") == 0) {
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' is %s", id,
                      clusters_str(row, "state"));
        goto done;
    }
    char expires[32], reason[320];
    json_t *spec = json_deep_copy(json_object_get(row, "spec"));
    json_t *ttl_text = json_deep_copy(json_object_get(body, "ttl"));
    if (ttl > 0)
        store_timestamp_after(ttl, expires);
    json_object_set_new(spec, "ttl", ttl_text);
    json_object_set_new(spec, "ttl_seconds", json_integer((json_int_t)ttl));
    fields = json_pack("{s:o?, s:o}", "expires_at", ttl > 0 ? json_string(expires) : json_null(),
                       "spec", spec);
    snprintf(reason, sizeof(reason), "%.200s set the ttl to %s%s%s", caller->subject,
             json_string_value(ttl_text), ttl > 0 ? ": expires at " : " (no expiry)",
             ttl > 0 ? expires : "");
    int status = store_cluster_update(c->daemon->state, id, clusters_str(row, "state"), NULL, NULL,
                                      fields, &after, err->message, sizeof(err->message));
    if (status != SP_OK) {
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' changed meanwhile; try again", id);
        goto done;
    }
    store_cluster_note(c->daemon->state, id, reason, NULL, 0);
    log_msg(SP_LOG_INFO, "clusters", "cluster %s: %s", id, reason);
    *out = clusters_view(c, after);
    rc = 0;
done:
    json_decref(after);
    json_decref(fields);
    json_decref(row);
    return rc;
}

int clusters_events(clusters *c, const sp_principal *caller, const char *id, json_t **out,
                    clusters_error *err)
{
    json_t *row = clusters_load_visible(c, caller, id, err);
    if (row == NULL)
        return -1;
    json_decref(row);
    json_t *events = NULL;
    if (store_cluster_events(c->daemon->state, id, &events) != SP_OK)
        return clusters_store_failed(err);
    *out = json_pack("{s:s, s:o}", "cluster_id", id, "events", events);
    return 0;
}

/* ---- discovery ------------------------------------------------------------------------------ */

/* A routable cluster of the placement: a provisioned RUNNING one or a configured one with a
 * healthy driver. */
static const cluster_entry *clusters_find_serving(clusters *c, const char *team, const char *env,
                                                  const char *region)
{
    const cluster_entry *entry =
        cluster_registry_find_placement(gateway_registry(c->daemon->gateway), team, env, region);
    if (entry == NULL || entry->ended != NULL || cluster_registry_pick_endpoint(entry) < 0)
        return NULL;
    return entry;
}

int clusters_discover(clusters *c, const sp_principal *caller, const char *team,
                      const char *environment, const char *region, json_t **out,
                      clusters_error *err)
{
    const config *cfg = c->daemon->cfg;
    if (team == NULL || team[0] == '\0')
        return clusters_fail(err, 400, "invalid_request", "team", "team: required");
    if (environment == NULL || config_find_environment(cfg, environment) == NULL)
        return clusters_fail(err, 400, "invalid_request", "environment",
                             "environment: '%.64s' is not a configured environment",
                             environment ? environment : "");
    if (region == NULL)
        region = cfg->provisioning.region_count ? cfg->provisioning.regions[0].name : "";
    const config_region *asked = config_find_region(cfg, region);
    if (asked == NULL)
        return clusters_fail(err, 400, "invalid_request", "region",
                             "region: '%.64s' is not a configured region", region);
    if (clusters_check_member(caller, team, 0, err) != 0)
        return -1;
    const cluster_entry *entry = clusters_find_serving(c, team, environment, region);
    int fallback = 0;
    if (entry == NULL && asked->fallback != NULL) {
        entry = clusters_find_serving(c, team, environment, asked->fallback);
        fallback = entry != NULL;
    }
    if (entry == NULL)
        return clusters_fail(err, 404, "not_found", NULL,
                             "team %s has no running cluster in %s/%s%s%s", team, environment,
                             region, asked->fallback ? " or its fallback region " : "",
                             asked->fallback ? asked->fallback : "");
    char endpoint[512];
    cluster_spec_endpoint(cfg, team, environment, entry->region, endpoint, sizeof(endpoint));
    *out =
        json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "cluster_id", entry->id, "endpoint", endpoint,
                  "team", team, "region", entry->region, "fallback", fallback, "status", "RUNNING");
    return 0;
}
