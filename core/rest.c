/*
 * rest.c - the REST server: listeners, routing, authentication, answers.
 *
 * evhttp parses HTTP/1.1; one generic callback matches the decoded path
 * against the route table ("/api/v1/jobs/{id}": literal segments and
 * captures), authenticates routes that need it through the auth chain, and
 * calls the handler with a heap-allocated rest_request.  The handler answers
 * with rest_reply_json/rest_reply_error, now or later from the loop; the
 * reply records the per-route metrics and frees the request.
 *
 * Limits: http_guard.c answers oversized headers (431), bodies (413) and
 * slow requests (408) before evhttp parses them.
 *
 * Listeners: server.listen on one evhttp, server.tls.listen (HTTPS) on a
 * second one sharing the callback, so routes and limits are the same; the
 * guard puts TLS (tls_server.h) under the HTTPS connections.  With
 * server.tls.client_certificates: request, a client's certificate chain
 * goes to the auth chain unverified (sp_auth_request.client_cert_pem).
 */
#include "rest.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "auth_chain.h"
#include "daemon.h"
#include "http_guard.h"
#include "log.h"
#include "metrics.h"
#include "principal.h"
#include "tls_server.h"

#define REST_MAX_ROUTES 128
#define REST_MAX_PARAMS 8
#define REST_MAX_PATH 2048

typedef struct rest_route {
    char *method;           /* NULL: any */
    char *pattern;
    rest_access access;
    rest_handler_fn handler;
} rest_route;

typedef struct rest_listener {
    char *address;
    struct evhttp_bound_socket *handle;
    int tls;                /* server.tls.listen: on `https`, else on `http` */
} rest_listener;

struct rest_server {
    daemon_state *daemon;
    struct evhttp *http;            /* server.listen */
    struct evhttp *https;           /* server.tls.listen: same callback, routes and limits */
    SSL_CTX *tls_context;           /* for new HTTPS connections; NULL without HTTPS listeners */
    http_guard_site plain_site;
    http_guard_site tls_site;
    rest_route routes[REST_MAX_ROUTES];
    size_t route_count;
    rest_listener *listeners;
    size_t listener_count;
    http_guard_limits limits;
    size_t in_flight;
};

/* What a handler holds until it replies. */
typedef struct rest_call {
    rest_request request;
    rest_server *server;
    struct timespec started;
    char *path;
    char *params[REST_MAX_PARAMS];
    sp_principal principal;
    int stream_status;          /* a streamed answer's status, for the metrics */
    rest_access access;         /* of the matched route; REST_OPEN until one matched */
    audit_reason denial;        /* AUDIT_OK unless the answer refuses the caller */
    char denial_message[256];   /* why, for the audit log */
} rest_call;

static void rest_on_request(struct evhttp_request *req, void *arg);
static void rest_routes_handler(rest_request *request);

/* One evhttp for plain listeners, one for HTTPS: the same callback, routes and limits. */
static struct evhttp *rest_http_new(rest_server *server, const http_guard_site *site)
{
    struct evhttp *http = evhttp_new(server->daemon->base);
    if (http == NULL)
        return NULL;
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_OPTIONS);
    evhttp_set_default_content_type(http, "application/json");
    evhttp_set_gencb(http, rest_on_request, server);
    http_guard_install(http, site);
    return http;
}

rest_server *rest_server_new(daemon_state *daemon)
{
    rest_server *server = calloc(1, sizeof(*server));
    if (server == NULL)
        return NULL;
    server->daemon = daemon;
    server->plain_site.limits = &server->limits;
    server->tls_site.limits = &server->limits;
    server->tls_site.tls_context = &server->tls_context;
    server->http = rest_http_new(server, &server->plain_site);
    server->https = rest_http_new(server, &server->tls_site);
    if (server->http == NULL || server->https == NULL) {
        if (server->http != NULL)
            evhttp_free(server->http);
        if (server->https != NULL)
            evhttp_free(server->https);
        free(server);
        return NULL;
    }
    rest_route_add(server, "GET", "/api/v1/routes", REST_READ, rest_routes_handler);
    return server;
}

