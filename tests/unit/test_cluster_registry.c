/*
 * test_cluster_registry.c - the clusters the gateway routes to: adding,
 * replacing and removing clusters, finding them by id and by placement,
 * refusing malformed ones without changing anything, the least-loaded
 * healthy driver for new sessions, and static clusters from the config
 * with their tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/cluster_registry.h"
#include "test_dir.h"
#include "unit_test.h"

static char err[512];

static cluster_entry entry_of(const char *id, const char *team, cluster_endpoint *endpoints,
                              size_t count)
{
    return (cluster_entry){.id = (char *)id, .team = (char *)team, .environment = (char *)"prod",
                           .region = (char *)"local", .endpoints = endpoints,
                           .endpoint_count = count};
}

static void test_put_find_list_remove(void)
{
    cluster_registry *registry = cluster_registry_new();
    cluster_endpoint one[] = {{.address = (char *)"10.0.0.1:15002"}};
    cluster_endpoint two[] = {{.address = (char *)"10.0.0.2:15002"},
                              {.address = (char *)"[::1]:15003"}};
    cluster_entry a = entry_of("fe-prod", "feature-eng", one, 1);
    a.token = (char *)"server-secret";
    cluster_entry b = entry_of("ml-prod", "ml", two, 2);
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &a, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &b, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cluster_registry_count(registry), 2);

    const cluster_entry *found = cluster_registry_find(registry, "fe-prod");
    CU_ASSERT_PTR_NOT_NULL_FATAL(found);
    CU_ASSERT_PTR_NOT_EQUAL(found->id, a.id); /* a copy, not the caller's strings */
    CU_ASSERT_STRING_EQUAL(found->token, "server-secret");
    CU_ASSERT_EQUAL(found->endpoints[0].healthy, 1);
    CU_ASSERT_PTR_EQUAL(cluster_registry_find_placement(registry, "ml", "prod", "local"),
                        cluster_registry_find(registry, "ml-prod"));
    CU_ASSERT_PTR_NULL(cluster_registry_find_placement(registry, "ml", "prod", "eu"));
    CU_ASSERT_PTR_NULL(cluster_registry_find(registry, "nope"));
    CU_ASSERT_PTR_NULL(cluster_registry_find(registry, NULL));
    CU_ASSERT_STRING_EQUAL(cluster_registry_at(registry, 0)->id, "fe-prod");
    CU_ASSERT_STRING_EQUAL(cluster_registry_at(registry, 1)->id, "ml-prod");
    CU_ASSERT_PTR_NULL(cluster_registry_at(registry, 2));

    /* replacing keeps the place in the list and moves the placement */
    a.environment = (char *)"staging";
    a.token = NULL;
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &a, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cluster_registry_count(registry), 2);
    CU_ASSERT_STRING_EQUAL(cluster_registry_at(registry, 0)->environment, "staging");
    CU_ASSERT_PTR_NULL(cluster_registry_at(registry, 0)->token);
    CU_ASSERT_PTR_NULL(cluster_registry_find_placement(registry, "feature-eng", "prod", "local"));

    CU_ASSERT_EQUAL(cluster_registry_remove(registry, "fe-prod"), 0);
    CU_ASSERT_EQUAL(cluster_registry_remove(registry, "fe-prod"), -1);
    CU_ASSERT_EQUAL(cluster_registry_count(registry), 1);
    CU_ASSERT_STRING_EQUAL(cluster_registry_at(registry, 0)->id, "ml-prod");
    cluster_registry_free(registry);
}

static void expect_rejected(cluster_registry *registry, const cluster_entry *entry,
                            const char *expected)
{
    size_t before = cluster_registry_count(registry);
    err[0] = '\0';
    CU_ASSERT_EQUAL(cluster_registry_put(registry, entry, err, sizeof(err)), -1);
    if (strcmp(err, expected) != 0)
        fprintf(stderr, "\n    got '%s'", err);
    CU_ASSERT_STRING_EQUAL(err, expected);
    CU_ASSERT_EQUAL(cluster_registry_count(registry), before);
}

