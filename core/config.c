/*
 * config.c - the daemon's configuration: load, merge drop-ins, check, type.
 *
 * Loading is two steps.  First the main file and then every *.yaml in conf.d/
 * (hidden files skipped, strcmp order) are parsed into located YAML trees
 * and merged (yaml_tree_merge).  Then one pass walks the merged tree
 * against the schema in config.h, filling a typed `config` that starts
 * from the defaults.  Each problem becomes one diag_list entry
 * "file:line:column: dotted.key: message" and the walk carries on, so a
 * single --check-config run shows everything that is wrong.
 *
 * A null value (an empty value, "~" or "null") means "not set" for every
 * key: `server:` with nothing under it keeps the server defaults, and
 * `plugins: {auth_token: }` configures a plugin with default settings.
 *
 * Relative paths in a file (plugin_directory, plugins.<name>.path) are
 * resolved against the directory of the file that set them, so a drop-in
 * can ship a plugin beside itself; state.database is relative to
 * state.directory.
 *
 * The provisioning: section is checked in config_provisioning.c with the
 * helpers this file shares through config_internal.h.
 */
#include "config.h"
#include "config_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_route.h"
#include "tls_server.h"
#include "units.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef PLUGINDIR
#define PLUGINDIR "/usr/lib/sparkplane/plugins"
#endif

#define CONFIG_DEFAULT_LISTEN "127.0.0.1:8080"
#define CONFIG_DEFAULT_STATE_DIRECTORY LOCALSTATEDIR "/lib/sparkplane"
#define CONFIG_DEFAULT_DATABASE "sparkplane.db"
#define CONFIG_DEFAULT_AUDIT_FILE "audit.log"
static const char *const config_top_keys[] = {"server", "log", "state", "plugin_directory",
                                              "plugins", "auth", "runner", "spark_versions",
                                              "gateway", "clusters", "provisioning", "audit",
                                              NULL};
static const char *const config_server_keys[] = {"listen", "max_body_size", "max_header_size",
                                                 "request_timeout", "drain_timeout", "tls", NULL};
static const char *const config_log_keys[] = {"level", "format", NULL};
static const char *const config_state_keys[] = {"directory", "database", NULL};
static const char *const config_plugin_keys[] = {"path", "enabled", "options", NULL};
static const char *const config_auth_keys[] = {"chain", NULL};
static const char *const config_audit_keys[] = {"file", NULL};
static const char *const config_runner_keys[] = {
    "default_backend", "reconcile_interval", "max_starting_per_backend",
    "max_running_per_backend", "max_running_per_team", "idempotency_ttl", NULL};
static const char *const config_spark_version_keys[] = {"spark_home", "image", NULL};
static const char *const config_gateway_keys[] = {
    "listen", "authority_patterns", "domain", "default_region", "user_id_policy",
    "max_concurrent_streams", "idle_timeout", "max_message_size", "header_timeout",
    "session_timeout", "tls", NULL};
/* server.tls and gateway.tls */
static const char *const config_tls_keys[] = {"listen", "certificate", "key",
                                              "client_certificates", NULL};
static const char *const config_cluster_keys[] = {"id",        "team",  "environment",
                                                  "region",    "endpoints", "token",
                                                  "token_file", NULL};

/* ---- reporting ---- */

config_where config_where_node(const yaml_tree_node *node)
{
    return (config_where){node->file, node->line, node->column};
}

config_where config_where_key(const yaml_tree_node *map, size_t index)
{
    return (config_where){map->items[index]->file, map->key_lines[index],
                          map->key_columns[index]};
}

void config_report(config_checker *chk, config_where where, const char *key,
                   const char *fmt, ...)
{
    char message[CONFIG_ERROR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    diag_add_at(chk->problems, where.file, where.line, where.column, "%s: %s", key, message);
}

void config_report_oom(config_checker *chk)
{
    if (!chk->out_of_memory)
        diag_add(chk->problems, "%s: out of memory while reading the configuration",
                 chk->cfg->source_path ? chk->cfg->source_path : "config");
    chk->out_of_memory = 1;
}

int config_is_null(const yaml_tree_node *node)
{
    if (node == NULL)
        return 1;
    if (node->kind != YAML_TREE_SCALAR || !node->plain)
        return 0;
    const char *v = node->value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* "a mapping", "a sequence", "null" or the quoted (shortened) scalar text. */
static const char *config_describe(const yaml_tree_node *node, char *buffer, size_t size)
{
    if (config_is_null(node))
        return "null";
    if (node->kind == YAML_TREE_MAP)
        return "a mapping";
    if (node->kind == YAML_TREE_SEQUENCE)
        return "a sequence";
    size_t len = strlen(node->value);
    snprintf(buffer, size, "'%.60s%s'", node->value, len > 60 ? "..." : "");
    return buffer;
}

void config_report_type(config_checker *chk, const yaml_tree_node *node, const char *key,
                        const char *expected)
{
    char text[80];
    config_report(chk, config_where_node(node), key, "expected %s, got %s", expected,
                  config_describe(node, text, sizeof(text)));
}

static int config_in_list(const char *const *list, const char *text)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], text) == 0)
            return 1;
    return 0;
}

