/*
 * job_spec.c - checks a job request and writes the normalised job document.
 *
 * One pass reads the request and builds the output object field by field;
 * the first problem stops it with the field's path and a message (the REST
 * layer returns it as a 400 with details.field).  Both request shapes share
 * the readers below: the docs shape only changes where the application and
 * its sizes are read from (config.core_etl.job_spec) and which key aliases
 * are accepted there.  Every value is type-checked and bounded before it is
 * copied, so the document the runner stores is always well formed.
 */
#include "job_spec.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sparkplane/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_STRING_MAX 4096
#define SPEC_LIST_MAX 256
#define SPEC_CORES_MAX 64
#define SPEC_INSTANCES_MAX 1000
#define SPEC_ATTEMPTS_MAX 10
#define SPEC_KIB_PER_MIB UINT64_C(1024)
#define SPEC_KIB_PER_GIB (UINT64_C(1024) * 1024)
#define SPEC_MEMORY_MIN_KIB (UINT64_C(32) * SPEC_KIB_PER_MIB)
#define SPEC_MEMORY_MAX_KIB (UINT64_C(512) * SPEC_KIB_PER_GIB)
#define SPEC_JOB_SPEC_PATH "config.core_etl.job_spec"

/* Where the application and resources are read from, per request shape. */
typedef struct spec_source {
    const json_t *application;   /* object holding file, class, ... */
    const char *application_path;
    const json_t *resources;     /* object holding driver, executor, ...; may be NULL */
    const char *resources_path;
    int aliases;                 /* docs shape: main_class, arguments, spark_conf, ... */
} spec_source;

static const char *const spec_plain_keys[] = {
    "name", "team", "spark_version", "application", "resources", "environment", "region",
    "backend", "idempotency_token", "max_attempts", NULL};
static const char *const spec_docs_keys[] = {
    "name", "team", "config", "environment", "region", "backend", "idempotency_token",
    "max_attempts", NULL};
static const char *const spec_application_keys[] = {"file", "class", "args", "py_files",
                                                    "jars", "conf", NULL};
static const char *const spec_job_spec_keys[] = {
    "file", "main_application_file", "class", "main_class", "args", "arguments", "py_files",
    "jars", "conf", "spark_conf", "driver", "executor", "dynamic_allocation", NULL};
static const char *const spec_config_keys[] = {"spark_version", "job_type", "core_etl", NULL};
static const char *const spec_core_etl_keys[] = {"version", "job_spec", NULL};
static const char *const spec_resources_keys[] = {"driver", "executor", "dynamic_allocation",
                                                  NULL};
static const char *const spec_driver_keys[] = {"cores", "memory", NULL};
static const char *const spec_executor_keys[] = {"cores", "memory", "instances", NULL};
static const char *const spec_dynamic_keys[] = {"enabled", "min_executors", "max_executors",
                                                NULL};

/* Spark settings that the resources section (or the backend) owns. */
static const struct {
    const char *conf;
    const char *instead;  /* NULL: the backend decides it */
} spec_reserved_conf[] = {
    {"spark.driver.cores", "driver.cores"},
    {"spark.driver.memory", "driver.memory"},
    {"spark.executor.cores", "executor.cores"},
    {"spark.executor.memory", "executor.memory"},
    {"spark.executor.instances", "executor.instances"},
    {"spark.dynamicAllocation.enabled", "dynamic_allocation.enabled"},
    {"spark.dynamicAllocation.minExecutors", "dynamic_allocation.min_executors"},
    {"spark.dynamicAllocation.maxExecutors", "dynamic_allocation.max_executors"},
    {"spark.master", NULL},
    {"spark.submit.deployMode", NULL},
};

/* ---- errors and paths ---- */

static int spec_fail(job_spec_error *error, const char *path, const char *fmt, ...)
    SP_PRINTF(3, 4);

static int spec_fail(job_spec_error *error, const char *path, const char *fmt, ...)
{
    size_t used = 0;
    va_list ap;
    snprintf(error->field, sizeof(error->field), "%s", path);
    if (path[0] != '\0') {
        int n = snprintf(error->message, sizeof(error->message), "%s: ", path);
        used = n > 0 ? (size_t)n : 0;
    }
    if (used < sizeof(error->message)) {
        va_start(ap, fmt);
        vsnprintf(error->message + used, sizeof(error->message) - used, fmt, ap);
        va_end(ap);
    }
    return SP_INVALID;
}

