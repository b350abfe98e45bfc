/*
 * test_config.c - loading the daemon's configuration as an operator would:
 * defaults, a file that sets everything, conf.d drop-ins merged in name
 * order, and broken files where every problem must be reported at once
 * with "file:line:column: dotted.key: message".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* By path: a plain "config.h" would find autoconf's header in the build dir. */
#include "../../core/config.h"
#include "unit_test.h"

#define DATA TEST_SRCDIR "/data"

static diag_list problems;

static void print_problems(void)
{
    for (size_t i = 0; i < problems.count; i++)
        fprintf(stderr, "\n    problem: %s", problems.messages[i]);
}

static config *load_text(const char *text)
{
    config *cfg = NULL;
    diag_clear(&problems);
    int rc = config_load_buffer("t.yaml", text, strlen(text), "/plugins", &cfg, &problems);
    if (rc != 0)
        print_problems();
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(problems.count, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    return cfg;
}

/* Loads text that must fail; returns the number of problems. */
static size_t load_text_fails(const char *text)
{
    config *cfg = (config *)&cfg;
    diag_clear(&problems);
    CU_ASSERT_EQUAL(config_load_buffer("t.yaml", text, strlen(text), "/plugins", &cfg, &problems),
                    -1);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT(problems.count > 0);
    return problems.count;
}

static int has_problem(const char *expected)
{
    for (size_t i = 0; i < problems.count; i++)
        if (strcmp(problems.messages[i], expected) == 0)
            return 1;
    fprintf(stderr, "\n    missing: %s", expected);
    print_problems();
    return 0;
}

static void test_defaults(void)
{
    config *cfg = load_text("# nothing set\n");
    CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 1);
    CU_ASSERT_STRING_EQUAL(cfg->listen[0], "127.0.0.1:8080");
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 1024 * 1024);
    CU_ASSERT_EQUAL(cfg->max_header_bytes, 16 * 1024);
    CU_ASSERT_EQUAL(cfg->request_timeout_ms, 30000);
    CU_ASSERT_EQUAL(cfg->drain_timeout_ms, 10000);
    CU_ASSERT_EQUAL(cfg->log_level, SP_LOG_INFO);
    CU_ASSERT_EQUAL(cfg->log_format, LOG_FORMAT_KV);
    CU_ASSERT_STRING_EQUAL(cfg->state_directory, LOCALSTATEDIR "/lib/sparkplane");
    CU_ASSERT_STRING_EQUAL(cfg->database_path, LOCALSTATEDIR "/lib/sparkplane/sparkplane.db");
    CU_ASSERT_STRING_EQUAL(cfg->plugin_directory, "/plugins");
    CU_ASSERT_EQUAL(cfg->plugin_count, 0);
    CU_ASSERT_EQUAL(cfg->auth_chain_count, 0);
    CU_ASSERT_STRING_EQUAL(cfg->source_path, "t.yaml");
    CU_ASSERT_PTR_NOT_NULL(cfg->root);
    CU_ASSERT_STRING_EQUAL(cfg->runner_default_backend, "local");
    CU_ASSERT_EQUAL(cfg->reconcile_interval_ms, 2000);
    CU_ASSERT_EQUAL(cfg->max_starting_per_backend, 4);
    CU_ASSERT_EQUAL(cfg->max_running_per_backend, 16);
    CU_ASSERT_EQUAL(cfg->max_running_per_team, 8);
    CU_ASSERT_EQUAL(cfg->idempotency_ttl_ms, 24ull * 3600 * 1000);
    CU_ASSERT_EQUAL(cfg->spark_version_count, 0);
    CU_ASSERT_PTR_NULL(config_find_spark_version(cfg, "4.0"));
    config_free(cfg);

    /* empty sections keep their defaults too */
    cfg = load_text("server:\nlog: ~\nstate: null\nplugins:\nauth:\n");
    CU_ASSERT_EQUAL(cfg->request_timeout_ms, 30000);
    config_free(cfg);
}

static void test_full_file(void)
{
    config *cfg = NULL;
    diag_clear(&problems);
    int rc = config_load(DATA "/config_full.yaml", "/unused", &cfg, &problems);
    print_problems();
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg->listen[0], "0.0.0.0:9090");
    CU_ASSERT_STRING_EQUAL(cfg->listen[1], "[::1]:9091");
    CU_ASSERT_EQUAL(cfg->max_body_bytes, 2 * 1024 * 1024);
    CU_ASSERT_EQUAL(cfg->max_header_bytes, 8 * 1024);
    CU_ASSERT_EQUAL(cfg->request_timeout_ms, 60000);
    CU_ASSERT_EQUAL(cfg->drain_timeout_ms, 0);
    CU_ASSERT_EQUAL(cfg->log_level, SP_LOG_DEBUG);
    CU_ASSERT_EQUAL(cfg->log_format, LOG_FORMAT_JSON);
    CU_ASSERT_STRING_EQUAL(cfg->state_directory, "/srv/sp");
    CU_ASSERT_STRING_EQUAL(cfg->database_path, "/srv/sp/db/main.db");
    CU_ASSERT_STRING_EQUAL(cfg->plugin_directory, "/opt/sp/plugins");
    CU_ASSERT_STRING_EQUAL(cfg->source_path, DATA "/config_full.yaml");

    CU_ASSERT_EQUAL_FATAL(cfg->plugin_count, 3);
    config_plugin *token = &cfg->plugins[0];
    CU_ASSERT_STRING_EQUAL(token->name, "auth_token");
    CU_ASSERT_STRING_EQUAL(token->path, "/opt/sp/plugins/auth_token.so");
    CU_ASSERT_TRUE(token->enabled);
    CU_ASSERT_PTR_NOT_NULL_FATAL(token->options);
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(token->options, "file")->value, "/etc/tokens");
    CU_ASSERT_STRING_EQUAL(token->file, DATA "/config_full.yaml");
    CU_ASSERT_EQUAL(token->line, 16);
    CU_ASSERT_EQUAL(token->column, 3);

    config_plugin *local = &cfg->plugins[1];
    CU_ASSERT_STRING_EQUAL(local->name, "backend_local");
    CU_ASSERT_STRING_EQUAL(local->path, DATA "/../local/backend_local.so");
    CU_ASSERT_FALSE(local->enabled);
    CU_ASSERT_PTR_NULL(local->options);
    CU_ASSERT_STRING_EQUAL(cfg->plugins[2].name, "policy_aps"); /* null entry: all defaults */
    CU_ASSERT_TRUE(cfg->plugins[2].enabled);

    CU_ASSERT_EQUAL_FATAL(cfg->auth_chain_count, 1);
    CU_ASSERT_STRING_EQUAL(cfg->auth_chain[0], "auth_token");

    CU_ASSERT_STRING_EQUAL(cfg->runner_default_backend, "sim");
    CU_ASSERT_EQUAL(cfg->reconcile_interval_ms, 500);
    CU_ASSERT_EQUAL(cfg->max_starting_per_backend, 2);
    CU_ASSERT_EQUAL(cfg->max_running_per_backend, 32);
    CU_ASSERT_EQUAL(cfg->max_running_per_team, 3);
    CU_ASSERT_EQUAL(cfg->idempotency_ttl_ms, 7ull * 24 * 3600 * 1000);
    CU_ASSERT_EQUAL_FATAL(cfg->spark_version_count, 2);
    const config_spark_version *v40 = config_find_spark_version(cfg, "4.0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v40);
    CU_ASSERT_STRING_EQUAL(v40->spark_home, "/opt/spark-4.0");
    CU_ASSERT_STRING_EQUAL(v40->image, "spark-platform:4.0-latest");
    const config_spark_version *v351 = config_find_spark_version(cfg, "3.5.1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v351);
    CU_ASSERT_PTR_NULL(v351->spark_home);
    CU_ASSERT_STRING_EQUAL(v351->image, "spark-platform:3.5.1-latest");
    CU_ASSERT_PTR_EQUAL(&cfg->spark_versions[1], v351); /* document order */
    CU_ASSERT_PTR_NULL(config_find_spark_version(cfg, "3.5"));
    CU_ASSERT_PTR_NULL(config_find_spark_version(cfg, NULL));
    config_free(cfg);
}

static void test_dropins_merge_in_name_order(void)
{
    config *cfg = NULL;
    diag_clear(&problems);
    int rc = config_load(DATA "/config_dropins/sparkplane.yaml", "/plugins", &cfg, &problems);
    print_problems();
    CU_ASSERT_EQUAL_FATAL(rc, 0); /* .hidden.yaml (broken) and README.txt are skipped */
    /* 20-server.yaml comes after 10-server.yaml and replaces its sequence */
    CU_ASSERT_EQUAL_FATAL(cfg->listen_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg->listen[0], "127.0.0.1:1020");
    CU_ASSERT_STRING_EQUAL(cfg->listen[1], "127.0.0.1:1021");
    CU_ASSERT_EQUAL(cfg->request_timeout_ms, 5000); /* main file, untouched */
    CU_ASSERT_EQUAL(cfg->drain_timeout_ms, 1000);   /* 10-server.yaml */
    CU_ASSERT_EQUAL(cfg->log_level, SP_LOG_WARN);

    CU_ASSERT_EQUAL_FATAL(cfg->plugin_count, 2);
    const yaml_tree_node *options = cfg->plugins[0].options;
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(options, "file")->value, "/etc/tokens");
    const yaml_tree_node *ttl = yaml_tree_map_get(options, "ttl");
    CU_ASSERT_STRING_EQUAL(ttl->value, "2h");
    CU_ASSERT_STRING_EQUAL(ttl->file, DATA "/config_dropins/conf.d/20-server.yaml");
    CU_ASSERT_EQUAL(ttl->line, 6);
    /* a relative path is taken from the directory of the drop-in that set it */
    CU_ASSERT_STRING_EQUAL(cfg->plugins[1].path,
                           DATA "/config_dropins/conf.d/plugins/backend_local.so");
    CU_ASSERT_STRING_EQUAL(cfg->plugins[1].file, DATA "/config_dropins/conf.d/20-server.yaml");
    CU_ASSERT_EQUAL(cfg->auth_chain_count, 1);
    config_free(cfg);
}

