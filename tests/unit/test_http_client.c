/*
 * test_http_client.c - the HTTP client against real servers on the same
 * event loop: libevent's evhttp on 127.0.0.1:0 and on a unix socket, and
 * `openssl s_server` (child process) for TLS with client certificates.
 *
 * Each test runs the loop until the expected callbacks arrived or a
 * deadline passed, then checks what a caller would see: status, body,
 * error message, and what the server received.
 */
#include "unit_test.h"

#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG_BODY_BYTES (1024 * 1024)

/* ---- the servers -------------------------------------------------------- */

typedef struct test_server {
    struct event_base *base;
    struct evhttp *http, *unix_http;
    int port;
    char dir[64], socket_path[100];
    char authorization[512], amz_date[64], amz_token[128];
    int hanging; /* requests the server never answers */
} test_server;

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

static void copy_header(struct evhttp_request *req, const char *name, char *out, size_t size)
{
    const char *value = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(out, size, "%s", value != NULL ? value : "");
}

/* "METHOD|X-Test|uri|" then the request body, byte for byte. */
static void serve_echo(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    char x_test[128];
    copy_header(req, "X-Test", x_test, sizeof(x_test));
    evbuffer_add_printf(out, "%s|%s|%s|", method_name(evhttp_request_get_command(req)), x_test,
                        evhttp_request_get_uri(req));
    evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void serve_big(struct evhttp_request *req, bool chunked)
{
    static char block[64 * 1024];
    struct evbuffer *out = evbuffer_new();
    memset(block, 'b', sizeof(block));
    if (!chunked) {
        for (int i = 0; i < BIG_BODY_BYTES / (int)sizeof(block); i++)
            evbuffer_add(out, block, sizeof(block));
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    /* Chunked: no Content-Length, so only counting the bytes can stop it. */
    evhttp_send_reply_start(req, 200, "OK");
    for (int i = 0; i < BIG_BODY_BYTES / (int)sizeof(block); i++) {
        evbuffer_add(out, block, sizeof(block));
        evhttp_send_reply_chunk(req, out);
    }
    evhttp_send_reply_end(req);
    evbuffer_free(out);
}

static void serve_request(struct evhttp_request *req, void *arg)
{
    test_server *server = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL)
        path = "";
    if (strcmp(path, "/echo") == 0) {
        serve_echo(req);
    } else if (strcmp(path, "/big") == 0 || strcmp(path, "/chunked") == 0) {
        serve_big(req, strcmp(path, "/chunked") == 0);
    } else if (strcmp(path, "/hang") == 0) {
        server->hanging++;
    } else if (strcmp(path, "/redirect") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/echo");
        evhttp_send_reply(req, 302, "Found", NULL);
    } else if (strcmp(path, "/sigv4") == 0) {
        copy_header(req, "Authorization", server->authorization, sizeof(server->authorization));
        copy_header(req, "X-Amz-Date", server->amz_date, sizeof(server->amz_date));
        copy_header(req, "X-Amz-Security-Token", server->amz_token, sizeof(server->amz_token));
        evhttp_send_reply(req, 200, "OK", NULL);
    } else {
        evhttp_send_error(req, 404, NULL);
    }
}

static struct evhttp *server_http_new(test_server *server)
{
    struct evhttp *http = evhttp_new(server->base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http, serve_request, server);
    return http;
}

static bool server_bind_unix(test_server *server)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(server->socket_path, sizeof(server->socket_path), "%s/http.sock", server->dir);
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", server->socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    /* backlog -1: libevent picks one and calls listen() itself. */
    struct evconnlistener *listener =
        evconnlistener_new(server->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                           -1, fd);
    if (listener == NULL) {
        close(fd);
        return false;
    }
    server->unix_http = server_http_new(server);
    return evhttp_bind_listener(server->unix_http, listener) != NULL;
}

static bool server_start(test_server *server, struct event_base *base)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    memset(server, 0, sizeof(*server));
    server->base = base;
    snprintf(server->dir, sizeof(server->dir), "/tmp/sparkplane-http-XXXXXX");
    if (mkdtemp(server->dir) == NULL)
        return false;
    server->http = server_http_new(server);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(server->http, "127.0.0.1", 0);
    if (bound == NULL ||
        getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&addr, &len) != 0)
        return false;
    server->port = ntohs(addr.sin_port);
    return server_bind_unix(server);
}

