/*
 * gateway_stream.c - one gRPC request through the gateway, from its HEADERS to its trailers.
 *
 * When a request's headers are complete the stream is authenticated through the auth chain
 * (transport SP_AUTH_GATEWAY; a connection reuses its last good credentials for a second)
 * and routed to a cluster (gateway_route.h) the caller's team owns; any refusal is a gRPC
 * trailers-only answer (HTTP 200, grpc-status) and nothing reaches a Spark server.
 *
 * The first gRPC message of every request is held just long enough to read its session_id
 * and user_context (spark_connect_prefix.h): a user_context.user_id that is not the caller is
 * replaced by the caller's subject or refused with PERMISSION_DENIED
 * (gateway.user_id_policy), so nobody acts as someone else on a Spark server.  The session id
 * picks the driver (gateway_sessions.h: the session's pinned one, or the least-loaded healthy
 * one for a new session); only then does the stream open upstream: the headers (minus
 * hop-by-hop headers and the client's credentials, plus the cluster's own token) on a pooled
 * client session (gateway_upstream.h), the prefix (as is or rewritten), and the rest of the
 * message streamed on.  DATA, trailers and RST_STREAM pass both ways.
 *
 * Limits: request messages over gateway.max_message_size are refused (RESOURCE_EXHAUSTED)
 * from their gRPC length prefix, a request cut off inside a message is INVALID_ARGUMENT, and
 * grpc-timeout is enforced (DEADLINE_EXCEEDED, the Spark server's stream cancelled).
 *
 * Flow control is end to end: neither session sends WINDOW_UPDATE by itself.  Bytes received
 * on one side sit in the stream's buffer and are "consumed" (window reopened) only when the
 * other side's session has taken them, so the gateway holds at most the windows it granted
 * and a slow reader slows its writer.  Prefix bytes the reader holds count as received, not
 * forwarded; a rewritten prefix may differ in size, so the client is credited the original
 * bytes once all of the rewrite went up.  Data providers answer NGHTTP2_ERR_DEFERRED while
 * the buffer is empty and are resumed when bytes arrive.
 *
 * Nothing here sends or frees a connection: that happens at the top of the loop in gateway.c.
 */
#include "gateway_internal.h"
#include "spark_connect_call.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth_chain.h"
#include "gateway_tls.h"
#include "log.h"

/* ---- small helpers ---------------------------------------------------------------------- */

void gateway_encode_grpc_message(const char *message, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)message; *p; p++) {
        int plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
        if (used + (plain ? 1 : 3) >= out_size)
            break;
        if (plain) {
            out[used++] = (char)*p;
        } else {
            out[used++] = '%';
            out[used++] = hex[*p >> 4];
            out[used++] = hex[*p & 15];
        }
    }
    if (out_size > 0)
        out[used] = '\0';
}

/* A grpc-timeout value ("<1-8 digits><H|M|S|m|u|n>") in microseconds; -1 when malformed. */
static int64_t gateway_grpc_timeout_us(const char *value)
{
    static const struct {
        char unit;
        int64_t us_per_unit;    /* n: 0 marks nanoseconds (divided instead) */
    } units[] = {{'H', INT64_C(3600000000)}, {'M', INT64_C(60000000)}, {'S', 1000000},
                 {'m', 1000}, {'u', 1}, {'n', 0}};
    size_t digits = strspn(value, "0123456789");
    if (digits < 1 || digits > 8 || value[digits + 1] != '\0')
        return -1;
    int64_t amount = strtoll(value, NULL, 10);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (value[digits] == units[i].unit)
            return units[i].us_per_unit ? amount * units[i].us_per_unit : amount / 1000;
    }
    return -1;
}

static nghttp2_nv gateway_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* Headers that describe one hop, not the request; the client's credentials stay here.
 * Pseudo-headers are never local; lengths are compared first (this runs for every header). */
static int gateway_is_local_header(const nghttp2_nv *nv)
{
    static const struct {
        const char *name;
        size_t length;
    } names[] = {{"connection", 10}, {"keep-alive", 10}, {"proxy-connection", 16},
                 {"transfer-encoding", 17}, {"upgrade", 7}, {"host", 4},
                 {"authorization", 13}, {"x-sparkplane-cluster-id", 23}};
    if (nv->namelen == 0 || nv->name[0] == ':')
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (nv->namelen == names[i].length && memcmp(nv->name, names[i].name, nv->namelen) == 0)
            return 1;
    }
    return 0;
}

void gateway_count_stream(gateway_stream *stream, const char *grpc_status)
{
    if (stream->counted)
        return;
    stream->counted = 1;
    gateway_cluster_stats *stats = stream->stats;
    if (stats == NULL)
        stats = gateway_metrics_cluster(stream->conn->gw->metrics, stream->cluster, stream->team);
    if (stats)
        gateway_metrics_count_stream(stats, grpc_status);
}

/* ---- answering a stream ----------------------------------------------------------------- */

