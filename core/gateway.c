/*
 * gateway.c - the Spark Connect gateway's listeners, client sessions and
 * the proxying of each gRPC stream.
 *
 * Every accepted connection is a bufferevent and an nghttp2 server session
 * (HTTP/2 with prior knowledge; TLS with ALPN comes next).  When a
 * request's headers are complete the stream is authenticated through the
 * auth chain (transport SP_AUTH_GATEWAY) and routed by the resolver; any
 * refusal is a gRPC trailers-only answer (HTTP 200, grpc-status) and
 * nothing reaches a Spark server.  Otherwise the headers go upstream
 * (minus hop-by-hop headers and the client's credentials, plus the
 * cluster's own token) on a pooled client session, and DATA, trailers and
 * RST_STREAM pass both ways.
 *
 * The first gRPC message of every request is held just long enough to
 * read its session_id and user_context (spark_connect_prefix.h): a
 * user_context.user_id that is not the caller is replaced by the caller's
 * subject or refused with PERMISSION_DENIED (gateway.user_id_policy), so
 * nobody acts as someone else on a Spark server.  Only the prefix waits;
 * the rest of the message streams on.
 *
 * Flow control is end to end: neither session sends WINDOW_UPDATE by
 * itself.  Bytes received on one side sit in the stream's buffer and are
 * "consumed" (window reopened) only when the other side's session has
 * taken them, so the gateway holds at most the windows it granted and a
 * slow reader slows its writer.  Prefix bytes the reader holds count as
 * received, not forwarded; a rewritten prefix may differ in size, so the
 * client is credited the original bytes once all of the rewrite went up.
 * Data providers answer NGHTTP2_ERR_DEFERRED while the buffer is empty
 * and are resumed when bytes arrive.
 *
 * Sends and frees happen at the top of the loop (read/write/flush event
 * handlers), never inside a session's own callbacks.
 */
#include "gateway.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth_chain.h"
#include "cluster_registry.h"
#include "h2_io.h"
#include "daemon.h"
#include "gateway_upstream.h"
#include "log.h"
#include "metrics.h"
#include "spark_connect_prefix.h"

#define GATEWAY_OUTPUT_HIGH (256u * 1024u)
#define GATEWAY_STREAM_WINDOW (1u * 1024u * 1024u)
#define GATEWAY_CONNECTION_WINDOW (16u * 1024u * 1024u)
#define GATEWAY_MAX_HEADER_BYTES (64u * 1024u)
#define GATEWAY_DEFAULT_MAX_STREAMS 100u
#define GATEWAY_SERVICE_PREFIX "/spark.connect.SparkConnectService/"

typedef struct gateway_conn gateway_conn;
typedef struct gateway_stream gateway_stream;

typedef struct gateway_listener {
    char *address;
    struct evconnlistener *listener;
} gateway_listener;

struct gateway_stream {
    gateway_conn *conn;
    int32_t id;                         /* client stream id; -1 once closed there */
    gateway_stream *prev;
    gateway_stream *next;
    gateway_headers request_headers;
    gateway_upstream_stream *up;        /* NULL before routing and after it closed */
    struct evbuffer *request_body;      /* client -> upstream, within our window */
    int request_ended;
    struct evbuffer *response_body;     /* upstream -> client, within its window */
    int response_started;               /* response HEADERS submitted to the client */
    int response_ended;                 /* upstream end of stream seen */
    gateway_headers trailers;
    char cluster[128];
    int counted;                        /* streams_total incremented */
    sp_principal principal;             /* the authenticated caller */
    sc_prefix_reader *prefix;           /* reading the first message; NULL once released */
    size_t prefix_taken;                /* client bytes the reader holds */
    size_t front_left;                  /* rewritten prefix bytes still in request_body */
    size_t front_credit;                /* client bytes they stand for, credited once sent */
};

struct gateway_conn {
    gateway *gw;
    gateway_conn *prev;
    gateway_conn *next;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *flush_event;
    char peer[INET6_ADDRSTRLEN + 8];
    gateway_stream *streams;
};

