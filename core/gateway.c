/*
 * gateway.c - the Spark Connect gateway's listeners, client sessions and
 * the proxying of each gRPC stream.
 *
 * Every accepted connection is a bufferevent and an nghttp2 server session:
 * HTTP/2 with prior knowledge on gateway.listen, TLS with ALPN h2 on
 * gateway.tls.listen (gateway_tls.h; our SETTINGS wait in the TLS
 * bufferevent until the handshake is done).  When a
 * request's headers are complete the stream is authenticated through the
 * auth chain (transport SP_AUTH_GATEWAY) and routed to a cluster
 * (gateway_route.h) the caller's team owns; any refusal is a gRPC
 * trailers-only answer (HTTP 200, grpc-status) and nothing reaches a Spark
 * server.
 *
 * The first gRPC message of every request is held just long enough to
 * read its session_id and user_context (spark_connect_prefix.h): a
 * user_context.user_id that is not the caller is replaced by the caller's
 * subject or refused with PERMISSION_DENIED (gateway.user_id_policy), so
 * nobody acts as someone else on a Spark server.  The session id picks the
 * driver (gateway_sessions.h: the session's pinned one, or the
 * least-loaded healthy one for a new session); only then does the stream
 * open upstream: the headers (minus hop-by-hop headers and the client's
 * credentials, plus the cluster's own token) on a pooled client session,
 * the prefix (as is or rewritten), and the rest of the message streamed
 * on.  DATA, trailers and RST_STREAM pass both ways; a failed driver
 * connection marks the driver unhealthy until a probe reaches it again.
 *
 * Limits: request messages over gateway.max_message_size are refused
 * (RESOURCE_EXHAUSTED) from their gRPC length prefix; grpc-timeout is
 * enforced (DEADLINE_EXCEEDED); a connection without streams for
 * gateway.idle_timeout gets GOAWAY, one whose request headers do not
 * complete within gateway.header_timeout is ended.
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

#include <errno.h>
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
#include <sys/socket.h>
#include <time.h>

#include "auth_chain.h"
#include "cluster_registry.h"
#include "h2_io.h"
#include "daemon.h"
#include "gateway_guard.h"
#include "gateway_tls.h"
#include "gateway_metrics.h"
#include "gateway_sessions.h"
#include "gateway_upstream.h"
#include "log.h"
#include "metrics.h"
#include "spark_connect_prefix.h"

#define GATEWAY_OUTPUT_HIGH (256u * 1024u)
#define GATEWAY_IO_CHUNK (128u * 1024u)         /* per read()/write() (libevent: 16 KiB) */
#define GATEWAY_STREAM_WINDOW (1u * 1024u * 1024u)
#define GATEWAY_CONNECTION_WINDOW (16u * 1024u * 1024u)
#define GATEWAY_MAX_HEADER_BYTES (64u * 1024u)
#define GATEWAY_DEFAULT_MAX_STREAMS 100u
#define GATEWAY_SERVICE_PREFIX "/spark.connect.SparkConnectService/"
#define GATEWAY_RELEASE_SESSION_PATH GATEWAY_SERVICE_PREFIX "ReleaseSession"
#define GATEWAY_HOUSEKEEPING_MS 1000u   /* session expiry, driver probes, gauges */
#define GATEWAY_LINGER_MS 2000u         /* how long a closing connection waits for the FIN */
#define GATEWAY_AUTH_REUSE_MS 1000u     /* a connection's last good credentials, reused this long */

typedef struct gateway_conn gateway_conn;
typedef struct gateway_stream gateway_stream;

static void gateway_conn_rearm(gateway_conn *conn);
static int gateway_conn_judge(gateway_conn *conn, gateway_guard_verdict verdict);