/* A gRPC error as a trailers-only response: HTTP 200 and grpc-status in one HEADERS frame. */
static void gateway_answer_error(gateway_stream *stream, int grpc_status, const char *message)
{
    char status[16];
    char encoded[1024];
    if (stream->id < 0 || stream->response_started)
        return;
    snprintf(status, sizeof(status), "%d", grpc_status);
    gateway_encode_grpc_message(message, encoded, sizeof(encoded));
    nghttp2_nv nva[] = {gateway_nv(":status", "200"),
                        gateway_nv("content-type", "application/grpc"),
                        gateway_nv("grpc-status", status), gateway_nv("grpc-message", encoded)};
    stream->response_started = 1;
    stream->response_ended = 1;
    nghttp2_submit_response(stream->conn->session, stream->id, nva, 4, NULL);
    gateway_count_stream(stream, status);
    gateway_schedule(stream->conn);
}

static void gateway_reset_client(gateway_stream *stream, uint32_t error_code)
{
    if (stream->id < 0)
        return;
    nghttp2_submit_rst_stream(stream->conn->session, NGHTTP2_FLAG_NONE, stream->id, error_code);
    gateway_schedule(stream->conn);
}

/* Client bytes received on this stream and not yet credited back (held or buffered). */
static size_t gateway_stream_unforwarded(const gateway_stream *stream)
{
    return stream->prefix_taken + evbuffer_get_length(stream->request_body) -
           stream->front_left + stream->front_credit;
}

/* How many client bytes `sent` request_body bytes stand for: 1:1, except that a rewritten
 * prefix is credited as the original bytes, all at once when its last byte went up. */
static size_t gateway_stream_credit(gateway_stream *stream, size_t sent)
{
    size_t front = sent < stream->front_left ? sent : stream->front_left;
    size_t credit = sent - front;
    stream->front_left -= front;
    if (front > 0 && stream->front_left == 0) {
        credit += stream->front_credit;
        stream->front_credit = 0;
    }
    return credit;
}

void gateway_stream_free(gateway_stream *stream)
{
    sc_call_cancel(stream->preflight);
    stream->preflight = NULL;
    gateway_conn *conn = stream->conn;
    if (stream->up) {
        gateway_upstream_cancel(stream->up);
        stream->up = NULL;
    }
    /* Request bytes never forwarded still hold connection window: give it back. */
    size_t left = gateway_stream_unforwarded(stream);
    if (left > 0 && conn->session)
        nghttp2_session_consume_connection(conn->session, left);
    sc_prefix_reader_free(stream->prefix);
    if (stream->pinned) {
        gateway *gw = conn->gw;
        gateway_session_key key = {stream->cluster, stream->principal.subject,
                                   stream->session_id};
        gateway_sessions_stream_end(gw->sessions, gw->registry, &key, gateway_now_ms());
        if (stream->releases_session && key.session_id[0])
            gateway_sessions_release(gw->sessions, gw->registry, &key);
    }
    if (stream->stats)
        metrics_add(stream->stats->active_streams, -1);
    if (stream->deadline)
        event_free(stream->deadline);
    if (stream->prev)
        stream->prev->next = stream->next;
    else
        conn->streams = stream->next;
    if (stream->next)
        stream->next->prev = stream->prev;
    conn->gw->in_flight--;
    gateway_headers_free(&stream->request_headers);
    gateway_headers_free(&stream->trailers);
    evbuffer_free(stream->request_body);
    evbuffer_free(stream->response_body);
    free(stream);
}

/* ---- the upstream side of a stream ------------------------------------------------------ */

static ssize_t gateway_send_response(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                     size_t length, uint32_t *data_flags,
                                     nghttp2_data_source *source, void *user_data);

static void gateway_note_status(gateway_stream *stream, const nghttp2_nv *nva, size_t nvlen)
{
    for (size_t i = 0; i < nvlen; i++) {
        if (strcmp((const char *)nva[i].name, "grpc-status") == 0)
            gateway_count_stream(stream, (const char *)nva[i].value);
    }
}

static void gateway_up_headers(void *arg, const nghttp2_nv *nva, size_t nvlen, int trailers,
                               int end_stream)
{
    gateway_stream *stream = arg;
    gateway_note_status(stream, nva, nvlen);
    if (!stream->first_byte_seen && stream->stats) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        stream->first_byte_seen = 1;
        metrics_observe(stream->stats->first_byte_seconds,
                        (double)(now.tv_sec - stream->opened.tv_sec) +
                            (double)(now.tv_nsec - stream->opened.tv_nsec) / 1e9);
    }
    if (trailers) {
        for (size_t i = 0; i < nvlen; i++) {
            if (gateway_headers_add(&stream->trailers, nva[i].name, nva[i].namelen,
                                    nva[i].value, nva[i].valuelen, GATEWAY_MAX_HEADER_BYTES))
                break;
        }
        stream->response_ended = 1;
    } else if (stream->id >= 0) {
        nghttp2_data_provider body = {.source.ptr = stream,
                                      .read_callback = gateway_send_response};
        nghttp2_nv *copy = calloc(nvlen ? nvlen : 1, sizeof(*copy));
        size_t count = 0;
        for (size_t i = 0; copy && i < nvlen; i++) {
            if (!gateway_is_local_header(&nva[i]))
                copy[count++] = nva[i];
        }
        stream->response_started = 1;
        stream->response_ended = end_stream;
        if (copy == NULL || nghttp2_submit_response(stream->conn->session, stream->id, copy,
                                                    count, end_stream ? NULL : &body) != 0)
            gateway_reset_client(stream, NGHTTP2_INTERNAL_ERROR);
        free(copy);
    }
    if (stream->id >= 0) {
        nghttp2_session_resume_data(stream->conn->session, stream->id);
        gateway_schedule(stream->conn);
    }
}

