/*
 * clusters.c - provisioned Spark Connect clusters: the REST operations,
 * the lifecycle the cluster backend is driven through, hot pools, the TTL
 * reaper, discovery and the hosts file.
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

#include "clusters.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sparkplane/backend.h>

#include "cluster_registry.h"
#include "cluster_spec.h"
#include "daemon.h"
#include "gateway.h"
#include "job_spec.h"
#include "log.h"
#include "metrics.h"
#include "principal.h"
#include "spark_connect_call.h"
#include "store_clusters.h"
#include "store_jobs.h"

#define CLUSTERS_READY_RETRY_MS 1000u       /* between readiness calls */
#define CLUSTERS_READY_CALL_MS 10000u       /* one readiness call */
#define CLUSTERS_POOL_RETRY_MS 60000u       /* after a warm start failed */
#define CLUSTERS_DEFAULT_ESTIMATE_S 60      /* before a cold start was measured */
#define CLUSTERS_TOKEN_BYTES 32
#define CLUSTERS_PROBE_USER "sparkplane"
#define CLUSTERS_POOL_TEAM ""

typedef enum cluster_op_kind {
    CLUSTER_OP_START,
    CLUSTER_OP_READY,
    CLUSTER_OP_SCALE,
    CLUSTER_OP_STOP,
    CLUSTER_OP_RECONCILE,
} cluster_op_kind;

/* One piece of background work on a cluster: a backend call or the readiness check. */
typedef struct cluster_op {
    clusters *owner;
    struct cluster_op *prev;
    struct cluster_op *next;
    cluster_op_kind kind;
    int abandoned;                  /* the plugins were reloaded: ignore the reply */
    char id[CLUSTER_ID_MAX + 1];
    char ref[CLUSTER_ID_MAX + 1];
    json_t *scale;                  /* CLUSTER_OP_SCALE: the target */
    sc_call *call;                  /* CLUSTER_OP_READY: the Config call under way */
    struct event *retry;            /* CLUSTER_OP_READY: the next attempt */
    char session[37];               /* CLUSTER_OP_READY: one session for every attempt */
    char last_error[256];
} cluster_op;

struct clusters {
    daemon_state *daemon;
    struct event *tick;
    cluster_op *ops;
    int started;
    int draining;
    double cold_start_seconds;      /* running average of measured cold starts; 0: none */
    uint64_t pool_retry_at_ms;      /* no warm start before this (after a failure) */
    sp_metric *created_hot;
    sp_metric *created_cold;
    sp_metric *ready_seconds;
};

static void clusters_schedule(clusters *c);
static void clusters_begin_ready(clusters *c, const char *id, const char *ref);

/* ---- small helpers --------------------------------------------------------------------- */

static uint64_t clusters_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static double clusters_wall_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* "2026-11-23T13:44:43.123Z" -> unix seconds; 0 when malformed. */
static double clusters_parse_time(const char *text)
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

static const char *clusters_str(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    return value ? value : "";
}

static __attribute__((format(printf, 5, 6))) int clusters_fail(clusters_error *err, int status,
                                                               const char *code,
                                                               const char *field,
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
static void clusters_random_suffix(char *out, size_t n)
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

static int clusters_new_token(char out[2 * CLUSTERS_TOKEN_BYTES + 1])
{
    unsigned char bytes[CLUSTERS_TOKEN_BYTES];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

static int clusters_state_live(const char *state)
{
    return strcmp(state, "TERMINATED") != 0 && strcmp(state, "FAILED") != 0;
}

static const config_provisioning *clusters_cfg(const clusters *c)
{
    return &c->daemon->cfg->provisioning;
}

/* ---- the backend -------------------------------------------------------------------------- */

static const sp_backend_ops *clusters_backend(clusters *c, void **provider)
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

static cluster_op *clusters_op_new(clusters *c, cluster_op_kind kind, const char *id,
                                   const char *ref)
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

static void clusters_op_free(cluster_op *op)
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
static int clusters_op_running(const clusters *c, cluster_op_kind kind, const char *id)
{
    for (const cluster_op *op = c->ops; op; op = op->next)
        if (!op->abandoned && op->kind == kind && strcmp(op->id, id) == 0)
            return 1;
    return 0;
}

/* ---- rows, the registry and the hosts file ------------------------------------------------ */

static int clusters_is_warm(const json_t *row)
{
    return json_is_string(json_object_get(row, "pool"));
}

/* Writes every RUNNING user cluster's endpoint host into provisioning.hosts_file. */
static void clusters_write_hosts(clusters *c)
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
static void clusters_route(clusters *c, const json_t *row)
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
    json_t *conf = cluster_spec_catalog_conf(cfg, json_object_get(row, "catalogs"), team, env,
                                             region);
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
        log_msg(SP_LOG_ERROR, "clusters", "cluster %s is RUNNING but not routable: %s",
                entry.id, err);
    json_decref(conf);
}

/*
 * Moves a row to `to` (when its state is still `from`, NULL = any) with the reason and
 * field changes, then brings the registry and the hosts file along.  SP_OK, or the store's
 * answer.
 */
static int clusters_transition(clusters *c, const char *id, const char *from, const char *to,
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
                                status == SP_OK ? "stopped" : "nothing was running any more",
                                NULL, NULL);
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
static void clusters_stop_backend(clusters *c, const char *id, const char *ref)
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
static int clusters_terminate(clusters *c, const json_t *row, const char *reason,
                              json_t **row_out)
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
            op->abandoned = 1;     /* a start or readiness check of it means nothing now */
    clusters_stop_backend(c, id, ref);
    return SP_OK;
}

