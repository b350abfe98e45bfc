/*
 * rest_jobs.c - the batch job API under /api/v1/jobs.
 *
 *   POST   /api/v1/jobs                submit (idempotent with Idempotency-Key)
 *   GET    /api/v1/jobs                list: team, state, name, limit, page_token
 *   GET    /api/v1/jobs/{id}           one job
 *   DELETE /api/v1/jobs/{id}           cancel
 *   GET    /api/v1/jobs/{id}/events    every state change
 *   GET    /api/v1/jobs/{id}/logs      driver log: offset, limit, follow
 *
 * Handlers check the caller first and the input second, and only then call
 * the runner (writes) or the store (reads), so a refused request changes
 * nothing.  Who may do what comes from the principal: an admin whose teams
 * are "*" sees every team; anyone else sees only jobs of their own teams,
 * and another team's job answers 404 exactly like a missing one, so job ids
 * of other teams cannot be probed.  A viewer reads but never submits or
 * cancels (403).
 *
 * follow=true streams the log with chunked encoding: a timer asks the
 * runner for the next slice every 500 ms (at once while the backend has
 * more) until the log is complete, the client disconnects or the daemon
 * drains; it pauses while more than 1 MiB waits for a slow client.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <sparkplane/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "job_spec.h"
#include "principal.h"
#include "rest.h"
#include "runner.h"
#include "store_jobs.h"
#include "units.h"

#define JOBS_ERROR_SIZE 512
#define JOBS_LIST_DEFAULT_LIMIT 50
#define JOBS_LIST_MAX_LIMIT 1000
#define JOBS_LOG_DEFAULT_LIMIT (64 * 1024)
#define JOBS_LOG_MAX_LIMIT (1024 * 1024)
#define JOBS_FOLLOW_INTERVAL_MS 500
#define JOBS_PAGE_TOKEN_MAX 512
#define JOBS_FOLLOW_BACKLOG_MAX (1024 * 1024) /* unsent bytes before a stream waits */

static const char *const jobs_states[] = {"PENDING",   "SUBMITTED",  "RUNNING",
                                          "SUCCEEDED", "FAILED",     "CANCELLING",
                                          "CANCELLED", "RETRYING",   NULL};
static const char *const jobs_list_params[] = {"team", "state", "name", "limit", "page_token",
                                               NULL};
static const char *const jobs_logs_params[] = {"offset", "limit", "follow", NULL};

/* ---- who may see what (principal.h) ------------------------------------ */

/* 0, or answers 403 for a viewer and returns -1. */
static int jobs_require_writer(rest_request *request, const char *action)
{
    if (principal_may_write(request->principal))
        return 0;
    char message[128];
    snprintf(message, sizeof(message), "the viewer role may read jobs but not %s them", action);
    rest_reply_error(request, 403, "forbidden", message, NULL);
    return -1;
}

static void jobs_reply_not_found(rest_request *request, const char *id)
{
    char message[160];
    snprintf(message, sizeof(message), "no job '%.100s'", id);
    rest_reply_error(request, 404, "not_found", message, NULL);
}

