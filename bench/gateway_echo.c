/*
 * gateway_echo.c - a small, fast gRPC-shaped HTTP/2 server: the upstream that
 * bench/gateway.sh puts behind sparkplaned's gateway and behind nghttpx.
 *
 *   gateway_echo PORT        listens on 127.0.0.1:PORT (h2c, prior knowledge)
 *
 * Every POST is answered like a gRPC server: HEADERS (:status 200,
 * content-type application/grpc), DATA, then trailers (grpc-status 0).
 *   - unary (the default): the DATA is the request body echoed back (the
 *     bench sends one small gRPC-framed message, so the answer is one too);
 *   - server streaming: a request with `x-bench-stream: N` is answered with
 *     N gRPC messages of 4 MiB each (zero bytes behind each 5-byte header).
 * `GET /bench-stats` answers "served N\n": how many gRPC answers were sent
 * completely (stream closed without error), so the bench can check that
 * requests really reached this server.
 *
 * One thread, one libevent loop; each connection is a bufferevent and an
 * nghttp2 server session fed with mem_recv and drained with mem_send only
 * while the socket's output holds less than OUTPUT_HIGH bytes, so a slow
 * reader is paced by its windows and its socket, not by our memory.  The
 * windows we grant are large (requests are never held back by us); the
 * client's windows are what pace the responses.  Response DATA is copied
 * from a static buffer: per byte this costs what any proxy costs at least.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define OUTPUT_HIGH (1u * 1024u * 1024u)
#define STREAM_MESSAGE_BYTES (4u * 1024u * 1024u)
#define GRPC_HEADER_BYTES 5u
#define ECHO_MAX_BYTES (64u * 1024u)
#define LOCAL_WINDOW ((1 << 30) - 1)
#define STATS_PATH "/bench-stats"

typedef struct echo_stream {
    int32_t id;
    int stats;                  /* GET /bench-stats */
    unsigned long messages;     /* x-bench-stream: N (0 = unary echo) */
    struct evbuffer *body;      /* unary: the request body, then the answer */
    uint64_t total;             /* streaming: bytes of the whole answer */
    uint64_t sent;              /* streaming: bytes handed to nghttp2 so far */
    int answered;               /* the response was submitted */
} echo_stream;

typedef struct echo_conn {
    struct bufferevent *bev;
    nghttp2_session *session;
} echo_conn;

static unsigned long long served_count;
static uint8_t zero_payload[16384];

static void conn_free(echo_conn *conn)
{
    nghttp2_session_del(conn->session);
    bufferevent_free(conn->bev);
    free(conn);
}

/* Frames pending output while the socket is not too far behind.  -1 = close. */
static int conn_send(echo_conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    while (evbuffer_get_length(out) < OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(conn->session, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0)
            return -1;
    }
    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session) &&
        evbuffer_get_length(out) == 0)
        return -1;
    return 0;
}

/* Streaming: the bytes of message after message, each a header then zeros. */
static size_t stream_fill(echo_stream *stream, uint8_t *buf, size_t length)
{
    const uint64_t message = GRPC_HEADER_BYTES + STREAM_MESSAGE_BYTES;
    size_t filled = 0;
    while (filled < length && stream->sent < stream->total) {
        uint64_t at = stream->sent % message;
        size_t n;
        if (at < GRPC_HEADER_BYTES) {
            uint8_t header[GRPC_HEADER_BYTES] = {0, (uint8_t)(STREAM_MESSAGE_BYTES >> 24),
                                                 (uint8_t)(STREAM_MESSAGE_BYTES >> 16),
                                                 (uint8_t)(STREAM_MESSAGE_BYTES >> 8),
                                                 (uint8_t)STREAM_MESSAGE_BYTES};
            n = GRPC_HEADER_BYTES - (size_t)at;
            n = n < length - filled ? n : length - filled;
            memcpy(buf + filled, header + at, n);
        } else {
            uint64_t left = message - at;
            n = length - filled;
            n = n < sizeof(zero_payload) ? n : sizeof(zero_payload);
            n = n < left ? n : (size_t)left;
            memcpy(buf + filled, zero_payload, n);
        }
        filled += n;
        stream->sent += n;
    }
    return filled;
}

static ssize_t answer_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data)
{
    (void)user_data;
    echo_stream *stream = source->ptr;
    size_t n;
    int done;
    if (stream->messages > 0) {
        n = stream_fill(stream, buf, length);
        done = stream->sent == stream->total;
    } else {
        int removed = evbuffer_remove(stream->body, buf, length);
        n = removed > 0 ? (size_t)removed : 0;
        done = evbuffer_get_length(stream->body) == 0;
    }
    if (done) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!stream->stats) {
            nghttp2_nv trailer[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1,
                                     NGHTTP2_NV_FLAG_NONE}};
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(session, stream_id, trailer, 1) != 0)
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