static int spec_out_of_memory(job_spec_error *error)
{
    snprintf(error->field, sizeof(error->field), "%s", "");
    snprintf(error->message, sizeof(error->message), "out of memory");
    return SP_ERROR;
}

/* "prefix.key", or "key" at the top level; user keys are shortened. */
static void spec_path(char *out, size_t size, const char *prefix, const char *key)
{
    int n;
    if (prefix == NULL || prefix[0] == '\0')
        n = snprintf(out, size, "%.100s", key);
    else
        n = snprintf(out, size, "%s.%.100s", prefix, key);
    if (n < 0)
        out[0] = '\0'; /* a path cut short still names where the problem is */
}

static int spec_in_list(const char *const *list, const char *key)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], key) == 0)
            return 1;
    return 0;
}

static int spec_check_keys(const json_t *object, const char *prefix, const char *const *known,
                           job_spec_error *error)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)object, key, value) {
        if (spec_in_list(known, key))
            continue;
        char path[JOB_SPEC_FIELD_SIZE], names[400];
        size_t used = 0;
        names[0] = '\0';
        for (size_t i = 0; known[i] != NULL && used < sizeof(names); i++)
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                     known[i]);
        spec_path(path, sizeof(path), prefix, key);
        return spec_fail(error, path, "unknown field; known fields: %s", names);
    }
    return SP_OK;
}

/* An optional object member; NULL when absent or JSON null. */
static const json_t *spec_member(const json_t *object, const char *key)
{
    const json_t *value = object ? json_object_get(object, key) : NULL;
    return json_is_null(value) ? NULL : value;
}

/* The value of `key` or of its `alias` (docs shape); both set is an error. */
static int spec_member_alias(const json_t *object, const char *prefix, const char *key,
                             const char *alias, const json_t **value, char *path, size_t size,
                             job_spec_error *error)
{
    const json_t *main_value = spec_member(object, key);
    const json_t *alias_value = alias ? spec_member(object, alias) : NULL;
    if (main_value != NULL && alias_value != NULL) {
        char other[JOB_SPEC_FIELD_SIZE];
        spec_path(path, size, prefix, alias);
        spec_path(other, sizeof(other), prefix, key);
        return spec_fail(error, path, "cannot be combined with %s", other);
    }
    spec_path(path, size, prefix, alias_value ? alias : key);
    *value = alias_value ? alias_value : main_value;
    return SP_OK;
}

/* ---- scalars ---- */

/* A string of at most `max` bytes without NUL; *out borrowed. */
static int spec_string_value(const json_t *value, const char *path, size_t max, const char **out,
                             job_spec_error *error)
{
    if (!json_is_string(value))
        return spec_fail(error, path, "expected a string");
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    if (strlen(text) != len)
        return spec_fail(error, path, "must not contain NUL characters");
    if (len > max)
        return spec_fail(error, path, "longer than %zu bytes", max);
    *out = text;
    return SP_OK;
}

static int spec_char_in(char c, const char *extra, int upper)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    if (upper && c >= 'A' && c <= 'Z')
        return 1;
    return c != '\0' && strchr(extra, c) != NULL;
}

/* Whether text is min..max characters of [a-z0-9] (+A-Z when upper) and `extra`. */
static int spec_matches(const char *text, size_t min, size_t max, const char *extra, int upper)
{
    size_t len = strlen(text);
    if (len < min || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!spec_char_in(text[i], extra, upper))
            return 0;
    return 1;
}

static int spec_version_valid(const char *text)
{
    size_t len = strlen(text), digits = 0;
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (isdigit((unsigned char)text[i])) {
            digits++;
        } else if (text[i] == '.' || text[i] == '\0') {
            if (digits == 0)
                return 0; /* empty component: ".", "1.", "1..2" */
            digits = 0;
        } else {
            return 0;
        }
    }
    return 1;
}

static int spec_java_class_valid(const char *text)
{
    int start = 1;
    if (text[0] == '\0')
        return 0;
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (start)
                return 0;
            start = 1;
            continue;
        }
        if (!(isalpha(c) || c == '_' || c == '$' || (!start && isdigit(c))))
            return 0;
        start = 0;
    }
    return !start;
}

