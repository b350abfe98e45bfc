/*
 * test_plugin_abi.c - the plugin host's refusals and lifecycle.
 *
 * First plugin_check_descriptor on descriptors built in memory, one per
 * refusal, with the exact message an operator reads.  Then the real thing:
 * plugin_set_prepare/start/free on the shared objects of tests/plugins
 * (bad magic, other ABIs, a 12-byte descriptor, no symbol, an unknown
 * kind, a duplicate name, an init that fails, good ones), a file that is
 * not ELF, option validation, the answers of register_provider and the
 * release hook.  The host API here is a small table that forwards to
 * plugin_host.c, the way host_api.c does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin_host.h"
#include "unit_test.h"
#include "yaml_tree.h"

#define PLUGIN_DIR TEST_BUILDDIR "/tests/plugins/.libs/"
#define CONFIG_FILE "sparkplane.yaml"

/* ---- in-memory descriptors ---------------------------------------------- */

static int abi_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    return SP_OK;
}

static sp_plugin_descriptor abi_good(void)
{
    return (sp_plugin_descriptor){SP_PLUGIN_HEADER, .kind = SP_KIND_POLICY, .name = "x",
                                  .init = abi_init};
}

static char check_message[512];

static int abi_check(const sp_plugin_descriptor *d)
{
    check_message[0] = '\0';
    return plugin_check_descriptor("p.so", d, check_message, sizeof(check_message));
}

static void test_descriptor_accepts_good(void)
{
    sp_plugin_descriptor d = abi_good();
    CU_ASSERT_EQUAL(abi_check(&d), 0);
    CU_ASSERT_STRING_EQUAL(check_message, "");
    d.name = "abcdefghijklmnopqrstuvwxyz_0123456789_abcdefghijklmnopqrstuvwxyz"; /* 64 */
    CU_ASSERT_EQUAL(abi_check(&d), 0);
    for (uint32_t kind = SP_KIND_BACKEND; kind <= SP_KIND_MANIFEST; kind++) {
        d.kind = kind;
        CU_ASSERT_EQUAL(abi_check(&d), 0);
    }
}

static void test_descriptor_bad_magic(void)
{
    sp_plugin_descriptor d = abi_good();
    d.magic = 0x7f454c46u;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "p.so: not a sparkplane plugin (bad magic 0x7f454c46)");
    CU_ASSERT_EQUAL(abi_check(NULL), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "p.so: sp_plugin_descriptor is NULL");
}

static void test_descriptor_versions(void)
{
    sp_plugin_descriptor d = abi_good();

    d.abi_minor = 3;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin x needs ABI 1.3, sparkplaned provides 1.1");
    /* A newer minor whose size does not even cover the name: say the path. */
    d.descriptor_size = 12;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin p.so needs ABI 1.3, sparkplaned provides 1.1");
    /* Another major: its layout is unknown, so even a present name is not trusted. */
    d = abi_good();
    d.abi_major = 2;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin p.so needs ABI 2.1, sparkplaned provides 1.1");
    d.abi_major = 0;
    d.abi_minor = 9;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin p.so needs ABI 0.9, sparkplaned provides 1.1");
}

static void test_descriptor_sizes(void)
{
    struct {
        sp_plugin_descriptor d;
        char later_fields[32];
    } bigger = {abi_good(), {0}};
    sp_plugin_descriptor d = abi_good();
    char expected[128];

    d.descriptor_size = 12;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    snprintf(expected, sizeof(expected),
             "p.so: descriptor too small (12 bytes, ABI 1.0 needs at least %zu)",
             sizeof(sp_plugin_descriptor));
    CU_ASSERT_STRING_EQUAL(check_message, expected);
    d.descriptor_size = (uint32_t)sizeof(d) - 1;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    /* Larger than ours with our minor (a sloppy build): only our fields are read. */
    bigger.d.descriptor_size = (uint32_t)sizeof(bigger);
    CU_ASSERT_EQUAL(abi_check(&bigger.d), 0);
}