static int answer(nghttp2_session *session, echo_stream *stream)
{
    nghttp2_nv grpc[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
                         {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
                          NGHTTP2_NV_FLAG_NONE}};
    nghttp2_nv text[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
                         {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10,
                          NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider provider = {.source.ptr = stream, .read_callback = answer_read};
    if (stream->stats) {
        evbuffer_drain(stream->body, evbuffer_get_length(stream->body));
        evbuffer_add_printf(stream->body, "served %llu\n", served_count);
    } else if (stream->messages > 0) {
        stream->total = stream->messages * (uint64_t)(GRPC_HEADER_BYTES + STREAM_MESSAGE_BYTES);
    }
    stream->answered = 1;
    return nghttp2_submit_response(session, stream->id, stream->stats ? text : grpc, 2, &provider);
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    echo_stream *stream = calloc(1, sizeof(*stream));
    if (stream == NULL || (stream->body = evbuffer_new()) == NULL) {
        free(stream);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    stream->id = frame->hd.stream_id;
    nghttp2_session_set_stream_user_data(session, stream->id, stream);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    (void)user_data;
    echo_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL)
        return 0;
    if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        stream->stats = valuelen == strlen(STATS_PATH) && memcmp(value, STATS_PATH, valuelen) == 0;
    else if (namelen == 14 && memcmp(name, "x-bench-stream", 14) == 0 && valuelen < 16) {
        char digits[16];
        memcpy(digits, value, valuelen);
        digits[valuelen] = '\0';
        stream->messages = strtoul(digits, NULL, 10);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    (void)user_data;
    echo_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream == NULL || stream->messages > 0)
        return 0;
    size_t room = ECHO_MAX_BYTES - evbuffer_get_length(stream->body);
    if (evbuffer_add(stream->body, data, len < room ? len : room) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    echo_stream *stream = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (stream == NULL || stream->answered)
        return 0;
    return answer(session, stream) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)user_data;
    echo_stream *stream = nghttp2_session_get_stream_user_data(session, stream_id);
    if (stream == NULL)
        return 0;
    if (error_code == NGHTTP2_NO_ERROR && stream->answered && !stream->stats)
        served_count++;
    evbuffer_free(stream->body);
    free(stream);
    return 0;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    echo_conn *conn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    ssize_t n = nghttp2_session_mem_recv(conn->session, evbuffer_pullup(in, -1), len);
    if (n < 0 || evbuffer_drain(in, (size_t)n) != 0 || conn_send(conn) != 0)
        conn_free(conn);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    echo_conn *conn = arg;
    if (conn_send(conn) != 0)
        conn_free(conn);
}

static void conn_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

static nghttp2_session *session_new(echo_conn *conn)
{
    nghttp2_session_callbacks *callbacks;
    nghttp2_session *session = NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    int rc = nghttp2_session_server_new(&session, callbacks, conn);
    nghttp2_session_callbacks_del(callbacks);
    if (rc != 0)
        return NULL;
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 10000},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, LOCAL_WINDOW},
    };
    if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
        nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, LOCAL_WINDOW) != 0) {
        nghttp2_session_del(session);
        return NULL;
    }
    return session;
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)listener;
    (void)addr;
    (void)addrlen;
    struct event_base *base = arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    echo_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        evutil_closesocket(fd);
        return;
    }
    conn->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    conn->session = conn->bev ? session_new(conn) : NULL;
    if (conn->session == NULL) {
        if (conn->bev)
            bufferevent_free(conn->bev);
        else
            evutil_closesocket(fd);
        free(conn);
        return;
    }
    bufferevent_setwatermark(conn->bev, EV_WRITE, OUTPUT_HIGH / 2, 0);
    bufferevent_setcb(conn->bev, conn_read, conn_write, conn_event, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    if (conn_send(conn) != 0)
        conn_free(conn);
}

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: gateway_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)atoi(argv[1])),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct evconnlistener *listener =
        base ? evconnlistener_new_bind(base, on_accept, base,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                       (struct sockaddr *)&sin, sizeof(sin))
             : NULL;
    if (listener == NULL) {
        fprintf(stderr, "gateway_echo: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    event_base_dispatch(base);
    evconnlistener_free(listener);
    event_base_free(base);
    return 0;
}
