/*
 * test_cluster_spec.c - cluster requests as a client sends them (create,
 * scale, ttl) checked against a provisioning configuration, and the names a
 * cluster gets: every default, every refusal with its field and message,
 * and the shortening rules of ids.
 */
#include <jansson.h>
#include <sparkplane/plugin.h>
#include <stdio.h>
#include <string.h>

#include "../../core/cluster_registry.h"
#include "../../core/cluster_spec.h"
#include "unit_test.h"

static const char test_yaml[] =
    "gateway: {domain: example.team}\n"
    "provisioning:\n"
    "  environments:\n"
    "    dev: {default_ttl: 8h, max_ttl: 7d}\n"
    "    prod: {default_ttl: 7d, max_ttl: persistent}\n"
    "  regions:\n"
    "    eu-west-1: {fallback: us-east-1}\n"
    "    us-east-1: {}\n"
    "  sizes:\n"
    "    small: {driver: {cores: 1, memory: 1g}, executors: 1, executor: {cores: 1, memory: 1g}}\n"
    "    large: {driver: {cores: 2, memory: 4g}, executors: 4,\n"
    "            executor: {cores: 4, memory: 1536m}}\n"
    "  catalogs:\n"
    "    pedregal:\n"
    "      spark.sql.catalog.pedregal: org.apache.iceberg.spark.SparkCatalog\n"
    "      spark.sql.catalog.pedregal.warehouse: 's3://wh/{team}/{env}/{region}/{domain}'\n"
    "    lake:\n"
    "      spark.sql.catalog.pedregal.warehouse: 's3://lake/{team}'\n"
    "      spark.sql.defaultCatalog: lake\n";

