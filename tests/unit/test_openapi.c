/*
 * test_openapi.c - the OpenAPI document the daemon serves: the embedded copy
 * is core/openapi.json exactly, it lists every route with its methods, only
 * the open routes drop the bearer requirement, both job request shapes, the
 * cluster shapes and the error shape are described, operationIds are unique
 * and every $ref points somewhere.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "rest.h"
#include "unit_test.h"

#define OPENAPI_FILE TEST_SRCDIR "/../../core/openapi.json"

static json_t *load_embedded(void)
{
    json_error_t jerr;
    json_t *doc = json_loads(rest_openapi_text(), JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        fprintf(stderr, "\n    openapi.json: line %d: %s", jerr.line, jerr.text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    return doc;
}

static void test_embedded_copy_is_the_file(void)
{
    json_error_t jerr;
    json_t *file = json_load_file(OPENAPI_FILE, JSON_REJECT_DUPLICATES, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    json_t *embedded = load_embedded();
    CU_ASSERT_TRUE(json_equal(file, embedded));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(embedded, "openapi")), "3.0.3");
    json_decref(file);
    json_decref(embedded);
}

static const struct {
    const char *path, *method;
    int open;
} routes[] = {
    {"/healthz", "get", 1},
    {"/readyz", "get", 1},
    {"/metrics", "get", 1},
    {"/api/v1/openapi.json", "get", 1},
    {"/api/v1/version", "get", 0},
    {"/api/v1/whoami", "get", 0},
    {"/api/v1/routes", "get", 0},
    {"/api/v1/jobs", "post", 0},
    {"/api/v1/jobs", "get", 0},
    {"/api/v1/jobs/{id}", "get", 0},
    {"/api/v1/jobs/{id}", "delete", 0},
    {"/api/v1/jobs/{id}/events", "get", 0},
    {"/api/v1/jobs/{id}/logs", "get", 0},
    {"/api/v1/clusters", "post", 0},
    {"/api/v1/clusters", "get", 0},
    {"/api/v1/clusters/{id}", "get", 0},
    {"/api/v1/clusters/{id}", "delete", 0},
    {"/api/v1/clusters/{id}/scale", "post", 0},
    {"/api/v1/clusters/{id}/ttl", "post", 0},
    {"/api/v1/clusters/{id}/events", "get", 0},
    {"/api/v1/discovery", "get", 0},
};

static void test_every_route_is_listed(void)
{
    json_t *doc = load_embedded();
    json_t *paths = json_object_get(doc, "paths");
    size_t operations = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        json_t *op = json_object_get(json_object_get(paths, routes[i].path), routes[i].method);
        if (op == NULL)
            fprintf(stderr, "\n    missing: %s %s", routes[i].method, routes[i].path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        CU_ASSERT_TRUE(json_object_size(json_object_get(op, "responses")) > 0);
        CU_ASSERT_PTR_NOT_NULL(json_object_get(op, "operationId"));
        json_t *security = json_object_get(op, "security");
        /* open routes say so with an empty list; the others inherit bearer */
        int open = json_is_array(security) && json_array_size(security) == 0;
        CU_ASSERT_EQUAL(open, routes[i].open);
        CU_ASSERT_TRUE(open || security == NULL);
    }
    /* and nothing that does not exist */
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        const char *key;
        json_t *value;
        json_object_foreach(item, key, value)
            operations += strcmp(key, "parameters") != 0;
    }
    CU_ASSERT_EQUAL(operations, sizeof(routes) / sizeof(routes[0]));
    json_t *bearer = json_object_get(
        json_object_get(json_object_get(doc, "components"), "securitySchemes"), "bearer");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(bearer, "scheme")), "bearer");
    json_decref(doc);
}

