/*
 * rest_system.c - the daemon's own routes.
 *
 *   /healthz        liveness: the loop answers (always open)
 *   /readyz         readiness: store open, plugins initialised, not draining
 *   /metrics        Prometheus text
 *   /api/v1/version build, ABI and loaded plugins (authenticated)
 *   /api/v1/whoami  the caller's principal as the auth chain saw it
 */
#include <event2/buffer.h>
#include <jansson.h>

#include "daemon.h"
#include "metrics.h"
#include "rest.h"

static void system_healthz(rest_request *request)
{
    rest_reply_json(request, 200, json_pack("{s:s}", "status", "ok"));
}

static void system_readyz(rest_request *request)
{
    daemon_state *daemon = request->daemon;
    json_t *reasons = json_array();
    if (daemon->draining)
        json_array_append_new(reasons, json_string("draining: the daemon is stopping"));
    if (daemon->state == NULL || store_ping(daemon->state) != 0)
        json_array_append_new(reasons, json_string("store: the database is not open"));
    if (!daemon->ready)
        json_array_append_new(reasons, json_string("plugins: not initialised yet"));
    if (json_array_size(reasons) == 0) {
        json_decref(reasons);
        rest_reply_json(request, 200, json_pack("{s:s}", "status", "ready"));
        return;
    }
    rest_reply_error(request, 503, "not_ready", "sparkplaned is not ready",
                     json_pack("{s:o}", "reasons", reasons));
}

static void system_metrics(rest_request *request)
{
    daemon_state *daemon = request->daemon;
    metrics_set(metrics_register(SP_METRIC_GAUGE, "sparkplane_ready",
                                 "1 when the daemon is ready to serve.", NULL),
                daemon->ready && !daemon->draining ? 1 : 0);
    metrics_set(metrics_register(SP_METRIC_GAUGE, "sparkplane_plugins_loaded",
                                 "Plugins initialised in the running set.", NULL),
                daemon->plugins ? (double)plugin_set_count(daemon->plugins) : 0);
    metrics_set(metrics_register(SP_METRIC_GAUGE, "sparkplane_build_info",
                                 "Build information; the value is always 1.",
                                 "version=\"" PACKAGE_VERSION "\""),
                1);
    struct evbuffer *out = evbuffer_new();
    metrics_render(out);
    rest_reply_text(request, 200, "text/plain; version=0.0.4; charset=utf-8", out);
    evbuffer_free(out);
}

static void system_version(rest_request *request)
{
    daemon_state *daemon = request->daemon;
    json_t *plugins = json_array();
    size_t count = daemon->plugins ? plugin_set_count(daemon->plugins) : 0;
    for (size_t i = 0; i < count; i++) {
        const loaded_plugin *p = plugin_set_get(daemon->plugins, i);
        char plugin_abi[32];
        snprintf(plugin_abi, sizeof(plugin_abi), "%u.%u", p->descriptor->abi_major,
                 p->descriptor->abi_minor);
        json_array_append_new(plugins,
                              json_pack("{s:s, s:s, s:s, s:s}", "name", p->name, "kind",
                                        plugin_kind_name(p->descriptor->kind), "version",
                                        p->descriptor->version ? p->descriptor->version : "",
                                        "abi", plugin_abi));
    }
    char abi[32];
    snprintf(abi, sizeof(abi), "%d.%d", SP_ABI_MAJOR, SP_ABI_MINOR);
    rest_reply_json(request, 200,
                    json_pack("{s:s, s:s, s:i, s:o}", "version", PACKAGE_VERSION, "abi", abi,
                              "schema_version",
                              daemon->state ? store_schema_version(daemon->state) : 0,
                              "plugins", plugins));
}

static void system_whoami(rest_request *request)
{
    const sp_principal *p = request->principal;
    json_t *teams = json_array();
    for (uint32_t i = 0; i < p->team_count; i++)
        json_array_append_new(teams, json_string(p->teams[i]));
    rest_reply_json(request, 200,
                    json_pack("{s:s, s:s, s:o}", "subject", p->subject, "role", p->role, "teams",
                              teams));
}

void rest_system_routes(rest_server *server)
{
    rest_route_add(server, "GET", "/healthz", REST_OPEN, system_healthz);
    rest_route_add(server, "GET", "/readyz", REST_OPEN, system_readyz);
    rest_route_add(server, "GET", "/metrics", REST_OPEN, system_metrics);
    rest_route_add(server, "GET", "/api/v1/version", REST_READ, system_version);
    rest_route_add(server, "GET", "/api/v1/whoami", REST_READ, system_whoami);
}
