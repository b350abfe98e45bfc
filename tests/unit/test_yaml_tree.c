/*
 * test_yaml_tree.c - located YAML trees: what a config author sees when a
 * file is fine (values, positions) and when it is not (the exact
 * "file:line:column: reason"), including hostile documents that must be
 * refused quickly and cheaply (alias bombs, deep nesting, huge files).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit_test.h"
#include "yaml_tree.h"

static char err[1024];

static yaml_tree_node *parse_ok(const char *text)
{
    yaml_tree_node *root = NULL;
    int rc = yaml_tree_parse_buffer("t.yaml", text, strlen(text), &root, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    return root;
}

/* Parses text that must fail with exactly `expected` as the message. */
static void parse_fails(const char *text, size_t len, const char *expected)
{
    yaml_tree_node *root = (yaml_tree_node *)&root; /* must be reset to NULL */
    CU_ASSERT_EQUAL(yaml_tree_parse_buffer("t.yaml", text, len, &root, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NULL(root);
    if (strncmp(err, expected, strlen(expected)) != 0)
        fprintf(stderr, "\n  got:      %s\n  expected: %s\n", err, expected);
    CU_ASSERT_EQUAL(strncmp(err, expected, strlen(expected)), 0);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void test_values_and_positions(void)
{
    yaml_tree_node *root = parse_ok("server:\n"
                                    "  listen: [\"a:1\", b:2]\n"
                                    "  name: 'quoted'\n"
                                    "  empty:\n"
                                    "list:\n"
                                    "  - one\n"
                                    "  - {k: v}\n");
    CU_ASSERT_EQUAL(root->kind, YAML_TREE_MAP);
    CU_ASSERT_EQUAL(root->count, 2);
    CU_ASSERT_STRING_EQUAL(root->file, "t.yaml");
    yaml_tree_node *server = yaml_tree_map_get(root, "server");
    CU_ASSERT_PTR_NOT_NULL_FATAL(server);
    CU_ASSERT_EQUAL(server->kind, YAML_TREE_MAP);
    CU_ASSERT_EQUAL(root->key_lines[0], 1);
    CU_ASSERT_EQUAL(root->key_columns[0], 1);
    CU_ASSERT_EQUAL(server->key_lines[1], 3);
    CU_ASSERT_EQUAL(server->key_columns[1], 3);

    yaml_tree_node *listen = yaml_tree_map_get(server, "listen");
    CU_ASSERT_EQUAL_FATAL(listen->kind, YAML_TREE_SEQUENCE);
    CU_ASSERT_EQUAL_FATAL(listen->count, 2);
    CU_ASSERT_STRING_EQUAL(listen->items[0]->value, "a:1");
    CU_ASSERT_FALSE(listen->items[0]->plain);
    CU_ASSERT_STRING_EQUAL(listen->items[1]->value, "b:2");
    CU_ASSERT_TRUE(listen->items[1]->plain);
    CU_ASSERT_EQUAL(listen->items[1]->line, 2);
    CU_ASSERT_EQUAL(listen->items[1]->column, 19);

    yaml_tree_node *name = yaml_tree_map_get(server, "name");
    CU_ASSERT_STRING_EQUAL(name->value, "quoted");
    CU_ASSERT_FALSE(name->plain);
    yaml_tree_node *empty = yaml_tree_map_get(server, "empty");
    CU_ASSERT_EQUAL(empty->kind, YAML_TREE_SCALAR);
    CU_ASSERT_STRING_EQUAL(empty->value, "");
    CU_ASSERT_TRUE(empty->plain);

    yaml_tree_node *list = yaml_tree_map_get(root, "list");
    CU_ASSERT_EQUAL(list->count, 2);
    CU_ASSERT_EQUAL(list->items[1]->kind, YAML_TREE_MAP);
    CU_ASSERT_EQUAL(list->items[1]->line, 7);
    CU_ASSERT_EQUAL(list->items[1]->column, 5);
    CU_ASSERT_PTR_NULL(yaml_tree_map_get(root, "missing"));
    CU_ASSERT_PTR_NULL(yaml_tree_map_get(list, "one"));
    yaml_tree_free(root);
}

static void test_empty_documents_are_maps(void)
{
    const char *empties[] = {"", "# only a comment\n", "---\n", "---\n...\n", "\n\n", NULL};
    for (size_t i = 0; empties[i] != NULL; i++) {
        yaml_tree_node *root = parse_ok(empties[i]);
        CU_ASSERT_EQUAL(root->kind, YAML_TREE_MAP);
        CU_ASSERT_EQUAL(root->count, 0);
        yaml_tree_free(root);
    }
}

static void test_other_top_levels(void)
{
    yaml_tree_node *root = parse_ok("- a\n- b\n");
    CU_ASSERT_EQUAL(root->kind, YAML_TREE_SEQUENCE);
    CU_ASSERT_EQUAL(root->count, 2);
    yaml_tree_free(root);
    root = parse_ok("just text\n");
    CU_ASSERT_EQUAL(root->kind, YAML_TREE_SCALAR);
    CU_ASSERT_STRING_EQUAL(root->value, "just text");
    yaml_tree_free(root);
}

static void test_refuses_anchors_and_aliases(void)
{
    const char *anchor = "a: &x 1\nb: 2\n";
    parse_fails(anchor, strlen(anchor), "t.yaml:1:4: anchors are not allowed");
    const char *alias = "a: 1\nb: *x\n";
    parse_fails(alias, strlen(alias), "t.yaml:2:4: aliases are not allowed");
}

static void test_alias_bomb_is_refused_quickly(void)
{
    const char *bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                       "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                       "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                       "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                       "h: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    parse_fails(bomb, strlen(bomb), "t.yaml:1:4: anchors are not allowed");
    CU_ASSERT(seconds_since(&start) < 1.0);
}

static void test_duplicate_keys(void)
{
    const char *text = "a: 1\nb: 2\na: 3\n";
    parse_fails(text, strlen(text), "t.yaml:3:1: duplicate key 'a' (first at line 1)");
    const char *nested = "top:\n  x: 1\n  y: 2\n  y: 3\n";
    parse_fails(nested, strlen(nested), "t.yaml:4:3: duplicate key 'y' (first at line 3)");
}

static void test_duplicate_in_large_map_is_fast(void)
{
    size_t keys = 90000;
    char *text = malloc(keys * 16 + 32);
    size_t used = 0;
    for (size_t i = 0; i < keys; i++)
        used += (size_t)sprintf(text + used, "k%zu: 1\n", i);
    used += (size_t)sprintf(text + used, "k7: 2\n");
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char expected[64];
    snprintf(expected, sizeof(expected), "t.yaml:%zu:1: duplicate key 'k7' (first at line 8)",
             keys + 1);
    parse_fails(text, used, expected);
    CU_ASSERT(seconds_since(&start) < 3.0);
    free(text);
}

static void test_non_scalar_keys(void)
{
    const char *text = "? [a, b]\n: 1\n";
    parse_fails(text, strlen(text), "t.yaml:1:3: mapping keys must be scalars, found a sequence");
    const char *flow = "{ {x: 1}: 2 }\n";
    parse_fails(flow, strlen(flow), "t.yaml:1:3: mapping keys must be scalars, found a mapping");
}

static void test_single_document_only(void)
{
    const char *text = "a: 1\n---\nb: 2\n";
    parse_fails(text, strlen(text), "t.yaml:2:1: only one document is allowed per file");
}

static void test_tags(void)
{
    yaml_tree_node *root = parse_ok("a: !!str 5\nb: ! x\n");
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(root, "a")->value, "5");
    yaml_tree_free(root);
    const char *custom = "a: !python/object x\n";
    parse_fails(custom, strlen(custom), "t.yaml:1:4: tag '!python/object' is not allowed");
}

static void test_syntax_errors_name_the_problem(void)
{
    const char *text = "a: 1\nb: [1, 2\n";
    parse_fails(text, strlen(text), "t.yaml:3:1: did not find expected ',' or ']'");
    const char *indent = "a:\n  b: 1\n c: 2\n";
    parse_fails(indent, strlen(indent), "t.yaml:3:2: did not find expected key");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "while parsing a block mapping"));
    const char *bad_utf8 = "a: 1\nb: \xff\xfe\n";
    parse_fails(bad_utf8, strlen(bad_utf8), "t.yaml:2:4: invalid input: invalid leading UTF-8");
}

