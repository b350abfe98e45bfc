/*
 * log.c - structured logging to stderr.
 *
 * Each event is one line written with a single write(2), so lines from the
 * daemon and its children never interleave mid-line.  The kv format follows
 * logfmt (values quoted when they hold spaces, quotes or '='); the json
 * format is one object per line with the same keys.  Level and format are
 * process-wide and change on reload.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static sp_log_level log_level = SP_LOG_INFO;
static log_format log_output_format = LOG_FORMAT_KV;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

void log_configure(sp_log_level level, log_format format)
{
    log_level = level;
    log_output_format = format;
}

sp_log_level log_current_level(void)
{
    return log_level;
}

int log_level_parse(const char *text, sp_log_level *out)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
        if (strcmp(text, log_level_names[i]) == 0) {
            *out = (sp_log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_format_parse(const char *text, log_format *out)
{
    if (strcmp(text, "kv") == 0) {
        *out = LOG_FORMAT_KV;
        return 0;
    }
    if (strcmp(text, "json") == 0) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

/* A bounded line buffer; appends past the end are dropped, never overflow. */
typedef struct log_line {
    char text[LOG_LINE_MAX];
    size_t len;
} log_line;

static void line_append(log_line *line, const char *data, size_t len)
{
    size_t room = sizeof(line->text) - 2 - line->len; /* keep space for "\n" */
    if (len > room)
        len = room;
    memcpy(line->text + line->len, data, len);
    line->len += len;
}

static void line_append_str(log_line *line, const char *s)
{
    line_append(line, s, strlen(s));
}

static int kv_needs_quotes(const char *value)
{
    if (*value == '\0')
        return 1;
    for (const char *p = value; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            return 1;
    return 0;
}

/* Escapes for both formats: quotes, backslashes and control characters. */
static void line_append_escaped(log_line *line, const char *value)
{
    char buf[8];
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf[0] = '\\';
            buf[1] = (char)*p;
            line_append(line, buf, 2);
        } else if (*p == '\n') {
            line_append(line, "\\n", 2);
        } else if (*p < 0x20) {
            snprintf(buf, sizeof(buf), "\\u%04x", *p);
            line_append_str(line, buf);
        } else {
            line_append(line, (const char *)p, 1);
        }
    }
}

static void line_add_field(log_line *line, const char *key, const char *value, int first)
{
    if (log_output_format == LOG_FORMAT_JSON) {
        line_append_str(line, first ? "{\"" : ",\"");
        line_append_escaped(line, key);
        line_append_str(line, "\":\"");
        line_append_escaped(line, value);
        line_append_str(line, "\"");
        return;
    }
    if (!first)
        line_append_str(line, " ");
    line_append_str(line, key);
    line_append_str(line, "=");
    if (kv_needs_quotes(value)) {
        line_append_str(line, "\"");
        line_append_escaped(line, value);
        line_append_str(line, "\"");
    } else {
        line_append_str(line, value);
    }
}

static void line_start(log_line *line, sp_log_level level, const char *tag_key,
                       const char *tag_value)
{
    struct timeval tv;
    struct tm tm;
    char stamp[40];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    line->len = 0;
    line_add_field(line, "ts", stamp, 1);
    line_add_field(line, "level", log_level_names[level], 0);
    line_add_field(line, tag_key, tag_value, 0);
}

static void line_finish(log_line *line)
{
    if (log_output_format == LOG_FORMAT_JSON)
        line_append_str(line, "}");
    line->text[line->len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line->text, line->len);
    (void)ignored;
}

void log_vmsg(sp_log_level level, const char *subsystem, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    log_line line;
    char message[LOG_LINE_MAX / 2];
    vsnprintf(message, sizeof(message), fmt, ap);
    line_start(&line, level, "subsystem", subsystem);
    line_add_field(&line, "msg", message, 0);
    line_finish(&line);
}

void log_msg(sp_log_level level, const char *subsystem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, subsystem, fmt, ap);
    va_end(ap);
}

void log_fields(sp_log_level level, const char *subsystem, const char *message, ...)
{
    if (level > log_level)
        return;
    log_line line;
    va_list ap;
    line_start(&line, level, "subsystem", subsystem);
    line_add_field(&line, "msg", message, 0);
    va_start(ap, message);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (key == NULL)
            break;
        const char *value = va_arg(ap, const char *);
        line_add_field(&line, key, value ? value : "", 0);
    }
    va_end(ap);
    line_finish(&line);
}

void log_plugin(sp_log_level level, const char *plugin, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    log_line line;
    char message[LOG_LINE_MAX / 2];
    vsnprintf(message, sizeof(message), fmt, ap);
    line_start(&line, level, "plugin", plugin);
    line_add_field(&line, "msg", message, 0);
    line_finish(&line);
}
