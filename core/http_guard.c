/*
 * http_guard.c - request limits in front of evhttp, with proper answers.
 *
 * evhttp answers an oversized header block with 413 in HTML and drops a slow
 * request without a word.  The guard sits between the socket and evhttp as
 * a bufferevent filter on each connection (installed with evhttp_set_bevcb)
 * and reads just enough of every request to enforce the limits itself:
 *
 *   header block larger than server.max_header_size  -> 431
 *   Content-Length larger than server.max_body_size  -> 413 (before the body is read)
 *   request not complete within server.request_timeout -> 408
 *
 * each with the JSON error shape.  Complete, acceptable requests pass through
 * unchanged, so keep-alive and pipelining work.  Chunked request bodies pass
 * through too; evhttp's own max_body_size still bounds them.
 *
 * A refused connection gets its answer, stops sending to evhttp, shuts down
 * its write side and is closed after a short linger, so the client reads
 * the answer instead of a reset.
 *
 * Output is written by the guard straight to the socket, and only reported
 * as done (the filter's output empty) once the kernel took every byte: evhttp
 * closes a "Connection: close" connection as soon as its output is empty, so
 * data parked in a second buffer would be lost.  libevent 2.1's filter also
 * does not push output added while EV_WRITE was disabled when evhttp enables
 * it; a "kick" event (and an EV_WRITE wait when the socket is full) retries.
 *
 * On an HTTPS listener the filter sits on a libevent OpenSSL bufferevent
 * instead of a socket one, and the same promise is kept another way: output
 * is copied to the TLS layer a piece at a time and only drained from the
 * filter once the TLS layer has written it to the socket (its output buffer
 * is empty again), so evhttp still sees "done" only when the kernel has the
 * bytes.  A refusal goes through the TLS layer too, and the linger closes.
 */
#include "http_guard.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "metrics.h"

#define GUARD_LINGER_MS 1000
#define GUARD_TLS_PIECE (64 * 1024) /* output handed to the TLS layer at a time */

typedef enum guard_state {
    GUARD_HEADERS = 0,  /* reading a header block */
    GUARD_BODY,         /* passing `remaining` body bytes */
    GUARD_PASSTHROUGH,  /* chunked body: evhttp frames the rest */
    GUARD_REFUSED       /* answered; discarding input until close */
} guard_state;

typedef struct guard_connection {
    const http_guard_limits *limits;
    struct bufferevent *filter;
    struct bufferevent *socket_bev; /* the filter's underlying socket (or TLS) bufferevent */
    SSL *ssl;                       /* HTTPS: socket_bev's, freed with it; NULL: plain */
    size_t tls_in_flight;           /* output bytes copied to the TLS layer, not yet sent */
    struct evbuffer_cb_entry *tls_written; /* guard_on_tls_written on the TLS layer's output */
    struct event *kick;             /* pushes evhttp's output on */
    struct event *writable;         /* the socket can take more output */
    guard_state state;
    uint64_t remaining;
    struct event *deadline;     /* request_timeout, armed at a request's first byte */
    struct event *linger;       /* closes a refused connection */
} guard_connection;

static void guard_count(const char *reason)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_http_refused_total",
                                 "Requests refused by the REST limits.", labels),
                1);
}

