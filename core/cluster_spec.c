/*
 * cluster_spec.c - checks the cluster requests (create, scale, ttl) against
 * cfg->provisioning and builds the names a cluster gets.
 *
 * Normalising reads each field once, checks its type and its value against
 * the configured environments, regions, sizes and catalogs, fills the
 * defaults and writes the output document field by field; the first
 * problem stops it with the field's name and a message that starts with
 * it.  The document holds everything later steps need (resources from the
 * size, totals for quotas) so that equal requests give equal documents and
 * the same Idempotency-Key hash.  Text from the request is echoed in
 * messages only through cluster_spec_quote (printable ASCII, shortened),
 * so a message is always valid UTF-8 for the JSON error body.
 *
 * Names are built with fixed formats and checked lengths; nothing here
 * allocates except the JSON results.
 */
#include "cluster_spec.h"

#include <sparkplane/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_registry.h" /* CLUSTER_ID_MAX */
#include "job_spec.h"         /* job_spec_idempotency_key_valid: one token syntax for both */

#define CLUSTER_SPEC_QUOTE_MAX 40
#define CLUSTER_SPEC_NAMES_MAX 300
#define CLUSTER_SPEC_DAY_S     (UINT64_C(24) * 3600)

static const char *const cluster_spec_request_keys[] = {
    "team", "environment", "region", "size", "catalogs", "ttl", "idempotency_token", NULL};
static const char *const cluster_spec_scale_keys[] = {"size", "executors", NULL};
static const char *const cluster_spec_ttl_keys[] = {"ttl", NULL};

/* ---- errors ---- */

static int cluster_spec_fail(cluster_spec_error *error, const char *field, const char *fmt, ...)
    SP_PRINTF(3, 4);

static int cluster_spec_fail(cluster_spec_error *error, const char *field, const char *fmt, ...)
{
    size_t used = 0;
    va_list ap;
    snprintf(error->field, sizeof(error->field), "%s", field);
    error->message[0] = '\0';
    if (field[0] != '\0') {
        int n = snprintf(error->message, sizeof(error->message), "%s: ", error->field);
        used = n > 0 ? (size_t)n : 0;
    }
    if (used < sizeof(error->message)) {
        va_start(ap, fmt);
        vsnprintf(error->message + used, sizeof(error->message) - used, fmt, ap);
        va_end(ap);
    }
    return SP_INVALID;
}

static int cluster_spec_out_of_memory(cluster_spec_error *error)
{
    error->field[0] = '\0';
    snprintf(error->message, sizeof(error->message), "out of memory");
    return SP_ERROR;
}

static void cluster_spec_clear(cluster_spec_error *error)
{
    error->field[0] = '\0';
    error->message[0] = '\0';
}

/* Client text for a message: printable ASCII only ('?' for the rest), shortened. */
static const char *cluster_spec_quote(const char *text, char *out, size_t size)
{
    size_t used = 0, len = strlen(text);
    for (size_t i = 0; i < len && i < CLUSTER_SPEC_QUOTE_MAX && used + 1 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        out[used++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (len > CLUSTER_SPEC_QUOTE_MAX && used + 3 < size) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
    return out;
}

/* ---- configured names ---- */

typedef const char *(*cluster_spec_name_at)(const config_provisioning *p, size_t index);

static const char *cluster_spec_environment_at(const config_provisioning *p, size_t i)
{
    return p->environments[i].name;
}

static const char *cluster_spec_region_at(const config_provisioning *p, size_t i)
{
    return p->regions[i].name;
}

static const char *cluster_spec_size_at(const config_provisioning *p, size_t i)
{
    return p->sizes[i].name;
}

static const char *cluster_spec_catalog_at(const config_provisioning *p, size_t i)
{
    return p->catalogs[i].name;
}

/* "dev, staging, ci, prod" (shortened), or "none is configured". */
static const char *cluster_spec_names(const config_provisioning *p, size_t count,
                                      cluster_spec_name_at name_at, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    if (count == 0)
        return "(none is configured)";
    for (size_t i = 0; i < count; i++) {
        const char *name = name_at(p, i);
        if (used + strlen(name) + 6 >= size) {
            snprintf(out + used, size - used, "%s...", i ? ", " : "");
            break;
        }
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", name);
    }
    return out;
}

static int cluster_spec_not_configured(const config_provisioning *p, size_t count,
                                       cluster_spec_name_at name_at, const char *field,
                                       const char *value, cluster_spec_error *error)
{
    char names[CLUSTER_SPEC_NAMES_MAX], quoted[CLUSTER_SPEC_QUOTE_MAX + 4];
    return cluster_spec_fail(error, field, "'%s' is not one of %s",
                             cluster_spec_quote(value, quoted, sizeof(quoted)),
                             cluster_spec_names(p, count, name_at, names, sizeof(names)));
}

/* ---- readers ---- */

static int cluster_spec_in_list(const char *const *list, const char *key)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], key) == 0)
            return 1;
    return 0;
}

