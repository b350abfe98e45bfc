/*
 * test_job_spec.c - job requests as clients send them: both shapes become
 * the same normalised document with defaults filled, every refusal names
 * the field, and the request hash ignores key order, whitespace and the
 * idempotency token but not the content.
 */
#include <sparkplane/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_spec.h"
#include "unit_test.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, 0, &jerr);
    if (value == NULL)
        fprintf(stderr, "\n    bad test JSON: %s: %s", text, jerr.text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(value);
    return value;
}

/* Normalises text that must be accepted; returns the document. */
static json_t *normalise_ok(const char *text, const char **token)
{
    json_t *request = parse(text);
    json_t *spec = NULL;
    const char *ignored;
    job_spec_error error;
    int rc = job_spec_normalise(request, &spec, token ? token : &ignored, &error);
    if (rc != SP_OK)
        fprintf(stderr, "\n    refused: %s", error.message);
    CU_ASSERT_EQUAL_FATAL(rc, SP_OK);
    if (token != NULL && *token != NULL)
        *token = strdup(*token); /* outlive the request */
    json_decref(request);
    return spec;
}

static void hash_of(const char *text, char hex[JOB_SPEC_HASH_SIZE])
{
    json_t *spec = normalise_ok(text, NULL);
    CU_ASSERT_EQUAL(job_spec_hash(spec, hex), 0);
    json_decref(spec);
}

static int dumps_equal(const json_t *spec, const char *expected)
{
    json_t *want = parse(expected);
    int equal = json_equal(spec, want);
    if (!equal) {
        char *got = json_dumps(spec, JSON_SORT_KEYS | JSON_COMPACT);
        fprintf(stderr, "\n    got:  %s\n    want: %s", got, expected);
        free(got);
    }
    json_decref(want);
    return equal;
}

#define MINIMAL_PLAIN                                                                    \
    "{\"name\":\"count\",\"team\":\"data-infra\",\"spark_version\":\"4.0\","           \
    "\"application\":{\"file\":\"/jobs/count.py\"}}"

static void test_plain_minimal_gets_defaults(void)
{
    json_t *spec = normalise_ok(MINIMAL_PLAIN, NULL);
    CU_ASSERT(dumps_equal(
        spec, "{\"name\":\"count\",\"team\":\"data-infra\",\"spark_version\":\"4.0\","
              "\"environment\":\"dev\",\"region\":\"local\","
              "\"application\":{\"file\":\"/jobs/count.py\",\"args\":[],\"py_files\":[],"
              "\"jars\":[],\"conf\":{}},"
              "\"resources\":{\"driver\":{\"cores\":1,\"memory\":\"1g\"},"
              "\"executor\":{\"cores\":1,\"memory\":\"1g\",\"instances\":1},"
              "\"dynamic_allocation\":{\"enabled\":false,\"min_executors\":0,"
              "\"max_executors\":0}}}"));
    json_decref(spec);
}