static void test_dropin_problems_are_all_reported(void)
{
    config *cfg = (config *)&cfg;
    diag_clear(&problems);
    CU_ASSERT_EQUAL(config_load(DATA "/config_bad_dropins/sparkplane.yaml", "/p", &cfg, &problems),
                    -1);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(problems.count, 4);
    CU_ASSERT(has_problem(DATA "/config_bad_dropins/conf.d/10-broken.yaml:3:1: did not find "
                               "expected ',' or ']' (while parsing a flow sequence at line 2, "
                               "column 11)"));
    CU_ASSERT(has_problem(DATA "/config_bad_dropins/conf.d/20-list.yaml:1:1: top level must be "
                               "a mapping to merge, got a sequence"));
    CU_ASSERT(has_problem(DATA "/config_bad_dropins/sparkplane.yaml:2:20: "
                               "server.request_timeout: expected a duration such as 250ms, 30s, "
                               "5m, 2h or 7d, got '30'"));
    CU_ASSERT(has_problem(DATA "/config_bad_dropins/conf.d/30-typo.yaml:2:3: log.levle: unknown "
                               "key 'levle' in log; known keys: level, format"));
}

static void test_unreadable_main_file(void)
{
    config *cfg = (config *)&cfg;
    diag_clear(&problems);
    CU_ASSERT_EQUAL(config_load(DATA "/config_missing.yaml", "/p", &cfg, &problems), -1);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(problems.count, 1);
    CU_ASSERT(has_problem(DATA "/config_missing.yaml: cannot read: No such file or directory"));
}

static void test_every_problem_is_collected(void)
{
    size_t count = load_text_fails("server:\n"                             /* 1 */
                                   "  listen: {a: 1}\n"                    /* 2 */
                                   "  max_body_size: lots\n"               /* 3 */
                                   "  max_header_size: 0\n"                /* 4 */
                                   "  request_timeout: 5 m\n"              /* 5 */
                                   "  drain_timeout: -1s\n"                /* 6 */
                                   "  port: 80\n"                          /* 7 */
                                   "log:\n"                                /* 8 */
                                   "  level: verbose\n"                    /* 9 */
                                   "  format: [kv]\n"                      /* 10 */
                                   "state:\n"                              /* 11 */
                                   "  directory: ''\n"                     /* 12 */
                                   "plugins:\n"                            /* 13 */
                                   "  Bad-Name: {}\n"                      /* 14 */
                                   "  good:\n"                             /* 15 */
                                   "    enabled: maybe\n"                  /* 16 */
                                   "    options: [a]\n"                    /* 17 */
                                   "    colour: red\n"                     /* 18 */
                                   "  off_one: {enabled: false}\n"         /* 19 */
                                   "  listy: [1]\n"                        /* 20 */
                                   "auth:\n"                               /* 21 */
                                   "  chain: [good, missing, off_one, good]\n" /* 22 */
                                   "extra: 1\n");                          /* 23 */
    CU_ASSERT(has_problem("t.yaml:2:11: server.listen: expected a sequence of strings, got a "
                          "mapping"));
    CU_ASSERT(has_problem("t.yaml:3:18: server.max_body_size: expected a size such as 4096, "
                          "512KiB, 1MiB or 2GiB, got 'lots'"));
    CU_ASSERT(has_problem("t.yaml:4:20: server.max_header_size: must be greater than 0"));
    CU_ASSERT(has_problem("t.yaml:5:20: server.request_timeout: expected a duration such as "
                          "250ms, 30s, 5m, 2h or 7d, got '5 m'"));
    CU_ASSERT(has_problem("t.yaml:6:18: server.drain_timeout: expected a duration such as "
                          "250ms, 30s, 5m, 2h or 7d, got '-1s'"));
    CU_ASSERT(has_problem("t.yaml:7:3: server.port: unknown key 'port' in server; known keys: "
                          "listen, max_body_size, max_header_size, request_timeout, "
                          "drain_timeout, tls"));
    CU_ASSERT(has_problem("t.yaml:9:10: log.level: expected one of error, warn, info, debug, "
                          "got 'verbose'"));
    CU_ASSERT(has_problem("t.yaml:10:11: log.format: expected a non-empty string, got a "
                          "sequence"));
    CU_ASSERT(has_problem("t.yaml:12:14: state.directory: expected a non-empty string, got "
                          "''"));
    CU_ASSERT(has_problem("t.yaml:14:3: plugins.Bad-Name: plugin names are 1 to 64 characters "
                          "of a-z, 0-9 and '_'"));
    CU_ASSERT(has_problem("t.yaml:16:14: plugins.good.enabled: expected true or false, got "
                          "'maybe'"));
    CU_ASSERT(has_problem("t.yaml:17:14: plugins.good.options: expected a mapping, got a "
                          "sequence"));
    CU_ASSERT(has_problem("t.yaml:18:5: plugins.good.colour: unknown key 'colour' in "
                          "plugins.good; known keys: path, enabled, options"));
    CU_ASSERT(has_problem("t.yaml:20:10: plugins.listy: expected a mapping, got a sequence"));
    CU_ASSERT(has_problem("t.yaml:22:17: auth.chain[1]: 'missing' is not a configured plugin "
                          "(add it under plugins:)"));
    CU_ASSERT(has_problem("t.yaml:22:26: auth.chain[2]: plugin 'off_one' is disabled"));
    CU_ASSERT(has_problem("t.yaml:22:35: auth.chain[3]: 'good' is listed twice"));
    CU_ASSERT(has_problem("t.yaml:23:1: extra: unknown key 'extra' at the top level; known "
                          "keys: server, log, state, plugin_directory, plugins, auth, runner, "
                          "spark_versions, gateway, clusters, provisioning, audit"));
    CU_ASSERT_EQUAL(count, 18);
}

static void test_runner_values(void)
{
    load_text_fails("runner:\n"                               /* 1 */
                    "  default_backend: Local-1\n"            /* 2 */
                    "  reconcile_interval: 0s\n"              /* 3 */
                    "  max_starting_per_backend: 0\n"         /* 4 */
                    "  max_running_per_backend: many\n"       /* 5 */
                    "  max_running_per_team: 100001\n"        /* 6 */
                    "  idempotency_ttl: forever\n"            /* 7 */
                    "  max_jobs: 3\n");                       /* 8 */
    CU_ASSERT(has_problem("t.yaml:2:20: runner.default_backend: backend names are 1 to 64 "
                          "characters of a-z, 0-9 and '_', got 'Local-1'"));
    CU_ASSERT(has_problem("t.yaml:3:23: runner.reconcile_interval: must be greater than 0"));
    CU_ASSERT(has_problem("t.yaml:4:29: runner.max_starting_per_backend: expected an integer "
                          "from 1 to 100000, got '0'"));
    CU_ASSERT(has_problem("t.yaml:5:28: runner.max_running_per_backend: expected an integer "
                          "from 1 to 100000, got 'many'"));
    CU_ASSERT(has_problem("t.yaml:6:25: runner.max_running_per_team: expected an integer from "
                          "1 to 100000, got '100001'"));
    CU_ASSERT(has_problem("t.yaml:7:20: runner.idempotency_ttl: expected a duration such as "
                          "250ms, 30s, 5m, 2h or 7d, got 'forever'"));
    CU_ASSERT(has_problem("t.yaml:8:3: runner.max_jobs: unknown key 'max_jobs' in runner; "
                          "known keys: default_backend, reconcile_interval, "
                          "max_starting_per_backend, max_running_per_backend, "
                          "max_running_per_team, idempotency_ttl"));
    CU_ASSERT_EQUAL(problems.count, 7);

    load_text_fails("runner: [local]\n");
    CU_ASSERT(has_problem("t.yaml:1:9: runner: expected a mapping, got a sequence"));

    config *cfg = load_text("runner:\n  max_running_per_team: 100000\n  default_backend: sim\n");
    CU_ASSERT_EQUAL(cfg->max_running_per_team, 100000);
    CU_ASSERT_EQUAL(cfg->max_running_per_backend, 16); /* the others keep their defaults */
    CU_ASSERT_STRING_EQUAL(cfg->runner_default_backend, "sim");
    config_free(cfg);
}