static int cluster_spec_check_keys(const json_t *object, const char *const *known,
                                   cluster_spec_error *error)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)object, key, value)
    {
        if (cluster_spec_in_list(known, key))
            continue;
        char field[CLUSTER_SPEC_FIELD_SIZE], names[200];
        size_t used = 0;
        names[0] = '\0';
        for (size_t i = 0; known[i] != NULL && used < sizeof(names); i++)
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                     known[i]);
        cluster_spec_quote(key, field, sizeof(field));
        return cluster_spec_fail(error, field, "unknown field; known fields: %s", names);
    }
    return SP_OK;
}

/* A member that is not null, or NULL. */
static const json_t *cluster_spec_member(const json_t *object, const char *key)
{
    const json_t *value = json_object_get(object, key);
    return json_is_null(value) ? NULL : value;
}

/* object[key] as a string: SP_OK with *out (NULL when absent and optional). */
static int cluster_spec_string(const json_t *object, const char *key, int required,
                               const char **out, cluster_spec_error *error)
{
    const json_t *value = cluster_spec_member(object, key);
    *out = NULL;
    if (value == NULL)
        return required ? cluster_spec_fail(error, key, "required") : SP_OK;
    if (!json_is_string(value))
        return cluster_spec_fail(error, key, "expected a string");
    *out = json_string_value(value);
    return SP_OK;
}

/* [a-z0-9-]{1,63} (with_hyphen) or [a-z0-9]{1,63}. */
static int cluster_spec_label_ok(const char *text, int with_hyphen)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > 63)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && with_hyphen)))
            return 0;
    }
    return 1;
}

/* ---- ttl ---- */

int cluster_spec_parse_ttl(const char *text, uint64_t *seconds_out, char *err, size_t err_size)
{
    static const struct {
        char unit;
        uint64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 24 * 3600}};
    char quoted[CLUSTER_SPEC_QUOTE_MAX + 4];
    uint64_t amount = 0;
    size_t digits = 0;
    if (text != NULL && strcmp(text, "persistent") == 0) {
        *seconds_out = 0;
        return 0;
    }
    while (text != NULL && text[digits] >= '0' && text[digits] <= '9' && digits < 12)
        amount = amount * 10 + (uint64_t)(text[digits++] - '0');
    for (size_t i = 0; digits > 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (text[digits] != units[i].unit || text[digits + 1] != '\0')
            continue;
        uint64_t seconds = amount * units[i].seconds; /* < 10^12 * 86400: no overflow */
        if (seconds >= 1 && seconds <= CLUSTER_SPEC_TTL_MAX_S) {
            *seconds_out = seconds;
            return 0;
        }
    }
    snprintf(err, err_size,
             "expected a whole number and a unit (s, m, h or d) from 1s to 366d, such as 30m, "
             "12h or 7d, or \"persistent\"; got '%s'",
             text ? cluster_spec_quote(text, quoted, sizeof(quoted)) : "");
    return -1;
}

/* 0 -> "persistent"; else the largest unit that divides it: 86400 -> "1d", 90 -> "90s". */
static void cluster_spec_format_ttl(uint64_t seconds, char *out, size_t size)
{
    static const struct {
        char unit;
        uint64_t seconds;
    } units[] = {{'d', 24 * 3600}, {'h', 3600}, {'m', 60}, {'s', 1}};
    if (seconds == 0) {
        snprintf(out, size, "persistent");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (seconds % units[i].seconds != 0)
            continue;
        snprintf(out, size, "%llu%c", (unsigned long long)(seconds / units[i].seconds),
                 units[i].unit);
        return;
    }
}