static config *load_config(const char *yaml)
{
    diag_list problems = {0};
    config *cfg = NULL;
    int rc = config_load_buffer("t.yaml", yaml, strlen(yaml), "/plugins", &cfg, &problems);
    for (size_t i = 0; i < problems.count; i++)
        fprintf(stderr, "\n    problem: %s", problems.messages[i]);
    diag_clear(&problems);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return cfg;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (value == NULL)
        fprintf(stderr, "\n    bad test JSON: %s: %s", text, jerr.text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(value);
    return value;
}

/* Normalises `request`; checks the result equals `expected` (JSON text). */
static void expect_spec(const config *cfg, const char *request, const char *expected)
{
    json_t *body = parse(request), *want = parse(expected), *spec = NULL;
    const char *token = NULL;
    cluster_spec_error error;
    int rc = cluster_spec_normalise(cfg, body, &spec, &token, &error);
    if (rc != SP_OK)
        fprintf(stderr, "\n    refused %s: %s", request, error.message);
    CU_ASSERT_EQUAL_FATAL(rc, SP_OK);
    if (!json_equal(spec, want)) {
        char *got = json_dumps(spec, JSON_SORT_KEYS);
        fprintf(stderr, "\n    got %s\n    for %s", got, request);
        free(got);
    }
    CU_ASSERT_TRUE(json_equal(spec, want));
    json_decref(spec);
    json_decref(want);
    json_decref(body);
}

/* Normalising `request` is refused with exactly this field and message. */
static void expect_refusal(const config *cfg, const char *request, const char *field,
                           const char *message)
{
    json_t *body = parse(request), *spec = (json_t *)&spec;
    const char *token = "unset";
    cluster_spec_error error;
    CU_ASSERT_EQUAL(cluster_spec_normalise(cfg, body, &spec, &token, &error), SP_INVALID);
    CU_ASSERT_PTR_NULL(spec);
    CU_ASSERT_PTR_NULL(token);
    if (strcmp(error.field, field) != 0 || strcmp(error.message, message) != 0)
        fprintf(stderr, "\n    for %s\n    got   [%s] %s\n    want  [%s] %s", request, error.field,
                error.message, field, message);
    CU_ASSERT_STRING_EQUAL(error.field, field);
    CU_ASSERT_STRING_EQUAL(error.message, message);
    json_decref(body);
}

static void test_defaults_are_filled(void)
{
    config *cfg = load_config(test_yaml);
    expect_spec(cfg, "{\"team\": \"feature-eng\", \"environment\": \"dev\"}",
                "{\"team\": \"feature-eng\", \"environment\": \"dev\", \"region\": \"eu-west-1\","
                " \"size\": \"small\", \"catalogs\": [], \"ttl\": \"8h\", \"ttl_seconds\": 28800,"
                " \"resources\": {\"driver\": {\"cores\": 1, \"memory\": \"1g\"}, \"executors\": 1,"
                "               \"executor\": {\"cores\": 1, \"memory\": \"1g\"}},"
                " \"cores\": 2, \"memory_mib\": 2048}");
    /* null means "not given" */
    expect_spec(cfg,
                "{\"team\": \"ml\", \"environment\": \"prod\", \"region\": null, \"size\": null,"
                " \"catalogs\": null, \"ttl\": null, \"idempotency_token\": null}",
                "{\"team\": \"ml\", \"environment\": \"prod\", \"region\": \"eu-west-1\","
                " \"size\": \"small\", \"catalogs\": [], \"ttl\": \"7d\", \"ttl_seconds\": 604800,"
                " \"resources\": {\"driver\": {\"cores\": 1, \"memory\": \"1g\"}, \"executors\": 1,"
                "               \"executor\": {\"cores\": 1, \"memory\": \"1g\"}},"
                " \"cores\": 2, \"memory_mib\": 2048}");
    config_free(cfg);

    /* without a size called small, the first configured size */
    cfg = load_config("provisioning:\n"
                      "  sizes:\n"
                      "    tiny: {driver: {cores: 1, memory: 512m}, executors: 2,\n"
                      "           executor: {cores: 1, memory: 512m}}\n"
                      "    big: {driver: {cores: 2, memory: 2g}, executors: 2,\n"
                      "          executor: {cores: 2, memory: 2g}}\n");
    expect_spec(cfg, "{\"team\": \"a\", \"environment\": \"ci\"}",
                "{\"team\": \"a\", \"environment\": \"ci\", \"region\": \"local\","
                " \"size\": \"tiny\", \"catalogs\": [], \"ttl\": \"2h\", \"ttl_seconds\": 7200,"
                " \"resources\": {\"driver\": {\"cores\": 1, \"memory\": \"512m\"},"
                "               \"executors\": 2,"
                "               \"executor\": {\"cores\": 1, \"memory\": \"512m\"}},"
                " \"cores\": 3, \"memory_mib\": 1536}");
    config_free(cfg);
}

static void test_full_request(void)
{
    config *cfg = load_config(test_yaml);
    json_t *body = parse("{\"team\": \"feature-eng\", \"environment\": \"dev\","
                         " \"region\": \"us-east-1\", \"size\": \"large\","
                         " \"catalogs\": [\"pedregal\", \"lake\", \"pedregal\"],"
                         " \"ttl\": \"120m\", \"idempotency_token\": \"run-42:a.b\"}");
    json_t *spec = NULL;
    const char *token = NULL;
    cluster_spec_error error;
    CU_ASSERT_EQUAL_FATAL(cluster_spec_normalise(cfg, body, &spec, &token, &error), SP_OK);
    json_t *want =
        parse("{\"team\": \"feature-eng\", \"environment\": \"dev\", \"region\": \"us-east-1\","
              " \"size\": \"large\", \"catalogs\": [\"lake\", \"pedregal\"], \"ttl\": \"2h\","
              " \"ttl_seconds\": 7200,"
              " \"resources\": {\"driver\": {\"cores\": 2, \"memory\": \"4g\"}, \"executors\": 4,"
              "               \"executor\": {\"cores\": 4, \"memory\": \"1536m\"}},"
              " \"cores\": 18, \"memory_mib\": 10240}");
    CU_ASSERT_TRUE(json_equal(spec, want));
    /* the token is borrowed from the request */
    CU_ASSERT_PTR_EQUAL(token, json_string_value(json_object_get(body, "idempotency_token")));
    json_decref(want);
    json_decref(spec);
    json_decref(body);

    expect_spec(cfg, "{\"team\": \"x\", \"environment\": \"prod\", \"ttl\": \"persistent\"}",
                "{\"team\": \"x\", \"environment\": \"prod\", \"region\": \"eu-west-1\","
                " \"size\": \"small\", \"catalogs\": [], \"ttl\": \"persistent\","
                " \"ttl_seconds\": 0,"
                " \"resources\": {\"driver\": {\"cores\": 1, \"memory\": \"1g\"}, \"executors\": 1,"
                "               \"executor\": {\"cores\": 1, \"memory\": \"1g\"}},"
                " \"cores\": 2, \"memory_mib\": 2048}");
    config_free(cfg);
}

static void test_refusals_name_the_field(void)
{
    config *cfg = load_config(test_yaml);
    expect_refusal(cfg, "[1]", "", "expected a JSON object");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"owner\": 1}", "owner",
                   "owner: unknown field; known fields: team, environment, region, size, "
                   "catalogs, ttl, idempotency_token");
    expect_refusal(cfg, "{\"environment\": \"dev\"}", "team", "team: required");
    expect_refusal(cfg, "{\"team\": 7, \"environment\": \"dev\"}", "team",
                   "team: expected a string");
    expect_refusal(cfg, "{\"team\": \"Feature_Eng\", \"environment\": \"dev\"}", "team",
                   "team: must match [a-z0-9-]{1,63}");
    expect_refusal(cfg, "{\"team\": \"a\"}", "environment", "environment: required");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"qa\"}", "environment",
                   "environment: 'qa' is not one of dev, prod");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"region\": \"mars\"}",
                   "region", "region: 'mars' is not one of eu-west-1, us-east-1");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"region\": [1]}", "region",
                   "region: expected a string");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"size\": \"huge\"}", "size",
                   "size: 'huge' is not one of small, large");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"catalogs\": \"lake\"}",
                   "catalogs", "catalogs: expected an array of catalog names");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"catalogs\": [\"lake\", 3]}",
                   "catalogs[1]", "catalogs[1]: expected a catalog name");
    expect_refusal(cfg,
                   "{\"team\": \"a\", \"environment\": \"dev\", \"catalogs\": [\"lake\", \"ice\"]}",
                   "catalogs[1]", "catalogs[1]: 'ice' is not one of pedregal, lake");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"ttl\": 3600}", "ttl",
                   "ttl: expected a string");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"ttl\": \"1h30m\"}", "ttl",
                   "ttl: expected a whole number and a unit (s, m, h or d) from 1s to 366d, "
                   "such as 30m, 12h or 7d, or \"persistent\"; got '1h30m'");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"ttl\": \"8d\"}", "ttl",
                   "ttl: 8d is longer than environment 'dev' allows (max_ttl 7d)");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"dev\", \"ttl\": \"persistent\"}",
                   "ttl",
                   "ttl: persistent clusters are not allowed in environment 'dev' (max_ttl 7d)");
    expect_refusal(cfg,
                   "{\"team\": \"a\", \"environment\": \"dev\", \"idempotency_token\": \"a b\"}",
                   "idempotency_token", "idempotency_token: must match [A-Za-z0-9._:-]{1,128}");
    /* client text in a message is printable ASCII and short */
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"q\\u00e9\\n\"}", "environment",
                   "environment: 'q\?\?\?' is not one of dev, prod");
    expect_refusal(cfg,
                   "{\"team\": \"a\", \"environment\": "
                   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                   "environment",
                   "environment: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not one of dev, "
                   "prod");
    config_free(cfg);

    /* the message of the issue, with the default environments */
    cfg = load_config("");
    expect_refusal(cfg, "{\"team\": \"a\", \"environment\": \"qa\"}", "environment",
                   "environment: 'qa' is not one of dev, staging, ci, prod");
    config_free(cfg);
}