static void test_spark_versions(void)
{
    load_text_fails("spark_versions:\n"                      /* 1 */
                    "  '4.x': {image: a}\n"                  /* 2 */
                    "  '4.0':\n"                             /* 3 */
                    "    spark_home: relative/spark\n"       /* 4 */
                    "  '3.5': {}\n"                          /* 5 */
                    "  '3.4': [a]\n"                         /* 6 */
                    "  '3.3': {image: x, colour: red}\n"     /* 7 */
                    "  '3.2':\n"                             /* 8 */
                    "  '.1': {image: y}\n"                   /* 9 */
                    "  '3.1': {image: ''}\n");               /* 10 */
    CU_ASSERT(has_problem("t.yaml:2:3: spark_versions.4.x: spark versions look like 3.5 or "
                          "4.0.1 ([0-9]+(.[0-9]+)*), got '4.x'"));
    CU_ASSERT(has_problem("t.yaml:4:17: spark_versions.4.0.spark_home: must be an absolute "
                          "path, got 'relative/spark'"));
    CU_ASSERT(has_problem("t.yaml:5:10: spark_versions.3.5: set spark_home (local backend), "
                          "image (container backends) or both"));
    CU_ASSERT(has_problem("t.yaml:6:10: spark_versions.3.4: expected a mapping with "
                          "spark_home and/or image, got a sequence"));
    CU_ASSERT(has_problem("t.yaml:7:21: spark_versions.3.3.colour: unknown key 'colour' in "
                          "spark_versions.3.3; known keys: spark_home, image"));
    CU_ASSERT(has_problem("t.yaml:8:9: spark_versions.3.2: expected a mapping with spark_home "
                          "and/or image, got null"));
    CU_ASSERT(has_problem("t.yaml:9:3: spark_versions..1: spark versions look like 3.5 or "
                          "4.0.1 ([0-9]+(.[0-9]+)*), got '.1'"));
    CU_ASSERT(has_problem("t.yaml:10:18: spark_versions.3.1.image: expected a non-empty string, "
                          "got ''"));
    CU_ASSERT_EQUAL(problems.count, 8);

    config *cfg = load_text("spark_versions:\n  '4':\n    spark_home: /opt/spark\n");
    CU_ASSERT_EQUAL_FATAL(cfg->spark_version_count, 1);
    CU_ASSERT_STRING_EQUAL(config_find_spark_version(cfg, "4")->spark_home, "/opt/spark");
    CU_ASSERT_PTR_NULL(config_find_spark_version(cfg, "4")->image);
    CU_ASSERT_PTR_NULL(config_find_spark_version(cfg, "4.0")); /* versions match exactly */
    config_free(cfg);
}

static void test_listen_addresses(void)
{
    load_text_fails("server:\n  listen:\n    - 127.0.0.1\n    - \"host:0\"\n    - h:65536\n"
                    "    - ::1:80\n    - '[::1:80'\n    - '[nothost]:80'\n    - 'a b:80'\n"
                    "    - h:80\n    - h:80\n    - {x: 1}\n");
    const char *expected[] = {
        "t.yaml:3:7: server.listen[0]: '127.0.0.1' is not host:port with a port from 1 to "
        "65535 (write IPv6 as [::1]:8080)",
        "t.yaml:4:7: server.listen[1]: 'host:0' is not host:port with a port from 1 to 65535 "
        "(write IPv6 as [::1]:8080)",
        "t.yaml:5:7: server.listen[2]: 'h:65536' is not host:port with a port from 1 to 65535 "
        "(write IPv6 as [::1]:8080)",
        "t.yaml:6:7: server.listen[3]: '::1:80' is not host:port with a port from 1 to 65535 "
        "(write IPv6 as [::1]:8080)",
        "t.yaml:7:7: server.listen[4]: '[::1:80' is not host:port with a port from 1 to 65535 "
        "(write IPv6 as [::1]:8080)",
        "t.yaml:8:7: server.listen[5]: '[nothost]:80' is not host:port with a port from 1 to "
        "65535 (write IPv6 as [::1]:8080)",
        "t.yaml:9:7: server.listen[6]: 'a b:80' is not host:port with a port from 1 to 65535 "
        "(write IPv6 as [::1]:8080)",
        "t.yaml:11:7: server.listen[8]: 'h:80' is listed twice",
        "t.yaml:12:7: server.listen[9]: expected a \"host:port\" string, got a mapping",
        NULL};
    for (size_t i = 0; expected[i] != NULL; i++)
        CU_ASSERT(has_problem(expected[i]));
    CU_ASSERT_EQUAL(problems.count, 9);

    load_text_fails("server:\n  listen: []\n");
    CU_ASSERT(has_problem("t.yaml:2:11: server.listen: at least one address is required"));
    load_text_fails("server:\n  listen: \"127.0.0.1:80\"\n");
    CU_ASSERT(has_problem("t.yaml:2:11: server.listen: expected a sequence of strings, got "
                          "'127.0.0.1:80'"));
}