static void clusters_fail_cluster(clusters *c, const char *id, const char *reason)
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
    clusters_stop_backend(c, id, ref_copy);   /* whatever is left of it */
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

static void clusters_start_backend(clusters *c, const json_t *row)
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
    cluster_op *op = text ? clusters_op_new(c, CLUSTER_OP_START, id,
                                            clusters_str(row, "backend_ref"))
                          : NULL;
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
    struct timeval after = {CLUSTERS_READY_RETRY_MS / 1000, (CLUSTERS_READY_RETRY_MS % 1000) * 1000};
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
        snprintf(op->last_error, sizeof(op->last_error), "%s", message);
        clusters_ready_retry(op);
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
    snprintf(reason, sizeof(reason), "Spark Connect server %s answered after %.1f s",
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
    op->call = sc_call_config_get(c->daemon->base, gateway_pool(c->daemon->gateway),
                                  clusters_str(row, "driver"), clusters_str(row, "token"),
                                  op->session, CLUSTERS_PROBE_USER, "spark.app.name",
                                  CLUSTERS_READY_CALL_MS, clusters_on_ready_answer, op, err,
                                  sizeof(err));
    json_decref(row);
    if (op->call == NULL) {
        snprintf(op->last_error, sizeof(op->last_error), "%s", err);
        clusters_ready_retry(op);
    }
}

/* Calls the new server until it answers (or the tick's start_timeout fails the cluster). */
static void clusters_begin_ready(clusters *c, const char *id, const char *ref)
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
        double average = c->cold_start_seconds > 0 ? c->cold_start_seconds
                                                   : CLUSTERS_DEFAULT_ESTIMATE_S;
        double waited =
            clusters_wall_seconds() - clusters_parse_time(clusters_str(row, "created_at"));
        estimate = average > waited ? (int)(average - waited + 0.5) : 1;
    }
    json_t *catalogs = json_object_get(row, "catalogs");
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:O?, s:O, s:O?, s:O?, s:O?, s:O?, s:i, s:O?, "
        "s:O?, s:O?, s:O?}",
        "cluster_id", clusters_str(row, "id"), "team", clusters_str(row, "team"), "environment",
        clusters_str(row, "environment"), "region", clusters_str(row, "region"), "size",
        clusters_str(row, "size"), "status", state, "endpoint", json_object_get(row, "endpoint"),
        "namespace", json_object_get(row, "namespace"), "catalogs",
        catalogs ? catalogs : json_array(), "executors", json_object_get(row, "executors"),
        "cores", json_object_get(row, "cores"), "expires_at", json_object_get(row, "expires_at"),
        "ttl", json_object_get(spec, "ttl"), "estimated_ready_seconds", estimate, "reason",
        json_object_get(row, "reason"), "created_by", json_object_get(row, "created_by"),
        "created_at", json_object_get(row, "created_at"), "updated_at",
        json_object_get(row, "updated_at"));
}