static void config_join(const char *const *list, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; list[i] != NULL && used < size; i++) {
        int n = snprintf(buffer + used, size - used, "%s%s", i ? ", " : "", list[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Joins a section's name and a key: ("server", "listen") -> "server.listen". */
void config_dotted(char *buffer, size_t size, const char *section, const char *key)
{
    if (section == NULL || section[0] == '\0')
        snprintf(buffer, size, "%s", key);
    else
        snprintf(buffer, size, "%s.%s", section, key);
}

void config_check_keys(config_checker *chk, const yaml_tree_node *map, const char *section,
                       const char *const *known)
{
    for (size_t i = 0; i < map->count; i++) {
        if (config_in_list(known, map->keys[i]))
            continue;
        char dotted[256], names[256];
        config_dotted(dotted, sizeof(dotted), section, map->keys[i]);
        config_join(known, names, sizeof(names));
        config_report(chk, config_where_key(map, i), dotted,
                      "unknown key '%.80s' %s%s; known keys: %s", map->keys[i],
                      section ? "in " : "at the top level", section ? section : "", names);
    }
}

/* A section that must be a mapping; NULL when unset or wrong (reported). */
const yaml_tree_node *config_section(config_checker *chk, const yaml_tree_node *parent,
                                     const char *name, const char *dotted)
{
    const yaml_tree_node *node = yaml_tree_map_get(parent, name);
    if (config_is_null(node))
        return NULL;
    if (node->kind != YAML_TREE_MAP) {
        config_report_type(chk, node, dotted, "a mapping");
        return NULL;
    }
    return node;
}

/* ---- small string helpers ---- */

int config_set_string(config_checker *chk, char **field, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL) {
        config_report_oom(chk);
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static char *config_join_path(const char *directory, const char *name)
{
    size_t dir_len = strlen(directory), name_len = strlen(name);
    int slash = dir_len > 0 && directory[dir_len - 1] != '/';
    char *path = malloc(dir_len + (size_t)slash + name_len + 1);
    if (path == NULL)
        return NULL;
    memcpy(path, directory, dir_len);
    if (slash)
        path[dir_len] = '/';
    memcpy(path + dir_len + slash, name, name_len + 1);
    return path;
}

/* The directory part of a path: "a/b.yaml" -> "a", "b.yaml" -> ".", "/b" -> "/". */
static char *config_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* An absolute path stays; a relative one is taken from the file's directory. */
char *config_resolve_beside(const char *file, const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char *directory = config_dirname(file);
    if (directory == NULL)
        return NULL;
    char *resolved = config_join_path(directory, path);
    free(directory);
    return resolved;
}

/* ---- typed values ---- */

/* A non-empty string scalar; returns NULL when unset or wrong (reported). */
const char *config_string(config_checker *chk, const yaml_tree_node *map, const char *name,
                          const char *dotted)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    if (config_is_null(node))
        return NULL;
    if (node->kind != YAML_TREE_SCALAR || node->value[0] == '\0') {
        config_report_type(chk, node, dotted, "a non-empty string");
        return NULL;
    }
    return node->value;
}

void config_duration(config_checker *chk, const yaml_tree_node *map, const char *name,
                     const char *dotted, int allow_zero, uint64_t *out)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    uint64_t ms;
    if (config_is_null(node))
        return;
    if (node->kind != YAML_TREE_SCALAR || units_parse_duration_ms(node->value, &ms) != 0) {
        config_report_type(chk, node, dotted, "a duration such as 250ms, 30s, 5m, 2h or 7d");
        return;
    }
    if (ms == 0 && !allow_zero) {
        config_report(chk, config_where_node(node), dotted, "must be greater than 0");
        return;
    }
    *out = ms;
}

void config_byte_size(config_checker *chk, const yaml_tree_node *map, const char *name,
                      const char *dotted, uint64_t *out)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    uint64_t bytes;
    if (config_is_null(node))
        return;
    if (node->kind != YAML_TREE_SCALAR || units_parse_size_bytes(node->value, &bytes) != 0) {
        config_report_type(chk, node, dotted, "a size such as 4096, 512KiB, 1MiB or 2GiB");
        return;
    }
    if (bytes == 0) {
        config_report(chk, config_where_node(node), dotted, "must be greater than 0");
        return;
    }
    *out = bytes;
}

/* ---- listen addresses ---- */

static int config_parse_port(const char *text, int *port)
{
    int value = 0;
    size_t digits = 0;
    for (; text[digits] != '\0'; digits++) {
        if (text[digits] < '0' || text[digits] > '9' || digits >= 5)
            return -1;
        value = value * 10 + (text[digits] - '0');
    }
    if (digits == 0 || value < 1 || value > 65535)
        return -1;
    *port = value;
    return 0;
}

int config_valid_hostname(const char *host, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        if (!ok)
            return 0;
    }
    return 1;
}

int config_split_listen(const char *address, char *host, size_t host_size, int *port)
{
    const char *host_start, *port_text;
    size_t host_len;
    if (address == NULL || host == NULL || port == NULL || host_size == 0)
        return -1;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host_start = address + 1;
        host_len = (size_t)(close - host_start);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
            return -1; /* no port, or an IPv6 address without brackets */
        host_start = address;
        host_len = (size_t)(colon - address);
        port_text = colon + 1;
        if (!config_valid_hostname(host_start, host_len))
            return -1;
    }
    if (host_len == 0 || host_len >= host_size || config_parse_port(port_text, port) != 0)
        return -1;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    if (address[0] == '[') {
        unsigned char binary[16];
        if (inet_pton(AF_INET6, host, binary) != 1)
            return -1;
    }
    return 0;
}

static int config_listen_item(config_checker *chk, const char *key, const yaml_tree_node *item,
                              size_t index, char **seen, size_t seen_count)
{
    char dotted[96], host[256];
    int port;
    snprintf(dotted, sizeof(dotted), "%s[%zu]", key, index);
    if (item->kind != YAML_TREE_SCALAR || config_is_null(item)) {
        config_report_type(chk, item, dotted, "a \"host:port\" string");
        return -1;
    }
    if (config_split_listen(item->value, host, sizeof(host), &port) != 0) {
        config_report(chk, config_where_node(item), dotted,
                      "'%.80s' is not host:port with a port from 1 to 65535 "
                      "(write IPv6 as [::1]:8080)",
                      item->value);
        return -1;
    }
    for (size_t i = 0; i < seen_count; i++) {
        if (strcmp(seen[i], item->value) == 0) {
            config_report(chk, config_where_node(item), dotted, "'%.80s' is listed twice",
                          item->value);
            return -1;
        }
    }
    return 0;
}