static void test_plain_full(void)
{
    const char *token = NULL;
    json_t *spec = normalise_ok(
        "{\"name\":\"Etl.v2_x-1\",\"team\":\"ml\",\"spark_version\":\"3.5.1\","
        "\"environment\":\"prod\",\"region\":\"us-east-1\",\"backend\":\"backend_local\","
        "\"max_attempts\":3,\"idempotency_token\":\"run:2024-01-01\","
        "\"application\":{\"file\":\"s3://b/etl.jar\",\"class\":\"org.example.Etl$Main\","
        "\"args\":[\"--day\",\"\"],\"py_files\":[],\"jars\":[\"extra.jar\"],"
        "\"conf\":{\"spark.sql.shuffle.partitions\":\"8\"}},"
        "\"resources\":{\"driver\":{\"cores\":2,\"memory\":\"2048M\"},"
        "\"executor\":{\"cores\":4,\"memory\":\"512mb\",\"instances\":0},"
        "\"dynamic_allocation\":{\"enabled\":true,\"min_executors\":1,\"max_executors\":10}}}",
        &token);
    CU_ASSERT(dumps_equal(
        spec, "{\"name\":\"Etl.v2_x-1\",\"team\":\"ml\",\"spark_version\":\"3.5.1\","
              "\"environment\":\"prod\",\"region\":\"us-east-1\",\"backend\":\"backend_local\","
              "\"max_attempts\":3,"
              "\"application\":{\"file\":\"s3://b/etl.jar\",\"class\":\"org.example.Etl$Main\","
              "\"args\":[\"--day\",\"\"],\"py_files\":[],\"jars\":[\"extra.jar\"],"
              "\"conf\":{\"spark.sql.shuffle.partitions\":\"8\"}},"
              "\"resources\":{\"driver\":{\"cores\":2,\"memory\":\"2g\"},"
              "\"executor\":{\"cores\":4,\"memory\":\"512m\",\"instances\":0},"
              "\"dynamic_allocation\":{\"enabled\":true,\"min_executors\":1,"
              "\"max_executors\":10}}}"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(token);
    CU_ASSERT_STRING_EQUAL(token, "run:2024-01-01");
    free((char *)token);
    json_decref(spec);
}

#define DOCS_SHAPE                                                                        \
    "{\"name\":\"count\",\"team\":\"data-infra\",\"config\":{\"spark_version\":\"4.0\","   \
    "\"job_type\":\"BATCH\",\"core_etl\":{\"job_spec\":{\"main_application_file\":"      \
    "\"/jobs/count.jar\",\"main_class\":\"a.B\",\"arguments\":[\"1\"],"                 \
    "\"spark_conf\":{\"k\":\"v\"},\"executor\":{\"instances\":3,\"memory\":\"4g\"}}}}}"

static void test_docs_shape_maps_onto_application(void)
{
    json_t *spec = normalise_ok(DOCS_SHAPE, NULL);
    CU_ASSERT(dumps_equal(
        spec, "{\"name\":\"count\",\"team\":\"data-infra\",\"spark_version\":\"4.0\","
              "\"environment\":\"dev\",\"region\":\"local\","
              "\"application\":{\"file\":\"/jobs/count.jar\",\"class\":\"a.B\","
              "\"args\":[\"1\"],\"py_files\":[],\"jars\":[],\"conf\":{\"k\":\"v\"}},"
              "\"resources\":{\"driver\":{\"cores\":1,\"memory\":\"1g\"},"
              "\"executor\":{\"cores\":1,\"memory\":\"4g\",\"instances\":3},"
              "\"dynamic_allocation\":{\"enabled\":false,\"min_executors\":0,"
              "\"max_executors\":0}}}"));
    json_decref(spec);

    /* core_etl.version is kept; the plain keys work inside job_spec too */
    spec = normalise_ok("{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"3.5\","
                        "\"core_etl\":{\"version\":\"2.1.0\",\"job_spec\":{\"file\":\"x.py\","
                        "\"args\":[\"a\"],\"conf\":{}}}},\"region\":\"eu-west-1\"}",
                        NULL);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_object_get(spec, "core_etl"),
                                                             "version")),
                           "2.1.0");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(spec, "region")), "eu-west-1");
    json_decref(spec);
}

static void test_both_shapes_hash_alike(void)
{
    char plain[JOB_SPEC_HASH_SIZE], docs[JOB_SPEC_HASH_SIZE];
    hash_of(MINIMAL_PLAIN, plain);
    hash_of("{\"team\":\"data-infra\",\"name\":\"count\",\"config\":{\"core_etl\":{"
            "\"job_spec\":{\"file\":\"/jobs/count.py\"}},\"spark_version\":\"4.0\"}}",
            docs);
    CU_ASSERT_STRING_EQUAL(plain, docs);
    CU_ASSERT_EQUAL(strlen(plain), 64);
}