/* ---- create ----------------------------------------------------------------------------------- */

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
        return 0;       /* the cluster it named is gone: the key is free again */
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
    store_cluster_filter filter = {.team = team, .environment = env, .region = region,
                                   .live_only = 1};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) != SP_OK)
        return clusters_store_failed(err);
    json_t *holder = json_array_get(rows, 0);
    if (holder != NULL) {
        clusters_fail(err, 409, "conflict", "region",
                      "team %s already has cluster '%s' (%s) in %s/%s: use it, or delete it "
                      "first",
                      team, clusters_str(holder, "id"), clusters_str(holder, "state"), env,
                      region);
        json_decref(rows);
        return -1;
    }
    json_decref(rows);
    const cluster_entry *configured = cluster_registry_find_placement(
        gateway_registry(c->daemon->gateway), team, env, region);
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
                             clusters_str(spec, "size"), (long long)want, team,
                             (long long)cores, (unsigned long long)quota->cores);
    return 0;
}

static void clusters_pool_key(const char *env, const char *region, const char *size, char *out,
                              size_t out_size)
{
    snprintf(out, out_size, "%s/%s/%s", env, region, size);
}

/* The oldest RUNNING warm cluster of the spec's pool, or NULL. */
static json_t *clusters_take_warm(clusters *c, const json_t *spec)
{
    char pool[256];
    clusters_pool_key(clusters_str(spec, "environment"), clusters_str(spec, "region"),
                      clusters_str(spec, "size"), pool, sizeof(pool));
    store_cluster_filter filter = {.team = CLUSTERS_POOL_TEAM, .state = "RUNNING",
                                   .include_warm = 1};
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
static void clusters_names(clusters *c, const json_t *spec, const char *team, char *id,
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
    store_idempotency idem = {.key = key,
                              .request_hash = hash,
                              .ttl_seconds = c->daemon->cfg->idempotency_ttl_ms / 1000};
    json_t *stored = NULL;
    store_create_result result =
        store_cluster_create(c->daemon->state, &row, key ? &idem : NULL,
                             warm ? clusters_str(warm, "id") : NULL, &stored, err_text,
                             sizeof(err_text));
    json_decref(warm);
    if (result == STORE_FAILED && warm != NULL) {
        /* the warm cluster was taken meanwhile (or the store failed): start cold instead */
        return clusters_fail(err, 503, "unavailable", NULL, "%s; try again", err_text);
    }
    if (result == STORE_KEY_CONFLICT)
        return clusters_fail(err, 409, "idempotency_conflict", "Idempotency-Key", "%s",
                             err_text);
    if (result != STORE_CREATED && result != STORE_REPLAYED) {
        log_msg(SP_LOG_ERROR, "clusters", "cluster not stored: %s", err_text);
        return clusters_store_failed(err);
    }
    if (result == STORE_CREATED) {
        metrics_add(warm ? c->created_hot : c->created_cold, 1);
        log_msg(SP_LOG_INFO, "clusters", "cluster %s for team %s: %s (%s)", id, team,
                row.state, reason);
        if (strcmp(row.state, "RUNNING") == 0) {
            clusters_route(c, stored);
            clusters_write_hosts(c);
            clusters_schedule(c);       /* refill the pool */
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
                  const char *environment, const char *region, const char *status,
                  json_t **out, clusters_error *err)
{
    if (team != NULL && !principal_in_team(caller, team))
        return clusters_fail(err, 403, "forbidden", "team",
                             "%.200s is not a member of team '%.64s'", caller->subject, team);
    store_cluster_filter filter = {.team = team, .environment = environment, .region = region,
                                   .state = status};
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
    int status = cluster_spec_scale(c->daemon->cfg, json_object_get(row, "spec"), body, &scale,
                                    &spec_error);
    if (status != SP_OK) {
        clusters_fail(err, status == SP_INVALID ? 400 : 500,
                      status == SP_INVALID ? "invalid_request" : "internal", spec_error.field,
                      "%s", status == SP_INVALID ? spec_error.message : "out of memory");
        goto done;
    }
    if (strcmp(clusters_str(row, "state"), "RUNNING") != 0) {
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' is %s; only a RUNNING cluster "
                      "can be scaled", id, clusters_str(row, "state"));
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
    if (target == NULL || store_cluster_usage(c->daemon->state, clusters_str(row, "team"),
                                              &count, &cores) != SP_OK) {
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
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' changed meanwhile; try again",
                      id);
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

int clusters_set_ttl(clusters *c, const sp_principal *caller, const char *id,
                     const json_t *body, json_t **out, clusters_error *err)
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
    int status = store_cluster_update(c->daemon->state, id, clusters_str(row, "state"), NULL,
                                      NULL, fields, &after, err->message, sizeof(err->message));
    if (status != SP_OK) {
        clusters_fail(err, 409, "conflict", NULL, "cluster '%s' changed meanwhile; try again",
                      id);
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
static const cluster_entry *clusters_find_serving(clusters *c, const char *team,
                                                  const char *env, const char *region)
{
    const cluster_entry *entry = cluster_registry_find_placement(
        gateway_registry(c->daemon->gateway), team, env, region);
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
    *out = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "cluster_id", entry->id, "endpoint",
                     endpoint, "team", team, "region", entry->region, "fallback", fallback,
                     "status", "RUNNING");
    return 0;
}

/* ---- the tick: expiry, start timeouts, pools ------------------------------------------------ */

static void clusters_reap_expired(clusters *c)
{
    char now[32];
    store_timestamp_now(now);
    json_t *ids = NULL;
    if (store_cluster_expired(c->daemon->state, now, &ids) != SP_OK)
        return;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        json_t *row = NULL;
        if (store_cluster_get(c->daemon->state, json_string_value(id), &row) != SP_OK)
            continue;
        char reason[256];
        snprintf(reason, sizeof(reason), "its ttl (%s) expired at %s",
                 clusters_str(json_object_get(row, "spec"), "ttl"),
                 clusters_str(row, "expires_at"));
        clusters_terminate(c, row, reason, NULL);
        json_decref(row);
    }
    json_decref(ids);
}

/* PROVISIONING past start_timeout fails; TERMINATING without a stop under way is retried. */
static void clusters_check_stuck(clusters *c, const json_t *rows)
{
    double now = clusters_wall_seconds();
    double limit = (double)clusters_cfg(c)->start_timeout_ms / 1000.0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *id = clusters_str(row, "id");
        const char *state = clusters_str(row, "state");
        if (strcmp(state, "PROVISIONING") == 0 &&
            now - clusters_parse_time(clusters_str(row, "created_at")) > limit) {
            char reason[512];
            const char *last = "";
            for (cluster_op *op = c->ops; op; op = op->next)
                if (op->kind == CLUSTER_OP_READY && strcmp(op->id, id) == 0)
                    last = op->last_error;
            snprintf(reason, sizeof(reason), "not ready within provisioning.start_timeout (%.0f s)%s%s",
                     limit, last[0] ? ": " : "", last);
            for (cluster_op *op = c->ops; op; op = op->next)
                if (strcmp(op->id, id) == 0)
                    op->abandoned = 1;
            clusters_fail_cluster(c, id, reason);
        } else if (strcmp(state, "TERMINATING") == 0) {
            clusters_stop_backend(c, id, clusters_str(row, "backend_ref"));
        }
    }
}

/* Starts one warm cluster for `pool` with the size's resources. */
static int clusters_start_warm(clusters *c, const config_environment *env,
                               const config_region *region, const config_size *size)
{
    char id[CLUSTER_ID_MAX + 1], namespace_name[128], endpoint[512], token[80], pool[256];
    char memory[32], executor_memory[32], err_text[256];
    json_t *spec_in = json_pack("{s:s, s:s}", "environment", env->name, "region", region->name);
    clusters_names(c, spec_in, CLUSTERS_POOL_TEAM, id, namespace_name, endpoint);
    json_decref(spec_in);
    if (clusters_new_token(token) != 0)
        return -1;
    clusters_pool_key(env->name, region->name, size->name, pool, sizeof(pool));
    snprintf(memory, sizeof(memory), "%llum", (unsigned long long)size->driver_memory_mib);
    snprintf(executor_memory, sizeof(executor_memory), "%llum",
             (unsigned long long)size->executor_memory_mib);
    uint64_t cores = size->driver_cores + size->executors * size->executor_cores;
    uint64_t memory_mib = size->driver_memory_mib + size->executors * size->executor_memory_mib;
    json_t *spec = json_pack(
        "{s:s, s:s, s:s, s:{s:{s:I, s:s}, s:I, s:{s:I, s:s}}, s:I, s:I}", "environment",
        env->name, "region", region->name, "size", size->name, "resources", "driver", "cores",
        (json_int_t)size->driver_cores, "memory", memory, "executors",
        (json_int_t)size->executors, "executor", "cores", (json_int_t)size->executor_cores,
        "memory", executor_memory, "cores", (json_int_t)cores, "memory_mib",
        (json_int_t)memory_mib);
    json_t *catalogs = json_array();
    store_cluster_new row = {
        .id = id,
        .team = CLUSTERS_POOL_TEAM,
        .environment = env->name,
        .region = region->name,
        .size = size->name,
        .state = "PROVISIONING",
        .reason = "warm cluster for the hot pool",
        .backend = clusters_cfg(c)->backend,
        .backend_ref = id,
        .pool = pool,
        .namespace_name = namespace_name,
        .token = token,
        .executors = (int64_t)size->executors,
        .cores = (int64_t)cores,
        .memory_mib = (int64_t)memory_mib,
        .catalogs = catalogs,
        .spec = spec,
    };
    json_t *stored = NULL;
    store_create_result result = store_cluster_create(c->daemon->state, &row, NULL, NULL,
                                                      &stored, err_text, sizeof(err_text));
    json_decref(spec);
    json_decref(catalogs);
    if (result != STORE_CREATED) {
        log_msg(SP_LOG_ERROR, "clusters", "warm cluster not stored: %s", err_text);
        return -1;
    }
    log_msg(SP_LOG_INFO, "clusters", "starting warm cluster %s for pool %s", id, pool);
    clusters_start_backend(c, stored);
    json_decref(stored);
    return 0;
}

/* Brings every pool to its configured count within pool_budget; extra warm clusters go. */
static void clusters_fill_pools(clusters *c)
{
    const config *cfg = c->daemon->cfg;
    const config_provisioning *p = &cfg->provisioning;
    void *provider = NULL;
    if (c->draining || clusters_backend(c, &provider) == NULL)
        return;
    store_cluster_filter filter = {.team = CLUSTERS_POOL_TEAM, .include_warm = 1,
                                   .live_only = 1};
    json_t *warm = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &warm) != SP_OK)
        return;
    uint64_t used_cores = 0, used_memory = 0;
    size_t i;
    json_t *row;
    json_array_foreach(warm, i, row) {
        used_cores += (uint64_t)json_integer_value(json_object_get(row, "cores"));
        used_memory += (uint64_t)json_integer_value(json_object_get(row, "memory_mib"));
    }
    int may_start = clusters_now_ms() >= c->pool_retry_at_ms;
    for (size_t e = 0; e < p->environment_count; e++) {
        const config_environment *env = &p->environments[e];
        for (size_t r = 0; r < p->region_count; r++) {
            for (size_t w = 0; w < env->warm_count; w++) {
                const config_size *size = config_find_size(cfg, env->warm[w].size);
                if (size == NULL)
                    continue;
                char pool[256];
                clusters_pool_key(env->name, p->regions[r].name, size->name, pool, sizeof(pool));
                uint64_t have = 0;
                json_array_foreach(warm, i, row) {
                    if (strcmp(clusters_str(row, "pool"), pool) != 0)
                        continue;
                    if (++have > env->warm[w].count) {   /* the count was lowered */
                        log_msg(SP_LOG_INFO, "clusters", "pool %s: stopping extra warm cluster %s",
                                pool, clusters_str(row, "id"));
                        clusters_stop_backend(c, clusters_str(row, "id"),
                                              clusters_str(row, "backend_ref"));
                    }
                }
                uint64_t cores = size->driver_cores + size->executors * size->executor_cores;
                uint64_t memory =
                    size->driver_memory_mib + size->executors * size->executor_memory_mib;
                while (may_start && have < env->warm[w].count &&
                       used_cores + cores <= p->pool_budget_cores &&
                       (p->pool_budget_memory_mib == 0 ||
                        used_memory + memory <= p->pool_budget_memory_mib)) {
                    if (clusters_start_warm(c, env, &p->regions[r], size) != 0)
                        break;
                    have++;
                    used_cores += cores;
                    used_memory += memory;
                }
            }
        }
    }
    /* warm clusters of pools that are no longer configured */
    json_array_foreach(warm, i, row) {
        const config_environment *env = config_find_environment(cfg, clusters_str(row, "environment"));
        int configured = 0;
        for (size_t w = 0; env && w < env->warm_count; w++)
            configured |= strcmp(env->warm[w].size, clusters_str(row, "size")) == 0 &&
                          env->warm[w].count > 0;
        if (!configured || config_find_region(cfg, clusters_str(row, "region")) == NULL)
            clusters_stop_backend(c, clusters_str(row, "id"), clusters_str(row, "backend_ref"));
    }
    json_decref(warm);
}