typedef struct gateway_listener {
    char *address;
    struct evconnlistener *listener;
    int tls;                            /* gateway.tls.listen: TLS with ALPN h2, else h2c */
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
    char cluster[CLUSTER_ID_MAX + 1];   /* routed to; "" before */
    char team[CLUSTER_ID_MAX + 1];      /* the cluster's team, for metrics */
    char endpoint[256];                 /* the driver chosen for the session */
    char session_id[GATEWAY_SESSION_ID_MAX + 1];
    int pinned;                         /* counted in gw->sessions: end it once */
    int releases_session;               /* a ReleaseSession call */
    struct timespec opened;             /* upstream stream opened, for first-byte latency */
    int first_byte_seen;
    gateway_cluster_stats *stats;       /* its cluster's series, once routed */
    int counted;                        /* streams_total incremented */
    sp_principal principal;             /* the authenticated caller */
    sc_prefix_reader *prefix;           /* reading the first message; NULL once released */
    size_t prefix_taken;                /* client bytes the reader holds */
    size_t front_left;                  /* rewritten prefix bytes still in request_body */
    size_t front_credit;                /* client bytes they stand for, credited once sent */
    gateway_grpc_meter framing;         /* request messages, for gateway.max_message_size */
    struct event *deadline;             /* the client's grpc-timeout, when it sent one */
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
    struct event *timer;                /* the guard's next deadline, then the linger */
    gateway_guard guard;                /* abuse budgets, idle and header timeouts */
    int closing;                        /* session over, half-closed, waiting for the FIN */
    struct event *read_event;           /* h2c: our own large reads (h2_io_receive_socket) */
    char *auth_header;                  /* the last authorization that passed the auth chain, */
    sp_principal auth_principal;        /* whom it named, */
    uint64_t auth_until_ms;             /* until when it is reused, */
    unsigned auth_generation;           /* and under which configuration */
};

struct gateway {
    daemon_state *daemon;
    gateway_listener *listeners;
    size_t listener_count;
    SSL_CTX *tls_context;               /* for new TLS connections; NULL without TLS listeners */
    uint32_t max_concurrent_streams;
    gateway_conn *conns;
    size_t in_flight;
    gateway_upstream_pool *pool;
    cluster_registry *registry;         /* the clusters requests are routed to */
    gateway_router *router;
    gateway_sessions *sessions;         /* session -> driver pins over registry */
    struct event *housekeeping;
    uint64_t session_timeout_ms;
    uint64_t max_message_bytes;         /* per request message */
    gateway_guard_limits guard_limits;  /* every connection's guard reads these */
    config_user_id_policy user_id_policy;
    sp_metric *connections;
    sp_metric *upstream_connect_seconds;
    gateway_metrics *metrics;           /* per-cluster series */
    unsigned auth_generation;           /* bumped by every configure: cached credentials go */
};

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

static uint64_t gateway_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
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

static void gateway_count_stream(gateway_stream *stream, const char *grpc_status)
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
        if (stream->session_id[0])
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
    if (authorization && conn->auth_header && now < conn->auth_until_ms &&
        conn->auth_generation == conn->gw->auth_generation &&
        strcmp(authorization, conn->auth_header) == 0) {
        *principal = conn->auth_principal;
        return SP_OK;
    }
    sp_auth_request request = {
        .size = sizeof(request),
        .transport = SP_AUTH_GATEWAY,
        .authorization = authorization,
        .peer_address = conn->peer,
        .client_cert_pem = NULL,
    };
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    int rc = auth_chain_authenticate(daemon->plugins, daemon->cfg->auth_chain,
                                     daemon->cfg->auth_chain_count, &request, principal, err,
                                     err_size);
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

/* The cluster for an authenticated caller, and whether the caller may use it.  Fills
 * stream->cluster/team; a gRPC status with a message otherwise. */
static int gateway_route_stream(gateway_stream *stream, const sp_principal *principal,
                                char *message, size_t message_size)
{
    gateway *gw = stream->conn->gw;
    const cluster_entry *cluster = NULL;
    if (gw->router == NULL || gw->registry == NULL) {
        snprintf(message, message_size, "the gateway has no clusters configured");
        return GATEWAY_GRPC_NOT_FOUND;
    }
    int status = gateway_route_resolve(
        gw->router, gw->registry,
        gateway_headers_get(&stream->request_headers, GATEWAY_CLUSTER_ID_HEADER),
        gateway_headers_get(&stream->request_headers, ":authority"), &cluster, message,
        message_size);
    if (status != GATEWAY_GRPC_OK)
        return status;
    snprintf(stream->cluster, sizeof(stream->cluster), "%s", cluster->id);
    snprintf(stream->team, sizeof(stream->team), "%s", cluster->team);
    return gateway_route_authorize(principal, cluster, message, message_size);
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
        gateway_answer_error(stream, GATEWAY_GRPC_UNAUTHENTICATED, message);
        return;
    }
    int status = gateway_route_stream(stream, &principal, message, sizeof(message));
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

