/*
 * test_cli_args.c - the sparkplane command line, its settings and their precedence.
 *
 * Parsing is a pure function of argv, and settings resolution a pure
 * function of the candidate values, so every case here is what a user
 * types and what the client would do with it, without a server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "cli_settings.h"
#include "unit_test.h"

#define ARGV(...) ((const char *const[]){"sparkplane", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((const char *const[]){"sparkplane", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(out, err, ...) \
    cli_args_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (out), (err), sizeof(err))

static void test_submit_with_every_option(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(PARSE(&a, err, "jobs", "submit", "-f", "job.yaml", "--idempotency-key",
                                "k-1", "--wait"), 0);
    CU_ASSERT_EQUAL(a.command, CLI_COMMAND_JOBS_SUBMIT);
    CU_ASSERT_STRING_EQUAL(a.file, "job.yaml");
    CU_ASSERT_STRING_EQUAL(a.idempotency_key, "k-1");
    CU_ASSERT_EQUAL(a.wait, 1);
    CU_ASSERT_EQUAL(a.output, CLI_OUTPUT_TABLE);
}

static void test_global_options_anywhere(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(PARSE(&a, err, "--server", "http://h:1", "jobs", "get", "-ojson",
                                "job-1", "--token=t0k"), 0);
    CU_ASSERT_EQUAL(a.command, CLI_COMMAND_JOBS_GET);
    CU_ASSERT_STRING_EQUAL(a.server, "http://h:1");
    CU_ASSERT_STRING_EQUAL(a.token, "t0k");
    CU_ASSERT_EQUAL(a.output, CLI_OUTPUT_JSON);
    CU_ASSERT_STRING_EQUAL(a.job_id, "job-1");
}

static void test_dash_f_means_follow_for_logs(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(PARSE(&a, err, "jobs", "logs", "-f", "job-9", "--offset", "120"), 0);
    CU_ASSERT_EQUAL(a.command, CLI_COMMAND_JOBS_LOGS);
    CU_ASSERT_EQUAL(a.follow, 1);
    CU_ASSERT_STRING_EQUAL(a.job_id, "job-9");
    CU_ASSERT_EQUAL(a.offset, 120);
    CU_ASSERT_PTR_NULL(a.file);
}

static void test_list_filters(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(PARSE(&a, err, "jobs", "list", "--team", "data-infra", "--state",
                                "running", "--name=etl", "--limit", "50", "--all"), 0);
    CU_ASSERT_EQUAL(a.command, CLI_COMMAND_JOBS_LIST);
    CU_ASSERT_STRING_EQUAL(a.team, "data-infra");
    CU_ASSERT_STRING_EQUAL(a.state, "RUNNING"); /* typed lower case, sent as the API spells it */
    CU_ASSERT_STRING_EQUAL(a.name, "etl");
    CU_ASSERT_EQUAL(a.limit, 50);
    CU_ASSERT_EQUAL(a.all, 1);
}