void rest_server_free(rest_server *server)
{
    if (server == NULL)
        return;
    evhttp_free(server->http);
    evhttp_free(server->https);
    tls_server_context_free(server->tls_context);
    for (size_t i = 0; i < server->route_count; i++) {
        free(server->routes[i].method);
        free(server->routes[i].pattern);
    }
    for (size_t i = 0; i < server->listener_count; i++)
        free(server->listeners[i].address);
    free(server->listeners);
    free(server);
}

/* ---- listeners ------------------------------------------------------- */

static struct evhttp *rest_http_for(const rest_server *server, int tls)
{
    return tls ? server->https : server->http;
}

/* The listener on `address`, or NULL. */
static rest_listener *rest_listener_find(const rest_server *server, const char *address)
{
    for (size_t i = 0; i < server->listener_count; i++)
        if (strcmp(server->listeners[i].address, address) == 0)
            return &server->listeners[i];
    return NULL;
}

/* 1 when cfg lists address, with *tls saying whether in server.tls.listen. */
static int rest_config_lists(const config *cfg, const char *address, int *tls)
{
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (strcmp(cfg->listen[i], address) == 0) {
            *tls = 0;
            return 1;
        }
    }
    for (size_t i = 0; i < cfg->tls_listen_count; i++) {
        if (strcmp(cfg->tls_listen[i], address) == 0) {
            *tls = 1;
            return 1;
        }
    }
    return 0;
}

/* Binds the addresses of one list that no listener serves yet (moves come later). */
static int rest_bind_list(rest_server *server, char *const *addresses, size_t count, int tls,
                          rest_listener *added, size_t *added_count, diag_list *problems)
{
    const char *key = tls ? "server.tls.listen" : "server.listen";
    for (size_t i = 0; i < count; i++) {
        const char *address = addresses[i];
        char host[256];
        int port;
        if (rest_listener_find(server, address) != NULL)
            continue;
        if (config_split_listen(address, host, sizeof(host), &port) != 0) {
            diag_add(problems, "%s: '%s' is not host:port", key, address);
            return -1;
        }
        errno = 0;
        struct evhttp_bound_socket *h =
            evhttp_bind_socket_with_handle(rest_http_for(server, tls), host, (ev_uint16_t)port);
        if (h == NULL) {
            diag_add(problems, "%s: cannot listen on %s: %s", key, address,
                     errno ? strerror(errno) : "bind failed");
            return -1;
        }
        added[*added_count].address = strdup(address);
        added[*added_count].handle = h;
        added[*added_count].tls = tls;
        (*added_count)++;
    }
    return 0;
}

/* Binds every address of cfg not bound yet; on failure the caller unbinds those. */
static int rest_bind_new(rest_server *server, const config *cfg, rest_listener *added,
                         size_t *added_count, diag_list *problems)
{
    if (rest_bind_list(server, cfg->listen, cfg->listen_count, 0, added, added_count, problems))
        return -1;
    return rest_bind_list(server, cfg->tls_listen, cfg->tls_listen_count, 1, added, added_count,
                          problems);
}

