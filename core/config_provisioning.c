/*
 * config_provisioning.c - the provisioning: section (self-service clusters)
 * and the lookups over it.
 *
 * cfg->provisioning is always filled.  The scalars start from their
 * defaults and are overwritten by what the file sets; each of the maps
 * environments, regions, sizes and catalogs is either the built-in default
 * map or, when the file gives one, exactly the file's map (so an operator
 * can remove an environment by leaving it out).  Sizes are read before
 * environments, whose warm pools name sizes, and region fallbacks are
 * checked against the names the file gives, so one broken entry is
 * reported once and not again by every entry that refers to it.
 *
 * Every problem is reported with file:line:column and the dotted key, like
 * the rest of the configuration (config.c), and the walk carries on.
 */
#include "config.h"
#include "config_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_spec.h" /* CLUSTER_SPEC_TTL_MAX_S: a default ttl must be a valid request ttl */
#include "units.h"

#define PROVISIONING_WARM_MAX              64
#define PROVISIONING_EXECUTORS_MAX         256
#define PROVISIONING_CORES_MAX             1024
#define PROVISIONING_MEMORY_MAX_MIB        (UINT64_C(1024) * 1024) /* 1 TiB per driver or executor */
#define PROVISIONING_QUOTA_CORES_MAX       UINT64_C(1000000)
#define PROVISIONING_BUDGET_MEMORY_MAX_MIB (UINT64_C(1024) * 1024 * 1024)
#define PROVISIONING_PATTERN_MAX           255
#define PROVISIONING_NAME_MAX              63
#define PROVISIONING_MIB                   (UINT64_C(1024) * 1024)
#define PROVISIONING_HOUR_S                UINT64_C(3600)
#define PROVISIONING_DAY_S                 (UINT64_C(24) * 3600)

static const char *const provisioning_keys[] = {
    "backend",      "spark_version", "domain",        "endpoint_pattern",
    "hosts_file",   "hosts_address", "start_timeout", "reap_interval",
    "environments", "regions",       "sizes",         "catalogs",
    "spark_conf",   "quotas",        "pool_budget",   NULL};
static const char *const provisioning_environment_keys[] = {"default_ttl", "max_ttl", "warm", NULL};
static const char *const provisioning_region_keys[] = {"fallback", NULL};
static const char *const provisioning_size_keys[] = {"driver", "executors", "executor", NULL};
static const char *const provisioning_resource_keys[] = {"cores", "memory", NULL};
static const char *const provisioning_quotas_keys[] = {"default", "teams", NULL};
static const char *const provisioning_quota_keys[] = {"clusters", "cores", NULL};
static const char *const provisioning_budget_keys[] = {"cores", "memory", NULL};
static const char *const provisioning_placeholders[] = {"{team}", "{env}", "{region}", "{domain}",
                                                        NULL};

typedef struct provisioning_default_environment {
    const char *name;
    uint64_t default_ttl_s;
    uint64_t max_ttl_s;
    const char *warm_size; /* NULL: no warm entry */
    uint64_t warm_count;
} provisioning_default_environment;

static const provisioning_default_environment provisioning_default_environments[] = {
    {"dev", 8 * PROVISIONING_HOUR_S, 7 * PROVISIONING_DAY_S, "small", 0},
    {"staging", 24 * PROVISIONING_HOUR_S, 30 * PROVISIONING_DAY_S, "small", 1},
    {"ci", 2 * PROVISIONING_HOUR_S, 1 * PROVISIONING_DAY_S, NULL, 0},
    {"prod", 7 * PROVISIONING_DAY_S, 0, "small", 3},
};

typedef struct provisioning_default_size {
    const char *name;
    uint64_t driver_cores, driver_memory_mib, executors, executor_cores, executor_memory_mib;
} provisioning_default_size;

static const provisioning_default_size provisioning_default_sizes[] = {
    {"small", 1, 1024, 1, 1, 1024},
    {"medium", 1, 2048, 2, 2, 2048},
    {"large", 2, 4096, 4, 4, 8192},
    {"xlarge", 4, 8192, 8, 8, 16384},
};

#define PROVISIONING_COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

/* ---- small readers ---- */

/* An integer in [min, max] at node; 0 when read, -1 when wrong (reported). */
static int provisioning_count_node(config_checker *chk, const yaml_tree_node *node,
                                   const char *dotted, uint64_t min, uint64_t max, uint64_t *out)
{
    int64_t value;
    if (config_is_null(node) || node->kind != YAML_TREE_SCALAR ||
        units_parse_int64(node->value, &value) != 0 || value < 0 || (uint64_t)value < min ||
        (uint64_t)value > max) {
        char expected[80];
        snprintf(expected, sizeof(expected), "an integer from %llu to %llu",
                 (unsigned long long)min, (unsigned long long)max);
        config_report_type(chk, node, dotted, expected);
        return -1;
    }
    *out = (uint64_t)value;
    return 0;
}

