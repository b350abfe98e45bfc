/*
 * cli_http.c - libcurl's easy interface, set up once per run.
 *
 * A CLI waits for each answer anyway, so the easy (blocking) interface is
 * the simple and right tool here; the daemon's asynchronous client is for
 * the event loop.  Connection problems come back as -1 with curl's own
 * words ("Failed to connect to 127.0.0.1 port 8080 ...") so the caller can
 * exit 3; any HTTP answer, even 500, is a response.
 */
#include "cli_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "units.h"

#define HTTP_CONNECT_TIMEOUT_S 10L
#define HTTP_REQUEST_TIMEOUT_S 60L

struct cli_http {
    CURL *curl;
    char *server;
    char *authorization;     /* "Authorization: Bearer ...", or NULL */
    char user_agent[64];
};

/* What the callbacks fill during one transfer. */
typedef struct http_transfer {
    cli_http *http;
    const cli_http_request *request;
    cli_http_response *response;
    int too_large;
    int sink_stopped;
} http_transfer;

cli_http *cli_http_new(const char *server, const char *token, char *err, size_t err_size)
{
    cli_http *http = calloc(1, sizeof *http);
    if (http == NULL || (http->server = strdup(server)) == NULL)
        goto fail;
    if (token != NULL && token[0] != '\0') {
        size_t size = strlen(token) + sizeof "Authorization: Bearer ";
        if ((http->authorization = malloc(size)) == NULL)
            goto fail;
        snprintf(http->authorization, size, "Authorization: Bearer %s", token);
    }
    snprintf(http->user_agent, sizeof http->user_agent, "sparkplane-cli/%s", PACKAGE_VERSION);
    if ((http->curl = curl_easy_init()) == NULL)
        goto fail;
    return http;
fail:
    snprintf(err, err_size, "cannot set up the HTTP client (out of memory)");
    cli_http_free(http);
    return NULL;
}

void cli_http_free(cli_http *http)
{
    if (http == NULL)
        return;
    if (http->curl != NULL)
        curl_easy_cleanup(http->curl);
    if (http->authorization != NULL) /* the token should not linger in freed memory */
        memset(http->authorization, 0, strlen(http->authorization));
    free(http->authorization);
    free(http->server);
    free(http);
}

char *cli_http_escape(cli_http *http, const char *text)
{
    char *escaped = curl_easy_escape(http->curl, text, 0);
    char *copy = escaped != NULL ? strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}

void cli_http_response_clear(cli_http_response *response)
{
    free(response->body);
    memset(response, 0, sizeof *response);
    response->next_offset = -1;
    response->log_complete = -1;
}

/* Stores a header value we care about; the line is "Name: value\r\n". */
static size_t http_on_header(char *line, size_t size, size_t count, void *arg)
{
    http_transfer *transfer = arg;
    size_t len = size * count;
    char value[64];
    if (len > 8 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue): forget earlier headers. */
        transfer->response->next_offset = -1;
        transfer->response->log_complete = -1;
        return len;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - line);
    size_t start = name_len + 1;
    while (start < len && (line[start] == ' ' || line[start] == '\t'))
        start++;
    size_t end = len;
    while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
        end--;
    if (end - start >= sizeof value)
        return len;
    memcpy(value, line + start, end - start);
    value[end - start] = '\0';
    if (name_len == 13 && strncasecmp(line, "X-Next-Offset", 13) == 0) {
        int64_t offset;
        if (units_parse_int64(value, &offset) == 0 && offset >= 0)
            transfer->response->next_offset = offset;
    } else if (name_len == 14 && strncasecmp(line, "X-Log-Complete", 14) == 0) {
        transfer->response->log_complete = strcasecmp(value, "true") == 0 ||
                                           strcmp(value, "1") == 0;
    }
    return len;
}

static size_t http_on_body(char *data, size_t size, size_t count, void *arg)
{
    http_transfer *transfer = arg;
    cli_http_response *response = transfer->response;
    size_t len = size * count;
    long status = 0;
    curl_easy_getinfo(transfer->http->curl, CURLINFO_RESPONSE_CODE, &status);
    if (transfer->request->sink != NULL && status >= 200 && status < 300) {
        response->streamed += len;
        if (transfer->request->sink(transfer->request->sink_arg, data, len) != 0) {
            transfer->sink_stopped = 1;
            return 0;
        }
        return len;
    }
    if (response->len + len > CLI_HTTP_MAX_BODY) {
        transfer->too_large = 1;
        return 0;
    }
    char *grown = realloc(response->body, response->len + len + 1);
    if (grown == NULL) {
        transfer->too_large = 1;
        return 0;
    }
    memcpy(grown + response->len, data, len);
    response->body = grown;
    response->len += len;
    response->body[response->len] = '\0';
    return len;
}

static struct curl_slist *http_headers(const cli_http *http, const cli_http_request *request)
{
    struct curl_slist *headers = NULL, *next;
    char idempotency[1024];
    const char *lines[4] = {http->authorization, NULL, NULL, "Expect:"};
    if (request->body != NULL)
        lines[1] = "Content-Type: application/json";
    if (request->idempotency_key != NULL) {
        snprintf(idempotency, sizeof idempotency, "Idempotency-Key: %s",
                 request->idempotency_key);
        lines[2] = idempotency;
    }
    for (size_t i = 0; i < 4; i++) {
        if (lines[i] == NULL)
            continue;
        if ((next = curl_slist_append(headers, lines[i])) == NULL) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = next;
    }
    return headers;
}

static void http_set_options(cli_http *http, const cli_http_request *request, char *url,
                             struct curl_slist *headers, http_transfer *transfer, char *curl_err)
{
    CURL *curl = http->curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request->method);
    if (strcmp(request->method, "GET") == 0)
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if (request->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(request->body));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, http->user_agent);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, request->streaming ? 0L : HTTP_REQUEST_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
}

/* The message for a transfer that did not complete. */
static void http_describe_failure(const cli_http *http, CURLcode code, const char *curl_err,
                                  const http_transfer *transfer, char *err, size_t err_size)
{
    if (transfer->too_large)
        snprintf(err, err_size, "the answer from %s is larger than %u bytes", http->server,
                 CLI_HTTP_MAX_BODY);
    else
        snprintf(err, err_size, "cannot reach %s: %s", http->server,
                 curl_err[0] != '\0' ? curl_err : curl_easy_strerror(code));
}

int cli_http_perform(cli_http *http, const cli_http_request *request,
                     cli_http_response *response, char *err, size_t err_size)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    http_transfer transfer = {.http = http, .request = request, .response = response};
    int rc = -1;
    memset(response, 0, sizeof *response);
    cli_http_response_clear(response);
    size_t url_size = strlen(http->server) + strlen(request->path) + 1;
    char *url = malloc(url_size);
    struct curl_slist *headers = http_headers(http, request);
    if (url == NULL || headers == NULL) {
        snprintf(err, err_size, "out of memory");
        goto done;
    }
    snprintf(url, url_size, "%s%s", http->server, request->path);
    http_set_options(http, request, url, headers, &transfer, curl_err);
    CURLcode code = curl_easy_perform(http->curl);
    curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &response->status);
    if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.sink_stopped))
        rc = 0;
    else
        http_describe_failure(http, code, curl_err, &transfer, err, err_size);
done:
    /* The header list holds the token: no copy outlives the request. */
    curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    free(url);
    return rc;
}
