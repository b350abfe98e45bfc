/*
 * gateway_upstream.c - pooled HTTP/2 client connections to Spark Connect
 * servers.
 *
 * The pool keeps at most one usable connection per endpoint ("host:port");
 * every gateway stream to that endpoint becomes one stream on it.  A
 * connection is a bufferevent plus an nghttp2 client session driven with
 * mem_recv/mem_send.  Streams may be submitted before the TCP connect
 * completes: the bufferevent holds the bytes until then.
 *
 * Reentrancy: nghttp2 callbacks call into the gateway, which may call back
 * here (resume, consume, cancel).  Those only change session state and
 * schedule a flush event; sending and freeing happen at the top of the
 * loop, never inside a session's own callback.
 *
 * Flow control: automatic WINDOW_UPDATE is off.  Response bytes count as
 * "unconsumed" until the gateway reports them passed on to the client;
 * when a stream ends early its unconsumed bytes go back to the connection
 * window so one abandoned stream cannot starve the others.
 */
#include "gateway_upstream.h"
#include "h2_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"

#define UPSTREAM_OUTPUT_HIGH (256u * 1024u)        /* stop framing above this much queued */
#define UPSTREAM_IO_CHUNK (128u * 1024u)           /* per read()/write() (libevent: 16 KiB) */
#define UPSTREAM_STREAM_WINDOW (1u * 1024u * 1024u)
#define UPSTREAM_CONNECTION_WINDOW (16u * 1024u * 1024u)
#define UPSTREAM_MAX_HEADER_BYTES (64u * 1024u)

typedef struct upstream_conn upstream_conn;

struct gateway_upstream_stream {
    upstream_conn *conn;
    int32_t id;
    const gateway_upstream_ops *ops;    /* NULL once cancelled */
    void *arg;
    int response_seen;                  /* a later HEADERS frame is trailers */
    size_t unconsumed;                  /* response bytes not yet passed on */
    gateway_headers headers;            /* the HEADERS frame being received */
    gateway_upstream_stream *prev;
    gateway_upstream_stream *next;
};

struct upstream_conn {
    gateway_upstream_pool *pool;
    upstream_conn *next;
    char *endpoint;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *flush_event;
    int usable;                         /* accepts new streams (no GOAWAY, no error) */
    int connected;                      /* the TCP connect completed */
    struct event *read_event;           /* once connected: large reads (h2_io_receive_socket) */
    struct timeval connect_started;
    gateway_upstream_stream *streams;
};

struct gateway_upstream_pool {
    struct event_base *base;
    struct evdns_base *dns;
    upstream_conn *conns;
    gateway_upstream_health_fn health;
    void *health_arg;
};

/* ---- header lists ----------------------------------------------------------------------- */

#define GATEWAY_HEADERS_BLOCK 2048u     /* a typical gRPC request's header block fits in one */

struct gateway_headers_block {
    gateway_headers_block *next;
    size_t size;
    size_t used;
    char data[];
};

/* `size` bytes of stable storage in the list's blocks; NULL when out of memory. */
static char *gateway_headers_space(gateway_headers *list, size_t size)
{
    gateway_headers_block *block = list->blocks;
    if (block == NULL || block->size - block->used < size) {
        size_t capacity = size > GATEWAY_HEADERS_BLOCK ? size : GATEWAY_HEADERS_BLOCK;
        block = malloc(sizeof(*block) + capacity);
        if (block == NULL)
            return NULL;
        block->size = capacity;
        block->used = 0;
        block->next = list->blocks;
        list->blocks = block;
    }
    char *space = block->data + block->used;
    block->used += size;
    return space;
}

int gateway_headers_add(gateway_headers *list, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, size_t max_bytes)
{
    if (namelen + valuelen + 32 > max_bytes - list->bytes || list->bytes > max_bytes)
        return -1;
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        nghttp2_nv *grown = realloc(list->nv, capacity * sizeof(*grown));
        if (grown == NULL)
            return -1;
        list->nv = grown;
        list->capacity = capacity;
    }
    nghttp2_nv *nv = &list->nv[list->count];
    nv->name = (uint8_t *)gateway_headers_space(list, namelen + valuelen + 2);
    if (nv->name == NULL)
        return -1;
    nv->value = nv->name + namelen + 1;
    memcpy(nv->name, name, namelen);
    nv->name[namelen] = '\0';
    memcpy(nv->value, value, valuelen);
    nv->value[valuelen] = '\0';
    nv->namelen = namelen;
    nv->valuelen = valuelen;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
    list->count++;
    list->bytes += namelen + valuelen + 32;
    return 0;
}