/* ALPN: http/1.1 when the client offers it; otherwise none (the client falls back to it). */
static int rest_tls_select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int at = 0; at < inlen;) {
        unsigned int len = in[at];
        if (at + 1 + len > inlen)
            break;
        if (len == 8 && memcmp(in + at + 1, "http/1.1", 8) == 0) {
            *out = in + at + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        at += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* A new HTTPS context from server.tls (read again on every reload: rotation), or NULL. */
static int rest_tls_load(const config *cfg, SSL_CTX **context, diag_list *problems)
{
    char message[1024];
    tls_server_fault fault;
    tls_server_settings settings = {
        .certificate_path = cfg->tls_certificate,
        .key_path = cfg->tls_key,
        .session_context = "sparkplane-rest",
        .request_client_certificates =
            cfg->tls_client_certificates == CONFIG_CLIENT_CERTIFICATES_REQUEST,
    };
    *context = NULL;
    if (cfg->tls_listen_count == 0)
        return 0;
    *context = tls_server_context_new(&settings, &fault, message, sizeof(message));
    if (*context == NULL) {
        diag_add(problems, "%s: %s",
                 fault == TLS_SERVER_FAULT_KEY ? "server.tls.key" : "server.tls.certificate",
                 message);
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(*context, rest_tls_select_alpn, NULL);
    tls_server_context_describe(*context, message, sizeof(message));
    log_msg(SP_LOG_INFO, "rest", "TLS certificate: %s", message);
    return 0;
}

/*
 * An address that moved between server.listen and server.tls.listen keeps
 * its socket (a second bind would fail: it is still bound) and serves the
 * other protocol to new connections.
 */
static int rest_listener_move(rest_server *server, rest_listener *listener)
{
    evutil_socket_t fd = dup(evhttp_bound_socket_get_fd(listener->handle));
    if (fd < 0)
        return -1;
    evhttp_del_accept_socket(rest_http_for(server, listener->tls), listener->handle);
    listener->tls = !listener->tls;
    listener->handle = evhttp_accept_socket_with_handle(rest_http_for(server, listener->tls), fd);
    if (listener->handle == NULL) {
        close(fd);
        return -1;
    }
    return 0;
}

/* Keeps (or moves) the listeners cfg still lists, closes the others; returns the kept. */
static size_t rest_keep_listeners(rest_server *server, const config *cfg, rest_listener *next)
{
    size_t next_count = 0;
    for (size_t i = 0; i < server->listener_count; i++) {
        rest_listener *listener = &server->listeners[i];
        int tls = 0;
        int listed = rest_config_lists(cfg, listener->address, &tls);
        if (listed && tls == listener->tls) {
            next[next_count++] = *listener;
            continue;
        }
        if (listed && rest_listener_move(server, listener) == 0) {
            log_msg(SP_LOG_INFO, "rest", "listener %s now serves %s", listener->address,
                    tls ? "HTTPS" : "plain HTTP");
            next[next_count++] = *listener;
            continue;
        }
        if (listed)
            log_msg(SP_LOG_ERROR, "rest", "cannot switch listener %s to %s: %s; closed",
                    listener->address, tls ? "HTTPS" : "plain HTTP", strerror(errno));
        else
            log_msg(SP_LOG_INFO, "rest", "closing listener %s", listener->address);
        if (listener->handle != NULL)
            evhttp_del_accept_socket(rest_http_for(server, listener->tls), listener->handle);
        free(listener->address);
    }
    return next_count;
}

/* The idle timeout of keep-alive connections (see rest_server_configure). */
static struct timeval rest_idle_timeout(const rest_server *server)
{
    uint64_t idle_ms = server->limits.request_timeout_ms + 1000;
    return (struct timeval){.tv_sec = (time_t)(idle_ms / 1000),
                            .tv_usec = (suseconds_t)(idle_ms % 1000) * 1000};
}

/* evhttp's own limits, on both instances (see rest_server_configure). */
static void rest_apply_limits(rest_server *server, const config *cfg)
{
    struct evhttp *both[] = {server->http, server->https};
    server->limits.max_header_bytes = (size_t)cfg->max_header_bytes;
    server->limits.max_body_bytes = cfg->max_body_bytes;
    server->limits.request_timeout_ms = cfg->request_timeout_ms;
    struct timeval timeout = rest_idle_timeout(server);
    for (size_t i = 0; i < 2; i++) {
        evhttp_set_max_body_size(both[i], (ev_ssize_t)cfg->max_body_bytes);
        evhttp_set_max_headers_size(both[i], (ev_ssize_t)cfg->max_header_bytes * 2);
        evhttp_set_timeout_tv(both[i], &timeout);
    }
}

int rest_server_configure(rest_server *server, const config *cfg, diag_list *problems)
{
    size_t capacity = cfg->listen_count + cfg->tls_listen_count + 1;
    rest_listener *added = calloc(capacity, sizeof(*added));
    rest_listener *next = calloc(capacity, sizeof(*next));
    SSL_CTX *tls_context = NULL;
    size_t added_count = 0;
    if (added == NULL || next == NULL || rest_tls_load(cfg, &tls_context, problems) != 0)
        goto fail;
    if (rest_bind_new(server, cfg, added, &added_count, problems) != 0) {
        for (size_t i = 0; i < added_count; i++) {
            evhttp_del_accept_socket(rest_http_for(server, added[i].tls), added[i].handle);
            free(added[i].address);
        }
        goto fail;
    }

    /*
     * The new context serves new HTTPS connections from here on (open ones
     * keep theirs); HTTPS listeners exist only while there is a context.
     */
    tls_server_context_free(server->tls_context);
    server->tls_context = tls_context;
    size_t next_count = rest_keep_listeners(server, cfg, next);
    for (size_t i = 0; i < added_count; i++) {
        log_msg(SP_LOG_INFO, "rest", "listening on %s%s", added[i].address,
                added[i].tls ? " (HTTPS)" : "");
        next[next_count++] = added[i];
    }
    free(added);
    free(server->listeners);
    server->listeners = next;
    server->listener_count = next_count;

    /*
     * The guard answers 431/413/408 first; evhttp's own limits stay as a
     * backstop (chunked bodies) and close idle keep-alive connections a
     * little after the guard's deadline.
     */
    rest_apply_limits(server, cfg);
    return 0;
fail:
    tls_server_context_free(tls_context);
    free(added);
    free(next);
    return -1;
}

void rest_server_close_listeners(rest_server *server)
{
    for (size_t i = 0; i < server->listener_count; i++) {
        evhttp_del_accept_socket(rest_http_for(server, server->listeners[i].tls),
                                 server->listeners[i].handle);
        free(server->listeners[i].address);
    }
    server->listener_count = 0;
}

size_t rest_server_in_flight(const rest_server *server)
{
    return server->in_flight;
}

/* ---- routes ---------------------------------------------------------- */

int rest_route_add(rest_server *server, const char *method, const char *pattern,
                   rest_access access, rest_handler_fn handler)
{
    if (server->route_count == REST_MAX_ROUTES || pattern[0] != '/')
        return -1;
    rest_route *r = &server->routes[server->route_count];
    r->method = method ? strdup(method) : NULL;
    r->pattern = strdup(pattern);
    r->access = access;
    r->handler = handler;
    server->route_count++;
    return 0;
}

static const char *rest_access_name(rest_access access)
{
    return access == REST_WRITE ? "write" : access == REST_READ ? "read" : "open";
}

/* GET /api/v1/routes: the table itself, so clients and tests see what is served and how. */
static void rest_routes_handler(rest_request *request)
{
    rest_server *server = ((rest_call *)request)->server;
    json_t *routes = json_array();
    for (size_t i = 0; routes != NULL && i < server->route_count; i++) {
        const rest_route *r = &server->routes[i];
        json_array_append_new(routes, json_pack("{s:s, s:s, s:s}", "method",
                                                r->method ? r->method : "*", "path", r->pattern,
                                                "access", rest_access_name(r->access)));
    }
    rest_reply_json(request, 200, json_pack("{s:o}", "routes", routes));
}

/*
 * Matches "/a/{x}/b" against "/a/42/b", capturing "42".  Returns 1 on a
 * match; captures are malloc'd into params.
 */
static int rest_match(const char *pattern, const char *path, char **params, size_t *param_count)
{
    const char *p = pattern, *s = path;
    *param_count = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *end_p = strchr(p, '}');
            const char *end_s = strchrnul(s, '/');
            if (end_p == NULL || end_s == s || *param_count == REST_MAX_PARAMS)
                goto no_match;
            params[(*param_count)++] = strndup(s, (size_t)(end_s - s));
            p = end_p + 1;
            s = end_s;
            continue;
        }
        if (*p != *s)
            goto no_match;
        p++;
        s++;
    }
    if (*p == '\0' && *s == '\0')
        return 1;
no_match:
    for (size_t i = 0; i < *param_count; i++)
        free(params[i]);
    *param_count = 0;
    return 0;
}

static const char *rest_method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}

