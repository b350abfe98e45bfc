/*
 * test_plugin_options.c - a plugin's options as the plugin reads them
 * (typed, defaults applied) and as the operator sees mistakes (one
 * "file:line:column: plugins.<name>.options.<key>: ..." per problem).
 */
#include <stdio.h>
#include <string.h>

#include "plugin_options.h"
#include "unit_test.h"

static diag_list problems;

static const sp_option_spec specs[] = {
    {"url", SP_OPTION_STRING, NULL, 1, "where to send requests"},
    {"retries", SP_OPTION_INT, "3", 0, "attempts"},
    {"verbose", SP_OPTION_BOOL, "off", 0, "log more"},
    {"timeout", SP_OPTION_DURATION, "30s", 0, "per request"},
    {"buffer", SP_OPTION_SIZE, "64KiB", 0, "read buffer"},
    {"scopes", SP_OPTION_STRING_LIST, "[read, write]", 0, "granted scopes"},
    {"label", SP_OPTION_STRING, NULL, 0, "free text"},
    {"tags", SP_OPTION_STRING_LIST, NULL, 0, "tags"},
    {NULL, 0, NULL, 0, NULL}};

static yaml_tree_node *tree;

static const yaml_tree_node *options_from(const char *text)
{
    char err[512];
    yaml_tree_free(tree);
    tree = NULL;
    CU_ASSERT_EQUAL_FATAL(yaml_tree_parse_buffer("p.yaml", text, strlen(text), &tree, err,
                                                 sizeof(err)),
                          0);
    return tree;
}

static plugin_options *build(const sp_option_spec *table, const char *text)
{
    diag_clear(&problems);
    const yaml_tree_node *options = text != NULL ? options_from(text) : NULL;
    return plugin_options_build("demo", table, options, "main.yaml", 40, 3, &problems);
}

static int has_problem(const char *expected)
{
    for (size_t i = 0; i < problems.count; i++)
        if (strcmp(problems.messages[i], expected) == 0)
            return 1;
    fprintf(stderr, "\n    missing: %s", expected);
    for (size_t i = 0; i < problems.count; i++)
        fprintf(stderr, "\n    problem: %s", problems.messages[i]);
    return 0;
}

static void test_values_are_typed(void)
{
    plugin_options *o = build(specs, "url: http://x\n"
                                     "retries: -2\n"
                                     "verbose: YES\n"
                                     "timeout: 250ms\n"
                                     "buffer: 1MiB\n"
                                     "scopes: [admin]\n"
                                     "label: 'quoted'\n"
                                     "tags: []\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(problems.count, 0);
    CU_ASSERT_STRING_EQUAL(plugin_options_string(o, "url"), "http://x");
    CU_ASSERT_EQUAL(plugin_options_int(o, "retries"), -2);
    CU_ASSERT_EQUAL(plugin_options_int(o, "verbose"), 1);
    CU_ASSERT_EQUAL(plugin_options_int(o, "timeout"), 250);
    CU_ASSERT_EQUAL(plugin_options_int(o, "buffer"), 1024 * 1024);
    CU_ASSERT_STRING_EQUAL(plugin_options_string(o, "timeout"), "250ms"); /* as written */
    CU_ASSERT_EQUAL(plugin_options_list_count(o, "scopes"), 1);
    CU_ASSERT_STRING_EQUAL(plugin_options_list_item(o, "scopes", 0), "admin");
    CU_ASSERT_PTR_NULL(plugin_options_list_item(o, "scopes", 1));
    CU_ASSERT_STRING_EQUAL(plugin_options_string(o, "label"), "quoted");
    CU_ASSERT_EQUAL(plugin_options_list_count(o, "tags"), 0);
    /* asking for what the table does not have answers NULL / 0 */
    CU_ASSERT_PTR_NULL(plugin_options_string(o, "nope"));
    CU_ASSERT_EQUAL(plugin_options_int(o, "nope"), 0);
    CU_ASSERT_EQUAL(plugin_options_list_count(o, "nope"), 0);
    CU_ASSERT_PTR_NULL(plugin_options_list_item(o, "nope", 0));
    CU_ASSERT_PTR_NULL(plugin_options_string(o, "scopes"));
    plugin_options_free(o);
}

static void test_defaults_fill_the_rest(void)
{
    plugin_options *o = build(specs, "url: http://x\nlabel: ~\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(plugin_options_int(o, "retries"), 3);
    CU_ASSERT_EQUAL(plugin_options_int(o, "verbose"), 0);
    CU_ASSERT_EQUAL(plugin_options_int(o, "timeout"), 30000);
    CU_ASSERT_EQUAL(plugin_options_int(o, "buffer"), 64 * 1024);
    CU_ASSERT_EQUAL_FATAL(plugin_options_list_count(o, "scopes"), 2);
    CU_ASSERT_STRING_EQUAL(plugin_options_list_item(o, "scopes", 0), "read");
    CU_ASSERT_STRING_EQUAL(plugin_options_list_item(o, "scopes", 1), "write");
    CU_ASSERT_PTR_NULL(plugin_options_string(o, "label")); /* null = unset, no default */
    CU_ASSERT_EQUAL(plugin_options_list_count(o, "tags"), 0);
    plugin_options_free(o);
}

static void test_every_problem_is_reported(void)
{
    plugin_options *o = build(specs, "retries: 1.5\n"
                                     "verbose: maybe\n"
                                     "timeout: 30\n"
                                     "buffer: [1]\n"
                                     "scopes: admin\n"
                                     "label: {a: b}\n"
                                     "tags: [a, [b]]\n"
                                     "colour: red\n");
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(problems.count, 9);
    CU_ASSERT(has_problem("p.yaml:8:1: plugins.demo.options.colour: unknown option 'colour' for "
                          "plugin 'demo'; known options: url, retries, verbose, timeout, "
                          "buffer, scopes, label, tags"));
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.url: required option is "
                          "missing (a string: where to send requests)"));
    CU_ASSERT(has_problem("p.yaml:1:10: plugins.demo.options.retries: expected an integer, got "
                          "'1.5'"));
    CU_ASSERT(has_problem("p.yaml:2:10: plugins.demo.options.verbose: expected true or false, "
                          "got 'maybe'"));
    CU_ASSERT(has_problem("p.yaml:3:10: plugins.demo.options.timeout: expected a duration such "
                          "as 250ms, 30s, 5m, 2h or 7d, got '30'"));
    CU_ASSERT(has_problem("p.yaml:4:9: plugins.demo.options.buffer: expected a size such as "
                          "4096, 512KiB, 1MiB or 2GiB, got a sequence"));
    CU_ASSERT(has_problem("p.yaml:5:9: plugins.demo.options.scopes: expected a sequence of "
                          "strings, got 'admin'"));
    CU_ASSERT(has_problem("p.yaml:6:8: plugins.demo.options.label: expected a string, got a "
                          "mapping"));
    CU_ASSERT(has_problem("p.yaml:7:7: plugins.demo.options.tags: item 1: expected a string, "
                          "got sequence"));
}