static void clusters_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    clusters *c = arg;
    if (!c->started)
        return;
    clusters_reap_expired(c);
    store_cluster_filter filter = {.include_warm = 1, .live_only = 1};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) == SP_OK)
        clusters_check_stuck(c, rows);
    json_decref(rows);
    clusters_fill_pools(c);
    clusters_schedule(c);
}

static void clusters_schedule(clusters *c)
{
    uint64_t ms = clusters_cfg(c)->reap_interval_ms;
    if (ms == 0)
        ms = 10000;
    struct timeval every = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_del(c->tick);
    event_add(c->tick, &every);
}

/* ---- restart: adopt what still runs --------------------------------------------------------- */

/* Makes a live row match what the backend reported after a restart (`alive` NULL: gone). */
static void clusters_adopt_row(clusters *c, const json_t *row, const json_t *alive)
{
    const char *id = clusters_str(row, "id");
    const char *state = clusters_str(row, "state");
    int warm = clusters_is_warm(row);
    if (strcmp(state, "TERMINATING") == 0) {
        clusters_stop_backend(c, id, clusters_str(row, "backend_ref"));
        return;
    }
    if (alive == NULL) {
        if (strcmp(state, "PROVISIONING") == 0 && !json_is_string(json_object_get(row, "driver"))) {
            clusters_start_backend(c, row);     /* it never got started: start it now */
            return;
        }
        if (warm) {
            store_cluster_delete(c->daemon->state, id);
            return;
        }
        clusters_transition(c, id, NULL, "FAILED",
                            "its processes were gone when sparkplaned restarted", NULL, NULL);
        return;
    }
    const char *endpoint = json_string_value(json_object_get(alive, "endpoint"));
    json_t *fields = json_pack("{s:s?}", "driver", endpoint);
    if (json_is_integer(json_object_get(alive, "executors")))
        json_object_set(fields, "executors", json_object_get(alive, "executors"));
    if (strcmp(state, "PROVISIONING") == 0) {
        if (clusters_transition(c, id, state, NULL, NULL, fields, NULL) == SP_OK)
            clusters_begin_ready(c, id, clusters_str(row, "backend_ref"));
    } else if (strcmp(state, "SCALING") == 0) {
        clusters_transition(c, id, state, "RUNNING",
                            "adopted after a restart; the scale under way may not have finished",
                            fields, NULL);
    } else {
        json_t *after = NULL;
        if (clusters_transition(c, id, state, NULL, NULL, fields, &after) == SP_OK && !warm)
            log_msg(SP_LOG_INFO, "clusters", "cluster %s adopted (%s)", id,
                    clusters_str(after, "driver"));
        json_decref(after);
    }
    json_decref(fields);
}