static void gateway_up_data(void *arg, const uint8_t *data, size_t len, int end_stream)
{
    gateway_stream *stream = arg;
    if (stream->stats)
        metrics_add(stream->stats->bytes_response, (double)len);
    if (len > 0 && evbuffer_add(stream->response_body, data, len) != 0)
        gateway_reset_client(stream, NGHTTP2_INTERNAL_ERROR);
    if (end_stream)
        stream->response_ended = 1;
    if (stream->id >= 0) {
        nghttp2_session_resume_data(stream->conn->session, stream->id);
        gateway_schedule(stream->conn);
    }
}

static void gateway_up_close(void *arg, uint32_t error_code, const char *why)
{
    gateway_stream *stream = arg;
    stream->up = NULL;
    if (stream->id < 0) {
        gateway_stream_free(stream);
        return;
    }
    if (why && !stream->response_started) {
        char message[1024];
        if (stream->fresh_pin) {
            /* The session's first request: nothing of it lives on that driver, so its retry
             * (pyspark retries UNAVAILABLE) may start it on a healthy one. */
            gateway *gw = stream->conn->gw;
            gateway_session_key key = {stream->cluster, stream->principal.subject,
                                       stream->session_id};
            gateway_sessions_forget(gw->sessions, gw->registry, &key);
            snprintf(message, sizeof(message),
                     "cluster '%s': Spark Connect server %s failed (%s); retry to start the "
                     "session on another server",
                     stream->cluster, stream->endpoint, why);
        } else if (stream->session_id[0])
            snprintf(message, sizeof(message),
                     "session %.64s runs on Spark Connect server %s of cluster '%s', which "
                     "failed (%s); start a new session to continue on another server",
                     stream->session_id, stream->endpoint, stream->cluster, why);
        else
            snprintf(message, sizeof(message), "cluster '%s': %s", stream->cluster, why);
        log_msg(SP_LOG_WARN, "gateway", "cluster %s: %s", stream->cluster, why);
        gateway_answer_error(stream, GATEWAY_GRPC_UNAVAILABLE, message);
    } else if (why || error_code != 0 || !stream->response_ended) {
        gateway_count_stream(stream, "14");
        gateway_reset_client(stream, error_code ? error_code : NGHTTP2_INTERNAL_ERROR);
    }
}

static ssize_t gateway_up_read_body(void *arg, uint8_t *buf, size_t len, int *eof)
{
    gateway_stream *stream = arg;
    size_t available = evbuffer_get_length(stream->request_body);
    if (available == 0) {
        *eof = stream->request_ended && stream->prefix == NULL;
        return *eof ? 0 : -1;
    }
    int n = evbuffer_remove(stream->request_body, buf, len);
    if (n <= 0)
        return -1;
    /* Upstream took these bytes: now the client may send that much more. */
    size_t credit = gateway_stream_credit(stream, (size_t)n);
    if (credit > 0 && stream->id >= 0) {
        nghttp2_session_consume(stream->conn->session, stream->id, credit);
        gateway_schedule(stream->conn);
    } else if (credit > 0) {
        nghttp2_session_consume_connection(stream->conn->session, credit);
    }
    *eof = stream->request_ended && evbuffer_get_length(stream->request_body) == 0;
    return n;
}

static const gateway_upstream_ops gateway_up_ops = {
    .on_headers = gateway_up_headers,
    .on_data = gateway_up_data,
    .on_close = gateway_up_close,
    .read_body = gateway_up_read_body,
};

/* The client's response body: what upstream sent, then its trailers. */
static ssize_t gateway_send_response(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                     size_t length, uint32_t *data_flags,
                                     nghttp2_data_source *source, void *user_data)
{
    (void)user_data;
    gateway_stream *stream = source->ptr;
    int n = evbuffer_remove(stream->response_body, buf, length);
    if (n > 0) {
        if (stream->up)
            gateway_upstream_consume(stream->up, (size_t)n);
        return n;
    }
    if (!stream->response_ended)
        return NGHTTP2_ERR_DEFERRED;
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (stream->trailers.count > 0) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, stream_id, stream->trailers.nv,
                                   stream->trailers.count) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