/* map[name] as an integer in [min, max]; unset leaves *out. */
static void provisioning_count(config_checker *chk, const yaml_tree_node *map, const char *name,
                               const char *section, uint64_t min, uint64_t max, uint64_t *out)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    char dotted[256];
    if (config_is_null(node))
        return;
    config_dotted(dotted, sizeof(dotted), section, name);
    provisioning_count_node(chk, node, dotted, min, max, out);
}

/* map[name] as a size in whole MiB, up to max_mib; unset leaves *out. */
static void provisioning_memory(config_checker *chk, const yaml_tree_node *map, const char *name,
                                const char *section, int allow_zero, uint64_t max_mib,
                                uint64_t *out)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    char dotted[256];
    uint64_t bytes;
    if (config_is_null(node))
        return;
    config_dotted(dotted, sizeof(dotted), section, name);
    if (node->kind != YAML_TREE_SCALAR || units_parse_size_bytes(node->value, &bytes) != 0 ||
        bytes % PROVISIONING_MIB != 0) {
        config_report_type(chk, node, dotted, "a size in whole MiB such as 512m, 1g or 4GiB");
        return;
    }
    if (bytes == 0 && !allow_zero) {
        config_report(chk, config_where_node(node), dotted, "must be greater than 0");
        return;
    }
    if (bytes / PROVISIONING_MIB > max_mib) {
        config_report(chk, config_where_node(node), dotted, "at most %llu MiB",
                      (unsigned long long)max_mib);
        return;
    }
    *out = bytes / PROVISIONING_MIB;
}

/*
 * A ttl: "persistent" (0) or a duration of whole seconds from 1s to
 * CLUSTER_SPEC_TTL_MAX_S.  0 when read, 1 when unset, -1 when wrong.
 */
static int provisioning_ttl(config_checker *chk, const yaml_tree_node *map, const char *name,
                            const char *section, uint64_t *seconds)
{
    const yaml_tree_node *node = yaml_tree_map_get(map, name);
    char dotted[256];
    uint64_t ms;
    if (config_is_null(node))
        return 1;
    config_dotted(dotted, sizeof(dotted), section, name);
    if (node->kind == YAML_TREE_SCALAR && strcmp(node->value, "persistent") == 0) {
        *seconds = 0;
        return 0;
    }
    if (node->kind != YAML_TREE_SCALAR || units_parse_duration_ms(node->value, &ms) != 0) {
        config_report_type(chk, node, dotted, "a duration such as 2h or 7d, or persistent");
        return -1;
    }
    if (ms < 1000 || ms % 1000 != 0 || ms / 1000 > CLUSTER_SPEC_TTL_MAX_S) {
        config_report(chk, config_where_node(node), dotted,
                      "must be whole seconds from 1s to 366d (or persistent), got '%.40s'",
                      node->value);
        return -1;
    }
    *seconds = ms / 1000;
    return 0;
}

/* Whether `name` is a key of `map` (a map the file gives, possibly with broken entries). */
static int provisioning_map_has(const yaml_tree_node *map, const char *name)
{
    return map != NULL && map->kind == YAML_TREE_MAP && yaml_tree_map_get(map, name) != NULL;
}

/* "a, b, c" of the keys of a map, shortened to fit. */
static void provisioning_key_list(const yaml_tree_node *map, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < map->count && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%.63s", i ? ", " : "", map->keys[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* [a-z0-9_-]{1,63} (with_hyphen: sizes) or [a-z0-9_]{1,63} (catalogs). */
static int provisioning_valid_name(const char *text, int with_hyphen)
{
    size_t len = strlen(text);
    if (len == 0 || len > PROVISIONING_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              (c == '-' && with_hyphen)))
            return 0;
    }
    return 1;
}

/* A section's map of named entries; NULL when unset or wrong (reported). */
static const yaml_tree_node *provisioning_map(config_checker *chk, const yaml_tree_node *section,
                                              const char *name, const char *dotted)
{
    if (section == NULL)
        return NULL;
    return config_section(chk, section, name, dotted);
}

/* ---- scalars ---- */

static void provisioning_backend(config_checker *chk, const yaml_tree_node *section)
{
    const char *backend = config_string(chk, section, "backend", "provisioning.backend");
    if (backend == NULL)
        return;
    if (!config_valid_plugin_name(backend)) {
        config_report(chk, config_where_node(yaml_tree_map_get(section, "backend")),
                      "provisioning.backend",
                      "backend names are 1 to %d characters of a-z, 0-9 and '_', got '%.60s'",
                      CONFIG_PLUGIN_NAME_MAX, backend);
        return;
    }
    config_set_string(chk, &chk->cfg->provisioning.backend, backend);
}