void config_free_strings(char **strings, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

static void config_listen(config_checker *chk, const yaml_tree_node *server)
{
    const yaml_tree_node *node = yaml_tree_map_get(server, "listen");
    if (config_is_null(node))
        return;
    if (node->kind != YAML_TREE_SEQUENCE) {
        config_report_type(chk, node, "server.listen", "a sequence of strings");
        return;
    }
    if (node->count == 0) {
        config_report(chk, config_where_node(node), "server.listen",
                      "at least one address is required");
        return;
    }
    char **addresses = calloc(node->count, sizeof(*addresses));
    size_t kept = 0;
    if (addresses == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < node->count; i++) {
        if (config_listen_item(chk, "server.listen", node->items[i], i, addresses, kept) != 0)
            continue;
        if ((addresses[kept] = strdup(node->items[i]->value)) == NULL) {
            config_report_oom(chk);
            break;
        }
        kept++;
    }
    config_free_strings(chk->cfg->listen, chk->cfg->listen_count);
    chk->cfg->listen = addresses;
    chk->cfg->listen_count = kept;
}

/* ---- sections ---- */

static void config_check_server_tls(config_checker *chk, const yaml_tree_node *server);

static void config_check_server(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *server = config_section(chk, root, "server", "server");
    config *cfg = chk->cfg;
    if (server == NULL)
        return;
    config_check_keys(chk, server, "server", config_server_keys);
    config_listen(chk, server);
    config_byte_size(chk, server, "max_body_size", "server.max_body_size",
                     &cfg->max_body_bytes);
    config_byte_size(chk, server, "max_header_size", "server.max_header_size",
                     &cfg->max_header_bytes);
    config_duration(chk, server, "request_timeout", "server.request_timeout", 0,
                    &cfg->request_timeout_ms);
    config_duration(chk, server, "drain_timeout", "server.drain_timeout", 1,
                    &cfg->drain_timeout_ms);
    config_check_server_tls(chk, server);
}

static void config_check_log(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *log = config_section(chk, root, "log", "log");
    if (log == NULL)
        return;
    config_check_keys(chk, log, "log", config_log_keys);
    const char *level = config_string(chk, log, "level", "log.level");
    if (level != NULL && log_level_parse(level, &chk->cfg->log_level) != 0)
        config_report(chk, config_where_node(yaml_tree_map_get(log, "level")), "log.level",
                      "expected one of error, warn, info, debug, got '%.60s'", level);
    const char *format = config_string(chk, log, "format", "log.format");
    if (format != NULL && log_format_parse(format, &chk->cfg->log_format) != 0)
        config_report(chk, config_where_node(yaml_tree_map_get(log, "format")), "log.format",
                      "expected one of kv, json, got '%.60s'", format);
}

static void config_check_state(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *state = config_section(chk, root, "state", "state");
    const char *database = CONFIG_DEFAULT_DATABASE;
    if (state != NULL) {
        config_check_keys(chk, state, "state", config_state_keys);
        const char *directory = config_string(chk, state, "directory", "state.directory");
        if (directory != NULL)
            config_set_string(chk, &chk->cfg->state_directory, directory);
        const char *file = config_string(chk, state, "database", "state.database");
        if (file != NULL)
            database = file;
    }
    char *path = database[0] == '/' ? strdup(database)
                                    : config_join_path(chk->cfg->state_directory, database);
    if (path == NULL) {
        config_report_oom(chk);
        return;
    }
    free(chk->cfg->database_path);
    chk->cfg->database_path = path;
}

/* audit.file: relative to state.directory unless absolute (after config_check_state). */
static void config_check_audit(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *audit = config_section(chk, root, "audit", "audit");
    const char *file = CONFIG_DEFAULT_AUDIT_FILE;
    if (audit != NULL) {
        config_check_keys(chk, audit, "audit", config_audit_keys);
        const char *given = config_string(chk, audit, "file", "audit.file");
        if (given != NULL)
            file = given;
    }
    char *path = file[0] == '/' ? strdup(file) : config_join_path(chk->cfg->state_directory, file);
    if (path == NULL) {
        config_report_oom(chk);
        return;
    }
    free(chk->cfg->audit_file);
    chk->cfg->audit_file = path;
}

static void config_check_plugin_directory(config_checker *chk, const yaml_tree_node *root)
{
    const char *directory = config_string(chk, root, "plugin_directory", "plugin_directory");
    if (directory == NULL)
        return;
    const yaml_tree_node *node = yaml_tree_map_get(root, "plugin_directory");
    char *resolved = config_resolve_beside(node->file, directory);
    if (resolved == NULL) {
        config_report_oom(chk);
        return;
    }
    free(chk->cfg->plugin_directory);
    chk->cfg->plugin_directory = resolved;
}

int config_valid_plugin_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CONFIG_PLUGIN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* path, enabled and options of one plugin entry (a mapping). */
static void config_plugin_settings(config_checker *chk, const yaml_tree_node *entry,
                                   const char *name, config_plugin *plugin)
{
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "plugins.%s", name);
    config_check_keys(chk, entry, dotted, config_plugin_keys);

    snprintf(dotted, sizeof(dotted), "plugins.%s.path", name);
    const char *path = config_string(chk, entry, "path", dotted);
    if (path != NULL) {
        char *resolved = config_resolve_beside(yaml_tree_map_get(entry, "path")->file, path);
        if (resolved == NULL)
            config_report_oom(chk);
        free(plugin->path);
        plugin->path = resolved;
    }

    const yaml_tree_node *enabled = yaml_tree_map_get(entry, "enabled");
    snprintf(dotted, sizeof(dotted), "plugins.%s.enabled", name);
    if (!config_is_null(enabled) && (enabled->kind != YAML_TREE_SCALAR ||
                                     units_parse_bool(enabled->value, &plugin->enabled) != 0))
        config_report_type(chk, enabled, dotted, "true or false");

    const yaml_tree_node *options = yaml_tree_map_get(entry, "options");
    snprintf(dotted, sizeof(dotted), "plugins.%s.options", name);
    if (!config_is_null(options) && options->kind != YAML_TREE_MAP)
        config_report_type(chk, options, dotted, "a mapping");
    else if (!config_is_null(options))
        plugin->options = options;
}

static void config_plugin_entry(config_checker *chk, const yaml_tree_node *plugins, size_t index)
{
    const char *name = plugins->keys[index];
    const yaml_tree_node *entry = plugins->items[index];
    config_where where = config_where_key(plugins, index);
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "plugins.%.80s", name);
    if (!config_valid_plugin_name(name)) {
        config_report(chk, where, dotted,
                      "plugin names are 1 to %d characters of a-z, 0-9 and '_'",
                      CONFIG_PLUGIN_NAME_MAX);
        return;
    }
    if (!config_is_null(entry) && entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping");
        return;
    }
    config_plugin *plugin = &chk->cfg->plugins[chk->cfg->plugin_count];
    *plugin = (config_plugin){.enabled = 1, .file = where.file, .line = where.line,
                              .column = where.column};
    plugin->name = strdup(name);
    char file_name[CONFIG_PLUGIN_NAME_MAX + 4];
    snprintf(file_name, sizeof(file_name), "%s.so", name);
    plugin->path = config_join_path(chk->cfg->plugin_directory, file_name);
    chk->cfg->plugin_count++;
    if (plugin->name == NULL || plugin->path == NULL) {
        config_report_oom(chk);
        return;
    }
    if (!config_is_null(entry))
        config_plugin_settings(chk, entry, name, plugin);
}

static void config_check_plugins(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *plugins = config_section(chk, root, "plugins", "plugins");
    if (plugins == NULL || plugins->count == 0)
        return;
    chk->cfg->plugins = calloc(plugins->count, sizeof(*chk->cfg->plugins));
    if (chk->cfg->plugins == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < plugins->count; i++)
        config_plugin_entry(chk, plugins, i);
}

static const config_plugin *config_find_plugin(const config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->plugin_count; i++)
        if (strcmp(cfg->plugins[i].name, name) == 0)
            return &cfg->plugins[i];
    return NULL;
}

static int config_chain_item(config_checker *chk, const yaml_tree_node *chain, size_t index)
{
    const yaml_tree_node *item = chain->items[index];
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "auth.chain[%zu]", index);
    if (item->kind != YAML_TREE_SCALAR || config_is_null(item)) {
        config_report_type(chk, item, dotted, "a plugin name");
        return -1;
    }
    const config_plugin *plugin = config_find_plugin(chk->cfg, item->value);
    if (plugin == NULL) {
        config_report(chk, config_where_node(item), dotted,
                      "'%.80s' is not a configured plugin (add it under plugins:)", item->value);
        return -1;
    }
    if (!plugin->enabled) {
        config_report(chk, config_where_node(item), dotted, "plugin '%s' is disabled",
                      plugin->name);
        return -1;
    }
    for (size_t i = 0; i < chk->cfg->auth_chain_count; i++) {
        if (strcmp(chk->cfg->auth_chain[i], item->value) == 0) {
            config_report(chk, config_where_node(item), dotted, "'%s' is listed twice",
                          item->value);
            return -1;
        }
    }
    return 0;
}