static void test_split_listen(void)
{
    char host[64];
    int port = 0;
    CU_ASSERT_EQUAL(config_split_listen("127.0.0.1:8080", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 8080);
    CU_ASSERT_EQUAL(config_split_listen("[::1]:1", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 1);
    CU_ASSERT_EQUAL(config_split_listen("[fe80::1:2]:65535", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "fe80::1:2");
    CU_ASSERT_EQUAL(port, 65535);
    CU_ASSERT_EQUAL(config_split_listen("my-host.example_1:443", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "my-host.example_1");

    const char *bad[] = {"", ":80", "h:", "h", "h:0", "h:65536", "h:+80", "h:8o", "h:-1",
                         "h:123456", "[::1]", "[::1]80", "[]:80", "[zz]:80", "::1:80",
                         "h :80", "h:80 ", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        port = -7;
        CU_ASSERT_EQUAL(config_split_listen(bad[i], host, sizeof(host), &port), -1);
    }
    char tiny[4];
    CU_ASSERT_EQUAL(config_split_listen("abcd:80", tiny, sizeof(tiny), &port), -1);
    CU_ASSERT_EQUAL(config_split_listen("abc:80", tiny, sizeof(tiny), &port), 0);
}

static void test_paths(void)
{
    config *cfg = NULL;
    const char *text = "state:\n  directory: /data/sp\n  database: /elsewhere/x.db\n"
                       "plugin_directory: lib\n"
                       "plugins:\n  a: {path: /abs/a.so}\n  b: {path: rel/b.so}\n  c:\n";
    diag_clear(&problems);
    CU_ASSERT_EQUAL_FATAL(config_load_buffer("/etc/sp/main.yaml", text, strlen(text), "/p", &cfg,
                                             &problems),
                          0);
    CU_ASSERT_STRING_EQUAL(cfg->database_path, "/elsewhere/x.db");
    CU_ASSERT_STRING_EQUAL(cfg->plugin_directory, "/etc/sp/lib");
    CU_ASSERT_STRING_EQUAL(cfg->plugins[0].path, "/abs/a.so");
    CU_ASSERT_STRING_EQUAL(cfg->plugins[1].path, "/etc/sp/rel/b.so");
    CU_ASSERT_STRING_EQUAL(cfg->plugins[2].path, "/etc/sp/lib/c.so");
    config_free(cfg);

    cfg = load_text("state:\n  directory: relative/dir\n");
    CU_ASSERT_STRING_EQUAL(cfg->database_path, "relative/dir/sparkplane.db");
    CU_ASSERT_STRING_EQUAL(cfg->audit_file, "relative/dir/audit.log");
    config_free(cfg);

    cfg = load_text("state:\n  directory: /d\naudit:\n  file: /var/log/sp/audit.jsonl\n");
    CU_ASSERT_STRING_EQUAL(cfg->audit_file, "/var/log/sp/audit.jsonl");
    config_free(cfg);
    load_text_fails("audit:\n  file: ''\n");
    CU_ASSERT(has_problem("t.yaml:2:9: audit.file: expected a non-empty string, got ''"));
    load_text_fails("audit:\n  path: x\n");
    CU_ASSERT_EQUAL(problems.count, 1);
}

static void test_plugin_names(void)
{
    config *cfg = load_text("plugins:\n  a: {}\n  "
                            "abcdefghijklmnopqrstuvwxyz_0123456789abcdefghijklmnopqrstuvwxyz_:\n");
    CU_ASSERT_EQUAL(cfg->plugin_count, 2);
    config_free(cfg);
    load_text_fails("plugins:\n  "
                    "abcdefghijklmnopqrstuvwxyz_0123456789abcdefghijklmnopqrstuvwxyz_01:\n");
    CU_ASSERT_EQUAL(problems.count, 1);
    load_text_fails("plugins:\n  '': {}\n  Upper: {}\n  'with.dot': {}\n");
    CU_ASSERT_EQUAL(problems.count, 3);
    CU_ASSERT(has_problem("t.yaml:2:3: plugins.: plugin names are 1 to 64 characters of a-z, "
                          "0-9 and '_'"));
}

static void test_top_level_and_syntax(void)
{
    load_text_fails("- a\n- b\n");
    CU_ASSERT_EQUAL(problems.count, 1);
    CU_ASSERT(has_problem("t.yaml:1:1: top level: expected a mapping, got a sequence"));
    load_text_fails("server: [\n");
    CU_ASSERT_EQUAL(problems.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(problems.messages[0], "t.yaml:2:1: did not find expected"));
    load_text_fails("server:\n  request_timeout: 1s\n  request_timeout: 2s\n");
    CU_ASSERT(has_problem("t.yaml:3:3: duplicate key 'request_timeout' (first at line 2)"));
}

static void test_problems_are_appended(void)
{
    diag_clear(&problems);
    diag_add(&problems, "earlier: %d", 1);
    config *cfg = NULL;
    const char *good = "log: {level: error}\n";
    /* an earlier problem in the list does not make a good file fail */
    CU_ASSERT_EQUAL(config_load_buffer("t.yaml", good, strlen(good), "/p", &cfg, &problems), 0);
    CU_ASSERT_EQUAL(cfg->log_level, SP_LOG_ERROR);
    config_free(cfg);
    CU_ASSERT_EQUAL(problems.count, 1);
    CU_ASSERT_STRING_EQUAL(problems.messages[0], "earlier: 1");
    diag_clear(&problems);
    CU_ASSERT_EQUAL(problems.count, 0);
    config_free(NULL);
}

static void test_many_diagnostics(void)
{
    /* diag_list grows past its first allocation and keeps order */
    diag_clear(&problems);
    for (int i = 0; i < 1000; i++)
        diag_add_at(&problems, "f", i, 1, "n%d", i);
    CU_ASSERT_EQUAL_FATAL(problems.count, 1000);
    CU_ASSERT_STRING_EQUAL(problems.messages[0], "f:0:1: n0");
    CU_ASSERT_STRING_EQUAL(problems.messages[999], "f:999:1: n999");
    diag_clear(&problems);
}

static void test_gateway_defaults_and_values(void)
{
    config *cfg = load_text("# nothing set\n");
    CU_ASSERT_EQUAL(cfg->gateway_listen_count, 0); /* off unless configured */
    CU_ASSERT_EQUAL_FATAL(cfg->gateway_authority_pattern_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg->gateway_authority_patterns[0], "{team}-{env}.{domain}");
    CU_ASSERT_STRING_EQUAL(cfg->gateway_authority_patterns[1], "{team}-{env}-{region}.{domain}");
    CU_ASSERT_PTR_NULL(cfg->gateway_domain);
    CU_ASSERT_STRING_EQUAL(cfg->gateway_default_region, "local");
    CU_ASSERT_EQUAL(cfg->gateway_user_id_policy, CONFIG_USER_ID_REPLACE);
    CU_ASSERT_EQUAL(cfg->gateway_max_concurrent_streams, 100);
    CU_ASSERT_EQUAL(cfg->gateway_idle_timeout_ms, 600000);
    CU_ASSERT_EQUAL(cfg->gateway_max_message_bytes, 128u * 1024u * 1024u);
    CU_ASSERT_EQUAL(cfg->cluster_count, 0);
    config_free(cfg);

    cfg = load_text("gateway:\n"
                    "  listen: ['0.0.0.0:15002', '[::1]:15003']\n"
                    "  authority_patterns: ['sc-{team}-{env}.{domain}']\n"
                    "  domain: Spark.Example.TEAM\n"
                    "  default_region: eu-west-1\n"
                    "  user_id_policy: deny\n"
                    "  max_concurrent_streams: 7\n"
                    "  idle_timeout: 90s\n"
                    "  max_message_size: 4MiB\n");
    CU_ASSERT_EQUAL_FATAL(cfg->gateway_listen_count, 2);
    CU_ASSERT_STRING_EQUAL(cfg->gateway_listen[1], "[::1]:15003");
    CU_ASSERT_EQUAL_FATAL(cfg->gateway_authority_pattern_count, 1);
    CU_ASSERT_STRING_EQUAL(cfg->gateway_authority_patterns[0], "sc-{team}-{env}.{domain}");
    CU_ASSERT_STRING_EQUAL(cfg->gateway_domain, "spark.example.team");
    CU_ASSERT_STRING_EQUAL(cfg->gateway_default_region, "eu-west-1");
    CU_ASSERT_EQUAL(cfg->gateway_user_id_policy, CONFIG_USER_ID_DENY);
    CU_ASSERT_EQUAL(cfg->gateway_max_concurrent_streams, 7);
    CU_ASSERT_EQUAL(cfg->gateway_idle_timeout_ms, 90000);
    CU_ASSERT_EQUAL(cfg->gateway_max_message_bytes, 4u * 1024u * 1024u);
    config_free(cfg);

    /* patterns without {domain} need no domain even when listening */
    cfg = load_text("gateway:\n  listen: ['127.0.0.1:15002']\n"
                    "  authority_patterns: ['{team}-{env}.spark.local']\n");
    CU_ASSERT_PTR_NULL(cfg->gateway_domain);
    config_free(cfg);
}

static void test_gateway_problems(void)
{
    load_text_fails("gateway:\n"                                              /* 1 */
                    "  listen: ['127.0.0.1', '127.0.0.1:15002']\n"            /* 2 */
                    "  authority_patterns:\n"                                 /* 3 */
                    "    - '{team}-{env}.{tld}'\n"                            /* 4 */
                    "    - '{team}{env}.{domain}'\n"                          /* 5 */
                    "    - [x]\n"                                             /* 6 */
                    "    - '{team}-{env}.{domain}'\n"                         /* 7 */
                    "  domain: 'bad domain'\n"                                /* 8 */
                    "  default_region: EU\n"                                  /* 9 */
                    "  user_id_policy: allow\n"                               /* 10 */
                    "  max_concurrent_streams: 0\n"                           /* 11 */
                    "  idle_timeout: soon\n"                                  /* 12 */
                    "  max_message_size: 5GiB\n"                              /* 13 */
                    "  port: 1\n");                                           /* 14 */
    CU_ASSERT(has_problem("t.yaml:2:12: gateway.listen[0]: '127.0.0.1' is not host:port with a "
                          "port from 1 to 65535 (write IPv6 as [::1]:8080)"));
    CU_ASSERT(has_problem("t.yaml:4:7: gateway.authority_patterns[0]: unknown placeholder "
                          "'{tld}' in '{team}-{env}.{tld}'; known: {team}, {env}, {region}, "
                          "{domain}"));
    CU_ASSERT(has_problem("t.yaml:5:7: gateway.authority_patterns[1]: '{team}{env}.{domain}' is "
                          "ambiguous: {env} follows another placeholder with nothing between "
                          "them"));
    CU_ASSERT(has_problem("t.yaml:6:7: gateway.authority_patterns[2]: expected a pattern string, "
                          "got a sequence"));
    CU_ASSERT(has_problem("t.yaml:8:11: gateway.domain: expected a DNS name such as "
                          "example.team, got 'bad domain'"));
    CU_ASSERT(has_problem("t.yaml:9:19: gateway.default_region: expected [a-z0-9-]{1,63}, got "
                          "'EU'"));
    CU_ASSERT(has_problem("t.yaml:10:19: gateway.user_id_policy: expected one of replace, deny, "
                          "got 'allow'"));
    CU_ASSERT(has_problem("t.yaml:11:27: gateway.max_concurrent_streams: expected an integer "
                          "from 1 to 100000, got '0'"));
    CU_ASSERT(has_problem("t.yaml:12:17: gateway.idle_timeout: expected a duration such as "
                          "250ms, 30s, 5m, 2h or 7d, got 'soon'"));
    CU_ASSERT(has_problem("t.yaml:13:21: gateway.max_message_size: at most 4294967295 bytes (a "
                          "gRPC message length is 32 bits)"));
    CU_ASSERT(has_problem("t.yaml:14:3: gateway.port: unknown key 'port' in gateway; known keys: "
                          "listen, authority_patterns, domain, default_region, user_id_policy, "
                          "max_concurrent_streams, idle_timeout, max_message_size, header_timeout, "
                          "session_timeout, tls"));
    /* the domain is bad, so the listening gateway has none for pattern 3 */
    CU_ASSERT(has_problem("t.yaml:2:3: gateway.domain: required: gateway.listen is set and "
                          "authority pattern '{team}-{env}.{domain}' uses {domain}"));
    CU_ASSERT_EQUAL(problems.count, 12);

    load_text_fails("gateway:\n  listen: ['127.0.0.1:15002']\n");
    CU_ASSERT(has_problem("t.yaml:2:3: gateway.domain: required: gateway.listen is set and "
                          "authority pattern '{team}-{env}.{domain}' uses {domain}"));
    load_text_fails("gateway: on\n");
    CU_ASSERT(has_problem("t.yaml:1:10: gateway: expected a mapping, got 'on'"));
}

/* server.tls and gateway.tls.client_certificates; the files are checked by test_rest_tls.py. */
static void test_tls_sections(void)
{
    config *cfg = load_text("# nothing set\n");
    CU_ASSERT_EQUAL(cfg->tls_listen_count, 0);
    CU_ASSERT_EQUAL(cfg->tls_client_certificates, CONFIG_CLIENT_CERTIFICATES_NONE);
    CU_ASSERT_EQUAL(cfg->gateway_tls_client_certificates, CONFIG_CLIENT_CERTIFICATES_NONE);
    config_free(cfg);

    /* without tls.listen the files are not required and not read */
    cfg = load_text("server:\n  tls: {client_certificates: request, certificate: c.pem}\n"
                    "gateway:\n  tls: {client_certificates: request}\n");
    CU_ASSERT_EQUAL(cfg->tls_client_certificates, CONFIG_CLIENT_CERTIFICATES_REQUEST);
    CU_ASSERT_EQUAL(cfg->gateway_tls_client_certificates, CONFIG_CLIENT_CERTIFICATES_REQUEST);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->tls_certificate, "c.pem"));
    config_free(cfg);

    load_text_fails("server:\n"                                     /* 1 */
                    "  listen: ['127.0.0.1:8080']\n"                /* 2 */
                    "  tls:\n"                                      /* 3 */
                    "    listen: ['127.0.0.1:8443', 'nowhere']\n"   /* 4 */
                    "    client_certificates: require\n"            /* 5 */
                    "    ciphers: all\n");                          /* 6 */
    CU_ASSERT(has_problem("t.yaml:4:32: server.tls.listen[1]: 'nowhere' is not host:port with a "
                          "port from 1 to 65535 (write IPv6 as [::1]:8080)"));
    CU_ASSERT(has_problem("t.yaml:5:26: server.tls.client_certificates: expected one of none, "
                          "request, got 'require'"));
    CU_ASSERT(has_problem("t.yaml:6:5: server.tls.ciphers: unknown key 'ciphers' in server.tls; "
                          "known keys: listen, certificate, key, client_certificates"));
    CU_ASSERT(has_problem("t.yaml:4:5: server.tls.certificate: required: server.tls.listen is "
                          "set"));
    CU_ASSERT(has_problem("t.yaml:4:5: server.tls.key: required: server.tls.listen is set"));
    CU_ASSERT_EQUAL(problems.count, 5);

    /* the default server.listen counts too */
    load_text_fails("server:\n  tls:\n    listen: ['127.0.0.1:8080']\n");
    CU_ASSERT(has_problem("t.yaml:3:14: server.tls.listen[0]: '127.0.0.1:8080' is in "
                          "server.listen too: a port serves HTTP or TLS, not both"));

    load_text_fails("server:\n  tls:\n    listen: ['127.0.0.1:8443']\n"
                    "    certificate: /no/such/chain.pem\n    key: /no/such/key.pem\n");
    CU_ASSERT(has_problem("t.yaml:4:18: server.tls.certificate: cannot read /no/such/chain.pem: "
                          "No such file or directory"));
    CU_ASSERT_EQUAL(problems.count, 1);
}

static void test_clusters(void)
{
    config *cfg = load_text("gateway: {default_region: eu}\n"
                            "clusters:\n"
                            "  - id: fe-prod\n"
                            "    team: feature-eng\n"
                            "    environment: prod\n"
                            "    endpoints: ['10.0.0.5:15002', '[::1]:15003']\n"
                            "    token: s3cret\n"
                            "  - id: fe-prod-us\n"
                            "    team: feature-eng\n"
                            "    environment: prod\n"
                            "    region: us-east-1\n"
                            "    endpoints: ['10.0.1.5:15002']\n"
                            "    token_file: tokens/fe\n");
    CU_ASSERT_EQUAL_FATAL(cfg->cluster_count, 2);
    const config_cluster *c = &cfg->clusters[0];
    CU_ASSERT_STRING_EQUAL(c->id, "fe-prod");
    CU_ASSERT_STRING_EQUAL(c->team, "feature-eng");
    CU_ASSERT_STRING_EQUAL(c->environment, "prod");
    CU_ASSERT_STRING_EQUAL(c->region, "eu"); /* gateway.default_region */
    CU_ASSERT_EQUAL_FATAL(c->endpoint_count, 2);
    CU_ASSERT_STRING_EQUAL(c->endpoints[1], "[::1]:15003");
    CU_ASSERT_STRING_EQUAL(c->token, "s3cret");
    CU_ASSERT_PTR_NULL(c->token_file);
    CU_ASSERT_EQUAL(c->line, 3);
    c = &cfg->clusters[1];
    CU_ASSERT_STRING_EQUAL(c->region, "us-east-1");
    CU_ASSERT_PTR_NULL(c->token);
    CU_ASSERT_STRING_EQUAL(c->token_file, "./tokens/fe"); /* beside the file */
    config_free(cfg);
}

static void test_cluster_problems(void)
{
    load_text_fails("clusters:\n"                                                   /* 1 */
                    "  - id: Bad_Id\n"                                              /* 2 */
                    "    team: feature-eng\n"                                       /* 3 */
                    "    environment: pre-prod\n"                                   /* 4 */
                    "    endpoints: []\n"                                           /* 5 */
                    "    token: a\n"                                                /* 6 */
                    "    token_file: b\n"                                           /* 7 */
                    "    size: 3\n"                                                 /* 8 */
                    "  - {team: ml}\n"                                              /* 9 */
                    "  - 42\n"                                                      /* 10 */
                    "  - {id: a, team: ml, environment: dev, endpoints: ['h:1']}\n" /* 11 */
                    "  - {id: a, team: ml, environment: qa, endpoints: ['h:1']}\n"  /* 12 */
                    "  - {id: b, team: ml, environment: dev, endpoints: ['h:x']}\n" /* 13 */
                    "  - {id: c, team: ml, environment: dev, endpoints: ['h:2']}\n");/* 14 */
    CU_ASSERT(has_problem("t.yaml:2:9: clusters[0].id: expected [a-z0-9-]{1,63}, got "
                          "'Bad_Id'"));
    CU_ASSERT(has_problem("t.yaml:4:18: clusters[0].environment: expected [a-z0-9]{1,63} (no "
                          "'-'), got 'pre-prod'"));
    CU_ASSERT(has_problem("t.yaml:5:16: clusters[0].endpoints: at least one endpoint is "
                          "required"));
    CU_ASSERT(has_problem("t.yaml:7:17: clusters[0].token_file: set token or token_file, not "
                          "both"));
    CU_ASSERT(has_problem("t.yaml:8:5: clusters[0].size: unknown key 'size' in clusters[0]; "
                          "known keys: id, team, environment, region, endpoints, token, "
                          "token_file"));
    CU_ASSERT(has_problem("t.yaml:9:5: clusters[1].id: required"));
    CU_ASSERT(has_problem("t.yaml:9:5: clusters[1].environment: required"));
    CU_ASSERT(has_problem("t.yaml:9:5: clusters[1].endpoints: required"));
    CU_ASSERT(has_problem("t.yaml:10:5: clusters[2]: expected a mapping with id, team, "
                          "environment and endpoints, got '42'"));
    CU_ASSERT(has_problem("t.yaml:12:10: clusters[4]: id 'a' is the cluster at t.yaml:11 "
                          "already"));
    CU_ASSERT(has_problem("t.yaml:13:53: clusters[5].endpoints[0]: 'h:x' is not host:port with "
                          "a port from 1 to 65535 (write IPv6 as [::1]:8080)"));
    CU_ASSERT(has_problem("t.yaml:14:5: clusters[6]: team ml, environment dev, region local is "
                          "cluster 'a' already"));
    CU_ASSERT_EQUAL(problems.count, 12);

    load_text_fails("clusters: {a: 1}\n");
    CU_ASSERT(has_problem("t.yaml:1:11: clusters: expected a sequence of clusters, got a "
                          "mapping"));
}

/* ---- provisioning ---- */

static void assert_environment(const config *cfg, const char *name, uint64_t default_ttl_s,
                               uint64_t max_ttl_s, const char *warm_size, uint64_t warm_count)
{
    const config_environment *env = config_find_environment(cfg, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(env);
    CU_ASSERT_EQUAL(env->default_ttl_s, default_ttl_s);
    CU_ASSERT_EQUAL(env->max_ttl_s, max_ttl_s);
    if (warm_size == NULL) {
        CU_ASSERT_EQUAL(env->warm_count, 0);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(env->warm_count, 1);
    CU_ASSERT_STRING_EQUAL(env->warm[0].size, warm_size);
    CU_ASSERT_EQUAL(env->warm[0].count, warm_count);
}

static void assert_size(const config *cfg, const char *name, uint64_t driver_cores,
                        uint64_t driver_mib, uint64_t executors, uint64_t executor_cores,
                        uint64_t executor_mib)
{
    const config_size *size = config_find_size(cfg, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(size);
    CU_ASSERT_EQUAL(size->driver_cores, driver_cores);
    CU_ASSERT_EQUAL(size->driver_memory_mib, driver_mib);
    CU_ASSERT_EQUAL(size->executors, executors);
    CU_ASSERT_EQUAL(size->executor_cores, executor_cores);
    CU_ASSERT_EQUAL(size->executor_memory_mib, executor_mib);
}

#define HOUR 3600ull
#define DAY (24ull * 3600)

static void test_provisioning_defaults(void)
{
    config *cfg = load_text("# nothing set\n");
    const config_provisioning *p = &cfg->provisioning;
    CU_ASSERT_STRING_EQUAL(p->backend, "local");
    CU_ASSERT_STRING_EQUAL(p->spark_version, "4.0");
    CU_ASSERT_STRING_EQUAL(p->domain, "local");
    CU_ASSERT_STRING_EQUAL(p->endpoint_pattern, "sc://{team}-{env}-{region}.{domain}:15002");
    CU_ASSERT_PTR_NULL(p->hosts_file);
    CU_ASSERT_STRING_EQUAL(p->hosts_address, "127.0.0.1");
    CU_ASSERT_EQUAL(p->start_timeout_ms, 10 * 60 * 1000);
    CU_ASSERT_EQUAL(p->reap_interval_ms, 10 * 1000);
    CU_ASSERT_EQUAL(p->environment_count, 4);
    assert_environment(cfg, "dev", 8 * HOUR, 7 * DAY, "small", 0);
    assert_environment(cfg, "staging", 24 * HOUR, 30 * DAY, "small", 1);
    assert_environment(cfg, "ci", 2 * HOUR, 1 * DAY, NULL, 0);
    assert_environment(cfg, "prod", 7 * DAY, 0, "small", 3);
    CU_ASSERT_EQUAL_FATAL(p->region_count, 1);
    CU_ASSERT_STRING_EQUAL(p->regions[0].name, "local");
    CU_ASSERT_PTR_NULL(p->regions[0].fallback);
    CU_ASSERT_EQUAL(p->size_count, 4);
    assert_size(cfg, "small", 1, 1024, 1, 1, 1024);
    assert_size(cfg, "medium", 1, 2048, 2, 2, 2048);
    assert_size(cfg, "large", 2, 4096, 4, 4, 8192);
    assert_size(cfg, "xlarge", 4, 8192, 8, 8, 16384);
    CU_ASSERT_EQUAL(p->catalog_count, 0);
    CU_ASSERT_EQUAL(p->spark_conf_count, 0);
    CU_ASSERT_PTR_NULL(p->default_quota.team);
    CU_ASSERT_EQUAL(p->default_quota.clusters, 5);
    CU_ASSERT_EQUAL(p->default_quota.cores, 64);
    CU_ASSERT_EQUAL(p->team_quota_count, 0);
    CU_ASSERT_PTR_EQUAL(config_team_quota(cfg, "anyone"), &p->default_quota);
    CU_ASSERT_EQUAL(p->pool_budget_cores, 0);
    CU_ASSERT_EQUAL(p->pool_budget_memory_mib, 0);
    CU_ASSERT_PTR_NULL(config_find_environment(cfg, "qa"));
    CU_ASSERT_PTR_NULL(config_find_region(cfg, "eu"));
    CU_ASSERT_PTR_NULL(config_find_size(cfg, "huge"));
    CU_ASSERT_PTR_NULL(config_find_catalog(cfg, "pedregal"));
    config_free(cfg);

    /* the domain and the one region follow the gateway */
    cfg = load_text("gateway: {domain: Example.TEAM, default_region: eu-west-1}\n"
                    "provisioning:\n");
    CU_ASSERT_STRING_EQUAL(cfg->provisioning.domain, "example.team");
    CU_ASSERT_EQUAL_FATAL(cfg->provisioning.region_count, 1);
    CU_ASSERT_STRING_EQUAL(cfg->provisioning.regions[0].name, "eu-west-1");
    config_free(cfg);
}

static void test_provisioning_full(void)
{
    config *cfg = load_text(
        "gateway: {domain: gw.example}\n"
        "spark_versions: {'3.5': {spark_home: /opt/spark35}}\n"
        "provisioning:\n"
        "  backend: k8s_operator\n"
        "  spark_version: '3.5'\n"
        "  domain: Clusters.Example\n"
        "  endpoint_pattern: 'sc://{team}.{env}.{region}.{domain}/'\n"
        "  hosts_file: run/clusters.hosts\n"
        "  hosts_address: '::1'\n"
        "  start_timeout: 3m\n"
        "  reap_interval: 1s\n"
        "  environments:\n"
        "    qa: {default_ttl: 90m, max_ttl: 2d, warm: {tiny: 2, big: 64}}\n"
        "    live: {default_ttl: persistent, max_ttl: persistent}\n"
        "    lab: {default_ttl: 30d, max_ttl: 30d, warm: {}}\n"
        "  regions:\n"
        "    eu-west-1: {fallback: us-east-1}\n"
        "    us-east-1: {}\n"
        "    ap-1:\n"
        "  sizes:\n"
        "    tiny: {driver: {cores: 1, memory: 512m}, executors: 1,\n"
        "           executor: {cores: 1, memory: 1536MiB}}\n"
        "    big_one: {driver: {cores: 1024, memory: 1TiB}, executors: 256,\n"
        "              executor: {cores: 16, memory: 64g}}\n"
        "    big: {driver: {cores: 2, memory: 4g}, executors: 3, executor: {cores: 4, memory: 8g}}\n"
        "  catalogs:\n"
        "    pedregal:\n"
        "      spark.sql.catalog.pedregal: org.apache.iceberg.spark.SparkCatalog\n"
        "      spark.sql.catalog.pedregal.warehouse: 's3://wh/{team}/{env}/{region}'\n"
        "    lake_2: {spark.sql.defaultCatalog: lake, spark.sql.ansi.enabled: true}\n"
        "  spark_conf: {spark.jars: /opt/jars/a.jar, spark.ui.port: 4041}\n"
        "  quotas:\n"
        "    default: {clusters: 2, cores: 16}\n"
        "    teams:\n"
        "      feature-eng: {clusters: 10, cores: 128}\n"
        "      ml: {cores: 0}\n"
        "  pool_budget: {cores: 48, memory: 96g}\n");
    const config_provisioning *p = &cfg->provisioning;
    CU_ASSERT_STRING_EQUAL(p->backend, "k8s_operator");
    CU_ASSERT_STRING_EQUAL(p->spark_version, "3.5");
    CU_ASSERT_STRING_EQUAL(p->domain, "clusters.example");
    CU_ASSERT_STRING_EQUAL(p->endpoint_pattern, "sc://{team}.{env}.{region}.{domain}/");
    CU_ASSERT_STRING_EQUAL(p->hosts_file, "./run/clusters.hosts"); /* beside the file */
    CU_ASSERT_STRING_EQUAL(p->hosts_address, "::1");
    CU_ASSERT_EQUAL(p->start_timeout_ms, 3 * 60 * 1000);
    CU_ASSERT_EQUAL(p->reap_interval_ms, 1000);

    CU_ASSERT_EQUAL(p->environment_count, 3); /* the given map replaces the defaults */
    CU_ASSERT_PTR_NULL(config_find_environment(cfg, "dev"));
    const config_environment *qa = config_find_environment(cfg, "qa");
    CU_ASSERT_PTR_NOT_NULL_FATAL(qa);
    CU_ASSERT_EQUAL(qa->default_ttl_s, 90 * 60);
    CU_ASSERT_EQUAL(qa->max_ttl_s, 2 * DAY);
    CU_ASSERT_EQUAL_FATAL(qa->warm_count, 2);
    CU_ASSERT_STRING_EQUAL(qa->warm[0].size, "tiny");
    CU_ASSERT_EQUAL(qa->warm[0].count, 2);
    CU_ASSERT_STRING_EQUAL(qa->warm[1].size, "big");
    CU_ASSERT_EQUAL(qa->warm[1].count, 64);
    assert_environment(cfg, "live", 0, 0, NULL, 0);
    assert_environment(cfg, "lab", 30 * DAY, 30 * DAY, NULL, 0);

    CU_ASSERT_EQUAL_FATAL(p->region_count, 3);
    CU_ASSERT_STRING_EQUAL(config_find_region(cfg, "eu-west-1")->fallback, "us-east-1");
    CU_ASSERT_PTR_NULL(config_find_region(cfg, "us-east-1")->fallback);
    CU_ASSERT_PTR_NULL(config_find_region(cfg, "ap-1")->fallback);
    CU_ASSERT_PTR_NULL(config_find_region(cfg, "local"));

    CU_ASSERT_EQUAL(p->size_count, 3);
    CU_ASSERT_PTR_NULL(config_find_size(cfg, "small"));
    assert_size(cfg, "tiny", 1, 512, 1, 1, 1536);
    assert_size(cfg, "big_one", 1024, 1024 * 1024, 256, 16, 64 * 1024);
    assert_size(cfg, "big", 2, 4096, 3, 4, 8192);

    CU_ASSERT_EQUAL_FATAL(p->catalog_count, 2);
    const config_catalog *pedregal = config_find_catalog(cfg, "pedregal");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pedregal);
    CU_ASSERT_EQUAL_FATAL(pedregal->conf_count, 2);
    CU_ASSERT_STRING_EQUAL(pedregal->conf[0].key, "spark.sql.catalog.pedregal");
    CU_ASSERT_STRING_EQUAL(pedregal->conf[0].value, "org.apache.iceberg.spark.SparkCatalog");
    CU_ASSERT_STRING_EQUAL(pedregal->conf[1].value, "s3://wh/{team}/{env}/{region}");
    CU_ASSERT_EQUAL(config_find_catalog(cfg, "lake_2")->conf_count, 2);
    CU_ASSERT_STRING_EQUAL(config_find_catalog(cfg, "lake_2")->conf[1].value, "true");

    CU_ASSERT_EQUAL_FATAL(p->spark_conf_count, 2);
    CU_ASSERT_STRING_EQUAL(p->spark_conf[0].key, "spark.jars");
    CU_ASSERT_STRING_EQUAL(p->spark_conf[0].value, "/opt/jars/a.jar");
    CU_ASSERT_STRING_EQUAL(p->spark_conf[1].value, "4041");

    CU_ASSERT_EQUAL(p->default_quota.clusters, 2);
    CU_ASSERT_EQUAL(p->default_quota.cores, 16);
    const config_quota *fe = config_team_quota(cfg, "feature-eng");
    CU_ASSERT_STRING_EQUAL(fe->team, "feature-eng");
    CU_ASSERT_EQUAL(fe->clusters, 10);
    CU_ASSERT_EQUAL(fe->cores, 128);
    const config_quota *ml = config_team_quota(cfg, "ml");
    CU_ASSERT_EQUAL(ml->clusters, 2); /* from quotas.default */
    CU_ASSERT_EQUAL(ml->cores, 0);
    CU_ASSERT_PTR_EQUAL(config_team_quota(cfg, "other"), &p->default_quota);
    CU_ASSERT_EQUAL(p->pool_budget_cores, 48);
    CU_ASSERT_EQUAL(p->pool_budget_memory_mib, 96 * 1024);
    config_free(cfg);

    /* the default environments keep a warm "small" only when that size exists */
    cfg = load_text("provisioning:\n"
                    "  sizes: {one: {driver: {cores: 1, memory: 1g}, executors: 1,\n"
                    "                executor: {cores: 1, memory: 1g}}}\n");
    assert_environment(cfg, "staging", 24 * HOUR, 30 * DAY, NULL, 0);
    assert_environment(cfg, "prod", 7 * DAY, 0, NULL, 0);
    config_free(cfg);
}

static void test_provisioning_problems(void)
{
    load_text_fails("provisioning:\n"                                               /* 1 */
                    "  backend: Local\n"                                            /* 2 */
                    "  spark_version: v4\n"                                         /* 3 */
                    "  domain: 'a b'\n"                                             /* 4 */
                    "  endpoint_pattern: 'http://{team}'\n"                         /* 5 */
                    "  hosts_address: localhost\n"                                  /* 6 */
                    "  start_timeout: 0s\n"                                         /* 7 */
                    "  reap_interval: soon\n"                                       /* 8 */
                    "  hosts_file: [a]\n"                                           /* 9 */
                    "  pools: 1\n"                                                  /* 10 */
                    "  spark_conf: {spark.x: [1], spark.y: ~}\n"                    /* 11 */
                    "  pool_budget: {cores: -1, memory: 1000}\n"                    /* 12 */
                    "  quotas:\n"                                                   /* 13 */
                    "    default: {clusters: 100001, cores: x, gpus: 1}\n"          /* 14 */
                    "    teams: {Feature: {clusters: 1}, ml: 3}\n"                  /* 15 */
                    "    other: {}\n");                                             /* 16 */
    CU_ASSERT(has_problem("t.yaml:2:12: provisioning.backend: backend names are 1 to 64 "
                          "characters of a-z, 0-9 and '_', got 'Local'"));
    CU_ASSERT(has_problem("t.yaml:3:18: provisioning.spark_version: spark versions look like 3.5 "
                          "or 4.0.1 ([0-9]+(.[0-9]+)*), got 'v4'"));
    CU_ASSERT(has_problem("t.yaml:4:11: provisioning.domain: expected a DNS name such as "
                          "example.team, got 'a b'"));
    CU_ASSERT(has_problem("t.yaml:5:21: provisioning.endpoint_pattern: 'http://{team}' must "
                          "start with sc:// (a Spark Connect URL)"));
    CU_ASSERT(has_problem("t.yaml:6:18: provisioning.hosts_address: expected an IPv4 or IPv6 "
                          "address such as 127.0.0.1, got 'localhost'"));
    CU_ASSERT(has_problem("t.yaml:7:18: provisioning.start_timeout: must be greater than 0"));
    CU_ASSERT(has_problem("t.yaml:8:18: provisioning.reap_interval: expected a duration such as "
                          "250ms, 30s, 5m, 2h or 7d, got 'soon'"));
    CU_ASSERT(has_problem("t.yaml:9:15: provisioning.hosts_file: expected a non-empty string, "
                          "got a sequence"));
    CU_ASSERT(has_problem("t.yaml:10:3: provisioning.pools: unknown key 'pools' in "
                          "provisioning; known keys: backend, spark_version, domain, "
                          "endpoint_pattern, hosts_file, hosts_address, start_timeout, "
                          "reap_interval, environments, regions, sizes, catalogs, spark_conf, "
                          "quotas, pool_budget"));
    CU_ASSERT(has_problem("t.yaml:11:25: provisioning.spark_conf.spark.x: expected a string, "
                          "number or boolean, got a sequence"));
    CU_ASSERT(has_problem("t.yaml:11:39: provisioning.spark_conf.spark.y: expected a string, "
                          "number or boolean, got null"));
    CU_ASSERT(has_problem("t.yaml:12:24: provisioning.pool_budget.cores: expected an integer "
                          "from 0 to 1000000, got '-1'"));
    CU_ASSERT(has_problem("t.yaml:12:36: provisioning.pool_budget.memory: expected a size in "
                          "whole MiB such as 512m, 1g or 4GiB, got '1000'"));
    CU_ASSERT(has_problem("t.yaml:14:25: provisioning.quotas.default.clusters: expected an "
                          "integer from 0 to 100000, got '100001'"));
    CU_ASSERT(has_problem("t.yaml:14:40: provisioning.quotas.default.cores: expected an integer "
                          "from 0 to 1000000, got 'x'"));
    CU_ASSERT(has_problem("t.yaml:14:43: provisioning.quotas.default.gpus: unknown key 'gpus' "
                          "in provisioning.quotas.default; known keys: clusters, cores"));
    CU_ASSERT(has_problem("t.yaml:15:13: provisioning.quotas.teams.Feature: team names are "
                          "[a-z0-9-]{1,63}, got 'Feature'"));
    CU_ASSERT(has_problem("t.yaml:15:41: provisioning.quotas.teams.ml: expected a mapping with "
                          "clusters and/or cores, got '3'"));
    CU_ASSERT(has_problem("t.yaml:16:5: provisioning.quotas.other: unknown key 'other' in "
                          "provisioning.quotas; known keys: default, teams"));
    CU_ASSERT_EQUAL(problems.count, 19);
}

static void test_provisioning_map_problems(void)
{
    load_text_fails("provisioning:\n"                                               /* 1 */
                    "  environments:\n"                                             /* 2 */
                    "    pre-prod: {default_ttl: 1h, max_ttl: 2h}\n"                /* 3 */
                    "    a: {default_ttl: 2d, max_ttl: 1d}\n"                       /* 4 */
                    "    b: {default_ttl: persistent, max_ttl: 7d}\n"               /* 5 */
                    "    c: {max_ttl: 0}\n"                                         /* 6 */
                    "    d: {default_ttl: 367d, max_ttl: 1500ms, warm: {huge: 1}}\n" /* 7 */
                    "    e: {default_ttl: 1h, max_ttl: 1h, warm: {s: 65, bad: 1}, x: 1}\n" /* 8 */
                    "    f: 1\n"                                                    /* 9 */
                    "  regions:\n"                                                  /* 10 */
                    "    EU: {}\n"                                                  /* 11 */
                    "    eu: {fallback: eu}\n"                                      /* 12 */
                    "    us: {fallback: mars}\n"                                    /* 13 */
                    "    ap: [1]\n"                                                 /* 14 */
                    "  sizes:\n"                                                    /* 15 */
                    "    s: {driver: {cores: 1, memory: 1g}, executors: 1,\n"      /* 16 */
                    "        executor: {cores: 1, memory: 1g}}\n"                   /* 17 */
                    "    bad: {driver: {cores: 0, memory: 1.5g}, executors: 257,\n" /* 18 */
                    "          executor: {memory: 1g, disk: 1}}\n"                  /* 19 */
                    "    Big: {}\n"                                                 /* 20 */
                    "    empty: {executors: 1}\n"                                   /* 21 */
                    "  catalogs:\n"                                                 /* 22 */
                    "    my-cat: {spark.sql.x: 1}\n"                                /* 23 */
                    "    c1: {spark.jars: a.jar}\n"                                 /* 24 */
                    "    c2: {}\n");                                                /* 25 */
    CU_ASSERT(has_problem("t.yaml:3:5: provisioning.environments.pre-prod: environment names "
                          "are [a-z0-9]{1,63} (no '-': host names such as team-env-region are "
                          "split on it), got 'pre-prod'"));
    CU_ASSERT(has_problem("t.yaml:4:22: provisioning.environments.a.default_ttl: '2d' is longer "
                          "than max_ttl '1d'"));
    CU_ASSERT(has_problem("t.yaml:5:22: provisioning.environments.b.default_ttl: persistent is "
                          "not allowed when max_ttl is '7d'"));
    CU_ASSERT(has_problem("t.yaml:6:18: provisioning.environments.c.max_ttl: must be whole "
                          "seconds from 1s to 366d (or persistent), got '0'"));
    CU_ASSERT(has_problem("t.yaml:6:8: provisioning.environments.c.default_ttl: required (a "
                          "duration such as 8h or 7d, or persistent)"));
    CU_ASSERT(has_problem("t.yaml:7:22: provisioning.environments.d.default_ttl: must be whole "
                          "seconds from 1s to 366d (or persistent), got '367d'"));
    CU_ASSERT(has_problem("t.yaml:7:37: provisioning.environments.d.max_ttl: must be whole "
                          "seconds from 1s to 366d (or persistent), got '1500ms'"));
    CU_ASSERT(has_problem("t.yaml:7:52: provisioning.environments.d.warm.huge: 'huge' is not a "
                          "size in provisioning.sizes"));
    CU_ASSERT(has_problem("t.yaml:8:49: provisioning.environments.e.warm.s: expected an integer "
                          "from 0 to 64, got '65'"));
    CU_ASSERT(has_problem("t.yaml:8:62: provisioning.environments.e.x: unknown key 'x' in "
                          "provisioning.environments.e; known keys: default_ttl, max_ttl, warm"));
    CU_ASSERT(has_problem("t.yaml:9:8: provisioning.environments.f: expected a mapping with "
                          "default_ttl, max_ttl and warm, got '1'"));
    CU_ASSERT(has_problem("t.yaml:11:5: provisioning.regions.EU: region names are "
                          "[a-z0-9-]{1,63}, got 'EU'"));
    CU_ASSERT(has_problem("t.yaml:12:20: provisioning.regions.eu.fallback: a region cannot fall "
                          "back to itself"));
    CU_ASSERT(has_problem("t.yaml:13:20: provisioning.regions.us.fallback: 'mars' is not one of "
                          "the configured regions (EU, eu, us, ap)"));
    CU_ASSERT(has_problem("t.yaml:14:9: provisioning.regions.ap: expected a mapping such as "
                          "{fallback: other-region} or {}, got a sequence"));
    CU_ASSERT(has_problem("t.yaml:18:27: provisioning.sizes.bad.driver.cores: expected an "
                          "integer from 1 to 1024, got '0'"));
    CU_ASSERT(has_problem("t.yaml:18:38: provisioning.sizes.bad.driver.memory: expected a size "
                          "in whole MiB such as 512m, 1g or 4GiB, got '1.5g'"));
    CU_ASSERT(has_problem("t.yaml:18:56: provisioning.sizes.bad.executors: expected an integer "
                          "from 1 to 256, got '257'"));
    CU_ASSERT(has_problem("t.yaml:19:34: provisioning.sizes.bad.executor.disk: unknown key "
                          "'disk' in provisioning.sizes.bad.executor; known keys: cores, memory"));
    CU_ASSERT(has_problem("t.yaml:19:21: provisioning.sizes.bad.executor.cores: required"));
    CU_ASSERT(has_problem("t.yaml:20:5: provisioning.sizes.Big: size names are [a-z0-9_-]{1,63}, "
                          "got 'Big'"));
    CU_ASSERT(has_problem("t.yaml:21:12: provisioning.sizes.empty.driver: required: {cores, "
                          "memory}"));
    CU_ASSERT(has_problem("t.yaml:21:12: provisioning.sizes.empty.executor: required: {cores, "
                          "memory}"));
    CU_ASSERT(has_problem("t.yaml:23:5: provisioning.catalogs.my-cat: catalog names are "
                          "[a-z0-9_]{1,63}, got 'my-cat'"));
    CU_ASSERT(has_problem("t.yaml:24:10: provisioning.catalogs.c1.spark.jars: 'spark.jars' is not "
                          "a spark.sql.* setting: catalogs are applied as runtime settings so "
                          "that a warm cluster can take them when it is handed over (static "
                          "settings belong in provisioning.spark_conf)"));
    CU_ASSERT(has_problem("t.yaml:25:9: provisioning.catalogs.c2: expected a non-empty mapping of "
                          "spark.sql.* settings, got a mapping"));
    /* e.warm.bad names a size that is given but broken: reported once, at the size */
    CU_ASSERT_EQUAL(problems.count, 26);

    load_text_fails("provisioning: {environments: {}, regions: {}, sizes: {}, catalogs: []}\n");
    CU_ASSERT(has_problem("t.yaml:1:30: provisioning.environments: at least one environment is "
                          "required"));
    CU_ASSERT(has_problem("t.yaml:1:43: provisioning.regions: at least one region is required"));
    CU_ASSERT(has_problem("t.yaml:1:54: provisioning.sizes: at least one size is required"));
    CU_ASSERT(has_problem("t.yaml:1:68: provisioning.catalogs: expected a mapping, got a "
                          "sequence"));
    CU_ASSERT_EQUAL(problems.count, 4);

    load_text_fails("provisioning:\n"
                    "  endpoint_pattern: 'sc://{env}-{region}:1'\n"
                    "provisioning2: 1\n");
    CU_ASSERT(has_problem("t.yaml:2:21: provisioning.endpoint_pattern: 'sc://{env}-{region}:1' "
                          "must contain {team}: every team's cluster needs its own name"));
    load_text_fails("provisioning: {endpoint_pattern: 'sc://{team}.{zone}:1'}\n");
    CU_ASSERT(has_problem("t.yaml:1:34: provisioning.endpoint_pattern: 'sc://{team}.{zone}:1' "
                          "knows only the placeholders {team}, {env}, {region} and {domain}"));
    load_text_fails("provisioning: {endpoint_pattern: 'sc://:1{team}'}\n");
    CU_ASSERT(has_problem("t.yaml:1:34: provisioning.endpoint_pattern: 'sc://:1{team}' has no "
                          "host after sc://"));
    load_text_fails("provisioning: [1]\n");
    CU_ASSERT(has_problem("t.yaml:1:15: provisioning: expected a mapping, got a sequence"));
}

static const unit_test_case cases[] = {
    {"defaults when nothing is set", test_defaults},
    {"a file that sets every key", test_full_file},
    {"conf.d drop-ins merge in name order", test_dropins_merge_in_name_order},
    {"problems in drop-ins are all reported", test_dropin_problems_are_all_reported},
    {"an unreadable main file", test_unreadable_main_file},
    {"every problem is collected with its place and key", test_every_problem_is_collected},
    {"runner limits and durations", test_runner_values},
    {"spark_versions map versions to runtimes", test_spark_versions},
    {"listen addresses are checked one by one", test_listen_addresses},
    {"config_split_listen", test_split_listen},
    {"paths resolve against their file or the state directory", test_paths},
    {"plugin names", test_plugin_names},
    {"top level and syntax errors", test_top_level_and_syntax},
    {"problems are appended to the caller's list", test_problems_are_appended},
    {"diag_list grows", test_many_diagnostics},
    {"gateway defaults and values", test_gateway_defaults_and_values},
    {"gateway problems", test_gateway_problems},
    {"server.tls and client_certificates", test_tls_sections},
    {"static clusters", test_clusters},
    {"cluster problems", test_cluster_problems},
    {"provisioning defaults", test_provisioning_defaults},
    {"a provisioning section that sets every key", test_provisioning_full},
    {"provisioning scalar, quota and budget problems", test_provisioning_problems},
    {"provisioning environment, region, size and catalog problems",
     test_provisioning_map_problems},
    {NULL, NULL}};

UNIT_TEST_MAIN("config", cases)
