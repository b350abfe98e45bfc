/*
 * test_gateway_route.c - which cluster an sc:// client reaches, as the
 * client sees it: by x-sparkplane-cluster-id, by host name through the
 * authority patterns (hyphenated teams, regions, case, ports, IPv6, no
 * :authority), the NOT_FOUND messages a person reads, who may use a
 * cluster, and what happens to a forged user_id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/config.h"
#include "../../core/gateway_route.h"
#include "unit_test.h"

static const char *const default_patterns[] = {"{team}-{env}.{domain}",
                                               "{team}-{env}-{region}.{domain}"};

static void put(cluster_registry *registry, const char *id, const char *team, const char *env,
                const char *region)
{
    cluster_endpoint endpoint = {.address = (char *)"127.0.0.1:15010"};
    cluster_entry entry = {.id = (char *)id,
                           .team = (char *)team,
                           .environment = (char *)env,
                           .region = (char *)region,
                           .endpoints = &endpoint,
                           .endpoint_count = 1};
    char err[256];
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &entry, err, sizeof(err)), 0);
}

static gateway_router *router_with(const char *const *patterns, size_t count)
{
    gateway_router *router = NULL;
    char err[256] = "";
    int rc = gateway_router_new(patterns, count, "Example.Team", "local", 15002, &router, err,
                                sizeof(err));
    if (rc != 0)
        fprintf(stderr, "\n    router: %s", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return router;
}

/* The id of the cluster a request reaches, or the NOT_FOUND message in `message`. */
static const char *route(const gateway_router *router, const cluster_registry *registry,
                         const char *id, const char *authority, char *message, size_t size)
{
    const cluster_entry *cluster = NULL;
    message[0] = '\0';
    gateway_grpc_code code =
        gateway_route_resolve(router, registry, id, authority, &cluster, message, size);
    if (code == GATEWAY_GRPC_OK) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(cluster);
        return cluster->id;
    }
    CU_ASSERT_EQUAL(code, GATEWAY_GRPC_NOT_FOUND);
    CU_ASSERT_PTR_NULL(cluster);
    return NULL;
}

static void expect_route(const gateway_router *router, const cluster_registry *registry,
                         const char *id, const char *authority, const char *expected)
{
    char message[1024];
    const char *got = route(router, registry, id, authority, message, sizeof(message));
    if (got == NULL || strcmp(got, expected) != 0)
        fprintf(stderr, "\n    %s -> %s (%s), expected %s", authority ? authority : "(null)",
                got ? got : "none", message, expected);
    CU_ASSERT(got != NULL && strcmp(got, expected) == 0);
}

static void expect_not_found(const gateway_router *router, const cluster_registry *registry,
                             const char *id, const char *authority, const char *expected)
{
    char message[1024];
    const char *got = route(router, registry, id, authority, message, sizeof(message));
    CU_ASSERT_PTR_NULL(got);
    if (strcmp(message, expected) != 0)
        fprintf(stderr, "\n    %s: got '%s'\n    expected '%s'", authority ? authority : "(null)",
                message, expected);
    CU_ASSERT_STRING_EQUAL(message, expected);
}

static void expect_pattern_error(const char *pattern, const char *expected)
{
    gateway_pattern compiled;
    char err[512] = "";
    CU_ASSERT_EQUAL(gateway_pattern_compile(pattern, &compiled, err, sizeof(err)), -1);
    if (strcmp(err, expected) != 0)
        fprintf(stderr, "\n    %s: got '%s'", pattern, err);
    CU_ASSERT_STRING_EQUAL(err, expected);
}