struct gateway {
    daemon_state *daemon;
    gateway_listener *listeners;
    size_t listener_count;
    uint32_t max_concurrent_streams;
    gateway_conn *conns;
    size_t in_flight;
    gateway_upstream_pool *pool;
    gateway_resolve_fn resolve;
    void *resolve_arg;
    cluster_registry *registry;         /* the default resolver's clusters */
    gateway_router *router;
    config_user_id_policy user_id_policy;
    sp_metric *connections;
};

static int gateway_resolve_registry(void *arg, const char *authority, const char *cluster_id,
                                    const sp_principal *principal, gateway_target *target,
                                    char *message, size_t message_size);

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

static nghttp2_nv gateway_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* Headers that describe one hop, not the request; the client's credentials stay here. */
static int gateway_is_local_header(const char *name)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade", "host",
                                        "authorization", "x-sparkplane-cluster-id", NULL};
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(name, names[i]) == 0)
            return 1;
    }
    return 0;
}

static void gateway_count_stream(gateway_stream *stream, const char *grpc_status)
{
    char labels[256];
    if (stream->counted)
        return;
    stream->counted = 1;
    snprintf(labels, sizeof(labels), "cluster=\"%s\",grpc_status=\"%s\"",
             stream->cluster[0] ? stream->cluster : "-", grpc_status);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_gateway_streams_total",
                                 "Gateway streams by cluster and final gRPC status", labels),
                1);
}