static void provisioning_spark_version(config_checker *chk, const yaml_tree_node *section)
{
    const char *version =
        config_string(chk, section, "spark_version", "provisioning.spark_version");
    if (version == NULL)
        return;
    if (!config_valid_spark_version(version)) {
        config_report(chk, config_where_node(yaml_tree_map_get(section, "spark_version")),
                      "provisioning.spark_version",
                      "spark versions look like 3.5 or 4.0.1 ([0-9]+(.[0-9]+)*), got '%.40s'",
                      version);
        return;
    }
    config_set_string(chk, &chk->cfg->provisioning.spark_version, version);
}

static void provisioning_domain(config_checker *chk, const yaml_tree_node *section)
{
    const char *domain = config_string(chk, section, "domain", "provisioning.domain");
    if (domain == NULL)
        return;
    if (!config_valid_domain(domain)) {
        config_report(chk, config_where_node(yaml_tree_map_get(section, "domain")),
                      "provisioning.domain",
                      "expected a DNS name such as example.team, got '%.80s'", domain);
        return;
    }
    if (config_set_string(chk, &chk->cfg->provisioning.domain, domain) != 0)
        return;
    for (char *c = chk->cfg->provisioning.domain; *c != '\0'; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
}

/* NULL when the pattern is usable, else why not. */
static const char *provisioning_pattern_problem(const char *pattern)
{
    if (strlen(pattern) > PROVISIONING_PATTERN_MAX)
        return "is longer than 255 characters";
    if (strncmp(pattern, "sc://", 5) != 0)
        return "must start with sc:// (a Spark Connect URL)";
    if (strstr(pattern, "{team}") == NULL)
        return "must contain {team}: every team's cluster needs its own name";
    if (pattern[5] == '\0' || pattern[5] == ':' || pattern[5] == '/')
        return "has no host after sc://";
    for (const char *c = pattern; *c != '\0'; c++) {
        if (*c == ' ' || *c == '\t' || *c == '}' || (unsigned char)*c < 0x20)
            return "may not contain spaces, control characters or a '}' outside a placeholder";
        if (*c != '{')
            continue;
        size_t i = 0;
        while (provisioning_placeholders[i] != NULL &&
               strncmp(c, provisioning_placeholders[i], strlen(provisioning_placeholders[i])) != 0)
            i++;
        if (provisioning_placeholders[i] == NULL)
            return "knows only the placeholders {team}, {env}, {region} and {domain}";
        c += strlen(provisioning_placeholders[i]) - 1;
    }
    return NULL;
}

static void provisioning_endpoint_pattern(config_checker *chk, const yaml_tree_node *section)
{
    const char *pattern =
        config_string(chk, section, "endpoint_pattern", "provisioning.endpoint_pattern");
    if (pattern == NULL)
        return;
    const char *problem = provisioning_pattern_problem(pattern);
    if (problem != NULL) {
        config_report(chk, config_where_node(yaml_tree_map_get(section, "endpoint_pattern")),
                      "provisioning.endpoint_pattern", "'%.80s' %s", pattern, problem);
        return;
    }
    config_set_string(chk, &chk->cfg->provisioning.endpoint_pattern, pattern);
}

static void provisioning_hosts(config_checker *chk, const yaml_tree_node *section)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *file = config_string(chk, section, "hosts_file", "provisioning.hosts_file");
    if (file != NULL) {
        free(p->hosts_file);
        p->hosts_file = config_resolve_beside(yaml_tree_map_get(section, "hosts_file")->file, file);
        if (p->hosts_file == NULL)
            config_report_oom(chk);
    }
    const char *address =
        config_string(chk, section, "hosts_address", "provisioning.hosts_address");
    unsigned char binary[16];
    if (address == NULL)
        return;
    if (inet_pton(AF_INET, address, binary) != 1 && inet_pton(AF_INET6, address, binary) != 1) {
        config_report(chk, config_where_node(yaml_tree_map_get(section, "hosts_address")),
                      "provisioning.hosts_address",
                      "expected an IPv4 or IPv6 address such as 127.0.0.1, got '%.80s'", address);
        return;
    }
    config_set_string(chk, &p->hosts_address, address);
}

/* ---- sizes ---- */

/* driver or executor: {cores, memory}, both required. */
static void provisioning_resources(config_checker *chk, const yaml_tree_node *entry,
                                   const char *name, const char *section, uint64_t *cores,
                                   uint64_t *memory_mib)
{
    char dotted[256];
    config_dotted(dotted, sizeof(dotted), section, name);
    const yaml_tree_node *node = yaml_tree_map_get(entry, name);
    if (config_is_null(node)) {
        config_report(chk, config_where_node(entry), dotted, "required: {cores, memory}");
        return;
    }
    if (node->kind != YAML_TREE_MAP) {
        config_report_type(chk, node, dotted, "a mapping with cores and memory");
        return;
    }
    config_check_keys(chk, node, dotted, provisioning_resource_keys);
    for (size_t i = 0; i < 2; i++) {
        if (!config_is_null(yaml_tree_map_get(node, provisioning_resource_keys[i])))
            continue;
        char key[300];
        config_dotted(key, sizeof(key), dotted, provisioning_resource_keys[i]);
        config_report(chk, config_where_node(node), key, "required");
    }
    provisioning_count(chk, node, "cores", dotted, 1, PROVISIONING_CORES_MAX, cores);
    provisioning_memory(chk, node, "memory", dotted, 0, PROVISIONING_MEMORY_MAX_MIB, memory_mib);
}

