/*
 * test_cli_job_file.c - job files in YAML or JSON become the POST /jobs body.
 *
 * The YAML a user writes must reach the API with the types they meant:
 * numbers as numbers, quoted text as text, booleans as booleans.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_job_file.h"
#include "unit_test.h"

static json_t *parse_ok(const char *text)
{
    json_t *job = NULL;
    char err[256];
    int rc = cli_job_file_parse("job.yaml", text, strlen(text), &job, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\nunexpected error: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return job;
}

static void test_yaml_job_becomes_typed_json(void)
{
    json_t *job = parse_ok("name: nightly-etl\n"
                           "team: data-infra\n"
                           "spark_version: \"3.5\"\n"
                           "application:\n"
                           "  file: /jobs/etl.py\n"
                           "  args: [\"--date\", 2026, '7']\n"
                           "  conf:\n"
                           "    spark.sql.shuffle.partitions: 8\n"
                           "resources:\n"
                           "  executor: {cores: 2, memory: 2g, instances: 3}\n"
                           "  dynamic_allocation:\n"
                           "    enabled: true\n"
                           "    ratio: 0.5\n"
                           "backend:\n");
    char *text = json_dumps(job, JSON_COMPACT);
    CU_ASSERT_STRING_EQUAL(
        text, "{\"name\":\"nightly-etl\",\"team\":\"data-infra\",\"spark_version\":\"3.5\","
              "\"application\":{\"file\":\"/jobs/etl.py\",\"args\":[\"--date\",2026,\"7\"],"
              "\"conf\":{\"spark.sql.shuffle.partitions\":8}},"
              "\"resources\":{\"executor\":{\"cores\":2,\"memory\":\"2g\",\"instances\":3},"
              "\"dynamic_allocation\":{\"enabled\":true,\"ratio\":0.5}},\"backend\":null}");
    free(text);
    json_decref(job);
}

static void test_plain_scalars_follow_the_core_schema(void)
{
    static const struct {
        const char *text;
        const char *json;
    } cases[] = {
        {"~", "null"},         {"null", "null"},   {"True", "true"},   {"false", "false"},
        {"-12", "-12"},        {"+7", "7"},        {"1.5e3", "1500.0"}, {".5", "0.5"},
        {"yes", "\"yes\""},    {"0x10", "\"0x10\""}, {"1_000", "\"1_000\""},
        {"99999999999999999999", "\"99999999999999999999\""}, {"3.5.1", "\"3.5.1\""},
        {".inf", "\".inf\""},  {"2g", "\"2g\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *value = cli_yaml_plain_scalar(cases[i].text);
        char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        if (strcmp(text, cases[i].json) != 0) {
            fprintf(stderr, "\n'%s' -> %s, expected %s\n", cases[i].text, text, cases[i].json);
            CU_FAIL("plain scalar typed wrongly");
        }
        free(text);
        json_decref(value);
    }
}

static void test_json_file_is_read_as_json(void)
{
    json_t *job = parse_ok("  \n{\"name\": \"x\", \"resources\": {\"executor\": {\"cores\": 2}}}");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                        json_object_get(json_object_get(job, "resources"), "executor"), "cores")),
                    2);
    json_decref(job);
}

static void test_bad_files_say_where(void)
{
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"{\"name\": \"x\",}", "job.yaml:1:"},
        {"{\"a\": 1, \"a\": 2}", "duplicate"},
        {"name: x\nteam: [unclosed\n", "job.yaml:"},
        {"name: a\nname: b\n", "job.yaml:2:"},
        {"- a\n- b\n", "mapping"},
        {"just text\n", "mapping"},
        {"   \n\n", "empty"},
        {"base: &b {x: 1}\nother: *b\n", "job.yaml:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *job = NULL;
        char err[256] = "";
        int rc = cli_job_file_parse("job.yaml", cases[i].text, strlen(cases[i].text), &job, err,
                                    sizeof err);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NULL(job);
        if (strstr(err, cases[i].needle) == NULL) {
            fprintf(stderr, "\ncase %zu: '%s' lacks '%s'\n", i, err, cases[i].needle);
            CU_FAIL("message does not say where or what");
        }
    }
}

static void test_reading_files(void)
{
    char path[] = "/tmp/test_cli_job_file.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *file = fdopen(fd, "w");
    fputs("name: from-a-file\n", file);
    fclose(file);
    char *data = NULL, err[256];
    size_t len = 0;
    CU_ASSERT_EQUAL(cli_job_file_read(path, &data, &len, err, sizeof err), 0);
    CU_ASSERT_EQUAL(len, 18);
    CU_ASSERT_STRING_EQUAL(data, "name: from-a-file\n");
    free(data);
    unlink(path);
    CU_ASSERT_EQUAL(cli_job_file_read(path, &data, &len, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
}

static const unit_test_case cases[] = {
    {"a YAML job becomes typed JSON", test_yaml_job_becomes_typed_json},
    {"plain scalars follow the YAML 1.2 core schema", test_plain_scalars_follow_the_core_schema},
    {"a file starting with '{' is JSON", test_json_file_is_read_as_json},
    {"bad files say where and what", test_bad_files_say_where},
    {"job files are read whole; a missing one is named", test_reading_files},
    {NULL, NULL}};

UNIT_TEST_MAIN("cli_job_file", cases)