/* Job ids are short and plain; anything else cannot name a job. */
static int jobs_id_plausible(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/*
 * The job named by the {id} path parameter when the caller may see it;
 * otherwise answers (404, or 500 when the store fails) and returns NULL.
 */
static json_t *jobs_load_visible(rest_request *request)
{
    const char *id = request->param_count > 0 ? request->params[0] : "";
    json_t *job = NULL;
    if (!jobs_id_plausible(id)) {
        jobs_reply_not_found(request, id);
        return NULL;
    }
    int rc = store_job_get(request->daemon->state, id, &job);
    if (rc < 0) {
        rest_reply_error(request, 500, "internal", "the job store failed", NULL);
        return NULL;
    }
    const char *team = rc == 1 ? NULL : json_string_value(json_object_get(job, "team"));
    if (rc == 1 || !principal_in_team(request->principal, team)) {
        if (team != NULL) {
            char why[128];
            snprintf(why, sizeof(why), "job belongs to team %.64s", team);
            rest_note_denial(request, AUDIT_OTHER_TEAM, why);
        }
        json_decref(job);
        jobs_reply_not_found(request, id);
        return NULL;
    }
    return job;
}

/* ---- query strings ---------------------------------------------------- */

/* An integer parameter from min to max, *out unchanged when absent; 0 or answered. */
static int jobs_query_integer(rest_request *request, struct evkeyvalq *params, const char *name,
                              int64_t min, int64_t max, int64_t *out)
{
    const char *text = evhttp_find_header(params, name);
    int64_t value;
    if (text == NULL)
        return 0;
    if (units_parse_int64(text, &value) == 0 && value >= min && value <= max) {
        *out = value;
        return 0;
    }
    char message[160];
    snprintf(message, sizeof(message), "%s: expected an integer from %" PRId64 " to %" PRId64,
             name, min, max);
    rest_reply_invalid(request, name, message);
    return -1;
}

static int jobs_text_matches(const char *text, size_t max, int upper, const char *extra)
{
    size_t len = strlen(text);
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (upper && c >= 'A' && c <= 'Z') || strchr(extra, c) != NULL))
            return 0;
    }
    return 1;
}

/* ---- POST /api/v1/jobs ------------------------------------------------ */

/* The idempotency key from the header and/or the body; 0 or answered. */
static int jobs_idempotency_key(rest_request *request, const char *body_token, const char **key)
{
    const char *header = rest_header(request, "Idempotency-Key");
    *key = body_token;
    if (header == NULL)
        return 0;
    if (!job_spec_idempotency_key_valid(header)) {
        rest_reply_invalid(request, "Idempotency-Key",
                           "Idempotency-Key: must be 1 to 128 characters of A-Z, a-z, 0-9, "
                           "'.', '_', ':' and '-'");
        return -1;
    }
    if (body_token != NULL && strcmp(body_token, header) != 0) {
        rest_reply_invalid(request, "idempotency_token",
                           "idempotency_token: differs from the Idempotency-Key header; send "
                           "one of them, or the same value in both");
        return -1;
    }
    *key = header;
    return 0;
}

/* A field name the runner's message starts with ("spark_version: ..."), or NULL. */
static const char *jobs_runner_field(const char *message)
{
    static const char *const fields[] = {"spark_version", "backend", NULL};
    for (size_t i = 0; fields[i] != NULL; i++) {
        size_t len = strlen(fields[i]);
        if (strncmp(message, fields[i], len) == 0 && (message[len] == ':' || message[len] == ' '))
            return fields[i];
    }
    return NULL;
}

static void jobs_reply_submitted(rest_request *request, json_t *job, int replayed)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    const char *id = json_string_value(json_object_get(job, "id"));
    if (id != NULL) {
        char location[128];
        snprintf(location, sizeof(location), "/api/v1/jobs/%.100s", id);
        evhttp_add_header(headers, "Location", location);
    }
    if (replayed)
        evhttp_add_header(headers, "Idempotent-Replayed", "true");
    rest_reply_json(request, replayed ? 200 : 201, job);
}