static void provisioning_size_entry(config_checker *chk, const yaml_tree_node *sizes, size_t index)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *name = sizes->keys[index];
    const yaml_tree_node *entry = sizes->items[index];
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "provisioning.sizes.%.63s", name);
    if (!provisioning_valid_name(name, 1)) {
        config_report(chk, config_where_key(sizes, index), dotted,
                      "size names are [a-z0-9_-]{1,63}, got '%.80s'", name);
        return;
    }
    if (config_is_null(entry) || entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping with driver, executors and executor");
        return;
    }
    size_t before = chk->problems->count;
    config_size size = {0};
    char executors_key[160];
    config_dotted(executors_key, sizeof(executors_key), dotted, "executors");
    config_check_keys(chk, entry, dotted, provisioning_size_keys);
    provisioning_resources(chk, entry, "driver", dotted, &size.driver_cores,
                           &size.driver_memory_mib);
    if (config_is_null(yaml_tree_map_get(entry, "executors")))
        config_report(chk, config_where_node(entry), executors_key, "required");
    provisioning_count(chk, entry, "executors", dotted, 1, PROVISIONING_EXECUTORS_MAX,
                       &size.executors);
    provisioning_resources(chk, entry, "executor", dotted, &size.executor_cores,
                           &size.executor_memory_mib);
    if (chk->problems->count != before)
        return;
    if ((size.name = strdup(name)) == NULL) {
        config_report_oom(chk);
        return;
    }
    p->sizes[p->size_count++] = size;
}

static void provisioning_default_sizes_fill(config_checker *chk)
{
    config_provisioning *p = &chk->cfg->provisioning;
    size_t count = PROVISIONING_COUNT_OF(provisioning_default_sizes);
    if ((p->sizes = calloc(count, sizeof(*p->sizes))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const provisioning_default_size *d = &provisioning_default_sizes[i];
        config_size *size = &p->sizes[i];
        *size = (config_size){NULL,         d->driver_cores,   d->driver_memory_mib,
                              d->executors, d->executor_cores, d->executor_memory_mib};
        if ((size->name = strdup(d->name)) == NULL) {
            config_report_oom(chk);
            return;
        }
        p->size_count++;
    }
}

static void provisioning_sizes(config_checker *chk, const yaml_tree_node *sizes)
{
    config_provisioning *p = &chk->cfg->provisioning;
    if (sizes == NULL) {
        provisioning_default_sizes_fill(chk);
        return;
    }
    if (sizes->count == 0) {
        config_report(chk, config_where_node(sizes), "provisioning.sizes",
                      "at least one size is required");
        return;
    }
    if ((p->sizes = calloc(sizes->count, sizeof(*p->sizes))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < sizes->count; i++)
        provisioning_size_entry(chk, sizes, i);
}

/* ---- environments ---- */

static void provisioning_warm(config_checker *chk, const yaml_tree_node *entry, const char *section,
                              const yaml_tree_node *sizes, config_environment *environment)
{
    const yaml_tree_node *warm = yaml_tree_map_get(entry, "warm");
    char dotted[256];
    config_dotted(dotted, sizeof(dotted), section, "warm");
    if (config_is_null(warm))
        return;
    if (warm->kind != YAML_TREE_MAP) {
        config_report_type(chk, warm, dotted,
                           "a mapping of size name to count, such as {small: 1}");
        return;
    }
    if (warm->count == 0 ||
        (environment->warm = calloc(warm->count, sizeof(config_warm))) == NULL) {
        if (warm->count != 0)
            config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < warm->count; i++) {
        char key[320];
        uint64_t count;
        snprintf(key, sizeof(key), "%s.%.63s", dotted, warm->keys[i]);
        if (config_find_size(chk->cfg, warm->keys[i]) == NULL) {
            if (!provisioning_map_has(sizes, warm->keys[i])) /* a broken size is reported once */
                config_report(chk, config_where_key(warm, i), key,
                              "'%.63s' is not a size in provisioning.sizes", warm->keys[i]);
            continue;
        }
        if (provisioning_count_node(chk, warm->items[i], key, 0, PROVISIONING_WARM_MAX, &count) !=
            0)
            continue;
        config_warm *slot = &environment->warm[environment->warm_count];
        if ((slot->size = strdup(warm->keys[i])) == NULL) {
            config_report_oom(chk);
            return;
        }
        slot->count = count;
        environment->warm_count++;
    }
}

/* default_ttl <= max_ttl; persistent only when max_ttl is persistent. */
static void provisioning_ttl_bounds(config_checker *chk, const yaml_tree_node *entry,
                                    const char *section, const config_environment *environment)
{
    char dotted[256];
    const yaml_tree_node *given = yaml_tree_map_get(entry, "default_ttl");
    const yaml_tree_node *max = yaml_tree_map_get(entry, "max_ttl");
    config_dotted(dotted, sizeof(dotted), section, "default_ttl");
    if (environment->max_ttl_s == 0)
        return;
    if (environment->default_ttl_s == 0)
        config_report(chk, config_where_node(given), dotted,
                      "persistent is not allowed when max_ttl is '%.40s'", max->value);
    else if (environment->default_ttl_s > environment->max_ttl_s)
        config_report(chk, config_where_node(given), dotted,
                      "'%.40s' is longer than max_ttl '%.40s'", given->value, max->value);
}

static void provisioning_environment_entry(config_checker *chk, const yaml_tree_node *envs,
                                           size_t index, const yaml_tree_node *sizes)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *name = envs->keys[index];
    const yaml_tree_node *entry = envs->items[index];
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "provisioning.environments.%.63s", name);
    if (!config_valid_label(name, 0)) {
        config_report(chk, config_where_key(envs, index), dotted,
                      "environment names are [a-z0-9]{1,63} (no '-': host names such as "
                      "team-env-region are split on it), got '%.80s'",
                      name);
        return;
    }
    if (config_is_null(entry) || entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping with default_ttl, max_ttl and warm");
        return;
    }
    config_environment *environment = &p->environments[p->environment_count];
    *environment = (config_environment){.name = strdup(name)};
    p->environment_count++;
    if (environment->name == NULL) {
        config_report_oom(chk);
        return;
    }
    config_check_keys(chk, entry, dotted, provisioning_environment_keys);
    int given = provisioning_ttl(chk, entry, "default_ttl", dotted, &environment->default_ttl_s);
    int max = provisioning_ttl(chk, entry, "max_ttl", dotted, &environment->max_ttl_s);
    for (int i = 0; i < 2; i++) {
        if ((i == 0 ? given : max) != 1)
            continue;
        char key[256];
        config_dotted(key, sizeof(key), dotted, i == 0 ? "default_ttl" : "max_ttl");
        config_report(chk, config_where_node(entry), key,
                      "required (a duration such as 8h or 7d, or persistent)");
    }
    if (given == 0 && max == 0)
        provisioning_ttl_bounds(chk, entry, dotted, environment);
    provisioning_warm(chk, entry, dotted, sizes, environment);
}

