/*
 * rest_clusters.c - the cluster API: thin handlers over clusters.h.
 *
 *   POST   /api/v1/clusters               create (Idempotency-Key; 201 new, 200 replay)
 *   GET    /api/v1/clusters               list: team, environment, region, status
 *   GET    /api/v1/clusters/{id}          one cluster
 *   DELETE /api/v1/clusters/{id}          terminate (202)
 *   POST   /api/v1/clusters/{id}/scale    {"size"} or {"executors"}
 *   POST   /api/v1/clusters/{id}/ttl      {"ttl"}
 *   GET    /api/v1/clusters/{id}/events   every state change
 *   GET    /api/v1/discovery              team, environment, region -> endpoint
 *
 * Every /api/v1/clusters route is served under the platform docs' name
 * /api/v1/spark-connect-clusters too.  A handler only reads the request -
 * a JSON object body, the known query parameters, the Idempotency-Key
 * header - and answers 400 for what it cannot read; clusters.c checks the
 * caller, validates, writes the store and returns the public view.  A
 * clusters_error becomes the API's error shape, with details {"field"}
 * when it names one.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clusters.h"
#include "daemon.h"
#include "rest.h"

#define CLUSTERS_ID_MAX          128
#define CLUSTERS_QUERY_VALUE_MAX 128

static const char *const clusters_prefixes[] = {"/api/v1/clusters",
                                                "/api/v1/spark-connect-clusters", NULL};
static const char *const clusters_list_params[] = {"team", "environment", "region", "status", NULL};
static const char *const clusters_discovery_params[] = {"team", "environment", "region", NULL};
static const char *const clusters_states[] = {"PROVISIONING", "RUNNING", "SCALING", "TERMINATING",
                                              "TERMINATED",   "FAILED",  NULL};

/* ---- answers ---------------------------------------------------------- */

static void clusters_reply_failed(rest_request *request, const clusters_error *err)
{
    json_t *details = err->field[0] != '\0' ? json_pack("{s:s}", "field", err->field) : NULL;
    int status = err->status >= 400 && err->status <= 599 ? err->status : 500;
    if (err->denial[0] != '\0')
        rest_note_denial(request, AUDIT_OTHER_TEAM, err->denial);
    rest_reply_error(request, status, err->code[0] != '\0' ? err->code : "internal",
                     err->message[0] != '\0' ? err->message : "the cluster operation failed",
                     details);
}

/* 0 from a clusters_* call: `out` with `status`; else the error. */
static void clusters_reply(rest_request *request, int rc, int status, json_t *out,
                           const clusters_error *err)
{
    if (rc == 0 && out != NULL)
        rest_reply_json(request, status, out);
    else if (rc == 0)
        rest_reply_error(request, 500, "internal", "the cluster operation returned nothing", NULL);
    else
        clusters_reply_failed(request, err);
}

/* The daemon's cluster manager, or answers 503 and returns NULL. */
static clusters *clusters_manager(rest_request *request)
{
    if (request->daemon->clusters != NULL)
        return request->daemon->clusters;
    rest_reply_error(request, 503, "unavailable", "cluster provisioning is not running", NULL);
    return NULL;
}

/* ---- reading the request ---------------------------------------------- */

/* Ids are short and plain; anything else cannot name a cluster (404, like a missing one). */
static int clusters_id_plausible(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > CLUSTERS_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The {id} path parameter, or answers 404 and returns NULL. */
static const char *clusters_path_id(rest_request *request)
{
    const char *id = request->param_count > 0 ? request->params[0] : "";
    if (clusters_id_plausible(id))
        return id;
    char message[192];
    snprintf(message, sizeof(message), "no cluster '%.100s'", id);
    rest_reply_error(request, 404, "not_found", message, NULL);
    return NULL;
}

/* An optional query value: NULL when absent; present but empty or too long is answered. */
static int clusters_query_text(rest_request *request, struct evkeyvalq *params, const char *name,
                               const char **out)
{
    *out = evhttp_find_header(params, name);
    if (*out == NULL || ((*out)[0] != '\0' && strlen(*out) <= CLUSTERS_QUERY_VALUE_MAX))
        return 0;
    char message[160];
    snprintf(message, sizeof(message), "%s: expected 1 to %d characters", name,
             CLUSTERS_QUERY_VALUE_MAX);
    rest_reply_invalid(request, name, message);
    return -1;
}

/* team, environment and region, each optional; 0 or answered. */
static int clusters_query_placement(rest_request *request, struct evkeyvalq *params,
                                    const char **team, const char **environment,
                                    const char **region)
{
    if (clusters_query_text(request, params, "team", team) != 0 ||
        clusters_query_text(request, params, "environment", environment) != 0 ||
        clusters_query_text(request, params, "region", region) != 0)
        return -1;
    return 0;
}

/* status, any case, as the store spells it; 0 or answered. */
static int clusters_query_status(rest_request *request, struct evkeyvalq *params,
                                 const char **status)
{
    const char *text = evhttp_find_header(params, "status");
    *status = NULL;
    if (text == NULL)
        return 0;
    for (size_t i = 0; clusters_states[i] != NULL; i++)
        if (strcasecmp(text, clusters_states[i]) == 0) {
            *status = clusters_states[i];
            return 0;
        }
    rest_reply_invalid(request, "status",
                       "status: expected one of PROVISIONING, RUNNING, SCALING, TERMINATING, "
                       "TERMINATED, FAILED");
    return -1;
}

/* ---- POST /api/v1/clusters -------------------------------------------- */

static void clusters_reply_created(rest_request *request, json_t *cluster, int created)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    const char *id = json_string_value(json_object_get(cluster, "cluster_id"));
    if (id != NULL) {
        char location[192];
        snprintf(location, sizeof(location), "/api/v1/clusters/%.150s", id);
        evhttp_add_header(headers, "Location", location);
    }
    if (!created)
        evhttp_add_header(headers, "Idempotent-Replayed", "true");
    rest_reply_json(request, created ? 201 : 200, cluster);
}

