/*
 * local_command.c - from a job document to the command that runs it.
 *
 * The job runs as
 *   /bin/sh -c WRAPPER sh <spark_home>/bin/spark-submit --master local[N] ...
 * in its own directory.  The wrapper sends spark-submit's output to
 * driver.log (a file, not the daemon's pipes, so the job outlives a daemon
 * that is killed) and writes spark-submit's exit status to exit_code
 * (through a rename, so a reader never sees half a number).  It traps TERM
 * and INT so that on a cancel it stays until spark-submit has stopped and
 * still records the status; the trap is reset for spark-submit itself.
 *
 * Everything the user sent is checked here before anything starts: a bad
 * field answers SP_INVALID with the field's name, and nothing is created.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local_backend.h"

#define LOCAL_WRAPPER_SCRIPT                                                   \
    "trap : TERM INT; exec </dev/null >/dev/null 2>&1; "                       \
    "\"$@\" >\"$SPARKPLANE_DRIVER_LOG\" 2>&1; rc=$?; "                         \
    "echo $rc >\"$SPARKPLANE_EXIT_FILE.tmp\" && "                              \
    "mv -f \"$SPARKPLANE_EXIT_FILE.tmp\" \"$SPARKPLANE_EXIT_FILE\"; exit $rc"

/* A NULL-terminated vector of owned strings. */
typedef struct local_strings {
    char **items;
    size_t count;
    int failed;
} local_strings;

static void local_strings_add_owned(local_strings *v, char *s)
{
    char **grown;
    if (s == NULL || v->failed) {
        v->failed = 1;
        free(s);
        return;
    }
    grown = realloc(v->items, (v->count + 2) * sizeof(*grown));
    if (grown == NULL) {
        v->failed = 1;
        free(s);
        return;
    }
    v->items = grown;
    v->items[v->count++] = s;
    v->items[v->count] = NULL;
}

static void local_strings_add(local_strings *v, const char *s)
{
    local_strings_add_owned(v, strdup(s));
}

static void local_strings_addf(local_strings *v, const char *fmt, ...) SP_PRINTF(2, 3);

static void local_strings_addf(local_strings *v, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    local_strings_add_owned(v, s);
}