/* ---- answers --------------------------------------------------------- */

json_t *rest_error_body(const char *code, const char *message, json_t *details)
{
    json_t *error = json_pack("{s:s, s:s}", "code", code ? code : "internal",
                              "message", message ? message : "");
    if (error == NULL) {
        json_decref(details);
        return NULL;
    }
    if (details != NULL)
        json_object_set_new(error, "details", details);
    return json_pack("{s:o}", "error", error);
}

/* The decision on an authenticated route, for the audit log (audit.h). */
static void rest_audit(rest_call *call, const char *method, int status)
{
    char action[600], peer[160] = "";
    struct evhttp_connection *conn = evhttp_request_get_connection(call->request.http);
    if (conn != NULL) {
        const char *host = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(conn, (char **)&host, &port);
        snprintf(peer, sizeof(peer), "%s:%u", host ? host : "?", port);
    }
    snprintf(action, sizeof(action), "%s %s", method, call->request.route);
    audit_entry entry = {
        .transport = "rest",
        .peer = peer,
        .principal = call->request.principal,
        .action = action,
        .object = call->path,
        .reason = call->denial,
        .message = call->denial_message,
        .http_status = status,
    };
    audit_record(&entry);
}

static void rest_record(rest_call *call, int status)
{
    char labels[512];
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double seconds = (double)(now.tv_sec - call->started.tv_sec) +
                     (double)(now.tv_nsec - call->started.tv_nsec) / 1e9;
    const char *method = rest_method_name(evhttp_request_get_command(call->request.http));

    if (call->access != REST_OPEN)
        rest_audit(call, method, status);
    snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"",
             call->request.route, method, status);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_http_requests_total",
                                 "REST requests by route, method and status.", labels),
                1);
    snprintf(labels, sizeof(labels), "route=\"%s\"", call->request.route);
    metrics_observe(metrics_register(SP_METRIC_HISTOGRAM,
                                     "sparkplane_http_request_duration_seconds",
                                     "REST request latency by route.", labels),
                    seconds);
    if (status >= 500 || log_current_level() >= SP_LOG_DEBUG) {
        char status_text[16], ms_text[32];
        snprintf(status_text, sizeof(status_text), "%d", status);
        snprintf(ms_text, sizeof(ms_text), "%.3f", seconds * 1000);
        log_fields(status >= 500 ? SP_LOG_WARN : SP_LOG_DEBUG, "rest", "request", "method",
                   method, "path", call->path, "status", status_text, "ms", ms_text, NULL);
    }
}

