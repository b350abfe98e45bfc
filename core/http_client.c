/*
 * http_client.c - outbound HTTP: libcurl's multi interface driven by the
 * libevent loop.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * to wake it up (CURLMOPT_TIMERFUNCTION).  Each watched socket gets one
 * persistent libevent event, the client has one timer event; both call
 * curl_multi_socket_action() and then drain curl_multi_info_read() to
 * complete the finished calls.  Nothing blocks and no thread is started.
 *
 * A call owns its easy handle, header list and response buffer.  libcurl
 * copies every string option it is given (and COPYPOSTFIELDS copies the
 * body), so the caller's request may be freed as soon as the call returns.
 * A call is unlinked from the client before its callback runs, so the
 * callback may start new calls or cancel others (curl drops a cancelled
 * handle's pending message), but not free the client.
 */
#include "http_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 30000u
#define HTTP_CLIENT_DEFAULT_MAX_RESPONSE ((size_t)16 * 1024 * 1024)

/* One socket curl asked us to watch. */
typedef struct http_socket {
    http_client *client;
    curl_socket_t fd;
    struct event *event;
    struct http_socket *prev, *next;
} http_socket;

struct sp_http_call {
    http_client *client;
    void *owner;
    CURL *easy;
    struct curl_slist *headers;
    sp_http_done_fn done;
    void *arg;
    char *body;
    size_t body_len, body_cap, max_body;
    bool too_large;
    char error[CURL_ERROR_SIZE];
    struct sp_http_call *prev, *next;
};

struct http_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    sp_http_call *calls;
    http_socket *sockets;
    size_t active;
};

/* The request as this host knows it, with fields an older caller lacked zeroed. */
static void http_request_normalize(const sp_http_request *in, sp_http_request *out)
{
    memset(out, 0, sizeof(*out));
    out->size = sizeof(*out);
#define HTTP_COPY_FIELD(field)                                                \
    if (SP_HAS_FIELD(in, sp_http_request, field))                             \
    out->field = in->field
    HTTP_COPY_FIELD(method);
    HTTP_COPY_FIELD(url);
    HTTP_COPY_FIELD(headers);
    HTTP_COPY_FIELD(body);
    HTTP_COPY_FIELD(body_len);
    HTTP_COPY_FIELD(unix_socket);
    HTTP_COPY_FIELD(ca_file);
    HTTP_COPY_FIELD(client_cert);
    HTTP_COPY_FIELD(client_key);
    HTTP_COPY_FIELD(insecure_skip_tls_verify);
    HTTP_COPY_FIELD(aws_sigv4);
    HTTP_COPY_FIELD(aws_access_key_id);
    HTTP_COPY_FIELD(aws_secret_access_key);
    HTTP_COPY_FIELD(aws_session_token);
    HTTP_COPY_FIELD(timeout_ms);
    HTTP_COPY_FIELD(max_response_bytes);
#undef HTTP_COPY_FIELD
}

static bool http_method_known(const char *method)
{
    static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                          "PATCH", "DELETE", "OPTIONS", NULL};
    for (size_t i = 0; methods[i] != NULL; i++)
        if (strcmp(method, methods[i]) == 0)
            return true;
    return false;
}

static bool http_header_valid(const char *header)
{
    const char *colon = strchr(header, ':');
    return colon != NULL && colon != header && strpbrk(header, "\r\n") == NULL;
}

static int http_request_validate(const sp_http_request *request, char *err, size_t err_size)
{
    if (request->url == NULL || request->url[0] == '\0') {
        snprintf(err, err_size, "request.url is required");
        return SP_INVALID;
    }
    if (request->method != NULL && !http_method_known(request->method)) {
        snprintf(err, err_size, "request.method '%s' is not supported", request->method);
        return SP_INVALID;
    }
    if (request->body == NULL && request->body_len > 0) {
        snprintf(err, err_size, "request.body is NULL but request.body_len is %zu",
                 request->body_len);
        return SP_INVALID;
    }
    for (size_t i = 0; request->headers != NULL && request->headers[i] != NULL; i++) {
        if (!http_header_valid(request->headers[i])) {
            snprintf(err, err_size, "request.headers[%zu] is not a 'Name: value' line", i);
            return SP_INVALID;
        }
    }
    if (request->aws_sigv4 != NULL &&
        (request->aws_access_key_id == NULL || request->aws_secret_access_key == NULL)) {
        snprintf(err, err_size,
                 "request.aws_sigv4 needs aws_access_key_id and aws_secret_access_key");
        return SP_INVALID;
    }
    return SP_OK;
}