static int provisioning_default_environments_fill(config_checker *chk)
{
    config_provisioning *p = &chk->cfg->provisioning;
    size_t count = PROVISIONING_COUNT_OF(provisioning_default_environments);
    if ((p->environments = calloc(count, sizeof(*p->environments))) == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        const provisioning_default_environment *d = &provisioning_default_environments[i];
        config_environment *environment = &p->environments[i];
        *environment =
            (config_environment){.default_ttl_s = d->default_ttl_s, .max_ttl_s = d->max_ttl_s};
        p->environment_count++;
        if ((environment->name = strdup(d->name)) == NULL)
            return -1;
        if (d->warm_size == NULL)
            continue;
        if ((environment->warm = calloc(1, sizeof(config_warm))) == NULL ||
            (environment->warm[0].size = strdup(d->warm_size)) == NULL)
            return -1;
        environment->warm[0].count = d->warm_count;
        environment->warm_count = 1;
    }
    return 0;
}

/* The default environments warm "small": without it they keep no warm pool. */
static void provisioning_drop_unknown_default_warm(config *cfg)
{
    config_provisioning *p = &cfg->provisioning;
    for (size_t i = 0; i < p->environment_count; i++) {
        config_environment *environment = &p->environments[i];
        size_t kept = 0;
        for (size_t j = 0; j < environment->warm_count; j++) {
            if (config_find_size(cfg, environment->warm[j].size) != NULL)
                environment->warm[kept++] = environment->warm[j];
            else
                free(environment->warm[j].size);
        }
        environment->warm_count = kept;
    }
}