int cluster_spec_check_ttl_bound(const config_environment *env, uint64_t ttl_seconds,
                                 const char *field, char *err, size_t err_size)
{
    char ttl[32], max[32];
    if (env == NULL) {
        snprintf(err, err_size, "%s: the environment is not configured", field);
        return -1;
    }
    if (env->max_ttl_s == 0)
        return 0;
    cluster_spec_format_ttl(env->max_ttl_s, max, sizeof(max));
    if (ttl_seconds == 0) {
        snprintf(err, err_size,
                 "%s: persistent clusters are not allowed in environment '%s' (max_ttl %s)", field,
                 env->name, max);
        return -1;
    }
    if (ttl_seconds > env->max_ttl_s) {
        cluster_spec_format_ttl(ttl_seconds, ttl, sizeof(ttl));
        snprintf(err, err_size, "%s: %s is longer than environment '%s' allows (max_ttl %s)", field,
                 ttl, env->name, max);
        return -1;
    }
    return 0;
}

/* request.ttl (or the environment's default) checked against the environment. */
static int cluster_spec_ttl_field(const json_t *request, const config_environment *env,
                                  int required, uint64_t *seconds, cluster_spec_error *error)
{
    char message[CLUSTER_SPEC_MESSAGE_SIZE];
    const char *text;
    int rc = cluster_spec_string(request, "ttl", required, &text, error);
    if (rc != SP_OK)
        return rc;
    *seconds = env->default_ttl_s;
    if (text != NULL && cluster_spec_parse_ttl(text, seconds, message, sizeof(message)) != 0)
        return cluster_spec_fail(error, "ttl", "%s", message);
    if (cluster_spec_check_ttl_bound(env, *seconds, "ttl", message, sizeof(message)) != 0) {
        snprintf(error->field, sizeof(error->field), "ttl");
        snprintf(error->message, sizeof(error->message), "%s", message);
        return SP_INVALID;
    }
    return SP_OK;
}

/* ---- create ---- */

typedef struct cluster_spec_choice {
    const char *team;
    const config_environment *environment;
    const config_region *region;
    const config_size *size;
    json_t *catalogs; /* sorted, unique names */
    uint64_t ttl_seconds;
    const char *token;
} cluster_spec_choice;

static int cluster_spec_team(const json_t *request, cluster_spec_choice *choice,
                             cluster_spec_error *error)
{
    int rc = cluster_spec_string(request, "team", 1, &choice->team, error);
    if (rc == SP_OK && !cluster_spec_label_ok(choice->team, 1))
        return cluster_spec_fail(error, "team", "must match [a-z0-9-]{1,63}");
    return rc;
}

static int cluster_spec_placement(const config *cfg, const json_t *request,
                                  cluster_spec_choice *choice, cluster_spec_error *error)
{
    const config_provisioning *p = &cfg->provisioning;
    const char *name;
    int rc = cluster_spec_string(request, "environment", 1, &name, error);
    if (rc != SP_OK)
        return rc;
    if ((choice->environment = config_find_environment(cfg, name)) == NULL)
        return cluster_spec_not_configured(p, p->environment_count, cluster_spec_environment_at,
                                           "environment", name, error);
    if ((rc = cluster_spec_string(request, "region", 0, &name, error)) != SP_OK)
        return rc;
    if (name == NULL && p->region_count == 0)
        return cluster_spec_fail(error, "region", "no region is configured");
    choice->region = name == NULL ? &p->regions[0] : config_find_region(cfg, name);
    if (choice->region == NULL)
        return cluster_spec_not_configured(p, p->region_count, cluster_spec_region_at, "region",
                                           name, error);
    if ((rc = cluster_spec_string(request, "size", 0, &name, error)) != SP_OK)
        return rc;
    if (name == NULL && p->size_count == 0)
        return cluster_spec_fail(error, "size", "no size is configured");
    if (name == NULL)
        choice->size =
            config_find_size(cfg, "small") ? config_find_size(cfg, "small") : &p->sizes[0];
    else
        choice->size = config_find_size(cfg, name);
    if (choice->size == NULL)
        return cluster_spec_not_configured(p, p->size_count, cluster_spec_size_at, "size", name,
                                           error);
    return SP_OK;
}

