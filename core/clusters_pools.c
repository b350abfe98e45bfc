/*
 * clusters_pools.c - the cluster manager's periodic work and its start and
 * end: the tick (provisioning.reap_interval) ends expired clusters, fails
 * clusters that overrun start_timeout, retries stops and keeps every hot pool
 * at its configured count within pool_budget; after a start or a reload the
 * backend's reconcile reply says which clusters still run (adopted) and which
 * are gone; backend events report clusters that died by themselves.
 */
#include <config.h>

#include "clusters_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_spec.h"
#include "log.h"
#include "store_clusters.h"
#include "store_jobs.h"

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
            snprintf(reason, sizeof(reason),
                     "not ready within provisioning.start_timeout (%.0f s)%s%s", limit,
                     last[0] ? ": " : "", last);
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
    json_t *spec = json_pack("{s:s, s:s, s:s, s:{s:{s:I, s:s}, s:I, s:{s:I, s:s}}, s:I, s:I}",
                             "environment", env->name, "region", region->name, "size", size->name,
                             "resources", "driver", "cores", (json_int_t)size->driver_cores,
                             "memory", memory, "executors", (json_int_t)size->executors, "executor",
                             "cores", (json_int_t)size->executor_cores, "memory", executor_memory,
                             "cores", (json_int_t)cores, "memory_mib", (json_int_t)memory_mib);
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
    store_create_result result = store_cluster_create(c->daemon->state, &row, NULL, NULL, &stored,
                                                      err_text, sizeof(err_text));
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

/* Whether warm clusters using this much would be over provisioning.pool_budget. */
static int clusters_over_budget(const config_provisioning *p, uint64_t cores, uint64_t memory_mib)
{
    return cores > p->pool_budget_cores ||
           (p->pool_budget_memory_mib != 0 && memory_mib > p->pool_budget_memory_mib);
}

/* A warm cluster whose stop is under way: it no longer counts in its pool or the budget. */
static int clusters_warm_leaving(const clusters *c, const json_t *row)
{
    return clusters_op_running(c, CLUSTER_OP_STOP, clusters_str(row, "id"));
}

/* Brings every pool to its configured count within pool_budget; extra warm clusters go. */
static void clusters_fill_pools(clusters *c)
{
    const config *cfg = c->daemon->cfg;
    const config_provisioning *p = &cfg->provisioning;
    void *provider = NULL;
    if (c->draining || clusters_backend(c, &provider) == NULL)
        return;
    store_cluster_filter filter = {.team = CLUSTERS_POOL_TEAM, .include_warm = 1, .live_only = 1};
    json_t *warm = NULL;
    if (store_cluster_list(c->daemon->state, &filter, &warm) != SP_OK)
        return;
    uint64_t used_cores = 0, used_memory = 0;
    size_t i;
    json_t *row;
    json_array_foreach(warm, i, row) {
        if (clusters_warm_leaving(c, row))
            continue;
        used_cores += (uint64_t)json_integer_value(json_object_get(row, "cores"));
        used_memory += (uint64_t)json_integer_value(json_object_get(row, "memory_mib"));
    }
    /* a budget cut on reload: the newest warm clusters go until the rest fit */
    for (i = json_array_size(warm); i-- > 0 && clusters_over_budget(p, used_cores, used_memory);) {
        row = json_array_get(warm, i);
        if (clusters_warm_leaving(c, row))
            continue;
        log_msg(SP_LOG_INFO, "clusters", "stopping warm cluster %s: over provisioning.pool_budget",
                clusters_str(row, "id"));
        clusters_stop_backend(c, clusters_str(row, "id"), clusters_str(row, "backend_ref"));
        used_cores -= (uint64_t)json_integer_value(json_object_get(row, "cores"));
        used_memory -= (uint64_t)json_integer_value(json_object_get(row, "memory_mib"));
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
                    if (strcmp(clusters_str(row, "pool"), pool) != 0 ||
                        clusters_warm_leaving(c, row))
                        continue;
                    if (++have > env->warm[w].count) { /* the count was lowered */
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
                       !clusters_over_budget(p, used_cores + cores, used_memory + memory)) {
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
        const config_environment *env =
            config_find_environment(cfg, clusters_str(row, "environment"));
        int configured = 0;
        for (size_t w = 0; env && w < env->warm_count; w++)
            configured |=
                strcmp(env->warm[w].size, clusters_str(row, "size")) == 0 && env->warm[w].count > 0;
        if ((!configured || config_find_region(cfg, clusters_str(row, "region")) == NULL) &&
            !clusters_warm_leaving(c, row)) {
            log_msg(SP_LOG_INFO, "clusters",
                    "stopping warm cluster %s: its pool %s is not "
                    "configured any more",
                    clusters_str(row, "id"), clusters_str(row, "pool"));
            clusters_stop_backend(c, clusters_str(row, "id"), clusters_str(row, "backend_ref"));
        }
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

void clusters_schedule(clusters *c)
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
            clusters_start_backend(c, row); /* it never got started: start it now */
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
        log_msg(SP_LOG_WARN, "clusters",
                "the %s backend did not say which clusters run (%s); "
                "live clusters are left as they are",
                clusters_cfg(c)->backend, message ? message : "no reply");
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
        clusters_schedule(c); /* reap_interval may have changed; pools follow at the tick */
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