static void test_options_must_be_a_mapping(void)
{
    plugin_options *o = build(specs, "[url]\n");
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT(has_problem("p.yaml:1:1: plugins.demo.options: expected a mapping, got a "
                          "sequence"));
    /* and the missing required one is still reported */
    CU_ASSERT_EQUAL(problems.count, 2);
}

static void test_no_options_given(void)
{
    static const sp_option_spec optional[] = {{"n", SP_OPTION_INT, "7", 0, "n"},
                                              {NULL, 0, NULL, 0, NULL}};
    plugin_options *o = build(optional, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(plugin_options_int(o, "n"), 7);
    plugin_options_free(o);

    o = build(NULL, NULL); /* a plugin without a table */
    CU_ASSERT_PTR_NOT_NULL(o);
    plugin_options_free(o);

    o = build(NULL, "x: 1\n");
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT(has_problem("p.yaml:1:1: plugins.demo.options.x: unknown option 'x' for plugin "
                          "'demo'; the plugin takes no options"));

    o = build(specs, NULL); /* url is required */
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(problems.count, 1);
}

static void test_bad_defaults_blame_the_plugin(void)
{
    static const sp_option_spec broken[] = {
        {"wait", SP_OPTION_DURATION, "soon", 0, "w"},
        {"size", SP_OPTION_SIZE, "99999999999999999999", 0, "s"},
        {"flag", SP_OPTION_BOOL, "2", 0, "f"},
        {"list", SP_OPTION_STRING_LIST, "{a: 1}", 0, "l"},
        {"list2", SP_OPTION_STRING_LIST, "[a, &x b]", 0, "l"},
        {"odd", (sp_option_type)99, NULL, 0, "?"},
        {NULL, 0, NULL, 0, NULL}};
    plugin_options *o = build(broken, "{}\n");
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(problems.count, 6);
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.wait: plugin 'demo' has a bad "
                          "default 'soon': expected a duration such as 250ms, 30s, 5m, 2h or "
                          "7d, got 'soon'"));
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.flag: plugin 'demo' has a bad "
                          "default '2': expected true or false, got '2'"));
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.list: plugin 'demo' has a bad "
                          "default '{a: 1}': expected a sequence of strings, got a mapping"));
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.list2: plugin 'demo' has a bad "
                          "default '[a, &x b]': default:1:5: anchors are not allowed (found "
                          "'&x')"));
    CU_ASSERT(has_problem("main.yaml:40:3: plugins.demo.options.odd: plugin 'demo' declares an "
                          "unknown option type 99"));
}

static void test_duration_and_size_fit_int64(void)
{
    static const sp_option_spec big[] = {{"d", SP_OPTION_DURATION, NULL, 0, "d"},
                                         {"s", SP_OPTION_SIZE, NULL, 0, "s"},
                                         {NULL, 0, NULL, 0, NULL}};
    plugin_options *o = build(big, "d: 9223372036854775807ms\ns: 8388607TiB\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_EQUAL(plugin_options_int(o, "d"), INT64_MAX);
    CU_ASSERT_EQUAL(plugin_options_int(o, "s"), (int64_t)8388607 << 40);
    plugin_options_free(o);
    o = build(big, "d: 9223372036854775808ms\n");
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_EQUAL(problems.count, 1);
}

static void cleanup(void)
{
    yaml_tree_free(tree);
    tree = NULL;
    diag_clear(&problems);
}

static const unit_test_case cases[] = {
    {"values arrive typed (ms, bytes, 0/1, lists)", test_values_are_typed},
    {"defaults fill what the config left out", test_defaults_fill_the_rest},
    {"every problem is reported with its place", test_every_problem_is_reported},
    {"options must be a mapping", test_options_must_be_a_mapping},
    {"no options, no table", test_no_options_given},
    {"a bad default names the plugin", test_bad_defaults_blame_the_plugin},
    {"durations and sizes must fit an int64", test_duration_and_size_fit_int64},
    {"(cleanup)", cleanup},
    {NULL, NULL}};

UNIT_TEST_MAIN("plugin_options", cases)
