/*
 * test_cli_format.c - what `sparkplane jobs ...` prints: tables, ages, details, errors.
 *
 * Output is captured with open_memstream and compared with what a person
 * would read: aligned columns, short reasons, sensible ages, and error
 * lines in the "message (code, HTTP status)" form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "cli_format.h"
#include "unit_test.h"

/* Runs fn into a string the caller frees. */
#define CAPTURE(text, call)                                     \
    do {                                                        \
        size_t capture_len_ = 0;                                \
        FILE *out = open_memstream(&(text), &capture_len_);     \
        call;                                                   \
        fclose(out);                                            \
    } while (0)

static time_t at(const char *timestamp)
{
    time_t t = 0;
    CU_ASSERT_EQUAL_FATAL(cli_parse_timestamp(timestamp, &t), 0);
    return t;
}

static void test_table_columns_line_up(void)
{
    static const char *const headers[] = {"ID", "NAME", "STATE"};
    static const char *const row1[] = {"job-1", "a-much-longer-name", "RUNNING"};
    static const char *const row2[] = {"job-22", "étl", NULL};
    cli_table *table = cli_table_new(3, headers);
    CU_ASSERT_EQUAL(cli_table_add_row(table, row1), 0);
    CU_ASSERT_EQUAL(cli_table_add_row(table, row2), 0);
    char *text = NULL;
    CAPTURE(text, cli_table_print(table, out));
    CU_ASSERT_STRING_EQUAL(text, "ID      NAME                STATE\n"
                                 "job-1   a-much-longer-name  RUNNING\n"
                                 "job-22  étl                 -\n");
    free(text);
    cli_table_free(table);
}

static void test_cells_cannot_carry_escape_sequences(void)
{
    static const char *const headers[] = {"NAME"};
    static const char *const row[] = {"evil\x1b[2J\nname"};
    cli_table *table = cli_table_new(1, headers);
    cli_table_add_row(table, row);
    char *text = NULL;
    CAPTURE(text, cli_table_print(table, out));
    CU_ASSERT_PTR_NULL(strchr(text, '\x1b'));
    CU_ASSERT_STRING_EQUAL(text, "NAME\nevil [2J name\n");
    free(text);
    cli_table_free(table);
}

static void test_truncate(void)
{
    char out[64];
    cli_text_truncate("  short\n reason ", 20, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "short reason");
    cli_text_truncate("Traceback (most recent call last): boom", 20, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "Traceback (most r...");
    CU_ASSERT_EQUAL(cli_text_width(out), 20);
    /* never splits a character */
    cli_text_truncate("ééééééééééééé", 10, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "ééééééé...");
    cli_text_truncate("word word word word", 12, out, 10); /* bounded by the buffer too */
    CU_ASSERT_STRING_EQUAL(out, "word w...");
    cli_text_truncate("exactly ten", 11, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "exactly ten");
}

static void test_timestamps(void)
{
    time_t t;
    CU_ASSERT_EQUAL(cli_parse_timestamp("1970-01-01T00:01:40.123Z", &t), 0);
    CU_ASSERT_EQUAL(t, 100);
    CU_ASSERT_EQUAL(cli_parse_timestamp("1970-01-01T02:00:00+02:00", &t), 0);
    CU_ASSERT_EQUAL(t, 0);
    CU_ASSERT_EQUAL(cli_parse_timestamp("1970-01-01 00:00:00", &t), -1);
    CU_ASSERT_EQUAL(cli_parse_timestamp("2026-13-01T00:00:00Z", &t), -1);
    CU_ASSERT_EQUAL(cli_parse_timestamp("2026-01-01T00:00:00Zjunk", &t), -1);
    CU_ASSERT_EQUAL(cli_parse_timestamp(NULL, &t), -1);
}

static void test_ages(void)
{
    time_t now = at("2026-01-10T12:00:00Z");
    char age[32];
    cli_format_age("2026-01-10T11:59:18.500Z", now, age, sizeof age);
    CU_ASSERT_STRING_EQUAL(age, "42s");
    cli_format_age("2026-01-10T11:55:00Z", now, age, sizeof age);
    CU_ASSERT_STRING_EQUAL(age, "5m");
    cli_format_age("2026-01-10T09:00:00Z", now, age, sizeof age);
    CU_ASSERT_STRING_EQUAL(age, "3h");
    cli_format_age("2026-01-01T12:00:00Z", now, age, sizeof age);
    CU_ASSERT_STRING_EQUAL(age, "9d");
    cli_format_age("2026-01-10T12:00:05Z", now, age, sizeof age); /* clock skew */
    CU_ASSERT_STRING_EQUAL(age, "0s");
    cli_format_age(NULL, now, age, sizeof age);
    CU_ASSERT_STRING_EQUAL(age, "-");
}