static void rest_call_free(rest_call *call)
{
    for (size_t i = 0; i < call->request.param_count; i++)
        free(call->params[i]);
    free(call->path);
    free(call);
}

static void rest_finish(rest_request *request, int status, const char *reason,
                        struct evbuffer *body)
{
    rest_call *call = (rest_call *)request;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    if (evhttp_find_header(headers, "Content-Type") == NULL)
        evhttp_add_header(headers, "Content-Type", "application/json");
    if (call->server->daemon->draining)
        evhttp_add_header(headers, "Connection", "close");
    evhttp_send_reply(request->http, status, reason, body);
    rest_record(call, status);
    call->server->in_flight--;
    rest_call_free(call);
}

static const char *rest_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

void rest_reply_json(rest_request *request, int status, json_t *body)
{
    struct evbuffer *out = evbuffer_new();
    if (body != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        if (text != NULL) {
            evbuffer_add(out, text, strlen(text));
            evbuffer_add(out, "\n", 1);
            free(text);
        }
        json_decref(body);
    }
    rest_finish(request, status, rest_reason(status), out);
    evbuffer_free(out);
}

void rest_note_denial(rest_request *request, audit_reason reason, const char *message)
{
    rest_call *call = (rest_call *)request;
    call->denial = reason;
    snprintf(call->denial_message, sizeof(call->denial_message), "%.*s",
             (int)sizeof(call->denial_message) - 1, message ? message : "");
}

void rest_reply_error(rest_request *request, int status, const char *code, const char *message,
                      json_t *details)
{
    rest_call *call = (rest_call *)request;
    if ((status == 401 || status == 403) && call->denial == AUDIT_OK)
        rest_note_denial(request, status == 401 ? AUDIT_UNAUTHENTICATED : AUDIT_OTHER_TEAM,
                         message);
    rest_reply_json(request, status, rest_error_body(code, message, details));
}

void rest_reply_invalid(rest_request *request, const char *field, const char *message)
{
    json_t *details = field != NULL && field[0] != '\0' ? json_pack("{s:s}", "field", field) : NULL;
    rest_reply_error(request, 400, "invalid_request", message, details);
}

/* ---- reading requests ------------------------------------------------ */

json_t *rest_read_json_body(rest_request *request)
{
    struct evbuffer *input = evhttp_request_get_input_buffer(request->http);
    size_t len = input ? evbuffer_get_length(input) : 0;
    const char *data = len ? (const char *)evbuffer_pullup(input, -1) : NULL;
    json_error_t jerr;
    char message[512];
    if (data == NULL) {
        rest_reply_error(request, 400, "invalid_json",
                         "the request body is empty; expected a JSON object", NULL);
        return NULL;
    }
    json_t *body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body != NULL)
        return body;
    snprintf(message, sizeof(message), "the body is not valid JSON: %s at line %d, column %d",
             jerr.text, jerr.line, jerr.column);
    rest_reply_error(request, 400, "invalid_json", message,
                     json_pack("{s:i, s:i, s:i}", "line", jerr.line, "column", jerr.column,
                               "position", jerr.position));
    return NULL;
}