/*
 * Picks the driver for the request's session (session_id "" for none) and opens the
 * upstream stream with the request headers.  0, or -1 when the request was refused.
 */
static int gateway_open_upstream(gateway_stream *stream, const char *session_id)
{
    gateway *gw = stream->conn->gw;
    char message[768];
    char bearer[CLUSTER_REGISTRY_TOKEN_MAX + 16];
    const cluster_entry *cluster = cluster_registry_find(gw->registry, stream->cluster);
    if (cluster == NULL) {
        snprintf(message, sizeof(message), "cluster '%s' was removed", stream->cluster);
        gateway_refuse_request(stream, GATEWAY_GRPC_UNAVAILABLE, message);
        return -1;
    }
    gateway_session_key key = {stream->cluster, stream->principal.subject, session_id};
    int status = gateway_sessions_route(gw->sessions, gw->registry, cluster, &key,
                                        gateway_now_ms(), stream->endpoint,
                                        sizeof(stream->endpoint), message, sizeof(message));
    if (status != GATEWAY_GRPC_OK) {
        gateway_refuse_request(stream, status, message);
        return -1;
    }
    stream->pinned = 1;
    snprintf(stream->session_id, sizeof(stream->session_id), "%s", session_id);
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
    if (action != GATEWAY_USER_ID_DENY) {
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

static int gateway_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
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

static int gateway_on_header(nghttp2_session *session, const nghttp2_frame *frame,
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

static int gateway_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
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
    int framing = stream->request_ended && (stream->prefix || stream->up)
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

static int gateway_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    gateway_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream && stream->stats)
        metrics_add(stream->stats->bytes_request, (double)len);
    if (stream && (stream->prefix || stream->up) && gateway_request_too_large(stream, data, len))
        stream = NULL;      /* refused */
    if (stream && stream->prefix && gateway_read_prefix(stream, &data, &len) != 0)
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

/* A frame nghttp2 found invalid (it already answered with RST_STREAM or GOAWAY). */
static int gateway_on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame,
                                    int lib_error_code, void *user_data)
{
    (void)session;
    (void)frame;
    (void)lib_error_code;
    gateway_conn *conn = user_data;
    gateway_conn_judge(conn, gateway_guard_on_invalid(&conn->guard, gateway_now_ms()));
    return 0;
}

/* An invalid header field: counted, and the stream reset as without this callback. */
static int gateway_on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                                     const uint8_t *name, size_t namelen, const uint8_t *value,
                                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)session;
    (void)frame;
    (void)name;
    (void)namelen;
    (void)value;
    (void)valuelen;
    (void)flags;
    gateway_conn *conn = user_data;
    gateway_conn_judge(conn, gateway_guard_on_invalid(&conn->guard, gateway_now_ms()));
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

/* HEADERS and DATA going out make the client's BDP pings legitimate. */
static int gateway_on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                                 void *user_data)
{
    (void)session;
    gateway_conn *conn = user_data;
    gateway_guard_on_sent(&conn->guard, frame->hd.type);
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
    if (conn->timer)
        event_free(conn->timer);
    free(conn->auth_header);
    if (conn->read_event)
        event_free(conn->read_event);
    event_free(conn->flush_event);
    bufferevent_free(conn->bev);
    nghttp2_session_del(conn->session);
    free(conn);
}

/* ---- connection deadlines: idle connections and slow request headers ------------------ */

static void gateway_conn_settle(gateway_conn *conn);
static void gateway_conn_on_timer(evutil_socket_t fd, short what, void *arg);

