/*
 * plugin_options.c - a plugin's options checked against its own table.
 *
 * One entry per row of the plugin's sp_option_spec table holds the value
 * that will answer the host API's option_* calls: the text as written,
 * the number it means (INT as is, DURATION in milliseconds, SIZE in bytes,
 * BOOL as 0/1) and, for STRING_LIST, the items.  A value comes from the
 * config's mapping when set there, else from the row's default_value,
 * which is parsed by the very same rules; a default that does not parse
 * is reported too, naming the plugin, because it is the plugin's bug and
 * the operator needs to know whom to blame.  STRING_LIST defaults are
 * YAML text ("[a, b]").  Every problem is collected; NULL is returned if
 * there was any.
 */
#include "plugin_options.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

#define PLUGIN_OPTIONS_MESSAGE_SIZE 1024

typedef struct plugin_option_value {
    char *key;
    sp_option_type type;
    char *text;        /* scalar text; NULL when unset (and no default) */
    int64_t number;    /* INT, BOOL, DURATION (ms), SIZE (bytes) */
    char **items;      /* STRING_LIST */
    size_t item_count;
} plugin_option_value;

struct plugin_options {
    plugin_option_value *values;
    size_t count;
};

typedef struct plugin_options_checker {
    const char *plugin;
    const char *where_file;
    int where_line;
    int where_column;
    diag_list *problems;
} plugin_options_checker;

static void plugin_options_report(plugin_options_checker *chk, const char *file, int line,
                                  int column, const char *key, const char *fmt, ...)
    SP_PRINTF(6, 7);