int job_spec_idempotency_key_valid(const char *key)
{
    return key != NULL && spec_matches(key, 1, 128, "._:-", 1);
}

/* A string member checked against a pattern; `pattern_ok` NULL: any text. */
static int spec_copy_string(const json_t *object, const char *prefix, const char *key,
                            const char *fallback, int (*pattern_ok)(const char *),
                            const char *pattern, json_t *out, job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value = spec_member(object, key);
    const char *text = fallback;
    spec_path(path, sizeof(path), prefix, key);
    if (value == NULL && fallback == NULL)
        return spec_fail(error, path, "required");
    if (value != NULL) {
        int rc = spec_string_value(value, path, SPEC_STRING_MAX, &text, error);
        if (rc != SP_OK)
            return rc;
        if (pattern_ok != NULL && !pattern_ok(text))
            return spec_fail(error, path, "must match %s", pattern);
    }
    if (json_object_set_new(out, key, json_string(text)) != 0)
        return spec_out_of_memory(error);
    return SP_OK;
}

static int spec_name_ok(const char *text)
{
    return spec_matches(text, 1, 128, "._-", 1);
}

static int spec_team_ok(const char *text)
{
    return spec_matches(text, 1, 63, "-", 0);
}

static int spec_backend_ok(const char *text)
{
    return spec_matches(text, 1, 64, "_", 0);
}

/* An integer from min to max; *out untouched when the member is absent. */
static int spec_integer(const json_t *object, const char *prefix, const char *key,
                        json_int_t min, json_int_t max, json_int_t *out, int *present,
                        job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value = spec_member(object, key);
    *present = value != NULL;
    if (value == NULL)
        return SP_OK;
    spec_path(path, sizeof(path), prefix, key);
    if (!json_is_integer(value) || json_integer_value(value) < min ||
        json_integer_value(value) > max)
        return spec_fail(error, path, "expected an integer from %" JSON_INTEGER_FORMAT
                         " to %" JSON_INTEGER_FORMAT, min, max);
    *out = json_integer_value(value);
    return SP_OK;
}

/*
 * Spark's memory syntax: digits and k, m, g or t (an optional "b", any
 * case).  Written back as the largest whole unit: "1024m" -> "1g".
 */
static int spec_memory_parse(const char *text, char *out, size_t size, int *in_range)
{
    uint64_t number = 0, kib_per_unit;
    size_t i = 0;
    *in_range = 0;
    for (; isdigit((unsigned char)text[i]); i++) {
        if (i >= 12)
            return -1;
        number = number * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == 0)
        return -1;
    switch (tolower((unsigned char)text[i])) {
    case 'k':
        kib_per_unit = 1;
        break;
    case 'm':
        kib_per_unit = SPEC_KIB_PER_MIB;
        break;
    case 'g':
        kib_per_unit = SPEC_KIB_PER_GIB;
        break;
    case 't':
        kib_per_unit = SPEC_KIB_PER_GIB * 1024;
        break;
    default:
        return -1;
    }
    const char *rest = text + i + 1;
    if (!(rest[0] == '\0' || (tolower((unsigned char)rest[0]) == 'b' && rest[1] == '\0')))
        return -1;
    if (number > SPEC_MEMORY_MAX_KIB / kib_per_unit)
        return 0; /* too large (and checked before multiplying, so it cannot wrap) */
    uint64_t kib = number * kib_per_unit;
    if (kib < SPEC_MEMORY_MIN_KIB || kib > SPEC_MEMORY_MAX_KIB)
        return 0;
    *in_range = 1;
    if (kib % SPEC_KIB_PER_GIB == 0)
        snprintf(out, size, "%" PRIu64 "g", kib / SPEC_KIB_PER_GIB);
    else if (kib % SPEC_KIB_PER_MIB == 0)
        snprintf(out, size, "%" PRIu64 "m", kib / SPEC_KIB_PER_MIB);
    else
        snprintf(out, size, "%" PRIu64 "k", kib);
    return 0;
}