static void gateway_count_closed(gateway *gw, const char *reason)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_gateway_connections_closed_total",
                                 "Client connections the gateway ended, by reason", labels),
                1);
}

/* Acts on a guard verdict: GOAWAY (ENHANCE_YOUR_CALM, or NO_ERROR when idle), after which
 * nghttp2 ignores the client and the connection closes once the GOAWAY is out (or at the
 * guard's linger deadline).  1 when the connection is ending.  Safe inside nghttp2 callbacks:
 * it only queues; sending and freeing happen at the top of the loop. */
static int gateway_conn_judge(gateway_conn *conn, gateway_guard_verdict verdict)
{
    if (verdict == GATEWAY_GUARD_FINE || verdict == GATEWAY_GUARD_HANG_UP)
        return verdict != GATEWAY_GUARD_FINE;
    const char *label = gateway_guard_verdict_label(verdict);
    log_msg(verdict == GATEWAY_GUARD_IDLE ? SP_LOG_DEBUG : SP_LOG_INFO, "gateway",
            "%s: GOAWAY (%s): %s", conn->peer, label, gateway_guard_reason(&conn->guard));
    gateway_count_closed(conn->gw, label);
    nghttp2_session_terminate_session(conn->session, gateway_guard_goaway_code(verdict));
    gateway_conn_rearm(conn);   /* now the linger deadline */
    gateway_schedule(conn);
    return 1;
}

/* Arms the connection's timer for the guard's next deadline. */
static void gateway_conn_rearm(gateway_conn *conn)
{
    uint64_t now = gateway_now_ms();
    uint64_t due = gateway_guard_next_deadline(&conn->guard);
    if (conn->closing)
        return;     /* conn->timer is the linger's now */
    if (due == UINT64_MAX) {
        if (conn->timer)
            evtimer_del(conn->timer);
        return;
    }
    if (conn->timer == NULL &&
        (conn->timer = evtimer_new(conn->gw->daemon->base, gateway_conn_on_timer, conn)) == NULL)
        return;
    uint64_t wait = due > now ? due - now : 0;
    struct timeval after = {(time_t)(wait / 1000u), (suseconds_t)(wait % 1000u) * 1000};
    evtimer_add(conn->timer, &after);
}

static void gateway_conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway_conn *conn = arg;
    if (conn->closing) {
        gateway_conn_free(conn);    /* the client never closed its side */
        return;
    }
    gateway_guard_verdict verdict = gateway_guard_check_timeouts(&conn->guard, gateway_now_ms());
    if (verdict == GATEWAY_GUARD_HANG_UP) {
        log_msg(SP_LOG_INFO, "gateway", "%s: %s: connection closed", conn->peer,
                gateway_guard_reason(&conn->guard));
        gateway_conn_free(conn);
    } else if (!gateway_conn_judge(conn, verdict)) {
        gateway_conn_rearm(conn);   /* woke early: the deadline moved */
    }
}

/*
 * The session is over and its last frames (GOAWAY) have left our buffers.  Closing now
 * could turn into a TCP reset (when client bytes are still unread) that destroys those
 * frames in flight, so: half-close, discard what the client still sends, and free the
 * connection on its FIN or after GATEWAY_LINGER_MS.
 */
static void gateway_conn_linger(gateway_conn *conn)
{
    struct timeval wait = {GATEWAY_LINGER_MS / 1000u, (GATEWAY_LINGER_MS % 1000u) * 1000};
    conn->closing = 1;
    if (conn->timer == NULL)
        conn->timer = evtimer_new(conn->gw->daemon->base, gateway_conn_on_timer, conn);
    if (conn->timer == NULL || shutdown(bufferevent_getfd(conn->bev), SHUT_WR) != 0) {
        gateway_conn_free(conn);
        return;
    }
    evtimer_add(conn->timer, &wait);
}