static void test_hash_ignores_order_whitespace_and_token(void)
{
    char a[JOB_SPEC_HASH_SIZE], b[JOB_SPEC_HASH_SIZE], c[JOB_SPEC_HASH_SIZE];
    hash_of("{\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4.0\",\"application\":"
            "{\"file\":\"a.py\",\"conf\":{\"x\":\"1\",\"y\":\"2\"}},\"idempotency_token\":\"k1\"}",
            a);
    hash_of("{ \"application\" : { \"conf\" : {\"y\":\"2\", \"x\":\"1\"}, \"file\":\"a.py\" },\n"
            "  \"spark_version\":\"4.0\", \"team\":\"t\", \"name\":\"n\",\n"
            "  \"idempotency_token\":\"another\", \"environment\":\"dev\",\n"
            "  \"resources\":{\"driver\":{\"memory\":\"1024m\"}}}",
            b);
    CU_ASSERT_STRING_EQUAL(a, b); /* defaults written out or not, same request */

    /* what does change the request changes the hash */
    hash_of("{\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4.0\",\"application\":"
            "{\"file\":\"a.py\",\"conf\":{\"x\":\"1\",\"y\":\"3\"}}}",
            c);
    CU_ASSERT_STRING_NOT_EQUAL(a, c);
    hash_of("{\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4.0\",\"application\":"
            "{\"file\":\"a.py\",\"args\":[\"x\"],\"conf\":{\"x\":\"1\",\"y\":\"2\"}}}",
            c);
    CU_ASSERT_STRING_NOT_EQUAL(a, c);

    /* a known value: SHA-256 of the compact sorted dump */
    json_t *doc = parse("{\"b\":1,\"a\":[]}");
    CU_ASSERT_EQUAL(job_spec_hash(doc, a), 0);
    /* printf '{"a":[],"b":1}' | sha256sum */
    CU_ASSERT_STRING_EQUAL(a, "1c8f8816506a8ccbc55140d8a7bb70214a8942c7030fc0fc2914cec675cd1c15");
    json_decref(doc);
}

static void test_memory_sizes(void)
{
    static const struct {
        const char *given, *normal;
    } sizes[] = {{"32m", "32m"},     {"32768k", "32m"}, {"1536M", "1536m"}, {"2048m", "2g"},
                 {"4G", "4g"},       {"4gb", "4g"},     {"512g", "512g"},   {"33000k", "33000k"},
                 {"0t", NULL},       {"31m", NULL},     {"513g", NULL},     {"1t", NULL},
                 {"512", NULL},      {"4 g", NULL},     {"g", NULL},        {"4gib", NULL},
                 {"-1g", NULL},      {"1.5g", NULL},    {"999999999999t", NULL},
                 {"9999999999999g", NULL}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4\",\"application\":"
                 "{\"file\":\"a.py\"},\"resources\":{\"executor\":{\"memory\":\"%s\"}}}",
                 sizes[i].given);
        json_t *request = parse(text), *spec = NULL;
        const char *token;
        job_spec_error error;
        int rc = job_spec_normalise(request, &spec, &token, &error);
        if (sizes[i].normal != NULL) {
            CU_ASSERT_EQUAL_FATAL(rc, SP_OK);
            const json_t *memory = json_object_get(
                json_object_get(json_object_get(spec, "resources"), "executor"), "memory");
            CU_ASSERT_STRING_EQUAL(json_string_value(memory), sizes[i].normal);
        } else {
            CU_ASSERT_EQUAL(rc, SP_INVALID);
            CU_ASSERT_STRING_EQUAL(error.field, "resources.executor.memory");
            CU_ASSERT_PTR_NULL(spec);
        }
        json_decref(spec);
        json_decref(request);
    }
}

typedef struct refusal {
    const char *request;
    const char *field;
    const char *message;
} refusal;

#define APP "\"application\":{\"file\":\"a.py\"}"
#define BASE "\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4.0\""