static void test_usage_errors_name_the_argument(void)
{
    const struct {
        int argc;
        const char *const *argv;
        const char *needle;
    } cases[] = {
        {ARGC("jobs", "list", "--limit", "0"), ARGV("jobs", "list", "--limit", "0"), "--limit"},
        {ARGC("jobs", "list", "--limit", "1001"), ARGV("jobs", "list", "--limit", "1001"),
         "1000"},
        {ARGC("jobs", "list", "--limit", "ten"), ARGV("jobs", "list", "--limit", "ten"), "ten"},
        {ARGC("jobs", "list", "--state", "DONE"), ARGV("jobs", "list", "--state", "DONE"),
         "SUCCEEDED"},
        {ARGC("jobs", "get"), ARGV("jobs", "get"), "JOB_ID"},
        {ARGC("jobs", "get", "a", "b"), ARGV("jobs", "get", "a", "b"), "'b'"},
        {ARGC("jobs", "submit"), ARGV("jobs", "submit"), "-f FILE"},
        {ARGC("jobs", "submit", "-f"), ARGV("jobs", "submit", "-f"), "needs a value"},
        {ARGC("jobs", "frobnicate"), ARGV("jobs", "frobnicate"), "jobs frobnicate"},
        {ARGC("jobs"), ARGV("jobs"), "missing jobs command"},
        {ARGC("clusters"), ARGV("clusters"), "'clusters'"},
        {ARGC("-o", "yaml", "version"), ARGV("-o", "yaml", "version"), "'yaml'"},
        {ARGC("jobs", "get", "--team", "x", "j"), ARGV("jobs", "get", "--team", "x", "j"),
         "--team"},
        {ARGC("--wait", "jobs", "submit"), ARGV("--wait", "jobs", "submit"), "after the command"},
        {ARGC("jobs", "list", "--all=yes"), ARGV("jobs", "list", "--all=yes"), "takes no value"},
        {ARGC("--server", "", "version"), ARGV("--server", "", "version"), "non-empty"},
        {ARGC("jobs", "submit", "-f", "x", "--idempotency-key", "a\r\nX: y"),
         ARGV("jobs", "submit", "-f", "x", "--idempotency-key", "a\r\nX: y"), "printable"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_args a;
        char err[256];
        int rc = cli_args_parse(cases[i].argc, cases[i].argv, &a, err, sizeof err);
        CU_ASSERT_EQUAL(rc, -1);
        if (strstr(err, cases[i].needle) == NULL) {
            fprintf(stderr, "case %zu: '%s' does not mention '%s'\n", i, err, cases[i].needle);
            CU_FAIL("usage message does not name the problem");
        }
    }
}

static void test_help_wins_over_a_typo(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL(PARSE(&a, err, "jobs", "submit", "--bogus", "--help"), 0);
    CU_ASSERT_EQUAL(a.help, 1);
    CU_ASSERT_EQUAL(PARSE(&a, err, "help"), 0);
    CU_ASSERT_EQUAL(a.command, CLI_COMMAND_HELP);
}

static void test_double_dash_ends_options(void)
{
    cli_args a;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(PARSE(&a, err, "jobs", "get", "--", "-odd-id"), 0);
    CU_ASSERT_STRING_EQUAL(a.job_id, "-odd-id");
    CU_ASSERT_EQUAL(a.output, CLI_OUTPUT_TABLE);
}

static void test_usage_lists_exit_codes(void)
{
    const char *usage = cli_args_usage();
    CU_ASSERT_PTR_NOT_NULL(strstr(usage, "3  cannot reach the server"));
    CU_ASSERT_PTR_NOT_NULL(strstr(usage, "7  submit --wait: the job was CANCELLED"));
}

/* ---- settings ---- */

static void test_flags_beat_env_beat_file(void)
{
    cli_settings s;
    char err[256];
    cli_settings_sources all = {"http://flag:1", "http://env:2", "http://file:3",
                                "flag-token", "env-token", "file-token"};
    CU_ASSERT_EQUAL_FATAL(cli_settings_resolve(&all, &s, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(s.server, "http://flag:1");
    CU_ASSERT_STRING_EQUAL(s.token, "flag-token");
    CU_ASSERT_STRING_EQUAL(s.server_source, "--server");

    cli_settings_sources no_flags = {NULL, "http://env:2", "http://file:3",
                                     "", "env-token", "file-token"};
    CU_ASSERT_EQUAL_FATAL(cli_settings_resolve(&no_flags, &s, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(s.server, "http://env:2");
    CU_ASSERT_STRING_EQUAL(s.token, "env-token"); /* an empty flag is "not set" */

    cli_settings_sources file_only = {NULL, "", "https://file:3/", NULL, NULL, "file-token"};
    CU_ASSERT_EQUAL_FATAL(cli_settings_resolve(&file_only, &s, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(s.server, "https://file:3"); /* trailing '/' dropped */
    CU_ASSERT_STRING_EQUAL(s.token, "file-token");
    CU_ASSERT_STRING_EQUAL(s.token_source, "the config file");
}

static void test_default_server_and_no_token(void)
{
    cli_settings s;
    char err[256];
    cli_settings_sources none = {0};
    CU_ASSERT_EQUAL_FATAL(cli_settings_resolve(&none, &s, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(s.server, CLI_DEFAULT_SERVER);
    CU_ASSERT_STRING_EQUAL(s.token, "");
    CU_ASSERT_PTR_NULL(s.token_source);
}

static void test_bad_settings_name_the_source_not_the_token(void)
{
    cli_settings s;
    char err[256];
    cli_settings_sources bad_server = {NULL, "ftp://x", NULL, NULL, NULL, NULL};
    CU_ASSERT_EQUAL(cli_settings_resolve(&bad_server, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "SPARKPLANE_SERVER"));
    cli_settings_sources bad_token = {NULL, NULL, NULL, "secret\nInjected: 1", NULL, NULL};
    CU_ASSERT_EQUAL(cli_settings_resolve(&bad_token, &s, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--token"));
    CU_ASSERT_PTR_NULL(strstr(err, "secret"));
}

static void test_config_path_choice(void)
{
    char path[256];
    int must;
    CU_ASSERT_EQUAL(cli_config_path("/etc/x.yaml", "/xdg", "/home/u", path, sizeof path, &must),
                    0);
    CU_ASSERT_STRING_EQUAL(path, "/etc/x.yaml");
    CU_ASSERT_EQUAL(must, 1);
    CU_ASSERT_EQUAL(cli_config_path(NULL, "/xdg", "/home/u", path, sizeof path, &must), 0);
    CU_ASSERT_STRING_EQUAL(path, "/xdg/sparkplane/config.yaml");
    CU_ASSERT_EQUAL(must, 0);
    CU_ASSERT_EQUAL(cli_config_path("", "relative", "/home/u", path, sizeof path, &must), 0);
    CU_ASSERT_STRING_EQUAL(path, "/home/u/.config/sparkplane/config.yaml");
    CU_ASSERT_EQUAL(cli_config_path(NULL, NULL, NULL, path, sizeof path, &must), -1);
}

static void test_config_file_keys(void)
{
    cli_config_file c;
    char err[256];
    const char text[] = "server: http://example:8080\ntoken: \"abc\"\n";
    CU_ASSERT_EQUAL_FATAL(cli_config_load_buffer("c.yaml", text, strlen(text), &c, err,
                                                 sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(c.server, "http://example:8080");
    CU_ASSERT_STRING_EQUAL(c.token, "abc");
    cli_config_clear(&c);

    const char empty_token[] = "server: http://e\ntoken:\n";
    CU_ASSERT_EQUAL_FATAL(cli_config_load_buffer("c.yaml", empty_token, strlen(empty_token), &c,
                                                 err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(c.token);
    cli_config_clear(&c);
}

static void test_config_file_problems_have_locations(void)
{
    cli_config_file c;
    char err[256];
    const char typo[] = "server: http://e\nsever: http://f\n";
    CU_ASSERT_EQUAL(cli_config_load_buffer("c.yaml", typo, strlen(typo), &c, err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "c.yaml:2:1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sever"));
    const char list[] = "token: [a, b]\n";
    CU_ASSERT_EQUAL(cli_config_load_buffer("c.yaml", list, strlen(list), &c, err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "token must be a string"));
    const char broken[] = "server: [\n";
    CU_ASSERT_EQUAL(cli_config_load_buffer("c.yaml", broken, strlen(broken), &c, err,
                                           sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "c.yaml:"));
}

static void test_config_file_missing(void)
{
    cli_config_file c;
    char err[256];
    CU_ASSERT_EQUAL(cli_config_load("/nonexistent/sparkplane.yaml", 0, &c, err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(c.server);
    CU_ASSERT_EQUAL(cli_config_load("/nonexistent/sparkplane.yaml", 1, &c, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/sparkplane.yaml"));
}

static const unit_test_case cases[] = {
    {"submit takes -f, --idempotency-key and --wait", test_submit_with_every_option},
    {"global options are accepted before and after the command", test_global_options_anywhere},
    {"-f means follow for jobs logs", test_dash_f_means_follow_for_logs},
    {"list filters are parsed and the state upper-cased", test_list_filters},
    {"usage errors name the bad argument", test_usage_errors_name_the_argument},
    {"--help wins over a typo before it", test_help_wins_over_a_typo},
    {"-- ends options", test_double_dash_ends_options},
    {"the usage text documents the exit codes", test_usage_lists_exit_codes},
    {"flags beat environment beat config file", test_flags_beat_env_beat_file},
    {"default server, no token", test_default_server_and_no_token},
    {"bad settings name their source, never the token",
     test_bad_settings_name_the_source_not_the_token},
    {"config path: SPARKPLANE_CONFIG, XDG, HOME", test_config_path_choice},
    {"config file keys server and token", test_config_file_keys},
    {"config file problems have file:line:column", test_config_file_problems_have_locations},
    {"a missing default config file is fine, a named one is not", test_config_file_missing},
    {NULL, NULL}};

UNIT_TEST_MAIN("cli_args", cases)