static int cluster_spec_compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The requested catalogs, each configured, as a sorted array without repeats. */
static int cluster_spec_catalogs(const config *cfg, const json_t *request,
                                 cluster_spec_choice *choice, cluster_spec_error *error)
{
    const json_t *list = cluster_spec_member(request, "catalogs");
    const char *names[CLUSTER_SPEC_MAX_CATALOGS];
    size_t count = 0;
    if (list != NULL && !json_is_array(list))
        return cluster_spec_fail(error, "catalogs", "expected an array of catalog names");
    if (list != NULL && json_array_size(list) > CLUSTER_SPEC_MAX_CATALOGS)
        return cluster_spec_fail(error, "catalogs", "at most %d catalogs",
                                 CLUSTER_SPEC_MAX_CATALOGS);
    for (size_t i = 0; list != NULL && i < json_array_size(list); i++) {
        const json_t *item = json_array_get(list, i);
        char field[32];
        snprintf(field, sizeof(field), "catalogs[%zu]", i);
        if (!json_is_string(item))
            return cluster_spec_fail(error, field, "expected a catalog name");
        if (config_find_catalog(cfg, json_string_value(item)) == NULL)
            return cluster_spec_not_configured(&cfg->provisioning, cfg->provisioning.catalog_count,
                                               cluster_spec_catalog_at, field,
                                               json_string_value(item), error);
        names[count++] = json_string_value(item);
    }
    if (count > 1)
        qsort(names, count, sizeof(names[0]), cluster_spec_compare_strings);
    if ((choice->catalogs = json_array()) == NULL)
        return cluster_spec_out_of_memory(error);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        if (json_array_append_new(choice->catalogs, json_string(names[i])) != 0)
            return cluster_spec_out_of_memory(error);
    }
    return SP_OK;
}

static int cluster_spec_token(const json_t *request, cluster_spec_choice *choice,
                              cluster_spec_error *error)
{
    int rc = cluster_spec_string(request, "idempotency_token", 0, &choice->token, error);
    if (rc == SP_OK && choice->token != NULL && !job_spec_idempotency_key_valid(choice->token))
        return cluster_spec_fail(error, "idempotency_token", "must match [A-Za-z0-9._:-]{1,128}");
    return rc;
}

/* "1g" for whole GiB, else "512m": the spelling Spark takes. */
static void cluster_spec_format_memory(uint64_t mib, char *out, size_t size)
{
    if (mib % 1024 == 0)
        snprintf(out, size, "%llug", (unsigned long long)(mib / 1024));
    else
        snprintf(out, size, "%llum", (unsigned long long)mib);
}

static json_t *cluster_spec_document(const cluster_spec_choice *choice)
{
    const config_size *size = choice->size;
    char ttl[32], driver_memory[32], executor_memory[32];
    cluster_spec_format_ttl(choice->ttl_seconds, ttl, sizeof(ttl));
    cluster_spec_format_memory(size->driver_memory_mib, driver_memory, sizeof(driver_memory));
    cluster_spec_format_memory(size->executor_memory_mib, executor_memory, sizeof(executor_memory));
    uint64_t cores = size->driver_cores + size->executors * size->executor_cores;
    uint64_t memory = size->driver_memory_mib + size->executors * size->executor_memory_mib;
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:I,"
                     " s:{s:{s:I, s:s}, s:I, s:{s:I, s:s}}, s:I, s:I}",
                     "team", choice->team, "environment", choice->environment->name, "region",
                     choice->region->name, "size", size->name, "catalogs", choice->catalogs, "ttl",
                     ttl, "ttl_seconds", (json_int_t)choice->ttl_seconds, "resources", "driver",
                     "cores", (json_int_t)size->driver_cores, "memory", driver_memory, "executors",
                     (json_int_t)size->executors, "executor", "cores",
                     (json_int_t)size->executor_cores, "memory", executor_memory, "cores",
                     (json_int_t)cores, "memory_mib", (json_int_t)memory);
}