static int spec_memory(const json_t *object, const char *prefix, json_t *out,
                       job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE], normal[32];
    const json_t *value = spec_member(object, "memory");
    int in_range;
    spec_path(path, sizeof(path), prefix, "memory");
    if (value == NULL)
        return json_object_set_new(out, "memory", json_string("1g")) == 0
                   ? SP_OK
                   : spec_out_of_memory(error);
    if (!json_is_string(value) || json_string_length(value) > 32 ||
        spec_memory_parse(json_string_value(value), normal, sizeof(normal), &in_range) != 0)
        return spec_fail(error, path, "expected a size like 512m or 4g");
    if (!in_range)
        return spec_fail(error, path, "must be from 32m to 512g");
    if (json_object_set_new(out, "memory", json_string(normal)) != 0)
        return spec_out_of_memory(error);
    return SP_OK;
}

/* ---- lists and maps ---- */

/* An array of at most 256 strings; `non_empty`: each must have text. */
static int spec_string_list(const json_t *value, const char *path, int non_empty, json_t **out,
                            job_spec_error *error)
{
    char item_path[JOB_SPEC_FIELD_SIZE];
    size_t index;
    json_t *item;
    if (!json_is_array(value))
        return spec_fail(error, path, "expected an array of strings");
    if (json_array_size(value) > SPEC_LIST_MAX)
        return spec_fail(error, path, "at most %d entries", SPEC_LIST_MAX);
    json_t *list = json_array();
    if (list == NULL)
        return spec_out_of_memory(error);
    json_array_foreach((json_t *)value, index, item) {
        const char *text;
        if (snprintf(item_path, sizeof(item_path), "%s[%zu]", path, index) < 0)
            item_path[0] = '\0';
        int rc = spec_string_value(item, item_path, SPEC_STRING_MAX, &text, error);
        if (rc == SP_OK && non_empty && text[0] == '\0')
            rc = spec_fail(error, item_path, "must not be empty");
        if (rc == SP_OK && json_array_append_new(list, json_string(text)) != 0)
            rc = spec_out_of_memory(error);
        if (rc != SP_OK) {
            json_decref(list);
            return rc;
        }
    }
    *out = list;
    return SP_OK;
}

static int spec_conf_key(const char *key, const char *path, const char *resources_path,
                         job_spec_error *error)
{
    size_t len = strlen(key);
    if (len == 0 || len > SPEC_STRING_MAX)
        return spec_fail(error, path, "keys must be 1 to %d bytes", SPEC_STRING_MAX);
    for (size_t i = 0; i < sizeof(spec_reserved_conf) / sizeof(spec_reserved_conf[0]); i++) {
        if (strcmp(key, spec_reserved_conf[i].conf) != 0)
            continue;
        if (spec_reserved_conf[i].instead == NULL)
            return spec_fail(error, path, "set by the backend; remove it");
        return spec_fail(error, path, "set %s.%s instead", resources_path,
                         spec_reserved_conf[i].instead);
    }
    return SP_OK;
}

/* Spark settings: at most 256 string -> string entries. */
static int spec_conf(const json_t *value, const char *path, const char *resources_path,
                     json_t **out, job_spec_error *error)
{
    char entry_path[JOB_SPEC_FIELD_SIZE];
    const char *key;
    json_t *entry;
    if (!json_is_object(value))
        return spec_fail(error, path, "expected an object of string values");
    if (json_object_size(value) > SPEC_LIST_MAX)
        return spec_fail(error, path, "at most %d entries", SPEC_LIST_MAX);
    json_t *conf = json_object();
    if (conf == NULL)
        return spec_out_of_memory(error);
    json_object_foreach((json_t *)value, key, entry) {
        const char *text;
        spec_path(entry_path, sizeof(entry_path), path, key);
        int rc = spec_conf_key(key, entry_path, resources_path, error);
        if (rc == SP_OK)
            rc = spec_string_value(entry, entry_path, SPEC_STRING_MAX, &text, error);
        if (rc == SP_OK && json_object_set_new(conf, key, json_string(text)) != 0)
            rc = spec_out_of_memory(error);
        if (rc != SP_OK) {
            json_decref(conf);
            return rc;
        }
    }
    *out = conf;
    return SP_OK;
}

/* ---- application ---- */