static const refusal refusals[] = {
    {"[]", "", "expected a JSON object"},
    {"{\"team\":\"t\",\"spark_version\":\"4\"," APP "}", "name", "name: required"},
    {"{\"name\":\"a b\",\"team\":\"t\",\"spark_version\":\"4\"," APP "}", "name",
     "name: must match [A-Za-z0-9._-]{1,128}"},
    {"{\"name\":7,\"team\":\"t\",\"spark_version\":\"4\"," APP "}", "name",
     "name: expected a string"},
    {"{\"name\":\"n\",\"team\":\"Data\",\"spark_version\":\"4\"," APP "}", "team",
     "team: must match [a-z0-9-]{1,63}"},
    {"{\"name\":\"n\",\"spark_version\":\"4\"," APP "}", "team", "team: required"},
    {"{\"name\":\"n\",\"team\":\"t\",\"spark_version\":\"4.\"," APP "}", "spark_version",
     "spark_version: must match [0-9]+(.[0-9]+)*"},
    {"{\"name\":\"n\",\"team\":\"t\",\"spark_version\":4.0," APP "}", "spark_version",
     "spark_version: expected a string"},
    {"{" BASE "}", "application", "application: required"},
    {"{" BASE ",\"application\":[]}", "application", "application: expected an object"},
    {"{" BASE ",\"application\":{}}", "application.file", "application.file: required"},
    {"{" BASE ",\"application\":{\"file\":\"a.sh\"}}", "application.file",
     "application.file: expected a .py or .jar file"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"class\":\"x.Y\"}}", "application.class",
     "application.class: only a .jar application has a main class"},
    {"{" BASE ",\"application\":{\"file\":\"a.jar\",\"class\":\"x..Y\"}}", "application.class",
     "application.class: expected a Java class name such as org.example.Main"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"args\":[\"1\",2]}}", "application.args[1]",
     "application.args[1]: expected a string"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"args\":\"1 2\"}}", "application.args",
     "application.args: expected an array of strings"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"py_files\":[\"\"]}}",
     "application.py_files[0]", "application.py_files[0]: must not be empty"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"conf\":{\"a\":1}}}", "application.conf.a",
     "application.conf.a: expected a string"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"conf\":[]}}", "application.conf",
     "application.conf: expected an object of string values"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"conf\":{\"spark.executor.memory\":\"1g\"}}}",
     "application.conf.spark.executor.memory",
     "application.conf.spark.executor.memory: set resources.executor.memory instead"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"conf\":{\"spark.master\":\"yarn\"}}}",
     "application.conf.spark.master",
     "application.conf.spark.master: set by the backend; remove it"},
    {"{" BASE ",\"application\":{\"file\":\"a.py\",\"colour\":\"red\"}}", "application.colour",
     "application.colour: unknown field; known fields: file, class, args, py_files, jars, conf"},
    {"{" BASE "," APP ",\"resources\":{\"driver\":{\"cores\":0}}}", "resources.driver.cores",
     "resources.driver.cores: expected an integer from 1 to 64"},
    {"{" BASE "," APP ",\"resources\":{\"executor\":{\"cores\":65}}}",
     "resources.executor.cores", "resources.executor.cores: expected an integer from 1 to 64"},
    {"{" BASE "," APP ",\"resources\":{\"executor\":{\"cores\":\"2\"}}}",
     "resources.executor.cores", "resources.executor.cores: expected an integer from 1 to 64"},
    {"{" BASE "," APP ",\"resources\":{\"executor\":{\"instances\":1001}}}",
     "resources.executor.instances",
     "resources.executor.instances: expected an integer from 0 to 1000"},
    {"{" BASE "," APP ",\"resources\":{\"executor\":{\"memory\":4}}}",
     "resources.executor.memory", "resources.executor.memory: expected a size like 512m or 4g"},
    {"{" BASE "," APP ",\"resources\":{\"driver\":{\"memory\":\"16m\"}}}",
     "resources.driver.memory", "resources.driver.memory: must be from 32m to 512g"},
    {"{" BASE "," APP ",\"resources\":{\"driver\":{\"instances\":2}}}",
     "resources.driver.instances",
     "resources.driver.instances: unknown field; known fields: cores, memory"},
    {"{" BASE "," APP ",\"resources\":{\"gpu\":1}}", "resources.gpu",
     "resources.gpu: unknown field; known fields: driver, executor, dynamic_allocation"},
    {"{" BASE "," APP ",\"resources\":{\"dynamic_allocation\":{\"enabled\":\"yes\"}}}",
     "resources.dynamic_allocation.enabled",
     "resources.dynamic_allocation.enabled: expected true or false"},
    {"{" BASE "," APP ",\"resources\":{\"dynamic_allocation\":{\"enabled\":true}}}",
     "resources.dynamic_allocation.max_executors",
     "resources.dynamic_allocation.max_executors: required when dynamic allocation is enabled"},
    {"{" BASE "," APP ",\"resources\":{\"dynamic_allocation\":{\"enabled\":true,"
     "\"min_executors\":5,\"max_executors\":2}}}",
     "resources.dynamic_allocation.min_executors",
     "resources.dynamic_allocation.min_executors: must not exceed max_executors (2)"},
    {"{" BASE "," APP ",\"environment\":\"Prod\"}", "environment",
     "environment: must match [a-z0-9-]{1,63}"},
    {"{" BASE "," APP ",\"region\":\"\"}", "region", "region: must match [a-z0-9-]{1,63}"},
    {"{" BASE "," APP ",\"backend\":\"../x\"}", "backend", "backend: must match [a-z0-9_]{1,64}"},
    {"{" BASE "," APP ",\"max_attempts\":0}", "max_attempts",
     "max_attempts: expected an integer from 1 to 10"},
    {"{" BASE "," APP ",\"max_attempts\":11}", "max_attempts",
     "max_attempts: expected an integer from 1 to 10"},
    {"{" BASE "," APP ",\"idempotency_token\":\"a b\"}", "idempotency_token",
     "idempotency_token: must match [A-Za-z0-9._:-]{1,128}"},
    {"{" BASE "," APP ",\"colour\":\"red\"}", "colour",
     "colour: unknown field; known fields: name, team, spark_version, application, resources, "
     "environment, region, backend, idempotency_token, max_attempts"},
    /* docs shape */
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{}}", "config.spark_version",
     "config.spark_version: required"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\"}}", "config.core_etl",
     "config.core_etl: required"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"job_type\":"
     "\"STREAMING\",\"core_etl\":{}}}",
     "config.job_type", "config.job_type: only BATCH is supported here, got 'STREAMING'"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":{}}}",
     "config.core_etl.job_spec", "config.core_etl.job_spec: required"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"job_spec\":{}}}}",
     "config.core_etl.job_spec.file", "config.core_etl.job_spec.file: required"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"job_spec\":{\"file\":\"a.py\",\"main_application_file\":\"b.py\"}}}}",
     "config.core_etl.job_spec.main_application_file",
     "config.core_etl.job_spec.main_application_file: cannot be combined with "
     "config.core_etl.job_spec.file"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"job_spec\":{\"file\":\"a.py\",\"executor\":{\"memory\":\"1q\"}}}}}",
     "config.core_etl.job_spec.executor.memory",
     "config.core_etl.job_spec.executor.memory: expected a size like 512m or 4g"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"job_spec\":{\"file\":\"a.py\",\"spark_conf\":{\"spark.driver.cores\":\"2\"}}}}}",
     "config.core_etl.job_spec.spark_conf.spark.driver.cores",
     "config.core_etl.job_spec.spark_conf.spark.driver.cores: set "
     "config.core_etl.job_spec.driver.cores instead"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"version\":\"1 0\",\"job_spec\":{\"file\":\"a.py\"}}}}",
     "config.core_etl.version", "config.core_etl.version: must match [A-Za-z0-9._+-]{1,64}"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\",\"core_etl\":"
     "{\"job_spec\":{\"file\":\"a.py\",\"queue\":\"q\"}}}}",
     "config.core_etl.job_spec.queue",
     "config.core_etl.job_spec.queue: unknown field; known fields: file, main_application_file, "
     "class, main_class, args, arguments, py_files, jars, conf, spark_conf, driver, executor, "
     "dynamic_allocation"},
    {"{\"name\":\"n\",\"team\":\"t\",\"config\":{\"spark_version\":\"4\"}," APP "}", "config",
     "config: cannot be combined with application, resources or spark_version; use either the "
     "config.core_etl shape or the plain one"},
    {NULL, NULL, NULL}};