static char *nested(size_t depth)
{
    char *text = malloc(depth * 2 + 1);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[depth * 2] = '\0';
    return text;
}

static void test_depth_limit(void)
{
    char *ok = nested(YAML_TREE_MAX_DEPTH);
    yaml_tree_node *root = parse_ok(ok);
    yaml_tree_free(root);
    free(ok);
    char *deep = nested(YAML_TREE_MAX_DEPTH + 1);
    char expected[64];
    snprintf(expected, sizeof(expected), "t.yaml:1:%d: nesting is deeper than %d levels",
             YAML_TREE_MAX_DEPTH + 1, YAML_TREE_MAX_DEPTH);
    parse_fails(deep, strlen(deep), expected);
    free(deep);

    /* Very deep input stops at the limit instead of exhausting anything. */
    char *abyss = nested(1000000);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    parse_fails(abyss, strlen(abyss), expected);
    CU_ASSERT(seconds_since(&start) < 1.0);
    free(abyss);
}

static void test_node_limit(void)
{
    size_t items = YAML_TREE_MAX_NODES + 10;
    char *text = malloc(items * 2 + 3);
    size_t used = 0;
    text[used++] = '[';
    for (size_t i = 0; i < items; i++) {
        text[used++] = '0';
        text[used++] = ',';
    }
    text[used - 1] = ']';
    text[used] = '\0';
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    parse_fails(text, used, "t.yaml:1:");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "document has more than 200000 nodes"));
    CU_ASSERT(seconds_since(&start) < 3.0);
    free(text);
}