static void server_stop(test_server *server)
{
    if (server->http != NULL)
        evhttp_free(server->http);
    if (server->unix_http != NULL)
        evhttp_free(server->unix_http);
    unlink(server->socket_path);
    rmdir(server->dir);
}

/* ---- the client side ------------------------------------------------------ */

typedef struct result {
    int calls;
    int status;
    long http_status;
    char *body;
    size_t body_len;
    char error[512];
} result;

static int completed; /* callbacks of every test, for run_until */

static void record_done(void *arg, const sp_http_response *response)
{
    result *r = arg;
    r->calls++;
    completed++;
    r->status = response->status;
    r->http_status = response->http_status;
    free(r->body);
    r->body = malloc(response->body_len + 1);
    memcpy(r->body, response->body, response->body_len + 1); /* with its NUL */
    r->body_len = response->body_len;
    snprintf(r->error, sizeof(r->error), "%s", response->error_message);
}

static void result_clear(result *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

static void run_until(struct event_base *base, const int *count, int want, int timeout_ms)
{
    bool expired = false;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct event *deadline = evtimer_new(base, on_deadline, &expired);
    evtimer_add(deadline, &tv);
    while (*count < want && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(deadline);
}

static void run_for(struct event_base *base, int ms)
{
    int never = 0;
    run_until(base, &never, 1, ms);
}

/* One test's world: a loop, the servers and a client. */
typedef struct fixture {
    struct event_base *base;
    test_server server;
    http_client *client;
    char url[256];
} fixture;

static bool fixture_start(fixture *f)
{
    memset(f, 0, sizeof(*f));
    /* The daemon ignores SIGPIPE too: the server writes to clients that gave up. */
    signal(SIGPIPE, SIG_IGN);
    f->base = event_base_new();
    if (f->base == NULL || !server_start(&f->server, f->base))
        return false;
    f->client = http_client_new(f->base);
    return f->client != NULL;
}

static void fixture_stop(fixture *f)
{
    http_client_free(f->client);
    server_stop(&f->server);
    event_base_free(f->base);
}

static const char *fixture_url(fixture *f, const char *path)
{
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d%s", f->server.port, path);
    return f->url;
}

/* Starts a request and runs the loop until it completed. */
static void request_and_wait(fixture *f, const sp_http_request *request, result *r)
{
    char err[256] = "";
    int rc = http_client_request(f->client, f, request, record_done, r, NULL, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, SP_OK);
    if (rc != SP_OK) {
        fprintf(stderr, "request failed: %s\n", err);
        return;
    }
    run_until(f->base, &r->calls, 1, 15000);
    CU_ASSERT_EQUAL(r->calls, 1);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_get_and_post_round_trip(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    const char *headers[] = {"X-Test: 42", NULL};
    sp_http_request get = {.size = sizeof(get), .url = fixture_url(&f, "/echo?q=1"),
                           .headers = headers};
    request_and_wait(&f, &get, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK);
    CU_ASSERT_EQUAL(r.http_status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "GET|42|/echo?q=1|");
    CU_ASSERT_STRING_EQUAL(r.error, "");
    result_clear(&r);

    /* A binary body: the NUL in the middle must travel too. */
    static const char body[] = {'h', 'i', '\0', 'x'};
    sp_http_request post = {.size = sizeof(post), .method = "POST",
                            .url = fixture_url(&f, "/echo"), .headers = headers, .body = body,
                            .body_len = sizeof(body)};
    request_and_wait(&f, &post, &r);
    CU_ASSERT_EQUAL(r.http_status, 200);
    CU_ASSERT_EQUAL(r.body_len, strlen("POST|42|/echo|") + sizeof(body));
    CU_ASSERT(r.body_len >= 4 && memcmp(r.body + r.body_len - 4, body, 4) == 0);
    result_clear(&r);

    sp_http_request patch = {.size = sizeof(patch), .method = "PATCH",
                             .url = fixture_url(&f, "/echo"), .body = "{}", .body_len = 2};
    request_and_wait(&f, &patch, &r);
    CU_ASSERT_STRING_EQUAL(r.body, "PATCH||/echo|{}");
    result_clear(&r);

    sp_http_request del = {.size = sizeof(del), .method = "DELETE",
                           .url = fixture_url(&f, "/echo")};
    request_and_wait(&f, &del, &r);
    CU_ASSERT_STRING_EQUAL(r.body, "DELETE||/echo|");
    result_clear(&r);
    CU_ASSERT_EQUAL(http_client_active(f.client), 0);
    fixture_stop(&f);
}

/* The caller's strings may be gone as soon as http_client_request returns. */
static void test_request_is_copied(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    char *url = strdup(fixture_url(&f, "/echo"));
    char *header = strdup("X-Test: copied");
    char *body = strdup("payload");
    const char **headers = calloc(2, sizeof(*headers));
    headers[0] = header;
    sp_http_request *request = calloc(1, sizeof(*request));
    *request = (sp_http_request){.size = sizeof(*request), .method = "PUT", .url = url,
                                 .headers = headers, .body = body, .body_len = strlen(body)};
    char err[256];
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_OK);
    free(url);
    free(header);
    free(body);
    free(headers);
    free(request);
    run_until(f.base, &r.calls, 1, 5000);
    CU_ASSERT_EQUAL(r.calls, 1);
    CU_ASSERT_STRING_EQUAL(r.body, "PUT|copied|/echo|payload");
    result_clear(&r);
    fixture_stop(&f);
}

static void test_status_404_and_no_redirect(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = fixture_url(&f, "/nothing")};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK); /* an answer arrived; its status says what */
    CU_ASSERT_EQUAL(r.http_status, 404);
    result_clear(&r);
    request.url = fixture_url(&f, "/redirect");
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.http_status, 302);
    result_clear(&r);
    fixture_stop(&f);
}