/* ---- a new request ---------------------------------------------------------------------- */

static void gateway_refuse_request(gateway_stream *stream, int grpc_status, const char *message);

/*
 * The caller, through the auth chain.  A client sends the same authorization on every call of
 * a connection, so the last one that passed is reused for GATEWAY_AUTH_REUSE_MS (and never
 * across a reload): a revoked token stops working on an open connection within a second.
 */
static int gateway_authenticate(gateway_stream *stream, sp_principal *principal, char *err,
                                size_t err_size)
{
    gateway_conn *conn = stream->conn;
    daemon_state *daemon = conn->gw->daemon;
    const char *authorization = gateway_headers_get(&stream->request_headers, "authorization");
    uint64_t now = gateway_now_ms();
    /*
     * A request without Authorization is never served from the cache: it may be a client
     * that authenticates with its certificate alone, and the chain decides each time.  With
     * Authorization, reuse is sound with a certificate too: a connection's certificate never
     * changes.
     */
    if (authorization && conn->auth_header && now < conn->auth_until_ms &&
        conn->auth_generation == conn->gw->auth_generation &&
        strcmp(authorization, conn->auth_header) == 0) {
        *principal = conn->auth_principal;
        return SP_OK;
    }
    char *client_chain = gateway_tls_peer_chain_pem(conn->bev);
    sp_auth_request request = {
        .size = sizeof(request),
        .transport = SP_AUTH_GATEWAY,
        .authorization = authorization,
        .peer_address = conn->peer,
        .client_cert_pem = client_chain,
    };
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    int rc = auth_chain_authenticate(daemon->plugins, daemon->cfg->auth_chain,
                                     daemon->cfg->auth_chain_count, &request, principal, err,
                                     err_size);
    free(client_chain);
    free(conn->auth_header);
    conn->auth_header = rc == SP_OK && authorization ? strdup(authorization) : NULL;
    conn->auth_principal = *principal;
    conn->auth_until_ms = now + GATEWAY_AUTH_REUSE_MS;
    conn->auth_generation = conn->gw->auth_generation;
    return rc;
}

/* The request headers as they go upstream. */
static nghttp2_nv *gateway_upstream_headers(const gateway_stream *stream, const char *token,
                                            char *bearer, size_t bearer_size, size_t *count)
{
    const gateway_headers *in = &stream->request_headers;
    nghttp2_nv *out = calloc(in->count + 2, sizeof(*out));
    size_t n = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < in->count; i++) {
        const char *name = (const char *)in->nv[i].name;
        if (gateway_is_local_header(&in->nv[i]))
            continue;
        out[n] = in->nv[i];
        if (strcmp(name, ":authority") == 0)
            out[n] = gateway_nv(":authority", stream->endpoint);
        n++;
    }
    if (token) {
        snprintf(bearer, bearer_size, "Bearer %s", token);
        out[n++] = gateway_nv("authorization", bearer);
    }
    *count = n;
    return out;
}