static void config_check_auth(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *auth = config_section(chk, root, "auth", "auth");
    if (auth == NULL)
        return;
    config_check_keys(chk, auth, "auth", config_auth_keys);
    const yaml_tree_node *chain = yaml_tree_map_get(auth, "chain");
    if (config_is_null(chain))
        return;
    if (chain->kind != YAML_TREE_SEQUENCE) {
        config_report_type(chk, chain, "auth.chain", "a sequence of plugin names");
        return;
    }
    if (chain->count == 0)
        return;
    chk->cfg->auth_chain = calloc(chain->count, sizeof(char *));
    if (chk->cfg->auth_chain == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < chain->count; i++) {
        if (config_chain_item(chk, chain, i) != 0)
            continue;
        char *name = strdup(chain->items[i]->value);
        if (name == NULL) {
            config_report_oom(chk);
            return;
        }
        chk->cfg->auth_chain[chk->cfg->auth_chain_count++] = name;
    }
}

/* ---- runner and spark_versions ---- */

/* A whole number from 1 to CONFIG_LIMIT_MAX. */
static void config_limit(config_checker *chk, const yaml_tree_node *map, const char *name,
                         const char *dotted, uint64_t *out)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    int64_t value;
    if (config_is_null(node))
        return;
    if (node->kind != YAML_TREE_SCALAR || units_parse_int64(node->value, &value) != 0 ||
        value < 1 || value > CONFIG_LIMIT_MAX) {
        char expected[64];
        snprintf(expected, sizeof(expected), "an integer from 1 to %d", CONFIG_LIMIT_MAX);
        config_report_type(chk, node, dotted, expected);
        return;
    }
    *out = (uint64_t)value;
}

static void config_check_runner(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *runner = config_section(chk, root, "runner", "runner");
    config *cfg = chk->cfg;
    if (runner == NULL)
        return;
    config_check_keys(chk, runner, "runner", config_runner_keys);
    const char *backend = config_string(chk, runner, "default_backend", "runner.default_backend");
    if (backend != NULL && !config_valid_plugin_name(backend))
        config_report(chk, config_where_node(yaml_tree_map_get(runner, "default_backend")),
                      "runner.default_backend",
                      "backend names are 1 to %d characters of a-z, 0-9 and '_', got '%.60s'",
                      CONFIG_PLUGIN_NAME_MAX, backend);
    else if (backend != NULL)
        config_set_string(chk, &cfg->runner_default_backend, backend);
    config_duration(chk, runner, "reconcile_interval", "runner.reconcile_interval", 0,
                    &cfg->reconcile_interval_ms);
    config_limit(chk, runner, "max_starting_per_backend", "runner.max_starting_per_backend",
                 &cfg->max_starting_per_backend);
    config_limit(chk, runner, "max_running_per_backend", "runner.max_running_per_backend",
                 &cfg->max_running_per_backend);
    config_limit(chk, runner, "max_running_per_team", "runner.max_running_per_team",
                 &cfg->max_running_per_team);
    config_duration(chk, runner, "idempotency_ttl", "runner.idempotency_ttl", 0,
                    &cfg->idempotency_ttl_ms);
}

/* "3.5", "4.0.1": [0-9]+(\.[0-9]+)*, at most 32 characters. */
int config_valid_spark_version(const char *text)
{
    size_t len = strlen(text), digits = 0;
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (text[i] >= '0' && text[i] <= '9')
            digits++;
        else if ((text[i] == '.' || text[i] == '\0') && digits > 0)
            digits = 0;
        else
            return 0;
    }
    return 1;
}

/* spark_home and image of one version; 0 when the entry is usable. */
static int config_spark_version_settings(config_checker *chk, const yaml_tree_node *entry,
                                         const char *dotted, config_spark_version *version)
{
    char key[160];
    size_t problems_before = chk->problems->count;
    config_check_keys(chk, entry, dotted, config_spark_version_keys);
    config_dotted(key, sizeof(key), dotted, "spark_home");
    const char *home = config_string(chk, entry, "spark_home", key);
    if (home != NULL && home[0] != '/')
        config_report(chk, config_where_node(yaml_tree_map_get(entry, "spark_home")), key,
                      "must be an absolute path, got '%.80s'", home);
    else if (home != NULL)
        config_set_string(chk, &version->spark_home, home);
    config_dotted(key, sizeof(key), dotted, "image");
    const char *image = config_string(chk, entry, "image", key);
    if (image != NULL)
        config_set_string(chk, &version->image, image);
    if (chk->problems->count != problems_before)
        return -1;
    if (home == NULL && image == NULL) {
        config_report(chk, config_where_node(entry), dotted,
                      "set spark_home (local backend), image (container backends) or both");
        return -1;
    }
    return 0;
}

static void config_spark_version_entry(config_checker *chk, const yaml_tree_node *versions,
                                       size_t index)
{
    const char *name = versions->keys[index];
    const yaml_tree_node *entry = versions->items[index];
    config *cfg = chk->cfg;
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "spark_versions.%.80s", name);
    if (!config_valid_spark_version(name)) {
        config_report(chk, config_where_key(versions, index), dotted,
                      "spark versions look like 3.5 or 4.0.1 ([0-9]+(.[0-9]+)*), got '%.40s'",
                      name);
        return;
    }
    if (config_is_null(entry) || entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping with spark_home and/or image");
        return;
    }
    config_spark_version *version = &cfg->spark_versions[cfg->spark_version_count];
    *version = (config_spark_version){.version = strdup(name)};
    cfg->spark_version_count++;
    if (version->version == NULL)
        config_report_oom(chk);
    else
        config_spark_version_settings(chk, entry, dotted, version);
}

static void config_check_spark_versions(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *versions =
        config_section(chk, root, "spark_versions", "spark_versions");
    if (versions == NULL || versions->count == 0)
        return;
    chk->cfg->spark_versions = calloc(versions->count, sizeof(*chk->cfg->spark_versions));
    if (chk->cfg->spark_versions == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < versions->count; i++)
        config_spark_version_entry(chk, versions, i);
}

const config_spark_version *config_find_spark_version(const config *cfg, const char *version)
{
    if (cfg == NULL || version == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->spark_version_count; i++)
        if (strcmp(cfg->spark_versions[i].version, version) == 0)
            return &cfg->spark_versions[i];
    return NULL;
}

/* ---- gateway and clusters ---- */

#define CONFIG_GRPC_MESSAGE_MAX UINT64_C(0xffffffff) /* a gRPC length prefix is 32 bits */

/* A sequence of "host:port" strings into *out (replacing it); -1 when wrong. */
static int config_addresses(config_checker *chk, const yaml_tree_node *node, const char *key,
                            char ***out, size_t *count)
{
    int rc = 0;
    size_t kept = 0;
    if (node->kind != YAML_TREE_SEQUENCE) {
        config_report_type(chk, node, key, "a sequence of \"host:port\" strings");
        return -1;
    }
    char **addresses = calloc(node->count ? node->count : 1, sizeof(*addresses));
    if (addresses == NULL) {
        config_report_oom(chk);
        return -1;
    }
    for (size_t i = 0; i < node->count; i++) {
        if (config_listen_item(chk, key, node->items[i], i, addresses, kept) != 0) {
            rc = -1;
            continue;
        }
        if ((addresses[kept] = strdup(node->items[i]->value)) == NULL) {
            config_report_oom(chk);
            rc = -1;
            break;
        }
        kept++;
    }
    config_free_strings(*out, *count);
    *out = addresses;
    *count = kept;
    return rc;
}