static void test_every_refusal_names_its_field(void)
{
    for (const refusal *r = refusals; r->request != NULL; r++) {
        json_t *request = parse(r->request), *spec = (json_t *)&spec;
        const char *token = "untouched";
        job_spec_error error;
        int rc = job_spec_normalise(request, &spec, &token, &error);
        CU_ASSERT_EQUAL(rc, SP_INVALID);
        CU_ASSERT_PTR_NULL(spec);
        CU_ASSERT_PTR_NULL(token);
        if (strcmp(error.field, r->field) != 0 || strcmp(error.message, r->message) != 0) {
            fprintf(stderr, "\n    request: %s\n    got:  %s | %s\n    want: %s | %s",
                    r->request, error.field, error.message, r->field, r->message);
            CU_FAIL("wrong refusal");
        }
        json_decref(request);
    }
}

/* Builds {"name":..,"application":{"file":"a.py","<key>": <count items>}}. */
static json_t *request_with_list(const char *key, size_t count, int as_object)
{
    json_t *request = parse("{" BASE "," APP "}");
    json_t *app = json_object_get(request, "application");
    json_t *items = as_object ? json_object() : json_array();
    for (size_t i = 0; i < count; i++) {
        char name[32];
        snprintf(name, sizeof(name), "k%zu", i);
        if (as_object)
            json_object_set_new(items, name, json_string("v"));
        else
            json_array_append_new(items, json_string(name));
    }
    json_object_set_new(app, key, items);
    return request;
}

