/*
 * local_log.c - reading a job's driver.log.
 *
 * Three readers, all bounded so a huge log costs no more than a small one:
 *  - the Spark application id: in local mode Spark names the application
 *    "local-<epoch ms>"; Spark 4 prints it in the event-log line ("Logging
 *    events to file:.../eventlog_v2_local-1795443064948/...") and user code
 *    may print it.  The scan is incremental (a saved offset) and takes a
 *    token only once the character after its digits has been written.
 *  - the failure reason: the last few meaningful lines of the log tail: the
 *    exception line that ends a Python traceback, Java "...Exception: ..."
 *    and "Caused by:" lines, spark-submit's "Error: ..." and log4j ERROR
 *    lines.  INFO/WARN log lines and stack frames are skipped.
 *  - a slice for job_logs, turned into valid UTF-8.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local_backend.h"

#define LOCAL_APP_ID_SCAN_CHUNK (1u << 20) /* per call */
#define LOCAL_APP_ID_MAX_SCAN   (64u << 20) /* give up after this much log */
#define LOCAL_REASON_TAIL       (64u << 10)
#define LOCAL_REASON_LINES      3
#define LOCAL_LOG_READ_MAX      (4u << 20)

/* Reads up to `len` bytes at `offset`; returns the count, or -1. */
static ssize_t local_read_at(const char *path, uint64_t offset, char *buffer, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t total = 0, n;
    if (fd < 0)
        return -1;
    while ((size_t)total < len &&
           (n = pread(fd, buffer + total, len - (size_t)total, (off_t)offset + total)) > 0)
        total += n;
    close(fd);
    return total;
}

static int local_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* "local-<digits>" at `p`, whole, with a written character after it: its length, else 0. */
static size_t local_app_id_at(const char *buffer, size_t len, size_t p)
{
    size_t end = p + 6;
    if (p + 6 > len || memcmp(buffer + p, "local-", 6) != 0)
        return 0;
    if (p > 0 && local_is_alnum(buffer[p - 1]))
        return 0;
    while (end < len && buffer[end] >= '0' && buffer[end] <= '9')
        end++;
    if (end == p + 6 || end >= len || local_is_alnum(buffer[end]) || end - p > 40)
        return 0;
    return end - p;
}

char *local_log_find_app_id(const char *log_path, uint64_t *scan_offset)
{
    char *buffer, *id = NULL;
    ssize_t n;
    if (*scan_offset >= LOCAL_APP_ID_MAX_SCAN ||
        (buffer = malloc(LOCAL_APP_ID_SCAN_CHUNK)) == NULL)
        return NULL;
    n = local_read_at(log_path, *scan_offset, buffer, LOCAL_APP_ID_SCAN_CHUNK);
    for (ssize_t p = 0; n > 0 && id == NULL && p < n; p++) {
        size_t id_len = buffer[p] == 'l' ? local_app_id_at(buffer, (size_t)n, (size_t)p) : 0;
        if (id_len > 0)
            id = strndup(buffer + p, id_len);
    }
    /* Keep a tail: a token may still be being written or cut by the chunk. */
    if (id == NULL && n > 64)
        *scan_offset += (uint64_t)n - 64;
    free(buffer);
    return id;
}

/* ---- the failure reason ---------------------------------------------------- */

/* A log4j line such as "26/11/23 14:10:37 INFO SparkContext: ...": its level, else NULL. */
static const char *local_log4j_level(const char *line)
{
    static const char *const levels[] = {" INFO ", " WARN ", " DEBUG ", " TRACE ", " ERROR ",
                                         " FATAL "};
    if (strlen(line) < 20 || line[0] < '0' || line[0] > '9')
        return NULL;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        const char *at = strstr(line, levels[i]);
        if (at != NULL && at - line < 32)
            return levels[i] + 1;
    }
    return NULL;
}

typedef struct local_reason_scan {
    char *lines[LOCAL_REASON_LINES]; /* the newest last; borrowed from the buffer */
    size_t count;
    int in_traceback;
} local_reason_scan;

static void local_reason_keep(local_reason_scan *scan, char *line)
{
    if (scan->count > 0 && strcmp(scan->lines[scan->count - 1], line) == 0)
        return;
    if (scan->count == LOCAL_REASON_LINES) {
        memmove(scan->lines, scan->lines + 1, (LOCAL_REASON_LINES - 1) * sizeof(char *));
        scan->count--;
    }
    scan->lines[scan->count++] = line;
}

static void local_reason_consider(local_reason_scan *scan, char *line)
{
    const char *level = local_log4j_level(line);
    int indented = line[0] == ' ' || line[0] == '\t';

    if (strcmp(line, "Traceback (most recent call last):") == 0) {
        scan->in_traceback = 1;
        return;
    }
    if (line[0] == '\0')
        return;
    if (scan->in_traceback) {
        if (indented)
            return;
        scan->in_traceback = 0;
        local_reason_keep(scan, line); /* the exception that ended the traceback */
        return;
    }
    if (level != NULL) {
        if (strncmp(level, "ERROR", 5) == 0 || strncmp(level, "FATAL", 5) == 0)
            local_reason_keep(scan, line);
        return;
    }
    if (!indented && (strstr(line, "Exception") != NULL || strstr(line, "Error:") != NULL ||
                      strncmp(line, "Error", 5) == 0))
        local_reason_keep(scan, line);
}