static void provisioning_environments(config_checker *chk, const yaml_tree_node *envs,
                                      const yaml_tree_node *sizes)
{
    config_provisioning *p = &chk->cfg->provisioning;
    if (envs == NULL) {
        if (provisioning_default_environments_fill(chk) != 0)
            config_report_oom(chk);
        provisioning_drop_unknown_default_warm(chk->cfg);
        return;
    }
    if (envs->count == 0) {
        config_report(chk, config_where_node(envs), "provisioning.environments",
                      "at least one environment is required");
        return;
    }
    if ((p->environments = calloc(envs->count, sizeof(*p->environments))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < envs->count; i++)
        provisioning_environment_entry(chk, envs, i, sizes);
}

/* ---- regions ---- */

static void provisioning_region_fallback(config_checker *chk, const yaml_tree_node *regions,
                                         size_t index, config_region *region)
{
    const yaml_tree_node *entry = regions->items[index];
    char dotted[128], names[400];
    snprintf(dotted, sizeof(dotted), "provisioning.regions.%.63s.fallback", region->name);
    const char *fallback = config_string(chk, entry, "fallback", dotted);
    if (fallback == NULL)
        return;
    const yaml_tree_node *node = yaml_tree_map_get(entry, "fallback");
    if (strcmp(fallback, region->name) == 0) {
        config_report(chk, config_where_node(node), dotted, "a region cannot fall back to itself");
        return;
    }
    if (!provisioning_map_has(regions, fallback)) {
        provisioning_key_list(regions, names, sizeof(names));
        config_report(chk, config_where_node(node), dotted,
                      "'%.63s' is not one of the configured regions (%s)", fallback, names);
        return;
    }
    config_set_string(chk, &region->fallback, fallback);
}

static void provisioning_region_entry(config_checker *chk, const yaml_tree_node *regions,
                                      size_t index)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *name = regions->keys[index];
    const yaml_tree_node *entry = regions->items[index];
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "provisioning.regions.%.63s", name);
    if (!config_valid_label(name, 1)) {
        config_report(chk, config_where_key(regions, index), dotted,
                      "region names are [a-z0-9-]{1,63}, got '%.80s'", name);
        return;
    }
    if (!config_is_null(entry) && entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping such as {fallback: other-region} or {}");
        return;
    }
    config_region *region = &p->regions[p->region_count];
    *region = (config_region){.name = strdup(name)};
    p->region_count++;
    if (region->name == NULL) {
        config_report_oom(chk);
        return;
    }
    if (config_is_null(entry))
        return;
    config_check_keys(chk, entry, dotted, provisioning_region_keys);
    provisioning_region_fallback(chk, regions, index, region);
}

static void provisioning_regions(config_checker *chk, const yaml_tree_node *regions)
{
    config_provisioning *p = &chk->cfg->provisioning;
    if (regions == NULL) {
        if ((p->regions = calloc(1, sizeof(*p->regions))) == NULL ||
            (p->regions[0].name = strdup(chk->cfg->gateway_default_region)) == NULL) {
            config_report_oom(chk);
            return;
        }
        p->region_count = 1;
        return;
    }
    if (regions->count == 0) {
        config_report(chk, config_where_node(regions), "provisioning.regions",
                      "at least one region is required");
        return;
    }
    if ((p->regions = calloc(regions->count, sizeof(*p->regions))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < regions->count; i++)
        provisioning_region_entry(chk, regions, i);
}

/* ---- catalogs and spark_conf ---- */

/*
 * A mapping of setting -> scalar into *kv.  With sql_only, every key must
 * start with "spark.sql.".
 */
static void provisioning_settings(config_checker *chk, const yaml_tree_node *map,
                                  const char *section, int sql_only, config_kv **kv, size_t *count)
{
    if (map->count == 0 || (*kv = calloc(map->count, sizeof(**kv))) == NULL) {
        if (map->count != 0)
            config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < map->count; i++) {
        const char *key = map->keys[i];
        const yaml_tree_node *value = map->items[i];
        char dotted[320];
        snprintf(dotted, sizeof(dotted), "%s.%.100s", section, key);
        if (key[0] == '\0') {
            config_report(chk, config_where_key(map, i), dotted, "a setting needs a name");
            continue;
        }
        if (sql_only && strncmp(key, "spark.sql.", 10) != 0) {
            config_report(chk, config_where_key(map, i), dotted,
                          "'%.100s' is not a spark.sql.* setting: catalogs are applied as "
                          "runtime settings so that a warm cluster can take them when it is "
                          "handed over (static settings belong in provisioning.spark_conf)",
                          key);
            continue;
        }
        if (config_is_null(value) || value->kind != YAML_TREE_SCALAR) {
            config_report_type(chk, value, dotted, "a string, number or boolean");
            continue;
        }
        config_kv *slot = &(*kv)[*count];
        slot->key = strdup(key);
        slot->value = strdup(value->value);
        (*count)++;
        if (slot->key == NULL || slot->value == NULL) {
            config_report_oom(chk);
            return;
        }
    }
}

static void provisioning_catalog_entry(config_checker *chk, const yaml_tree_node *catalogs,
                                       size_t index)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *name = catalogs->keys[index];
    const yaml_tree_node *entry = catalogs->items[index];
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "provisioning.catalogs.%.63s", name);
    if (!provisioning_valid_name(name, 0)) {
        config_report(chk, config_where_key(catalogs, index), dotted,
                      "catalog names are [a-z0-9_]{1,63}, got '%.80s'", name);
        return;
    }
    if (config_is_null(entry) || entry->kind != YAML_TREE_MAP || entry->count == 0) {
        config_report_type(chk, entry, dotted, "a non-empty mapping of spark.sql.* settings");
        return;
    }
    config_catalog *catalog = &p->catalogs[p->catalog_count];
    *catalog = (config_catalog){.name = strdup(name)};
    p->catalog_count++;
    if (catalog->name == NULL) {
        config_report_oom(chk);
        return;
    }
    provisioning_settings(chk, entry, dotted, 1, &catalog->conf, &catalog->conf_count);
}