static size_t http_call_write(char *data, size_t size, size_t count, void *userdata)
{
    sp_http_call *call = userdata;
    size_t len = size * count;
    if (len > call->max_body - call->body_len) {
        call->too_large = true;
        return 0; /* curl aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (call->body_len + len + 1 > call->body_cap) {
        size_t cap = call->body_cap ? call->body_cap : 4096;
        while (cap < call->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(call->body, cap);
        if (grown == NULL)
            return 0;
        call->body = grown;
        call->body_cap = cap;
    }
    memcpy(call->body + call->body_len, data, len);
    call->body_len += len;
    return len;
}

/* Method and body: GET is curl's default, others are named explicitly. */
static CURLcode http_call_set_method(CURL *easy, const sp_http_request *request)
{
    const char *method = request->method ? request->method : "GET";
    bool send_body = request->body_len > 0 || strcmp(method, "POST") == 0 ||
                     strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    CURLcode rc = CURLE_OK;
    if (strcmp(method, "HEAD") == 0)
        return curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    if (send_body) {
        /* The size first: COPYPOSTFIELDS then copies that many bytes (binary safe). */
        rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS,
                                  request->body_len > 0 ? request->body : "");
    }
    if (rc == CURLE_OK && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    return rc;
}

static bool http_headers_have(const char *const *headers, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':')
            return true;
    return false;
}

static int http_call_build_headers(sp_http_call *call, const sp_http_request *request)
{
    struct curl_slist *list = NULL;
    char token_header[4096];
    /* curl waits up to a second for "100 Continue" on large bodies; we never want that. */
    if (!http_headers_have(request->headers, "Expect") &&
        (list = curl_slist_append(list, "Expect:")) == NULL)
        goto fail;
    for (size_t i = 0; request->headers != NULL && request->headers[i] != NULL; i++) {
        struct curl_slist *next = curl_slist_append(list, request->headers[i]);
        if (next == NULL)
            goto fail;
        list = next;
    }
    if (request->aws_sigv4 != NULL && request->aws_session_token != NULL) {
        int n = snprintf(token_header, sizeof(token_header), "X-Amz-Security-Token: %s",
                         request->aws_session_token);
        if (n < 0 || (size_t)n >= sizeof(token_header))
            goto fail;
        struct curl_slist *next = curl_slist_append(list, token_header);
        if (next == NULL)
            goto fail;
        list = next;
    }
    call->headers = list;
    return SP_OK;
fail:
    curl_slist_free_all(list);
    return SP_ERROR;
}

static CURLcode http_call_set_tls(CURL *easy, const sp_http_request *request)
{
    CURLcode rc = CURLE_OK;
    if (request->ca_file != NULL)
        rc = curl_easy_setopt(easy, CURLOPT_CAINFO, request->ca_file);
    if (rc == CURLE_OK && request->client_cert != NULL)
        rc = curl_easy_setopt(easy, CURLOPT_SSLCERT, request->client_cert);
    if (rc == CURLE_OK && request->client_key != NULL)
        rc = curl_easy_setopt(easy, CURLOPT_SSLKEY, request->client_key);
    if (rc == CURLE_OK && request->insecure_skip_tls_verify) {
        rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return rc;
}

static CURLcode http_call_set_aws(CURL *easy, const sp_http_request *request)
{
    CURLcode rc;
    if (request->aws_sigv4 == NULL)
        return CURLE_OK;
    rc = curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, request->aws_sigv4);
    /* USERNAME/PASSWORD rather than USERPWD: a secret may contain ':'. */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_USERNAME, request->aws_access_key_id);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PASSWORD, request->aws_secret_access_key);
    return rc;
}

/* Only http and https, so a URL from config cannot read files or reach other services. */
static CURLcode http_call_set_protocols(CURL *easy)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    return curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    return curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

static CURLcode http_call_set_common(sp_http_call *call, const sp_http_request *request)
{
    CURL *easy = call->easy;
    long timeout = request->timeout_ms ? (long)request->timeout_ms
                                       : (long)HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_URL, request->url);
    if (rc == CURLE_OK)
        rc = http_call_set_protocols(easy);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->error);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, call);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, http_call_write);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    /* Fails early when Content-Length already says the answer is too big. */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_body);
    if (rc == CURLE_OK && call->headers != NULL)
        rc = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
    if (rc == CURLE_OK && request->unix_socket != NULL)
        rc = curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, request->unix_socket);
    return rc;
}