static void plugin_options_report(plugin_options_checker *chk, const char *file, int line,
                                  int column, const char *key, const char *fmt, ...)
{
    char message[PLUGIN_OPTIONS_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (key != NULL)
        diag_add_at(chk->problems, file, line, column, "plugins.%s.options.%s: %s", chk->plugin,
                    key, message);
    else
        diag_add_at(chk->problems, file, line, column, "plugins.%s.options: %s", chk->plugin,
                    message);
}

static int plugin_options_is_null(const yaml_tree_node *node)
{
    if (node == NULL)
        return 1;
    if (node->kind != YAML_TREE_SCALAR || !node->plain)
        return 0;
    const char *v = node->value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static const char *plugin_options_type_text(sp_option_type type)
{
    switch (type) {
    case SP_OPTION_STRING:
        return "a string";
    case SP_OPTION_INT:
        return "an integer";
    case SP_OPTION_BOOL:
        return "true or false";
    case SP_OPTION_DURATION:
        return "a duration such as 250ms, 30s, 5m, 2h or 7d";
    case SP_OPTION_SIZE:
        return "a size such as 4096, 512KiB, 1MiB or 2GiB";
    case SP_OPTION_STRING_LIST:
        return "a sequence of strings";
    }
    return "a value of an unknown type";
}

static int plugin_options_known_type(sp_option_type type)
{
    return type >= SP_OPTION_STRING && type <= SP_OPTION_STRING_LIST;
}

/* Converts scalar text by the option's type; 0 on success. */
static int plugin_options_parse_scalar(sp_option_type type, const char *text, int64_t *number)
{
    uint64_t amount;
    int flag;
    switch (type) {
    case SP_OPTION_STRING:
        *number = 0;
        return 0;
    case SP_OPTION_INT:
        return units_parse_int64(text, number);
    case SP_OPTION_BOOL:
        if (units_parse_bool(text, &flag) != 0)
            return -1;
        *number = flag;
        return 0;
    case SP_OPTION_DURATION:
    case SP_OPTION_SIZE:
        if ((type == SP_OPTION_DURATION ? units_parse_duration_ms(text, &amount)
                                        : units_parse_size_bytes(text, &amount)) != 0 ||
            amount > (uint64_t)INT64_MAX)
            return -1;
        *number = (int64_t)amount;
        return 0;
    case SP_OPTION_STRING_LIST:
        break;
    }
    return -1;
}

static void plugin_options_explain(char *why, size_t why_size, sp_option_type type,
                                   const char *got_kind, const char *got_text)
{
    if (got_text == NULL)
        snprintf(why, why_size, "expected %s, got a %s", plugin_options_type_text(type),
                 got_kind);
    else
        snprintf(why, why_size, "expected %s, got '%.60s'", plugin_options_type_text(type),
                 got_text);
}

/* Scalar types from their text; 1 with `why` filled when the text is wrong. */
static int plugin_options_take_text(plugin_option_value *value, const char *text, char *why,
                                    size_t why_size)
{
    if (plugin_options_parse_scalar(value->type, text, &value->number) != 0) {
        plugin_options_explain(why, why_size, value->type, "scalar", text);
        return 1;
    }
    value->text = strdup(text);
    return value->text != NULL ? 0 : -1;
}

static int plugin_options_take_list(plugin_option_value *value, const yaml_tree_node *node,
                                    char *why, size_t why_size)
{
    value->items = calloc(node->count ? node->count : 1, sizeof(char *));
    if (value->items == NULL)
        return -1;
    for (size_t i = 0; i < node->count; i++) {
        const yaml_tree_node *item = node->items[i];
        if (item->kind != YAML_TREE_SCALAR || plugin_options_is_null(item)) {
            snprintf(why, why_size, "item %zu: expected a string, got %s", i,
                     item->kind == YAML_TREE_SCALAR ? "null" : yaml_tree_kind_name(item->kind));
            return 1;
        }
        if ((value->items[i] = strdup(item->value)) == NULL)
            return -1;
        value->item_count++;
    }
    return 0;
}

/* Fills `value` from a YAML node: 0 done, 1 wrong (`why` says how), -1 no memory. */
static int plugin_options_take_node(plugin_option_value *value, const yaml_tree_node *node,
                                    char *why, size_t why_size)
{
    int list = value->type == SP_OPTION_STRING_LIST;
    if (list && node->kind == YAML_TREE_SEQUENCE)
        return plugin_options_take_list(value, node, why, why_size);
    if (!list && node->kind == YAML_TREE_SCALAR)
        return plugin_options_take_text(value, node->value, why, why_size);
    plugin_options_explain(why, why_size, value->type, yaml_tree_kind_name(node->kind),
                           node->kind == YAML_TREE_SCALAR ? node->value : NULL);
    return 1;
}

/* A row's default_value, parsed as if the config had written it. */
static int plugin_options_take_default(plugin_options_checker *chk, plugin_option_value *value,
                                       const char *text)
{
    char why[256];
    yaml_tree_node *node = NULL;
    int rc;
    if (value->type != SP_OPTION_STRING_LIST) {
        rc = plugin_options_take_text(value, text, why, sizeof(why));
    } else if (yaml_tree_parse_buffer("default", text, strlen(text), &node, why, sizeof(why)) !=
               0) {
        rc = 1;
    } else if (node->kind == YAML_TREE_MAP && node->count == 0) {
        rc = 0; /* an empty text is an empty list */
    } else {
        rc = plugin_options_take_node(value, node, why, sizeof(why));
    }
    yaml_tree_free(node);
    if (rc > 0)
        plugin_options_report(chk, chk->where_file, chk->where_line, chk->where_column,
                              value->key, "plugin '%s' has a bad default '%.60s': %s",
                              chk->plugin, text, why);
    return rc;
}

/* Unknown keys name the ones the plugin knows, so typos are easy to fix. */
static void plugin_options_check_unknown(plugin_options_checker *chk, const sp_option_spec *specs,
                                         const yaml_tree_node *options)
{
    for (size_t i = 0; i < options->count; i++) {
        const char *key = options->keys[i];
        int known = 0;
        char names[512] = "";
        size_t used = 0;
        for (const sp_option_spec *s = specs; s != NULL && s->key != NULL; s++) {
            if (strcmp(s->key, key) == 0)
                known = 1;
            if (used < sizeof(names))
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
                                         used ? ", " : "", s->key);
        }
        if (known)
            continue;
        plugin_options_report(chk, options->items[i]->file, options->key_lines[i],
                              options->key_columns[i], key,
                              "unknown option '%.80s' for plugin '%s'; %s%s", key, chk->plugin,
                              names[0] ? "known options: " : "the plugin takes no options",
                              names);
    }
}

/* Fills one row's value; 0 when fine, non-zero when a problem was reported. */
static int plugin_options_fill(plugin_options_checker *chk, const sp_option_spec *spec,
                               const yaml_tree_node *options, plugin_option_value *value)
{
    char why[256];
    value->type = spec->type;
    if ((value->key = strdup(spec->key)) == NULL)
        return -1;
    if (!plugin_options_known_type(spec->type)) {
        plugin_options_report(chk, chk->where_file, chk->where_line, chk->where_column,
                              spec->key, "plugin '%s' declares an unknown option type %d",
                              chk->plugin, (int)spec->type);
        return 1;
    }
    const yaml_tree_node *node = yaml_tree_map_get(options, spec->key);
    if (!plugin_options_is_null(node)) {
        int rc = plugin_options_take_node(value, node, why, sizeof(why));
        if (rc > 0)
            plugin_options_report(chk, node->file, node->line, node->column, spec->key, "%s",
                                  why);
        return rc;
    }
    if (spec->required) {
        plugin_options_report(chk, chk->where_file, chk->where_line, chk->where_column,
                              spec->key, "required option is missing (%s: %s)",
                              plugin_options_type_text(spec->type),
                              spec->help ? spec->help : "no help");
        return 1;
    }
    if (spec->default_value != NULL)
        return plugin_options_take_default(chk, value, spec->default_value);
    return 0;
}

plugin_options *plugin_options_build(const char *plugin_name, const sp_option_spec *specs,
                                     const yaml_tree_node *options, const char *where_file,
                                     int where_line, int where_column, diag_list *problems)
{
    plugin_options_checker chk = {plugin_name ? plugin_name : "?", where_file, where_line,
                                  where_column, problems};
    size_t before = problems->count;
    size_t rows = 0;
    while (specs != NULL && specs[rows].key != NULL)
        rows++;
    plugin_options *result = calloc(1, sizeof(*result));
    if (result == NULL || (result->values = calloc(rows ? rows : 1, sizeof(*result->values))) ==
                              NULL)
        goto out_of_memory;
    if (plugin_options_is_null(options)) {
        options = NULL;
    } else if (options->kind != YAML_TREE_MAP) {
        plugin_options_report(&chk, options->file, options->line, options->column, NULL,
                              "expected a mapping, got a %s", yaml_tree_kind_name(options->kind));
        options = NULL;
    } else {
        plugin_options_check_unknown(&chk, specs, options);
    }
    for (size_t i = 0; i < rows; i++) {
        result->count++;
        if (plugin_options_fill(&chk, &specs[i], options, &result->values[i]) < 0)
            goto out_of_memory;
    }
    if (problems->count > before)
        goto fail;
    return result;
out_of_memory:
    diag_add_at(problems, where_file, where_line, where_column,
                "plugins.%s.options: out of memory", chk.plugin);
fail:
    plugin_options_free(result);
    return NULL;
}

void plugin_options_free(plugin_options *options)
{
    if (options == NULL)
        return;
    for (size_t i = 0; options->values != NULL && i < options->count; i++) {
        plugin_option_value *value = &options->values[i];
        for (size_t j = 0; j < value->item_count; j++)
            free(value->items[j]);
        free(value->items);
        free(value->text);
        free(value->key);
    }
    free(options->values);
    free(options);
}

static const plugin_option_value *plugin_options_find(const plugin_options *options,
                                                      const char *key)
{
    if (options == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < options->count; i++)
        if (options->values[i].key != NULL && strcmp(options->values[i].key, key) == 0)
            return &options->values[i];
    return NULL;
}

/* The text as written for any scalar type; NULL for lists and unset options. */
const char *plugin_options_string(const plugin_options *options, const char *key)
{
    const plugin_option_value *value = plugin_options_find(options, key);
    return value != NULL ? value->text : NULL;
}

int64_t plugin_options_int(const plugin_options *options, const char *key)
{
    const plugin_option_value *value = plugin_options_find(options, key);
    return value != NULL ? value->number : 0;
}

size_t plugin_options_list_count(const plugin_options *options, const char *key)
{
    const plugin_option_value *value = plugin_options_find(options, key);
    return value != NULL ? value->item_count : 0;
}

const char *plugin_options_list_item(const plugin_options *options, const char *key,
                                     size_t index)
{
    const plugin_option_value *value = plugin_options_find(options, key);
    if (value == NULL || index >= value->item_count)
        return NULL;
    return value->items[index];
}