/* Frames what the session has to send; once it is over, the connection lingers and goes. */
static void gateway_conn_settle(gateway_conn *conn)
{
    if (conn->closing)
        return;
    int rc = h2_io_send_now(conn->session, bufferevent_get_output(conn->bev), GATEWAY_OUTPUT_HIGH,
                            conn->read_event ? (int)bufferevent_getfd(conn->bev) : -1);
    if (rc < 0) {
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
        gateway_conn_free(conn);
    } else if (rc == 1) {
        gateway_conn_linger(conn);
    }
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
    if (conn->closing) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    int rc = h2_io_receive(conn->session, bufferevent_get_input(bev));
    if (rc < 0) {
        log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer, nghttp2_strerror(rc));
        gateway_conn_free(conn);
        return;
    }
    gateway_conn_settle(conn);
}

/* An h2c socket is readable (TLS connections read through their bufferevent). */
static void gateway_conn_on_socket_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    gateway_conn *conn = arg;
    int rc = h2_io_receive_socket(conn->closing ? NULL : conn->session, fd);
    if (rc == 0 && !conn->closing) {
        gateway_conn_settle(conn);
    } else if (rc != 0) {
        if (rc != H2_IO_EOF)
            log_msg(SP_LOG_DEBUG, "gateway", "%s: %s", conn->peer,
                    rc == H2_IO_ERROR ? strerror(errno) : nghttp2_strerror(rc));
        gateway_conn_free(conn);    /* EOF, error, or a fatal protocol error */
    }
}

static void gateway_conn_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    gateway_conn_settle(arg);
}

static void gateway_conn_on_event(struct bufferevent *bev, short events, void *arg)
{
    gateway_conn *conn = arg;
    char why[256];
    if (events & BEV_EVENT_CONNECTED) {
        /* TLS handshake done; a client that sent no ALPN at all got here without h2. */
        if (gateway_tls_negotiated_h2(bev))
            return;     /* libevent now sends our SETTINGS, held during the handshake */
        log_msg(SP_LOG_INFO, "gateway", "%s: TLS client negotiated no ALPN h2: closed",
                conn->peer);
    } else if ((events & BEV_EVENT_ERROR) && gateway_tls_is_tls(bev)) {
        gateway_tls_describe_error(bev, why, sizeof(why));
        log_msg(SP_LOG_DEBUG, "gateway", "%s: TLS: %s", conn->peer, why);
    }
    gateway_conn_free(conn);    /* EOF, error or no h2: the client is gone */
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
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks,
                                                                 gateway_on_invalid_frame);
    nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, gateway_on_invalid_header);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, gateway_on_frame_send);
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

/* A plain bufferevent, or a TLS one (accepting) when `listener` is on gateway.tls.listen. */
static struct bufferevent *gateway_conn_bufferevent(gateway *gw, struct evconnlistener *listener,
                                                    evutil_socket_t fd, const char *peer)
{
    for (size_t i = 0; i < gw->listener_count; i++) {
        if (gw->listeners[i].listener != listener || !gw->listeners[i].tls)
            continue;
        if (gw->tls_context == NULL)
            return NULL;
        return gateway_tls_accept(gw->tls_context, gw->daemon->base, fd, peer);
    }
    return bufferevent_socket_new(gw->daemon->base, fd, BEV_OPT_CLOSE_ON_FREE);
}

static void gateway_on_accept(struct evconnlistener *listener, evutil_socket_t fd,
                              struct sockaddr *address, int socklen, void *arg)
{
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
    conn->bev = gateway_conn_bufferevent(gw, listener, fd, conn->peer);
    if (conn->bev) {
        bufferevent_set_max_single_read(conn->bev, GATEWAY_IO_CHUNK);
        bufferevent_set_max_single_write(conn->bev, GATEWAY_IO_CHUNK);
    }
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
    gateway_guard_init(&conn->guard, &gw->guard_limits, gateway_now_ms());
    gateway_conn_rearm(conn);       /* the header deadline runs until the client's SETTINGS */
    bufferevent_setcb(conn->bev, gateway_conn_on_read, gateway_conn_on_write,
                      gateway_conn_on_event, conn);
    if (gateway_tls_is_tls(conn->bev)) {
        bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    } else {
        conn->read_event = event_new(gw->daemon->base, fd, EV_READ | EV_PERSIST,
                                     gateway_conn_on_socket_read, conn);
        bufferevent_enable(conn->bev, EV_WRITE);
        if (conn->read_event == NULL || event_add(conn->read_event, NULL) != 0) {
            gateway_conn_free(conn);
            return;
        }
    }
    gateway_conn_settle(conn);      /* our SETTINGS go out first (on TLS: after the handshake) */
}