/* [a-z0-9-]{1,63} (with_hyphen) or [a-z0-9]{1,63}: names that appear in host names. */
int config_valid_label(const char *text, int with_hyphen)
{
    size_t len = strlen(text);
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && with_hyphen)))
            return 0;
    }
    return 1;
}

/* A label-like name at map[key] into *field; -1 when wrong, 0 when set or unset. */
static int config_label(config_checker *chk, const yaml_tree_node *map, const char *section,
                        const char *key, int with_hyphen, char **field)
{
    char dotted[128];
    config_dotted(dotted, sizeof(dotted), section, key);
    const char *text = config_string(chk, map, key, dotted);
    if (text == NULL)
        return config_is_null(yaml_tree_map_get(map, key)) ? 0 : -1;
    if (!config_valid_label(text, with_hyphen)) {
        config_report(chk, config_where_node(yaml_tree_map_get(map, key)), dotted,
                      "expected %s, got '%.80s'",
                      with_hyphen ? "[a-z0-9-]{1,63}" : "[a-z0-9]{1,63} (no '-')", text);
        return -1;
    }
    return config_set_string(chk, field, text);
}

/* A DNS name such as example.team: no '_', no leading or trailing dot. */
int config_valid_domain(const char *domain)
{
    size_t len = strlen(domain);
    return len <= GATEWAY_PATTERN_MAX && config_valid_hostname(domain, len) &&
           domain[0] != '.' && domain[len - 1] != '.' && strchr(domain, '_') == NULL;
}

static void config_gateway_domain(config_checker *chk, const yaml_tree_node *gateway)
{
    const char *domain = config_string(chk, gateway, "domain", "gateway.domain");
    if (domain == NULL)
        return;
    if (!config_valid_domain(domain)) {
        config_report(chk, config_where_node(yaml_tree_map_get(gateway, "domain")),
                      "gateway.domain", "expected a DNS name such as example.team, got '%.80s'",
                      domain);
        return;
    }
    if (config_set_string(chk, &chk->cfg->gateway_domain, domain) != 0)
        return;
    for (char *c = chk->cfg->gateway_domain; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
}

static void config_gateway_patterns(config_checker *chk, const yaml_tree_node *gateway)
{
    const yaml_tree_node *node = yaml_tree_map_get(gateway, "authority_patterns");
    config *cfg = chk->cfg;
    size_t kept = 0;
    if (config_is_null(node))
        return;
    if (node->kind != YAML_TREE_SEQUENCE) {
        config_report_type(chk, node, "gateway.authority_patterns",
                           "a sequence of patterns such as \"{team}-{env}.{domain}\"");
        return;
    }
    char **patterns = calloc(node->count ? node->count : 1, sizeof(*patterns));
    if (patterns == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < node->count; i++) {
        const yaml_tree_node *item = node->items[i];
        char dotted[64], err[CONFIG_ERROR_SIZE];
        gateway_pattern compiled;
        snprintf(dotted, sizeof(dotted), "gateway.authority_patterns[%zu]", i);
        if (item->kind != YAML_TREE_SCALAR || config_is_null(item))
            config_report_type(chk, item, dotted, "a pattern string");
        else if (gateway_pattern_compile(item->value, &compiled, err, sizeof(err)) != 0)
            config_report(chk, config_where_node(item), dotted, "%s", err);
        else if ((patterns[kept] = strdup(item->value)) == NULL)
            config_report_oom(chk);
        else
            kept++;
    }
    config_free_strings(cfg->gateway_authority_patterns, cfg->gateway_authority_pattern_count);
    cfg->gateway_authority_patterns = patterns;
    cfg->gateway_authority_pattern_count = kept;
}

/* A gateway that listens needs gateway.domain when a pattern uses {domain}. */
static void config_gateway_needs_domain(config_checker *chk, const yaml_tree_node *gateway)
{
    const config *cfg = chk->cfg;
    if ((cfg->gateway_listen_count == 0 && cfg->gateway_tls_listen_count == 0) ||
        cfg->gateway_domain != NULL)
        return;
    for (size_t i = 0; i < cfg->gateway_authority_pattern_count; i++) {
        if (strstr(cfg->gateway_authority_patterns[i], "{domain}") == NULL)
            continue;
        config_report(chk, config_where_node(gateway), "gateway.domain",
                      "required: %s is set and authority pattern '%.80s' uses {domain}",
                      cfg->gateway_listen_count ? "gateway.listen" : "gateway.tls.listen",
                      cfg->gateway_authority_patterns[i]);
        return;
    }
}

static void config_gateway_policy(config_checker *chk, const yaml_tree_node *gateway)
{
    const char *policy = config_string(chk, gateway, "user_id_policy", "gateway.user_id_policy");
    if (policy == NULL)
        return;
    if (strcmp(policy, "replace") == 0)
        chk->cfg->gateway_user_id_policy = CONFIG_USER_ID_REPLACE;
    else if (strcmp(policy, "deny") == 0)
        chk->cfg->gateway_user_id_policy = CONFIG_USER_ID_DENY;
    else
        config_report(chk, config_where_node(yaml_tree_map_get(gateway, "user_id_policy")),
                      "gateway.user_id_policy", "expected one of replace, deny, got '%.60s'",
                      policy);
}

/* <section>.tls.certificate or .key: a path resolved beside its file. */
static void config_tls_path(config_checker *chk, const yaml_tree_node *tls, const char *section,
                            const char *name, char **field)
{
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "%s.tls.%s", section, name);
    const char *path = config_string(chk, tls, name, dotted);
    if (path == NULL)
        return;
    char *resolved = config_resolve_beside(yaml_tree_map_get(tls, name)->file, path);
    if (resolved == NULL) {
        config_report_oom(chk);
        return;
    }
    free(*field);
    *field = resolved;
}

/* One port speaks one protocol: a TLS address may not be in <section>.listen too. */
static void config_tls_overlap(config_checker *chk, const yaml_tree_node *listen,
                               const char *section, char *const *plain, size_t plain_count)
{
    for (size_t i = 0; i < listen->count; i++) {
        const yaml_tree_node *item = listen->items[i];
        for (size_t j = 0; j < plain_count; j++) {
            if (strcmp(item->value, plain[j]) != 0)
                continue;
            char dotted[64];
            snprintf(dotted, sizeof(dotted), "%s.tls.listen[%zu]", section, i);
            config_report(chk, config_where_node(item), dotted,
                          "'%.80s' is in %s.listen too: a port serves %s or TLS, not both",
                          item->value, section, strcmp(section, "gateway") == 0 ? "h2c" : "HTTP");
        }
    }
}