static void test_size_limit(void)
{
    size_t len = YAML_TREE_MAX_BYTES + 1;
    char *text = malloc(len);
    memset(text, '#', len);
    parse_fails(text, len, "t.yaml:1:1: document is larger than 4194304 bytes");

    char dir[] = "/tmp/yaml_tree_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/huge.yaml", dir);
    FILE *file = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(file);
    for (int i = 0; i < 64; i++) /* 64 MiB that must not be read whole */
        fwrite(text, 1, 1024 * 1024, file);
    fclose(file);
    yaml_tree_node *root = NULL;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    CU_ASSERT_EQUAL(yaml_tree_parse_file(path, &root, err, sizeof(err)), -1);
    CU_ASSERT(seconds_since(&start) < 1.0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "huge.yaml:1:1: document is larger than"));
    unlink(path);
    rmdir(dir);
    free(text);
}

static void test_parse_file(void)
{
    char dir[] = "/tmp/yaml_tree_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/a.yaml", dir);
    yaml_tree_node *root = NULL;
    CU_ASSERT_EQUAL(yaml_tree_parse_file(path, &root, err, sizeof(err)), -1);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory", path);
    CU_ASSERT_STRING_EQUAL(err, expected);

    FILE *file = fopen(path, "w");
    fputs("x:\n  - 1\n  - 2\n", file);
    fclose(file);
    CU_ASSERT_EQUAL_FATAL(yaml_tree_parse_file(path, &root, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(root->file, path);
    yaml_tree_node *x = yaml_tree_map_get(root, "x");
    CU_ASSERT_STRING_EQUAL(x->items[1]->file, path);
    CU_ASSERT_EQUAL(x->items[1]->line, 3);
    yaml_tree_free(root);

    CU_ASSERT_EQUAL(yaml_tree_parse_file(dir, &root, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read: Is a directory"));
    unlink(path);
    rmdir(dir);
}

static yaml_tree_node *parse_named(const char *name, const char *text)
{
    yaml_tree_node *root = NULL;
    CU_ASSERT_EQUAL_FATAL(yaml_tree_parse_buffer(name, text, strlen(text), &root, err,
                                                 sizeof(err)),
                          0);
    return root;
}

static void test_merge(void)
{
    yaml_tree_node *base = parse_named("base.yaml", "a: 1\n"
                                                    "m:\n"
                                                    "  x: 1\n"
                                                    "  y: 2\n"
                                                    "s: [1, 2]\n"
                                                    "r: {deep: 1}\n");
    yaml_tree_node *overlay = parse_named("over.yaml", "m:\n"
                                                       "  y: 3\n"
                                                       "  z: 4\n"
                                                       "s: [9]\n"
                                                       "r: replaced\n"
                                                       "b: new\n");
    CU_ASSERT_EQUAL_FATAL(yaml_tree_merge(base, overlay, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(base->count, 5);
    CU_ASSERT_STRING_EQUAL(base->keys[0], "a");
    CU_ASSERT_STRING_EQUAL(base->keys[4], "b"); /* new keys are appended */
    yaml_tree_node *m = yaml_tree_map_get(base, "m");
    CU_ASSERT_EQUAL_FATAL(m->count, 3);
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(m, "x")->value, "1");
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(m, "y")->value, "3");
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(m, "z")->value, "4");
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(m, "x")->file, "base.yaml");
    /* the overlay is gone, but its nodes still say where they came from */
    yaml_tree_node *y = yaml_tree_map_get(m, "y");
    CU_ASSERT_STRING_EQUAL(y->file, "over.yaml");
    CU_ASSERT_EQUAL(y->line, 2);
    CU_ASSERT_EQUAL(m->key_lines[1], 2);
    yaml_tree_node *s = yaml_tree_map_get(base, "s");
    CU_ASSERT_EQUAL(s->count, 1);
    CU_ASSERT_STRING_EQUAL(s->items[0]->value, "9");
    CU_ASSERT_EQUAL(yaml_tree_map_get(base, "r")->kind, YAML_TREE_SCALAR);
    CU_ASSERT_STRING_EQUAL(yaml_tree_map_get(base, "b")->file, "over.yaml");
    CU_ASSERT_EQUAL(base->key_lines[4], 6);
    yaml_tree_free(base);
}

static void test_merge_needs_mappings(void)
{
    yaml_tree_node *base = parse_named("base.yaml", "a: 1\n");
    yaml_tree_node *overlay = parse_named("over.yaml", "- 1\n");
    CU_ASSERT_EQUAL(yaml_tree_merge(base, overlay, err, sizeof(err)), -1);
    CU_ASSERT_STRING_EQUAL(err, "over.yaml:1:1: top level must be a mapping to merge, got a "
                                "sequence");
    CU_ASSERT_EQUAL(base->count, 1); /* base unchanged */
    yaml_tree_free(base);
    CU_ASSERT_STRING_EQUAL(yaml_tree_kind_name(YAML_TREE_MAP), "mapping");
    CU_ASSERT_STRING_EQUAL(yaml_tree_kind_name(YAML_TREE_SEQUENCE), "sequence");
    CU_ASSERT_STRING_EQUAL(yaml_tree_kind_name(YAML_TREE_SCALAR), "scalar");
}

static const unit_test_case cases[] = {
    {"values with 1-based line and column", test_values_and_positions},
    {"an empty document is an empty mapping", test_empty_documents_are_maps},
    {"any top level is accepted", test_other_top_levels},
    {"anchors and aliases are refused", test_refuses_anchors_and_aliases},
    {"an alias bomb is refused at once", test_alias_bomb_is_refused_quickly},
    {"duplicate keys name both lines", test_duplicate_keys},
    {"duplicates in a 90000-key map are found fast", test_duplicate_in_large_map_is_fast},
    {"keys must be scalars", test_non_scalar_keys},
    {"one document per file", test_single_document_only},
    {"standard tags only", test_tags},
    {"syntax errors carry libyaml's problem and the place", test_syntax_errors_name_the_problem},
    {"nesting is bounded", test_depth_limit},
    {"node count is bounded", test_node_limit},
    {"size is bounded, huge files are not read whole", test_size_limit},
    {"files: located nodes, unreadable files", test_parse_file},
    {"merge: maps recurse, the rest is replaced", test_merge},
    {"merge needs two mappings", test_merge_needs_mappings},
    {NULL, NULL}};

UNIT_TEST_MAIN("yaml_tree", cases)