static void test_pattern_errors(void)
{
    expect_pattern_error("{team}-{env}.{tld}",
                         "unknown placeholder '{tld}' in '{team}-{env}.{tld}'; "
                         "known: {team}, {env}, {region}, {domain}");
    expect_pattern_error("{team}{env}.example.team",
                         "'{team}{env}.example.team' is ambiguous: {env} follows another "
                         "placeholder with nothing between them");
    expect_pattern_error("{team}-{env}{region}.x",
                         "'{team}-{env}{region}.x' is ambiguous: {region} follows another "
                         "placeholder with nothing between them");
    expect_pattern_error("{team}-{env}-{team}.x",
                         "{team} appears twice in '{team}-{env}-{team}.x'");
    expect_pattern_error("{team}.{domain}", "'{team}.{domain}' must contain {team} and {env}");
    expect_pattern_error("{team}-{env", "'{' without a closing '}' in '{team}-{env'");
    expect_pattern_error("{team}_{env}.x", "'{team}_{env}.x': '_' cannot be part of a host name "
                                           "(use a-z, 0-9, '-', '.' and placeholders)");
    expect_pattern_error("", "a pattern is 1 to 253 characters");

    gateway_pattern compiled;
    char err[256];
    CU_ASSERT_EQUAL(
        gateway_pattern_compile("SC-{env}-{team}.{domain}", &compiled, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(compiled.part_count, 6);               /* sc- {env} - {team} . {domain} */
    CU_ASSERT_STRING_EQUAL(compiled.parts[0].text, "sc-"); /* literals fold to lower case */
    CU_ASSERT(compiled.uses_domain);
    CU_ASSERT(!compiled.uses_region);

    /* {domain} without a domain cannot route anything */
    gateway_router *router = (gateway_router *)&router;
    CU_ASSERT_EQUAL(
        gateway_router_new(default_patterns, 2, NULL, "local", 15002, &router, err, sizeof(err)),
        -1);
    CU_ASSERT_PTR_NULL(router);
    CU_ASSERT_STRING_EQUAL(err, "authority pattern '{team}-{env}.{domain}' uses {domain} but no "
                                "domain is set");
}

static void test_hyphenated_teams(void)
{
    cluster_registry *registry = cluster_registry_new();
    gateway_router *router = router_with(default_patterns, 2);
    put(registry, "fe-prod", "feature-eng", "prod", "local");
    put(registry, "fe-prod-us", "feature-eng", "prod", "us-east-1");
    put(registry, "ml-dev", "ml", "dev", "local");
    put(registry, "a-b-c-stg", "a-b-c", "stg", "local");

    /* the right-most split: team feature-eng, env prod */
    expect_route(router, registry, NULL, "feature-eng-prod.example.team:15002", "fe-prod");
    expect_route(router, registry, NULL, "ml-dev.example.team", "ml-dev");
    expect_route(router, registry, NULL, "a-b-c-stg.example.team", "a-b-c-stg");
    /* a hyphenated team and a hyphenated region in one name */
    expect_route(router, registry, NULL, "feature-eng-prod-us-east-1.example.team", "fe-prod-us");

    /* the same host read the other way when only that cluster exists */
    cluster_registry_remove(registry, "fe-prod");
    put(registry, "f-eng-prod", "feature", "eng", "prod");
    expect_route(router, registry, NULL, "feature-eng-prod.example.team", "f-eng-prod");

    /* {env} never holds a '-', {team} never starts with one */
    expect_not_found(router, registry, NULL, "-ml-dev.example.team",
                     "cannot tell the cluster from host '-ml-dev.example.team': use "
                     "sc://{team}-{env}.example.team:15002 or "
                     "sc://{team}-{env}-{region}.example.team:15002, or set "
                     "x-sparkplane-cluster-id");
    gateway_router_free(router);
    cluster_registry_free(registry);
}

static void test_case_ports_and_dots(void)
{
    cluster_registry *registry = cluster_registry_new();
    gateway_router *router = router_with(default_patterns, 1);
    put(registry, "fe-prod", "feature-eng", "prod", "local");
    expect_route(router, registry, NULL, "Feature-Eng-PROD.Example.TEAM:15002", "fe-prod");
    expect_route(router, registry, NULL, "feature-eng-prod.example.team", "fe-prod");
    expect_route(router, registry, NULL, "feature-eng-prod.example.team.:443", "fe-prod");
    /* another domain, or the domain's suffix only, is not ours */
    expect_not_found(router, registry, NULL, "feature-eng-prod.example.teams:15002",
                     "cannot tell the cluster from host 'feature-eng-prod.example.teams': use "
                     "sc://{team}-{env}.example.team:15002 or set x-sparkplane-cluster-id");
    expect_not_found(router, registry, NULL, "foo",
                     "cannot tell the cluster from host 'foo': use "
                     "sc://{team}-{env}.example.team:15002 or set x-sparkplane-cluster-id");
    gateway_router_free(router);
    cluster_registry_free(registry);
}

static void test_ip_literals_and_missing_authority(void)
{
    cluster_registry *registry = cluster_registry_new();
    gateway_router *router = router_with(default_patterns, 1);
    put(registry, "fe-prod", "feature-eng", "prod", "local");
    const char *hint = "use sc://{team}-{env}.example.team:15002 or set x-sparkplane-cluster-id";
    char expected[512];
    snprintf(expected, sizeof(expected), "cannot tell the cluster from host '[::1]': %s", hint);
    expect_not_found(router, registry, NULL, "[::1]:15002", expected);
    snprintf(expected, sizeof(expected), "cannot tell the cluster from host '[fe80::1]': %s", hint);
    expect_not_found(router, registry, NULL, "[fe80::1]", expected);
    snprintf(expected, sizeof(expected), "cannot tell the cluster from host '::1': %s", hint);
    expect_not_found(router, registry, NULL, "::1", expected);
    snprintf(expected, sizeof(expected), "cannot tell the cluster from host '10.0.0.1': %s", hint);
    expect_not_found(router, registry, NULL, "10.0.0.1:15002", expected);
    snprintf(expected, sizeof(expected),
             "cannot tell the cluster: the request has no :authority; %s", hint);
    expect_not_found(router, registry, NULL, NULL, expected);
    expect_not_found(router, registry, "", "", expected);
    /* client text is echoed bounded and without quotes or control characters */
    snprintf(expected, sizeof(expected), "cannot tell the cluster from host 'a?b?c': %s", hint);
    expect_not_found(router, registry, NULL, "a'b\nc:1", expected);
    gateway_router_free(router);
    cluster_registry_free(registry);
}

static void test_cluster_id_header(void)
{
    cluster_registry *registry = cluster_registry_new();
    gateway_router *router = router_with(default_patterns, 2);
    put(registry, "fe-prod", "feature-eng", "prod", "local");
    put(registry, "ml-dev", "ml", "dev", "local");
    expect_route(router, registry, "ml-dev", NULL, "ml-dev");
    /* the header wins over the host name */
    expect_route(router, registry, "ml-dev", "feature-eng-prod.example.team", "ml-dev");
    expect_not_found(router, registry, "nope", "feature-eng-prod.example.team",
                     "no cluster 'nope'");
    expect_not_found(router, registry, "it's\x01", NULL, "no cluster 'it?s?'");
    gateway_router_free(router);
    cluster_registry_free(registry);
}

static void test_pattern_matches_but_no_cluster(void)
{
    cluster_registry *registry = cluster_registry_new();
    gateway_router *router = router_with(default_patterns, 2);
    put(registry, "ml-dev", "ml", "dev", "local");
    /* the message names the preferred reading: first pattern, right-most split */
    expect_not_found(router, registry, NULL, "feature-eng-prod.example.team:15002",
                     "no cluster for team feature-eng, environment prod, region local");
    expect_not_found(router, registry, NULL, "ml-dev-eu.example.team",
                     "no cluster for team ml-dev, environment eu, region local");
    gateway_router_free(router);

    /* a pattern with its own literal text and region first */
    const char *const custom[] = {"spark.{region}.{team}-{env}.{domain}"};
    router = router_with(custom, 1);
    put(registry, "fe-eu", "feature-eng", "prod", "eu-west-1");
    expect_route(router, registry, NULL, "spark.eu-west-1.feature-eng-prod.example.team", "fe-eu");
    expect_not_found(router, registry, NULL, "spark.us-east-1.feature-eng-prod.example.team",
                     "no cluster for team feature-eng, environment prod, region us-east-1");
    gateway_router_free(router);
    cluster_registry_free(registry);
}

static void test_router_from_config(void)
{
    const char *text = "gateway:\n"
                       "  listen: ['127.0.0.1:16000']\n"
                       "  domain: spark.corp\n"
                       "  default_region: eu\n"
                       "  authority_patterns: ['{team}-{env}.{domain}']\n";
    config *cfg = NULL;
    diag_list problems = {0};
    CU_ASSERT_EQUAL_FATAL(config_load_buffer("t.yaml", text, strlen(text), "/p", &cfg, &problems),
                          0);
    gateway_router *router = NULL;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(gateway_router_from_config(cfg, &router, err, sizeof(err)), 0);
    cluster_registry *registry = cluster_registry_new();
    put(registry, "ml-dev", "ml", "dev", "eu");
    expect_route(router, registry, NULL, "ml-dev.spark.corp:16000", "ml-dev");
    expect_not_found(router, registry, NULL, "x",
                     "cannot tell the cluster from host 'x': use "
                     "sc://{team}-{env}.spark.corp:16000 or set x-sparkplane-cluster-id");
    gateway_router_free(router);

    /* no patterns at all: only the header routes */
    CU_ASSERT_EQUAL_FATAL(gateway_router_new(NULL, 0, NULL, NULL, 0, &router, err, sizeof(err)), 0);
    expect_not_found(router, registry, NULL, "ml-dev.spark.corp",
                     "cannot tell the cluster from host 'ml-dev.spark.corp': set "
                     "x-sparkplane-cluster-id");
    expect_route(router, registry, "ml-dev", "ml-dev.spark.corp", "ml-dev");
    gateway_router_free(router);
    cluster_registry_free(registry);
    config_free(cfg);
}

static sp_principal principal(const char *subject, const char *role, const char *team1,
                              const char *team2)
{
    sp_principal p = {.size = sizeof(p)};
    snprintf(p.subject, sizeof(p.subject), "%s", subject);
    snprintf(p.role, sizeof(p.role), "%s", role);
    if (team1 != NULL)
        snprintf(p.teams[p.team_count++], SP_TEAM_NAME_MAX, "%s", team1);
    if (team2 != NULL)
        snprintf(p.teams[p.team_count++], SP_TEAM_NAME_MAX, "%s", team2);
    return p;
}

static void test_authorize(void)
{
    cluster_registry *registry = cluster_registry_new();
    put(registry, "fe-prod", "feature-eng", "prod", "local");
    const cluster_entry *cluster = cluster_registry_find(registry, "fe-prod");
    char message[256];

    sp_principal bob = principal("bob", "member", "ml", "feature-eng");
    CU_ASSERT_EQUAL(gateway_route_authorize(&bob, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_OK);
    /* another team's cluster reads like a missing one, by authority and by id */
    sp_principal alice = principal("alice", "member", "ml", "feature");
    CU_ASSERT_EQUAL(gateway_route_authorize(&alice, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(message,
                           "no cluster for team feature-eng, environment prod, region local");
    CU_ASSERT_EQUAL(gateway_route_authorize(&alice, cluster, "fe-prod", message, sizeof(message)),
                    GATEWAY_GRPC_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(message, "no cluster 'fe-prod'");

    sp_principal root = principal("root", "admin", "*", NULL);
    CU_ASSERT_EQUAL(gateway_route_authorize(&root, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_OK);
    /* "*" means every team for admins only */
    sp_principal sly = principal("sly", "member", "*", NULL);
    CU_ASSERT_EQUAL(gateway_route_authorize(&sly, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_NOT_FOUND);
    sp_principal team_admin = principal("ann", "admin", "feature-eng", NULL);
    CU_ASSERT_EQUAL(gateway_route_authorize(&team_admin, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_OK);
    sp_principal viewer = principal("vic", "viewer", "feature-eng", NULL);
    CU_ASSERT_EQUAL(gateway_route_authorize(&viewer, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_PERMISSION_DENIED);
    CU_ASSERT_STRING_EQUAL(message, "vic has the viewer role, which may not open Spark sessions");
    /* a viewer of another team learns nothing either */
    sp_principal far_viewer = principal("val", "viewer", "ml", NULL);
    CU_ASSERT_EQUAL(gateway_route_authorize(&far_viewer, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_NOT_FOUND);
    /* a team count beyond the array is not trusted */
    sp_principal odd = principal("odd", "member", "ml", NULL);
    odd.team_count = 1000;
    CU_ASSERT_EQUAL(gateway_route_authorize(&odd, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_NOT_FOUND);
    CU_ASSERT_EQUAL(gateway_route_authorize(NULL, cluster, NULL, message, sizeof(message)),
                    GATEWAY_GRPC_PERMISSION_DENIED);
    cluster_registry_free(registry);
}

static void test_user_id_policy(void)
{
    sp_principal alice = principal("alice", "member", "ml", NULL);
    char message[256] = "";
    CU_ASSERT_EQUAL(
        gateway_route_check_user_id(&alice, "alice", CONFIG_USER_ID_DENY, message, sizeof(message)),
        GATEWAY_USER_ID_OK);
    CU_ASSERT_EQUAL(
        gateway_route_check_user_id(&alice, NULL, CONFIG_USER_ID_DENY, message, sizeof(message)),
        GATEWAY_USER_ID_REPLACE);
    CU_ASSERT_EQUAL(
        gateway_route_check_user_id(&alice, "", CONFIG_USER_ID_REPLACE, message, sizeof(message)),
        GATEWAY_USER_ID_REPLACE);
    CU_ASSERT_EQUAL(gateway_route_check_user_id(&alice, "bob", CONFIG_USER_ID_REPLACE, message,
                                                sizeof(message)),
                    GATEWAY_USER_ID_REPLACE);
    /* a prefix of the subject is someone else */
    CU_ASSERT_EQUAL(gateway_route_check_user_id(&alice, "alic", CONFIG_USER_ID_REPLACE, message,
                                                sizeof(message)),
                    GATEWAY_USER_ID_REPLACE);
    CU_ASSERT_STRING_EQUAL(message, "");
    CU_ASSERT_EQUAL(
        gateway_route_check_user_id(&alice, "Bob's", CONFIG_USER_ID_DENY, message, sizeof(message)),
        GATEWAY_USER_ID_DENY);
    CU_ASSERT_STRING_EQUAL(message,
                           "user_context.user_id 'Bob?s' is not the authenticated user alice");
}

static const unit_test_case cases[] = {
    {"pattern errors are found at load", test_pattern_errors},
    {"hyphenated teams and regions", test_hyphenated_teams},
    {"case, ports and a trailing dot", test_case_ports_and_dots},
    {"IP literals and a missing :authority", test_ip_literals_and_missing_authority},
    {"x-sparkplane-cluster-id", test_cluster_id_header},
    {"a host that fits but names no cluster", test_pattern_matches_but_no_cluster},
    {"a router from the config", test_router_from_config},
    {"who may use a cluster", test_authorize},
    {"user_id replace and deny", test_user_id_policy},
    {NULL, NULL}};

UNIT_TEST_MAIN("gateway_route", cases)