static int cluster_spec_read(const config *cfg, const json_t *request, cluster_spec_choice *choice,
                             cluster_spec_error *error)
{
    int rc = cluster_spec_check_keys(request, cluster_spec_request_keys, error);
    if (rc == SP_OK)
        rc = cluster_spec_team(request, choice, error);
    if (rc == SP_OK)
        rc = cluster_spec_placement(cfg, request, choice, error);
    if (rc == SP_OK)
        rc = cluster_spec_catalogs(cfg, request, choice, error);
    if (rc == SP_OK)
        rc = cluster_spec_ttl_field(request, choice->environment, 0, &choice->ttl_seconds, error);
    if (rc == SP_OK)
        rc = cluster_spec_token(request, choice, error);
    return rc;
}

int cluster_spec_normalise(const config *cfg, const json_t *request, json_t **spec_out,
                           const char **idempotency_token_out, cluster_spec_error *error)
{
    cluster_spec_choice choice = {0};
    *spec_out = NULL;
    *idempotency_token_out = NULL;
    cluster_spec_clear(error);
    if (cfg == NULL || !json_is_object(request))
        return cluster_spec_fail(error, "", "expected a JSON object");
    int rc = cluster_spec_read(cfg, request, &choice, error);
    if (rc == SP_OK && (*spec_out = cluster_spec_document(&choice)) == NULL)
        rc = cluster_spec_out_of_memory(error);
    json_decref(choice.catalogs);
    if (rc == SP_OK)
        *idempotency_token_out = choice.token;
    return rc;
}

/* ---- scale and ttl ---- */

/* {"cores", "memory"} of the current spec's executors, or NULL. */
static json_t *cluster_spec_current_executor(const json_t *current_spec)
{
    const json_t *resources = json_object_get(current_spec, "resources");
    const json_t *executor = json_object_get(resources, "executor");
    const json_t *cores = json_object_get(executor, "cores");
    const json_t *memory = json_object_get(executor, "memory");
    if (!json_is_integer(cores) || !json_is_string(memory))
        return NULL;
    return json_pack("{s:O, s:O}", "cores", cores, "memory", memory);
}

static int cluster_spec_scale_to_size(const config *cfg, const json_t *value, json_t **scale_out,
                                      cluster_spec_error *error)
{
    char memory[32];
    if (!json_is_string(value))
        return cluster_spec_fail(error, "size", "expected a string");
    const config_size *size = config_find_size(cfg, json_string_value(value));
    if (size == NULL)
        return cluster_spec_not_configured(&cfg->provisioning, cfg->provisioning.size_count,
                                           cluster_spec_size_at, "size", json_string_value(value),
                                           error);
    cluster_spec_format_memory(size->executor_memory_mib, memory, sizeof(memory));
    *scale_out = json_pack("{s:s, s:I, s:{s:I, s:s}}", "size", size->name, "executors",
                           (json_int_t)size->executors, "executor", "cores",
                           (json_int_t)size->executor_cores, "memory", memory);
    return *scale_out != NULL ? SP_OK : cluster_spec_out_of_memory(error);
}

static int cluster_spec_scale_executors(const json_t *current_spec, const json_t *value,
                                        json_t **scale_out, cluster_spec_error *error)
{
    if (!json_is_integer(value) || json_integer_value(value) < 1 ||
        json_integer_value(value) > CLUSTER_SPEC_MAX_EXECUTORS)
        return cluster_spec_fail(error, "executors", "expected an integer from 1 to %d",
                                 CLUSTER_SPEC_MAX_EXECUTORS);
    json_t *executor = cluster_spec_current_executor(current_spec);
    if (executor == NULL)
        return cluster_spec_fail(error, "", "the cluster's spec has no resources.executor");
    *scale_out =
        json_pack("{s:I, s:o}", "executors", json_integer_value(value), "executor", executor);
    return *scale_out != NULL ? SP_OK : cluster_spec_out_of_memory(error);
}

