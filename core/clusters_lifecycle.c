/*
 * clusters_lifecycle.c - one provisioned cluster's life: the backend calls
 * that start and stop it, the readiness check (a real Spark Connect Config
 * call with the cluster's own token; RUNNING only once it answers), and
 * every state change, with the gateway's registry and the hosts file kept
 * in step.  See clusters_internal.h for how the manager's files divide.
 */
#include <config.h>

#include "clusters_internal.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_spec.h"
#include "gateway.h"
#include "log.h"
#include "store_clusters.h"

/* ---- small helpers --------------------------------------------------------------------- */

uint64_t clusters_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

double clusters_wall_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* "2026-11-23T13:44:43.123Z" -> unix seconds; 0 when malformed. */
double clusters_parse_time(const char *text)
{
    struct tm tm = {0};
    int ms = 0;
    if (text == NULL || sscanf(text, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

const char *clusters_str(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

void clusters_random_suffix(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char bytes[32];
    if (n > sizeof(bytes) || RAND_bytes(bytes, (int)n) != 1)
        for (size_t i = 0; i < n && i < sizeof(bytes); i++)
            bytes[i] = (unsigned char)rand();
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[bytes[i] % 36];
    out[n] = '\0';
}

int clusters_new_token(char out[2 * CLUSTERS_TOKEN_BYTES + 1])
{
    unsigned char bytes[CLUSTERS_TOKEN_BYTES];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

int clusters_state_live(const char *state)
{
    return strcmp(state, "TERMINATED") != 0 && strcmp(state, "FAILED") != 0;
}

const config_provisioning *clusters_cfg(const clusters *c)
{
    return &c->daemon->cfg->provisioning;
}

/* ---- the backend -------------------------------------------------------------------------- */

const sp_backend_ops *clusters_backend(clusters *c, void **provider)
{
    const plugin_provider *p =
        plugin_set_find(c->daemon->plugins, SP_KIND_BACKEND, clusters_cfg(c)->backend);
    if (p == NULL)
        return NULL;
    const sp_backend_ops *ops = p->ops;
    if (!SP_HAS_FIELD(ops, sp_backend_ops, cluster_start) || ops->cluster_start == NULL ||
        ops->cluster_stop == NULL)
        return NULL;
    *provider = p->provider;
    return ops;
}

cluster_op *clusters_op_new(clusters *c, cluster_op_kind kind, const char *id, const char *ref)
{
    cluster_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->owner = c;
    op->kind = kind;
    snprintf(op->id, sizeof(op->id), "%s", id ? id : "");
    snprintf(op->ref, sizeof(op->ref), "%s", ref ? ref : "");
    op->next = c->ops;
    if (c->ops)
        c->ops->prev = op;
    c->ops = op;
    return op;
}

void clusters_op_free(cluster_op *op)
{
    clusters *c = op->owner;
    if (op->prev)
        op->prev->next = op->next;
    else
        c->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    sc_call_cancel(op->call);
    if (op->retry)
        event_free(op->retry);
    json_decref(op->scale);
    free(op);
}

/* Whether background work of `kind` on row `id` is under way. */
int clusters_op_running(const clusters *c, cluster_op_kind kind, const char *id)
{
    for (const cluster_op *op = c->ops; op; op = op->next)
        if (!op->abandoned && op->kind == kind && strcmp(op->id, id) == 0)
            return 1;
    return 0;
}

/* ---- rows, the registry and the hosts file ------------------------------------------------ */

int clusters_is_warm(const json_t *row)
{
    return json_is_string(json_object_get(row, "pool"));
}

/* Writes every RUNNING user cluster's endpoint host into provisioning.hosts_file. */
void clusters_write_hosts(clusters *c)
{
    const config_provisioning *p = clusters_cfg(c);
    if (p->hosts_file == NULL)
        return;
    store_cluster_filter filter = {.state = "RUNNING"};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) != SP_OK) {
        log_msg(SP_LOG_WARN, "clusters", "hosts file %s not updated: the store failed",
                p->hosts_file);
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->hosts_file);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_msg(SP_LOG_WARN, "clusters", "hosts file %s: %s", tmp, strerror(errno));
        json_decref(rows);
        return;
    }
    fprintf(f, "# Written by sparkplaned: the Spark Connect endpoints of running clusters.\n");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        char host[256];
        if (cluster_spec_endpoint_host(clusters_str(row, "endpoint"), host, sizeof(host)) == 0)
            fprintf(f, "%s %s # %s\n", p->hosts_address, host, clusters_str(row, "id"));
    }
    int failed = ferror(f);
    if (fclose(f) != 0 || failed || rename(tmp, p->hosts_file) != 0) {
        log_msg(SP_LOG_WARN, "clusters", "hosts file %s not written: %s", p->hosts_file,
                strerror(errno));
        unlink(tmp);
    }
    json_decref(rows);
}

/* Puts a RUNNING user cluster into the gateway's registry. */
void clusters_route(clusters *c, const json_t *row)
{
    if (clusters_is_warm(row) || strcmp(clusters_str(row, "state"), "RUNNING") != 0)
        return;
    const config *cfg = c->daemon->cfg;
    const char *team = clusters_str(row, "team");
    const char *env = clusters_str(row, "environment");
    const char *region = clusters_str(row, "region");
    char address[256];
    snprintf(address, sizeof(address), "%s", clusters_str(row, "driver"));
    cluster_endpoint endpoint = {.address = address, .healthy = 1};
    json_t *conf =
        cluster_spec_catalog_conf(cfg, json_object_get(row, "catalogs"), team, env, region);
    cluster_entry entry = {
        .id = (char *)clusters_str(row, "id"),
        .team = (char *)team,
        .environment = (char *)env,
        .region = (char *)region,
        .endpoints = &endpoint,
        .endpoint_count = 1,
        .token = (char *)json_string_value(json_object_get(row, "token")),
        .provisioned = 1,
        .session_conf = conf,
    };
    char err[512];
    if (gateway_cluster_put(c->daemon->gateway, &entry, err, sizeof(err)) != 0)
        log_msg(SP_LOG_ERROR, "clusters", "cluster %s is RUNNING but not routable: %s", entry.id,
                err);
    json_decref(conf);
}

/*
 * Moves a row to `to` (when its state is still `from`, NULL = any) with the reason and
 * field changes, then brings the registry and the hosts file along.  SP_OK, or the store's
 * answer.
 */
int clusters_transition(clusters *c, const char *id, const char *from, const char *to,
                        const char *reason, const json_t *fields, json_t **row_out)
{
    char err[256];
    json_t *row = NULL;
    int rc = store_cluster_update(c->daemon->state, id, from, to, reason, fields, &row, err,
                                  sizeof(err));
    if (rc != SP_OK) {
        if (rc != SP_CONFLICT && rc != SP_NOT_FOUND)
            log_msg(SP_LOG_ERROR, "clusters", "cluster %s: %s -> %s not stored: %s", id,
                    from ? from : "*", to ? to : "(same)", err);
        return rc;
    }
    if (to != NULL)
        log_msg(strcmp(to, "FAILED") == 0 ? SP_LOG_WARN : SP_LOG_INFO, "clusters",
                "cluster %s: %s%s%s", id, to, reason ? ": " : "", reason ? reason : "");
    if (!clusters_is_warm(row)) {
        if (strcmp(clusters_str(row, "state"), "RUNNING") == 0)
            clusters_route(c, row);
        else if (!clusters_state_live(clusters_str(row, "state")) ||
                 strcmp(clusters_str(row, "state"), "TERMINATING") == 0)
            gateway_cluster_end(c->daemon->gateway, id, reason ? reason : "terminated");
        clusters_write_hosts(c);
    }
    if (row_out)
        *row_out = row;
    else
        json_decref(row);
    return SP_OK;
}

/* ---- stop ----------------------------------------------------------------------------------- */

static void clusters_on_stopped(void *arg, int status, const char *json, const char *message)
{
    (void)json;
    cluster_op *op = arg;
    clusters *c = op->owner;
    if (op->abandoned) {
        clusters_op_free(op);
        return;
    }
    json_t *row = NULL;
    int found = store_cluster_get(c->daemon->state, op->id, &row) == SP_OK;
    if (found && clusters_is_warm(row)) {
        store_cluster_delete(c->daemon->state, op->id);
    } else if (found && strcmp(clusters_str(row, "state"), "TERMINATING") == 0) {
        if (status == SP_OK || status == SP_NOT_FOUND)
            clusters_transition(c, op->id, "TERMINATING", "TERMINATED",
                                status == SP_OK ? "stopped" : "nothing was running any more", NULL,
                                NULL);
        else
            log_msg(SP_LOG_WARN, "clusters", "cluster %s: stop failed (%s); tried again later",
                    op->id, message ? message : "no reason");
    } else if (status != SP_OK && status != SP_NOT_FOUND) {
        log_msg(SP_LOG_WARN, "clusters", "cluster %s (%s): stop failed: %s", op->id, op->ref,
                message ? message : "no reason");
    }
    json_decref(row);
    clusters_op_free(op);
}

/* Asks the backend to stop `ref` (the row `id`, "" for an orphan). */
void clusters_stop_backend(clusters *c, const char *id, const char *ref)
{
    void *provider = NULL;
    const sp_backend_ops *ops = clusters_backend(c, &provider);
    if (ops == NULL || clusters_op_running(c, CLUSTER_OP_STOP, id))
        return;
    cluster_op *op = clusters_op_new(c, CLUSTER_OP_STOP, id, ref);
    if (op == NULL)
        return;
    if (ops->cluster_stop(provider, ref, clusters_on_stopped, op) != SP_OK)
        clusters_on_stopped(op, SP_ERROR, NULL, "the backend refused the stop");
}

/* Ends a live cluster: TERMINATING now (the gateway stops routing to it), the backend stops
 * it in the background.  Warm clusters simply go. */
int clusters_terminate(clusters *c, const json_t *row, const char *reason, json_t **row_out)
{
    const char *id = clusters_str(row, "id");
    const char *state = clusters_str(row, "state");
    const char *ref = clusters_str(row, "backend_ref");
    if (clusters_is_warm(row)) {
        clusters_stop_backend(c, id, ref);
        return SP_OK;
    }
    if (!clusters_state_live(state)) {
        if (row_out)
            *row_out = json_incref((json_t *)row);
        return SP_OK;
    }
    if (strcmp(state, "TERMINATING") != 0) {
        int rc = clusters_transition(c, id, state, "TERMINATING", reason, NULL, row_out);
        if (rc != SP_OK)
            return rc;
    } else if (row_out) {
        *row_out = json_incref((json_t *)row);
    }
    for (cluster_op *op = c->ops; op; op = op->next)
        if (strcmp(op->id, id) == 0 && op->kind != CLUSTER_OP_STOP)
            op->abandoned = 1; /* a start or readiness check of it means nothing now */
    clusters_stop_backend(c, id, ref);
    return SP_OK;
}

void clusters_fail_cluster(clusters *c, const char *id, const char *reason)
{
    json_t *row = NULL;
    if (store_cluster_get(c->daemon->state, id, &row) != SP_OK)
        return;
    const char *ref = clusters_str(row, "backend_ref");
    if (clusters_is_warm(row)) {
        log_msg(SP_LOG_WARN, "clusters", "warm cluster %s failed: %s", id, reason);
        c->pool_retry_at_ms = clusters_now_ms() + CLUSTERS_POOL_RETRY_MS;
        store_cluster_delete(c->daemon->state, id);
    } else if (clusters_state_live(clusters_str(row, "state"))) {
        clusters_transition(c, id, NULL, "FAILED", reason, NULL, NULL);
    }
    char ref_copy[CLUSTER_ID_MAX + 1];
    snprintf(ref_copy, sizeof(ref_copy), "%s", ref);
    json_decref(row);
    clusters_stop_backend(c, id, ref_copy); /* whatever is left of it */
}

/* ---- start and readiness ------------------------------------------------------------------ */

/* The cluster document of backend.h for a row. */
static json_t *clusters_start_document(clusters *c, const json_t *row)
{
    const config *cfg = c->daemon->cfg;
    const config_provisioning *p = clusters_cfg(c);
    const json_t *spec = json_object_get(row, "spec");
    json_t *conf = json_object();
    for (size_t i = 0; conf && i < p->spark_conf_count; i++)
        json_object_set_new(conf, p->spark_conf[i].key, json_string(p->spark_conf[i].value));
    if (!clusters_is_warm(row)) {
        json_t *catalogs = cluster_spec_catalog_conf(
            cfg, json_object_get(row, "catalogs"), clusters_str(row, "team"),
            clusters_str(row, "environment"), clusters_str(row, "region"));
        if (catalogs)
            json_object_update(conf, catalogs);
        json_decref(catalogs);
    }
    const config_spark_version *runtime = config_find_spark_version(cfg, p->spark_version);
    json_t *rt = json_pack("{s:s}", "spark_version", p->spark_version);
    if (rt && runtime && runtime->spark_home)
        json_object_set_new(rt, "spark_home", json_string(runtime->spark_home));
    if (rt && runtime && runtime->image)
        json_object_set_new(rt, "image", json_string(runtime->image));
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:O, s:o, s:s, s:o}", "id",
                     clusters_str(row, "backend_ref"), "team", clusters_str(row, "team"),
                     "environment", clusters_str(row, "environment"), "region",
                     clusters_str(row, "region"), "namespace",
                     json_string_value(json_object_get(row, "namespace")), "resources",
                     json_object_get(spec, "resources"), "conf", conf, "token",
                     clusters_str(row, "token"), "runtime", rt);
}

