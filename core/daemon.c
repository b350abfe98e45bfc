/*
 * daemon.c - sparkplaned's lifecycle.
 *
 * Start: state directory and store, HTTP client and process manager, the
 * plugin set (prepare, then init in order), the auth chain check, REST
 * listeners, signals; READY=1 only after all of that.
 *
 * Reload (SIGHUP): the new config is loaded and checked, a new plugin set is
 * prepared and started beside the old one, listeners are reconciled; only
 * when every step worked are config and plugin set swapped and the old set
 * stopped.  Any failure leaves the running daemon exactly as it was and says
 * why in the log and in systemd's STATUS.
 *
 * Drain (SIGTERM/SIGINT): STOPPING=1, listeners close, in-flight requests
 * finish (up to server.drain_timeout), then the loop exits.
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "auth_chain.h"
#include "clusters.h"
#include "gateway.h"
#include "host_api.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"

#define DAEMON_DRAIN_POLL_MS 50

static void daemon_log_problems(sp_log_level level, const char *what, const diag_list *problems)
{
    for (size_t i = 0; i < problems->count; i++)
        log_fields(level, "core", what, "problem", problems->messages[i], NULL);
}

/* mkdir -p with mode 0750 for each missing component. */
static int daemon_make_directory(const char *path, diag_list *problems)
{
    char buf[4096];
    if (strlen(path) >= sizeof(buf)) {
        diag_add(problems, "state.directory: path too long");
        return -1;
    }
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
            diag_add(problems, "state.directory: cannot create %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0')
            return 0;
    }
}

/* Builds and starts a plugin set for cfg and checks the auth chain against it. */
static plugin_set *daemon_start_plugins(const config *cfg, diag_list *problems)
{
    plugin_set *set = plugin_set_prepare(cfg, host_api_table(), problems);
    if (set == NULL)
        return NULL;
    if (plugin_set_start(set, problems) != 0 ||
        auth_chain_check(set, cfg->auth_chain, cfg->auth_chain_count, problems) != 0) {
        plugin_set_free(set);
        return NULL;
    }
    return set;
}

static void daemon_on_signal(evutil_socket_t signal_number, short what, void *arg)
{
    daemon_state *daemon = arg;
    if (signal_number == SIGHUP)
        daemon_reload(daemon);
    else
        daemon_begin_drain(daemon);
}

static int daemon_watch_signals(daemon_state *daemon)
{
    signal(SIGPIPE, SIG_IGN);
    daemon->sighup = evsignal_new(daemon->base, SIGHUP, daemon_on_signal, daemon);
    daemon->sigterm = evsignal_new(daemon->base, SIGTERM, daemon_on_signal, daemon);
    daemon->sigint = evsignal_new(daemon->base, SIGINT, daemon_on_signal, daemon);
    if (!daemon->sighup || !daemon->sigterm || !daemon->sigint)
        return -1;
    evsignal_add(daemon->sighup, NULL);
    evsignal_add(daemon->sigterm, NULL);
    evsignal_add(daemon->sigint, NULL);
    return 0;
}

static int daemon_open_state(daemon_state *daemon, const config *cfg, diag_list *problems)
{
    char err[512];
    if (daemon_make_directory(cfg->state_directory, problems) != 0)
        return -1;
    if (store_open(cfg->database_path, &daemon->state, err, sizeof(err)) != 0) {
        diag_add(problems, "state.database: %s", err);
        return -1;
    }
    log_msg(SP_LOG_INFO, "store", "opened %s (schema version %d)", cfg->database_path,
            store_schema_version(daemon->state));
    return audit_configure(cfg, problems);
}

int daemon_start(daemon_state *daemon, config *cfg, diag_list *problems)
{
    daemon->cfg = cfg;
    daemon->started_at = (double)time(NULL);
    log_configure(cfg->log_level, cfg->log_format);
    notify_status("starting");

    if (daemon_open_state(daemon, cfg, problems) != 0)
        return -1;
    daemon->http = http_client_new(daemon->base);
    daemon->processes = process_manager_new(daemon->base);
    if (daemon->http == NULL || daemon->processes == NULL) {
        diag_add(problems, "cannot start the HTTP client or the process manager");
        return -1;
    }
    host_services services = {.base = daemon->base,
                              .http = daemon->http,
                              .processes = daemon->processes,
                              .state = daemon->state};
    host_api_bind(&services);
    plugin_host_set_release_hook(host_api_release);

    daemon->plugins = daemon_start_plugins(cfg, problems);
    if (daemon->plugins == NULL)
        return -1;

    daemon->jobs = runner_new(daemon);
    daemon->rest = rest_server_new(daemon);
    if (daemon->rest == NULL || daemon->jobs == NULL)
        return -1;
    rest_system_routes(daemon->rest);
    rest_jobs_routes(daemon->rest);
    rest_clusters_routes(daemon->rest);
    rest_openapi_routes(daemon->rest);
    if (rest_server_configure(daemon->rest, cfg, problems) != 0)
        return -1;
    daemon->gateway = gateway_new(daemon);
    if (daemon->gateway == NULL || gateway_configure(daemon->gateway, cfg, problems) != 0)
        return -1;
    daemon->clusters = clusters_new(daemon);
    if (daemon->clusters == NULL || clusters_configure(daemon->clusters, cfg, problems) != 0)
        return -1;
    if (daemon_watch_signals(daemon) != 0) {
        diag_add(problems, "cannot watch signals");
        return -1;
    }

    runner_start(daemon->jobs);
    clusters_start(daemon->clusters);
    daemon->ready = 1;
    log_msg(SP_LOG_INFO, "core", "sparkplaned %s ready: %zu plugin(s), ABI %d.%d",
            PACKAGE_VERSION, plugin_set_count(daemon->plugins), SP_ABI_MAJOR, SP_ABI_MINOR);
    notify_send("READY=1");
    notify_status("ready: %zu plugin(s), listening on %zu address(es)",
                  plugin_set_count(daemon->plugins), cfg->listen_count);
    return 0;
}