static int spec_has_suffix(const char *text, const char *suffix)
{
    size_t len = strlen(text), suffix_len = strlen(suffix);
    return len > suffix_len && strcmp(text + len - suffix_len, suffix) == 0;
}

static int spec_application_file(const spec_source *src, json_t *app, int *is_jar,
                                 job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value;
    const char *file;
    int rc = spec_member_alias(src->application, src->application_path, "file",
                               src->aliases ? "main_application_file" : NULL, &value, path,
                               sizeof(path), error);
    if (rc != SP_OK)
        return rc;
    if (value == NULL)
        return spec_fail(error, path, "required");
    if ((rc = spec_string_value(value, path, SPEC_STRING_MAX, &file, error)) != SP_OK)
        return rc;
    *is_jar = spec_has_suffix(file, ".jar");
    if (!*is_jar && !spec_has_suffix(file, ".py"))
        return spec_fail(error, path, "expected a .py or .jar file");
    return json_object_set_new(app, "file", json_string(file)) == 0 ? SP_OK
                                                                    : spec_out_of_memory(error);
}

static int spec_application_class(const spec_source *src, int is_jar, json_t *app,
                                  job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value;
    const char *name;
    int rc = spec_member_alias(src->application, src->application_path, "class",
                               src->aliases ? "main_class" : NULL, &value, path, sizeof(path),
                               error);
    if (rc != SP_OK || value == NULL)
        return rc;
    if ((rc = spec_string_value(value, path, SPEC_STRING_MAX, &name, error)) != SP_OK)
        return rc;
    if (!is_jar)
        return spec_fail(error, path, "only a .jar application has a main class");
    if (!spec_java_class_valid(name))
        return spec_fail(error, path, "expected a Java class name such as org.example.Main");
    return json_object_set_new(app, "class", json_string(name)) == 0 ? SP_OK
                                                                     : spec_out_of_memory(error);
}

/* args, py_files, jars: a list, [] when absent. */
static int spec_application_list(const spec_source *src, const char *key, const char *alias,
                                 int non_empty, json_t *app, job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value;
    json_t *list = NULL;
    int rc = spec_member_alias(src->application, src->application_path, key,
                               src->aliases ? alias : NULL, &value, path, sizeof(path), error);
    if (rc != SP_OK)
        return rc;
    if (value == NULL)
        list = json_array();
    else if ((rc = spec_string_list(value, path, non_empty, &list, error)) != SP_OK)
        return rc;
    return json_object_set_new(app, key, list) == 0 ? SP_OK : spec_out_of_memory(error);
}

static int spec_application_conf(const spec_source *src, json_t *app, job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    const json_t *value;
    json_t *conf = NULL;
    int rc = spec_member_alias(src->application, src->application_path, "conf",
                               src->aliases ? "spark_conf" : NULL, &value, path, sizeof(path),
                               error);
    if (rc != SP_OK)
        return rc;
    if (value == NULL)
        conf = json_object();
    else if ((rc = spec_conf(value, path, src->resources_path, &conf, error)) != SP_OK)
        return rc;
    return json_object_set_new(app, "conf", conf) == 0 ? SP_OK : spec_out_of_memory(error);
}

static int spec_application(const spec_source *src, json_t *spec, job_spec_error *error)
{
    int is_jar = 0, rc;
    json_t *app = json_object();
    if (app == NULL)
        return spec_out_of_memory(error);
    if ((rc = spec_application_file(src, app, &is_jar, error)) == SP_OK &&
        (rc = spec_application_class(src, is_jar, app, error)) == SP_OK &&
        (rc = spec_application_list(src, "args", "arguments", 0, app, error)) == SP_OK &&
        (rc = spec_application_list(src, "py_files", NULL, 1, app, error)) == SP_OK &&
        (rc = spec_application_list(src, "jars", NULL, 1, app, error)) == SP_OK)
        rc = spec_application_conf(src, app, error);
    if (rc == SP_OK && json_object_set_new(spec, "application", app) != 0)
        return spec_out_of_memory(error);
    if (rc != SP_OK)
        json_decref(app);
    return rc;
}

/* ---- resources ---- */