/* The name of a gRPC status code, as the audit log writes it. */
static const char *gateway_grpc_code_name(int code)
{
    static const char *const names[] = {
        "OK",        "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return code >= 0 && code < (int)(sizeof(names) / sizeof(names[0])) ? names[code] : "UNKNOWN";
}

/* One decision on this RPC, for the audit log (audit.h). */
static void gateway_audit(gateway_stream *stream, const sp_principal *principal,
                          audit_reason reason, int grpc_status, const char *message)
{
    char object[CLUSTER_ID_MAX + 16];
    const char *id = gateway_headers_get(&stream->request_headers, GATEWAY_CLUSTER_ID_HEADER);
    const char *authority = gateway_headers_get(&stream->request_headers, ":authority");
    if (stream->cluster[0] != '\0')
        snprintf(object, sizeof(object), "cluster:%s", stream->cluster);
    else
        snprintf(object, sizeof(object), "%.*s", CLUSTER_ID_MAX,
                 id && id[0] ? id : authority ? authority : "");
    audit_entry entry = {
        .transport = "gateway",
        .peer = stream->conn->peer,
        .principal = principal,
        .action = gateway_headers_get(&stream->request_headers, ":path"),
        .object = object,
        .reason = reason,
        .message = message,
        .grpc_status = gateway_grpc_code_name(grpc_status),
    };
    audit_record(&entry);
}

/* The cluster for an authenticated caller, and whether the caller may use it.  Fills
 * stream->cluster/team; a gRPC status with a message otherwise, and `denial` says whether
 * that refuses the caller (another team's cluster, a viewer) for the audit log. */
static int gateway_route_stream(gateway_stream *stream, const sp_principal *principal,
                                char *message, size_t message_size, audit_reason *denial)
{
    gateway *gw = stream->conn->gw;
    const cluster_entry *cluster = NULL;
    if (gw->router == NULL || gw->registry == NULL) {
        snprintf(message, message_size, "the gateway has no clusters configured");
        return GATEWAY_GRPC_NOT_FOUND;
    }
    const char *cluster_id =
        gateway_headers_get(&stream->request_headers, GATEWAY_CLUSTER_ID_HEADER);
    int status =
        gateway_route_resolve(gw->router, gw->registry, cluster_id,
                              gateway_headers_get(&stream->request_headers, ":authority"),
                              &cluster, message, message_size);
    if (status != GATEWAY_GRPC_OK)
        return status;
    status = gateway_route_authorize(principal, cluster, cluster_id, message, message_size);
    if (status != GATEWAY_GRPC_OK) {
        /* the cluster is not named in metrics or the log line of a refused caller */
        *denial = status == GATEWAY_GRPC_NOT_FOUND ? AUDIT_OTHER_TEAM : AUDIT_VIEWER;
        return status;
    }
    snprintf(stream->cluster, sizeof(stream->cluster), "%s", cluster->id);
    snprintf(stream->team, sizeof(stream->team), "%s", cluster->team);
    if (cluster->ended != NULL) {
        /* after the team check: another team learns nothing about it */
        snprintf(message, message_size,
                 "cluster '%s' was terminated (%s); create a new one with POST /api/v1/clusters",
                 cluster->id, cluster->ended);
        status = GATEWAY_GRPC_NOT_FOUND;
    }
    return status;
}

/* The per-cluster series this stream counts itself in. */
static void gateway_stream_metrics(gateway_stream *stream)
{
    stream->stats = gateway_metrics_cluster(stream->conn->gw->metrics, stream->cluster,
                                            stream->team);
    if (stream->stats)
        metrics_add(stream->stats->active_streams, 1);
}

/* The client's deadline passed: the Spark server is told to stop, the client gets
 * DEADLINE_EXCEEDED (or a reset once the response has begun). */
static void gateway_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway_stream *stream = arg;
    const char *timeout = gateway_headers_get(&stream->request_headers, "grpc-timeout");
    char message[128];
    snprintf(message, sizeof(message), "the call's deadline (grpc-timeout %s) passed",
             timeout ? timeout : "?");
    gateway_refuse_request(stream, GATEWAY_GRPC_DEADLINE_EXCEEDED, message);
}

/* Arms the stream's deadline from grpc-timeout.  0, or -1 when the header was refused. */
static int gateway_start_deadline(gateway_stream *stream)
{
    const char *value = gateway_headers_get(&stream->request_headers, "grpc-timeout");
    if (value == NULL)
        return 0;
    int64_t us = gateway_grpc_timeout_us(value);
    if (us < 0) {
        gateway_answer_error(stream, GATEWAY_GRPC_INVALID_ARGUMENT,
                             "grpc-timeout is not 1 to 8 digits followed by H, M, S, m, u or n");
        return -1;
    }
    struct timeval after = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    stream->deadline = event_new(stream->conn->gw->daemon->base, -1, 0, gateway_on_deadline,
                                 stream);
    if (stream->deadline == NULL || event_add(stream->deadline, &after) != 0) {
        gateway_answer_error(stream, GATEWAY_GRPC_UNAVAILABLE, "gateway out of memory");
        return -1;
    }
    return 0;
}

/*
 * Request headers are complete: authenticate, route to a cluster, and start reading the
 * first message.  The upstream stream opens once that message names its session
 * (gateway_open_upstream), so the session's driver is known.
 */
static void gateway_start_request(gateway_stream *stream)
{
    const char *path = gateway_headers_get(&stream->request_headers, ":path");
    sp_principal principal;
    char message[512];
    if (path == NULL || strncmp(path, GATEWAY_SERVICE_PREFIX, strlen(GATEWAY_SERVICE_PREFIX))) {
        gateway_answer_error(stream, 12, "this gateway serves spark.connect.SparkConnectService");
        return;
    }
    if (gateway_authenticate(stream, &principal, message, sizeof(message)) != SP_OK) {
        gateway_audit(stream, NULL, AUDIT_UNAUTHENTICATED, GATEWAY_GRPC_UNAUTHENTICATED, message);
        gateway_answer_error(stream, GATEWAY_GRPC_UNAUTHENTICATED, message);
        return;
    }
    audit_reason denial = AUDIT_OK;
    int status = gateway_route_stream(stream, &principal, message, sizeof(message), &denial);
    gateway_audit(stream, &principal, denial, status, message);
    if (status != GATEWAY_GRPC_OK) {
        gateway_answer_error(stream, status, message);
        return;
    }
    stream->principal = principal;
    stream->releases_session = strcmp(path, GATEWAY_RELEASE_SESSION_PATH) == 0;
    gateway_stream_metrics(stream);
    if (gateway_start_deadline(stream) != 0)
        return;
    stream->prefix = sc_prefix_reader_new(
        SC_PREFIX_DEFAULT_MAX, gateway_headers_get(&stream->request_headers, "grpc-encoding"));
    if (stream->prefix == NULL)
        gateway_answer_error(stream, GATEWAY_GRPC_UNAVAILABLE, "gateway out of memory");
}