static void clusters_on_reconciled(void *arg, int status, const char *json, const char *message)
{
    cluster_op *op = arg;
    clusters *c = op->owner;
    int abandoned = op->abandoned;
    clusters_op_free(op);
    if (abandoned)
        return;
    json_t *reply = status == SP_OK && json ? json_loads(json, 0, NULL) : NULL;
    if (status != SP_OK || reply == NULL) {
        log_msg(SP_LOG_WARN, "clusters", "the %s backend did not say which clusters run (%s); "
                "live clusters are left as they are", clusters_cfg(c)->backend,
                message ? message : "no reply");
        c->started = 1;
        json_decref(reply);
        return;
    }
    json_t *alive = json_object_get(reply, "clusters");
    store_cluster_filter filter = {.include_warm = 1, .live_only = 1};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) == SP_OK) {
        size_t i, k;
        json_t *row, *item;
        json_array_foreach(rows, i, row) {
            json_t *match = NULL;
            json_array_foreach(alive, k, item) {
                if (strcmp(clusters_str(item, "id"), clusters_str(row, "backend_ref")) == 0)
                    match = item;
            }
            clusters_adopt_row(c, row, match);
        }
        /* what the backend runs that no live row owns: stop it */
        json_array_foreach(alive, k, item) {
            int owned = 0;
            json_array_foreach(rows, i, row) {
                owned |= strcmp(clusters_str(item, "id"), clusters_str(row, "backend_ref")) == 0;
            }
            if (!owned) {
                log_msg(SP_LOG_WARN, "clusters", "stopping cluster %s: no live cluster owns it",
                        clusters_str(item, "id"));
                clusters_stop_backend(c, "", clusters_str(item, "id"));
            }
        }
    }
    json_decref(rows);
    json_decref(reply);
    clusters_write_hosts(c);
    c->started = 1;
    event_active(c->tick, EV_TIMEOUT, 0);
}