static void test_unix_socket(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = "http://localhost/echo?via=unix",
                               .unix_socket = f.server.socket_path};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK);
    CU_ASSERT_EQUAL(r.http_status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "GET||/echo?via=unix|");
    result_clear(&r);
    fixture_stop(&f);
}

static void test_max_response_bytes(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = fixture_url(&f, "/big")};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.http_status, 200);
    CU_ASSERT_EQUAL(r.body_len, BIG_BODY_BYTES); /* the 16 MiB default lets it through */
    result_clear(&r);

    request.max_response_bytes = 1000;
    request_and_wait(&f, &request, &r);
    CU_ASSERT_NOT_EQUAL(r.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(r.error, "response body exceeds max_response_bytes (1000 bytes)");
    result_clear(&r);

    request.url = fixture_url(&f, "/chunked");
    request.max_response_bytes = 100000;
    request_and_wait(&f, &request, &r);
    CU_ASSERT_NOT_EQUAL(r.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(r.error, "response body exceeds max_response_bytes (100000 bytes)");
    result_clear(&r);
    fixture_stop(&f);
}

static void test_timeout(void)
{
    fixture f;
    result r = {0};
    struct timespec start, end;
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = fixture_url(&f, "/hang"),
                               .timeout_ms = 300};
    clock_gettime(CLOCK_MONOTONIC, &start);
    request_and_wait(&f, &request, &r);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long elapsed_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
    CU_ASSERT_EQUAL(f.server.hanging, 1);
    CU_ASSERT_EQUAL(r.status, SP_UNAVAILABLE);
    CU_ASSERT_EQUAL(r.http_status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.error, "timed out"));
    CU_ASSERT(elapsed_ms >= 250 && elapsed_ms < 5000);
    result_clear(&r);
    fixture_stop(&f);
}

static int free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void test_connection_refused_and_bad_scheme(void)
{
    fixture f;
    result r = {0};
    char url[64];
    CU_ASSERT_FATAL(fixture_start(&f));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", free_port());
    sp_http_request request = {.size = sizeof(request), .url = url};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_UNAVAILABLE);
    CU_ASSERT_EQUAL(r.http_status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.error, "onnect")); /* "Failed to connect ..." */
    result_clear(&r);

    /* Only http and https: a plugin cannot read local files through the client. */
    request.url = "file:///etc/passwd";
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_ERROR);
    CU_ASSERT_EQUAL(r.body_len, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.error, "file"));
    result_clear(&r);
    fixture_stop(&f);
}