static int refused_at(json_t *request, const char *field)
{
    json_t *spec = NULL;
    const char *token;
    job_spec_error error;
    int rc = job_spec_normalise(request, &spec, &token, &error);
    json_decref(spec);
    json_decref(request);
    if (rc == SP_OK)
        return field == NULL;
    if (field == NULL || strcmp(error.field, field) != 0)
        fprintf(stderr, "\n    refused: %s", error.message);
    return field != NULL && strcmp(error.field, field) == 0;
}

static void test_bounds(void)
{
    CU_ASSERT(refused_at(request_with_list("args", 256, 0), NULL));
    CU_ASSERT(refused_at(request_with_list("args", 257, 0), "application.args"));
    CU_ASSERT(refused_at(request_with_list("jars", 257, 0), "application.jars"));
    CU_ASSERT(refused_at(request_with_list("conf", 256, 1), NULL));
    CU_ASSERT(refused_at(request_with_list("conf", 257, 1), "application.conf"));

    char *longest = malloc(4097 + 1);
    memset(longest, 'x', 4097);
    longest[4097] = '\0';
    json_t *request = parse("{" BASE "," APP "}");
    json_t *args = json_array();
    json_array_append_new(args, json_string(longest + 1)); /* 4096 bytes: fine */
    json_object_set_new(json_object_get(request, "application"), "args", args);
    CU_ASSERT(refused_at(request, NULL));
    request = parse("{" BASE "," APP "}");
    args = json_array();
    json_array_append_new(args, json_string("ok"));
    json_array_append_new(args, json_string(longest));
    json_object_set_new(json_object_get(request, "application"), "args", args);
    CU_ASSERT(refused_at(request, "application.args[1]"));
    free(longest);

    /* a name of 128 characters is fine, 129 is not; NUL inside a string is refused */
    char name[130];
    memset(name, 'n', 129);
    name[129] = '\0';
    request = parse("{" BASE "," APP "}");
    json_object_set_new(request, "name", json_string(name + 1));
    CU_ASSERT(refused_at(request, NULL));
    request = parse("{" BASE "," APP "}");
    json_object_set_new(request, "name", json_string(name));
    CU_ASSERT(refused_at(request, "name"));
    request = parse("{" BASE "," APP "}");
    json_object_set_new(json_object_get(request, "application"), "file",
                        json_stringn("a\0.py", 5));
    CU_ASSERT(refused_at(request, "application.file"));
}

static void test_idempotency_key_syntax(void)
{
    CU_ASSERT_TRUE(job_spec_idempotency_key_valid("abc-DEF_1.2:3"));
    CU_ASSERT_FALSE(job_spec_idempotency_key_valid(""));
    CU_ASSERT_FALSE(job_spec_idempotency_key_valid("a b"));
    CU_ASSERT_FALSE(job_spec_idempotency_key_valid("a/b"));
    CU_ASSERT_FALSE(job_spec_idempotency_key_valid(NULL));
    char key[130];
    memset(key, 'k', 129);
    key[129] = '\0';
    CU_ASSERT_FALSE(job_spec_idempotency_key_valid(key));
    CU_ASSERT_TRUE(job_spec_idempotency_key_valid(key + 1));
}

static const unit_test_case cases[] = {
    {"a minimal plain request gets every default", test_plain_minimal_gets_defaults},
    {"a plain request that sets everything", test_plain_full},
    {"the docs shape maps core_etl.job_spec onto the application",
     test_docs_shape_maps_onto_application},
    {"both shapes of one request hash alike", test_both_shapes_hash_alike},
    {"the hash ignores key order, whitespace and the token",
     test_hash_ignores_order_whitespace_and_token},
    {"memory sizes are checked and written one way", test_memory_sizes},
    {"every refusal names its field", test_every_refusal_names_its_field},
    {"lists, maps and strings are bounded", test_bounds},
    {"idempotency key syntax", test_idempotency_key_syntax},
    {NULL, NULL}};

UNIT_TEST_MAIN("job_spec", cases)