const char *gateway_headers_get(const gateway_headers *list, const char *name)
{
    size_t length = strlen(name);
    for (size_t i = 0; i < list->count; i++) {
        if (list->nv[i].namelen == length && memcmp(list->nv[i].name, name, length) == 0)
            return (const char *)list->nv[i].value;
    }
    return NULL;
}

void gateway_headers_clear(gateway_headers *list)
{
    while (list->blocks) {
        gateway_headers_block *next = list->blocks->next;
        free(list->blocks);
        list->blocks = next;
    }
    list->count = 0;
    list->bytes = 0;
}

void gateway_headers_free(gateway_headers *list)
{
    gateway_headers_clear(list);
    free(list->nv);
    list->nv = NULL;
    list->capacity = 0;
}

/* ---- streams ---------------------------------------------------------------------------- */

static void upstream_unlink_stream(gateway_upstream_stream *stream)
{
    upstream_conn *conn = stream->conn;
    if (stream->prev)
        stream->prev->next = stream->next;
    else
        conn->streams = stream->next;
    if (stream->next)
        stream->next->prev = stream->prev;
    gateway_headers_free(&stream->headers);
    free(stream);
}

/* Ends a stream: tells the gateway once, returns its unconsumed window. */
static void upstream_finish_stream(gateway_upstream_stream *stream, uint32_t error_code,
                                   const char *why)
{
    const gateway_upstream_ops *ops = stream->ops;
    stream->ops = NULL;
    if (stream->unconsumed > 0 && stream->conn->session)
        nghttp2_session_consume_connection(stream->conn->session, stream->unconsumed);
    stream->unconsumed = 0;
    if (ops)
        ops->on_close(stream->arg, error_code, why);
}

/* ---- the connection --------------------------------------------------------------------- */

static void upstream_schedule(upstream_conn *conn)
{
    if (conn->flush_event)
        event_active(conn->flush_event, EV_WRITE, 0);
}

/* Fails every stream with `why` and frees the connection. */
static void upstream_conn_free(upstream_conn *conn, const char *why)
{
    gateway_upstream_pool *pool = conn->pool;
    for (upstream_conn **link = &pool->conns; *link; link = &(*link)->next) {
        if (*link == conn) {
            *link = conn->next;
            break;
        }
    }
    while (conn->streams) {
        gateway_upstream_stream *stream = conn->streams;
        upstream_finish_stream(stream, NGHTTP2_INTERNAL_ERROR, why);
        upstream_unlink_stream(stream);
    }
    if (conn->flush_event)
        event_free(conn->flush_event);
    if (conn->read_event)
        event_free(conn->read_event);
    if (conn->bev)
        bufferevent_free(conn->bev);
    nghttp2_session_del(conn->session);
    free(conn->endpoint);
    free(conn);
}

/* Frames what nghttp2 has to send.  -1 on a session error, 1 when the session is over. */
static int upstream_conn_flush(upstream_conn *conn)
{
    return h2_io_send_now(conn->session, bufferevent_get_output(conn->bev), UPSTREAM_OUTPUT_HIGH,
                          conn->read_event ? (int)bufferevent_getfd(conn->bev) : -1);
}

/* After any I/O at the top of the loop: send, or end the connection. */
static void upstream_conn_settle(upstream_conn *conn)
{
    char why[512];
    int rc = upstream_conn_flush(conn);
    if (rc == 0)
        return;
    snprintf(why, sizeof(why), "upstream %s: %s", conn->endpoint,
             rc < 0 ? "HTTP/2 session error" : "connection closed by the server");
    upstream_conn_free(conn, why);
}

static void upstream_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    upstream_conn_settle(arg);
}

static void upstream_on_read(struct bufferevent *bev, void *arg)
{
    upstream_conn *conn = arg;
    char why[512];
    int rc = h2_io_receive(conn->session, bufferevent_get_input(bev));
    if (rc < 0) {
        snprintf(why, sizeof(why), "upstream %s: HTTP/2 protocol error: %s", conn->endpoint,
                 nghttp2_strerror(rc));
        upstream_conn_free(conn, why);
        return;
    }
    upstream_conn_settle(conn);
}