int cluster_spec_scale(const config *cfg, const json_t *current_spec, const json_t *request,
                       json_t **scale_out, cluster_spec_error *error)
{
    *scale_out = NULL;
    cluster_spec_clear(error);
    if (cfg == NULL || !json_is_object(request))
        return cluster_spec_fail(error, "", "expected a JSON object");
    int rc = cluster_spec_check_keys(request, cluster_spec_scale_keys, error);
    if (rc != SP_OK)
        return rc;
    const json_t *size = cluster_spec_member(request, "size");
    const json_t *executors = cluster_spec_member(request, "executors");
    if (size != NULL && executors != NULL)
        return cluster_spec_fail(error, "executors", "give size or executors, not both");
    if (size != NULL)
        return cluster_spec_scale_to_size(cfg, size, scale_out, error);
    if (executors != NULL)
        return cluster_spec_scale_executors(current_spec, executors, scale_out, error);
    return cluster_spec_fail(error, "size",
                             "required: give {\"size\": name} or {\"executors\": count}");
}

int cluster_spec_ttl_request(const config *cfg, const char *environment, const json_t *request,
                             uint64_t *ttl_seconds_out, cluster_spec_error *error)
{
    char quoted[CLUSTER_SPEC_QUOTE_MAX + 4];
    uint64_t seconds = 0;
    cluster_spec_clear(error);
    if (cfg == NULL || !json_is_object(request))
        return cluster_spec_fail(error, "", "expected a JSON object");
    int rc = cluster_spec_check_keys(request, cluster_spec_ttl_keys, error);
    if (rc != SP_OK)
        return rc;
    const config_environment *env = config_find_environment(cfg, environment);
    if (env == NULL)
        return cluster_spec_fail(
            error, "environment", "'%s' is no longer configured",
            environment ? cluster_spec_quote(environment, quoted, sizeof(quoted)) : "");
    if ((rc = cluster_spec_ttl_field(request, env, 1, &seconds, error)) != SP_OK)
        return rc;
    *ttl_seconds_out = seconds;
    return SP_OK;
}

/* ---- names ---- */

/* Keeps `len` bytes of a name but not a '-' at the end: "feature-" -> "feature". */
static size_t cluster_spec_trim_hyphens(const char *name, size_t len)
{
    while (len > 1 && name[len - 1] == '-')
        len--;
    return len;
}

int cluster_spec_id(const char *team, const char *environment, const char *region,
                    const char *suffix, char *out, size_t out_size)
{
    if (!cluster_spec_label_ok(team, 1) || !cluster_spec_label_ok(environment, 0) ||
        !cluster_spec_label_ok(region, 1) || !cluster_spec_label_ok(suffix, 0) || out == NULL ||
        out_size == 0)
        return -1;
    size_t limit = out_size - 1 < CLUSTER_ID_MAX ? out_size - 1 : CLUSTER_ID_MAX;
    size_t team_len = strlen(team), region_len = strlen(region), env_len = strlen(environment);
    size_t fixed = strlen("sc----") + strlen(suffix);
    if (fixed + 3 > limit)
        return -1;
    if (fixed + env_len + 2 > limit) /* a very long environment name: cut it too, last */
        env_len = limit - fixed - 2;
    size_t budget = limit - fixed - env_len; /* for team and region together */
    if (team_len + region_len > budget) {
        size_t half = budget / 2;
        if (team_len <= half)
            region_len = budget - team_len;
        else if (region_len <= budget - half)
            team_len = budget - region_len;
        else {
            team_len = budget - half;
            region_len = half;
        }
    }
    team_len = cluster_spec_trim_hyphens(team, team_len);
    region_len = cluster_spec_trim_hyphens(region, region_len);
    int n = snprintf(out, out_size, "sc-%.*s-%.*s-%.*s-%s", (int)team_len, team, (int)env_len,
                     environment, (int)region_len, region, suffix);
    return n > 0 && (size_t)n <= limit ? 0 : -1;
}

int cluster_spec_namespace(const char *team, const char *environment, const char *region, char *out,
                           size_t out_size)
{
    if (!cluster_spec_label_ok(team, 1) || !cluster_spec_label_ok(environment, 0) ||
        !cluster_spec_label_ok(region, 1) || out == NULL || out_size == 0)
        return -1;
    int n = snprintf(out, out_size, "sjns-%s-%s-%s", team, environment, region);
    return n > 0 && (size_t)n < out_size ? 0 : -1;
}