static void test_too_many_catalogs(void)
{
    config *cfg = load_config(test_yaml);
    char body[1024];
    size_t used = (size_t)snprintf(body, sizeof(body),
                                   "{\"team\": \"a\", \"environment\": \"dev\", \"catalogs\": [");
    for (int i = 0; i <= CLUSTER_SPEC_MAX_CATALOGS; i++)
        used += (size_t)snprintf(body + used, sizeof(body) - used, "%s\"lake\"", i ? ", " : "");
    snprintf(body + used, sizeof(body) - used, "]}");
    expect_refusal(cfg, body, "catalogs", "catalogs: at most 32 catalogs");
    config_free(cfg);
}

static void test_parse_ttl(void)
{
    static const struct {
        const char *text;
        int ok;
        uint64_t seconds;
    } cases[] = {
        {"90s", 1, 90},       {"30m", 1, 1800},      {"12h", 1, 43200},
        {"7d", 1, 604800},    {"366d", 1, 31622400}, {"persistent", 1, 0},
        {"007h", 1, 25200},   {"367d", 0, 0},        {"0s", 0, 0},
        {"1h30m", 0, 0},      {"1.5h", 0, 0},        {"", 0, 0},
        {"10", 0, 0},         {"-1h", 0, 0},         {" 1h", 0, 0},
        {"1h ", 0, 0},        {"1H", 0, 0},          {"1w", 0, 0},
        {"Persistent", 0, 0}, {"250ms", 0, 0},       {"99999999999999999999d", 0, 0},
        {"31622401s", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t seconds = 12345;
        char err[256] = "";
        int rc = cluster_spec_parse_ttl(cases[i].text, &seconds, err, sizeof(err));
        if ((rc == 0) != cases[i].ok)
            fprintf(stderr, "\n    ttl '%s': rc %d %s", cases[i].text, rc, err);
        CU_ASSERT_EQUAL(rc == 0, cases[i].ok);
        if (cases[i].ok) {
            CU_ASSERT_EQUAL(seconds, cases[i].seconds);
        } else {
            CU_ASSERT(strncmp(err, "expected a whole number", 23) == 0);
        }
    }
}

static void test_ttl_bounds(void)
{
    config *cfg = load_config(test_yaml);
    const config_environment *dev = config_find_environment(cfg, "dev");
    const config_environment *prod = config_find_environment(cfg, "prod");
    char err[256];
    CU_ASSERT_EQUAL(cluster_spec_check_ttl_bound(dev, 7 * 86400, "ttl", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cluster_spec_check_ttl_bound(dev, 7 * 86400 + 1, "ttl", err, sizeof(err)), -1);
    CU_ASSERT_STRING_EQUAL(err, "ttl: 604801s is longer than environment 'dev' allows (max_ttl "
                                "7d)");
    CU_ASSERT_EQUAL(cluster_spec_check_ttl_bound(dev, 0, "body.ttl", err, sizeof(err)), -1);
    CU_ASSERT_STRING_EQUAL(err, "body.ttl: persistent clusters are not allowed in environment "
                                "'dev' (max_ttl 7d)");
    CU_ASSERT_EQUAL(cluster_spec_check_ttl_bound(prod, 0, "ttl", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cluster_spec_check_ttl_bound(prod, 366 * 86400, "ttl", err, sizeof(err)), 0);
    config_free(cfg);
}

/* cluster_spec_scale on a large cluster's spec. */
static int scale(const config *cfg, const char *request, json_t **out, cluster_spec_error *error)
{
    json_t *current = parse("{\"resources\": {\"driver\": {\"cores\": 2, \"memory\": \"4g\"},"
                            " \"executors\": 4, \"executor\": {\"cores\": 4, \"memory\": "
                            "\"1536m\"}}}");
    json_t *body = parse(request);
    int rc = cluster_spec_scale(cfg, current, body, out, error);
    json_decref(body);
    json_decref(current);
    return rc;
}

static void expect_scale_refusal(const config *cfg, const char *request, const char *field,
                                 const char *message)
{
    json_t *out = (json_t *)&out;
    cluster_spec_error error;
    CU_ASSERT_EQUAL(scale(cfg, request, &out, &error), SP_INVALID);
    CU_ASSERT_PTR_NULL(out);
    if (strcmp(error.message, message) != 0)
        fprintf(stderr, "\n    for %s got [%s] %s", request, error.field, error.message);
    CU_ASSERT_STRING_EQUAL(error.field, field);
    CU_ASSERT_STRING_EQUAL(error.message, message);
}

static void test_scale(void)
{
    config *cfg = load_config(test_yaml);
    cluster_spec_error error;
    json_t *out = NULL, *want;
    CU_ASSERT_EQUAL_FATAL(scale(cfg, "{\"size\": \"small\"}", &out, &error), SP_OK);
    want = parse("{\"size\": \"small\", \"executors\": 1,"
                 " \"executor\": {\"cores\": 1, \"memory\": \"1g\"}}");
    CU_ASSERT_TRUE(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    /* a count keeps the cluster's executor shape */
    CU_ASSERT_EQUAL_FATAL(scale(cfg, "{\"executors\": 256, \"size\": null}", &out, &error), SP_OK);
    want = parse("{\"executors\": 256, \"executor\": {\"cores\": 4, \"memory\": \"1536m\"}}");
    CU_ASSERT_TRUE(json_equal(out, want));
    json_decref(want);
    json_decref(out);

    expect_scale_refusal(cfg, "{\"size\": \"small\", \"executors\": 2}", "executors",
                         "executors: give size or executors, not both");
    expect_scale_refusal(cfg, "{}", "size",
                         "size: required: give {\"size\": name} or {\"executors\": count}");
    expect_scale_refusal(cfg, "{\"executors\": 0}", "executors",
                         "executors: expected an integer from 1 to 256");
    expect_scale_refusal(cfg, "{\"executors\": 257}", "executors",
                         "executors: expected an integer from 1 to 256");
    expect_scale_refusal(cfg, "{\"executors\": \"3\"}", "executors",
                         "executors: expected an integer from 1 to 256");
    expect_scale_refusal(cfg, "{\"executors\": 2.5}", "executors",
                         "executors: expected an integer from 1 to 256");
    expect_scale_refusal(cfg, "{\"size\": \"huge\"}", "size",
                         "size: 'huge' is not one of small, large");
    expect_scale_refusal(cfg, "{\"size\": 1}", "size", "size: expected a string");
    expect_scale_refusal(cfg, "{\"cores\": 1}", "cores",
                         "cores: unknown field; known fields: size, executors");
    expect_scale_refusal(cfg, "3", "", "expected a JSON object");

    /* a spec without executor settings cannot be scaled by count */
    json_t *body = parse("{\"executors\": 2}"), *current = parse("{\"resources\": {}}");
    out = (json_t *)&out;
    CU_ASSERT_EQUAL(cluster_spec_scale(cfg, current, body, &out, &error), SP_INVALID);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_STRING_EQUAL(error.message, "the cluster's spec has no resources.executor");
    json_decref(body);
    json_decref(current);
    config_free(cfg);
}

static void test_ttl_request(void)
{
    config *cfg = load_config(test_yaml);
    cluster_spec_error error;
    uint64_t ttl = 1;
    json_t *body = parse("{\"ttl\": \"3d\"}");
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "dev", body, &ttl, &error), SP_OK);
    CU_ASSERT_EQUAL(ttl, 3 * 86400);
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "gone", body, &ttl, &error), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(error.message, "environment: 'gone' is no longer configured");
    json_decref(body);

    body = parse("{\"ttl\": \"persistent\"}");
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "prod", body, &ttl, &error), SP_OK);
    CU_ASSERT_EQUAL(ttl, 0);
    ttl = 99;
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "dev", body, &ttl, &error), SP_INVALID);
    CU_ASSERT_EQUAL(ttl, 99); /* untouched on refusal */
    CU_ASSERT_STRING_EQUAL(error.field, "ttl");
    json_decref(body);

    body = parse("{}");
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "dev", body, &ttl, &error), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(error.message, "ttl: required");
    json_decref(body);
    body = parse("{\"ttl\": \"1d\", \"why\": 1}");
    CU_ASSERT_EQUAL(cluster_spec_ttl_request(cfg, "dev", body, &ttl, &error), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(error.message, "why: unknown field; known fields: ttl");
    json_decref(body);
    config_free(cfg);
}