/* An optional object member; *out NULL when absent. */
static int spec_object(const json_t *parent, const char *prefix, const char *key,
                       const char *const *known, const json_t **out, char *path, size_t size,
                       job_spec_error *error)
{
    const json_t *value = spec_member(parent, key);
    spec_path(path, size, prefix, key);
    *out = value;
    if (value == NULL)
        return SP_OK;
    if (!json_is_object(value))
        return spec_fail(error, path, "expected an object");
    return known ? spec_check_keys(value, path, known, error) : SP_OK;
}

/* driver or executor: cores, memory (and instances for executors). */
static int spec_process_size(const spec_source *src, const char *key, json_t *resources,
                             job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    int executor = strcmp(key, "executor") == 0, present, rc;
    json_int_t cores = 1, instances = 1;
    const json_t *node;
    rc = spec_object(src->resources, src->resources_path, key,
                     executor ? spec_executor_keys : spec_driver_keys, &node, path,
                     sizeof(path), error);
    if (rc == SP_OK)
        rc = spec_integer(node, path, "cores", 1, SPEC_CORES_MAX, &cores, &present, error);
    if (rc == SP_OK && executor)
        rc = spec_integer(node, path, "instances", 0, SPEC_INSTANCES_MAX, &instances, &present,
                          error);
    if (rc != SP_OK)
        return rc;
    json_t *out = json_pack("{s:I}", "cores", (json_int_t)cores);
    if (out == NULL)
        return spec_out_of_memory(error);
    if (executor && json_object_set_new(out, "instances", json_integer(instances)) != 0)
        rc = spec_out_of_memory(error);
    if (rc == SP_OK)
        rc = spec_memory(node, path, out, error);
    if (rc == SP_OK && json_object_set_new(resources, key, out) != 0)
        return spec_out_of_memory(error);
    if (rc != SP_OK)
        json_decref(out);
    return rc;
}

static int spec_dynamic_rules(int enabled, int max_present, json_int_t min, json_int_t max,
                              const char *path, job_spec_error *error)
{
    char field[JOB_SPEC_FIELD_SIZE];
    if (enabled && !max_present) {
        spec_path(field, sizeof(field), path, "max_executors");
        return spec_fail(error, field, "required when dynamic allocation is enabled");
    }
    if (enabled && max < 1) {
        spec_path(field, sizeof(field), path, "max_executors");
        return spec_fail(error, field, "must be at least 1 when dynamic allocation is enabled");
    }
    if (min > max) {
        spec_path(field, sizeof(field), path, "min_executors");
        return spec_fail(error, field, "must not exceed max_executors (%" JSON_INTEGER_FORMAT ")",
                         max);
    }
    return SP_OK;
}

static int spec_dynamic_allocation(const spec_source *src, json_t *resources,
                                   job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE], field[JOB_SPEC_FIELD_SIZE];
    const json_t *node, *enabled_value;
    json_int_t min = 0, max = 0;
    int enabled = 0, min_present, max_present;
    int rc = spec_object(src->resources, src->resources_path, "dynamic_allocation",
                         spec_dynamic_keys, &node, path, sizeof(path), error);
    if (rc != SP_OK)
        return rc;
    if ((enabled_value = spec_member(node, "enabled")) != NULL) {
        spec_path(field, sizeof(field), path, "enabled");
        if (!json_is_boolean(enabled_value))
            return spec_fail(error, field, "expected true or false");
        enabled = json_is_true(enabled_value);
    }
    if ((rc = spec_integer(node, path, "min_executors", 0, SPEC_INSTANCES_MAX, &min,
                           &min_present, error)) != SP_OK ||
        (rc = spec_integer(node, path, "max_executors", 0, SPEC_INSTANCES_MAX, &max,
                           &max_present, error)) != SP_OK)
        return rc;
    if (!enabled && !max_present)
        max = min; /* off: the bounds are kept only as written */
    if ((rc = spec_dynamic_rules(enabled, max_present, min, max, path, error)) != SP_OK)
        return rc;
    json_t *out = json_pack("{s:b, s:I, s:I}", "enabled", enabled, "min_executors", min,
                            "max_executors", max);
    if (out == NULL || json_object_set_new(resources, "dynamic_allocation", out) != 0)
        return spec_out_of_memory(error);
    return SP_OK;
}