static void gateway_schedule(gateway_conn *conn)
{
    event_active(conn->flush_event, EV_WRITE, 0);
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

static void gateway_stream_free(gateway_stream *stream)
{
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
            if (!gateway_is_local_header((const char *)nva[i].name))
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
        log_msg(SP_LOG_WARN, "gateway", "cluster %s: %s", stream->cluster, why);
        gateway_answer_error(stream, GATEWAY_GRPC_UNAVAILABLE, why);
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

static int gateway_authenticate(gateway_stream *stream, sp_principal *principal, char *err,
                                size_t err_size)
{
    daemon_state *daemon = stream->conn->gw->daemon;
    sp_auth_request request = {
        .size = sizeof(request),
        .transport = SP_AUTH_GATEWAY,
        .authorization = gateway_headers_get(&stream->request_headers, "authorization"),
        .peer_address = stream->conn->peer,
        .client_cert_pem = NULL,
    };
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    return auth_chain_authenticate(daemon->plugins, daemon->cfg->auth_chain,
                                   daemon->cfg->auth_chain_count, &request, principal, err,
                                   err_size);
}

/* The request headers as they go upstream. */
static nghttp2_nv *gateway_upstream_headers(const gateway_stream *stream,
                                            const gateway_target *target, char *bearer,
                                            size_t bearer_size, size_t *count)
{
    const gateway_headers *in = &stream->request_headers;
    nghttp2_nv *out = calloc(in->count + 2, sizeof(*out));
    size_t n = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < in->count; i++) {
        const char *name = (const char *)in->nv[i].name;
        if (gateway_is_local_header(name))
            continue;
        out[n] = in->nv[i];
        if (strcmp(name, ":authority") == 0)
            out[n] = gateway_nv(":authority", target->endpoint);
        n++;
    }
    if (target->token[0]) {
        snprintf(bearer, bearer_size, "Bearer %s", target->token);
        out[n++] = gateway_nv("authorization", bearer);
    }
    *count = n;
    return out;
}

static void gateway_start_request(gateway_stream *stream)
{
    gateway *gw = stream->conn->gw;
    const char *path = gateway_headers_get(&stream->request_headers, ":path");
    sp_principal principal;
    gateway_target target;
    char message[512];
    char bearer[1100];
    if (path == NULL || strncmp(path, GATEWAY_SERVICE_PREFIX, strlen(GATEWAY_SERVICE_PREFIX))) {
        gateway_answer_error(stream, 12, "this gateway serves spark.connect.SparkConnectService");
        return;
    }
    if (gateway_authenticate(stream, &principal, message, sizeof(message)) != SP_OK) {
        gateway_answer_error(stream, GATEWAY_GRPC_UNAUTHENTICATED, message);
        return;
    }
    memset(&target, 0, sizeof(target));
    int status = gw->resolve(gw->resolve_arg,
                             gateway_headers_get(&stream->request_headers, ":authority"),
                             gateway_headers_get(&stream->request_headers,
                                                 "x-sparkplane-cluster-id"),
                             &principal, &target, message, sizeof(message));
    snprintf(stream->cluster, sizeof(stream->cluster), "%s", target.cluster);
    if (status != GATEWAY_GRPC_OK) {
        gateway_answer_error(stream, status, message);
        return;
    }
    size_t count = 0;
    nghttp2_nv *nva = gateway_upstream_headers(stream, &target, bearer, sizeof(bearer), &count);
    if (nva)
        stream->up = gateway_upstream_open(gw->pool, target.endpoint, nva, count,
                                           &gateway_up_ops, stream, message, sizeof(message));
    free(nva);
    if (stream->up == NULL) {
        gateway_answer_error(stream, GATEWAY_GRPC_UNAVAILABLE,
                             nva ? message : "gateway out of memory");
        return;
    }
    stream->principal = principal;
    stream->prefix = sc_prefix_reader_new(
        SC_PREFIX_DEFAULT_MAX, gateway_headers_get(&stream->request_headers, "grpc-encoding"));
    if (stream->prefix == NULL)
        gateway_refuse_request(stream, GATEWAY_GRPC_UNAVAILABLE, "gateway out of memory");
}

/* ---- the first message's prefix: who the request claims to be ------------------------- */

/* Refuses a request whose headers already went upstream: RST_STREAM there, a gRPC status to
 * the client, and every request byte received so far handed back to the client's window. */
static void gateway_refuse_request(gateway_stream *stream, int grpc_status, const char *message)
{
    size_t unforwarded = gateway_stream_unforwarded(stream);
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
    if (action != GATEWAY_USER_ID_DENY)
        status = gateway_queue_prefix(stream, action, message, sizeof(message));
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

/* ---- nghttp2 server callbacks ----------------------------------------------------------- */

static int gateway_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                                    void *user_data)
{
    gateway_conn *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
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
    return 0;
}

static int gateway_on_header(nghttp2_session *session, const nghttp2_frame *frame,
                             const uint8_t *name, size_t namelen, const uint8_t *value,
                             size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;       /* request trailers carry nothing the gateway forwards */
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL)
        return 0;
    if (gateway_headers_add(&stream->request_headers, name, namelen, value, valuelen,
                            GATEWAY_MAX_HEADER_BYTES) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int gateway_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                                 void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL)
        return 0;
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        stream->request_ended = 1;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        gateway_start_request(stream);
    if (stream->up && stream->request_ended && stream->prefix) {
        /* No body at all passes as it is (the server answers it); a cut-off one does not. */
        if (stream->prefix_taken > 0) {
            gateway_refuse_request(stream, GATEWAY_GRPC_INVALID_ARGUMENT,
                                   "the request ended inside its first message");
            return 0;
        }
        sc_prefix_reader_free(stream->prefix);
        stream->prefix = NULL;
    }
    if (stream->up && stream->request_ended)
        gateway_upstream_resume(stream->up);
    return 0;
}