static void jobs_submit(rest_request *request, json_t *spec, const char *key)
{
    char hash[JOB_SPEC_HASH_SIZE], err[JOBS_ERROR_SIZE] = "";
    json_t *job = NULL;
    int replayed = 0;
    if (job_spec_hash(spec, hash) != 0) {
        rest_reply_error(request, 500, "internal", "cannot hash the request", NULL);
        return;
    }
    runner_submission submission = {.principal = request->principal, .spec = spec,
                                    .idempotency_key = key, .request_hash = hash};
    int rc = runner_submit(request->daemon->jobs, &submission, &job, &replayed, err,
                           sizeof(err));
    if (rc == SP_OK) {
        jobs_reply_submitted(request, job, replayed);
    } else if (rc == SP_CONFLICT) {
        char message[JOBS_ERROR_SIZE];
        snprintf(message, sizeof(message),
                 "the idempotency key '%s' was already used with a different request for team "
                 "'%s'; use a new key to submit a different job",
                 key ? key : "", json_string_value(json_object_get(spec, "team")));
        rest_reply_error(request, 409, "idempotency_conflict", message,
                         json_pack("{s:s}", "idempotency_key", key ? key : ""));
    } else if (rc == SP_INVALID) {
        rest_reply_invalid(request, jobs_runner_field(err), err);
    } else {
        rest_reply_error(request, 500, "internal", err[0] ? err : "the job was not stored",
                         NULL);
    }
}

static void jobs_create(rest_request *request)
{
    json_t *body = NULL, *spec = NULL;
    const char *token = NULL, *key = NULL;
    job_spec_error error;
    if (jobs_require_writer(request, "submit") != 0 ||
        (body = rest_read_json_body(request)) == NULL)
        return;
    int rc = job_spec_normalise(body, &spec, &token, &error);
    if (rc == SP_INVALID) {
        rest_reply_invalid(request, error.field, error.message);
        goto done;
    }
    if (rc != SP_OK) {
        rest_reply_error(request, 500, "internal", error.message, NULL);
        goto done;
    }
    const char *team = json_string_value(json_object_get(spec, "team"));
    if (!principal_in_team(request->principal, team)) {
        char message[160];
        snprintf(message, sizeof(message), "you are not a member of team '%s'", team);
        rest_reply_error(request, 403, "forbidden", message,
                         json_pack("{s:s}", "field", "team"));
        goto done;
    }
    if (jobs_idempotency_key(request, token, &key) == 0)
        jobs_submit(request, spec, key);
done:
    json_decref(spec);
    json_decref(body); /* after the submit: `key` may point into it */
}

/* ---- GET /api/v1/jobs ------------------------------------------------- */

/* The team to list (NULL: every team, for admins); 0 or answered. */
static int jobs_list_team(rest_request *request, struct evkeyvalq *params, const char **team)
{
    const sp_principal *p = request->principal;
    char message[256];
    *team = evhttp_find_header(params, "team");
    if (*team != NULL && !jobs_text_matches(*team, 63, 0, "-")) {
        rest_reply_invalid(request, "team", "team: must match [a-z0-9-]{1,63}");
        return -1;
    }
    if (*team != NULL && !principal_in_team(p, *team)) {
        snprintf(message, sizeof(message), "you are not a member of team '%s'", *team);
        rest_reply_error(request, 403, "forbidden", message, json_pack("{s:s}", "field", "team"));
        return -1;
    }
    if (*team != NULL || principal_sees_all_teams(p))
        return 0;
    if (p->team_count == 1) {
        *team = p->teams[0];
        return 0;
    }
    rest_reply_invalid(request, "team",
                       p->team_count == 0 ? "team: required (you belong to no team)"
                                          : "team: required, since you belong to several teams");
    return -1;
}

/* state, name and page_token; 0 or answered. */
static int jobs_list_filters(rest_request *request, struct evkeyvalq *params,
                             store_job_filter *filter)
{
    const char *state = evhttp_find_header(params, "state");
    filter->state = NULL;
    for (size_t i = 0; state != NULL && jobs_states[i] != NULL; i++)
        if (strcasecmp(state, jobs_states[i]) == 0)
            filter->state = jobs_states[i];
    if (state != NULL && filter->state == NULL) {
        rest_reply_invalid(request, "state",
                           "state: expected one of PENDING, SUBMITTED, RUNNING, SUCCEEDED, "
                           "FAILED, CANCELLING, CANCELLED, RETRYING");
        return -1;
    }
    filter->name = evhttp_find_header(params, "name");
    if (filter->name != NULL && !jobs_text_matches(filter->name, 128, 1, "._-")) {
        rest_reply_invalid(request, "name", "name: must match [A-Za-z0-9._-]{1,128}");
        return -1;
    }
    filter->page_token = evhttp_find_header(params, "page_token");
    if (filter->page_token != NULL && (filter->page_token[0] == '\0' ||
                                       strlen(filter->page_token) > JOBS_PAGE_TOKEN_MAX)) {
        rest_reply_invalid(request, "page_token",
                           "page_token: not a token from a previous page");
        return -1;
    }
    return 0;
}