static void test_invalid_requests(void)
{
    fixture f;
    result r = {0};
    char err[256] = "";
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request)};
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_INVALID);
    CU_ASSERT_STRING_EQUAL(err, "request.url is required");
    request.url = fixture_url(&f, "/echo");
    request.method = "BREW";
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_INVALID);
    CU_ASSERT_STRING_EQUAL(err, "request.method 'BREW' is not supported");
    request.method = "POST";
    request.body_len = 5;
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "request.body"));
    const char *bad_headers[] = {"X-Test: ok", "no colon here", NULL};
    request = (sp_http_request){.size = sizeof(request), .url = f.url, .headers = bad_headers};
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "request.headers[1]"));
    CU_ASSERT_EQUAL(http_client_active(f.client), 0);
    run_for(f.base, 50);
    CU_ASSERT_EQUAL(r.calls, 0);
    fixture_stop(&f);
}

/* An older caller's struct ends before `headers`: what lies beyond is not read. */
static void test_short_request_ignores_later_fields(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = offsetof(sp_http_request, headers),
                               .url = fixture_url(&f, "/echo"),
                               .headers = (const char *const *)(uintptr_t)8,
                               .unix_socket = "/nonexistent/socket",
                               .timeout_ms = 1};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(r.body, "GET||/echo|");
    result_clear(&r);
    fixture_stop(&f);
}

static void test_cancel_runs_no_callback(void)
{
    fixture f;
    result cancelled = {0}, owned[3] = {{0}}, other = {0};
    sp_http_call *call = NULL;
    char err[256];
    int owner_a, owner_b;
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = fixture_url(&f, "/echo")};
    CU_ASSERT_EQUAL(http_client_request(f.client, &owner_a, &request, record_done, &cancelled,
                                        &call, err, sizeof(err)),
                    SP_OK);
    CU_ASSERT_PTR_NOT_NULL(call);
    http_client_cancel(call);
    for (int i = 0; i < 3; i++)
        http_client_request(f.client, &owner_a, &request, record_done, &owned[i], NULL, err,
                            sizeof(err));
    http_client_request(f.client, &owner_b, &request, record_done, &other, NULL, err,
                        sizeof(err));
    CU_ASSERT_EQUAL(http_client_active(f.client), 4);
    http_client_cancel_owner(f.client, &owner_a);
    CU_ASSERT_EQUAL(http_client_active(f.client), 1);
    run_until(f.base, &other.calls, 1, 5000);
    run_for(f.base, 100);
    CU_ASSERT_EQUAL(other.calls, 1);
    CU_ASSERT_EQUAL(other.http_status, 200);
    CU_ASSERT_EQUAL(cancelled.calls, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(owned[i].calls, 0);
    CU_ASSERT_EQUAL(http_client_active(f.client), 0);
    result_clear(&other);
    fixture_stop(&f);
}

/* A callback that cancels a call in flight and starts another one. */
typedef struct reentrant {
    fixture *f;
    sp_http_call *to_cancel;
    result first, cancelled, started;
} reentrant;

static void reentrant_done(void *arg, const sp_http_response *response)
{
    reentrant *state = arg;
    char err[256];
    record_done(&state->first, response);
    http_client_cancel(state->to_cancel);
    sp_http_request next = {.size = sizeof(next), .url = fixture_url(state->f, "/echo?next")};
    CU_ASSERT_EQUAL(http_client_request(state->f->client, NULL, &next, record_done,
                                        &state->started, NULL, err, sizeof(err)),
                    SP_OK);
}

static void test_callback_may_cancel_and_start(void)
{
    fixture f;
    reentrant state = {.f = &f};
    char err[256];
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request hang = {.size = sizeof(hang), .url = fixture_url(&f, "/hang")};
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &hang, record_done, &state.cancelled,
                                        &state.to_cancel, err, sizeof(err)),
                    SP_OK);
    sp_http_request first = {.size = sizeof(first), .url = fixture_url(&f, "/echo")};
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &first, reentrant_done, &state, NULL,
                                        err, sizeof(err)),
                    SP_OK);
    run_until(f.base, &state.started.calls, 1, 5000);
    CU_ASSERT_EQUAL(state.first.calls, 1);
    CU_ASSERT_EQUAL(state.started.calls, 1);
    CU_ASSERT_STRING_EQUAL(state.started.body, "GET||/echo?next|");
    CU_ASSERT_EQUAL(state.cancelled.calls, 0);
    CU_ASSERT_EQUAL(http_client_active(f.client), 0);
    result_clear(&state.first);
    result_clear(&state.started);
    fixture_stop(&f);
}