static int gateway_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream && stream->up && stream->prefix && gateway_read_prefix(stream, &data, &len) != 0)
        stream = NULL;      /* refused: the rest of the chunk is discarded below */
    if (stream == NULL || stream->up == NULL) {
        if (len > 0)
            nghttp2_session_consume(session, stream_id, len);   /* answered already: discard */
        return 0;
    }
    if (len > 0 && evbuffer_add(stream->request_body, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    gateway_upstream_resume(stream->up);
    return 0;
}

static int gateway_on_stream_close(nghttp2_session *session, int32_t stream_id,
                                   uint32_t error_code, void *user_data)
{
    (void)user_data;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream->id = -1;
    gateway_count_stream(stream, error_code == NGHTTP2_NO_ERROR ? "0" : "1");
    gateway_stream_free(stream);    /* cancels the upstream stream if still open */
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

static void gateway_conn_free(gateway_conn *conn)
{
    gateway *gw = conn->gw;
    while (conn->streams) {
        conn->streams->id = -1;
        gateway_count_stream(conn->streams, "1");
        gateway_stream_free(conn->streams);
    }
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        gw->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    metrics_add(gw->connections, -1);
    event_free(conn->flush_event);
    bufferevent_free(conn->bev);
    nghttp2_session_del(conn->session);
    free(conn);
}

/* Frames what the session has to send; frees the connection when it is over. */
static void gateway_conn_settle(gateway_conn *conn)
{
    int rc = h2_io_send(conn->session, bufferevent_get_output(conn->bev), GATEWAY_OUTPUT_HIGH);
    if (rc < 0)
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
    if (rc != 0)
        gateway_conn_free(conn);
}

static void gateway_conn_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway_conn_settle(arg);
}

static void gateway_conn_on_read(struct bufferevent *bev, void *arg)
{
    gateway_conn *conn = arg;
    int rc = h2_io_receive(conn->session, bufferevent_get_input(bev));
    if (rc < 0) {
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
        gateway_conn_free(conn);
        return;
    }
    gateway_conn_settle(conn);
}

static void gateway_conn_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    gateway_conn_settle(arg);
}

static void gateway_conn_on_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    (void)events;
    gateway_conn_free(arg);     /* EOF or error: the client is gone */
}

static nghttp2_session *gateway_session_new(gateway_conn *conn, uint32_t max_streams)
{
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;
    nghttp2_session *session = NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0)
        goto done;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, gateway_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, gateway_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, gateway_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, gateway_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, gateway_on_stream_close);
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_max_settings(option, 32);
    if (nghttp2_session_server_new2(&session, callbacks, conn, option) != 0) {
        session = NULL;
        goto done;
    }
    nghttp2_settings_entry streams = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams};
    if (h2_io_submit_settings(session, &streams, GATEWAY_STREAM_WINDOW, GATEWAY_MAX_HEADER_BYTES,
                              GATEWAY_CONNECTION_WINDOW) != 0) {
        nghttp2_session_del(session);
        session = NULL;
    }
done:
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    return session;
}

static void gateway_format_peer(const struct sockaddr *address, char *out, size_t out_size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)address;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)address;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, out_size, "%s:%d", host, port);
}

