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
                          "drain_timeout"));
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
                          "spark_versions, gateway, clusters"));
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
    config_free(cfg);
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
    {"static clusters", test_clusters},
    {"cluster problems", test_cluster_problems},
    {NULL, NULL}};

UNIT_TEST_MAIN("config", cases)