/* Opens the upstream stream to the chosen driver with the request headers.  0, or -1 when
 * the request was refused. */
static int gateway_connect_upstream(gateway_stream *stream, const cluster_entry *cluster)
{
    gateway *gw = stream->conn->gw;
    char message[768];
    char bearer[CLUSTER_REGISTRY_TOKEN_MAX + 16];
    size_t count = 0;
    nghttp2_nv *nva = gateway_upstream_headers(stream, cluster->token, bearer, sizeof(bearer),
                                               &count);
    if (nva)
        stream->up = gateway_upstream_open(gw->pool, stream->endpoint, nva, count,
                                           &gateway_up_ops, stream, message, sizeof(message));
    free(nva);
    if (stream->up == NULL) {
        gateway_refuse_request(stream, GATEWAY_GRPC_UNAVAILABLE,
                               nva ? message : "gateway out of memory");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &stream->opened);
    return 0;
}

/* The new session's catalog settings are in (or not): open upstream and let the request's
 * bytes, held meanwhile within the client's window, go. */
static void gateway_preflight_done(void *arg, int grpc_status, const char *why,
                                   const json_t *pairs)
{
    (void)pairs;
    gateway_stream *stream = arg;
    gateway *gw = stream->conn->gw;
    char message[768];
    stream->preflight = NULL;
    const cluster_entry *cluster = cluster_registry_find(gw->registry, stream->cluster);
    if (grpc_status != 0 || cluster == NULL) {
        gateway_session_key key = {stream->cluster, stream->principal.subject,
                                   stream->session_id};
        gateway_sessions_forget(gw->sessions, gw->registry, &key);
        snprintf(message, sizeof(message),
                 "cluster '%s': the new session's catalog settings could not be set (%s)",
                 stream->cluster, cluster ? why : "the cluster was removed");
        log_msg(SP_LOG_WARN, "gateway", "%s", message);
        gateway_refuse_request(stream, grpc_status ? grpc_status : GATEWAY_GRPC_UNAVAILABLE,
                               message);
        return;
    }
    if (gateway_connect_upstream(stream, cluster) != 0)
        return;
    gateway_upstream_resume(stream->up);
}

/* A new session on a cluster with session settings: set them first.  0 when started. */
static int gateway_start_preflight(gateway_stream *stream, const cluster_entry *cluster)
{
    gateway *gw = stream->conn->gw;
    char err[256];
    stream->preflight = sc_call_config_set(
        gw->daemon->base, gw->pool, stream->endpoint, cluster->token, stream->session_id,
        stream->principal.subject, cluster->session_conf, GATEWAY_PREFLIGHT_MS,
        gateway_preflight_done, stream, err, sizeof(err));
    if (stream->preflight == NULL) {
        char message[512];
        snprintf(message, sizeof(message), "cluster '%s': %s", stream->cluster, err);
        gateway_refuse_request(stream, GATEWAY_GRPC_UNAVAILABLE, message);
        return -1;
    }
    return 0;
}

/*
 * Picks the driver for the request's session (session_id "" for none) and opens the
 * upstream stream with the request headers - after setting the cluster's session settings
 * when this request starts a new session.  0, or -1 when the request was refused.
 */
static int gateway_open_upstream(gateway_stream *stream, const char *session_id)
{
    gateway *gw = stream->conn->gw;
    char message[768];
    const cluster_entry *cluster = cluster_registry_find(gw->registry, stream->cluster);
    if (cluster == NULL) {
        snprintf(message, sizeof(message), "cluster '%s' was removed", stream->cluster);
        gateway_refuse_request(stream, GATEWAY_GRPC_UNAVAILABLE, message);
        return -1;
    }
    gateway_session_key key = {stream->cluster, stream->principal.subject, session_id};
    int status = gateway_sessions_route(gw->sessions, gw->registry, cluster, &key,
                                        gateway_now_ms(), stream->endpoint,
                                        sizeof(stream->endpoint), &stream->fresh_pin, message,
                                        sizeof(message));
    if (status != GATEWAY_GRPC_OK) {
        gateway_refuse_request(stream, status, message);
        return -1;
    }
    stream->pinned = 1;
    snprintf(stream->session_id, sizeof(stream->session_id), "%s", session_id);
    if (stream->fresh_pin && session_id[0] && cluster->session_conf != NULL)
        return gateway_start_preflight(stream, cluster);
    return gateway_connect_upstream(stream, cluster);
}

/* ---- the first message's prefix: who the request claims to be ------------------------- */

/* Refuses a request whose headers already went upstream: RST_STREAM there, a gRPC status to
 * the client, and every request byte received so far handed back to the client's window. */