static void test_descriptor_fields(void)
{
    sp_plugin_descriptor d = abi_good();

    d.kind = 9;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin x: unknown kind 9");
    d.kind = 0;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin x: unknown kind 0");

    d = abi_good();
    d.init = NULL;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin x: missing init");

    d = abi_good();
    d.name = NULL;
    CU_ASSERT_EQUAL(abi_check(&d), -1);
    CU_ASSERT_STRING_EQUAL(check_message, "plugin p.so: missing name");
}

static void test_descriptor_names(void)
{
    static const char *const bad[] = {
        "", "Auth", "auth-token", "auth token", "a.b",
        "abcdefghijklmnopqrstuvwxyz_0123456789_abcdefghijklmnopqrstuvwxyz_"}; /* 65 */
    sp_plugin_descriptor d = abi_good();

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d.name = bad[i];
        CU_ASSERT_EQUAL(abi_check(&d), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(check_message, "(must match [a-z0-9_]{1,64})"));
    }
    d.name = "auth-token";
    abi_check(&d);
    CU_ASSERT_STRING_EQUAL(check_message,
                           "plugin p.so: invalid name \"auth-token\" (must match [a-z0-9_]{1,64})");
    d.name = "bell\a";
    abi_check(&d);
    CU_ASSERT_STRING_EQUAL(check_message,
                           "plugin p.so: invalid name \"bell?\" (must match [a-z0-9_]{1,64})");
}

static void test_kind_names(void)
{
    CU_ASSERT_STRING_EQUAL(plugin_kind_name(SP_KIND_BACKEND), "backend");
    CU_ASSERT_STRING_EQUAL(plugin_kind_name(SP_KIND_AUTH), "auth");
    CU_ASSERT_STRING_EQUAL(plugin_kind_name(SP_KIND_POLICY), "policy");
    CU_ASSERT_STRING_EQUAL(plugin_kind_name(SP_KIND_MANIFEST), "manifest");
    CU_ASSERT_PTR_NULL(plugin_kind_name(0));
    CU_ASSERT_PTR_NULL(plugin_kind_name(5));
}

/* ---- a host API forwarding to plugin_host.c ------------------------------ */

#define MAX_EVENTS 64
static char *events[MAX_EVENTS]; /* log lines and release-hook calls, in order */
static size_t event_count;
static int probe_answers[8];
static size_t probe_count;

static void event_add(const char *fmt, ...) SP_PRINTF(1, 2);
static void event_add(const char *fmt, ...)
{
    va_list ap;
    char line[512];
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (event_count < MAX_EVENTS)
        events[event_count++] = strdup(line);
}

static void events_clear(void)
{
    for (size_t i = 0; i < event_count; i++)
        free(events[i]);
    event_count = 0;
    probe_count = 0;
}

/* Index of the first event equal to `text`, or -1. */
static int event_index(const char *text)
{
    for (size_t i = 0; i < event_count; i++)
        if (strcmp(events[i], text) == 0)
            return (int)i;
    return -1;
}

static void host_log(sp_plugin_context *ctx, sp_log_level level, const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    event_add("%s: %s", ((loaded_plugin *)ctx)->name, line);
}

static const char *host_option_string(sp_plugin_context *ctx, const char *key)
{
    return plugin_options_string(((loaded_plugin *)ctx)->options, key);
}

static int64_t host_option_int(sp_plugin_context *ctx, const char *key)
{
    return plugin_options_int(((loaded_plugin *)ctx)->options, key);
}

static int probe_authenticate(void *provider, const sp_auth_request *request,
                              sp_principal *principal, char *err, size_t err_size)
{
    return SP_DEFER;
}

/*
 * Forwards; on the "good" plugin's own registration also probes the
 * answers a plugin can get, while its init is still running.
 */