static void clusters_on_started(void *arg, int status, const char *json, const char *message)
{
    cluster_op *op = arg;
    clusters *c = op->owner;
    char id[CLUSTER_ID_MAX + 1], ref[CLUSTER_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", op->id);
    snprintf(ref, sizeof(ref), "%s", op->ref);
    int abandoned = op->abandoned;
    clusters_op_free(op);
    if (abandoned)
        return;
    if (status != SP_OK) {
        char reason[768];
        snprintf(reason, sizeof(reason), "the %s backend could not start it: %s",
                 clusters_cfg(c)->backend, message && message[0] ? message : "no reason given");
        clusters_fail_cluster(c, id, reason);
        return;
    }
    json_t *reply = json ? json_loads(json, 0, NULL) : NULL;
    const char *endpoint = json_string_value(json_object_get(reply, "endpoint"));
    if (endpoint == NULL) {
        clusters_fail_cluster(c, id, "the backend started it but named no endpoint");
        json_decref(reply);
        return;
    }
    json_t *fields = json_pack("{s:s}", "driver", endpoint);
    if (json_is_integer(json_object_get(reply, "executors")))
        json_object_set(fields, "executors", json_object_get(reply, "executors"));
    int rc = clusters_transition(c, id, "PROVISIONING", NULL, NULL, fields, NULL);
    json_decref(fields);
    json_decref(reply);
    if (rc == SP_OK)
        clusters_begin_ready(c, id, ref);
}

void clusters_start_backend(clusters *c, const json_t *row)
{
    const char *id = clusters_str(row, "id");
    void *provider = NULL;
    const sp_backend_ops *ops = clusters_backend(c, &provider);
    if (ops == NULL) {
        char reason[256];
        snprintf(reason, sizeof(reason),
                 "provisioning.backend '%s' is not loaded or does not run clusters",
                 clusters_cfg(c)->backend);
        clusters_fail_cluster(c, id, reason);
        return;
    }
    if (clusters_op_running(c, CLUSTER_OP_START, id))
        return;
    json_t *doc = clusters_start_document(c, row);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    cluster_op *op =
        text ? clusters_op_new(c, CLUSTER_OP_START, id, clusters_str(row, "backend_ref")) : NULL;
    if (op == NULL) {
        free(text);
        clusters_fail_cluster(c, id, "out of memory");
        return;
    }
    int rc = ops->cluster_start(provider, text, clusters_on_started, op);
    free(text);
    if (rc != SP_OK)
        clusters_on_started(op, rc, NULL, "the backend refused the start");
}

static void clusters_ready_attempt(evutil_socket_t fd, short what, void *arg);

static void clusters_ready_retry(cluster_op *op)
{
    struct timeval after = {CLUSTERS_READY_RETRY_MS / 1000,
                            (CLUSTERS_READY_RETRY_MS % 1000) * 1000};
    if (op->retry == NULL)
        op->retry = event_new(op->owner->daemon->base, -1, 0, clusters_ready_attempt, op);
    if (op->retry == NULL || event_add(op->retry, &after) != 0) {
        char id[CLUSTER_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", op->id);
        clusters *c = op->owner;
        clusters_op_free(op);
        clusters_fail_cluster(c, id, "out of memory");
    }
}

/* The server answered the Config call (or did not). */
static void clusters_on_ready_answer(void *arg, int grpc_status, const char *message,
                                     const json_t *pairs)
{
    (void)pairs;
    cluster_op *op = arg;
    clusters *c = op->owner;
    op->call = NULL;
    if (op->abandoned) {
        clusters_op_free(op);
        return;
    }
    if (grpc_status != 0) {
        snprintf(op->last_error, sizeof(op->last_error), "%s%s",
                 op->warming ? "the warm-up query failed: " : "", message);
        clusters_ready_retry(op);
        return;
    }
    if (!op->warming) { /* it answers: now let its executors load jars and classes */
        op->warming = 1;
        clusters_ready_attempt(-1, 0, op);
        return;
    }
    char id[CLUSTER_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", op->id);
    clusters_op_free(op);
    json_t *row = NULL;
    if (store_cluster_get(c->daemon->state, id, &row) != SP_OK)
        return;
    double waited = clusters_wall_seconds() - clusters_parse_time(clusters_str(row, "created_at"));
    char reason[384];
    snprintf(reason, sizeof(reason),
             "Spark Connect server %s answered and ran the warm-up query after %.1f s",
             clusters_str(row, "driver"), waited);
    if (clusters_transition(c, id, "PROVISIONING", "RUNNING", reason, NULL, NULL) == SP_OK) {
        metrics_observe(c->ready_seconds, waited);
        c->cold_start_seconds =
            c->cold_start_seconds > 0 ? 0.7 * c->cold_start_seconds + 0.3 * waited : waited;
    }
    json_decref(row);
}

static void clusters_ready_attempt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_op *op = arg;
    clusters *c = op->owner;
    json_t *row = NULL;
    if (op->abandoned || store_cluster_get(c->daemon->state, op->id, &row) != SP_OK ||
        strcmp(clusters_str(row, "state"), "PROVISIONING") != 0) {
        json_decref(row);
        clusters_op_free(op);
        return;
    }
    char err[256];
    gateway_upstream_pool *pool = gateway_pool(c->daemon->gateway);
    if (op->warming)
        op->call = sc_call_execute_sql(c->daemon->base, pool, clusters_str(row, "driver"),
                                       clusters_str(row, "token"), op->session, CLUSTERS_PROBE_USER,
                                       CLUSTERS_WARMUP_QUERY, CLUSTERS_WARMUP_CALL_MS,
                                       clusters_on_ready_answer, op, err, sizeof(err));
    else
        op->call = sc_call_config_get(c->daemon->base, pool, clusters_str(row, "driver"),
                                      clusters_str(row, "token"), op->session, CLUSTERS_PROBE_USER,
                                      "spark.app.name", CLUSTERS_READY_CALL_MS,
                                      clusters_on_ready_answer, op, err, sizeof(err));
    json_decref(row);
    if (op->call == NULL) {
        snprintf(op->last_error, sizeof(op->last_error), "%s", err);
        clusters_ready_retry(op);
    }
}

/*
 * Calls the new server until it answers a Config call, then runs the warm-up query (a job on
 * the executors: they fetch the cluster's jars and load their classes now, not during a
 * user's first query), until the tick's start_timeout fails the cluster.
 */
void clusters_begin_ready(clusters *c, const char *id, const char *ref)
{
    if (clusters_op_running(c, CLUSTER_OP_READY, id))
        return;
    cluster_op *op = clusters_op_new(c, CLUSTER_OP_READY, id, ref);
    if (op == NULL || sc_random_uuid(op->session) != 0) {
        if (op)
            clusters_op_free(op);
        clusters_fail_cluster(c, id, "out of memory");
        return;
    }
    clusters_ready_attempt(-1, 0, op);
}

void clusters_pool_key(const char *env, const char *region, const char *size, char *out,
                       size_t out_size)
{
    snprintf(out, out_size, "%s/%s/%s", env, region, size);
}

void clusters_names(clusters *c, const json_t *spec, const char *team, char *id,
                    char *namespace_name, char *endpoint)
{
    const config *cfg = c->daemon->cfg;
    const char *env = clusters_str(spec, "environment");
    const char *region = clusters_str(spec, "region");
    char suffix[8];
    clusters_random_suffix(suffix, 6);
    cluster_spec_id(team[0] ? team : "pool", env, region, suffix, id, CLUSTER_ID_MAX + 1);
    cluster_spec_namespace(team[0] ? team : "pool", env, region, namespace_name, 128);
    if (team[0])
        cluster_spec_endpoint(cfg, team, env, region, endpoint, 512);
    else
        endpoint[0] = '\0';
}

/* Stores the user's cluster: a warm one handed over (RUNNING now) or a cold start. */