static void gateway_refuse_request(gateway_stream *stream, int grpc_status, const char *message)
{
    size_t unforwarded = gateway_stream_unforwarded(stream);
    sc_call_cancel(stream->preflight);
    stream->preflight = NULL;
    if (stream->up) {
        gateway_upstream_cancel(stream->up);
        stream->up = NULL;
    }
    evbuffer_drain(stream->request_body, evbuffer_get_length(stream->request_body));
    stream->front_left = 0;
    stream->front_credit = 0;
    sc_prefix_reader_free(stream->prefix);
    stream->prefix = NULL;
    stream->prefix_taken = 0;
    if (stream->id < 0)
        return;
    if (unforwarded > 0)
        nghttp2_session_consume(stream->conn->session, stream->id, unforwarded);
    if (stream->response_started) {
        gateway_count_stream(stream, "1");
        gateway_reset_client(stream, NGHTTP2_CANCEL);
    } else {
        gateway_answer_error(stream, grpc_status, message);
    }
}

/* Queues the prefix as it goes upstream: the caller's own, or rewritten to the caller. */
static int gateway_queue_prefix(gateway_stream *stream, gateway_user_id_action action,
                                char *message, size_t message_size)
{
    size_t held_len = 0;
    const uint8_t *held = sc_prefix_held(stream->prefix, &held_len);
    uint8_t *rewritten = NULL;
    size_t rewritten_len = 0;
    size_t replaces = 0;
    int status = GATEWAY_GRPC_INVALID_ARGUMENT;
    if (action == GATEWAY_USER_ID_REPLACE) {
        int rc = sc_prefix_rewrite_user_id(stream->prefix, stream->principal.subject, &rewritten,
                                           &rewritten_len, &replaces, message, message_size);
        if (rc == SC_PREFIX_NOT_SUPPORTED) {
            snprintf(message, message_size,
                     "the first message is compressed and its user_context.user_id is not the "
                     "authenticated user %.*s (a compressed message cannot be rewritten)",
                     SP_PRINCIPAL_NAME_MAX, stream->principal.subject);
            status = GATEWAY_GRPC_PERMISSION_DENIED;
        }
        if (rc != SC_PREFIX_DONE || replaces > held_len)
            goto fail;
        if (evbuffer_add(stream->request_body, rewritten, rewritten_len) != 0)
            goto oom;
        /* Moved from held to queued at each step, so a refusal in between credits each
         * client byte exactly once. */
        stream->front_left = rewritten_len;
        stream->front_credit = replaces;
        stream->prefix_taken -= replaces < stream->prefix_taken ? replaces : stream->prefix_taken;
        held += replaces;
        held_len -= replaces;
    }
    if (evbuffer_add(stream->request_body, held, held_len) != 0)
        goto oom;
    stream->prefix_taken -= held_len < stream->prefix_taken ? held_len : stream->prefix_taken;
    free(rewritten);
    return GATEWAY_GRPC_OK;
oom:
    snprintf(message, message_size, "gateway out of memory");
    status = GATEWAY_GRPC_UNAVAILABLE;
fail:
    free(rewritten);
    return status;
}

/* The prefix is read: forward it (as is or rewritten) or refuse the request.  0, or -1 when
 * the request was refused. */
static int gateway_release_prefix(gateway_stream *stream)
{
    char message[512];
    gateway_user_id_action action = gateway_route_check_user_id(
        &stream->principal, sc_prefix_user_id(stream->prefix), stream->conn->gw->user_id_policy,
        message, sizeof(message));
    int status = GATEWAY_GRPC_PERMISSION_DENIED;
    if (action == GATEWAY_USER_ID_DENY)
        gateway_audit(stream, &stream->principal, AUDIT_REFUSED, status, message);
    else {
        if (gateway_open_upstream(stream, sc_prefix_session_id(stream->prefix)) != 0)
            return -1;
        status = gateway_queue_prefix(stream, action, message, sizeof(message));
    }
    if (status != GATEWAY_GRPC_OK) {
        gateway_refuse_request(stream, status, message);
        return -1;
    }
    sc_prefix_reader_free(stream->prefix);
    stream->prefix = NULL;
    stream->prefix_taken = 0;
    return 0;
}

/* Feeds a DATA chunk to the prefix reader and moves *data and *len past what it took.  0 to
 * go on (with *len > 0 only once the prefix was released), -1 when the request was refused. */
static int gateway_read_prefix(gateway_stream *stream, const uint8_t **data, size_t *len)
{
    char err[512];
    size_t consumed = 0;
    int rc = sc_prefix_reader_feed(stream->prefix, *data, *len, &consumed, err, sizeof(err));
    if (consumed > *len)
        consumed = *len;
    stream->prefix_taken += consumed;
    *data += consumed;
    *len -= consumed;
    if (rc == SC_PREFIX_MORE)
        return 0;
    if (rc != SC_PREFIX_DONE) {
        gateway_refuse_request(stream, GATEWAY_GRPC_INVALID_ARGUMENT, err);
        return -1;
    }
    return gateway_release_prefix(stream);
}

