/*
 * sparkplane.c - the command-line client: main() and one function per command.
 *
 * Each command is: build a request from the parsed arguments, perform it,
 * turn a non-2xx answer into one line on stderr and an exit status, and
 * print the resource as a table (or key: value lines for `get`) or, with
 * -o json, as the API's JSON indented.  Everything that can be decided
 * without the network (arguments, settings, tables) lives in the cli_*
 * modules, which the unit tests exercise; this file is the glue.
 *
 * Results go to stdout, messages and progress to stderr, so
 * `sparkplane -o json jobs get ID | jq` always sees clean JSON.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_args.h"
#include "cli_format.h"
#include "cli_http.h"
#include "cli_job_file.h"
#include "cli_settings.h"

#define WAIT_POLL_SECONDS 1
/* --wait keeps polling through a daemon restart of about this long. */
#define WAIT_MAX_UNREACHABLE_POLLS 30
#define LOGS_MAX_RESUMES 5

typedef struct cli_run {
    cli_args args;
    cli_settings settings;
    cli_http *http;
} cli_run;

static void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cli_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sparkplane: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void cli_print_json(const json_t *value)
{
    json_dumpf(value, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

/* ---- one API call ---- */

/*
 * Performs the request.  CLI_EXIT_OK and, for a 2xx answer with a body,
 * the parsed JSON in *json_out (NULL when json_out is NULL); otherwise the
 * problem is printed and its exit status returned.
 */
static int cli_call(cli_run *run, const cli_http_request *request, long *status_out,
                    json_t **json_out)
{
    cli_http_response response;
    char err[1024];
    int rc;
    if (json_out != NULL)
        *json_out = NULL;
    if (cli_http_perform(run->http, request, &response, err, sizeof err) != 0) {
        cli_say("%s", err);
        rc = CLI_EXIT_UNREACHABLE;
        goto done;
    }
    if (status_out != NULL)
        *status_out = response.status;
    if (response.status < 200 || response.status > 299) {
        char message[4096];
        cli_format_api_error(response.status, response.body, response.len, message,
                             sizeof message);
        cli_say("%s", message);
        rc = cli_exit_for_http_status(response.status);
        goto done;
    }
    rc = CLI_EXIT_OK;
    if (json_out == NULL)
        goto done;
    *json_out = json_loadb(response.body ? response.body : "", response.len, 0, NULL);
    if (*json_out == NULL) {
        cli_say("the server answered HTTP %ld with a body that is not JSON", response.status);
        rc = CLI_EXIT_API_ERROR;
    }
done:
    cli_http_response_clear(&response);
    return rc;
}

static int cli_get_json(cli_run *run, const char *path, json_t **json_out)
{
    cli_http_request request = {.method = "GET", .path = path};
    return cli_call(run, &request, NULL, json_out);
}

/* "/api/v1/jobs/<escaped id><suffix>" (malloc'd). */
static char *cli_job_path(cli_run *run, const char *job_id, const char *suffix)
{
    char *escaped = cli_http_escape(run->http, job_id);
    char *path = NULL;
    if (escaped != NULL && asprintf(&path, "/api/v1/jobs/%s%s", escaped, suffix) < 0)
        path = NULL;
    free(escaped);
    return path;
}

static void cli_print_job_row(cli_run *run, const json_t *job)
{
    if (run->args.output == CLI_OUTPUT_JSON) {
        cli_print_json(job);
        return;
    }
    json_t *jobs = json_array();
    json_array_append(jobs, (json_t *)job);
    cli_print_jobs_table(jobs, time(NULL), stdout);
    json_decref(jobs);
}

/* ---- jobs submit ---- */

static int submit_exit_for_state(const char *state)
{
    if (state != NULL && strcmp(state, "FAILED") == 0)
        return CLI_EXIT_JOB_FAILED;
    if (state != NULL && strcmp(state, "CANCELLED") == 0)
        return CLI_EXIT_JOB_CANCELLED;
    return CLI_EXIT_OK;
}

static int submit_is_final(const char *state)
{
    return state != NULL && (strcmp(state, "SUCCEEDED") == 0 || strcmp(state, "FAILED") == 0 ||
                             strcmp(state, "CANCELLED") == 0);
}

/* Polls the job every second until it ends; prints state changes on stderr. */
static int submit_wait(cli_run *run, json_t **job)
{
    const char *id = json_string_value(json_object_get(*job, "id"));
    char *path = id != NULL ? cli_job_path(run, id, "") : NULL;
    char last_state[32] = "";
    int unreachable = 0, rc = CLI_EXIT_OK;
    if (path == NULL) {
        cli_say("the server's answer has no job id to wait for");
        return CLI_EXIT_API_ERROR;
    }
    for (;;) {
        const char *state = json_string_value(json_object_get(*job, "state"));
        if (state != NULL && strcmp(state, last_state) != 0) {
            fprintf(stderr, "%s: %s\n", id, state);
            snprintf(last_state, sizeof last_state, "%s", state);
        }
        if (submit_is_final(state))
            break;
        sleep(WAIT_POLL_SECONDS);
        json_t *next = NULL;
        rc = cli_get_json(run, path, &next);
        if (rc == CLI_EXIT_UNREACHABLE && ++unreachable < WAIT_MAX_UNREACHABLE_POLLS)
            continue;
        if (rc != CLI_EXIT_OK)
            goto done;
        unreachable = 0;
        json_decref(*job);
        *job = next;
        id = json_string_value(json_object_get(*job, "id"));
        if (id == NULL)
            id = "job";
    }
done:
    free(path);
    return rc;
}

static int submit_load(const cli_run *run, char **body_out)
{
    char err[1024], *data = NULL;
    size_t len = 0;
    json_t *job = NULL;
    const char *name = strcmp(run->args.file, "-") == 0 ? "stdin" : run->args.file;
    *body_out = NULL;
    if (cli_job_file_read(run->args.file, &data, &len, err, sizeof err) != 0 ||
        cli_job_file_parse(name, data, len, &job, err, sizeof err) != 0) {
        cli_say("%s", err);
        free(data);
        return CLI_EXIT_USAGE;
    }
    *body_out = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    free(data);
    return *body_out != NULL ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int cmd_jobs_submit(cli_run *run)
{
    char *body = NULL;
    json_t *job = NULL;
    long status = 0;
    int rc = submit_load(run, &body);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_http_request request = {.method = "POST", .path = "/api/v1/jobs", .body = body,
                                .idempotency_key = run->args.idempotency_key};
    rc = cli_call(run, &request, &status, &job);
    if (rc != CLI_EXIT_OK)
        goto done;
    if (status == 200 && run->args.idempotency_key != NULL)
        cli_say("the idempotency key was used before with this job: not submitted again");
    if (run->args.wait) {
        rc = submit_wait(run, &job);
        if (rc != CLI_EXIT_OK)
            goto done;
        rc = submit_exit_for_state(json_string_value(json_object_get(job, "state")));
    }
    cli_print_job_row(run, job);
done:
    json_decref(job);
    free(body);
    return rc;
}

/* ---- jobs get / cancel / events ---- */

static int cmd_jobs_get(cli_run *run)
{
    json_t *job = NULL;
    char *path = cli_job_path(run, run->args.job_id, "");
    int rc = path != NULL ? cli_get_json(run, path, &job) : CLI_EXIT_USAGE;
    if (rc == CLI_EXIT_OK && run->args.output == CLI_OUTPUT_JSON)
        cli_print_json(job);
    else if (rc == CLI_EXIT_OK)
        cli_print_job_detail(job, time(NULL), stdout);
    json_decref(job);
    free(path);
    return rc;
}

static int cmd_jobs_cancel(cli_run *run)
{
    json_t *job = NULL;
    char *path = cli_job_path(run, run->args.job_id, "");
    cli_http_request request = {.method = "DELETE", .path = path};
    int rc = path != NULL ? cli_call(run, &request, NULL, &job) : CLI_EXIT_USAGE;
    if (rc == CLI_EXIT_OK)
        cli_print_job_row(run, job);
    json_decref(job);
    free(path);
    return rc;
}

static int cmd_jobs_events(cli_run *run)
{
    json_t *events = NULL;
    char *path = cli_job_path(run, run->args.job_id, "/events");
    int rc = path != NULL ? cli_get_json(run, path, &events) : CLI_EXIT_USAGE;
    if (rc == CLI_EXIT_OK && run->args.output == CLI_OUTPUT_JSON)
        cli_print_json(events);
    else if (rc == CLI_EXIT_OK)
        cli_print_events_table(events, stdout);
    json_decref(events);
    free(path);
    return rc;
}

/* ---- jobs list ---- */

/* Appends "&name=<escaped value>" when value is set. */
static int list_add_query(cli_run *run, char **query, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    char *escaped = cli_http_escape(run->http, value);
    char *joined = NULL;
    if (escaped == NULL ||
        asprintf(&joined, "%s%c%s=%s", *query, strchr(*query, '?') ? '&' : '?', name,
                 escaped) < 0) {
        free(escaped);
        return -1;
    }
    free(escaped);
    free(*query);
    *query = joined;
    return 0;
}

static char *list_path(cli_run *run, const char *page_token)
{
    char limit[32] = "";
    char *path = strdup("/api/v1/jobs");
    if (run->args.limit > 0)
        snprintf(limit, sizeof limit, "%lld", (long long)run->args.limit);
    if (path == NULL || list_add_query(run, &path, "team", run->args.team) != 0 ||
        list_add_query(run, &path, "state", run->args.state) != 0 ||
        list_add_query(run, &path, "name", run->args.name) != 0 ||
        list_add_query(run, &path, "limit", limit) != 0 ||
        list_add_query(run, &path, "page_token", page_token) != 0) {
        free(path);
        return NULL;
    }
    return path;
}

/* Fetches one page (or every page with --all) into *all; *more says a page was left. */
static int list_fetch(cli_run *run, json_t *all, json_t **first_page, int *more)
{
    char *token = NULL;
    int rc = CLI_EXIT_OK;
    *more = 0;
    do {
        json_t *page = NULL;
        char *path = list_path(run, token);
        rc = path != NULL ? cli_get_json(run, path, &page) : CLI_EXIT_USAGE;
        free(path);
        if (rc != CLI_EXIT_OK)
            break;
        json_array_extend(all, json_object_get(page, "jobs"));
        const char *next = json_string_value(json_object_get(page, "next_page_token"));
        if (next != NULL && token != NULL && strcmp(next, token) == 0) {
            cli_say("the server returned the same page token twice; stopping");
            json_decref(page);
            rc = CLI_EXIT_API_ERROR;
            break;
        }
        free(token);
        token = next != NULL && next[0] != '\0' ? strdup(next) : NULL;
        if (*first_page == NULL)
            *first_page = page;
        else
            json_decref(page);
    } while (run->args.all && token != NULL);
    *more = token != NULL;
    free(token);
    return rc;
}

static int cmd_jobs_list(cli_run *run)
{
    json_t *all = json_array(), *first_page = NULL;
    int more = 0;
    int rc = list_fetch(run, all, &first_page, &more);
    if (rc != CLI_EXIT_OK)
        goto done;
    if (run->args.output == CLI_OUTPUT_JSON && !run->args.all) {
        cli_print_json(first_page);
    } else if (run->args.output == CLI_OUTPUT_JSON) {
        json_t *merged = json_pack("{s:O, s:n}", "jobs", all, "next_page_token");
        cli_print_json(merged);
        json_decref(merged);
    } else if (json_array_size(all) == 0) {
        fprintf(stderr, "no jobs found\n");
    } else {
        cli_print_jobs_table(all, time(NULL), stdout);
        if (more)
            fprintf(stderr, "more jobs follow: --all lists every page\n");
    }
done:
    json_decref(first_page);
    json_decref(all);
    return rc;
}

/* ---- jobs logs ---- */

static int logs_write(void *arg, const char *data, size_t len)
{
    (void)arg;
    if (fwrite(data, 1, len, stdout) != len)
        return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

/* Without -f: what the log holds now, page after page until an empty or final one. */
static int logs_read(cli_run *run, char *base)
{
    int64_t offset = run->args.offset;
    for (;;) {
        char *path = NULL;
        cli_http_response response;
        char err[1024];
        if (asprintf(&path, "%s?offset=%lld", base, (long long)offset) < 0)
            return CLI_EXIT_USAGE;
        cli_http_request request = {.method = "GET", .path = path, .sink = logs_write};
        int rc = cli_http_perform(run->http, &request, &response, err, sizeof err);
        free(path);
        if (rc != 0) {
            cli_say("%s", err);
            return CLI_EXIT_UNREACHABLE;
        }
        if (response.status < 200 || response.status > 299) {
            char message[4096];
            cli_format_api_error(response.status, response.body, response.len, message,
                                 sizeof message);
            cli_say("%s", message);
            long status = response.status;
            cli_http_response_clear(&response);
            return cli_exit_for_http_status(status);
        }
        int64_t next = response.next_offset >= 0 ? response.next_offset
                                                 : offset + (int64_t)response.streamed;
        int finished = response.streamed == 0 || next <= offset || response.log_complete == 1;
        cli_http_response_clear(&response);
        if (finished)
            return CLI_EXIT_OK;
        offset = next;
    }
}

/*
 * With -f: one chunked stream that the server ends when the job ends.  If
 * the connection breaks mid-stream, resume from the bytes already shown.
 */
static int logs_follow(cli_run *run, char *base)
{
    int64_t offset = run->args.offset;
    for (int resumes = 0;; resumes++) {
        char *path = NULL;
        if (asprintf(&path, "%s?follow=true&offset=%lld", base, (long long)offset) < 0)
            return CLI_EXIT_USAGE;
        cli_http_request request = {.method = "GET", .path = path, .streaming = 1,
                                    .sink = logs_write};
        cli_http_response response;
        char err[1024];
        int rc = cli_http_perform(run->http, &request, &response, err, sizeof err);
        free(path);
        int broke_mid_stream = rc != 0 && response.status >= 200 && response.status <= 299;
        offset += (int64_t)response.streamed;
        if (broke_mid_stream && resumes < LOGS_MAX_RESUMES) {
            cli_http_response_clear(&response);
            continue;
        }
        if (rc != 0) {
            cli_say("%s", err);
            rc = CLI_EXIT_UNREACHABLE;
        } else if (response.status < 200 || response.status > 299) {
            char message[4096];
            cli_format_api_error(response.status, response.body, response.len, message,
                                 sizeof message);
            cli_say("%s", message);
            rc = cli_exit_for_http_status(response.status);
        }
        cli_http_response_clear(&response);
        return rc;
    }
}

static int cmd_jobs_logs(cli_run *run)
{
    char *base = cli_job_path(run, run->args.job_id, "/logs");
    if (base == NULL)
        return CLI_EXIT_USAGE;
    int rc = run->args.follow ? logs_follow(run, base) : logs_read(run, base);
    free(base);
    return rc;
}

/* ---- version ---- */

static int cmd_version(cli_run *run)
{
    json_t *server = NULL;
    int rc = run->args.client_only ? CLI_EXIT_OK
                                   : cli_get_json(run, "/api/v1/version", &server);
    if (run->args.output == CLI_OUTPUT_JSON) {
        json_t *both = json_pack("{s:{s:s}, s:O?}", "client", "version", PACKAGE_VERSION,
                                 "server", server);
        cli_print_json(both);
        json_decref(both);
    } else {
        printf("client: sparkplane %s\n", PACKAGE_VERSION);
        if (server != NULL)
            printf("server: sparkplaned %s (plugin ABI %s, schema %lld) at %s\n",
                   json_string_value(json_object_get(server, "version")) ?: "?",
                   json_string_value(json_object_get(server, "abi")) ?: "?",
                   (long long)json_integer_value(json_object_get(server, "schema_version")),
                   run->settings.server);
    }
    json_decref(server);
    return rc;
}

/* ---- main ---- */

static int cli_load_settings(cli_run *run)
{
    char path[4096], err[1024];
    int must_exist = 0;
    cli_config_file file = {0};
    int have_path = cli_config_path(getenv("SPARKPLANE_CONFIG"), getenv("XDG_CONFIG_HOME"),
                                    getenv("HOME"), path, sizeof path, &must_exist) == 0;
    if (have_path && cli_config_load(path, must_exist, &file, err, sizeof err) != 0) {
        cli_say("%s", err);
        return CLI_EXIT_USAGE;
    }
    cli_settings_sources sources = {
        .flag_server = run->args.server, .env_server = getenv("SPARKPLANE_SERVER"),
        .file_server = file.server, .flag_token = run->args.token,
        .env_token = getenv("SPARKPLANE_TOKEN"), .file_token = file.token};
    int rc = cli_settings_resolve(&sources, &run->settings, err, sizeof err);
    cli_config_clear(&file);
    if (rc != 0) {
        cli_say("%s", err);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int cli_dispatch(cli_run *run)
{
    switch (run->args.command) {
    case CLI_COMMAND_VERSION: return cmd_version(run);
    case CLI_COMMAND_JOBS_SUBMIT: return cmd_jobs_submit(run);
    case CLI_COMMAND_JOBS_GET: return cmd_jobs_get(run);
    case CLI_COMMAND_JOBS_LIST: return cmd_jobs_list(run);
    case CLI_COMMAND_JOBS_CANCEL: return cmd_jobs_cancel(run);
    case CLI_COMMAND_JOBS_LOGS: return cmd_jobs_logs(run);
    case CLI_COMMAND_JOBS_EVENTS: return cmd_jobs_events(run);
    default: fputs(cli_args_usage(), stdout); return CLI_EXIT_OK;
    }
}

int main(int argc, char **argv)
{
    cli_run run;
    char err[1024];
    int rc;
    memset(&run, 0, sizeof run);
    if (cli_args_parse(argc, (const char *const *)argv, &run.args, err, sizeof err) != 0) {
        cli_say("%s", err);
        fputs("run 'sparkplane --help' for usage\n", stderr);
        return CLI_EXIT_USAGE;
    }
    if (run.args.help || run.args.command == CLI_COMMAND_HELP) {
        fputs(cli_args_usage(), stdout);
        return CLI_EXIT_OK;
    }
    if (run.args.command == CLI_COMMAND_VERSION && run.args.client_only)
        return cmd_version(&run); /* needs no server, so no settings */
    if ((rc = cli_load_settings(&run)) != CLI_EXIT_OK)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_say("cannot initialise libcurl");
        return CLI_EXIT_UNREACHABLE;
    }
    run.http = cli_http_new(run.settings.server, run.settings.token, err, sizeof err);
    if (run.http == NULL) {
        cli_say("%s", err);
        rc = CLI_EXIT_UNREACHABLE;
    } else {
        rc = cli_dispatch(&run);
    }
    cli_http_free(run.http);
    memset(run.settings.token, 0, sizeof run.settings.token);
    curl_global_cleanup();
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
        cli_say("cannot write the output");
        rc = CLI_EXIT_API_ERROR;
    }
    return rc;
}
