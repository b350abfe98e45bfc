/*
 * fuzz_cluster_spec.c - libFuzzer target for the cluster request checks
 * (core/cluster_spec.c) against a fixed provisioning configuration.
 *
 * The first byte picks the request kind (create, scale, ttl change); the
 * rest is the JSON body.  Besides memory errors it checks what the REST
 * layer and the lifecycle rely on: a refusal names its field and its
 * message is valid UTF-8 (it goes into a JSON error body); an accepted
 * create request gives a document that re-normalises to the same document,
 * whose totals match its resources, whose ttl respects the environment, and
 * whose id, namespace, endpoint and catalog settings can all be built, the
 * id within 63 bytes; a scale answer is within bounds.
 */
#include <jansson.h>
#include <sparkplane/plugin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_registry.h"
#include "cluster_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_config_yaml[] =
    "gateway: {domain: example.team}\n"
    "provisioning:\n"
    "  environments:\n"
    "    dev: {default_ttl: 8h, max_ttl: 7d, warm: {small: 1}}\n"
    "    prod: {default_ttl: 7d, max_ttl: persistent}\n"
    "    e123456789012345678901234567890123456789012345678901234567: "
    "{default_ttl: 90s, max_ttl: 366d}\n"
    "  regions:\n"
    "    eu-west-1: {fallback: us-east-1}\n"
    "    us-east-1: {}\n"
    "    a-very-long-region-name-that-takes-most-of-the-sixty-three-b: {}\n"
    "  sizes:\n"
    "    small: {driver: {cores: 1, memory: 1g}, executors: 1, executor: {cores: 1, memory: 1g}}\n"
    "    xl_2: {driver: {cores: 1024, memory: 1TiB}, executors: 256,\n"
    "           executor: {cores: 1024, memory: 1536m}}\n"
    "  catalogs:\n"
    "    pedregal: {spark.sql.catalog.pedregal: x, spark.sql.w: 's3://{team}/{env}/{region}'}\n"
    "    lake: {spark.sql.w: '{region}{region}{team}'}\n";

static const config *fuzz_config(void)
{
    static config *cfg;
    if (cfg == NULL) {
        diag_list problems = {0};
        if (config_load_buffer("fuzz.yaml", fuzz_config_yaml, strlen(fuzz_config_yaml), "/p", &cfg,
                               &problems) != 0)
            abort();
        diag_clear(&problems);
    }
    return cfg;
}

static void fuzz_check_refusal(const cluster_spec_error *error)
{
    json_t *message = json_string(error->message); /* NULL when not valid UTF-8 */
    if (message == NULL || error->message[0] == '\0' ||
        strncmp(error->message, error->field, strlen(error->field)) != 0)
        abort();
    json_decref(message);
}

static json_int_t fuzz_int(const json_t *object, const char *key)
{
    const json_t *value = json_object_get(object, key);
    if (!json_is_integer(value))
        abort();
    return json_integer_value(value);
}

static const char *fuzz_str(const json_t *object, const char *key)
{
    const char *value = json_string_value(json_object_get(object, key));
    if (value == NULL)
        abort();
    return value;
}

/* The request part of a spec, fed back: it must give the same document. */
static void fuzz_check_renormalises(const config *cfg, const json_t *spec)
{
    static const char *const request_keys[] = {"team", "environment", "region",
                                               "size", "catalogs",    "ttl"};
    json_t *request = json_object(), *again = NULL;
    const char *token = NULL;
    cluster_spec_error error;
    for (size_t i = 0; i < sizeof(request_keys) / sizeof(request_keys[0]); i++)
        json_object_set(request, request_keys[i], json_object_get(spec, request_keys[i]));
    if (cluster_spec_normalise(cfg, request, &again, &token, &error) != SP_OK ||
        !json_equal(spec, again) || token != NULL)
        abort();
    json_decref(again);
    json_decref(request);
}

/* Totals match resources; ttl text, seconds and bounds agree. */
static void fuzz_check_document(const config *cfg, const json_t *spec)
{
    const json_t *resources = json_object_get(spec, "resources");
    json_int_t executors = fuzz_int(resources, "executors");
    json_int_t cores = fuzz_int(json_object_get(resources, "driver"), "cores") +
                       executors * fuzz_int(json_object_get(resources, "executor"), "cores");
    char err[CLUSTER_SPEC_MESSAGE_SIZE];
    uint64_t ttl = 1;
    if (fuzz_int(spec, "cores") != cores || executors < 1 ||
        executors > CLUSTER_SPEC_MAX_EXECUTORS ||
        cluster_spec_parse_ttl(fuzz_str(spec, "ttl"), &ttl, err, sizeof(err)) != 0 ||
        (json_int_t)ttl != fuzz_int(spec, "ttl_seconds") ||
        cluster_spec_check_ttl_bound(config_find_environment(cfg, fuzz_str(spec, "environment")),
                                     ttl, "ttl", err, sizeof(err)) != 0)
        abort();
}