static void jobs_list(rest_request *request)
{
    struct evkeyvalq params;
    store_job_filter filter = {0};
    int64_t limit = JOBS_LIST_DEFAULT_LIMIT;
    json_t *jobs = NULL;
    char *next = NULL;
    if (rest_query_load(request, jobs_list_params, &params) != 0)
        return;
    if (jobs_list_team(request, &params, &filter.team) != 0 ||
        jobs_list_filters(request, &params, &filter) != 0 ||
        jobs_query_integer(request, &params, "limit", 1, JOBS_LIST_MAX_LIMIT, &limit) != 0)
        goto done;
    filter.limit = (size_t)limit;
    int rc = store_job_list(request->daemon->state, &filter, &jobs, &next);
    if (rc == -2)
        rest_reply_invalid(request, "page_token", "page_token: not a token from a previous page");
    else if (rc != 0)
        rest_reply_error(request, 500, "internal", "the job store failed", NULL);
    else
        rest_reply_json(request, 200,
                        json_pack("{s:o, s:o}", "jobs", jobs, "next_page_token",
                                  next ? json_string(next) : json_null()));
    free(next);
done:
    evhttp_clear_headers(&params);
}

/* ---- GET / DELETE /api/v1/jobs/{id}, events --------------------------- */

static void jobs_get(rest_request *request)
{
    json_t *job = jobs_load_visible(request);
    if (job != NULL)
        rest_reply_json(request, 200, job);
}

static void jobs_cancel(rest_request *request)
{
    char err[JOBS_ERROR_SIZE] = "";
    json_t *job = NULL, *cancelled = NULL;
    if (jobs_require_writer(request, "cancel") != 0 || (job = jobs_load_visible(request)) == NULL)
        return;
    json_decref(job);
    int rc = runner_cancel(request->daemon->jobs, request->params[0], &cancelled, err,
                           sizeof(err));
    if (rc == SP_OK)
        rest_reply_json(request, 202, cancelled);
    else if (rc == SP_CONFLICT)
        rest_reply_error(request, 409, "conflict", err[0] ? err : "the job already finished",
                         NULL);
    else if (rc == SP_NOT_FOUND)
        jobs_reply_not_found(request, request->params[0]);
    else
        rest_reply_error(request, 500, "internal", err[0] ? err : "the job was not cancelled",
                         NULL);
}

static void jobs_events(rest_request *request)
{
    json_t *events = NULL, *job = jobs_load_visible(request);
    if (job == NULL)
        return;
    json_decref(job);
    int rc = store_job_events(request->daemon->state, request->params[0], &events);
    if (rc == 0)
        rest_reply_json(request, 200, json_pack("{s:o}", "events", events));
    else if (rc == 1)
        jobs_reply_not_found(request, request->params[0]);
    else
        rest_reply_error(request, 500, "internal", "the job store failed", NULL);
}

/* ---- GET /api/v1/jobs/{id}/logs --------------------------------------- */

static void jobs_logs_headers(rest_request *request, uint64_t next_offset, int complete)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    char offset_text[32];
    snprintf(offset_text, sizeof(offset_text), "%" PRIu64, next_offset);
    evhttp_add_header(headers, "X-Next-Offset", offset_text);
    evhttp_add_header(headers, "X-Log-Complete", complete ? "true" : "false");
}