static int host_register(sp_plugin_context *ctx, sp_plugin_kind kind, const char *name,
                         const void *ops, void *provider)
{
    static const uint32_t tiny_ops = 4;
    static const sp_auth_ops probe_ops = {sizeof(sp_auth_ops), probe_authenticate};
    static const sp_policy_ops probe_policy_ops = {sizeof(sp_policy_ops), NULL};
    loaded_plugin *plugin = (loaded_plugin *)ctx;
    int rc = plugin_set_register(plugin, kind, name, ops, provider);

    if (rc != SP_OK || strcmp(name, "good") != 0)
        return rc;
    probe_count = 0;
    probe_answers[probe_count++] = plugin_set_register(plugin, kind, name, ops, provider);
    probe_answers[probe_count++] = plugin_set_register(plugin, 99, "other", ops, provider);
    probe_answers[probe_count++] = plugin_set_register(plugin, kind, "other", &tiny_ops, NULL);
    probe_answers[probe_count++] = plugin_set_register(plugin, kind, NULL, ops, provider);
    probe_answers[probe_count++] = plugin_set_register(plugin, kind, "other", NULL, NULL);
    /* Same name, another kind: no conflict. */
    probe_answers[probe_count++] = plugin_set_register(plugin, SP_KIND_POLICY, "good",
                                                       &probe_policy_ops, NULL);
    probe_answers[probe_count++] =
        plugin_set_register(plugin, kind, "good_extra", &probe_ops, NULL);
    return rc;
}

static const sp_host_api test_host = {
    .size = sizeof(sp_host_api),
    .abi_major = SP_ABI_MAJOR,
    .abi_minor = SP_ABI_MINOR,
    .daemon_version = "test",
    .log = host_log,
    .option_string = host_option_string,
    .option_int = host_option_int,
    .register_provider = host_register,
};

static void release_hook(loaded_plugin *plugin)
{
    event_add("release %s", plugin->name);
}

/* ---- configs built by hand ------------------------------------------------ */

typedef struct test_entry {
    const char *name;
    const char *so;       /* file in PLUGIN_DIR, or an absolute path */
    const char *options;  /* YAML mapping text, or NULL */
    int enabled;
} test_entry;

typedef struct test_config {
    config cfg;
    config_plugin plugins[8];
    char paths[8][512];
    yaml_tree_node *options[8];
    diag_list problems;
} test_config;

static void test_config_build(test_config *t, const test_entry *entries, size_t count)
{
    char err[256];

    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < count; i++) {
        config_plugin *cp = &t->plugins[i];
        snprintf(t->paths[i], sizeof(t->paths[i]), "%s%s",
                 entries[i].so[0] == '/' ? "" : PLUGIN_DIR, entries[i].so);
        if (entries[i].options != NULL) {
            CU_ASSERT_FATAL(yaml_tree_parse_buffer(CONFIG_FILE, entries[i].options,
                                                   strlen(entries[i].options), &t->options[i],
                                                   err, sizeof(err)) == 0);
        }
        *cp = (config_plugin){(char *)entries[i].name, t->paths[i], entries[i].enabled,
                              t->options[i], CONFIG_FILE, (int)(10 + i), 3};
    }
    t->cfg.plugins = t->plugins;
    t->cfg.plugin_count = count;
}

static void test_config_free(test_config *t)
{
    for (size_t i = 0; i < 8; i++)
        yaml_tree_free(t->options[i]);
    diag_clear(&t->problems);
}

static plugin_set *prepare(test_config *t, const test_entry *entries, size_t count)
{
    test_config_build(t, entries, count);
    return plugin_set_prepare(&t->cfg, &test_host, &t->problems);
}

