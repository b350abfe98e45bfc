/*
 * cli_job_file.c - reading a job file and turning YAML into JSON.
 *
 * yaml_tree already refuses what makes YAML dangerous (aliases, huge or
 * deep documents, duplicate keys), so the conversion here only walks the
 * tree.  Numbers follow the core schema strictly: "1.0" is a float, "1_000"
 * and "0x10" stay strings, and an integer beyond int64 stays a string
 * rather than losing digits.
 */
#include "cli_job_file.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "units.h"
#include "yaml_tree.h"

static int job_file_fail(char *err, size_t err_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int job_file_fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && err_size > 0)
        vsnprintf(err, err_size, fmt, ap);
    va_end(ap);
    return -1;
}

static int job_file_read_fd(int fd, char **data_out, size_t *len_out)
{
    size_t len = 0, capacity = 64 * 1024;
    char *data = malloc(capacity + 1);
    if (data == NULL)
        return ENOMEM;
    for (;;) {
        if (len == capacity) {
            if (capacity >= CLI_JOB_FILE_MAX_BYTES) {
                free(data);
                return EFBIG;
            }
            capacity *= 2;
            char *grown = realloc(data, capacity + 1);
            if (grown == NULL) {
                free(data);
                return ENOMEM;
            }
            data = grown;
        }
        ssize_t n = read(fd, data + len, capacity - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int error = errno;
            free(data);
            return error;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    data[len] = '\0';
    *data_out = data;
    *len_out = len;
    return 0;
}

int cli_job_file_read(const char *path, char **data_out, size_t *len_out, char *err,
                      size_t err_size)
{
    int from_stdin = strcmp(path, "-") == 0;
    FILE *file = from_stdin ? stdin : fopen(path, "rb");
    *data_out = NULL;
    *len_out = 0;
    if (file == NULL)
        return job_file_fail(err, err_size, "%s: cannot open: %s", path, strerror(errno));
    int error = job_file_read_fd(fileno(file), data_out, len_out);
    if (!from_stdin)
        fclose(file);
    if (error == EFBIG)
        return job_file_fail(err, err_size, "%s: larger than %u bytes",
                             from_stdin ? "stdin" : path, CLI_JOB_FILE_MAX_BYTES);
    if (error != 0)
        return job_file_fail(err, err_size, "%s: cannot read: %s", from_stdin ? "stdin" : path,
                             strerror(error));
    return 0;
}

/* Whether text is a YAML 1.2 core-schema float (decimal, optional exponent). */
static int job_file_is_float(const char *text)
{
    static const char pattern[] =
        "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$";
    regex_t regex;
    if (regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int match = regexec(&regex, text, 0, NULL, 0) == 0;
    regfree(&regex);
    return match;
}

json_t *cli_yaml_plain_scalar(const char *text)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    for (size_t i = 0; nulls[i] != NULL; i++)
        if (strcmp(text, nulls[i]) == 0)
            return json_null();
    for (size_t i = 0; trues[i] != NULL; i++)
        if (strcmp(text, trues[i]) == 0)
            return json_true();
    for (size_t i = 0; falses[i] != NULL; i++)
        if (strcmp(text, falses[i]) == 0)
            return json_false();
    int64_t integer;
    if (units_parse_int64(text, &integer) == 0)
        return json_integer((json_int_t)integer);
    if (job_file_is_float(text) && strspn(text, "+-0123456789") != strlen(text)) {
        double number = strtod(text, NULL);
        if (isfinite(number))
            return json_real(number);
    }
    return json_string(text);
}

static json_t *job_file_convert(const yaml_tree_node *node, char *err, size_t err_size);

static json_t *job_file_convert_map(const yaml_tree_node *node, char *err, size_t err_size)
{
    json_t *object = json_object();
    for (size_t i = 0; object != NULL && i < node->count; i++) {
        json_t *value = job_file_convert(node->items[i], err, err_size);
        if (value == NULL || json_object_set_new(object, node->keys[i], value) != 0) {
            if (value != NULL)
                job_file_fail(err, err_size, "%s:%d:%d: key '%.100s' is not valid UTF-8",
                              node->file, node->key_lines[i], node->key_columns[i],
                              node->keys[i]);
            json_decref(object);
            return NULL;
        }
    }
    return object;
}

static json_t *job_file_convert(const yaml_tree_node *node, char *err, size_t err_size)
{
    json_t *value = NULL;
    if (node->kind == YAML_TREE_MAP)
        return job_file_convert_map(node, err, err_size);
    if (node->kind == YAML_TREE_SEQUENCE) {
        value = json_array();
        for (size_t i = 0; value != NULL && i < node->count; i++) {
            json_t *item = job_file_convert(node->items[i], err, err_size);
            if (item == NULL || json_array_append_new(value, item) != 0) {
                json_decref(value);
                return NULL;
            }
        }
        return value;
    }
    value = node->plain ? cli_yaml_plain_scalar(node->value) : json_string(node->value);
    if (value == NULL) /* json_string refuses invalid UTF-8 */
        job_file_fail(err, err_size, "%s:%d:%d: the value is not valid UTF-8", node->file,
                      node->line, node->column);
    return value;
}

static int job_file_parse_json(const char *name, const char *data, size_t len, json_t **out,
                               char *err, size_t err_size)
{
    json_error_t error;
    *out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    if (*out == NULL)
        return job_file_fail(err, err_size, "%s:%d:%d: %s", name, error.line, error.column,
                             error.text);
    return 0;
}

static int job_file_parse_yaml(const char *name, const char *data, size_t len, json_t **out,
                               char *err, size_t err_size)
{
    yaml_tree_node *root = NULL;
    if (yaml_tree_parse_buffer(name, data, len, &root, err, err_size) != 0)
        return -1;
    *out = job_file_convert(root, err, err_size);
    yaml_tree_free(root);
    return *out != NULL ? 0 : -1;
}

int cli_job_file_parse(const char *name, const char *data, size_t len, json_t **job_out,
                       char *err, size_t err_size)
{
    size_t start = 0;
    while (start < len && (data[start] == ' ' || data[start] == '\t' || data[start] == '\r' ||
                           data[start] == '\n'))
        start++;
    json_t *job = NULL;
    *job_out = NULL;
    if (start >= len)
        return job_file_fail(err, err_size, "%s: the job file is empty", name);
    int rc = data[start] == '{' ? job_file_parse_json(name, data, len, &job, err, err_size)
                                : job_file_parse_yaml(name, data, len, &job, err, err_size);
    if (rc != 0)
        return -1;
    if (!json_is_object(job)) {
        json_decref(job);
        return job_file_fail(err, err_size, "%s: the job must be a mapping of fields (name, "
                             "team, application, ...), not a list or a single value", name);
    }
    *job_out = job;
    return 0;
}
