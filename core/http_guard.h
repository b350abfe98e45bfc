/*
 * http_guard.h - REST request limits enforced before evhttp sees a request
 * (431 headers too large, 413 body too large, 408 too slow), answered in
 * the JSON error shape, and TLS under them for HTTPS listeners.  See
 * http_guard.c.
 */
#ifndef SPARKPLANE_CORE_HTTP_GUARD_H
#define SPARKPLANE_CORE_HTTP_GUARD_H

#include <event2/http.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_guard_limits {
    size_t max_header_bytes;
    uint64_t max_body_bytes;
    uint64_t request_timeout_ms;
} http_guard_limits;

/* What the connections of one evhttp get; the caller owns it and keeps it alive. */
typedef struct http_guard_site {
    const http_guard_limits *limits; /* may change at any time (reload): new checks use it */
    SSL_CTX *const *tls_context;     /* NULL: plain HTTP; else each new connection speaks
                                      * TLS with the context in *tls_context at accept time,
                                      * so a reload swaps it; *tls_context must not be NULL
                                      * while the evhttp has listeners */
} http_guard_site;

/* Wraps every new connection of `http`.  `site` must outlive `http`. */
void http_guard_install(struct evhttp *http, const http_guard_site *site);

#endif