static void http_call_free(sp_http_call *call)
{
    if (call == NULL)
        return;
    if (call->easy != NULL)
        curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    free(call->body);
    free(call);
}

static sp_http_call *http_call_create(const sp_http_request *request, char *err,
                                      size_t err_size)
{
    CURLcode rc;
    sp_http_call *call = calloc(1, sizeof(*call));
    if (call == NULL || (call->easy = curl_easy_init()) == NULL) {
        snprintf(err, err_size, "out of memory for an HTTP call");
        goto fail;
    }
    call->max_body = request->max_response_bytes ? request->max_response_bytes
                                                 : HTTP_CLIENT_DEFAULT_MAX_RESPONSE;
    if (http_call_build_headers(call, request) != SP_OK) {
        snprintf(err, err_size, "cannot build the request headers");
        goto fail;
    }
    rc = http_call_set_common(call, request);
    if (rc == CURLE_OK)
        rc = http_call_set_method(call->easy, request);
    if (rc == CURLE_OK)
        rc = http_call_set_tls(call->easy, request);
    if (rc == CURLE_OK)
        rc = http_call_set_aws(call->easy, request);
    if (rc != CURLE_OK) {
        snprintf(err, err_size, "cannot set up the request to '%s': %s", request->url,
                 curl_easy_strerror(rc));
        goto fail;
    }
    return call;
fail:
    http_call_free(call);
    return NULL;
}

static void http_client_link(http_client *client, sp_http_call *call)
{
    call->next = client->calls;
    if (client->calls != NULL)
        client->calls->prev = call;
    client->calls = call;
    client->active++;
}

/* Takes a call out of the multi handle and the list; no callback. */
static void http_client_unlink(http_client *client, sp_http_call *call)
{
    curl_multi_remove_handle(client->multi, call->easy);
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        client->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    client->active--;
}

static int http_result_status(CURLcode result)
{
    switch (result) {
    case CURLE_OK:
        return SP_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
        return SP_UNAVAILABLE;
    default:
        return SP_ERROR;
    }
}

static void http_call_complete(sp_http_call *call, CURLcode result)
{
    sp_http_response response = {.size = sizeof(response)};
    char too_large[128];
    http_client_unlink(call->client, call);
    call->client = NULL; /* a callback cancelling its own call is then harmless */
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &response.http_status);
    response.status = http_result_status(result);
    response.body = call->body != NULL ? call->body : "";
    response.body_len = call->body_len;
    if (call->body != NULL)
        call->body[call->body_len] = '\0';
    response.error_message = call->error;
    if (call->too_large || result == CURLE_FILESIZE_EXCEEDED) {
        snprintf(too_large, sizeof(too_large),
                 "response body exceeds max_response_bytes (%zu bytes)", call->max_body);
        response.error_message = too_large;
    } else if (result != CURLE_OK && call->error[0] == '\0') {
        response.error_message = curl_easy_strerror(result);
    } else if (result == CURLE_OK) {
        response.error_message = "";
    }
    if (call->done != NULL)
        call->done(call->arg, &response);
    http_call_free(call);
}

/* Completes every finished transfer; re-reads the queue after each callback. */
static void http_client_drain(http_client *client)
{
    CURLMsg *message;
    int pending;
    while ((message = curl_multi_info_read(client->multi, &pending)) != NULL) {
        sp_http_call *call = NULL;
        if (message->msg != CURLMSG_DONE)
            continue;
        CURLcode result = message->data.result;
        curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        if (call != NULL)
            http_call_complete(call, result);
    }
}

static void http_client_on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    http_client *client = arg;
    int running = 0;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
                ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(client->multi, fd, flags, &running);
    http_client_drain(client);
}

static void http_client_on_timer(evutil_socket_t fd, short what, void *arg)
{
    http_client *client = arg;
    int running = 0;
    curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_client_drain(client);
}

static void http_socket_free(http_client *client, http_socket *socket)
{
    if (socket->prev != NULL)
        socket->prev->next = socket->next;
    else
        client->sockets = socket->next;
    if (socket->next != NULL)
        socket->next->prev = socket->prev;
    event_free(socket->event);
    free(socket);
}