static void test_ids(void)
{
    char id[CLUSTER_ID_MAX + 1];
    CU_ASSERT_EQUAL(cluster_spec_id("feature-eng", "dev", "eu-west-1", "a1b2c3", id, sizeof(id)),
                    0);
    CU_ASSERT_STRING_EQUAL(id, "sc-feature-eng-dev-eu-west-1-a1b2c3");

    /* long team and region are cut (never the suffix), without a '-' at a cut */
    const char *team = "abcdefghij-abcdefghij-abcdefghij-abcdefghij"; /* 43 */
    const char *region = "region-number-one-in-the-far-north";        /* 34 */
    CU_ASSERT_EQUAL(cluster_spec_id(team, "staging", region, "zz9999", id, sizeof(id)), 0);
    /* 22 bytes each, and the team's cut ends in '-', which is dropped */
    CU_ASSERT_STRING_EQUAL(id, "sc-abcdefghij-abcdefghij-staging-region-number-one-in-t-zz9999");
    CU_ASSERT_EQUAL(strlen(id), 62);

    /* a short team keeps all of itself and the region takes the rest */
    const char *region61 = "r23456789012345678901234567890123456789012345678901234567890";
    CU_ASSERT_EQUAL(cluster_spec_id("ml", "prod", region61, "abcdef", id, sizeof(id)), 0);
    CU_ASSERT_EQUAL(strlen(id), 63);
    CU_ASSERT(strncmp(id, "sc-ml-prod-r2345", 16) == 0);
    CU_ASSERT(strcmp(id + 57, "abcdef") == 0);

    /* an environment too long for the rest is cut last, down to what fits */
    const char *env63 = "e12345678901234567890123456789012345678901234567890123456789012";
    CU_ASSERT_EQUAL(cluster_spec_id("team", env63, "region", "abcdef", id, sizeof(id)), 0);
    CU_ASSERT_STRING_EQUAL(id, "sc-t-e123456789012345678901234567890123456789012345678-r-abcdef");
    /* the fixed parts alone do not fit, or the names are not labels */
    CU_ASSERT_EQUAL(cluster_spec_id("a", "b", "c", "abcdef", id, 13), -1);
    CU_ASSERT_EQUAL(cluster_spec_id("a", "pre-prod", "b", "abcdef", id, sizeof(id)), -1);
    CU_ASSERT_EQUAL(cluster_spec_id("A", "dev", "b", "abcdef", id, sizeof(id)), -1);
    CU_ASSERT_EQUAL(cluster_spec_id("a", "dev", "b", "", id, sizeof(id)), -1);
    /* a smaller buffer shortens further */
    char small[24];
    CU_ASSERT_EQUAL(
        cluster_spec_id("feature-eng", "dev", "eu-west-1", "a1b2c3", small, sizeof(small)), 0);
    CU_ASSERT_STRING_EQUAL(small, "sc-feat-dev-eu-w-a1b2c3");
}