/* Settings that only a restart can change: say so instead of ignoring them. */
static void daemon_warn_restart_only(const config *old_cfg, const config *new_cfg)
{
    if (strcmp(old_cfg->database_path, new_cfg->database_path) != 0)
        log_msg(SP_LOG_WARN, "core",
                "state.database changed to %s: this takes effect after a restart",
                new_cfg->database_path);
}

void daemon_reload(daemon_state *daemon)
{
    diag_list problems = {0};
    config *cfg = NULL;
    plugin_set *set = NULL;

    notify_reloading();
    log_msg(SP_LOG_INFO, "core", "reloading %s", daemon->config_path);
    if (config_load(daemon->config_path, daemon->cfg->plugin_directory, &cfg, &problems) != 0)
        goto fail;
    if ((set = daemon_start_plugins(cfg, &problems)) == NULL)
        goto fail;
    if (rest_server_configure(daemon->rest, cfg, &problems) != 0)
        goto fail;
    if (gateway_configure(daemon->gateway, cfg, &problems) != 0)
        goto fail;
    if (audit_configure(cfg, &problems) != 0) /* last step that can fail: it swaps files */
        goto fail;

    daemon_warn_restart_only(daemon->cfg, cfg);
    plugin_set *old_set = daemon->plugins;
    config *old_cfg = daemon->cfg;
    daemon->plugins = set;
    daemon->cfg = cfg;
    plugin_set_free(old_set);
    config_free(old_cfg);
    log_configure(cfg->log_level, cfg->log_format);
    runner_plugins_changed(daemon->jobs);
    clusters_configure(daemon->clusters, cfg, &problems);
    clusters_plugins_changed(daemon->clusters);
    log_msg(SP_LOG_INFO, "core", "reloaded: %zu plugin(s)", plugin_set_count(set));
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_config_reloads_total",
                                 "Configuration reloads by result.", "result=\"ok\""),
                1);
    notify_send("READY=1");
    notify_status("ready: reloaded, %zu plugin(s)", plugin_set_count(set));
    return;

fail:
    daemon_log_problems(SP_LOG_ERROR, "reload refused; the running configuration stays",
                        &problems);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_config_reloads_total",
                                 "Configuration reloads by result.", "result=\"refused\""),
                1);
    notify_send("READY=1");
    notify_status("ready: reload refused (%s)",
                  problems.count ? problems.messages[0] : "unknown reason");
    if (set != NULL)
        plugin_set_free(set);
    config_free(cfg);
    diag_clear(&problems);
}

static double daemon_monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void daemon_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    daemon_state *daemon = arg;
    double waited_ms = (daemon_monotonic_seconds() - daemon->drain_started_at) * 1000.0;
    size_t in_flight = rest_server_in_flight(daemon->rest) + gateway_in_flight(daemon->gateway);
    if (in_flight == 0 || waited_ms >= (double)daemon->cfg->drain_timeout_ms) {
        if (in_flight > 0)
            log_msg(SP_LOG_WARN, "core", "drain timeout: %zu request(s) cut off", in_flight);
        event_base_loopexit(daemon->base, NULL);
    }
}

void daemon_begin_drain(daemon_state *daemon)
{
    if (daemon->draining)
        return;
    daemon->draining = 1;
    notify_send("STOPPING=1");
    log_msg(SP_LOG_INFO, "core", "draining: %zu request(s) in flight",
            daemon->rest ? rest_server_in_flight(daemon->rest) : (size_t)0);
    if (daemon->rest == NULL) {
        event_base_loopexit(daemon->base, NULL);
        return;
    }
    rest_server_close_listeners(daemon->rest);
    gateway_close_listeners(daemon->gateway);
    clusters_drain(daemon->clusters);
    daemon->drain_started_at = daemon_monotonic_seconds();
    daemon->drain_timer = event_new(daemon->base, -1, EV_PERSIST, daemon_on_drain_tick, daemon);
    struct timeval tick = {.tv_sec = 0, .tv_usec = DAEMON_DRAIN_POLL_MS * 1000};
    event_add(daemon->drain_timer, &tick);
}

void daemon_stop(daemon_state *daemon)
{
    if (daemon->drain_timer)
        event_free(daemon->drain_timer);
    if (daemon->sighup)
        event_free(daemon->sighup);
    if (daemon->sigterm)
        event_free(daemon->sigterm);
    if (daemon->sigint)
        event_free(daemon->sigint);
    clusters_free(daemon->clusters);     /* its calls use the gateway's connections */
    gateway_free(daemon->gateway);
    rest_server_free(daemon->rest);
    runner_free(daemon->jobs);
    if (daemon->plugins)
        plugin_set_free(daemon->plugins);
    process_manager_free(daemon->processes);
    http_client_free(daemon->http);
    store_close(daemon->state);
    audit_close();
    config_free(daemon->cfg);
    metrics_shutdown();
    memset(daemon, 0, sizeof(*daemon));
}
