/*
 * gateway_upstream.h - HTTP/2 client sessions from the gateway to Spark
 * Connect servers, one pooled TCP connection per endpoint carrying many
 * streams.
 *
 * The gateway opens one upstream stream per client stream and talks to it
 * through a small ops table, so this module knows nothing about the client
 * side.  Flow control is end to end: the session never sends WINDOW_UPDATE
 * by itself; the gateway calls gateway_upstream_consume() once the bytes of
 * a response have been handed to the client's session, so a slow client
 * slows the Spark server instead of growing the gateway's memory.
 */
#ifndef SPARKPLANE_CORE_GATEWAY_UPSTREAM_H
#define SPARKPLANE_CORE_GATEWAY_UPSTREAM_H

#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct gateway_upstream_pool gateway_upstream_pool;

/* A header block being received or kept (trailers): owned copies.  Names and values live
 * in a few storage blocks (one malloc for a typical request, not two per header). */
typedef struct gateway_headers_block gateway_headers_block;
typedef struct gateway_headers {
    nghttp2_nv *nv;
    size_t count;
    size_t capacity;
    size_t bytes;           /* HPACK-style size: name + value + 32 each */
    gateway_headers_block *blocks;      /* the newest first */
} gateway_headers;

/* Appends a copy; -1 when out of memory or past max_bytes. */
int gateway_headers_add(gateway_headers *list, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, size_t max_bytes);
/* The first value of `name` (lower case), or NULL. */
const char *gateway_headers_get(const gateway_headers *list, const char *name);
void gateway_headers_clear(gateway_headers *list);     /* empties, keeps the array */
void gateway_headers_free(gateway_headers *list);
typedef struct gateway_upstream_stream gateway_upstream_stream;

/* What the gateway answers for one upstream stream; `arg` is its own. */
typedef struct gateway_upstream_ops {
    /* Response headers (trailers = 0) or trailers (trailers = 1). */
    void (*on_headers)(void *arg, const nghttp2_nv *nva, size_t nvlen, int trailers,
                       int end_stream);
    void (*on_data)(void *arg, const uint8_t *data, size_t len, int end_stream);
    /*
     * The stream is over: error_code 0 after a complete response, an
     * HTTP/2 error code after RST_STREAM, or `why` non-NULL when the
     * connection failed (refused, reset, GOAWAY).  No call follows.
     */
    void (*on_close)(void *arg, uint32_t error_code, const char *why);
    /*
     * Request body: copy up to len bytes into buf.  Returns the count,
     * 0 with *eof = 1 at the end, or -1 when nothing is there yet (the
     * gateway calls gateway_upstream_resume() when more arrives).
     */
    ssize_t (*read_body)(void *arg, uint8_t *buf, size_t len, int *eof);
} gateway_upstream_ops;

gateway_upstream_pool *gateway_upstream_pool_new(struct event_base *base);

/* Closes every connection; open streams get on_close(why = "gateway stopping"). */
void gateway_upstream_pool_free(gateway_upstream_pool *pool);

/*
 * Opens a stream to `endpoint` ("host:port"), connecting when the pool
 * holds no usable connection.  nva is copied.  Returns the stream or NULL
 * with a message; a connection that fails later reaches on_close().
 */
gateway_upstream_stream *gateway_upstream_open(gateway_upstream_pool *pool, const char *endpoint,
                                               const nghttp2_nv *nva, size_t nvlen,
                                               const gateway_upstream_ops *ops, void *arg,
                                               char *err, size_t err_size);

/* More request body (or its end) is available. */
void gateway_upstream_resume(gateway_upstream_stream *stream);

/* The gateway passed `len` response bytes on: reopen that much window. */
void gateway_upstream_consume(gateway_upstream_stream *stream, size_t len);

/* Cancels (RST_STREAM CANCEL) and detaches: no ops call follows. */
void gateway_upstream_cancel(gateway_upstream_stream *stream);

/*
 * Called when a connection to `endpoint` is established (healthy = 1,
 * connect_seconds = how long the TCP connect took) or fails or is lost
 * (healthy = 0, `why` says how).  Not called when the pool closes its
 * own connections.
 */
typedef void (*gateway_upstream_health_fn)(void *arg, const char *endpoint, int healthy,
                                           double connect_seconds, const char *why);
void gateway_upstream_pool_set_health(gateway_upstream_pool *pool,
                                      gateway_upstream_health_fn health, void *arg);

/* Connects to `endpoint` unless a connection is held or under way; the health callback
 * reports the outcome.  For checking whether a failed server is back. */
void gateway_upstream_probe(gateway_upstream_pool *pool, const char *endpoint);

/* Connections currently held (for tests and metrics). */
size_t gateway_upstream_connection_count(const gateway_upstream_pool *pool);

#endif