/* A config of one plugin that prepare must refuse with `expected` (after "file:line:col: "). */
static void check_refused(const char *name, const char *so, const char *expected)
{
    test_config t;
    test_entry entry = {name, so, "greeting: hi", 1};
    char full[1024];
    plugin_set *set = prepare(&t, &entry, 1);

    CU_ASSERT_PTR_NULL(set);
    CU_ASSERT_EQUAL(t.problems.count, 1);
    snprintf(full, sizeof(full), CONFIG_FILE ":10:3: %s", expected);
    if (t.problems.count == 1) {
        CU_ASSERT_STRING_EQUAL(t.problems.messages[0], full);
        if (strcmp(t.problems.messages[0], full) != 0)
            fprintf(stderr, "\n  got:  %s\n  want: %s\n", t.problems.messages[0], full);
    }
    plugin_set_free(set);
    test_config_free(&t);
}

static void test_prepare_refusals(void)
{
    check_refused("bad_magic", "bad_magic.so",
                  PLUGIN_DIR "bad_magic.so: not a sparkplane plugin (bad magic 0xdeadbeef)");
    check_refused("future_minor", "future_minor.so",
                  "plugin future_minor needs ABI 1.99, sparkplaned provides 1.1");
    check_refused("other_major", "other_major.so",
                  "plugin " PLUGIN_DIR "other_major.so needs ABI 2.0, sparkplaned provides 1.1");
    check_refused("old_major", "old_major.so",
                  "plugin " PLUGIN_DIR "old_major.so needs ABI 0.9, sparkplaned provides 1.1");
    check_refused("no_symbol", "no_symbol.so",
                  PLUGIN_DIR "no_symbol.so: missing symbol sp_plugin_descriptor "
                  "(not a sparkplane plugin)");
    check_refused("unknown_kind", "unknown_kind.so", "plugin unknown_kind: unknown kind 9");
    check_refused("other", "good.so",
                  "plugins.other: " PLUGIN_DIR "good.so is plugin \"good\", not \"other\"");
}

static void test_prepare_short_descriptor(void)
{
    char expected[512];
    snprintf(expected, sizeof(expected),
             PLUGIN_DIR "short_descriptor.so: descriptor too small (12 bytes, ABI 1.0 needs at "
             "least %zu)", sizeof(sp_plugin_descriptor));
    check_refused("short_descriptor", "short_descriptor.so", expected);
}

static void test_prepare_not_loadable(void)
{
    char path[] = "/tmp/test_plugin_abi.XXXXXX";
    char prefix[128];
    test_config t;
    int fd = mkstemp(path);
    test_entry entries[] = {{"junk", path, NULL, 1}, {"gone", "/nonexistent/gone.so", NULL, 1}};

    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, "#!/bin/sh\necho not a plugin\n", 28) == 28);
    close(fd);
    CU_ASSERT_PTR_NULL(prepare(&t, entries, 2));
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 2);
    snprintf(prefix, sizeof(prefix), CONFIG_FILE ":10:3: plugins.junk: cannot load %s: ", path);
    CU_ASSERT_EQUAL(strncmp(t.problems.messages[0], prefix, strlen(prefix)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], path)); /* dlerror names it */
    CU_ASSERT_EQUAL(strncmp(t.problems.messages[1],
                            CONFIG_FILE ":11:3: plugins.gone: cannot load /nonexistent/gone.so: ",
                            strlen(CONFIG_FILE ":11:3: plugins.gone: cannot load "
                                   "/nonexistent/gone.so: ")), 0);
    test_config_free(&t);
    unlink(path);
}

static void test_prepare_collects_everything(void)
{
    test_config t;
    test_entry entries[] = {{"bad_magic", "bad_magic.so", NULL, 1},
                            {"good", "good.so", "greeting: hi", 1},
                            {"no_symbol", "no_symbol.so", NULL, 1},
                            {"dup", "dup_a.so", "greeting: a", 1},
                            {"dup", "dup_b.so", "greeting: b", 1}};

    CU_ASSERT_PTR_NULL(prepare(&t, entries, 5));
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], "bad magic"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[1], "missing symbol"));
    CU_ASSERT_STRING_EQUAL(t.problems.messages[2],
                           CONFIG_FILE ":14:3: plugins.dup: duplicate plugin name \"dup\" "
                           "(already loaded from " PLUGIN_DIR "dup_a.so)");
    test_config_free(&t);
}