/* Every name of the cluster can be built; the id fits CLUSTER_ID_MAX. */
static void fuzz_check_names(const config *cfg, const json_t *spec)
{
    const char *team = fuzz_str(spec, "team"), *env = fuzz_str(spec, "environment");
    const char *region = fuzz_str(spec, "region");
    char id[CLUSTER_ID_MAX + 1], namespace_name[256], endpoint[512], host[512];
    if (cluster_spec_id(team, env, region, "a1b2c3", id, sizeof(id)) != 0 ||
        strlen(id) > CLUSTER_ID_MAX || strstr(id, "a1b2c3") == NULL ||
        cluster_spec_namespace(team, env, region, namespace_name, sizeof(namespace_name)) != 0 ||
        cluster_spec_endpoint(cfg, team, env, region, endpoint, sizeof(endpoint)) != 0 ||
        cluster_spec_endpoint_host(endpoint, host, sizeof(host)) != 0)
        abort();
    json_t *conf =
        cluster_spec_catalog_conf(cfg, json_object_get(spec, "catalogs"), team, env, region);
    if (conf == NULL)
        abort();
    json_decref(conf);
}

static void fuzz_create(const config *cfg, const json_t *body)
{
    json_t *spec = NULL;
    const char *token = NULL;
    cluster_spec_error error;
    int rc = cluster_spec_normalise(cfg, body, &spec, &token, &error);
    if (rc == SP_OK) {
        if (spec == NULL)
            abort();
        fuzz_check_renormalises(cfg, spec);
        fuzz_check_document(cfg, spec);
        fuzz_check_names(cfg, spec);
    } else if (rc == SP_INVALID) {
        if (spec != NULL || token != NULL)
            abort();
        fuzz_check_refusal(&error);
    }
    json_decref(spec);
}

static void fuzz_scale(const config *cfg, const json_t *body)
{
    json_t *current = json_pack("{s:{s:I, s:{s:I, s:s}}}", "resources", "executors", (json_int_t)2,
                                "executor", "cores", (json_int_t)3, "memory", "2g");
    json_t *scale = NULL;
    cluster_spec_error error;
    int rc = cluster_spec_scale(cfg, current, body, &scale, &error);
    if (rc == SP_OK) {
        json_int_t executors = fuzz_int(scale, "executors");
        if (executors < 1 || executors > CLUSTER_SPEC_MAX_EXECUTORS ||
            !json_is_object(json_object_get(scale, "executor")))
            abort();
    } else if (rc == SP_INVALID) {
        if (scale != NULL)
            abort();
        fuzz_check_refusal(&error);
    }
    json_decref(scale);
    json_decref(current);
}

static void fuzz_ttl(const config *cfg, const json_t *body, uint8_t selector)
{
    static const char *const environments[] = {"dev", "prod", "gone"};
    const char *env = environments[(selector / 3) % 3];
    cluster_spec_error error;
    uint64_t ttl = 0;
    char err[CLUSTER_SPEC_MESSAGE_SIZE];
    int rc = cluster_spec_ttl_request(cfg, env, body, &ttl, &error);
    if (rc == SP_OK && cluster_spec_check_ttl_bound(config_find_environment(cfg, env), ttl, "ttl",
                                                    err, sizeof(err)) != 0)
        abort();
    if (rc == SP_INVALID)
        fuzz_check_refusal(&error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    const config *cfg = fuzz_config();
    if (size == 0)
        return 0;
    json_t *body = json_loadb((const char *)data + 1, size - 1,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (body == NULL)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_create(cfg, body);
        break;
    case 1:
        fuzz_scale(cfg, body);
        break;
    default:
        fuzz_ttl(cfg, body, data[0]);
        break;
    }
    if (json_is_string(body)) { /* a bare string: the ttl syntax on its own */
        uint64_t seconds;
        char err[CLUSTER_SPEC_MESSAGE_SIZE];
        if (cluster_spec_parse_ttl(json_string_value(body), &seconds, err, sizeof(err)) == 0 &&
            seconds > CLUSTER_SPEC_TTL_MAX_S)
            abort();
    }
    json_decref(body);
    return 0;
}