static void test_aws_sigv4(void)
{
    fixture f;
    result r = {0};
    CU_ASSERT_FATAL(fixture_start(&f));
    sp_http_request request = {.size = sizeof(request), .url = fixture_url(&f, "/sigv4"),
                               .aws_sigv4 = "aws:amz:us-east-1:emr-containers",
                               .aws_access_key_id = "AKID",
                               .aws_secret_access_key = "SECRET",
                               .aws_session_token = "SESSION-TOKEN"};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.http_status, 200);
    const char *prefix = "AWS4-HMAC-SHA256 Credential=AKID/";
    CU_ASSERT_EQUAL(strncmp(f.server.authorization, prefix, strlen(prefix)), 0);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(f.server.authorization, "/us-east-1/emr-containers/aws4_request"));
    CU_ASSERT_PTR_NOT_NULL(strstr(f.server.authorization, "Signature="));
    CU_ASSERT_EQUAL(strlen(f.server.amz_date), 16); /* 20240102T030405Z */
    CU_ASSERT_STRING_EQUAL(f.server.amz_token, "SESSION-TOKEN");
    result_clear(&r);

    char err[256] = "";
    request.aws_secret_access_key = NULL;
    CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &r, NULL, err,
                                        sizeof(err)),
                    SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "aws_secret_access_key"));
    fixture_stop(&f);
}

#define CONCURRENT 50

static void test_many_concurrent_requests(void)
{
    fixture f;
    static result results[CONCURRENT];
    static char urls[CONCURRENT][128];
    char err[256];
    CU_ASSERT_FATAL(fixture_start(&f));
    int target = completed + CONCURRENT;
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(urls[i], sizeof(urls[i]), "http://127.0.0.1:%d/echo?n=%d", f.server.port, i);
        sp_http_request request = {.size = sizeof(request), .url = urls[i]};
        CU_ASSERT_EQUAL(http_client_request(f.client, NULL, &request, record_done, &results[i],
                                            NULL, err, sizeof(err)),
                        SP_OK);
    }
    CU_ASSERT_EQUAL(http_client_active(f.client), CONCURRENT);
    run_until(f.base, &completed, target, 20000);
    for (int i = 0; i < CONCURRENT; i++) {
        char want[64];
        snprintf(want, sizeof(want), "GET||/echo?n=%d|", i);
        CU_ASSERT_EQUAL(results[i].calls, 1);
        CU_ASSERT_EQUAL(results[i].http_status, 200);
        CU_ASSERT(results[i].body != NULL && strcmp(results[i].body, want) == 0);
        result_clear(&results[i]);
    }
    CU_ASSERT_EQUAL(http_client_active(f.client), 0);
    fixture_stop(&f);
}

/* ---- TLS with client certificates (openssl s_server child) ---------------- */

typedef struct tls_server {
    char dir[64];
    char ca[128], client_cert[128], client_key[128];
    int port;
    pid_t pid;
} tls_server;

static bool tls_make_certs(tls_server *tls)
{
    char command[2048];
    snprintf(command, sizeof(command),
             "cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=sparkplane-test-ca && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
             ">server.ext && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile server.ext && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout client.key -out client.csr -subj /CN=sparkplane-client && "
             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && "
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out client.pem -days 2 -extfile client.ext",
             tls->dir);
    /* Quiet on success; a failure shows openssl's own words. */
    char quiet[2400];
    snprintf(quiet, sizeof(quiet), "(%s) >%s/openssl.log 2>&1 || cat %s/openssl.log >&2",
             command, tls->dir, tls->dir);
    if (system(quiet) != 0)
        return false;
    snprintf(tls->ca, sizeof(tls->ca), "%s/ca.pem", tls->dir);
    snprintf(tls->client_cert, sizeof(tls->client_cert), "%s/client.pem", tls->dir);
    snprintf(tls->client_key, sizeof(tls->client_key), "%s/client.key", tls->dir);
    return access(tls->client_cert, R_OK) == 0;
}

static bool tls_wait_for_port(int port, int timeout_ms)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
        close(fd);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