/* What --check-config promises: the certificate and key make a working TLS context. */
static void config_tls_files(config_checker *chk, const yaml_tree_node *tls, const char *section,
                             const char *certificate, const char *key)
{
    char message[CONFIG_ERROR_SIZE], dotted[64];
    tls_server_fault fault;
    tls_server_settings settings = {
        .certificate_path = certificate, .key_path = key, .session_context = "check"};
    SSL_CTX *context = tls_server_context_new(&settings, &fault, message, sizeof(message));
    if (context != NULL) {
        tls_server_context_free(context);
        return;
    }
    const char *name = fault == TLS_SERVER_FAULT_KEY ? "key" : "certificate";
    snprintf(dotted, sizeof(dotted), "%s.tls.%s", section, name);
    config_report(chk, config_where_node(yaml_tree_map_get(tls, name)), dotted, "%s", message);
}

/* <section>.tls.client_certificates: none | request. */
static void config_tls_client_certificates(config_checker *chk, const yaml_tree_node *tls,
                                           const char *section, config_client_certificates *out)
{
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "%s.tls.client_certificates", section);
    const char *mode = config_string(chk, tls, "client_certificates", dotted);
    if (mode == NULL || strcmp(mode, "none") == 0)
        *out = CONFIG_CLIENT_CERTIFICATES_NONE;
    else if (strcmp(mode, "request") == 0)
        *out = CONFIG_CLIENT_CERTIFICATES_REQUEST;
    else
        config_report(chk, config_where_node(yaml_tree_map_get(tls, "client_certificates")),
                      dotted, "expected one of none, request, got '%.60s'", mode);
}

/* The parts of server.tls and gateway.tls that look alike; where the values go. */
typedef struct config_tls_fields {
    const char *section;            /* "server" or "gateway" */
    char *const *plain;             /* <section>.listen, already checked */
    size_t plain_count;
    char ***listen;
    size_t *listen_count;
    char **certificate;
    char **key;
    config_client_certificates *client_certificates;
} config_tls_fields;

static void config_check_tls(config_checker *chk, const yaml_tree_node *parent,
                             const config_tls_fields *fields)
{
    static const char *const files[] = {"certificate", "key"};
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "%s.tls", fields->section);
    const yaml_tree_node *tls = config_section(chk, parent, "tls", dotted);
    if (tls == NULL)
        return;
    config_check_keys(chk, tls, dotted, config_tls_keys);
    const yaml_tree_node *listen = yaml_tree_map_get(tls, "listen");
    snprintf(dotted, sizeof(dotted), "%s.tls.listen", fields->section);
    if (!config_is_null(listen) &&
        config_addresses(chk, listen, dotted, fields->listen, fields->listen_count) == 0)
        config_tls_overlap(chk, listen, fields->section, fields->plain, fields->plain_count);
    config_tls_path(chk, tls, fields->section, "certificate", fields->certificate);
    config_tls_path(chk, tls, fields->section, "key", fields->key);
    config_tls_client_certificates(chk, tls, fields->section, fields->client_certificates);
    if (*fields->listen_count == 0)
        return;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (!config_is_null(yaml_tree_map_get(tls, files[i])))
            continue;
        snprintf(dotted, sizeof(dotted), "%s.tls.%s", fields->section, files[i]);
        config_report(chk, config_where_node(tls), dotted, "required: %s.tls.listen is set",
                      fields->section);
    }
    if (*fields->certificate != NULL && *fields->key != NULL)
        config_tls_files(chk, tls, fields->section, *fields->certificate, *fields->key);
}

static void config_check_server_tls(config_checker *chk, const yaml_tree_node *server)
{
    config *cfg = chk->cfg;
    config_tls_fields fields = {
        .section = "server",
        .plain = cfg->listen,
        .plain_count = cfg->listen_count,
        .listen = &cfg->tls_listen,
        .listen_count = &cfg->tls_listen_count,
        .certificate = &cfg->tls_certificate,
        .key = &cfg->tls_key,
        .client_certificates = &cfg->tls_client_certificates,
    };
    config_check_tls(chk, server, &fields);
}

static void config_check_gateway_tls(config_checker *chk, const yaml_tree_node *gateway)
{
    config *cfg = chk->cfg;
    config_tls_fields fields = {
        .section = "gateway",
        .plain = cfg->gateway_listen,
        .plain_count = cfg->gateway_listen_count,
        .listen = &cfg->gateway_tls_listen,
        .listen_count = &cfg->gateway_tls_listen_count,
        .certificate = &cfg->gateway_tls_certificate,
        .key = &cfg->gateway_tls_key,
        .client_certificates = &cfg->gateway_tls_client_certificates,
    };
    config_check_tls(chk, gateway, &fields);
}

static void config_check_gateway(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *gateway = config_section(chk, root, "gateway", "gateway");
    config *cfg = chk->cfg;
    if (gateway == NULL)
        return;
    config_check_keys(chk, gateway, "gateway", config_gateway_keys);
    const yaml_tree_node *listen = yaml_tree_map_get(gateway, "listen");
    if (!config_is_null(listen))
        config_addresses(chk, listen, "gateway.listen", &cfg->gateway_listen,
                         &cfg->gateway_listen_count);
    config_gateway_patterns(chk, gateway);
    config_gateway_domain(chk, gateway);
    config_label(chk, gateway, "gateway", "default_region", 1, &cfg->gateway_default_region);
    config_gateway_policy(chk, gateway);
    config_limit(chk, gateway, "max_concurrent_streams", "gateway.max_concurrent_streams",
                 &cfg->gateway_max_concurrent_streams);
    config_duration(chk, gateway, "idle_timeout", "gateway.idle_timeout", 1,
                    &cfg->gateway_idle_timeout_ms);
    config_duration(chk, gateway, "header_timeout", "gateway.header_timeout", 1,
                    &cfg->gateway_header_timeout_ms);
    config_duration(chk, gateway, "session_timeout", "gateway.session_timeout", 0,
                    &cfg->gateway_session_timeout_ms);
    uint64_t message_bytes = 0;
    config_byte_size(chk, gateway, "max_message_size", "gateway.max_message_size",
                     &message_bytes);
    if (message_bytes > CONFIG_GRPC_MESSAGE_MAX)
        config_report(chk, config_where_node(yaml_tree_map_get(gateway, "max_message_size")),
                      "gateway.max_message_size",
                      "at most 4294967295 bytes (a gRPC message length is 32 bits)");
    else if (message_bytes > 0)
        cfg->gateway_max_message_bytes = message_bytes;
    config_check_gateway_tls(chk, gateway);
    config_gateway_needs_domain(chk, gateway);
}

/* token or token_file (resolved beside its file), not both. */
static void config_cluster_token(config_checker *chk, const yaml_tree_node *entry,
                                 const char *dotted, config_cluster *cluster)
{
    char key[96];
    config_dotted(key, sizeof(key), dotted, "token");
    const char *token = config_string(chk, entry, "token", key);
    config_dotted(key, sizeof(key), dotted, "token_file");
    const char *file = config_string(chk, entry, "token_file", key);
    if (token != NULL && file != NULL) {
        config_report(chk, config_where_node(yaml_tree_map_get(entry, "token_file")), key,
                      "set token or token_file, not both");
        return;
    }
    if (token != NULL)
        config_set_string(chk, &cluster->token, token);
    if (file == NULL)
        return;
    cluster->token_file = config_resolve_beside(yaml_tree_map_get(entry, "token_file")->file, file);
    if (cluster->token_file == NULL)
        config_report_oom(chk);
}

