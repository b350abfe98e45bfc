/*
 * audit.c - the audit log file and the decisions metric (audit.h).
 *
 * One process-wide file descriptor, opened with O_APPEND: a record is one
 * JSON line handed to write(2) at once.  Reload opens the configured path
 * again and swaps descriptors, so a rotated file is let go.  The metric's
 * series are registered on first use of each (transport, decision, reason)
 * triple; the set is small and fixed (audit_reason).
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

static int audit_fd = -1;
static char *audit_path;

static const char *const audit_reason_labels[] = {
    [AUDIT_OK] = "ok",
    [AUDIT_UNAUTHENTICATED] = "unauthenticated",
    [AUDIT_VIEWER] = "viewer_write",
    [AUDIT_OTHER_TEAM] = "other_team",
    [AUDIT_REFUSED] = "refused",
};

int audit_configure(const config *cfg, diag_list *problems)
{
    int fd = open(cfg->audit_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        diag_add(problems, "audit.file: cannot open '%s': %s", cfg->audit_file, strerror(errno));
        return -1;
    }
    char *path = strdup(cfg->audit_file);
    if (path == NULL) {
        close(fd);
        diag_add(problems, "audit.file: out of memory");
        return -1;
    }
    if (audit_fd >= 0)
        close(audit_fd);
    if (audit_path == NULL || strcmp(audit_path, path) != 0)
        log_msg(SP_LOG_INFO, "audit", "audit log %s", path);
    free(audit_path);
    audit_fd = fd;
    audit_path = path;
    return 0;
}

void audit_close(void)
{
    if (audit_fd >= 0)
        close(audit_fd);
    audit_fd = -1;
    free(audit_path);
    audit_path = NULL;
}

static void audit_count(const audit_entry *entry)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "transport=\"%s\",decision=\"%s\",reason=\"%s\"",
             entry->transport, entry->reason == AUDIT_OK ? "allow" : "deny",
             audit_reason_labels[entry->reason]);
    metrics_add(metrics_register(SP_METRIC_COUNTER, "sparkplane_auth_decisions_total",
                                 "Authorization decisions by transport, decision and reason.",
                                 labels),
                1);
}

static void audit_timestamp(char *out, size_t out_size)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char seconds[32];
    strftime(seconds, sizeof(seconds), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, out_size, "%s.%03ldZ", seconds, now.tv_nsec / 1000000);
}

/*
 * A JSON string of at most `size` bytes of `text` (a principal's fixed-size
 * field may lack its NUL; a path may carry bytes that are not UTF-8, and a
 * record must be written all the same).
 */
static json_t *audit_text(const char *text, size_t size)
{
    if (text == NULL)
        return json_string("");
    json_t *value = json_stringn(text, strnlen(text, size));
    return value ? value : json_string("(not UTF-8)");
}

static json_t *audit_document(const audit_entry *entry)
{
    char time_text[48];
    audit_timestamp(time_text, sizeof(time_text));
    const sp_principal *p = entry->principal;
    json_t *doc =
        json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s}", "time", time_text, "transport",
                  entry->transport, "peer", audit_text(entry->peer, 128), "principal",
                  p ? audit_text(p->subject, sizeof(p->subject)) : json_null(), "role",
                  p ? audit_text(p->role, sizeof(p->role)) : json_null(), "action",
                  audit_text(entry->action, 512), "object", audit_text(entry->object, 2048),
                  "decision", entry->reason == AUDIT_OK ? "allow" : "deny");
    if (doc == NULL)
        return NULL;
    if (entry->grpc_status != NULL)
        json_object_set_new(doc, "status", json_string(entry->grpc_status));
    else
        json_object_set_new(doc, "status", json_integer(entry->http_status));
    if (entry->reason != AUDIT_OK)
        json_object_set_new(doc, "reason",
                            audit_text(entry->message && entry->message[0]
                                           ? entry->message
                                           : audit_reason_labels[entry->reason],
                                       1024));
    return doc;
}

void audit_record(const audit_entry *entry)
{
    audit_count(entry);
    json_t *doc = audit_document(entry);
    char *line = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(doc);
    if (line == NULL) {
        log_msg(SP_LOG_WARN, "audit", "out of memory writing an audit record");
        return;
    }
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps left room for its NUL: take it for the newline */
    ssize_t written = audit_fd >= 0 ? write(audit_fd, line, len + 1) : -1;
    if (written != (ssize_t)(len + 1)) {
        line[len] = '\0';
        log_fields(SP_LOG_WARN, "audit", "audit log not writable; record follows", "error",
                   written < 0 ? strerror(errno) : "short write", "record", line, NULL);
    }
    free(line);
}