static bool tls_server_start(tls_server *tls)
{
    char accept_arg[64], cert[128], key[128];
    memset(tls, 0, sizeof(*tls));
    snprintf(tls->dir, sizeof(tls->dir), "/tmp/sparkplane-tls-XXXXXX");
    if (mkdtemp(tls->dir) == NULL || !tls_make_certs(tls))
        return false;
    tls->port = free_port();
    snprintf(accept_arg, sizeof(accept_arg), "127.0.0.1:%d", tls->port);
    snprintf(cert, sizeof(cert), "%s/server.pem", tls->dir);
    snprintf(key, sizeof(key), "%s/server.key", tls->dir);
    tls->pid = fork();
    if (tls->pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("openssl", "openssl", "s_server", "-accept", accept_arg, "-www", "-Verify", "1",
               "-cert", cert, "-key", key, "-CAfile", tls->ca, (char *)NULL);
        _exit(127);
    }
    return tls->pid > 0 && tls_wait_for_port(tls->port, 10000);
}

static void tls_server_stop(tls_server *tls)
{
    char command[256];
    if (tls->pid > 0) {
        kill(tls->pid, SIGTERM);
        waitpid(tls->pid, NULL, 0);
    }
    snprintf(command, sizeof(command), "rm -rf '%s'", tls->dir);
    if (system(command) != 0)
        fprintf(stderr, "cannot remove %s\n", tls->dir);
}

static void test_tls_client_certificate(void)
{
    fixture f;
    tls_server tls;
    result r = {0};
    char url[64];
    CU_ASSERT_FATAL(fixture_start(&f));
    bool started = tls_server_start(&tls);
    CU_ASSERT(started);
    if (!started)
        goto done;
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", tls.port);
    sp_http_request request = {.size = sizeof(request), .url = url, .ca_file = tls.ca,
                               .client_cert = tls.client_cert, .client_key = tls.client_key,
                               .timeout_ms = 10000};
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK);
    CU_ASSERT_EQUAL(r.http_status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "s_server"));
    if (r.status != SP_OK)
        fprintf(stderr, "TLS request failed: %s\n", r.error);
    result_clear(&r);

    /* The server demands a client certificate. */
    request.client_cert = request.client_key = NULL;
    request_and_wait(&f, &request, &r);
    CU_ASSERT_NOT_EQUAL(r.status, SP_OK);
    CU_ASSERT_NOT_EQUAL(r.error[0], '\0');
    result_clear(&r);

    /* Our CA is not in the system store: no ca_file, no trust... */
    request.client_cert = tls.client_cert;
    request.client_key = tls.client_key;
    request.ca_file = NULL;
    request_and_wait(&f, &request, &r);
    CU_ASSERT_NOT_EQUAL(r.status, SP_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.error, "certificate"));
    result_clear(&r);

    /* ...unless verification is switched off. */
    request.insecure_skip_tls_verify = 1;
    request_and_wait(&f, &request, &r);
    CU_ASSERT_EQUAL(r.status, SP_OK);
    CU_ASSERT_EQUAL(r.http_status, 200);
    result_clear(&r);
done:
    tls_server_stop(&tls);
    fixture_stop(&f);
}

static const unit_test_case cases[] = {
    {"GET, POST, PATCH, DELETE round trip with headers and body", test_get_and_post_round_trip},
    {"the request is copied", test_request_is_copied},
    {"404 is an answer; redirects are not followed", test_status_404_and_no_redirect},
    {"a request over a unix socket", test_unix_socket},
    {"max_response_bytes aborts large answers", test_max_response_bytes},
    {"a server that never answers times out", test_timeout},
    {"connection refused and non-http schemes fail", test_connection_refused_and_bad_scheme},
    {"invalid requests are refused naming the field", test_invalid_requests},
    {"a short request ignores fields it does not cover", test_short_request_ignores_later_fields},
    {"cancelled calls run no callback", test_cancel_runs_no_callback},
    {"a callback may cancel and start calls", test_callback_may_cancel_and_start},
    {"AWS SigV4 signs the request", test_aws_sigv4},
    {"50 concurrent requests all complete", test_many_concurrent_requests},
    {"TLS with a client certificate", test_tls_client_certificate},
    {NULL, NULL}};

UNIT_TEST_MAIN("http_client", cases)