/* A cluster whose id or placement an earlier cluster already has. */
static void config_cluster_unique(config_checker *chk, const yaml_tree_node *entry,
                                  const char *dotted, const config_cluster *cluster)
{
    const config *cfg = chk->cfg;
    for (size_t i = 0; i + 1 < cfg->cluster_count; i++) {
        const config_cluster *other = &cfg->clusters[i];
        if (other->id == NULL || other->team == NULL || other->environment == NULL ||
            other->region == NULL)
            continue;
        if (strcmp(other->id, cluster->id) == 0) {
            config_report(chk, config_where_node(yaml_tree_map_get(entry, "id")), dotted,
                          "id '%s' is the cluster at %s:%d already", cluster->id, other->file,
                          other->line);
            return;
        }
        if (strcmp(other->team, cluster->team) == 0 &&
            strcmp(other->environment, cluster->environment) == 0 &&
            strcmp(other->region, cluster->region) == 0) {
            config_report(chk, config_where_node(entry), dotted,
                          "team %s, environment %s, region %s is cluster '%s' already",
                          cluster->team, cluster->environment, cluster->region, other->id);
            return;
        }
    }
}

static void config_cluster_settings(config_checker *chk, const yaml_tree_node *entry,
                                    const char *dotted, config_cluster *cluster)
{
    static const char *const required[] = {"id", "team", "environment", "endpoints"};
    char key[96];
    size_t problems_before = chk->problems->count;
    config_check_keys(chk, entry, dotted, config_cluster_keys);
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!config_is_null(yaml_tree_map_get(entry, required[i])))
            continue;
        config_dotted(key, sizeof(key), dotted, required[i]);
        config_report(chk, config_where_node(entry), key, "required");
    }
    config_label(chk, entry, dotted, "id", 1, &cluster->id);
    config_label(chk, entry, dotted, "team", 1, &cluster->team);
    config_label(chk, entry, dotted, "environment", 0, &cluster->environment);
    config_label(chk, entry, dotted, "region", 1, &cluster->region);
    if (cluster->region == NULL)
        config_set_string(chk, &cluster->region, chk->cfg->gateway_default_region);
    const yaml_tree_node *endpoints = yaml_tree_map_get(entry, "endpoints");
    config_dotted(key, sizeof(key), dotted, "endpoints");
    if (!config_is_null(endpoints) &&
        config_addresses(chk, endpoints, key, &cluster->endpoints, &cluster->endpoint_count) ==
            0 &&
        cluster->endpoint_count == 0)
        config_report(chk, config_where_node(endpoints), key, "at least one endpoint is required");
    config_cluster_token(chk, entry, dotted, cluster);
    if (chk->problems->count == problems_before)
        config_cluster_unique(chk, entry, dotted, cluster);
}

static void config_check_clusters(config_checker *chk, const yaml_tree_node *root)
{
    const yaml_tree_node *clusters = yaml_tree_map_get(root, "clusters");
    config *cfg = chk->cfg;
    if (config_is_null(clusters))
        return;
    if (clusters->kind != YAML_TREE_SEQUENCE) {
        config_report_type(chk, clusters, "clusters", "a sequence of clusters");
        return;
    }
    if (clusters->count == 0)
        return;
    cfg->clusters = calloc(clusters->count, sizeof(*cfg->clusters));
    if (cfg->clusters == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < clusters->count; i++) {
        const yaml_tree_node *entry = clusters->items[i];
        char dotted[64];
        snprintf(dotted, sizeof(dotted), "clusters[%zu]", i);
        if (config_is_null(entry) || entry->kind != YAML_TREE_MAP) {
            config_report_type(chk, entry, dotted,
                               "a mapping with id, team, environment and endpoints");
            continue;
        }
        config_cluster *cluster = &cfg->clusters[cfg->cluster_count++];
        *cluster = (config_cluster){.file = entry->file, .line = entry->line,
                                    .column = entry->column};
        config_cluster_settings(chk, entry, dotted, cluster);
    }
}

static void config_free_clusters(config *cfg)
{
    for (size_t i = 0; i < cfg->cluster_count; i++) {
        config_cluster *cluster = &cfg->clusters[i];
        free(cluster->id);
        free(cluster->team);
        free(cluster->environment);
        free(cluster->region);
        config_free_strings(cluster->endpoints, cluster->endpoint_count);
        free(cluster->token);
        free(cluster->token_file);
    }
    free(cfg->clusters);
}

/* ---- assembling ---- */

/* The gateway is off (no listen address) until configured. */
static int config_set_gateway_defaults(config *cfg)
{
    static const char *const patterns[] = {"{team}-{env}.{domain}",
                                           "{team}-{env}-{region}.{domain}"};
    size_t count = sizeof(patterns) / sizeof(patterns[0]);
    cfg->gateway_authority_patterns = calloc(count, sizeof(char *));
    if (cfg->gateway_authority_patterns == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if ((cfg->gateway_authority_patterns[i] = strdup(patterns[i])) == NULL)
            return -1;
        cfg->gateway_authority_pattern_count++;
    }
    cfg->gateway_default_region = strdup("local");
    cfg->gateway_user_id_policy = CONFIG_USER_ID_REPLACE;
    cfg->gateway_max_concurrent_streams = 100;
    cfg->gateway_idle_timeout_ms = UINT64_C(10) * 60u * 1000u;
    cfg->gateway_header_timeout_ms = UINT64_C(10) * 1000u;
    cfg->gateway_session_timeout_ms = UINT64_C(60) * 60u * 1000u;
    cfg->gateway_max_message_bytes = UINT64_C(128) * 1024u * 1024u;
    return cfg->gateway_default_region != NULL ? 0 : -1;
}

static int config_set_defaults(config *cfg, const char *plugin_directory_default)
{
    cfg->listen = calloc(1, sizeof(char *));
    if (cfg->listen == NULL || (cfg->listen[0] = strdup(CONFIG_DEFAULT_LISTEN)) == NULL)
        return -1;
    cfg->listen_count = 1;
    cfg->max_body_bytes = 1024u * 1024u;
    cfg->max_header_bytes = 16u * 1024u;
    cfg->request_timeout_ms = 30u * 1000u;
    cfg->drain_timeout_ms = 10u * 1000u;
    cfg->log_level = SP_LOG_INFO;
    cfg->log_format = LOG_FORMAT_KV;
    cfg->state_directory = strdup(CONFIG_DEFAULT_STATE_DIRECTORY);
    cfg->plugin_directory =
        strdup(plugin_directory_default != NULL ? plugin_directory_default : PLUGINDIR);
    cfg->runner_default_backend = strdup("local");
    cfg->reconcile_interval_ms = 2u * 1000u;
    cfg->max_starting_per_backend = 4;
    cfg->max_running_per_backend = 16;
    cfg->max_running_per_team = 8;
    cfg->idempotency_ttl_ms = UINT64_C(24) * 3600u * 1000u;
    if (config_set_gateway_defaults(cfg) != 0)
        return -1;
    return cfg->state_directory != NULL && cfg->plugin_directory != NULL &&
                   cfg->runner_default_backend != NULL
               ? 0
               : -1;
}