static void local_strings_free(local_strings *v)
{
    for (size_t i = 0; i < v->count; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->count = 0;
}

int local_job_id_valid(const char *job_id)
{
    size_t len = job_id != NULL ? strlen(job_id) : 0;
    if (len == 0 || len > 128 || job_id[0] == '.' || job_id[0] == '_')
        return 0;
    if (strcmp(job_id, LOCAL_CLUSTERS_DIRECTORY) == 0)   /* the clusters' folder */
        return 0;
    return strspn(job_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
           len;
}

static int local_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* An absolute path to a regular file; the message names `field`. */
static int local_check_file(const char *field, const char *path, char *err, size_t err_size)
{
    struct stat st;
    if (path[0] != '/') {
        snprintf(err, err_size, "%s '%s' must be an absolute path on the local machine", field,
                 path);
        return SP_INVALID;
    }
    if (stat(path, &st) != 0) {
        snprintf(err, err_size, "%s '%s': %s", field, path, strerror(errno));
        return SP_INVALID;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "%s '%s' is not a regular file", field, path);
        return SP_INVALID;
    }
    return SP_OK;
}

/* A scalar as command-line text: strings as they are, numbers and booleans written out. */
static char *local_scalar_text(json_t *value)
{
    char *text = NULL;
    if (json_is_string(value))
        return strdup(json_string_value(value));
    if (json_is_integer(value) && asprintf(&text, "%" JSON_INTEGER_FORMAT,
                                           json_integer_value(value)) >= 0)
        return text;
    if (json_is_real(value) && asprintf(&text, "%.17g", json_real_value(value)) >= 0)
        return text;
    if (json_is_boolean(value))
        return strdup(json_is_true(value) ? "true" : "false");
    return NULL;
}

/* application.py_files / application.jars: existing files joined with ','; NULL list = "". */
static int local_join_files(const char *field, json_t *list, char **joined, char *err,
                            size_t err_size)
{
    size_t index, total = 1;
    json_t *item;
    *joined = NULL;
    if (list != NULL && !json_is_array(list)) {
        snprintf(err, err_size, "%s must be an array of file paths", field);
        return SP_INVALID;
    }
    json_array_foreach(list, index, item) {
        char name[64];
        snprintf(name, sizeof(name), "%s[%zu]", field, index);
        if (!json_is_string(item)) {
            snprintf(err, err_size, "%s must be a string", name);
            return SP_INVALID;
        }
        if (strchr(json_string_value(item), ',') != NULL) {
            snprintf(err, err_size, "%s '%s' must not contain a comma", name,
                     json_string_value(item));
            return SP_INVALID;
        }
        if (local_check_file(name, json_string_value(item), err, err_size) != SP_OK)
            return SP_INVALID;
        total += strlen(json_string_value(item)) + 1;
    }
    if ((*joined = calloc(1, total)) == NULL) {
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    json_array_foreach(list, index, item) {
        if (index > 0)
            strcat(*joined, ",");
        strcat(*joined, json_string_value(item));
    }
    return SP_OK;
}

int local_memory_text(json_t *value, char *out, size_t out_size)
{
    const char *text, *unit;
    char *end = NULL;
    long long n;
    if (json_is_integer(value) && json_integer_value(value) > 0) {
        snprintf(out, out_size, "%" JSON_INTEGER_FORMAT "m", json_integer_value(value));
        return 0;
    }
    if (!json_is_string(value))
        return -1;
    text = json_string_value(value);
    errno = 0;
    n = strtoll(text, &end, 10);
    if (end == text || n <= 0 || errno != 0 || text[0] == '-' || text[0] == '+')
        return -1;
    unit = end;
    if (unit[0] == '\0') {
        snprintf(out, out_size, "%lldm", n);
        return 0;
    }
    if (strchr("kKmMgGtT", unit[0]) == NULL)
        return -1;
    if (!(unit[1] == '\0' || strcasecmp(unit + 1, "b") == 0 || strcasecmp(unit + 1, "i") == 0 ||
          strcasecmp(unit + 1, "ib") == 0))
        return -1;
    snprintf(out, out_size, "%lld%c", n, unit[0] | 0x20);
    return 0;
}

/* application.conf: {"key": scalar} -> "--conf key=value" pairs. */
static int local_add_conf(local_strings *argv, json_t *conf, char *err, size_t err_size)
{
    const char *key;
    json_t *value;
    if (conf == NULL)
        return SP_OK;
    if (!json_is_object(conf)) {
        snprintf(err, err_size, "application.conf must be an object of Spark settings");
        return SP_INVALID;
    }
    json_object_foreach(conf, key, value) {
        char *text = local_scalar_text(value);
        if (key[0] == '\0' || strchr(key, '=') != NULL || strpbrk(key, " \t\r\n") != NULL) {
            free(text);
            snprintf(err, err_size, "application.conf key '%s' is not a Spark setting name", key);
            return SP_INVALID;
        }
        if (text == NULL) {
            snprintf(err, err_size, "application.conf.%s must be a string, number or boolean",
                     key);
            return SP_INVALID;
        }
        local_strings_add(argv, "--conf");
        local_strings_addf(argv, "%s=%s", key, text);
        free(text);
    }
    return SP_OK;
}

/* resources.driver: --driver-memory and spark.driver.cores. */
static int local_add_driver(local_strings *argv, json_t *spec, char *err, size_t err_size)
{
    json_t *driver = json_object_get(json_object_get(spec, "resources"), "driver");
    json_t *memory = json_object_get(driver, "memory");
    json_t *cores = json_object_get(driver, "cores");
    char text[64];
    if (driver == NULL || json_is_null(driver))
        return SP_OK;
    if (!json_is_object(driver)) {
        snprintf(err, err_size, "resources.driver must be an object");
        return SP_INVALID;
    }
    if (cores != NULL && !json_is_null(cores)) {
        if (!json_is_integer(cores) || json_integer_value(cores) < 1 ||
            json_integer_value(cores) > 1024) {
            snprintf(err, err_size, "resources.driver.cores must be an integer from 1 to 1024");
            return SP_INVALID;
        }
        local_strings_add(argv, "--conf");
        local_strings_addf(argv, "spark.driver.cores=%" JSON_INTEGER_FORMAT,
                           json_integer_value(cores));
    }
    if (memory != NULL && !json_is_null(memory)) {
        if (local_memory_text(memory, text, sizeof(text)) != 0) {
            snprintf(err, err_size, "resources.driver.memory must look like \"512m\" or \"2g\"");
            return SP_INVALID;
        }
        local_strings_add(argv, "--driver-memory");
        local_strings_add(argv, text);
    }
    return SP_OK;
}

/* application.args: strings (numbers and booleans are written out). */
static int local_add_args(local_strings *argv, json_t *args, char *err, size_t err_size)
{
    size_t index;
    json_t *item;
    if (args != NULL && !json_is_null(args) && !json_is_array(args)) {
        snprintf(err, err_size, "application.args must be an array of strings");
        return SP_INVALID;
    }
    json_array_foreach(args, index, item) {
        char *text = json_is_null(item) ? NULL : local_scalar_text(item);
        if (text == NULL) {
            snprintf(err, err_size, "application.args[%zu] must be a string", index);
            return SP_INVALID;
        }
        local_strings_add_owned(argv, text);
    }
    return SP_OK;
}

typedef struct local_application {
    const char *file;
    const char *class_name;
    int is_python;
    char *py_files;
    char *jars;
} local_application;

static int local_application_read(json_t *app, local_application *out, char *err,
                                  size_t err_size)
{
    json_t *file = json_object_get(app, "file"), *class_name = json_object_get(app, "class");
    memset(out, 0, sizeof(*out));
    if (!json_is_object(app)) {
        snprintf(err, err_size, "application must be an object with a file");
        return SP_INVALID;
    }
    if (!json_is_string(file) || json_string_length(file) == 0) {
        snprintf(err, err_size, "application.file is required (a .py or .jar path)");
        return SP_INVALID;
    }
    out->file = json_string_value(file);
    out->is_python = local_has_suffix(out->file, ".py");
    if (!out->is_python && !local_has_suffix(out->file, ".jar")) {
        snprintf(err, err_size, "application.file '%s' must end in .py or .jar", out->file);
        return SP_INVALID;
    }
    if (local_check_file("application.file", out->file, err, err_size) != SP_OK)
        return SP_INVALID;
    if (class_name != NULL && !json_is_null(class_name) &&
        (!json_is_string(class_name) || json_string_length(class_name) == 0)) {
        snprintf(err, err_size, "application.class must be a non-empty string");
        return SP_INVALID;
    }
    out->class_name = json_string_value(class_name);
    if (!out->is_python && out->class_name == NULL) {
        snprintf(err, err_size, "application.class is required for a .jar application");
        return SP_INVALID;
    }
    int rc = local_join_files("application.py_files", json_object_get(app, "py_files"),
                              &out->py_files, err, err_size);
    if (rc == SP_OK)
        rc = local_join_files("application.jars", json_object_get(app, "jars"), &out->jars, err,
                              err_size);
    return rc;
}

static int local_spark_submit_path(json_t *job, char **path_out, char *err, size_t err_size)
{
    const char *home = json_string_value(json_object_get(json_object_get(job, "runtime"),
                                                         "spark_home"));
    *path_out = NULL;
    if (home == NULL || home[0] == '\0') {
        snprintf(err, err_size, "runtime.spark_home is not set for this spark_version "
                                "(configure spark_versions.<version>.spark_home)");
        return SP_INVALID;
    }
    if (asprintf(path_out, "%s/bin/spark-submit", home) < 0) {
        *path_out = NULL;
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    if (access(*path_out, X_OK) != 0) {
        snprintf(err, err_size, "runtime.spark_home '%s' has no executable bin/spark-submit",
                 home);
        free(*path_out);
        *path_out = NULL;
        return SP_INVALID;
    }
    return SP_OK;
}

/* spark-submit's options, in the order documented in README.md. */
static int local_add_submit_args(local_strings *argv, const local_settings *settings,
                                 const char *job_id, json_t *spec,
                                 const local_application *app, char *err, size_t err_size)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    int rc;
    local_strings_add(argv, "--master");
    local_strings_addf(argv, "local[%lld]", (long long)settings->cores_per_job);
    local_strings_add(argv, "--name");
    local_strings_add(argv, name != NULL && name[0] != '\0' ? name : job_id);
    if (settings->event_log) {
        local_strings_add(argv, "--conf");
        local_strings_add(argv, "spark.eventLog.enabled=true");
        local_strings_add(argv, "--conf");
        local_strings_addf(argv, "spark.eventLog.dir=file:%s/%s/events",
                           settings->work_directory, job_id);
    }
    rc = local_add_conf(argv, json_object_get(json_object_get(spec, "application"), "conf"), err,
                        err_size);
    for (size_t i = 0; rc == SP_OK && settings->extra_conf[i] != NULL; i++) {
        local_strings_add(argv, "--conf");
        local_strings_add(argv, settings->extra_conf[i]);
    }
    if (rc == SP_OK)
        rc = local_add_driver(argv, spec, err, err_size);
    if (rc != SP_OK)
        return rc;
    if (!app->is_python) {
        local_strings_add(argv, "--class");
        local_strings_add(argv, app->class_name);
    }
    if (app->py_files[0] != '\0') {
        local_strings_add(argv, "--py-files");
        local_strings_add(argv, app->py_files);
    }
    if (app->jars[0] != '\0') {
        local_strings_add(argv, "--jars");
        local_strings_add(argv, app->jars);
    }
    local_strings_add(argv, app->file);
    return local_add_args(argv, json_object_get(json_object_get(spec, "application"), "args"),
                          err, err_size);
}

static void local_add_env(local_strings *env, const local_settings *settings, json_t *job,
                          const char *job_dir, int is_python)
{
    local_strings_addf(env, "SPARK_HOME=%s",
                       json_string_value(json_object_get(json_object_get(job, "runtime"),
                                                         "spark_home")));
    local_strings_addf(env, "SPARKPLANE_DRIVER_LOG=%s/driver.log", job_dir);
    local_strings_addf(env, "SPARKPLANE_EXIT_FILE=%s/exit_code", job_dir);
    if (is_python) {
        local_strings_addf(env, "PYSPARK_PYTHON=%s", settings->python);
        local_strings_addf(env, "PYSPARK_DRIVER_PYTHON=%s", settings->python);
    }
    if (settings->java_home != NULL && settings->java_home[0] != '\0')
        local_strings_addf(env, "JAVA_HOME=%s", settings->java_home);
}

int local_command_build(const local_settings *settings, const char *job_id, json_t *job,
                        local_command *out, char *err, size_t err_size)
{
    local_strings argv = {0}, env = {0};
    local_application app = {0};
    json_t *spec = json_object_get(job, "spec");
    char *submit = NULL, *job_dir = NULL;
    int rc = SP_INVALID;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(spec)) {
        snprintf(err, err_size, "spec must be an object");
        goto fail;
    }
    if ((rc = local_application_read(json_object_get(spec, "application"), &app, err,
                                     err_size)) != SP_OK ||
        (rc = local_spark_submit_path(job, &submit, err, err_size)) != SP_OK)
        goto fail;
    if (asprintf(&job_dir, "%s/%s", settings->work_directory, job_id) < 0) {
        job_dir = NULL;
        rc = SP_ERROR;
        goto fail;
    }
    local_strings_add(&argv, "/bin/sh");
    local_strings_add(&argv, "-c");
    local_strings_add(&argv, LOCAL_WRAPPER_SCRIPT);
    local_strings_add(&argv, "sh");
    local_strings_add(&argv, submit);
    if ((rc = local_add_submit_args(&argv, settings, job_id, spec, &app, err, err_size)) !=
        SP_OK)
        goto fail;
    local_add_env(&env, settings, job, job_dir, app.is_python);
    if (argv.failed || env.failed) {
        snprintf(err, err_size, "out of memory building the spark-submit command");
        rc = SP_ERROR;
        goto fail;
    }
    *out = (local_command){argv.items, argv.count, env.items, env.count, job_dir};
    free(submit);
    free(app.py_files);
    free(app.jars);
    return SP_OK;
fail:
    local_strings_free(&argv);
    local_strings_free(&env);
    free(submit);
    free(job_dir);
    free(app.py_files);
    free(app.jars);
    return rc;
}

void local_command_free(local_command *command)
{
    local_strings argv = {command->argv, command->argc, 0};
    local_strings env = {command->env, command->envc, 0};
    local_strings_free(&argv);
    local_strings_free(&env);
    free(command->job_dir);
    memset(command, 0, sizeof(*command));
}