static void test_malformed_entries_change_nothing(void)
{
    cluster_registry *registry = cluster_registry_new();
    cluster_endpoint one[] = {{.address = (char *)"10.0.0.1:15002"}};
    cluster_endpoint bad[] = {{.address = (char *)"10.0.0.1:15002"},
                              {.address = (char *)"10.0.0.1"}};
    cluster_entry ok = entry_of("fe-prod", "feature-eng", one, 1);
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &ok, err, sizeof(err)), 0);

    cluster_entry e = entry_of("FE_prod", "feature-eng", one, 1);
    expect_rejected(registry, &e, "id: expected [a-z0-9-]{1,63}, got 'FE_prod'");
    e = entry_of("x", "feature-eng", one, 0);
    expect_rejected(registry, &e, "cluster 'x': endpoints: expected 1 to 64 endpoints");
    e = entry_of("x", "feature-eng", bad, 2);
    expect_rejected(registry, &e, "cluster 'x': endpoints[1]: '10.0.0.1' is not host:port");
    e = entry_of("x", "feature-eng", one, 1);
    e.environment = (char *)"pre-prod";
    expect_rejected(registry, &e, "cluster 'x': team and region must be [a-z0-9-]{1,63}, "
                                  "environment [a-z0-9]{1,63}");
    /* one placement, one cluster: routing by host name must be unambiguous */
    e = entry_of("other", "feature-eng", one, 1);
    expect_rejected(registry, &e, "cluster 'other': team feature-eng, environment prod, region "
                                  "local already belongs to cluster 'fe-prod'");
    /* a failed replacement keeps the old cluster */
    e = entry_of("fe-prod", "feature-eng", bad, 2);
    expect_rejected(registry, &e, "cluster 'fe-prod': endpoints[1]: '10.0.0.1' is not host:port");
    CU_ASSERT_EQUAL(cluster_registry_find(registry, "fe-prod")->endpoint_count, 1);
    cluster_registry_free(registry);
}

static void test_least_loaded_healthy_endpoint(void)
{
    cluster_registry *registry = cluster_registry_new();
    cluster_endpoint drivers[] = {{.address = (char *)"d1:15002"},
                                  {.address = (char *)"d2:15002"},
                                  {.address = (char *)"d3:15002"}};
    cluster_entry entry = entry_of("fe-prod", "feature-eng", drivers, 3);
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &entry, err, sizeof(err)), 0);
    const cluster_entry *c = cluster_registry_find(registry, "fe-prod");

    /* new sessions spread over the drivers */
    int picks[6];
    for (int i = 0; i < 6; i++) {
        picks[i] = cluster_registry_pick_endpoint(c);
        CU_ASSERT_FATAL(picks[i] >= 0);
        CU_ASSERT_EQUAL(cluster_registry_session_begin(registry, "fe-prod",
                                                       c->endpoints[picks[i]].address),
                        0);
    }
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(c->endpoints[i].sessions, 2);

    /* a dead driver gets nothing; a freed slot is used first */
    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 0), 0);
    CU_ASSERT_EQUAL(cluster_registry_session_end(registry, "fe-prod", "d1:15002"), 0);
    CU_ASSERT_EQUAL(cluster_registry_session_end(registry, "fe-prod", "d3:15002"), 0);
    CU_ASSERT_EQUAL(cluster_registry_pick_endpoint(c), 2);

    /* replacing the cluster keeps counters of drivers that stay */
    cluster_endpoint next[] = {{.address = (char *)"d4:15002"}, {.address = (char *)"d1:15002"}};
    entry = entry_of("fe-prod", "feature-eng", next, 2);
    CU_ASSERT_EQUAL_FATAL(cluster_registry_put(registry, &entry, err, sizeof(err)), 0);
    c = cluster_registry_find(registry, "fe-prod");
    CU_ASSERT_EQUAL(c->endpoints[0].sessions, 0);
    CU_ASSERT_EQUAL(c->endpoints[0].healthy, 1);
    CU_ASSERT_EQUAL(c->endpoints[1].sessions, 1);
    CU_ASSERT_EQUAL(c->endpoints[1].healthy, 0);
    CU_ASSERT_EQUAL(cluster_registry_pick_endpoint(c), 0);

    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d4:15002", 0), 0);
    CU_ASSERT_EQUAL(cluster_registry_pick_endpoint(c), -1);
    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 1), 0);
    CU_ASSERT_EQUAL(cluster_registry_pick_endpoint(c), 1);

    /* a session outliving its driver or cluster ends quietly */
    CU_ASSERT_EQUAL(cluster_registry_session_end(registry, "fe-prod", "d2:15002"), -1);
    CU_ASSERT_EQUAL(cluster_registry_remove(registry, "fe-prod"), 0);
    CU_ASSERT_EQUAL(cluster_registry_session_end(registry, "fe-prod", "d1:15002"), -1);
    CU_ASSERT_EQUAL(cluster_registry_set_healthy(registry, "fe-prod", "d1:15002", 1), -1);
    CU_ASSERT_EQUAL(cluster_registry_pick_endpoint(NULL), -1);
    cluster_registry_free(registry);
}