static void clusters_reconcile(clusters *c)
{
    void *provider = NULL;
    const sp_backend_ops *ops = clusters_backend(c, &provider);
    if (ops == NULL || !SP_HAS_FIELD(ops, sp_backend_ops, reconcile) || ops->reconcile == NULL) {
        c->started = 1;
        event_active(c->tick, EV_TIMEOUT, 0);
        return;
    }
    cluster_op *op = clusters_op_new(c, CLUSTER_OP_RECONCILE, "", "");
    if (op == NULL)
        return;
    if (ops->reconcile(provider, clusters_on_reconciled, op) != SP_OK)
        clusters_on_reconciled(op, SP_ERROR, NULL, "the backend refused to reconcile");
}

void clusters_backend_event(clusters *c, const char *json)
{
    json_t *event = json ? json_loads(json, 0, NULL) : NULL;
    if (event == NULL || strcmp(clusters_str(event, "kind"), "cluster") != 0 ||
        strcmp(clusters_str(event, "state"), "FAILED") != 0) {
        json_decref(event);
        return;
    }
    const char *ref = clusters_str(event, "id");
    store_cluster_filter filter = {.include_warm = 1, .live_only = 1};
    json_t *rows = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &rows) == SP_OK) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            if (strcmp(clusters_str(row, "backend_ref"), ref) != 0 ||
                strcmp(clusters_str(row, "state"), "TERMINATING") == 0)
                continue;
            char reason[768];
            snprintf(reason, sizeof(reason), "%s",
                     clusters_str(event, "reason")[0] ? clusters_str(event, "reason")
                                                      : "its Spark Connect server stopped");
            clusters_fail_cluster(c, clusters_str(row, "id"), reason);
        }
    }
    json_decref(rows);
    json_decref(event);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