static void jobs_reply_logs_failed(rest_request *request, int status, const char *message)
{
    if (status == SP_NOT_FOUND)
        rest_reply_error(request, 404, "not_found",
                         message && message[0] ? message : "the backend has no log for this job",
                         NULL);
    else
        rest_reply_error(request, 503, "logs_unavailable",
                         message && message[0] ? message : "the job's backend is not available",
                         NULL);
}

/* runner_logs_fn for a one-shot read: the slice as text/plain. */
static void jobs_logs_done(void *arg, int status, const char *data, size_t len,
                           uint64_t next_offset, int complete, const char *message)
{
    rest_request *request = arg;
    if (status != SP_OK) {
        jobs_reply_logs_failed(request, status, message);
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        rest_reply_error(request, 500, "internal", "out of memory", NULL);
        return;
    }
    evbuffer_add(body, data, len);
    jobs_logs_headers(request, next_offset, complete);
    rest_reply_text(request, 200, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* A follow=true stream, alive from the first poll to rest_reply_stream_end. */
typedef struct jobs_log_stream {
    rest_request *request;
    struct event *timer;
    char *job_id;
    uint64_t offset;
    uint64_t limit;
    int started;          /* status and headers sent */
    int polling;          /* a runner_logs call is outstanding */
    int client_gone;
} jobs_log_stream;

static void jobs_stream_poll(evutil_socket_t fd, short what, void *arg);

static void jobs_stream_free(jobs_log_stream *stream)
{
    if (stream->timer != NULL)
        event_free(stream->timer);
    free(stream->job_id);
    free(stream);
}

static void jobs_stream_finish(jobs_log_stream *stream)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(stream->request->http);
    if (conn != NULL)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    rest_reply_stream_end(stream->request);
    jobs_stream_free(stream);
}

static void jobs_stream_on_close(struct evhttp_connection *conn, void *arg)
{
    jobs_log_stream *stream = arg;
    (void)conn;
    stream->client_gone = 1;
    if (!stream->polling)
        jobs_stream_finish(stream); /* else the outstanding poll finishes it */
}

static void jobs_stream_schedule(jobs_log_stream *stream, int backlog)
{
    struct timeval delay = {0, backlog ? 0 : JOBS_FOLLOW_INTERVAL_MS * 1000};
    evtimer_add(stream->timer, &delay);
}

/* runner_logs_fn for a stream: send what came, then end or poll again. */
static void jobs_stream_done(void *arg, int status, const char *data, size_t len,
                             uint64_t next_offset, int complete, const char *message)
{
    jobs_log_stream *stream = arg;
    stream->polling = 0;
    if (!stream->started && status != SP_OK) {
        jobs_reply_logs_failed(stream->request, status, message); /* frees the request */
        jobs_stream_free(stream);
        return;
    }
    if (!stream->started) {
        jobs_logs_headers(stream->request, next_offset, complete);
        rest_reply_stream_start(stream->request, 200, "text/plain; charset=utf-8");
        evhttp_connection_set_closecb(evhttp_request_get_connection(stream->request->http),
                                      jobs_stream_on_close, stream);
        stream->started = 1;
    }
    if (status == SP_OK && len > 0 && !stream->client_gone) {
        struct evbuffer *chunk = evbuffer_new();
        if (chunk != NULL) {
            evbuffer_add(chunk, data, len);
            rest_reply_stream_chunk(stream->request, chunk);
            evbuffer_free(chunk);
        }
    }
    if (status == SP_OK)
        stream->offset = next_offset;
    if (status != SP_OK || complete || stream->client_gone || stream->request->daemon->draining) {
        jobs_stream_finish(stream);
        return;
    }
    /* From a timer, never from here: the runner may have answered synchronously. */
    jobs_stream_schedule(stream, len >= stream->limit);
}

static void jobs_stream_poll(evutil_socket_t fd, short what, void *arg)
{
    jobs_log_stream *stream = arg;
    (void)fd;
    (void)what;
    if (stream->client_gone || stream->request->daemon->draining) {
        jobs_stream_finish(stream);
        return;
    }
    if (rest_reply_stream_backlog(stream->request) > JOBS_FOLLOW_BACKLOG_MAX) {
        jobs_stream_schedule(stream, 0); /* the client reads slowly: let it catch up */
        return;
    }
    stream->polling = 1;
    int rc = runner_logs(stream->request->daemon->jobs, stream->job_id, stream->offset,
                         stream->limit, jobs_stream_done, stream);
    if (rc != SP_OK)
        jobs_stream_done(stream, rc, NULL, 0, stream->offset, 0, NULL);
}

static void jobs_logs_follow(rest_request *request, uint64_t offset, uint64_t limit)
{
    jobs_log_stream *stream = calloc(1, sizeof(*stream));
    if (stream != NULL) {
        stream->request = request;
        stream->offset = offset;
        stream->limit = limit;
        stream->job_id = strdup(request->params[0]);
        stream->timer = evtimer_new(request->daemon->base, jobs_stream_poll, stream);
    }
    if (stream == NULL || stream->job_id == NULL || stream->timer == NULL) {
        if (stream != NULL)
            jobs_stream_free(stream);
        rest_reply_error(request, 500, "internal", "out of memory", NULL);
        return;
    }
    jobs_stream_schedule(stream, 1);
}

/* offset, limit and follow; 0 or answered. */
static int jobs_logs_params_read(rest_request *request, struct evkeyvalq *params,
                                 int64_t *offset, int64_t *limit, int *follow)
{
    const char *follow_text = evhttp_find_header(params, "follow");
    if (jobs_query_integer(request, params, "offset", 0, INT64_MAX, offset) != 0 ||
        jobs_query_integer(request, params, "limit", 1, JOBS_LOG_MAX_LIMIT, limit) != 0)
        return -1;
    *follow = 0;
    if (follow_text != NULL && units_parse_bool(follow_text, follow) != 0) {
        rest_reply_invalid(request, "follow", "follow: expected true or false");
        return -1;
    }
    return 0;
}

static void jobs_logs(rest_request *request)
{
    struct evkeyvalq params;
    int64_t offset = 0, limit = JOBS_LOG_DEFAULT_LIMIT;
    int follow = 0;
    json_t *job;
    if (rest_query_load(request, jobs_logs_params, &params) != 0)
        return;
    int ok = jobs_logs_params_read(request, &params, &offset, &limit, &follow) == 0;
    evhttp_clear_headers(&params);
    if (!ok || (job = jobs_load_visible(request)) == NULL)
        return;
    json_decref(job);
    if (follow) {
        jobs_logs_follow(request, (uint64_t)offset, (uint64_t)limit);
        return;
    }
    int rc = runner_logs(request->daemon->jobs, request->params[0], (uint64_t)offset,
                         (uint64_t)limit, jobs_logs_done, request);
    if (rc != SP_OK)
        jobs_reply_logs_failed(request, rc, NULL);
}

void rest_jobs_routes(rest_server *server)
{
    rest_route_add(server, "POST", "/api/v1/jobs", REST_WRITE, jobs_create);
    rest_route_add(server, "GET", "/api/v1/jobs", REST_READ, jobs_list);
    rest_route_add(server, "GET", "/api/v1/jobs/{id}", REST_READ, jobs_get);
    rest_route_add(server, "DELETE", "/api/v1/jobs/{id}", REST_WRITE, jobs_cancel);
    rest_route_add(server, "GET", "/api/v1/jobs/{id}/events", REST_READ, jobs_events);
    rest_route_add(server, "GET", "/api/v1/jobs/{id}/logs", REST_READ, jobs_logs);
}