static void test_namespace_and_endpoints(void)
{
    config *cfg = load_config(test_yaml);
    char text[128];
    CU_ASSERT_EQUAL(cluster_spec_namespace("feature-eng", "dev", "eu-west-1", text, sizeof(text)),
                    0);
    CU_ASSERT_STRING_EQUAL(text, "sjns-feature-eng-dev-eu-west-1");
    CU_ASSERT_EQUAL(cluster_spec_namespace("feature-eng", "dev", "eu-west-1", text, 30), -1);
    CU_ASSERT_EQUAL(cluster_spec_namespace("feature-eng", "de-v", "eu", text, sizeof(text)), -1);

    CU_ASSERT_EQUAL(
        cluster_spec_endpoint(cfg, "feature-eng", "dev", "eu-west-1", text, sizeof(text)), 0);
    CU_ASSERT_STRING_EQUAL(text, "sc://feature-eng-dev-eu-west-1.example.team:15002");
    CU_ASSERT_EQUAL(cluster_spec_endpoint(cfg, "feature-eng", "dev", "eu-west-1", text, 20), -1);

    char host[64];
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host(text, host, sizeof(host)), 0);
    CU_ASSERT_STRING_EQUAL(host, "feature-eng-dev-eu-west-1.example.team");
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host("sc://a.b/path", host, sizeof(host)), 0);
    CU_ASSERT_STRING_EQUAL(host, "a.b");
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host("sc://a.b", host, sizeof(host)), 0);
    CU_ASSERT_STRING_EQUAL(host, "a.b");
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host("http://a.b:1", host, sizeof(host)), -1);
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host("sc://:15002", host, sizeof(host)), -1);
    CU_ASSERT_EQUAL(cluster_spec_endpoint_host("sc://abcdef:1", host, 6), -1);
    config_free(cfg);

    cfg = load_config("provisioning: {domain: d.example,"
                      " endpoint_pattern: 'sc://{env}.{team}.{region}.{domain}/{team}'}\n");
    CU_ASSERT_EQUAL(cluster_spec_endpoint(cfg, "t", "dev", "local", text, sizeof(text)), 0);
    CU_ASSERT_STRING_EQUAL(text, "sc://dev.t.local.d.example/t");
    config_free(cfg);
}