/* Spark's own log4j chatter ("26/11/23 14:34:39 INFO Executor: ...") says nothing about a failure. */
static int local_is_log4j_chatter(const char *line)
{
    return strstr(line, " INFO ") != NULL || strstr(line, " WARN ") != NULL ||
           strstr(line, " DEBUG ") != NULL;
}

/* The last non-empty line that is not log4j chatter, as a fallback reason. */
static char *local_last_line(char *buffer, size_t len)
{
    char *line = NULL;
    for (size_t i = 0; i < len; i += strlen(buffer + i) + 1)
        if (buffer[i] != '\0' && buffer[i] != ' ' && !local_is_log4j_chatter(buffer + i))
            line = buffer + i;
    return line;
}

static char *local_reason_join(char *const *lines, size_t count, size_t max_len)
{
    char *out = calloc(1, max_len + 1);
    size_t used = 0, per_line = count > 0 ? max_len / count : max_len;
    for (size_t i = 0; out != NULL && i < count; i++) {
        size_t len = strlen(lines[i]);
        if (len > per_line - 1)
            len = per_line - 1;
        if (used > 0)
            out[used++] = '\n';
        memcpy(out + used, lines[i], len);
        used += len;
    }
    return out;
}

char *local_log_failure_lines(const char *log_path, size_t max_len)
{
    struct stat st;
    local_reason_scan scan = {{NULL}, 0, 0};
    char *buffer = NULL, *start, *out;
    uint64_t offset = 0;
    ssize_t n = 0;

    if (max_len < 16 || stat(log_path, &st) != 0 || st.st_size == 0)
        return calloc(1, 1);
    if ((uint64_t)st.st_size > LOCAL_REASON_TAIL)
        offset = (uint64_t)st.st_size - LOCAL_REASON_TAIL;
    if ((buffer = malloc(LOCAL_REASON_TAIL + 1)) == NULL ||
        (n = local_read_at(log_path, offset, buffer, LOCAL_REASON_TAIL)) <= 0) {
        free(buffer);
        return calloc(1, 1);
    }
    buffer[n] = '\0';
    start = buffer;
    if (offset > 0 && (start = memchr(buffer, '\n', (size_t)n)) != NULL)
        start++; /* the first line was cut */
    else if (start == NULL)
        start = buffer;
    for (char *p = start; p < buffer + n; p++)
        if (*p == '\n' || *p == '\r' || *p == '\0')
            *p = '\0';
    for (char *line = start; line < buffer + n; line += strlen(line) + 1)
        local_reason_consider(&scan, line);
    if (scan.count == 0 && (scan.lines[0] = local_last_line(start, (size_t)(buffer + n - start))))
        scan.count = 1;
    out = local_reason_join(scan.lines, scan.count, max_len);
    free(buffer);
    return out;
}

/* ---- job_logs slices ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 when invalid, -1 when cut at `len`. */
static int local_utf8_sequence(const unsigned char *s, size_t len)
{
    int need;
    unsigned int cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2, cp = s[0] & 0x1fu;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3, cp = s[0] & 0x0fu;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4, cp = s[0] & 0x07u;
    else
        return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= len)
            return -1;
        if ((s[i] & 0xc0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

/* Copies `len` bytes as UTF-8 into out (3x room); returns the bytes consumed. */
static size_t local_utf8_copy(const unsigned char *in, size_t len, int at_eof, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        int n = local_utf8_sequence(in + i, len - i);
        if (n < 0 && !at_eof && i > 0)
            break; /* the rest of this character is in the next slice */
        if (n <= 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += 1;
            continue;
        }
        memcpy(out + o, in + i, (size_t)n);
        o += (size_t)n;
        i += (size_t)n;
    }
    out[o] = '\0';
    return i;
}

int local_log_read(const char *log_path, uint64_t offset, uint64_t limit, char **data_out,
                   uint64_t *next_out, uint64_t *size_out, char *err, size_t err_size)
{
    struct stat st;
    unsigned char *raw = NULL;
    ssize_t n = 0;
    size_t want;

    *data_out = NULL;
    *next_out = offset;
    *size_out = 0;
    if (stat(log_path, &st) == 0)
        *size_out = (uint64_t)st.st_size;
    else if (errno != ENOENT) {
        snprintf(err, err_size, "cannot read %s: %s", log_path, strerror(errno));
        return SP_ERROR;
    }
    if (limit == 0 || limit > LOCAL_LOG_READ_MAX)
        limit = LOCAL_LOG_READ_MAX;
    want = offset < *size_out ? (size_t)(*size_out - offset < limit ? *size_out - offset : limit)
                              : 0;
    raw = malloc(want + 1);
    *data_out = malloc(want * 3 + 1);
    if (raw == NULL || *data_out == NULL) {
        free(raw);
        free(*data_out);
        *data_out = NULL;
        snprintf(err, err_size, "out of memory reading the log");
        return SP_ERROR;
    }
    if (want > 0 && (n = local_read_at(log_path, offset, (char *)raw, want)) < 0)
        n = 0;
    *next_out = offset + local_utf8_copy(raw, (size_t)n, offset + (uint64_t)n >= *size_out,
                                         *data_out);
    free(raw);
    return SP_OK;
}