json_t *rest_read_json_object(rest_request *request)
{
    static const char *const type_names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
        [JSON_INTEGER] = "a number", [JSON_REAL] = "a number",  [JSON_TRUE] = "true",
        [JSON_FALSE] = "false",      [JSON_NULL] = "null",
    };
    json_t *body = rest_read_json_body(request);
    if (body == NULL || json_is_object(body))
        return body;
    char message[128];
    snprintf(message, sizeof(message), "the request body must be a JSON object, not %s",
             type_names[json_typeof(body)]);
    rest_reply_invalid(request, NULL, message);
    json_decref(body);
    return NULL;
}

const char *rest_header(rest_request *request, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(request->http), name);
}

int rest_query_load(rest_request *request, const char *const *known, struct evkeyvalq *params)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(request->http);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    char message[256];
    TAILQ_INIT(params);
    if (query == NULL || query[0] == '\0')
        return 0;
    if (evhttp_parse_query_str(query, params) != 0) {
        rest_reply_error(request, 400, "invalid_query", "the query string is malformed", NULL);
        return -1;
    }
    for (struct evkeyval *p = params->tqh_first; p != NULL; p = p->next.tqe_next) {
        int known_name = 0;
        for (size_t i = 0; known[i] != NULL; i++)
            known_name |= strcmp(known[i], p->key) == 0;
        if (!known_name)
            snprintf(message, sizeof(message), "%.60s: unknown query parameter", p->key);
        else if (evhttp_find_header(params, p->key) != p->value)
            snprintf(message, sizeof(message), "%.60s: given more than once", p->key);
        else
            continue;
        rest_reply_invalid(request, p->key, message);
        evhttp_clear_headers(params);
        return -1;
    }
    return 0;
}

void rest_reply_text(rest_request *request, int status, const char *content_type,
                     struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(request->http), "Content-Type",
                      content_type);
    rest_finish(request, status, rest_reason(status), body);
}

void rest_reply_stream_start(rest_request *request, int status, const char *content_type)
{
    rest_call *call = (rest_call *)request;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    struct evhttp_connection *conn = evhttp_request_get_connection(request->http);
    if (conn != NULL) {
        /*
         * A stream may stay quiet for longer than the idle timeout while the
         * client only listens, and the guard's filter times a direction out
         * whenever it is enabled, data or not: no timeouts until the stream
         * ends.  The handler bounds what a client that stops reading can
         * hold (rest_reply_stream_backlog).
         */
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(conn), NULL, NULL);
    }
    evhttp_add_header(headers, "Content-Type", content_type);
    /*
     * A stream is the connection's last answer: after a chunked reply through
     * http_guard's filter, evhttp does not take the next request (keep-alive
     * would hang the client), so the connection closes when the stream ends.
     */
    evhttp_add_header(headers, "Connection", "close");
    call->stream_status = status;
    evhttp_send_reply_start(request->http, status, rest_reason(status));
}

void rest_reply_stream_chunk(rest_request *request, struct evbuffer *data)
{
    evhttp_send_reply_chunk(request->http, data);
}

size_t rest_reply_stream_backlog(rest_request *request)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(request->http);
    if (conn == NULL)
        return 0;
    return evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(conn)));
}

void rest_reply_stream_end(rest_request *request)
{
    rest_call *call = (rest_call *)request;
    struct evhttp_connection *conn = evhttp_request_get_connection(request->http);
    if (conn != NULL) {
        struct timeval idle = rest_idle_timeout(call->server);
        evhttp_connection_set_timeout_tv(conn, &idle); /* back to keep-alive duty */
    }
    /* With the client gone (no connection) this frees the evhttp request. */
    evhttp_send_reply_end(request->http);
    rest_record(call, call->stream_status);
    call->server->in_flight--;
    rest_call_free(call);
}

/* ---- dispatch -------------------------------------------------------- */

