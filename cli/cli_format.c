/*
 * cli_format.c - tables, ages, job details and error lines.
 *
 * A table keeps its cells as cleaned strings and measures widths in
 * UTF-8 code points, so names with accents still line up; wide (CJK)
 * characters would need wcwidth() and a locale, which a CLI run from
 * scripts should not depend on.  Every value read from a job may be
 * missing, null or of an unexpected type: it shows as "-", never crashes.
 */
#include "cli_format.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"

struct cli_table {
    size_t columns;
    char **headers;
    char **cells;        /* rows * columns */
    size_t rows;
    size_t capacity;     /* rows */
};

/* ---- text ---- */

size_t cli_text_width(const char *text)
{
    size_t width = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++)
        if ((*c & 0xC0) != 0x80)
            width++;
    return width;
}

static int format_is_blank(unsigned char c)
{
    return c < 0x20 || c == ' ' || c == 0x7f;
}

/* Copies text into a fresh string with control characters as spaces. */
static char *format_clean_dup(const char *text)
{
    char *copy = strdup(text != NULL ? text : "-");
    if (copy == NULL)
        return NULL;
    for (char *c = copy; *c != '\0'; c++)
        if (format_is_blank((unsigned char)*c))
            *c = ' ';
    return copy;
}

/* Byte index where the character after the first `chars` characters starts. */
static size_t format_char_offset(const char *text, size_t chars)
{
    size_t i = 0, seen = 0;
    for (; text[i] != '\0'; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80 && seen++ == chars)
            break;
    }
    return i;
}

void cli_text_truncate(const char *text, size_t max_chars, char *out, size_t out_size)
{
    size_t used = 0;
    int space = 0, overflow = 0;
    if (out_size < 4) {
        if (out_size > 0)
            out[0] = '\0';
        return;
    }
    /* Collapse blanks into single spaces, as much as the buffer holds. */
    for (const unsigned char *c = (const unsigned char *)(text ? text : ""); *c; c++) {
        if (format_is_blank(*c)) {
            space = used > 0;
            continue;
        }
        if (used + (size_t)space + 1 >= out_size) {
            overflow = 1;
            break;
        }
        if (space)
            out[used++] = ' ';
        space = 0;
        out[used++] = (char)*c;
    }
    out[used] = '\0';
    if (!overflow && cli_text_width(out) <= max_chars)
        return;
    size_t cut = format_char_offset(out, max_chars > 3 ? max_chars - 3 : 0);
    while (cut > 0 && (cut + 4 > out_size || ((unsigned char)out[cut] & 0xC0) == 0x80))
        cut--; /* fit "..." and never split a character */
    while (cut > 0 && out[cut - 1] == ' ')
        cut--;
    memcpy(out + cut, "...", 4);
}

int cli_parse_timestamp(const char *text, time_t *out)
{
    struct tm tm;
    int consumed = 0;
    if (text == NULL)
        return -1;
    memset(&tm, 0, sizeof tm);
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed != 19)
        return -1;
    const char *rest = text + consumed;
    if (*rest == '.') {
        rest++;
        while (*rest >= '0' && *rest <= '9')
            rest++;
    }
    long offset = 0;
    if (*rest == 'Z' && rest[1] == '\0') {
        offset = 0;
    } else {
        int hours, minutes, used = 0;
        if ((*rest != '+' && *rest != '-') ||
            sscanf(rest + 1, "%2d:%2d%n", &hours, &minutes, &used) != 2 || used != 5 ||
            rest[6] != '\0')
            return -1;
        offset = (hours * 3600L + minutes * 60L) * (*rest == '-' ? -1 : 1);
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - offset;
    return 0;
}

void cli_format_age(const char *timestamp, time_t now, char *out, size_t out_size)
{
    time_t then;
    if (cli_parse_timestamp(timestamp, &then) != 0) {
        snprintf(out, out_size, "-");
        return;
    }
    long long age = now > then ? (long long)(now - then) : 0;
    if (age < 120)
        snprintf(out, out_size, "%llds", age);
    else if (age < 120 * 60)
        snprintf(out, out_size, "%lldm", age / 60);
    else if (age < 48 * 3600)
        snprintf(out, out_size, "%lldh", age / 3600);
    else
        snprintf(out, out_size, "%lldd", age / 86400);
}

/* ---- tables ---- */

cli_table *cli_table_new(size_t columns, const char *const *headers)
{
    cli_table *table = calloc(1, sizeof *table);
    if (table == NULL)
        return NULL;
    table->columns = columns;
    table->headers = calloc(columns, sizeof *table->headers);
    if (table->headers == NULL)
        goto fail;
    for (size_t i = 0; i < columns; i++)
        if ((table->headers[i] = format_clean_dup(headers[i])) == NULL)
            goto fail;
    return table;
fail:
    cli_table_free(table);
    return NULL;
}

