/*
 * rest.h - the HTTP/1.1 REST server on libevent's evhttp.
 *
 * Owns the listeners, request limits (body size 413, header size 431,
 * time per request 408), the route table, the JSON error shape
 * {"error":{"code","message","details"}}, per-route metrics and the
 * authentication of /api/v1 through the auth chain.  /healthz, /readyz
 * and /metrics stay open.
 */
#ifndef SPARKPLANE_CORE_REST_H
#define SPARKPLANE_CORE_REST_H

#include <event2/http.h>
#include <jansson.h>
#include <sparkplane/auth.h>

#include "audit.h"
#include "config.h"
#include "diag.h"

typedef struct rest_server rest_server;
struct daemon_state;

/* One request as a handler sees it. */
typedef struct rest_request {
    struct evhttp_request *http;
    struct daemon_state *daemon;
    const char *route;              /* the pattern, for metrics */
    const char *path;               /* decoded path */
    const char *const *params;      /* path parameters captured by {name} */
    size_t param_count;
    const sp_principal *principal;  /* NULL on open routes */
} rest_request;

typedef void (*rest_handler_fn)(rest_request *request);

/*
 * Who may call a route.  REST_OPEN: anyone, no credential (/healthz).
 * REST_READ: any authenticated caller; the handler checks the object's team.
 * REST_WRITE: the same, and a viewer is refused (403) before the handler
 * runs.  Every decision on a READ or WRITE route is audited (audit.h).
 */
typedef enum rest_access { REST_OPEN = 0, REST_READ = 1, REST_WRITE = 2 } rest_access;

rest_server *rest_server_new(struct daemon_state *daemon);
void rest_server_free(rest_server *server);

/*
 * Makes the listeners match cfg->listen (binding new ones, closing removed
 * ones) and applies the limits.  Problems go to `problems`; on failure the
 * previous listeners stay.
 */
int rest_server_configure(rest_server *server, const config *cfg, diag_list *problems);

/* Stops accepting; in-flight requests finish. */
void rest_server_close_listeners(rest_server *server);

/*
 * Routes: "/api/v1/jobs/{id}".  Method NULL = any.  The table is served as
 * GET /api/v1/routes (method, path, access), which the isolation test
 * walks, so a new route is tested for every identity as soon as it exists.
 */
int rest_route_add(rest_server *server, const char *method, const char *pattern,
                   rest_access access, rest_handler_fn handler);

/*
 * Marks the answer about to be given as a refusal of the caller, for the
 * audit log: a handler that answers 404 for another team's object (so it
 * looks missing) calls this first with AUDIT_OTHER_TEAM.  401 and 403
 * answers are marked by rest_reply_error itself.
 */
void rest_note_denial(rest_request *request, audit_reason reason, const char *message);

/* Answers. Takes ownership of `body`. */
void rest_reply_json(rest_request *request, int status, json_t *body);
/* {"error":{"code","message","details"?}} with the status; details may be NULL (stolen). */
void rest_reply_error(rest_request *request, int status, const char *code, const char *message,
                      json_t *details);
/* 400 invalid_request with details {"field": field} when field is set ("" or NULL: none). */
void rest_reply_invalid(rest_request *request, const char *field, const char *message);
/* A non-JSON answer (Prometheus text on /metrics); `body` is drained. */
void rest_reply_text(rest_request *request, int status, const char *content_type,
                     struct evbuffer *body);
/*
 * A streamed answer (GET /jobs/{id}/logs?follow=true): chunked transfer
 * encoding.  stream_start sends the status and headers; stream_chunk
 * drains `data` to the client; stream_end finishes the response, records
 * the metrics and frees the request like the other replies.  While a
 * stream is open its connection has no idle timeout, and the connection
 * closes after it (Connection: close).  When the client goes
 * away mid-stream the handler still calls stream_end (chunks sent meanwhile
 * are dropped by libevent).
 */
void rest_reply_stream_start(rest_request *request, int status, const char *content_type);
void rest_reply_stream_chunk(rest_request *request, struct evbuffer *data);
/* Bytes sent but not yet taken by the client (a slow reader holds them). */
size_t rest_reply_stream_backlog(rest_request *request);
void rest_reply_stream_end(rest_request *request);
/* Builds the error document (unit tests). */
json_t *rest_error_body(const char *code, const char *message, json_t *details);

/*
 * Reading a request.  Each returns what it read, or answers the request
 * (400) and returns NULL / -1, so a handler just stops.
 *
 * rest_read_json_body: the body as JSON (duplicate keys refused); empty or
 * malformed is 400 invalid_json, naming line and column.
 * rest_read_json_object: the same, and anything but an object is 400
 * invalid_request.
 * rest_query_load: the query string into `params` (free with
 * evhttp_clear_headers); a name not in the NULL-terminated `known` list,
 * or given twice, is 400 invalid_request naming it.
 */
json_t *rest_read_json_body(rest_request *request);
json_t *rest_read_json_object(rest_request *request);
int rest_query_load(rest_request *request, const char *const *known, struct evkeyvalq *params);
/* A request header, or NULL. */
const char *rest_header(rest_request *request, const char *name);

/* The daemon's own routes: /healthz, /readyz, /metrics, /api/v1/version, /api/v1/whoami. */
void rest_system_routes(rest_server *server);

/* /api/v1/jobs: submit, get, list, cancel, events, logs (rest_jobs.c). */
void rest_jobs_routes(rest_server *server);

/*
 * /api/v1/clusters (also under /api/v1/spark-connect-clusters) and
 * /api/v1/discovery: create, list, get, delete, scale, ttl, events
 * (rest_clusters.c).
 */
void rest_clusters_routes(rest_server *server);

/* GET /api/v1/openapi.json, the API's OpenAPI 3.0 document (rest_openapi.c). */
void rest_openapi_routes(rest_server *server);
/* That document's text, embedded from core/openapi.json at build time. */
const char *rest_openapi_text(void);

/* Requests in flight (drain). */
size_t rest_server_in_flight(const rest_server *server);

#endif