/* Refuses a request whose next message is over gateway.max_message_size: 1 when refused. */
static int gateway_request_too_large(gateway_stream *stream, const uint8_t *data, size_t len)
{
    char message[256];
    int status = gateway_grpc_meter_feed(&stream->framing, data, len,
                                         stream->conn->gw->max_message_bytes, message,
                                         sizeof(message));
    if (status == 0)
        return 0;
    gateway_refuse_request(stream, status, message);
    return 1;
}

/* ---- nghttp2 server callbacks ----------------------------------------------------------- */

int gateway_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                                    void *user_data)
{
    gateway_conn *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        gateway_guard_on_begin_headers(&conn->guard, frame->hd.stream_id, 0, gateway_now_ms());
        gateway_conn_rearm(conn);   /* trailers must be complete in time too */
        return 0;
    }
    gateway_stream *stream = calloc(1, sizeof(*stream));
    if (stream == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    stream->request_body = evbuffer_new();
    stream->response_body = evbuffer_new();
    if (stream->request_body == NULL || stream->response_body == NULL) {
        if (stream->request_body)
            evbuffer_free(stream->request_body);
        if (stream->response_body)
            evbuffer_free(stream->response_body);
        free(stream);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    stream->conn = conn;
    stream->id = frame->hd.stream_id;
    stream->next = conn->streams;
    if (conn->streams)
        conn->streams->prev = stream;
    conn->streams = stream;
    conn->gw->in_flight++;
    nghttp2_session_set_stream_user_data(session, stream->id, stream);
    gateway_guard_on_begin_headers(&conn->guard, stream->id, 1, gateway_now_ms());
    gateway_conn_rearm(conn);
    return 0;
}

int gateway_on_header(nghttp2_session *session, const nghttp2_frame *frame,
                             const uint8_t *name, size_t namelen, const uint8_t *value,
                             size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    gateway_conn *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;       /* request trailers carry nothing the gateway forwards */
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL)
        return 0;
    if (gateway_headers_add(&stream->request_headers, name, namelen, value, valuelen,
                            GATEWAY_MAX_HEADER_BYTES) != 0) {
        /* nghttp2 resets the stream; many of these are a header flood */
        gateway_conn_judge(conn, gateway_guard_on_invalid(&conn->guard, gateway_now_ms()));
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

int gateway_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                                 void *user_data)
{
    gateway_conn *conn = user_data;
    if (gateway_conn_judge(conn, gateway_guard_on_frame(&conn->guard, frame, gateway_now_ms())))
        return 0;   /* ending: nghttp2 ignores the rest */
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL)
        return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        stream->request_ended = 1;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        gateway_start_request(stream);
    char cut_off[256];
    int framing = stream->request_ended && (stream->prefix || stream->up || stream->preflight)
                      ? gateway_grpc_meter_finish(&stream->framing, cut_off, sizeof(cut_off))
                      : 0;
    if (framing != 0 && stream->prefix == NULL) {
        gateway_refuse_request(stream, framing, cut_off);   /* a later message was cut off */
        return 0;
    }
    if (stream->request_ended && stream->prefix) {
        /* No body at all passes as it is (the server answers it); a cut-off one does not. */
        if (stream->prefix_taken > 0) {
            gateway_refuse_request(stream, GATEWAY_GRPC_INVALID_ARGUMENT,
                                   "the request ended inside its first message");
            return 0;
        }
        sc_prefix_reader_free(stream->prefix);
        stream->prefix = NULL;
        if (gateway_open_upstream(stream, "") != 0)
            return 0;
    }
    if (stream->up && stream->request_ended)
        gateway_upstream_resume(stream->up);
    return 0;
}

int gateway_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream && stream->stats)
        metrics_add(stream->stats->bytes_request, (double)len);
    if (stream && (stream->prefix || stream->up || stream->preflight) &&
        gateway_request_too_large(stream, data, len))
        stream = NULL;      /* refused */
    if (stream && stream->prefix && gateway_read_prefix(stream, &data, &len) != 0)
        stream = NULL;      /* refused: the rest of the chunk is discarded below */
    if (stream == NULL || (stream->up == NULL && stream->preflight == NULL)) {
        if (len > 0)
            nghttp2_session_consume(session, stream_id, len);   /* answered already: discard */
        return 0;
    }
    if (len > 0 && evbuffer_add(stream->request_body, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (stream->up)     /* else held until the preflight is done */
        gateway_upstream_resume(stream->up);
    return 0;
}

int gateway_on_stream_close(nghttp2_session *session, int32_t stream_id,
                                   uint32_t error_code, void *user_data)
{
    gateway_conn *conn = user_data;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream == NULL)
        return 0;
    gateway_guard_on_stream_end(&conn->guard, stream_id, gateway_now_ms());
    gateway_conn_rearm(conn);       /* the last stream gone starts the idle deadline */
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream->id = -1;
    gateway_count_stream(stream, error_code == NGHTTP2_NO_ERROR ? "0" : "1");
    gateway_stream_free(stream);    /* cancels the upstream stream if still open */
    return 0;
}
