/*
 * cli_settings.c - the config file and the precedence flags > env > file.
 *
 * The config file is parsed by the core's yaml_tree, so it gets the same
 * hostile-input limits and "file:line:column" messages as the daemon's
 * config.  It is deliberately tiny: two string keys; an unknown key is an
 * error rather than silently ignored, because a misspelt "sever:" would
 * otherwise send the token to the default server.
 */
#include "cli_settings.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "yaml_tree.h"

static int settings_fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int settings_fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && err_size > 0)
        vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

int cli_config_path(const char *env_config, const char *env_xdg_config_home,
                    const char *env_home, char *out, size_t out_size, int *must_exist)
{
    int written;
    *must_exist = 0;
    if (env_config != NULL && env_config[0] != '\0') {
        *must_exist = 1;
        written = snprintf(out, out_size, "%s", env_config);
    } else if (env_xdg_config_home != NULL && env_xdg_config_home[0] == '/') {
        /* The XDG spec says a relative XDG_CONFIG_HOME is invalid and ignored. */
        written = snprintf(out, out_size, "%s/sparkplane/config.yaml", env_xdg_config_home);
    } else if (env_home != NULL && env_home[0] != '\0') {
        written = snprintf(out, out_size, "%s/.config/sparkplane/config.yaml", env_home);
    } else {
        return -1;
    }
    return written < 0 || (size_t)written >= out_size ? -1 : 0;
}

void cli_config_clear(cli_config_file *config)
{
    free(config->server);
    free(config->token);
    config->server = NULL;
    config->token = NULL;
}

static int config_take_string(const yaml_tree_node *map, size_t i, char **slot, char *err,
                              size_t err_size)
{
    const yaml_tree_node *value = map->items[i];
    if (value->kind != YAML_TREE_SCALAR)
        return settings_fail(err, err_size, "%s:%d:%d: %s must be a string, not a %s",
                             value->file, value->line, value->column, map->keys[i],
                             yaml_tree_kind_name(value->kind));
    free(*slot);
    *slot = NULL;
    /* "server:" alone (or ~ / null) means "not set here", like an absent key. */
    if (value->plain && (value->value[0] == '\0' || strcmp(value->value, "~") == 0 ||
                         strcasecmp(value->value, "null") == 0))
        return 0;
    *slot = strdup(value->value);
    return *slot == NULL ? settings_fail(err, err_size, "out of memory") : 0;
}

static int config_take_root(const yaml_tree_node *root, cli_config_file *out, char *err,
                            size_t err_size)
{
    if (root->kind != YAML_TREE_MAP)
        return settings_fail(err, err_size, "%s:%d:%d: the config must be a mapping with keys "
                             "server and token, not a %s", root->file, root->line, root->column,
                             yaml_tree_kind_name(root->kind));
    for (size_t i = 0; i < root->count; i++) {
        const char *key = root->keys[i];
        int rc;
        if (strcmp(key, "server") == 0)
            rc = config_take_string(root, i, &out->server, err, err_size);
        else if (strcmp(key, "token") == 0)
            rc = config_take_string(root, i, &out->token, err, err_size);
        else
            rc = settings_fail(err, err_size, "%s:%d:%d: unknown key '%s' (known: server, token)",
                               root->file, root->key_lines[i], root->key_columns[i], key);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int cli_config_load_buffer(const char *name, const char *data, size_t len, cli_config_file *out,
                           char *err, size_t err_size)
{
    yaml_tree_node *root = NULL;
    memset(out, 0, sizeof *out);
    if (yaml_tree_parse_buffer(name, data, len, &root, err, err_size) != 0)
        return -1;
    int rc = config_take_root(root, out, err, err_size);
    yaml_tree_free(root);
    if (rc != 0)
        cli_config_clear(out);
    return rc;
}

int cli_config_load(const char *path, int must_exist, cli_config_file *out, char *err,
                    size_t err_size)
{
    yaml_tree_node *root = NULL;
    memset(out, 0, sizeof *out);
    if (!must_exist && access(path, F_OK) != 0 && errno == ENOENT)
        return 0;
    if (yaml_tree_parse_file(path, &root, err, err_size) != 0)
        return -1;
    int rc = config_take_root(root, out, err, err_size);
    yaml_tree_free(root);
    if (rc != 0)
        cli_config_clear(out);
    return rc;
}

static const char *settings_pick(const char *flag, const char *env, const char *file,
                                 const char *names[3], const char **source)
{
    const char *values[3] = {flag, env, file};
    for (int i = 0; i < 3; i++) {
        if (values[i] != NULL && values[i][0] != '\0') {
            *source = names[i];
            return values[i];
        }
    }
    *source = NULL;
    return NULL;
}

static int settings_check_server(const char *server, const char *source, cli_settings *out,
                                 char *err, size_t err_size)
{
    size_t len = strlen(server);
    int http = strncasecmp(server, "http://", 7) == 0 && len > 7;
    int https = strncasecmp(server, "https://", 8) == 0 && len > 8;
    if (!http && !https)
        return settings_fail(err, err_size, "server from %s must be an http:// or https:// URL "
                             "with a host, not '%.200s'", source, server);
    for (const char *c = server; *c != '\0'; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return settings_fail(err, err_size, "server from %s contains a space or control "
                                 "character", source);
    while (len > 0 && server[len - 1] == '/')
        len--;
    if (len >= sizeof out->server)
        return settings_fail(err, err_size, "server from %s is longer than %zu characters",
                             source, sizeof out->server - 1);
    memcpy(out->server, server, len);
    out->server[len] = '\0';
    return 0;
}

/* The token travels in a header: CR/LF or other control bytes would split it. */
static int settings_check_token(const char *token, const char *source, cli_settings *out,
                                char *err, size_t err_size)
{
    size_t len = strlen(token);
    if (len >= sizeof out->token)
        return settings_fail(err, err_size, "token from %s is longer than %zu characters", source,
                             sizeof out->token - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f)
            return settings_fail(err, err_size, "token from %s contains a space, control or "
                                 "non-ASCII character", source);
    memcpy(out->token, token, len + 1);
    return 0;
}

int cli_settings_resolve(const cli_settings_sources *sources, cli_settings *out, char *err,
                         size_t err_size)
{
    const char *server_names[3] = {"--server", "SPARKPLANE_SERVER", "the config file"};
    const char *token_names[3] = {"--token", "SPARKPLANE_TOKEN", "the config file"};
    memset(out, 0, sizeof *out);
    const char *server = settings_pick(sources->flag_server, sources->env_server,
                                       sources->file_server, server_names, &out->server_source);
    if (server == NULL) {
        server = CLI_DEFAULT_SERVER;
        out->server_source = "default";
    }
    if (settings_check_server(server, out->server_source, out, err, err_size) != 0)
        return -1;
    const char *token = settings_pick(sources->flag_token, sources->env_token,
                                      sources->file_token, token_names, &out->token_source);
    if (token != NULL && settings_check_token(token, out->token_source, out, err, err_size) != 0)
        return -1;
    return 0;
}
