/*
 * config_internal.h - the schema walker's helpers, shared by the files that
 * check one part of the configuration each (config.c, config_provisioning.c).
 *
 * Not an interface for the rest of the daemon: everything here works on the
 * YAML tree while a config is being built.  Every checker reports problems
 * as "file:line:column: dotted.key: message" into chk->problems and carries
 * on, so one --check-config run lists them all.
 */
#ifndef SPARKPLANE_CORE_CONFIG_INTERNAL_H
#define SPARKPLANE_CORE_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CONFIG_PLUGIN_NAME_MAX 64
#define CONFIG_ERROR_SIZE      1024
#define CONFIG_LIMIT_MAX       100000

typedef struct config_checker {
    config *cfg;
    diag_list *problems;
    int out_of_memory;
} config_checker;

typedef struct config_where {
    const char *file;
    int line;
    int column;
} config_where;

/* ---- reporting ---- */
config_where config_where_node(const yaml_tree_node *node);
config_where config_where_key(const yaml_tree_node *map, size_t index);
void config_report(config_checker *chk, config_where where, const char *key, const char *fmt, ...)
    SP_PRINTF(4, 5);
void config_report_oom(config_checker *chk);
/* "expected <expected>, got <what the node is>" */
void config_report_type(config_checker *chk, const yaml_tree_node *node, const char *key,
                        const char *expected);

/* ---- the tree ---- */
/* Unset: missing, empty, "~" or "null" (plain). */
int config_is_null(const yaml_tree_node *node);
/* ("server", "listen") -> "server.listen". */
void config_dotted(char *buffer, size_t size, const char *section, const char *key);
/* Reports every key of `map` that is not in the NULL-terminated `known`. */
void config_check_keys(config_checker *chk, const yaml_tree_node *map, const char *section,
                       const char *const *known);
/* parent[name] when it is a mapping; NULL when unset or wrong (reported). */
const yaml_tree_node *config_section(config_checker *chk, const yaml_tree_node *parent,
                                     const char *name, const char *dotted);

/* ---- values (unset leaves *out alone) ---- */
const char *config_string(config_checker *chk, const yaml_tree_node *map, const char *name,
                          const char *dotted);
void config_duration(config_checker *chk, const yaml_tree_node *map, const char *name,
                     const char *dotted, int allow_zero, uint64_t *out);
void config_byte_size(config_checker *chk, const yaml_tree_node *map, const char *name,
                      const char *dotted, uint64_t *out);
int config_set_string(config_checker *chk, char **field, const char *value);
/* An absolute path stays; a relative one is taken from the file's directory. */
char *config_resolve_beside(const char *file, const char *path);
void config_free_strings(char **strings, size_t count);

/* ---- name rules ---- */
int config_valid_hostname(const char *host, size_t len);
int config_valid_domain(const char *domain);
int config_valid_plugin_name(const char *name);
int config_valid_spark_version(const char *text);
/* [a-z0-9-]{1,63} (with_hyphen) or [a-z0-9]{1,63}. */
int config_valid_label(const char *text, int with_hyphen);

/* ---- provisioning (config_provisioning.c) ---- */
/* After gateway: defaults follow gateway.domain and gateway.default_region. */
void config_check_provisioning(config_checker *chk, const yaml_tree_node *root);
void config_free_provisioning(config_provisioning *provisioning);

#endif