static void config_check_root(config_checker *chk, const yaml_tree_node *root)
{
    if (root->kind != YAML_TREE_MAP) {
        char text[80];
        diag_add_at(chk->problems, root->file, root->line, root->column,
                    "top level: expected a mapping, got %s",
                    config_describe(root, text, sizeof(text)));
        return;
    }
    config_check_keys(chk, root, NULL, config_top_keys);
    config_check_server(chk, root);
    config_check_log(chk, root);
    config_check_state(chk, root);
    config_check_audit(chk, root);
    config_check_plugin_directory(chk, root); /* before plugins: their default paths */
    config_check_plugins(chk, root);
    config_check_auth(chk, root);
    config_check_runner(chk, root);
    config_check_spark_versions(chk, root);
    config_check_gateway(chk, root); /* before clusters: gateway.default_region */
    config_check_clusters(chk, root);
    config_check_provisioning(chk, root); /* after gateway: domain and region defaults */
}

/* Takes `root`; builds and checks the config; -1 when any problem was added. */
static int config_build(const char *source, yaml_tree_node *root, const char *plugin_directory,
                        config **out, diag_list *problems, size_t problems_before)
{
    config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        yaml_tree_free(root);
        diag_add(problems, "%s: out of memory while reading the configuration", source);
        return -1;
    }
    cfg->root = root;
    config_checker chk = {.cfg = cfg, .problems = problems};
    cfg->source_path = strdup(source);
    if (cfg->source_path == NULL || config_set_defaults(cfg, plugin_directory) != 0)
        config_report_oom(&chk);
    else if (root != NULL)
        config_check_root(&chk, root);
    if (root == NULL || problems->count > problems_before) {
        config_free(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

static int config_compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int config_is_dropin_name(const char *name)
{
    size_t len = strlen(name);
    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".yaml") == 0;
}

/* The *.yaml names in `directory`, sorted; *names NULL when there is none. */
static int config_list_dropins(const char *directory, char ***names, size_t *count,
                               diag_list *problems)
{
    *names = NULL;
    *count = 0;
    DIR *dir = opendir(directory);
    if (dir == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        diag_add(problems, "%s: cannot read: %s", directory, strerror(errno));
        return -1;
    }
    size_t capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!config_is_dropin_name(entry->d_name))
            continue;
        if (*count == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            char **grown = realloc(*names, capacity * sizeof(*grown));
            if (grown == NULL)
                goto fail;
            *names = grown;
        }
        if (((*names)[*count] = strdup(entry->d_name)) == NULL)
            goto fail;
        (*count)++;
    }
    closedir(dir);
    if (*count > 1)
        qsort(*names, *count, sizeof(**names), config_compare_names);
    return 0;
fail:
    closedir(dir);
    diag_add(problems, "%s: out of memory while listing drop-ins", directory);
    return -1;
}

/* Parses and merges each drop-in; `root` may be NULL (main file broken). */
static void config_merge_dropins(const char *path, yaml_tree_node *root, diag_list *problems)
{
    char *base = config_dirname(path);
    char *directory = base ? config_join_path(base, "conf.d") : NULL;
    char **names = NULL;
    size_t count = 0;
    char err[CONFIG_ERROR_SIZE];
    if (directory == NULL) {
        diag_add(problems, "%s: out of memory while reading drop-ins", path);
        goto done;
    }
    config_list_dropins(directory, &names, &count, problems);
    for (size_t i = 0; i < count; i++) {
        char *file = config_join_path(directory, names[i]);
        yaml_tree_node *overlay = NULL;
        if (file == NULL)
            diag_add(problems, "%s: out of memory while reading drop-ins", path);
        else if (yaml_tree_parse_file(file, &overlay, err, sizeof(err)) != 0)
            diag_add(problems, "%s", err);
        else if (root == NULL)
            yaml_tree_free(overlay);
        else if (yaml_tree_merge(root, overlay, err, sizeof(err)) != 0)
            diag_add(problems, "%s", err);
        free(file);
    }
done:
    config_free_strings(names, count);
    free(directory);
    free(base);
}

int config_load(const char *path, const char *plugin_directory_default, config **out,
                diag_list *problems)
{
    char err[CONFIG_ERROR_SIZE];
    yaml_tree_node *root = NULL;
    size_t before = problems->count;
    *out = NULL;
    if (yaml_tree_parse_file(path, &root, err, sizeof(err)) != 0)
        diag_add(problems, "%s", err);
    if (root != NULL && root->kind != YAML_TREE_MAP) {
        /* Report it now: a merge into a non-mapping would only repeat it. */
        config_build(path, root, plugin_directory_default, out, problems, before);
        return -1;
    }
    config_merge_dropins(path, root, problems);
    return config_build(path, root, plugin_directory_default, out, problems, before);
}

int config_load_buffer(const char *name, const char *data, size_t len,
                       const char *plugin_directory_default, config **out, diag_list *problems)
{
    char err[CONFIG_ERROR_SIZE];
    yaml_tree_node *root = NULL;
    size_t before = problems->count;
    *out = NULL;
    if (yaml_tree_parse_buffer(name, data, len, &root, err, sizeof(err)) != 0)
        diag_add(problems, "%s", err);
    return config_build(name, root, plugin_directory_default, out, problems, before);
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    config_free_strings(cfg->listen, cfg->listen_count);
    free(cfg->state_directory);
    free(cfg->database_path);
    free(cfg->audit_file);
    free(cfg->plugin_directory);
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
    }
    free(cfg->plugins);
    config_free_strings(cfg->auth_chain, cfg->auth_chain_count);
    free(cfg->runner_default_backend);
    for (size_t i = 0; i < cfg->spark_version_count; i++) {
        free(cfg->spark_versions[i].version);
        free(cfg->spark_versions[i].spark_home);
        free(cfg->spark_versions[i].image);
    }
    free(cfg->spark_versions);
    config_free_strings(cfg->gateway_listen, cfg->gateway_listen_count);
    config_free_strings(cfg->gateway_tls_listen, cfg->gateway_tls_listen_count);
    config_free_strings(cfg->tls_listen, cfg->tls_listen_count);
    free(cfg->tls_certificate);
    free(cfg->tls_key);
    free(cfg->gateway_tls_certificate);
    free(cfg->gateway_tls_key);
    config_free_strings(cfg->gateway_authority_patterns, cfg->gateway_authority_pattern_count);
    free(cfg->gateway_domain);
    free(cfg->gateway_default_region);
    config_free_clusters(cfg);
    config_free_provisioning(&cfg->provisioning);
    free(cfg->source_path);
    yaml_tree_free(cfg->root);
    free(cfg);
}