/* The chain an HTTPS client presented (tls_server_peer_chain_pem), or NULL. */
static char *rest_client_chain_pem(struct evhttp_connection *conn)
{
    /* evhttp's bufferevent is the guard's filter; TLS, if any, is right under it. */
    struct bufferevent *filter = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    struct bufferevent *below = filter ? bufferevent_get_underlying(filter) : NULL;
    return tls_server_peer_chain_pem(below ? bufferevent_openssl_get_ssl(below) : NULL);
}

static int rest_authenticate(rest_call *call)
{
    daemon_state *daemon = call->server->daemon;
    struct evhttp_connection *conn = evhttp_request_get_connection(call->request.http);
    char peer[128] = "";
    char err[256];
    const char *peer_host = NULL;
    ev_uint16_t peer_port = 0;

    if (conn != NULL) {
        evhttp_connection_get_peer(conn, (char **)&peer_host, &peer_port);
        snprintf(peer, sizeof(peer), "%s:%u", peer_host ? peer_host : "?", peer_port);
    }
    char *client_chain = rest_client_chain_pem(conn);
    sp_auth_request auth = {
        .size = sizeof(auth),
        .transport = SP_AUTH_REST,
        .authorization = evhttp_find_header(
            evhttp_request_get_input_headers(call->request.http), "Authorization"),
        .peer_address = peer,
        .client_cert_pem = client_chain,
    };
    int status = auth_chain_authenticate(daemon->plugins, daemon->cfg->auth_chain,
                                         daemon->cfg->auth_chain_count, &auth,
                                         &call->principal, err, sizeof(err));
    free(client_chain);
    if (status == SP_OK) {
        call->request.principal = &call->principal;
        return 0;
    }
    log_fields(SP_LOG_INFO, "rest", "authentication failed", "peer", peer, "path", call->path,
               "reason", err, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(call->request.http),
                      "WWW-Authenticate", "Bearer realm=\"sparkplane\"");
    rest_reply_error(&call->request, 401, "unauthenticated", err, NULL);
    return -1;
}

static const rest_route *rest_find(rest_server *server, rest_call *call, const char *method,
                                   int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < server->route_count; i++) {
        rest_route *r = &server->routes[i];
        size_t count = 0;
        if (!rest_match(r->pattern, call->path, call->params, &count))
            continue;
        *path_known = 1;
        if (r->method == NULL || strcmp(r->method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
            call->request.param_count = count;
            return r;
        }
        for (size_t j = 0; j < count; j++)
            free(call->params[j]);
    }
    return NULL;
}

static void rest_on_request(struct evhttp_request *req, void *arg)
{
    rest_server *server = arg;
    rest_call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &call->started);
    call->server = server;
    call->request.http = req;
    call->request.daemon = server->daemon;
    call->request.route = "unmatched";
    call->request.params = (const char *const *)call->params;
    server->in_flight++;

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri ? evhttp_uri_get_path(uri) : NULL;
    size_t decoded_len = 0;
    call->path = raw_path ? evhttp_uridecode(raw_path, 0, &decoded_len) : NULL;
    if (call->path == NULL || decoded_len > REST_MAX_PATH || call->path[0] != '/' ||
        strlen(call->path) != decoded_len) {
        /* An encoded NUL would cut the path short: refuse rather than guess. */
        if (call->path == NULL)
            call->path = strdup("");
        rest_reply_error(&call->request, 400, "invalid_path", "the request path is not valid",
                         NULL);
        return;
    }

    const char *method = rest_method_name(evhttp_request_get_command(req));
    int path_known;
    const rest_route *route = rest_find(server, call, method, &path_known);
    if (route == NULL) {
        if (path_known)
            rest_reply_error(&call->request, 405, "method_not_allowed",
                             "this method is not allowed on this path", NULL);
        else
            rest_reply_error(&call->request, 404, "not_found", "no such route", NULL);
        return;
    }
    call->request.route = route->pattern;
    call->access = route->access;
    if (route->access != REST_OPEN && rest_authenticate(call) != 0)
        return;
    if (route->access == REST_WRITE && !principal_may_write(call->request.principal)) {
        char message[384];
        snprintf(message, sizeof(message), "%.*s has the viewer role, which may only read",
                 (int)strnlen(call->principal.subject, 256), call->principal.subject);
        rest_note_denial(&call->request, AUDIT_VIEWER, message);
        rest_reply_error(&call->request, 403, "forbidden", message, NULL);
        return;
    }
    route->handler(&call->request);
}