static config *load(const char *text, diag_list *problems)
{
    config *cfg = NULL;
    int rc = config_load_buffer(TEST_SRCDIR "/t.yaml", text, strlen(text), "/p", &cfg, problems);
    for (size_t i = 0; i < problems->count; i++)
        fprintf(stderr, "\n    problem: %s", problems->messages[i]);
    CU_ASSERT_EQUAL(rc, 0);
    return cfg;
}

static void test_static_clusters_from_config(void)
{
    test_dir dir;
    CU_ASSERT_EQUAL_FATAL(test_dir_make_named(&dir, "test_cluster_registry"), 0);
    char path[TEST_PATH_MAX + 32], text[2048];
    snprintf(path, sizeof(path), "%s/token", dir.root);
    FILE *file = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    fputs("  from-file-secret \nsecond line ignored\n", file);
    fclose(file);
    snprintf(text, sizeof(text),
             "gateway: {default_region: eu}\n"
             "clusters:\n"
             "  - {id: fe-prod, team: feature-eng, environment: prod, endpoints: ['a:1', 'b:2'],\n"
             "     token: inline-secret}\n"
             "  - {id: ml-dev, team: ml, environment: dev, region: us, endpoints: ['c:3'],\n"
             "     token_file: %s}\n"
             "  - {id: open, team: ml, environment: test, endpoints: ['d:4']}\n",
             path);
    diag_list problems = {0};
    config *cfg = load(text, &problems);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    cluster_registry *registry = cluster_registry_new();
    CU_ASSERT_EQUAL(cluster_registry_load_config(registry, cfg, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cluster_registry_count(registry), 3);
    const cluster_entry *fe =
        cluster_registry_find_placement(registry, "feature-eng", "prod", "eu");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fe);
    CU_ASSERT_EQUAL(fe->endpoint_count, 2);
    CU_ASSERT_STRING_EQUAL(fe->endpoints[1].address, "b:2");
    CU_ASSERT_STRING_EQUAL(fe->token, "inline-secret");
    CU_ASSERT_STRING_EQUAL(cluster_registry_find(registry, "ml-dev")->token, "from-file-secret");
    CU_ASSERT_PTR_NULL(cluster_registry_find(registry, "open")->token);
    cluster_registry_free(registry);

    /* an unreadable token file names the cluster and the file */
    unlink(path);
    registry = cluster_registry_new();
    CU_ASSERT_EQUAL(cluster_registry_load_config(registry, cfg, err, sizeof(err)), -1);
    char expected[TEST_PATH_MAX + 128];
    snprintf(expected, sizeof(expected), "cluster 'ml-dev': token_file %s: No such file or "
             "directory", path);
    CU_ASSERT_STRING_EQUAL(err, expected);
    /* an empty one too */
    file = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    fclose(file);
    CU_ASSERT_EQUAL(cluster_registry_load_config(registry, cfg, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "expected a token of 1 to 4096 characters"));
    cluster_registry_free(registry);
    config_free(cfg);
    diag_clear(&problems);
    test_dir_remove(&dir);
}

static const unit_test_case cases[] = {
    {"put, find, list, replace and remove", test_put_find_list_remove},
    {"malformed entries change nothing", test_malformed_entries_change_nothing},
    {"the least-loaded healthy endpoint", test_least_loaded_healthy_endpoint},
    {"static clusters from the config", test_static_clusters_from_config},
    {NULL, NULL}};

UNIT_TEST_MAIN("cluster_registry", cases)