int cli_table_add_row(cli_table *table, const char *const *cells)
{
    if (table->rows == table->capacity) {
        size_t capacity = table->capacity ? table->capacity * 2 : 16;
        char **grown = realloc(table->cells, capacity * table->columns * sizeof *grown);
        if (grown == NULL)
            return -1;
        table->cells = grown;
        table->capacity = capacity;
    }
    char **row = table->cells + table->rows * table->columns;
    for (size_t i = 0; i < table->columns; i++) {
        if ((row[i] = format_clean_dup(cells[i])) == NULL) {
            while (i > 0)
                free(row[--i]);
            return -1;
        }
    }
    table->rows++;
    return 0;
}

size_t cli_table_rows(const cli_table *table)
{
    return table->rows;
}

static void table_print_row(char *const *cells, const size_t *widths, size_t columns, FILE *out)
{
    for (size_t i = 0; i < columns; i++) {
        if (i + 1 == columns) {
            fprintf(out, "%s\n", cells[i]);
            break;
        }
        size_t pad = widths[i] - cli_text_width(cells[i]) + 2;
        fprintf(out, "%s%*s", cells[i], (int)pad, "");
    }
}

void cli_table_print(const cli_table *table, FILE *out)
{
    size_t *widths = calloc(table->columns ? table->columns : 1, sizeof *widths);
    if (widths == NULL)
        return;
    for (size_t i = 0; i < table->columns; i++)
        widths[i] = cli_text_width(table->headers[i]);
    for (size_t r = 0; r < table->rows; r++) {
        for (size_t i = 0; i < table->columns; i++) {
            size_t width = cli_text_width(table->cells[r * table->columns + i]);
            if (width > widths[i])
                widths[i] = width;
        }
    }
    table_print_row(table->headers, widths, table->columns, out);
    for (size_t r = 0; r < table->rows; r++)
        table_print_row(table->cells + r * table->columns, widths, table->columns, out);
    free(widths);
}

void cli_table_free(cli_table *table)
{
    if (table == NULL)
        return;
    for (size_t i = 0; table->headers != NULL && i < table->columns; i++)
        free(table->headers[i]);
    for (size_t i = 0; i < table->rows * table->columns; i++)
        free(table->cells[i]);
    free(table->headers);
    free(table->cells);
    free(table);
}

/* ---- resources ---- */

/* A member as text: strings as they are, numbers printed, anything else NULL. */
static const char *format_member(const json_t *object, const char *key, char *buf, size_t size)
{
    const json_t *value = json_object_get(object, key);
    if (json_is_string(value))
        return json_string_value(value);
    if (json_is_integer(value)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(value));
        return buf;
    }
    if (json_is_real(value)) {
        snprintf(buf, size, "%g", json_real_value(value));
        return buf;
    }
    if (json_is_boolean(value))
        return json_is_true(value) ? "true" : "false";
    return NULL;
}

void cli_print_jobs_table(const json_t *jobs, time_t now, FILE *out)
{
    static const char *const headers[] = {"ID", "NAME", "TEAM", "STATE", "AGE", "UPDATED",
                                          "REASON"};
    cli_table *table = cli_table_new(7, headers);
    size_t index;
    const json_t *job;
    if (table == NULL)
        return;
    json_array_foreach(jobs, index, job) {
        char age[32], updated[32], reason[CLI_REASON_WIDTH * 4 + 8];
        const char *reason_text = format_member(job, "reason", reason, sizeof reason);
        cli_format_age(format_member(job, "created_at", age, sizeof age), now, age, sizeof age);
        cli_format_age(format_member(job, "updated_at", updated, sizeof updated), now, updated,
                       sizeof updated);
        cli_text_truncate(reason_text != NULL ? reason_text : "", CLI_REASON_WIDTH, reason,
                          sizeof reason);
        const char *cells[7] = {json_string_value(json_object_get(job, "id")),
                                json_string_value(json_object_get(job, "name")),
                                json_string_value(json_object_get(job, "team")),
                                json_string_value(json_object_get(job, "state")),
                                age, updated, reason[0] != '\0' ? reason : "-"};
        if (cli_table_add_row(table, cells) != 0)
            break;
    }
    cli_table_print(table, out);
    cli_table_free(table);
}

/* Prints text after a "key:" column; later lines are indented under the first. */
static void detail_print_value(const char *key, const char *value, FILE *out)
{
    fprintf(out, "%-15s", key);
    if (value == NULL) {
        fputs("-\n", out);
        return;
    }
    for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++) {
        if (*c == '\n')
            fputs(c[1] != '\0' ? "\n               " : "", out);
        else
            fputc(*c == '\t' ? ' ' : format_is_blank(*c) ? ' ' : *c, out);
    }
    fputc('\n', out);
}

