/*
 * cli_http.h - one synchronous HTTP exchange with the sparkplane API.
 *
 * A thin layer over a libcurl easy handle that is reused for every request
 * of a run (so --all and --wait keep one connection).  It adds the bearer
 * token, never logs or echoes it, does not follow redirects (a redirect
 * could carry the token elsewhere) and keeps the headers the logs route
 * answers with.  A response body is either collected (bounded) or, for
 * 2xx answers when a sink is given, handed over as it arrives.
 */
#ifndef SPARKPLANE_CLI_HTTP_H
#define SPARKPLANE_CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* The most of one response body that is kept in memory. */
#define CLI_HTTP_MAX_BODY (64u * 1024u * 1024u)

typedef struct cli_http cli_http;

typedef struct cli_http_response {
    long status;
    char *body;              /* NUL-terminated; not filled for bodies a sink consumed */
    size_t len;
    int64_t next_offset;     /* X-Next-Offset, or -1 */
    int log_complete;        /* X-Log-Complete: 1 true, 0 false, -1 absent */
    size_t streamed;         /* bytes handed to the sink */
} cli_http_response;

/* Receives 2xx body bytes; returns 0 to go on, non-zero to stop the transfer. */
typedef int (*cli_http_sink)(void *arg, const char *data, size_t len);

/* `server` is a base URL without trailing '/'; token may be "" (none). */
cli_http *cli_http_new(const char *server, const char *token, char *err, size_t err_size);
void cli_http_free(cli_http *http);

typedef struct cli_http_request {
    const char *method;           /* GET, POST, DELETE */
    const char *path;             /* "/api/v1/...", already escaped, with any query */
    const char *body;             /* JSON, or NULL */
    const char *idempotency_key;  /* NULL: no header */
    int streaming;                /* no overall timeout (log following) */
    cli_http_sink sink;           /* NULL: collect the body */
    void *sink_arg;
} cli_http_request;

/*
 * 0 when the server answered (whatever the status); -1 when it could not
 * be reached or the exchange broke, with the reason in err.
 */
int cli_http_perform(cli_http *http, const cli_http_request *request,
                     cli_http_response *response, char *err, size_t err_size);
void cli_http_response_clear(cli_http_response *response);

/* A URL-escaped copy of one path segment or query value (malloc'd). */
char *cli_http_escape(cli_http *http, const char *text);

#endif