static int spec_resources(const spec_source *src, json_t *spec, job_spec_error *error)
{
    int rc;
    json_t *resources = json_object();
    if (resources == NULL)
        return spec_out_of_memory(error);
    if ((rc = spec_process_size(src, "driver", resources, error)) == SP_OK &&
        (rc = spec_process_size(src, "executor", resources, error)) == SP_OK)
        rc = spec_dynamic_allocation(src, resources, error);
    if (rc == SP_OK && json_object_set_new(spec, "resources", resources) != 0)
        return spec_out_of_memory(error);
    if (rc != SP_OK)
        json_decref(resources);
    return rc;
}

/* ---- the two shapes ---- */

static int spec_required_object(const json_t *parent, const char *prefix, const char *key,
                                const char *const *known, const json_t **out,
                                job_spec_error *error)
{
    char path[JOB_SPEC_FIELD_SIZE];
    int rc = spec_object(parent, prefix, key, known, out, path, sizeof(path), error);
    if (rc == SP_OK && *out == NULL)
        return spec_fail(error, path, "required");
    return rc;
}

static int spec_plain_source(const json_t *request, json_t *spec, spec_source *src,
                             job_spec_error *error)
{
    int rc = spec_copy_string(request, "", "spark_version", NULL, spec_version_valid,
                              "[0-9]+(.[0-9]+)*", spec, error);
    if (rc != SP_OK)
        return rc;
    src->application_path = "application";
    src->resources_path = "resources";
    rc = spec_required_object(request, "", "application", spec_application_keys,
                              &src->application, error);
    if (rc != SP_OK)
        return rc;
    char path[JOB_SPEC_FIELD_SIZE];
    return spec_object(request, "", "resources", spec_resources_keys, &src->resources, path,
                       sizeof(path), error);
}

static int spec_job_type(const json_t *config, job_spec_error *error)
{
    const json_t *value = spec_member(config, "job_type");
    const char *text;
    if (value == NULL)
        return SP_OK;
    int rc = spec_string_value(value, "config.job_type", 64, &text, error);
    if (rc == SP_OK && strcmp(text, "BATCH") != 0)
        return spec_fail(error, "config.job_type", "only BATCH is supported here, got '%.40s'",
                         text);
    return rc;
}

static int spec_core_etl_version(const json_t *core_etl, json_t *spec, job_spec_error *error)
{
    const json_t *value = spec_member(core_etl, "version");
    const char *text;
    if (value == NULL)
        return SP_OK;
    int rc = spec_string_value(value, "config.core_etl.version", 64, &text, error);
    if (rc != SP_OK)
        return rc;
    if (!spec_matches(text, 1, 64, "._+-", 1))
        return spec_fail(error, "config.core_etl.version", "must match [A-Za-z0-9._+-]{1,64}");
    json_t *out = json_pack("{s:s}", "version", text);
    if (out == NULL || json_object_set_new(spec, "core_etl", out) != 0)
        return spec_out_of_memory(error);
    return SP_OK;
}

static int spec_docs_source(const json_t *request, json_t *spec, spec_source *src,
                            job_spec_error *error)
{
    const json_t *config, *core_etl;
    int rc = spec_required_object(request, "", "config", spec_config_keys, &config, error);
    if (rc != SP_OK)
        return rc;
    if ((rc = spec_copy_string(config, "config", "spark_version", NULL, spec_version_valid,
                               "[0-9]+(.[0-9]+)*", spec, error)) != SP_OK ||
        (rc = spec_job_type(config, error)) != SP_OK ||
        (rc = spec_required_object(config, "config", "core_etl", spec_core_etl_keys, &core_etl,
                                   error)) != SP_OK ||
        (rc = spec_core_etl_version(core_etl, spec, error)) != SP_OK ||
        (rc = spec_required_object(core_etl, "config.core_etl", "job_spec", spec_job_spec_keys,
                                   &src->application, error)) != SP_OK)
        return rc;
    src->application_path = SPEC_JOB_SPEC_PATH;
    src->resources = src->application;
    src->resources_path = SPEC_JOB_SPEC_PATH;
    src->aliases = 1;
    return SP_OK;
}