static http_socket *http_socket_create(http_client *client, curl_socket_t fd)
{
    http_socket *socket = calloc(1, sizeof(*socket));
    if (socket == NULL)
        return NULL;
    socket->client = client;
    socket->fd = fd;
    socket->event = event_new(client->base, fd, EV_READ | EV_PERSIST,
                              http_client_on_socket_event, client);
    if (socket->event == NULL) {
        free(socket);
        return NULL;
    }
    socket->next = client->sockets;
    if (client->sockets != NULL)
        client->sockets->prev = socket;
    client->sockets = socket;
    curl_multi_assign(client->multi, fd, socket);
    return socket;
}

/* CURLMOPT_SOCKETFUNCTION: (re)arm or drop the one event of a socket. */
static int http_client_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                                      void *socketp)
{
    http_client *client = userp;
    http_socket *socket = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (socket != NULL)
            http_socket_free(client, socket);
        return 0;
    }
    if (socket == NULL && (socket = http_socket_create(client, fd)) == NULL)
        return -1;
    short events = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                   ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    event_del(socket->event);
    event_assign(socket->event, client->base, fd, events, http_client_on_socket_event, client);
    return event_add(socket->event, NULL) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: curl must not be re-entered here, so arm the timer. */
static int http_client_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    http_client *client = userp;
    if (timeout_ms < 0)
        return evtimer_del(client->timer) == 0 ? 0 : -1;
    struct timeval delay = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(client->timer, &delay) == 0 ? 0 : -1;
}

static bool http_client_global_init(void)
{
    /* curl_global_init is not thread-safe in older curl: do it once, from the loop. */
    static bool done;
    if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        done = true;
    return done;
}

http_client *http_client_new(struct event_base *base)
{
    http_client *client = NULL;
    if (base == NULL || !http_client_global_init())
        return NULL;
    if ((client = calloc(1, sizeof(*client))) == NULL)
        return NULL;
    client->base = base;
    client->multi = curl_multi_init();
    client->timer = evtimer_new(base, http_client_on_timer, client);
    if (client->multi == NULL || client->timer == NULL)
        goto fail;
    if (curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, http_client_on_curl_socket) ||
        curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client) ||
        curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, http_client_on_curl_timer) ||
        curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client))
        goto fail;
    return client;
fail:
    http_client_free(client);
    return NULL;
}

void http_client_free(http_client *client)
{
    if (client == NULL)
        return;
    while (client->calls != NULL) {
        sp_http_call *call = client->calls;
        http_client_unlink(client, call);
        http_call_free(call);
    }
    /* Cleanup may still call back into our socket and timer functions. */
    if (client->multi != NULL)
        curl_multi_cleanup(client->multi);
    while (client->sockets != NULL)
        http_socket_free(client, client->sockets);
    if (client->timer != NULL)
        event_free(client->timer);
    free(client);
}

int http_client_request(http_client *client, void *owner, const sp_http_request *request,
                        sp_http_done_fn done, void *arg, sp_http_call **call_out,
                        char *err, size_t err_size)
{
    sp_http_request normalized;
    sp_http_call *call = NULL;
    int status;
    if (call_out != NULL)
        *call_out = NULL;
    if (client == NULL || request == NULL || done == NULL) {
        snprintf(err, err_size, "http_client_request needs a client, a request and a callback");
        return SP_INVALID;
    }
    http_request_normalize(request, &normalized);
    if ((status = http_request_validate(&normalized, err, err_size)) != SP_OK)
        return status;
    if ((call = http_call_create(&normalized, err, err_size)) == NULL)
        return SP_ERROR;
    call->client = client;
    call->owner = owner;
    call->done = done;
    call->arg = arg;
    /* Adding only arms the timer: the transfer starts, and `done` runs, from the loop. */
    CURLMcode mrc = curl_multi_add_handle(client->multi, call->easy);
    if (mrc != CURLM_OK) {
        snprintf(err, err_size, "cannot start the request to '%s': %s", normalized.url,
                 curl_multi_strerror(mrc));
        http_call_free(call);
        return SP_ERROR;
    }
    http_client_link(client, call);
    if (call_out != NULL)
        *call_out = call;
    return SP_OK;
}

void http_client_cancel(sp_http_call *call)
{
    if (call == NULL || call->client == NULL)
        return;
    http_client_unlink(call->client, call);
    http_call_free(call);
}

void http_client_cancel_owner(http_client *client, void *owner)
{
    sp_http_call *call, *next;
    if (client == NULL)
        return;
    /* Cancelling runs no callback, so `next` stays valid. */
    for (call = client->calls; call != NULL; call = next) {
        next = call->next;
        if (call->owner == owner)
            http_client_cancel(call);
    }
}

size_t http_client_active(const http_client *client)
{
    return client != NULL ? client->active : 0;
}