typedef struct cluster_spec_places {
    const char *names[4];
    const char *values[4]; /* NULL: leave that placeholder as it is */
} cluster_spec_places;

/* The value for the placeholder at `c` and its length in *skip, or NULL. */
static const char *cluster_spec_place_at(const cluster_spec_places *places, const char *c,
                                         size_t *skip)
{
    for (size_t i = 0; i < 4; i++) {
        size_t len = strlen(places->names[i]);
        if (places->values[i] != NULL && strncmp(c, places->names[i], len) == 0) {
            *skip = len;
            return places->values[i];
        }
    }
    return NULL;
}

/* Writes the expansion into out (when not NULL); returns its length. */
static size_t cluster_spec_expand_into(const cluster_spec_places *places, const char *template,
                                       char *out)
{
    size_t used = 0, skip = 0;
    for (const char *c = template; *c != '\0';) {
        const char *value = *c == '{' ? cluster_spec_place_at(places, c, &skip) : NULL;
        size_t len = value ? strlen(value) : 1;
        if (out != NULL)
            memcpy(out + used, value ? value : c, len);
        used += len;
        c += value ? skip : 1;
    }
    return used;
}

/*
 * The template with {team} {env} {region} (and {domain} when `domain` is
 * not NULL) replaced; other text is copied.  A new string, or NULL.
 */
static char *cluster_spec_expand(const char *template, const char *team, const char *environment,
                                 const char *region, const char *domain)
{
    const cluster_spec_places places = {{"{team}", "{env}", "{region}", "{domain}"},
                                        {team, environment, region, domain}};
    size_t len = cluster_spec_expand_into(&places, template, NULL);
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    cluster_spec_expand_into(&places, template, out);
    out[len] = '\0';
    return out;
}

int cluster_spec_endpoint(const config *cfg, const char *team, const char *environment,
                          const char *region, char *out, size_t out_size)
{
    if (cfg == NULL || cfg->provisioning.endpoint_pattern == NULL || team == NULL ||
        environment == NULL || region == NULL || out == NULL || out_size == 0)
        return -1;
    const char *domain = cfg->provisioning.domain ? cfg->provisioning.domain : "local";
    char *endpoint =
        cluster_spec_expand(cfg->provisioning.endpoint_pattern, team, environment, region, domain);
    if (endpoint == NULL)
        return -1;
    size_t len = strlen(endpoint);
    int rc = len < out_size ? 0 : -1;
    if (rc == 0)
        memcpy(out, endpoint, len + 1);
    free(endpoint);
    return rc;
}

int cluster_spec_endpoint_host(const char *endpoint, char *out, size_t out_size)
{
    if (endpoint == NULL || out == NULL || out_size == 0 || strncmp(endpoint, "sc://", 5) != 0)
        return -1;
    const char *host = endpoint + 5;
    size_t len = strcspn(host, ":/");
    if (len == 0 || len >= out_size)
        return -1;
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

/* Adds one catalog's settings for a placement to conf (later keys replace earlier ones). */
static int cluster_spec_add_catalog(json_t *conf, const config_catalog *catalog, const char *team,
                                    const char *environment, const char *region)
{
    for (size_t i = 0; i < catalog->conf_count; i++) {
        char *value = cluster_spec_expand(catalog->conf[i].value, team, environment, region, NULL);
        int rc = value != NULL ? json_object_set_new(conf, catalog->conf[i].key, json_string(value))
                               : -1;
        free(value);
        if (rc != 0)
            return -1;
    }
    return 0;
}

json_t *cluster_spec_catalog_conf(const config *cfg, const json_t *catalog_names, const char *team,
                                  const char *environment, const char *region)
{
    if (cfg == NULL || team == NULL || environment == NULL || region == NULL ||
        (catalog_names != NULL && !json_is_array(catalog_names)))
        return NULL;
    json_t *conf = json_object();
    for (size_t i = 0; conf != NULL && i < json_array_size(catalog_names); i++) {
        const config_catalog *catalog =
            config_find_catalog(cfg, json_string_value(json_array_get(catalog_names, i)));
        if (catalog == NULL || cluster_spec_add_catalog(conf, catalog, team, environment, region)) {
            json_decref(conf);
            return NULL;
        }
    }
    return conf;
}