static void test_both_request_shapes_and_errors(void)
{
    json_t *doc = load_embedded();
    json_t *body = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "paths"), "/api/v1/jobs"), "post"),
        "requestBody");
    json_t *one_of = json_object_get(
        json_object_get(json_object_get(json_object_get(body, "content"), "application/json"),
                        "schema"),
        "oneOf");
    CU_ASSERT_EQUAL_FATAL(json_array_size(one_of), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(one_of, 0), "$ref")),
                           "#/components/schemas/JobRequestPlain");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(one_of, 1), "$ref")),
                           "#/components/schemas/JobRequestDocs");
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *docs = json_object_get(schemas, "JobRequestDocs");
    CU_ASSERT_PTR_NOT_NULL(json_object_get(json_object_get(docs, "properties"), "config"));
    json_t *error = json_object_get(json_object_get(json_object_get(schemas, "Error"),
                                                    "properties"),
                                    "error");
    json_t *error_fields = json_object_get(error, "properties");
    CU_ASSERT_PTR_NOT_NULL(json_object_get(error_fields, "code"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(error_fields, "message"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(error_fields, "details"));
    json_decref(doc);
}

/* Follows "#/a/b/c" from the document root. */
static json_t *resolve(json_t *doc, const char *ref)
{
    char part[128];
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    for (const char *p = ref + 2; doc != NULL && *p;) {
        size_t len = strcspn(p, "/");
        if (len >= sizeof(part))
            return NULL;
        memcpy(part, p, len);
        part[len] = '\0';
        doc = json_object_get(doc, part);
        p += len + (p[len] == '/');
    }
    return doc;
}

static size_t check_refs(json_t *doc, json_t *node)
{
    size_t count = 0;
    if (json_is_object(node)) {
        const char *key;
        json_t *value;
        json_object_foreach(node, key, value) {
            if (strcmp(key, "$ref") == 0) {
                const char *ref = json_string_value(value);
                if (ref == NULL || resolve(doc, ref) == NULL)
                    fprintf(stderr, "\n    dangling $ref: %s", ref ? ref : "(not a string)");
                CU_ASSERT_TRUE(ref != NULL && resolve(doc, ref) != NULL);
                count++;
            } else {
                count += check_refs(doc, value);
            }
        }
    } else if (json_is_array(node)) {
        size_t index;
        json_t *value;
        json_array_foreach(node, index, value)
            count += check_refs(doc, value);
    }
    return count;
}

static void test_every_ref_resolves(void)
{
    json_t *doc = load_embedded();
    CU_ASSERT_TRUE(check_refs(doc, doc) > 10);
    CU_ASSERT_PTR_NULL(resolve(doc, "#/components/schemas/Nope"));
    json_decref(doc);
}

/* Whether schema `name` has every property in the NULL-terminated `fields`. */
static int schema_has_properties(json_t *doc, const char *name, const char *const *fields)
{
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *properties = json_object_get(json_object_get(schemas, name), "properties");
    int ok = properties != NULL;
    for (size_t i = 0; fields[i] != NULL; i++)
        if (json_object_get(properties, fields[i]) == NULL) {
            fprintf(stderr, "\n    %s lacks %s", name, fields[i]);
            ok = 0;
        }
    return ok;
}

static void test_cluster_shapes(void)
{
    static const char *const request[] = {"team", "environment", "region", "size",
                                          "catalogs", "ttl", NULL};
    static const char *const reply[] = {"cluster_id", "endpoint", "status", "catalogs",
                                        "expires_at", "estimated_ready_seconds", NULL};
    static const char *const discovery[] = {"cluster_id", "endpoint", "region", "fallback",
                                            NULL};
    json_t *doc = load_embedded();
    CU_ASSERT_TRUE(schema_has_properties(doc, "ClusterRequest", request));
    CU_ASSERT_TRUE(schema_has_properties(doc, "Cluster", reply));
    CU_ASSERT_TRUE(schema_has_properties(doc, "Discovery", discovery));
    json_t *states = resolve(doc, "#/components/schemas/Cluster/properties/status/enum");
    CU_ASSERT_EQUAL(json_array_size(states), 6);
    /* A create answers 201 new, 200 replayed, 429 over quota. */
    json_t *responses = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "paths"), "/api/v1/clusters"),
                        "post"),
        "responses");
    CU_ASSERT_PTR_NOT_NULL(json_object_get(responses, "201"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(responses, "200"));
    CU_ASSERT_PTR_NOT_NULL(json_object_get(responses, "429"));
    json_decref(doc);
}

static void test_operation_ids_are_unique(void)
{
    json_t *doc = load_embedded(), *seen = json_object();
    const char *path, *method;
    json_t *item, *op;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        json_object_foreach(item, method, op) {
            const char *id = json_string_value(json_object_get(op, "operationId"));
            if (strcmp(method, "parameters") == 0 || id == NULL)
                continue;
            if (json_object_get(seen, id) != NULL)
                fprintf(stderr, "\n    operationId %s used twice", id);
            CU_ASSERT_PTR_NULL(json_object_get(seen, id));
            json_object_set_new(seen, id, json_true());
        }
    }
    CU_ASSERT_EQUAL(json_object_size(seen), sizeof(routes) / sizeof(routes[0]));
    json_decref(seen);
    json_decref(doc);
}

static const unit_test_case cases[] = {
    {"the embedded document is core/openapi.json", test_embedded_copy_is_the_file},
    {"every route is listed, open ones without bearer", test_every_route_is_listed},
    {"both job request shapes and the error shape", test_both_request_shapes_and_errors},
    {"cluster request, reply and discovery shapes", test_cluster_shapes},
    {"operationIds are unique", test_operation_ids_are_unique},
    {"every $ref resolves", test_every_ref_resolves},
    {NULL, NULL}};

UNIT_TEST_MAIN("openapi", cases)