static void provisioning_catalogs(config_checker *chk, const yaml_tree_node *catalogs)
{
    config_provisioning *p = &chk->cfg->provisioning;
    if (catalogs == NULL || catalogs->count == 0)
        return;
    if ((p->catalogs = calloc(catalogs->count, sizeof(*p->catalogs))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < catalogs->count; i++)
        provisioning_catalog_entry(chk, catalogs, i);
}

/* ---- quotas and pool budget ---- */

static void provisioning_quota_values(config_checker *chk, const yaml_tree_node *entry,
                                      const char *dotted, config_quota *quota)
{
    config_check_keys(chk, entry, dotted, provisioning_quota_keys);
    provisioning_count(chk, entry, "clusters", dotted, 0, CONFIG_LIMIT_MAX, &quota->clusters);
    provisioning_count(chk, entry, "cores", dotted, 0, PROVISIONING_QUOTA_CORES_MAX, &quota->cores);
}

/* quotas.teams.<team>: what it does not set comes from quotas.default. */
static void provisioning_team_quota(config_checker *chk, const yaml_tree_node *teams, size_t index)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const char *team = teams->keys[index];
    const yaml_tree_node *entry = teams->items[index];
    char dotted[128];
    snprintf(dotted, sizeof(dotted), "provisioning.quotas.teams.%.63s", team);
    if (!config_valid_label(team, 1)) {
        config_report(chk, config_where_key(teams, index), dotted,
                      "team names are [a-z0-9-]{1,63}, got '%.80s'", team);
        return;
    }
    if (config_is_null(entry) || entry->kind != YAML_TREE_MAP) {
        config_report_type(chk, entry, dotted, "a mapping with clusters and/or cores");
        return;
    }
    config_quota *quota = &p->team_quotas[p->team_quota_count];
    *quota = p->default_quota;
    p->team_quota_count++;
    if ((quota->team = strdup(team)) == NULL) {
        config_report_oom(chk);
        return;
    }
    provisioning_quota_values(chk, entry, dotted, quota);
}

static void provisioning_quotas(config_checker *chk, const yaml_tree_node *section)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const yaml_tree_node *quotas = provisioning_map(chk, section, "quotas", "provisioning.quotas");
    if (quotas == NULL)
        return;
    config_check_keys(chk, quotas, "provisioning.quotas", provisioning_quotas_keys);
    const yaml_tree_node *fallback =
        config_section(chk, quotas, "default", "provisioning.quotas.default");
    if (fallback != NULL)
        provisioning_quota_values(chk, fallback, "provisioning.quotas.default", &p->default_quota);
    const yaml_tree_node *teams = config_section(chk, quotas, "teams", "provisioning.quotas.teams");
    if (teams == NULL || teams->count == 0)
        return;
    if ((p->team_quotas = calloc(teams->count, sizeof(*p->team_quotas))) == NULL) {
        config_report_oom(chk);
        return;
    }
    for (size_t i = 0; i < teams->count; i++)
        provisioning_team_quota(chk, teams, i);
}

static void provisioning_pool_budget(config_checker *chk, const yaml_tree_node *section)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const yaml_tree_node *budget =
        provisioning_map(chk, section, "pool_budget", "provisioning.pool_budget");
    if (budget == NULL)
        return;
    config_check_keys(chk, budget, "provisioning.pool_budget", provisioning_budget_keys);
    provisioning_count(chk, budget, "cores", "provisioning.pool_budget", 0,
                       PROVISIONING_QUOTA_CORES_MAX, &p->pool_budget_cores);
    provisioning_memory(chk, budget, "memory", "provisioning.pool_budget", 1,
                        PROVISIONING_BUDGET_MEMORY_MAX_MIB, &p->pool_budget_memory_mib);
}

/* ---- the section ---- */

static int provisioning_set_defaults(config *cfg)
{
    config_provisioning *p = &cfg->provisioning;
    p->backend = strdup("local");
    p->spark_version = strdup("4.0");
    p->domain = strdup(cfg->gateway_domain != NULL ? cfg->gateway_domain : "local");
    p->endpoint_pattern = strdup("sc://{team}-{env}-{region}.{domain}:15002");
    p->hosts_address = strdup("127.0.0.1");
    p->start_timeout_ms = UINT64_C(10) * 60 * 1000;
    p->reap_interval_ms = UINT64_C(10) * 1000;
    p->default_quota = (config_quota){.team = NULL, .clusters = 5, .cores = 64};
    p->pool_budget_cores = 0;
    p->pool_budget_memory_mib = 0;
    return p->backend && p->spark_version && p->domain && p->endpoint_pattern && p->hosts_address
               ? 0
               : -1;
}