static void clusters_create_handler(rest_request *request)
{
    clusters_error err = {0};
    json_t *body, *out = NULL;
    int created = 0;
    clusters *c = clusters_manager(request);
    if (c == NULL || (body = rest_read_json_object(request)) == NULL)
        return;
    int rc = clusters_create(c, request->principal, body, rest_header(request, "Idempotency-Key"),
                             &out, &created, &err);
    json_decref(body);
    if (rc == 0 && out != NULL)
        clusters_reply_created(request, out, created);
    else
        clusters_reply(request, rc, 201, out, &err);
}

/* ---- GET /api/v1/clusters, GET /api/v1/discovery ---------------------- */

static void clusters_list_handler(rest_request *request)
{
    struct evkeyvalq params;
    clusters_error err = {0};
    const char *team, *environment, *region, *status;
    json_t *out = NULL;
    clusters *c = clusters_manager(request);
    if (c == NULL || rest_query_load(request, clusters_list_params, &params) != 0)
        return;
    if (clusters_query_placement(request, &params, &team, &environment, &region) == 0 &&
        clusters_query_status(request, &params, &status) == 0) {
        int rc =
            clusters_list(c, request->principal, team, environment, region, status, &out, &err);
        clusters_reply(request, rc, 200, out, &err);
    }
    evhttp_clear_headers(&params);
}

static void clusters_discovery_handler(rest_request *request)
{
    struct evkeyvalq params;
    clusters_error err = {0};
    const char *team, *environment, *region;
    json_t *out = NULL;
    clusters *c = clusters_manager(request);
    if (c == NULL || rest_query_load(request, clusters_discovery_params, &params) != 0)
        return;
    if (clusters_query_placement(request, &params, &team, &environment, &region) == 0) {
        int rc = clusters_discover(c, request->principal, team, environment, region, &out, &err);
        clusters_reply(request, rc, 200, out, &err);
    }
    evhttp_clear_headers(&params);
}

/* ---- /api/v1/clusters/{id}[/...] -------------------------------------- */

static void clusters_get_handler(rest_request *request)
{
    clusters_error err = {0};
    json_t *out = NULL;
    clusters *c = clusters_manager(request);
    const char *id = c != NULL ? clusters_path_id(request) : NULL;
    if (id == NULL)
        return;
    int rc = clusters_get(c, request->principal, id, &out, &err);
    clusters_reply(request, rc, 200, out, &err);
}

static void clusters_delete_handler(rest_request *request)
{
    clusters_error err = {0};
    json_t *out = NULL;
    clusters *c = clusters_manager(request);
    const char *id = c != NULL ? clusters_path_id(request) : NULL;
    if (id == NULL)
        return;
    int rc = clusters_delete(c, request->principal, id, &out, &err);
    clusters_reply(request, rc, 202, out, &err);
}

static void clusters_events_handler(rest_request *request)
{
    clusters_error err = {0};
    json_t *out = NULL;
    clusters *c = clusters_manager(request);
    const char *id = c != NULL ? clusters_path_id(request) : NULL;
    if (id == NULL)
        return;
    int rc = clusters_events(c, request->principal, id, &out, &err);
    clusters_reply(request, rc, 200, out, &err);
}

/* scale and ttl: a cluster id and a JSON object body. */
typedef int (*clusters_change_fn)(clusters *c, const sp_principal *caller, const char *id,
                                  const json_t *body, json_t **out, clusters_error *err);

static void clusters_change(rest_request *request, clusters_change_fn change)
{
    clusters_error err = {0};
    json_t *body, *out = NULL;
    clusters *c = clusters_manager(request);
    const char *id = c != NULL ? clusters_path_id(request) : NULL;
    if (id == NULL || (body = rest_read_json_object(request)) == NULL)
        return;
    int rc = change(c, request->principal, id, body, &out, &err);
    json_decref(body);
    clusters_reply(request, rc, 200, out, &err);
}

static void clusters_scale_handler(rest_request *request)
{
    clusters_change(request, clusters_scale);
}

static void clusters_ttl_handler(rest_request *request)
{
    clusters_change(request, clusters_set_ttl);
}

/* ---- routes ----------------------------------------------------------- */

void rest_clusters_routes(rest_server *server)
{
    static const struct {
        const char *method, *suffix;
        rest_handler_fn handler;
    } routes[] = {
        {"POST", "", clusters_create_handler},
        {"GET", "", clusters_list_handler},
        {"GET", "/{id}", clusters_get_handler},
        {"DELETE", "/{id}", clusters_delete_handler},
        {"POST", "/{id}/scale", clusters_scale_handler},
        {"POST", "/{id}/ttl", clusters_ttl_handler},
        {"GET", "/{id}/events", clusters_events_handler},
    };
    char pattern[96];
    for (size_t p = 0; clusters_prefixes[p] != NULL; p++)
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            snprintf(pattern, sizeof(pattern), "%s%s", clusters_prefixes[p], routes[i].suffix);
            rest_route_add(server, routes[i].method, pattern,
                           strcmp(routes[i].method, "GET") == 0 ? REST_READ : REST_WRITE,
                           routes[i].handler);
        }
    rest_route_add(server, "GET", "/api/v1/discovery", REST_READ,
                   clusters_discovery_handler);
}
