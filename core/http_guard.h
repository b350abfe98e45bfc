/*
 * http_guard.h - REST request limits enforced before evhttp sees a request
 * (431 headers too large, 413 body too large, 408 too slow), answered in
 * the JSON error shape.  See http_guard.c.
 */
#ifndef SPARKPLANE_CORE_HTTP_GUARD_H
#define SPARKPLANE_CORE_HTTP_GUARD_H

#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_guard_limits {
    size_t max_header_bytes;
    uint64_t max_body_bytes;
    uint64_t request_timeout_ms;
} http_guard_limits;

/*
 * Wraps every new connection of `http`.  `limits` must outlive `http`; the
 * caller may change it at any time (reload) and new checks use the new values.
 */
void http_guard_install(struct evhttp *http, const http_guard_limits *limits);

#endif