/* ---- drivers: health, session expiry, gauges ------------------------------------------ */

/* The upstream pool connected to, or lost, a Spark Connect server. */
static void gateway_on_upstream_health(void *arg, const char *endpoint, int healthy,
                                       double connect_seconds, const char *why)
{
    gateway *gw = arg;
    if (healthy)
        metrics_observe(gw->upstream_connect_seconds, connect_seconds);
    if (gw->registry == NULL ||
        cluster_registry_set_healthy_address(gw->registry, endpoint, healthy) == 0)
        return;
    if (healthy)
        log_msg(SP_LOG_INFO, "gateway", "Spark Connect server %s is reachable again", endpoint);
    else
        log_msg(SP_LOG_WARN, "gateway",
                "Spark Connect server %s marked unhealthy (%s): its sessions get UNAVAILABLE, "
                "new sessions go to other drivers; probing every %us",
                endpoint, why ? why : "?", GATEWAY_HOUSEKEEPING_MS / 1000u);
}

/* Pinned sessions per cluster (the registry's per-driver counts), as gauges. */
static void gateway_publish_sessions(gateway *gw)
{
    char labels[256];
    for (size_t i = 0; i < cluster_registry_count(gw->registry); i++) {
        const cluster_entry *cluster = cluster_registry_at(gw->registry, i);
        unsigned sessions = 0;
        for (size_t e = 0; e < cluster->endpoint_count; e++)
            sessions += cluster->endpoints[e].sessions;
        snprintf(labels, sizeof(labels), "cluster=\"%s\",team=\"%s\"", cluster->id,
                 cluster->team);
        metrics_set(metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_sessions",
                                     "Spark sessions pinned to a driver, by cluster and team",
                                     labels),
                    sessions);
    }
}

static void gateway_on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gateway *gw = arg;
    if (gw->registry == NULL)
        return;
    size_t ended = gateway_sessions_expire(gw->sessions, gw->registry, gateway_now_ms(),
                                           gw->session_timeout_ms);
    if (ended > 0)
        log_msg(SP_LOG_DEBUG, "gateway", "%zu idle or released sessions unpinned", ended);
    for (size_t i = 0; i < cluster_registry_count(gw->registry); i++) {
        const cluster_entry *cluster = cluster_registry_at(gw->registry, i);
        for (size_t e = 0; e < cluster->endpoint_count; e++) {
            if (!cluster->endpoints[e].healthy)
                gateway_upstream_probe(gw->pool, cluster->endpoints[e].address);
        }
    }
    gateway_publish_sessions(gw);
}

/*
 * Brings the live registry to the configured clusters without losing what it knows:
 * removed clusters go first (their placements may be reused), then every cluster is put,
 * which keeps the health and session counts of endpoints that stay.  Pins of clusters or
 * endpoints that went away end at the next housekeeping pass.
 */