static void test_catalog_conf(void)
{
    config *cfg = load_config(test_yaml);
    json_t *names = parse("[\"pedregal\", \"lake\"]");
    json_t *conf = cluster_spec_catalog_conf(cfg, names, "fe", "dev", "eu-west-1");
    /* later catalogs win; {domain} is not a catalog placeholder */
    json_t *want =
        parse("{\"spark.sql.catalog.pedregal\": \"org.apache.iceberg.spark.SparkCatalog\","
              " \"spark.sql.catalog.pedregal.warehouse\": \"s3://lake/fe\","
              " \"spark.sql.defaultCatalog\": \"lake\"}");
    CU_ASSERT_TRUE(json_equal(conf, want));
    json_decref(conf);
    json_decref(want);
    json_decref(names);

    names = parse("[\"lake\", \"pedregal\"]");
    conf = cluster_spec_catalog_conf(cfg, names, "fe", "dev", "eu-west-1");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(conf, "spark.sql.catalog.pedregal.warehouse")),
        "s3://wh/fe/dev/eu-west-1/{domain}");
    json_decref(conf);
    json_decref(names);

    conf = cluster_spec_catalog_conf(cfg, NULL, "fe", "dev", "eu-west-1");
    CU_ASSERT_TRUE(json_is_object(conf) && json_object_size(conf) == 0);
    json_decref(conf);
    names = parse("[\"lake\", \"nope\"]");
    CU_ASSERT_PTR_NULL(cluster_spec_catalog_conf(cfg, names, "fe", "dev", "eu-west-1"));
    json_decref(names);
    names = parse("{\"lake\": 1}");
    CU_ASSERT_PTR_NULL(cluster_spec_catalog_conf(cfg, names, "fe", "dev", "eu-west-1"));
    json_decref(names);
    config_free(cfg);
}

static const unit_test_case cases[] = {
    {"defaults are filled from the configuration", test_defaults_are_filled},
    {"a request that sets every field", test_full_request},
    {"every refusal names its field", test_refusals_name_the_field},
    {"at most 32 catalogs", test_too_many_catalogs},
    {"ttl syntax", test_parse_ttl},
    {"ttl against an environment's bounds", test_ttl_bounds},
    {"scale by size or executor count", test_scale},
    {"ttl change requests", test_ttl_request},
    {"cluster ids fit 63 bytes and keep the suffix", test_ids},
    {"namespaces, endpoints and endpoint hosts", test_namespace_and_endpoints},
    {"catalog settings for a placement", test_catalog_conf},
    {NULL, NULL}};

UNIT_TEST_MAIN("cluster_spec", cases)