static void gateway_on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                              struct sockaddr *address, int socklen, void *arg)
{
    (void)listener;
    (void)socklen;
    gateway *gw = arg;
    int one = 1;
    gateway_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn->gw = gw;
    gateway_format_peer(address, conn->peer, sizeof(conn->peer));
    conn->bev = bufferevent_socket_new(gw->daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
    conn->flush_event = event_new(gw->daemon->base, -1, 0, gateway_conn_on_flush, conn);
    conn->session = gateway_session_new(conn, gw->max_concurrent_streams);
    if (conn->bev == NULL || conn->flush_event == NULL || conn->session == NULL) {
        if (conn->bev)
            bufferevent_free(conn->bev);
        else
            evutil_closesocket(fd);
        if (conn->flush_event)
            event_free(conn->flush_event);
        nghttp2_session_del(conn->session);
        free(conn);
        return;
    }
    conn->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = conn;
    gw->conns = conn;
    metrics_add(gw->connections, 1);
    bufferevent_setcb(conn->bev, gateway_conn_on_read, gateway_conn_on_write,
                      gateway_conn_on_event, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    gateway_conn_settle(conn);      /* our SETTINGS go out first */
}

/* ---- the default resolver: routing patterns over the cluster registry ------------------ */

static int gateway_resolve_registry(void *arg, const char *authority, const char *cluster_id,
                                    const sp_principal *principal, gateway_target *target,
                                    char *message, size_t message_size)
{
    gateway *gw = arg;
    const cluster_entry *cluster = NULL;
    if (gw->router == NULL || gw->registry == NULL) {
        snprintf(message, message_size, "the gateway has no clusters configured");
        return GATEWAY_GRPC_NOT_FOUND;
    }
    int status = gateway_route_resolve(gw->router, gw->registry, cluster_id, authority, &cluster,
                                       message, message_size);
    if (status != GATEWAY_GRPC_OK)
        return status;
    snprintf(target->cluster, sizeof(target->cluster), "%s", cluster->id);
    status = gateway_route_authorize(principal, cluster, message, message_size);
    if (status != GATEWAY_GRPC_OK)
        return status;
    int chosen = cluster_registry_pick_endpoint(cluster);
    if (chosen < 0) {
        snprintf(message, message_size, "cluster '%s' has no healthy Spark Connect server",
                 cluster->id);
        return GATEWAY_GRPC_UNAVAILABLE;
    }
    snprintf(target->endpoint, sizeof(target->endpoint), "%s",
             cluster->endpoints[chosen].address);
    snprintf(target->token, sizeof(target->token), "%s", cluster->token ? cluster->token : "");
    return GATEWAY_GRPC_OK;
}

/* ---- listeners and configuration -------------------------------------------------------- */

/* Builds the routing state for cfg: both or neither. */
static int gateway_load_routes(const config *cfg, cluster_registry **registry,
                               gateway_router **router, diag_list *problems)
{
    char err[512];
    *registry = cluster_registry_new();
    *router = NULL;
    if (*registry == NULL || cluster_registry_load_config(*registry, cfg, err, sizeof(err)))
        goto fail;
    if (gateway_router_from_config(cfg, router, err, sizeof(err)) != 0)
        goto fail;
    return 0;
fail:
    diag_add(problems, "gateway: %s", *registry ? err : "out of memory");
    cluster_registry_free(*registry);
    *registry = NULL;
    *router = NULL;
    return -1;
}

static int gateway_listener_open(gateway *gw, const char *text, gateway_listener *out,
                                 diag_list *problems)
{
    struct sockaddr_storage address;
    int length = sizeof(address);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address, &length) != 0) {
        diag_add(problems, "gateway.listen: '%s' is not a numeric \"address:port\"", text);
        return -1;
    }
    out->listener = evconnlistener_new_bind(gw->daemon->base, gateway_on_accept, gw,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                            (struct sockaddr *)&address, length);
    if (out->listener == NULL) {
        diag_add(problems, "gateway.listen: cannot listen on %s: %s", text,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    out->address = strdup(text);
    if (out->address == NULL) {
        evconnlistener_free(out->listener);
        return -1;
    }
    return 0;
}

static const gateway_listener *gateway_find_listener(const gateway *gw, const char *address)
{
    for (size_t i = 0; i < gw->listener_count; i++) {
        if (strcmp(gw->listeners[i].address, address) == 0)
            return &gw->listeners[i];
    }
    return NULL;
}

static int gateway_listed(const config *cfg, const char *address)
{
    for (size_t i = 0; i < cfg->gateway_listen_count; i++) {
        if (strcmp(cfg->gateway_listen[i], address) == 0)
            return 1;
    }
    return 0;
}

/* Swaps in the listener set for cfg (opened first, so a failure changes nothing). */
static int gateway_apply_listeners(gateway *gw, const config *cfg, diag_list *problems)
{
    gateway_listener *next = calloc(cfg->gateway_listen_count + gw->listener_count + 1,
                                    sizeof(*next));
    size_t count = 0;
    if (next == NULL)
        return -1;
    for (size_t i = 0; i < cfg->gateway_listen_count; i++) {
        if (gateway_find_listener(gw, cfg->gateway_listen[i]))
            continue;
        if (gateway_listener_open(gw, cfg->gateway_listen[i], &next[count], problems) != 0)
            goto fail;
        log_msg(SP_LOG_INFO, "gateway", "listening on %s (h2c)", next[count].address);
        count++;
    }
    for (size_t i = 0; i < gw->listener_count; i++) {
        if (gateway_listed(cfg, gw->listeners[i].address)) {
            next[count++] = gw->listeners[i];
            continue;
        }
        log_msg(SP_LOG_INFO, "gateway", "closing listener %s", gw->listeners[i].address);
        evconnlistener_free(gw->listeners[i].listener);
        free(gw->listeners[i].address);
    }
    free(gw->listeners);
    gw->listeners = next;
    gw->listener_count = count;
    return 0;
fail:
    for (size_t i = 0; i < count; i++) {
        evconnlistener_free(next[i].listener);
        free(next[i].address);
    }
    free(next);
    return -1;
}

int gateway_configure(gateway *gw, const config *cfg, diag_list *problems)
{
    cluster_registry *registry = NULL;
    gateway_router *router = NULL;
    if (cfg->gateway_max_concurrent_streams < 1 ||
        cfg->gateway_max_concurrent_streams > UINT32_MAX) {
        diag_add(problems, "gateway.max_concurrent_streams: %llu is out of range",
                 (unsigned long long)cfg->gateway_max_concurrent_streams);
        return -1;
    }
    if (cfg->gateway_listen_count > 0 &&
        gateway_load_routes(cfg, &registry, &router, problems) != 0)
        return -1;
    if (gateway_apply_listeners(gw, cfg, problems) != 0) {
        gateway_router_free(router);
        cluster_registry_free(registry);
        return -1;
    }
    gateway_router_free(gw->router);
    cluster_registry_free(gw->registry);
    gw->router = router;
    gw->registry = registry;
    gw->max_concurrent_streams = (uint32_t)cfg->gateway_max_concurrent_streams;
    gw->user_id_policy = cfg->gateway_user_id_policy;
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

gateway *gateway_new(struct daemon_state *daemon)
{
    gateway *gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return NULL;
    gw->daemon = daemon;
    gw->max_concurrent_streams = GATEWAY_DEFAULT_MAX_STREAMS;
    gw->pool = gateway_upstream_pool_new(daemon->base);
    gw->resolve = gateway_resolve_registry;
    gw->resolve_arg = gw;
    gw->connections = metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_connections",
                                       "Open client connections to the gateway", "");
    if (gw->pool == NULL) {
        free(gw);
        return NULL;
    }
    return gw;
}

void gateway_set_resolver(gateway *gw, gateway_resolve_fn resolve, void *arg)
{
    gw->resolve = resolve ? resolve : gateway_resolve_registry;
    gw->resolve_arg = resolve ? arg : gw;
}

void gateway_close_listeners(gateway *gw)
{
    if (gw == NULL)
        return;
    for (size_t i = 0; i < gw->listener_count; i++) {
        evconnlistener_free(gw->listeners[i].listener);
        free(gw->listeners[i].address);
    }
    gw->listener_count = 0;
    /* Graceful GOAWAY: streams already open finish, new ones are refused. */
    for (gateway_conn *conn = gw->conns; conn; conn = conn->next) {
        nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(conn->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        gateway_schedule(conn);
    }
}

size_t gateway_in_flight(const gateway *gw)
{
    return gw ? gw->in_flight : 0;
}

void gateway_free(gateway *gw)
{
    if (gw == NULL)
        return;
    gateway_close_listeners(gw);
    while (gw->conns)
        gateway_conn_free(gw->conns);
    gateway_upstream_pool_free(gw->pool);
    gateway_router_free(gw->router);
    cluster_registry_free(gw->registry);
    free(gw->listeners);
    free(gw);
}