static void test_jobs_table(void)
{
    time_t now = at("2026-01-10T12:00:00Z");
    json_t *jobs = json_loads(
        "[{\"id\":\"job-01\",\"name\":\"etl\",\"team\":\"data\",\"state\":\"RUNNING\","
        "\"created_at\":\"2026-01-10T11:50:00.000Z\",\"updated_at\":\"2026-01-10T11:59:30Z\","
        "\"reason\":null},"
        "{\"id\":\"job-02\",\"name\":\"report\",\"team\":\"analytics\",\"state\":\"FAILED\","
        "\"created_at\":\"2026-01-09T12:00:00Z\",\"updated_at\":\"2026-01-10T10:00:00Z\","
        "\"reason\":\"Traceback (most recent call last):\\n  File \\\"job.py\\\", line 3, in "
        "<module>\\nValueError: the input table is empty and cannot be counted\"}]",
        0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(jobs);
    char *text = NULL;
    CAPTURE(text, cli_print_jobs_table(jobs, now, out));
    const char *expected =
        "ID      NAME    TEAM       STATE    AGE  UPDATED  REASON\n"
        "job-01  etl     data       RUNNING  10m  30s      -\n"
        "job-02  report  analytics  FAILED   24h  2h       Traceback (most recent call last): "
        "File \"job.py\", line 3,...\n";
    CU_ASSERT_STRING_EQUAL(text, expected);
    if (strcmp(text, expected) != 0)
        fprintf(stderr, "\n%s", text);
    free(text);
    json_decref(jobs);
}

static void test_job_detail(void)
{
    time_t now = at("2026-01-10T12:00:00Z");
    json_t *job = json_loads(
        "{\"id\":\"job-01\",\"name\":\"etl\",\"team\":\"data\",\"state\":\"FAILED\","
        "\"backend\":\"local\",\"spark_app_id\":\"local-1700\",\"attempt\":2,\"max_attempts\":3,"
        "\"reason\":\"line one\\nline two\",\"submitted_by\":\"alice\","
        "\"created_at\":\"2026-01-10T11:00:00.000Z\",\"updated_at\":\"2026-01-10T11:58:00Z\","
        "\"finished_at\":null,\"spec\":{\"spark_version\":\"3.5\","
        "\"application\":{\"file\":\"/jobs/etl.py\"}}}", 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    char *text = NULL;
    CAPTURE(text, cli_print_job_detail(job, now, out));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "id:            job-01\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "state:         FAILED\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "reason:        line one\n               line two\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "attempt:       2 of 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "created_at:    2026-01-10T11:00:00.000Z (60m ago)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "finished_at:   -\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "spark_version: 3.5\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "application:   /jobs/etl.py\n"));
    free(text);
    json_decref(job);
}

static void test_events_table(void)
{
    json_t *events = json_loads(
        "{\"events\":[{\"at\":\"2026-01-10T11:00:00.000Z\",\"from_state\":null,"
        "\"to_state\":\"PENDING\",\"reason\":\"submitted\"},"
        "{\"at\":\"2026-01-10T11:00:01.000Z\",\"from_state\":\"PENDING\","
        "\"to_state\":\"SUBMITTED\",\"reason\":\"\"}]}", 0, NULL);
    char *text = NULL;
    CAPTURE(text, cli_print_events_table(events, out));
    CU_ASSERT_STRING_EQUAL(text, "AT                        FROM     TO         REASON\n"
                                 "2026-01-10T11:00:00.000Z  -        PENDING    submitted\n"
                                 "2026-01-10T11:00:01.000Z  PENDING  SUBMITTED  -\n");
    free(text);
    json_decref(events);
}

static void test_api_errors(void)
{
    char out[512];
    const char body[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no job job-x\"}}";
    cli_format_api_error(404, body, strlen(body), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "no job job-x (not_found, HTTP 404)");

    const char details[] = "{\"error\":{\"code\":\"invalid_request\",\"message\":\"bad job\","
                           "\"details\":{\"field\":\"team\"}}}";
    cli_format_api_error(400, details, strlen(details), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "bad job (invalid_request, HTTP 400)\n"
                                "  details: {\"field\":\"team\"}");

    const char html[] = "<html>Bad Gateway</html>\r\nmore";
    cli_format_api_error(502, html, strlen(html), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "HTTP 502: <html>Bad Gateway</html>");
    cli_format_api_error(500, "", 0, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "HTTP 500 with an empty body");
}

static void test_exit_codes_for_statuses(void)
{
    CU_ASSERT_EQUAL(cli_exit_for_http_status(200), CLI_EXIT_OK);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(401), CLI_EXIT_AUTH);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(403), CLI_EXIT_AUTH);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(404), CLI_EXIT_NOT_FOUND);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(409), CLI_EXIT_API_ERROR);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(503), CLI_EXIT_API_ERROR);
    CU_ASSERT_EQUAL(cli_exit_for_http_status(302), CLI_EXIT_API_ERROR);
}

static const unit_test_case cases[] = {
    {"table columns line up (UTF-8 counted per character)", test_table_columns_line_up},
    {"server text cannot put escape sequences on the terminal",
     test_cells_cannot_carry_escape_sequences},
    {"reasons are cut to one short line", test_truncate},
    {"timestamps parse with fractions and offsets", test_timestamps},
    {"ages read 42s, 5m, 3h, 9d", test_ages},
    {"jobs table", test_jobs_table},
    {"job detail as key: value lines", test_job_detail},
    {"events table", test_events_table},
    {"API errors read 'message (code, HTTP status)'", test_api_errors},
    {"HTTP statuses map to exit codes", test_exit_codes_for_statuses},
    {NULL, NULL}};

UNIT_TEST_MAIN("cli_format", cases)