static void provisioning_scalars(config_checker *chk, const yaml_tree_node *section)
{
    config_provisioning *p = &chk->cfg->provisioning;
    config_check_keys(chk, section, "provisioning", provisioning_keys);
    provisioning_backend(chk, section);
    provisioning_spark_version(chk, section);
    provisioning_domain(chk, section);
    provisioning_endpoint_pattern(chk, section);
    provisioning_hosts(chk, section);
    config_duration(chk, section, "start_timeout", "provisioning.start_timeout", 0,
                    &p->start_timeout_ms);
    config_duration(chk, section, "reap_interval", "provisioning.reap_interval", 0,
                    &p->reap_interval_ms);
}

static void provisioning_spark_conf(config_checker *chk, const yaml_tree_node *section)
{
    config_provisioning *p = &chk->cfg->provisioning;
    const yaml_tree_node *conf =
        provisioning_map(chk, section, "spark_conf", "provisioning.spark_conf");
    if (conf != NULL)
        provisioning_settings(chk, conf, "provisioning.spark_conf", 0, &p->spark_conf,
                              &p->spark_conf_count);
}

void config_check_provisioning(config_checker *chk, const yaml_tree_node *root)
{
    if (provisioning_set_defaults(chk->cfg) != 0) {
        config_report_oom(chk);
        return;
    }
    const yaml_tree_node *section = config_section(chk, root, "provisioning", "provisioning");
    if (section != NULL)
        provisioning_scalars(chk, section);
    const yaml_tree_node *sizes = provisioning_map(chk, section, "sizes", "provisioning.sizes");
    const yaml_tree_node *envs =
        provisioning_map(chk, section, "environments", "provisioning.environments");
    const yaml_tree_node *regions =
        provisioning_map(chk, section, "regions", "provisioning.regions");
    provisioning_sizes(chk, sizes);
    provisioning_environments(chk, envs, sizes);
    provisioning_regions(chk, regions);
    provisioning_catalogs(chk, provisioning_map(chk, section, "catalogs", "provisioning.catalogs"));
    provisioning_spark_conf(chk, section);
    provisioning_quotas(chk, section);
    provisioning_pool_budget(chk, section);
}

/* ---- freeing and lookups ---- */

static void provisioning_free_settings(config_kv *kv, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void config_free_provisioning(config_provisioning *p)
{
    free(p->backend);
    free(p->spark_version);
    free(p->domain);
    free(p->endpoint_pattern);
    free(p->hosts_file);
    free(p->hosts_address);
    for (size_t i = 0; i < p->environment_count; i++) {
        for (size_t j = 0; j < p->environments[i].warm_count; j++)
            free(p->environments[i].warm[j].size);
        free(p->environments[i].warm);
        free(p->environments[i].name);
    }
    free(p->environments);
    for (size_t i = 0; i < p->region_count; i++) {
        free(p->regions[i].name);
        free(p->regions[i].fallback);
    }
    free(p->regions);
    for (size_t i = 0; i < p->size_count; i++)
        free(p->sizes[i].name);
    free(p->sizes);
    for (size_t i = 0; i < p->catalog_count; i++) {
        free(p->catalogs[i].name);
        provisioning_free_settings(p->catalogs[i].conf, p->catalogs[i].conf_count);
    }
    free(p->catalogs);
    provisioning_free_settings(p->spark_conf, p->spark_conf_count);
    for (size_t i = 0; i < p->team_quota_count; i++)
        free(p->team_quotas[i].team);
    free(p->team_quotas);
    memset(p, 0, sizeof(*p));
}

const config_environment *config_find_environment(const config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->provisioning.environment_count; i++)
        if (strcmp(cfg->provisioning.environments[i].name, name) == 0)
            return &cfg->provisioning.environments[i];
    return NULL;
}

const config_region *config_find_region(const config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->provisioning.region_count; i++)
        if (strcmp(cfg->provisioning.regions[i].name, name) == 0)
            return &cfg->provisioning.regions[i];
    return NULL;
}

const config_size *config_find_size(const config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->provisioning.size_count; i++)
        if (strcmp(cfg->provisioning.sizes[i].name, name) == 0)
            return &cfg->provisioning.sizes[i];
    return NULL;
}

const config_catalog *config_find_catalog(const config *cfg, const char *name)
{
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->provisioning.catalog_count; i++)
        if (strcmp(cfg->provisioning.catalogs[i].name, name) == 0)
            return &cfg->provisioning.catalogs[i];
    return NULL;
}

const config_quota *config_team_quota(const config *cfg, const char *team)
{
    if (cfg == NULL)
        return NULL;
    for (size_t i = 0; team != NULL && i < cfg->provisioning.team_quota_count; i++)
        if (strcmp(cfg->provisioning.team_quotas[i].team, team) == 0)
            return &cfg->provisioning.team_quotas[i];
    return &cfg->provisioning.default_quota;
}