/* The connection failed or the server closed it: the driver counts as unhealthy (a probe
 * tells soon enough if it is fine) and every stream on it ends with `why`. */
static void upstream_conn_lost(upstream_conn *conn, const char *why)
{
    if (conn->pool->health)
        conn->pool->health(conn->pool->health_arg, conn->endpoint, 0, 0.0, why);
    upstream_conn_free(conn, why);
}

static void upstream_on_socket_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    upstream_conn *conn = arg;
    char why[512];
    int rc = h2_io_receive_socket(conn->session, fd);
    if (rc == 0) {
        upstream_conn_settle(conn);
        return;
    }
    if (rc == H2_IO_EOF)
        snprintf(why, sizeof(why), "upstream %s closed the connection", conn->endpoint);
    else if (rc == H2_IO_ERROR)
        snprintf(why, sizeof(why), "upstream %s: %s", conn->endpoint, strerror(errno));
    else
        snprintf(why, sizeof(why), "upstream %s: HTTP/2 protocol error: %s", conn->endpoint,
                 nghttp2_strerror(rc));
    upstream_conn_lost(conn, why);
}

static void upstream_on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    upstream_conn_settle(arg);
}

static void upstream_on_event(struct bufferevent *bev, short events, void *arg)
{
    upstream_conn *conn = arg;
    char why[512];
    if (events & BEV_EVENT_CONNECTED) {
        int one = 1;
        struct timeval now, took;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn->connected = 1;
        /* From now on the socket is read in large chunks by upstream_on_socket_read. */
        bufferevent_disable(bev, EV_READ);
        conn->read_event = event_new(conn->pool->base, bufferevent_getfd(bev),
                                     EV_READ | EV_PERSIST, upstream_on_socket_read, conn);
        if (conn->read_event == NULL || event_add(conn->read_event, NULL) != 0) {
            upstream_conn_free(conn, "gateway out of memory");
            return;
        }
        event_base_gettimeofday_cached(conn->pool->base, &now);
        evutil_timersub(&now, &conn->connect_started, &took);
        if (conn->pool->health)
            conn->pool->health(conn->pool->health_arg, conn->endpoint, 1,
                               (double)took.tv_sec + (double)took.tv_usec / 1e6, NULL);
        upstream_conn_settle(conn);
        return;
    }
    if (events & BEV_EVENT_ERROR) {
        int dns_error = bufferevent_socket_get_dns_error(bev);
        snprintf(why, sizeof(why), "upstream %s unreachable: %s", conn->endpoint,
                 dns_error ? evutil_gai_strerror(dns_error)
                           : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else {
        snprintf(why, sizeof(why), "upstream %s closed the connection", conn->endpoint);
    }
    upstream_conn_lost(conn, why);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------ */

static gateway_upstream_stream *upstream_stream_of(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int upstream_on_header(nghttp2_session *session, const nghttp2_frame *frame,
                              const uint8_t *name, size_t namelen, const uint8_t *value,
                              size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    gateway_upstream_stream *stream = upstream_stream_of(session, frame->hd.stream_id);
    if (stream == NULL || stream->ops == NULL)
        return 0;
    if (gateway_headers_add(&stream->headers, name, namelen, value, valuelen,
                            UPSTREAM_MAX_HEADER_BYTES) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* resets just this stream */
    return 0;
}

static int upstream_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                                  void *user_data)
{
    upstream_conn *conn = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        conn->usable = 0;       /* finish what runs, open nothing new here */
        return 0;
    }
    gateway_upstream_stream *stream = upstream_stream_of(session, frame->hd.stream_id);
    if (stream == NULL || stream->ops == NULL)
        return 0;
    int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        int trailers = stream->response_seen;
        stream->response_seen = 1;
        stream->ops->on_headers(stream->arg, stream->headers.nv, stream->headers.count,
                                trailers, end_stream);
        gateway_headers_clear(&stream->headers);
    } else if (frame->hd.type == NGHTTP2_DATA && end_stream) {
        stream->ops->on_data(stream->arg, NULL, 0, 1);
    }
    return 0;
}

static int upstream_on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                  const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    gateway_upstream_stream *stream = upstream_stream_of(session, stream_id);
    if (stream == NULL || stream->ops == NULL) {
        nghttp2_session_consume(session, stream_id, len);   /* nobody will read it */
        return 0;
    }
    stream->unconsumed += len;
    stream->ops->on_data(stream->arg, data, len, 0);
    return 0;
}

static int upstream_on_stream_close(nghttp2_session *session, int32_t stream_id,
                                    uint32_t error_code, void *user_data)
{
    (void)user_data;
    gateway_upstream_stream *stream = upstream_stream_of(session, stream_id);
    if (stream == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    upstream_finish_stream(stream, error_code, NULL);
    upstream_unlink_stream(stream);
    return 0;
}

static ssize_t upstream_read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                  size_t length, uint32_t *data_flags,
                                  nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    gateway_upstream_stream *stream = source->ptr;
    if (stream->ops == NULL)
        return NGHTTP2_ERR_DEFERRED;    /* cancelled: the RST_STREAM ends it */
    int eof = 0;
    ssize_t n = stream->ops->read_body(stream->arg, buf, length, &eof);
    if (n < 0)
        return NGHTTP2_ERR_DEFERRED;
    if (eof)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return n;
}

/* ---- connecting ------------------------------------------------------------------------- */

static nghttp2_session *upstream_session_new(upstream_conn *conn)
{
    nghttp2_session_callbacks *callbacks = NULL;
    nghttp2_option *option = NULL;
    nghttp2_session *session = NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0)
        goto done;
    nghttp2_session_callbacks_set_on_header_callback(callbacks, upstream_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, upstream_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, upstream_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, upstream_on_stream_close);
    nghttp2_option_set_no_auto_window_update(option, 1);
    if (nghttp2_session_client_new2(&session, callbacks, conn, option) != 0) {
        session = NULL;
        goto done;
    }
    nghttp2_settings_entry no_push = {NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    if (h2_io_submit_settings(session, &no_push, UPSTREAM_STREAM_WINDOW, UPSTREAM_MAX_HEADER_BYTES,
                              UPSTREAM_CONNECTION_WINDOW) != 0) {
        nghttp2_session_del(session);
        session = NULL;
    }
done:
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    return session;
}

static upstream_conn *upstream_connect(gateway_upstream_pool *pool, const char *endpoint,
                                       char *err, size_t err_size)
{
    char host[256];
    int port = 0;
    if (config_split_listen(endpoint, host, sizeof(host), &port) != 0) {
        snprintf(err, err_size, "upstream endpoint '%.200s' is not host:port", endpoint);
        return NULL;
    }
    if (pool->dns == NULL)
        pool->dns = evdns_base_new(pool->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                   EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    upstream_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        goto fail;
    conn->pool = pool;
    conn->usable = 1;
    conn->endpoint = strdup(endpoint);
    conn->bev = bufferevent_socket_new(pool->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (conn->bev) {
        bufferevent_set_max_single_read(conn->bev, UPSTREAM_IO_CHUNK);
        bufferevent_set_max_single_write(conn->bev, UPSTREAM_IO_CHUNK);
    }
    conn->flush_event = event_new(pool->base, -1, 0, upstream_on_flush, conn);
    conn->session = upstream_session_new(conn);
    if (conn->endpoint == NULL || conn->bev == NULL || conn->flush_event == NULL ||
        conn->session == NULL)
        goto fail;
    bufferevent_setcb(conn->bev, upstream_on_read, upstream_on_write, upstream_on_event, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    conn->next = pool->conns;
    pool->conns = conn;
    event_base_gettimeofday_cached(pool->base, &conn->connect_started);
    /* May report failure through upstream_on_event later; the conn is in the pool by then. */
    if (bufferevent_socket_connect_hostname(conn->bev, pool->dns, AF_UNSPEC, host, port) != 0) {
        pool->conns = conn->next;
        snprintf(err, err_size, "upstream %.200s unreachable: cannot start connecting",
                 endpoint);
        goto fail_quiet;
    }
    return conn;
fail:
    snprintf(err, err_size, "upstream %.200s: out of memory", endpoint);
fail_quiet:
    if (conn) {
        if (conn->flush_event)
            event_free(conn->flush_event);
        if (conn->bev)
            bufferevent_free(conn->bev);
        nghttp2_session_del(conn->session);
        free(conn->endpoint);
        free(conn);
    }
    return NULL;
}

static upstream_conn *upstream_find(gateway_upstream_pool *pool, const char *endpoint)
{
    for (upstream_conn *conn = pool->conns; conn; conn = conn->next) {
        if (conn->usable && strcmp(conn->endpoint, endpoint) == 0 &&
            nghttp2_session_get_next_stream_id(conn->session) < (1u << 30))
            return conn;
    }
    return NULL;
}

/* ---- the public side -------------------------------------------------------------------- */

gateway_upstream_pool *gateway_upstream_pool_new(struct event_base *base)
{
    gateway_upstream_pool *pool = calloc(1, sizeof(*pool));
    if (pool)
        pool->base = base;
    return pool;
}

void gateway_upstream_pool_free(gateway_upstream_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->conns)
        upstream_conn_free(pool->conns, "gateway stopping");
    if (pool->dns)
        evdns_base_free(pool->dns, 0);
    free(pool);
}

gateway_upstream_stream *gateway_upstream_open(gateway_upstream_pool *pool, const char *endpoint,
                                               const nghttp2_nv *nva, size_t nvlen,
                                               const gateway_upstream_ops *ops, void *arg,
                                               char *err, size_t err_size)
{
    upstream_conn *conn = upstream_find(pool, endpoint);
    if (conn == NULL && (conn = upstream_connect(pool, endpoint, err, err_size)) == NULL)
        return NULL;
    gateway_upstream_stream *stream = calloc(1, sizeof(*stream));
    if (stream == NULL) {
        snprintf(err, err_size, "upstream %.200s: out of memory", endpoint);
        return NULL;
    }
    stream->conn = conn;
    stream->ops = ops;
    stream->arg = arg;
    nghttp2_data_provider body = {.source.ptr = stream, .read_callback = upstream_read_body};
    int32_t id = nghttp2_submit_request(conn->session, NULL, nva, nvlen, &body, stream);
    if (id < 0) {
        snprintf(err, err_size, "upstream %.200s: cannot open a stream: %s", endpoint,
                 nghttp2_strerror(id));
        free(stream);
        return NULL;
    }
    stream->id = id;
    stream->next = conn->streams;
    if (conn->streams)
        conn->streams->prev = stream;
    conn->streams = stream;
    upstream_schedule(conn);
    return stream;
}

void gateway_upstream_resume(gateway_upstream_stream *stream)
{
    nghttp2_session_resume_data(stream->conn->session, stream->id);
    upstream_schedule(stream->conn);
}

void gateway_upstream_consume(gateway_upstream_stream *stream, size_t len)
{
    if (len > stream->unconsumed)
        len = stream->unconsumed;
    stream->unconsumed -= len;
    nghttp2_session_consume(stream->conn->session, stream->id, len);
    upstream_schedule(stream->conn);
}

void gateway_upstream_cancel(gateway_upstream_stream *stream)
{
    if (stream->ops == NULL)
        return;
    stream->ops = NULL;
    if (stream->unconsumed > 0)
        nghttp2_session_consume_connection(stream->conn->session, stream->unconsumed);
    stream->unconsumed = 0;
    nghttp2_submit_rst_stream(stream->conn->session, NGHTTP2_FLAG_NONE, stream->id,
                              NGHTTP2_CANCEL);
    upstream_schedule(stream->conn);
}

void gateway_upstream_pool_set_health(gateway_upstream_pool *pool,
                                      gateway_upstream_health_fn health, void *arg)
{
    pool->health = health;
    pool->health_arg = arg;
}

void gateway_upstream_probe(gateway_upstream_pool *pool, const char *endpoint)
{
    char err[256];
    for (upstream_conn *conn = pool->conns; conn; conn = conn->next) {
        if (strcmp(conn->endpoint, endpoint) == 0)
            return;     /* connecting or connected: its outcome reports health */
    }
    upstream_connect(pool, endpoint, err, sizeof(err));
}

size_t gateway_upstream_connection_count(const gateway_upstream_pool *pool)
{
    size_t count = 0;
    for (const upstream_conn *conn = pool->conns; conn; conn = conn->next)
        count++;
    return count;
}