static void detail_print_time(const char *key, const json_t *job, time_t now, FILE *out)
{
    char buf[64], age[32], line[128];
    const char *timestamp = format_member(job, key, buf, sizeof buf);
    cli_format_age(timestamp, now, age, sizeof age);
    if (timestamp != NULL && strcmp(age, "-") != 0)
        snprintf(line, sizeof line, "%.60s (%s ago)", timestamp, age);
    else
        snprintf(line, sizeof line, "%.60s", timestamp != NULL ? timestamp : "-");
    char label[32];
    snprintf(label, sizeof label, "%s:", key);
    detail_print_value(label, line, out);
}

void cli_print_job_detail(const json_t *job, time_t now, FILE *out)
{
    static const char *const plain[] = {"id", "name", "team", "state", "reason", "backend",
                                        "spark_app_id", "submitted_by", NULL};
    char buf[64], label[32], attempt[96];
    for (size_t i = 0; plain[i] != NULL; i++) {
        snprintf(label, sizeof label, "%s:", plain[i]);
        detail_print_value(label, format_member(job, plain[i], buf, sizeof buf), out);
    }
    const char *tried = format_member(job, "attempt", buf, sizeof buf);
    char max_buf[32];
    const char *max = format_member(job, "max_attempts", max_buf, sizeof max_buf);
    snprintf(attempt, sizeof attempt, "%s of %s", tried ? tried : "-", max ? max : "-");
    detail_print_value("attempt:", attempt, out);
    detail_print_time("created_at", job, now, out);
    detail_print_time("updated_at", job, now, out);
    detail_print_time("finished_at", job, now, out);
    const json_t *spec = json_object_get(job, "spec");
    detail_print_value("spark_version:",
                       json_string_value(json_object_get(spec, "spark_version")), out);
    detail_print_value("application:", json_string_value(json_object_get(
                                           json_object_get(spec, "application"), "file")),
                       out);
}

void cli_print_events_table(const json_t *events, FILE *out)
{
    static const char *const headers[] = {"AT", "FROM", "TO", "REASON"};
    cli_table *table = cli_table_new(4, headers);
    size_t index;
    const json_t *event;
    if (table == NULL)
        return;
    json_array_foreach(json_object_get(events, "events"), index, event) {
        char reason[CLI_REASON_WIDTH * 8 + 8];
        const char *text = json_string_value(json_object_get(event, "reason"));
        cli_text_truncate(text != NULL ? text : "", CLI_REASON_WIDTH * 2, reason, sizeof reason);
        const char *cells[4] = {json_string_value(json_object_get(event, "at")),
                                json_string_value(json_object_get(event, "from_state")),
                                json_string_value(json_object_get(event, "to_state")),
                                reason[0] != '\0' ? reason : "-"};
        if (cli_table_add_row(table, cells) != 0)
            break;
    }
    cli_table_print(table, out);
    cli_table_free(table);
}

/* ---- errors ---- */

static void error_format_raw(long status, const char *body, size_t len, char *out,
                             size_t out_size)
{
    char first[201];
    size_t n = 0;
    while (n < len && n < sizeof first - 1 && body[n] != '\n' && body[n] != '\r') {
        first[n] = body[n];
        n++;
    }
    first[n] = '\0';
    char clean[220];
    cli_text_truncate(first, 160, clean, sizeof clean);
    if (clean[0] != '\0')
        snprintf(out, out_size, "HTTP %ld: %s", status, clean);
    else
        snprintf(out, out_size, "HTTP %ld with an empty body", status);
}

void cli_format_api_error(long status, const char *body, size_t len, char *out, size_t out_size)
{
    json_t *root = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *error = json_object_get(root, "error");
    const char *message = json_string_value(json_object_get(error, "message"));
    const char *code = json_string_value(json_object_get(error, "code"));
    const json_t *details = json_object_get(error, "details");
    if (message == NULL) {
        error_format_raw(status, body != NULL ? body : "", body != NULL ? len : 0, out,
                         out_size);
        goto done;
    }
    char clean_message[1024], clean_code[128];
    cli_text_truncate(message, sizeof clean_message / 4, clean_message, sizeof clean_message);
    cli_text_truncate(code != NULL ? code : "error", 100, clean_code, sizeof clean_code);
    int used = snprintf(out, out_size, "%s (%s, HTTP %ld)", clean_message, clean_code, status);
    if (details != NULL && !json_is_null(details) && used >= 0 && (size_t)used < out_size) {
        char *text = json_dumps(details, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (text != NULL)
            snprintf(out + used, out_size - (size_t)used, "\n  details: %.2000s", text);
        free(text);
    }
done:
    json_decref(root);
}

int cli_exit_for_http_status(long status)
{
    if (status == 401 || status == 403)
        return CLI_EXIT_AUTH;
    if (status == 404)
        return CLI_EXIT_NOT_FOUND;
    return status >= 200 && status < 300 ? CLI_EXIT_OK : CLI_EXIT_API_ERROR;
}