static void gateway_apply_routes(gateway *gw, cluster_registry *registry,
                                 gateway_router *router)
{
    char err[512];
    gateway_router_free(gw->router);
    gw->router = router;
    if (gw->registry == NULL || registry == NULL) {
        gateway_sessions_free(gw->sessions, gw->registry);
        gw->sessions = gateway_sessions_new();
        cluster_registry_free(gw->registry);
        gw->registry = registry;
        return;
    }
    for (size_t i = cluster_registry_count(gw->registry); i-- > 0;) {
        const char *id = cluster_registry_at(gw->registry, i)->id;
        if (cluster_registry_find(registry, id) == NULL)
            cluster_registry_remove(gw->registry, id);
    }
    for (size_t i = 0; i < cluster_registry_count(registry); i++) {
        const cluster_entry *entry = cluster_registry_at(registry, i);
        if (cluster_registry_put(gw->registry, entry, err, sizeof(err)) != 0)
            log_msg(SP_LOG_ERROR, "gateway", "cluster '%s' not updated: %s", entry->id, err);
    }
    cluster_registry_free(registry);
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

static int gateway_listener_open(gateway *gw, const char *text, int tls, gateway_listener *out,
                                 diag_list *problems)
{
    const char *key = tls ? "gateway.tls.listen" : "gateway.listen";
    struct sockaddr_storage address;
    int length = sizeof(address);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&address, &length) != 0) {
        diag_add(problems, "%s: '%s' is not a numeric \"address:port\"", key, text);
        return -1;
    }
    out->listener = evconnlistener_new_bind(gw->daemon->base, gateway_on_accept, gw,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                            (struct sockaddr *)&address, length);
    if (out->listener == NULL) {
        diag_add(problems, "%s: cannot listen on %s: %s", key, text,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    out->address = strdup(text);
    out->tls = tls;
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

/* 1 when cfg lists address, with *tls saying in which list; 0 when it is gone. */
static int gateway_listed(const config *cfg, const char *address, int *tls)
{
    for (size_t i = 0; i < cfg->gateway_listen_count; i++) {
        if (strcmp(cfg->gateway_listen[i], address) == 0) {
            *tls = 0;
            return 1;
        }
    }
    for (size_t i = 0; i < cfg->gateway_tls_listen_count; i++) {
        if (strcmp(cfg->gateway_tls_listen[i], address) == 0) {
            *tls = 1;
            return 1;
        }
    }
    return 0;
}

/* Opens the addresses of one configured list that no listener serves yet, into next. */
static int gateway_open_listeners(gateway *gw, char **addresses, size_t address_count, int tls,
                                  gateway_listener *next, size_t *count, diag_list *problems)
{
    for (size_t i = 0; i < address_count; i++) {
        if (gateway_find_listener(gw, addresses[i]))
            continue;
        if (gateway_listener_open(gw, addresses[i], tls, &next[*count], problems) != 0)
            return -1;
        log_msg(SP_LOG_INFO, "gateway", "listening on %s (%s)", next[*count].address,
                tls ? "TLS, h2" : "h2c");
        (*count)++;
    }
    return 0;
}

/*
 * Swaps in the listener set for cfg (opened first, so a failure changes
 * nothing).  A kept address that moved between gateway.listen and
 * gateway.tls.listen keeps its socket and serves the new protocol to new
 * connections.
 */
static int gateway_apply_listeners(gateway *gw, const config *cfg, diag_list *problems)
{
    gateway_listener *next = calloc(
        cfg->gateway_listen_count + cfg->gateway_tls_listen_count + gw->listener_count + 1,
        sizeof(*next));
    size_t count = 0;
    int tls = 0;
    if (next == NULL)
        return -1;
    if (gateway_open_listeners(gw, cfg->gateway_listen, cfg->gateway_listen_count, 0, next,
                               &count, problems) != 0 ||
        gateway_open_listeners(gw, cfg->gateway_tls_listen, cfg->gateway_tls_listen_count, 1,
                               next, &count, problems) != 0)
        goto fail;
    for (size_t i = 0; i < gw->listener_count; i++) {
        gateway_listener *old = &gw->listeners[i];
        if (gateway_listed(cfg, old->address, &tls)) {
            if (old->tls != tls)
                log_msg(SP_LOG_INFO, "gateway", "listener %s now serves %s", old->address,
                        tls ? "TLS, h2" : "h2c");
            old->tls = tls;
            next[count++] = *old;
            continue;
        }
        log_msg(SP_LOG_INFO, "gateway", "closing listener %s", old->address);
        evconnlistener_free(old->listener);
        free(old->address);
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

/* A new TLS context from the configured files (read again on every reload: rotation). */
static int gateway_load_tls(const config *cfg, SSL_CTX **context, diag_list *problems)
{
    char message[1024];
    gateway_tls_fault fault;
    *context = NULL;
    if (cfg->gateway_tls_listen_count == 0)
        return 0;
    *context = gateway_tls_context_new(cfg->gateway_tls_certificate, cfg->gateway_tls_key,
                                       &fault, message, sizeof(message));
    if (*context == NULL) {
        diag_add(problems, "%s: %s",
                 fault == GATEWAY_TLS_FAULT_KEY ? "gateway.tls.key" : "gateway.tls.certificate",
                 message);
        return -1;
    }
    gateway_tls_context_describe(*context, message, sizeof(message));
    log_msg(SP_LOG_INFO, "gateway", "TLS certificate: %s", message);
    return 0;
}

int gateway_configure(gateway *gw, const config *cfg, diag_list *problems)
{
    cluster_registry *registry = NULL;
    gateway_router *router = NULL;
    SSL_CTX *tls_context = NULL;
    if (cfg->gateway_max_concurrent_streams < 1 ||
        cfg->gateway_max_concurrent_streams > UINT32_MAX) {
        diag_add(problems, "gateway.max_concurrent_streams: %llu is out of range",
                 (unsigned long long)cfg->gateway_max_concurrent_streams);
        return -1;
    }
    if (gateway_load_tls(cfg, &tls_context, problems) != 0)
        return -1;
    if ((cfg->gateway_listen_count > 0 || cfg->gateway_tls_listen_count > 0) &&
        gateway_load_routes(cfg, &registry, &router, problems) != 0) {
        gateway_tls_context_free(tls_context);
        return -1;
    }
    if (gateway_apply_listeners(gw, cfg, problems) != 0) {
        gateway_router_free(router);
        cluster_registry_free(registry);
        gateway_tls_context_free(tls_context);
        return -1;
    }
    gateway_apply_routes(gw, registry, router);
    gateway_tls_context_free(gw->tls_context);  /* open TLS connections hold their own ref */
    gw->session_timeout_ms = cfg->gateway_session_timeout_ms;
    gw->max_message_bytes = cfg->gateway_max_message_bytes;
    gw->auth_generation++;
    gw->guard_limits.idle_timeout_ms = cfg->gateway_idle_timeout_ms;
    gw->guard_limits.header_timeout_ms = cfg->gateway_header_timeout_ms;
    /* a client may cancel every open stream at once, twice a second */
    gw->guard_limits.rst_stream = cfg->gateway_max_concurrent_streams > 100
                                      ? (uint32_t)cfg->gateway_max_concurrent_streams * 2
                                      : 200;
    gw->tls_context = tls_context;
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
    gw->sessions = gateway_sessions_new();
    gw->metrics = gateway_metrics_new();
    gw->housekeeping = event_new(daemon->base, -1, EV_PERSIST, gateway_on_housekeeping, gw);
    gw->session_timeout_ms = UINT64_C(60) * 60u * 1000u;
    gw->max_message_bytes = UINT64_C(128) * 1024u * 1024u;
    gateway_guard_limits_default(&gw->guard_limits);
    gw->connections = metrics_register(SP_METRIC_GAUGE, "sparkplane_gateway_connections",
                                       "Open client connections to the gateway", "");
    gw->upstream_connect_seconds = metrics_register(
        SP_METRIC_HISTOGRAM, "sparkplane_gateway_upstream_connect_seconds",
        "TCP connect time to Spark Connect servers", "");
    if (gw->pool == NULL || gw->sessions == NULL || gw->metrics == NULL ||
        gw->housekeeping == NULL) {
        gateway_upstream_pool_free(gw->pool);
        gateway_metrics_free(gw->metrics);
        gateway_sessions_free(gw->sessions, NULL);
        if (gw->housekeeping)
            event_free(gw->housekeeping);
        free(gw);
        return NULL;
    }
    struct timeval every = {GATEWAY_HOUSEKEEPING_MS / 1000u, 0};
    event_add(gw->housekeeping, &every);
    gateway_upstream_pool_set_health(gw->pool, gateway_on_upstream_health, gw);
    return gw;
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
    event_free(gw->housekeeping);
    gateway_sessions_free(gw->sessions, gw->registry);
    gateway_metrics_free(gw->metrics);
    gateway_router_free(gw->router);
    cluster_registry_free(gw->registry);
    gateway_tls_context_free(gw->tls_context);
    free(gw->listeners);
    free(gw);
}