static void test_prepare_options(void)
{
    test_config t;
    test_entry unknown = {"good", "good.so", "greeting: hi\nbogus: 1", 1};
    test_entry missing = {"good", "good.so", NULL, 1};
    test_entry wrong = {"good", "good.so", "greeting: hi\ninterval: soon", 1};

    CU_ASSERT_PTR_NULL(prepare(&t, &unknown, 1));
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], "plugins.good.options.bogus"));
    test_config_free(&t);

    CU_ASSERT_PTR_NULL(prepare(&t, &missing, 1));
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], "plugins.good.options.greeting"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], "required"));
    test_config_free(&t);

    CU_ASSERT_PTR_NULL(prepare(&t, &wrong, 1));
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(t.problems.messages[0], "plugins.good.options.interval"));
    test_config_free(&t);
}

static void test_start_and_free(void)
{
    test_config t;
    test_entry entries[] = {{"bad_magic", "bad_magic.so", NULL, 0}, /* disabled: not loaded */
                            {"good", "good.so", "greeting: hello\ninterval: 250ms", 1},
                            {"dup", "dup_a.so", "greeting: hi", 1}};
    plugin_set *set;

    events_clear();
    plugin_host_set_release_hook(release_hook);
    set = prepare(&t, entries, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_EQUAL(t.problems.count, 0);
    CU_ASSERT_EQUAL(plugin_set_count(set), 2);
    CU_ASSERT_EQUAL(event_count, 0); /* prepare runs no plugin code */
    CU_ASSERT_EQUAL(plugin_set_start(set, &t.problems), 0);
    CU_ASSERT_EQUAL(event_index("good: init good: hello every 250 ms"), 0);
    CU_ASSERT_EQUAL(event_index("dup: init dup: hi every 1000 ms"), 1);
    CU_ASSERT_PTR_NOT_NULL(plugin_set_find(set, SP_KIND_AUTH, "good"));
    CU_ASSERT_PTR_NOT_NULL(plugin_set_find(set, SP_KIND_AUTH, "dup"));
    CU_ASSERT_PTR_NULL(plugin_set_find(set, SP_KIND_BACKEND, "good"));
    CU_ASSERT_PTR_EQUAL(plugin_set_find(set, SP_KIND_AUTH, "dup")->owner, plugin_set_get(set, 1));

    /* After init, registering is refused. */
    CU_ASSERT_EQUAL(plugin_set_register(plugin_set_get(set, 0), SP_KIND_AUTH, "late",
                                        plugin_set_find(set, SP_KIND_AUTH, "good")->ops, NULL),
                    SP_INVALID);

    plugin_set_free(set);
    /* fini in reverse order, each followed by its release. */
    CU_ASSERT_EQUAL(event_index("dup: fini dup"), 2);
    CU_ASSERT_EQUAL(event_index("release dup"), 3);
    CU_ASSERT_EQUAL(event_index("good: fini good"), 4);
    CU_ASSERT_EQUAL(event_index("release good"), 5);
    CU_ASSERT_EQUAL(event_count, 6);
    plugin_host_set_release_hook(NULL);
    events_clear();
    test_config_free(&t);
}

static void test_register_answers(void)
{
    test_config t;
    test_entry entry = {"good", "good.so", "greeting: hi", 1};
    plugin_set *set;

    events_clear();
    set = prepare(&t, &entry, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_EQUAL_FATAL(plugin_set_start(set, &t.problems), 0);
    CU_ASSERT_EQUAL_FATAL(probe_count, 7);
    CU_ASSERT_EQUAL(probe_answers[0], SP_CONFLICT);      /* same kind and name */
    CU_ASSERT_EQUAL(probe_answers[1], SP_NOT_SUPPORTED); /* kind 99 */
    CU_ASSERT_EQUAL(probe_answers[2], SP_INVALID);       /* ops smaller than ABI 1.0 */
    CU_ASSERT_EQUAL(probe_answers[3], SP_INVALID);       /* no name */
    CU_ASSERT_EQUAL(probe_answers[4], SP_INVALID);       /* no ops */
    CU_ASSERT_EQUAL(probe_answers[5], SP_OK);            /* same name, other kind */
    CU_ASSERT_EQUAL(probe_answers[6], SP_OK);
    CU_ASSERT_PTR_NOT_NULL(plugin_set_find(set, SP_KIND_POLICY, "good"));
    CU_ASSERT_PTR_NOT_NULL(plugin_set_find(set, SP_KIND_AUTH, "good_extra"));
    CU_ASSERT_PTR_NULL(plugin_set_find(set, SP_KIND_AUTH, "other"));
    plugin_set_free(set);
    events_clear();
    test_config_free(&t);
}

static void test_init_failure_stops_started(void)
{
    test_config t;
    test_entry entries[] = {{"good", "good.so", "greeting: hi", 1},
                            {"init_fails", "init_fails.so", NULL, 1},
                            {"dup", "dup_b.so", "greeting: never", 1}};
    plugin_set *set;

    events_clear();
    plugin_host_set_release_hook(release_hook);
    set = prepare(&t, entries, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_EQUAL(plugin_set_start(set, &t.problems), -1);
    CU_ASSERT_EQUAL_FATAL(t.problems.count, 1);
    CU_ASSERT_STRING_EQUAL(t.problems.messages[0], "plugin init_fails: init failed: cannot "
                                                   "reach the license server at 10.0.0.1:443");
    /* init_fails' own registration is gone, good was stopped, dup never ran. */
    CU_ASSERT_PTR_NULL(plugin_set_find(set, SP_KIND_AUTH, "init_fails"));
    CU_ASSERT_PTR_NULL(plugin_set_find(set, SP_KIND_AUTH, "good"));
    CU_ASSERT_EQUAL(event_index("init_fails: fini init_fails must not run"), -1);
    CU_ASSERT_EQUAL(event_index("dup: init dup: never every 1000 ms"), -1);
    CU_ASSERT(event_index("release init_fails") < event_index("good: fini good"));
    CU_ASSERT(event_index("good: fini good") < event_index("release good"));
    CU_ASSERT_EQUAL(event_index("release dup"), -1);
    size_t after_start = event_count;
    plugin_set_free(set); /* already stopped: nothing runs twice */
    CU_ASSERT_EQUAL(event_count, after_start);
    plugin_host_set_release_hook(NULL);
    events_clear();
    test_config_free(&t);
}

static const unit_test_case cases[] = {
    {"a correct descriptor is accepted", test_descriptor_accepts_good},
    {"bad magic is refused first", test_descriptor_bad_magic},
    {"other majors and newer minors are refused with both versions", test_descriptor_versions},
    {"descriptor_size below ABI 1.0 is refused, larger is read in part", test_descriptor_sizes},
    {"unknown kind, missing init and missing name are refused", test_descriptor_fields},
    {"names must match [a-z0-9_]{1,64}", test_descriptor_names},
    {"kind names", test_kind_names},
    {"prepare refuses broken plugin objects with exact reasons", test_prepare_refusals},
    {"prepare refuses a 12-byte descriptor without reading past it", test_prepare_short_descriptor},
    {"prepare reports files dlopen cannot load", test_prepare_not_loadable},
    {"prepare collects every problem, including duplicates", test_prepare_collects_everything},
    {"prepare validates options against the plugin's table", test_prepare_options},
    {"start inits in order; free finis in reverse and releases", test_start_and_free},
    {"register_provider answers CONFLICT, NOT_SUPPORTED, INVALID", test_register_answers},
    {"a failing init stops the plugins already started", test_init_failure_stops_started},
    {NULL, NULL}};

UNIT_TEST_MAIN("plugin_abi", cases)