static void guard_on_linger(evutil_socket_t fd, short what, void *arg)
{
    guard_connection *conn = arg;
    /* Tell evhttp the peer is gone: it frees the connection and this guard. */
    bufferevent_trigger_event(conn->filter, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

static void guard_refuse(guard_connection *conn, int status, const char *reason_phrase,
                         const char *code, const char *message, const char *metric_reason)
{
    char body[512], response[1024];
    if (conn->state == GUARD_REFUSED)
        return;
    conn->state = GUARD_REFUSED;
    event_del(conn->deadline);
    guard_count(metric_reason);

    int body_len = snprintf(body, sizeof(body),
                            "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, message);
    int len = snprintf(response, sizeof(response),
                       "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                       status, reason_phrase, body_len, body);
    /*
     * The answer is small and the socket's send buffer is empty at this
     * point (evhttp has not answered anything for this request), so one
     * non-blocking send delivers it.  TLS encrypts it on the way; the linger
     * gives it the time.
     */
    evutil_socket_t fd = bufferevent_getfd(conn->socket_bev);
    if (conn->ssl != NULL) {
        evbuffer_add(bufferevent_get_output(conn->socket_bev), response, (size_t)len);
    } else if (fd >= 0) {
        ssize_t sent = send(fd, response, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;
        shutdown(fd, SHUT_WR);
    }
    struct timeval linger = {.tv_sec = 0, .tv_usec = GUARD_LINGER_MS * 1000};
    event_add(conn->linger, &linger);
}

/* Finds the end of the header block; returns its length or 0 when incomplete. */
static size_t guard_header_end(const char *data, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (data[i] != '\n')
            continue;
        if (data[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && data[i + 1] == '\r' && data[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/*
 * Reads Content-Length and Transfer-Encoding from a header block.
 * Returns -1 for a malformed or conflicting Content-Length.
 */
static int guard_parse_framing(const char *data, size_t len, uint64_t *content_length,
                               int *chunked)
{
    int seen = 0;
    *content_length = 0;
    *chunked = 0;
    const char *end = data + len;
    for (const char *line = data; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        size_t line_len = (size_t)(eol - line);
        if (line_len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0)
            *chunked = 1;
        if (line_len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            const char *p = line + 15;
            uint64_t value = 0;
            while (p < eol && (*p == ' ' || *p == '\t'))
                p++;
            if (p == eol || *p < '0' || *p > '9')
                return -1;
            for (; p < eol && *p >= '0' && *p <= '9'; p++) {
                if (value > (UINT64_MAX - 9) / 10)
                    return -1;
                value = value * 10 + (uint64_t)(*p - '0');
            }
            while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++;
            if (p != eol || (seen && value != *content_length))
                return -1;
            *content_length = value;
            seen = 1;
        }
        line = eol + 1;
    }
    return 0;
}

static void guard_request_done(guard_connection *conn)
{
    conn->state = GUARD_HEADERS;
    event_del(conn->deadline);
}

/* One header block in src: check it, pass it on, or refuse. 1 when more may follow. */
static int guard_take_headers(guard_connection *conn, struct evbuffer *src, struct evbuffer *dst)
{
    size_t available = evbuffer_get_length(src);
    size_t window = available;
    size_t max = conn->limits->max_header_bytes;
    char text[64];

    if (!event_pending(conn->deadline, EV_TIMEOUT, NULL)) {
        uint64_t ms = conn->limits->request_timeout_ms;
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        event_add(conn->deadline, &tv);
    }
    if (window > max + 3)
        window = max + 3;
    const char *data = (const char *)evbuffer_pullup(src, (ev_ssize_t)window);
    size_t header_len = guard_header_end(data, window);
    if (header_len == 0 || header_len > max) {
        if (window > max) {
            snprintf(text, sizeof(text), "request headers exceed %zu bytes", max);
            guard_refuse(conn, 431, "Request Header Fields Too Large",
                         "request_header_fields_too_large", text, "header_too_large");
        }
        return 0;
    }

    uint64_t content_length;
    int chunked;
    if (guard_parse_framing(data, header_len, &content_length, &chunked) != 0) {
        guard_refuse(conn, 400, "Bad Request", "invalid_request",
                     "malformed Content-Length header", "bad_framing");
        return 0;
    }
    if (content_length > conn->limits->max_body_bytes) {
        snprintf(text, sizeof(text), "request body exceeds %llu bytes",
                 (unsigned long long)conn->limits->max_body_bytes);
        guard_refuse(conn, 413, "Payload Too Large", "payload_too_large", text,
                     "body_too_large");
        return 0;
    }
    evbuffer_remove_buffer(src, dst, header_len);
    if (chunked) {
        conn->state = GUARD_PASSTHROUGH;
        event_del(conn->deadline);
    } else if (content_length > 0) {
        conn->state = GUARD_BODY;
        conn->remaining = content_length;
    } else {
        guard_request_done(conn);
    }
    return 1;
}

static enum bufferevent_filter_result guard_input(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t dst_limit,
                                                  enum bufferevent_flush_mode mode, void *ctx)
{
    guard_connection *conn = ctx;
    size_t start = evbuffer_get_length(src);
    while (evbuffer_get_length(src) > 0) {
        switch (conn->state) {
        case GUARD_REFUSED:
            evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_OK;
        case GUARD_PASSTHROUGH:
            evbuffer_add_buffer(dst, src);
            return BEV_OK;
        case GUARD_BODY: {
            size_t n = evbuffer_get_length(src);
            if (n > conn->remaining)
                n = (size_t)conn->remaining;
            evbuffer_remove_buffer(src, dst, n);
            conn->remaining -= n;
            if (conn->remaining == 0)
                guard_request_done(conn);
            break;
        }
        case GUARD_HEADERS:
            if (guard_take_headers(conn, src, dst))
                break;
            /*
             * An incomplete header block stays in src.  BEV_OK with nothing
             * consumed would make libevent call this filter again at once,
             * forever; NEED_MORE waits for more bytes.
             */
            return (evbuffer_get_length(src) < start || conn->state == GUARD_REFUSED)
                       ? BEV_OK
                       : BEV_NEED_MORE;
        }
    }
    return BEV_OK;
}

static void guard_on_kick(evutil_socket_t fd, short what, void *arg);

/*
 * HTTPS output: a piece of src goes to the TLS layer as a copy, and leaves
 * src only when the TLS layer's buffer is empty again (written to the
 * socket); guard_on_tls_written kicks the filter then.
 */
static enum bufferevent_filter_result guard_output_tls(guard_connection *conn,
                                                       struct evbuffer *src)
{
    struct evbuffer *tls_output = bufferevent_get_output(conn->socket_bev);
    if (conn->tls_in_flight > 0) {
        if (evbuffer_get_length(tls_output) > 0)
            return BEV_NEED_MORE;
        evbuffer_drain(src, conn->tls_in_flight);
        conn->tls_in_flight = 0;
    }
    size_t piece = evbuffer_get_length(src);
    if (piece == 0)
        return BEV_OK; /* all sent: evhttp may carry on (or close) */
    if (piece > GUARD_TLS_PIECE)
        piece = GUARD_TLS_PIECE;
    unsigned char *data = evbuffer_pullup(src, (ev_ssize_t)piece);
    if (data == NULL || evbuffer_add(tls_output, data, piece) != 0)
        return BEV_ERROR;
    conn->tls_in_flight = piece;
    return BEV_NEED_MORE;
}

static enum bufferevent_filter_result guard_output(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t dst_limit,
                                                   enum bufferevent_flush_mode mode, void *ctx)
{
    guard_connection *conn = ctx;
    evutil_socket_t fd = bufferevent_getfd(conn->socket_bev);
    if (conn->state == GUARD_REFUSED || fd < 0) {
        evbuffer_drain(src, evbuffer_get_length(src));
        conn->tls_in_flight = 0;
        return BEV_OK;
    }
    if (conn->ssl != NULL)
        return guard_output_tls(conn, src);
    while (evbuffer_get_length(src) > 0) {
        int n = evbuffer_write(src, fd);
        if (n > 0)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            /* The peer is gone: drop the answer; evhttp sees the error on read. */
            evbuffer_drain(src, evbuffer_get_length(src));
            return BEV_ERROR;
        }
        if (conn->writable == NULL)
            conn->writable = event_new(bufferevent_get_base(conn->socket_bev), fd, EV_WRITE,
                                       guard_on_kick, conn);
        if (conn->writable != NULL)
            event_add(conn->writable, NULL);
        return BEV_NEED_MORE;
    }
    return BEV_OK;
}

static void guard_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    guard_connection *conn = arg;
    char text[96];
    snprintf(text, sizeof(text), "request not received within %llu ms",
             (unsigned long long)conn->limits->request_timeout_ms);
    guard_refuse(conn, 408, "Request Timeout", "request_timeout", text, "timeout");
}

/* Frees the bottom bufferevent and, on HTTPS, its SSL (both may be NULL). */
static void guard_free_socket(guard_connection *conn)
{
    /* The TLS bufferevent is finalized later, after `conn` is gone: no callback into it. */
    if (conn->tls_written != NULL)
        evbuffer_remove_cb_entry(bufferevent_get_output(conn->socket_bev), conn->tls_written);
    if (conn->socket_bev != NULL)
        bufferevent_free(conn->socket_bev);
    /* Without BEV_OPT_CLOSE_ON_FREE libevent leaves the SSL to us and never touches it again. */
    SSL_free(conn->ssl);
}

/* The filter's free_context: evhttp is done with this connection. */
static void guard_on_filter_freed(void *ctx)
{
    guard_connection *conn = ctx;
    guard_free_socket(conn);
    event_free(conn->deadline);
    event_free(conn->linger);
    event_free(conn->kick);
    if (conn->writable)
        event_free(conn->writable);
    free(conn);
}

static void guard_on_kick(evutil_socket_t fd, short what, void *arg)
{
    guard_connection *conn = arg;
    bufferevent_flush(conn->filter, EV_WRITE, BEV_NORMAL);
}

static void guard_on_output_added(struct evbuffer *buffer, const struct evbuffer_cb_info *info,
                                  void *arg)
{
    guard_connection *conn = arg;
    if (info->n_added > 0)
        event_active(conn->kick, EV_TIMEOUT, 0);
}

/* The TLS layer wrote everything it was given: the copied piece may leave the filter. */
static void guard_on_tls_written(struct evbuffer *buffer, const struct evbuffer_cb_info *info,
                                 void *arg)
{
    guard_connection *conn = arg;
    if (info->n_deleted > 0 && evbuffer_get_length(buffer) == 0 && conn->tls_in_flight > 0)
        event_active(conn->kick, EV_TIMEOUT, 0);
}

static void guard_free_parts(guard_connection *conn)
{
    guard_free_socket(conn);
    if (conn->deadline)
        event_free(conn->deadline);
    if (conn->linger)
        event_free(conn->linger);
    if (conn->kick)
        event_free(conn->kick);
    if (conn->writable)
        event_free(conn->writable);
    free(conn);
}

/*
 * An HTTPS connection's bottom layer: an accepting OpenSSL bufferevent
 * whose descriptor evhttp sets later (bufferevent_setfd reaches it through
 * the filter).  NULL when there is no context or no memory.
 */
static struct bufferevent *guard_new_tls_bufferevent(guard_connection *conn,
                                                     struct event_base *base,
                                                     SSL_CTX *context)
{
    conn->ssl = context ? SSL_new(context) : NULL;
    if (conn->ssl == NULL)
        return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, conn->ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
    if (bev == NULL)
        return NULL;
    /* A client that closes without close_notify is ordinary (curl does it): EOF, not error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    conn->tls_written = evbuffer_add_cb(bufferevent_get_output(bev), guard_on_tls_written, conn);
    return bev;
}

static struct bufferevent *guard_new_connection(struct event_base *base, void *arg)
{
    const http_guard_site *site = arg;
    guard_connection *conn = calloc(1, sizeof(*conn));
    int tls_failed = 0;
    if (conn == NULL)
        return NULL;
    conn->limits = site->limits;
    /*
     * No BEV_OPT_CLOSE_ON_FREE anywhere: evhttp closes the socket itself
     * when its bufferevent lacks the flag, and the guard frees the socket
     * bufferevent (never the descriptor) when the filter goes.
     */
    if (site->tls_context == NULL) {
        conn->socket_bev = bufferevent_socket_new(base, -1, 0);
    } else if ((conn->socket_bev = guard_new_tls_bufferevent(conn, base,
                                                             *site->tls_context)) == NULL) {
        /* Never plain HTTP on a TLS port: a connection that closes at once instead. */
        SSL_free(conn->ssl);
        conn->ssl = NULL;
        conn->socket_bev = bufferevent_socket_new(base, -1, 0);
        tls_failed = 1;
    }
    conn->deadline = evtimer_new(base, guard_on_deadline, conn);
    conn->linger = evtimer_new(base, guard_on_linger, conn);
    conn->kick = evtimer_new(base, guard_on_kick, conn);
    if (!conn->socket_bev || !conn->deadline || !conn->linger || !conn->kick) {
        guard_free_parts(conn);
        return NULL;
    }
    conn->filter = bufferevent_filter_new(conn->socket_bev, guard_input, guard_output, 0,
                                          guard_on_filter_freed, conn);
    if (conn->filter == NULL) {
        guard_free_parts(conn);
        return NULL;
    }
    evbuffer_add_cb(bufferevent_get_output(conn->filter), guard_on_output_added, conn);
    if (tls_failed) {
        conn->state = GUARD_REFUSED;
        event_active(conn->linger, EV_TIMEOUT, 0);
    }
    return conn->filter;
}

void http_guard_install(struct evhttp *http, const http_guard_site *site)
{
    evhttp_set_bevcb(http, guard_new_connection, (void *)site);
}