/* The members both shapes share, after application and resources. */
static int spec_common_tail(const json_t *request, json_t *spec, const char **token,
                            job_spec_error *error)
{
    json_int_t attempts = 1;
    int present, rc;
    if ((rc = spec_copy_string(request, "", "environment", "dev", spec_team_ok,
                               "[a-z0-9-]{1,63}", spec, error)) != SP_OK ||
        (rc = spec_copy_string(request, "", "region", "local", spec_team_ok, "[a-z0-9-]{1,63}",
                               spec, error)) != SP_OK)
        return rc;
    if (spec_member(request, "backend") != NULL &&
        (rc = spec_copy_string(request, "", "backend", NULL, spec_backend_ok, "[a-z0-9_]{1,64}",
                               spec, error)) != SP_OK)
        return rc;
    rc = spec_integer(request, "", "max_attempts", 1, SPEC_ATTEMPTS_MAX, &attempts, &present,
                      error);
    if (rc != SP_OK)
        return rc;
    if (present && json_object_set_new(spec, "max_attempts", json_integer(attempts)) != 0)
        return spec_out_of_memory(error);
    const json_t *value = spec_member(request, "idempotency_token");
    *token = NULL;
    if (value == NULL)
        return SP_OK;
    if ((rc = spec_string_value(value, "idempotency_token", 128, token, error)) != SP_OK)
        return rc;
    if (!job_spec_idempotency_key_valid(*token))
        return spec_fail(error, "idempotency_token", "must match [A-Za-z0-9._:-]{1,128}");
    return SP_OK;
}

static int spec_build(const json_t *request, json_t *spec, const char **token,
                      job_spec_error *error)
{
    int docs = spec_member(request, "config") != NULL;
    spec_source src = {0};
    int rc = spec_check_keys(request, "", docs ? spec_docs_keys : spec_plain_keys, error);
    if (rc != SP_OK && docs && (json_object_get(request, "application") != NULL ||
                                json_object_get(request, "spark_version") != NULL ||
                                json_object_get(request, "resources") != NULL))
        return spec_fail(error, "config",
                         "cannot be combined with application, resources or spark_version; "
                         "use either the config.core_etl shape or the plain one");
    if (rc != SP_OK ||
        (rc = spec_copy_string(request, "", "name", NULL, spec_name_ok, "[A-Za-z0-9._-]{1,128}",
                               spec, error)) != SP_OK ||
        (rc = spec_copy_string(request, "", "team", NULL, spec_team_ok, "[a-z0-9-]{1,63}", spec,
                               error)) != SP_OK)
        return rc;
    rc = docs ? spec_docs_source(request, spec, &src, error)
              : spec_plain_source(request, spec, &src, error);
    if (rc == SP_OK && (rc = spec_application(&src, spec, error)) == SP_OK &&
        (rc = spec_resources(&src, spec, error)) == SP_OK)
        rc = spec_common_tail(request, spec, token, error);
    return rc;
}

int job_spec_normalise(const json_t *request, json_t **spec_out,
                       const char **idempotency_token_out, job_spec_error *error)
{
    const char *token = NULL;
    *spec_out = NULL;
    *idempotency_token_out = NULL;
    error->field[0] = '\0';
    error->message[0] = '\0';
    if (!json_is_object(request))
        return spec_fail(error, "", "expected a JSON object");
    json_t *spec = json_object();
    if (spec == NULL)
        return spec_out_of_memory(error);
    int rc = spec_build(request, spec, &token, error);
    if (rc != SP_OK) {
        json_decref(spec);
        return rc;
    }
    *spec_out = spec;
    *idempotency_token_out = token;
    return SP_OK;
}

/* ---- hash ---- */

int job_spec_hash(const json_t *spec, char hex_out[JOB_SPEC_HASH_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char *text = json_dumps(spec, JSON_SORT_KEYS | JSON_COMPACT);
    if (text == NULL)
        return -1;
    int ok = EVP_Digest(text, strlen(text), digest, &digest_len, EVP_sha256(), NULL);
    free(text);
    if (!ok || digest_len != 32)
        return -1;
    for (unsigned int i = 0; i < digest_len; i++) {
        hex_out[2 * i] = digits[digest[i] >> 4];
        hex_out[2 * i + 1] = digits[digest[i] & 0x0f];
    }
    hex_out[64] = '\0';
    return 0;
}