clusters *clusters_new(struct daemon_state *daemon)
{
    clusters *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->daemon = daemon;
    c->tick = event_new(daemon->base, -1, 0, clusters_on_tick, c);
    c->created_hot = metrics_register(SP_METRIC_COUNTER, "sparkplane_clusters_created_total",
                                      "Clusters created, by whether a warm one was handed over.",
                                      "source=\"hot\"");
    c->created_cold = metrics_register(SP_METRIC_COUNTER, "sparkplane_clusters_created_total",
                                       "Clusters created, by whether a warm one was handed over.",
                                       "source=\"cold\"");
    c->ready_seconds = metrics_register(
        SP_METRIC_HISTOGRAM, "sparkplane_cluster_start_seconds",
        "From the request to the server's first answer, for clusters started cold.", NULL);
    if (c->tick == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

int clusters_configure(clusters *c, const config *cfg, diag_list *problems)
{
    (void)cfg;
    (void)problems;
    if (c->started)
        clusters_schedule(c);   /* reap_interval may have changed; pools follow at the tick */
    return 0;
}

void clusters_start(clusters *c)
{
    clusters_reconcile(c);
    clusters_schedule(c);
}

void clusters_plugins_changed(clusters *c)
{
    for (cluster_op *op = c->ops; op; op = op->next)
        if (op->kind != CLUSTER_OP_READY)
            op->abandoned = 1;
    c->started = 0;
    clusters_reconcile(c);
}

void clusters_drain(clusters *c)
{
    c->draining = 1;
}

void clusters_free(clusters *c)
{
    if (c == NULL)
        return;
    while (c->ops)
        clusters_op_free(c->ops);
    event_free(c->tick);
    free(c);
}
