/*
 * audit.h - the audit log: one line per authorization decision.
 *
 * Every authenticated REST request and every gateway RPC ends in a
 * decision (allow or deny); audit_record writes it as one JSON object per
 * line to the file of `audit.file` and counts it in
 * sparkplane_auth_decisions_total{transport,decision,reason}.
 *
 *   {"time":"2026-11-23T22:50:01.123Z","transport":"rest","peer":"10.0.0.7:51234",
 *    "principal":"alice","role":"member","action":"DELETE /api/v1/jobs/{id}",
 *    "object":"/api/v1/jobs/j-1","decision":"deny","status":404,
 *    "reason":"job belongs to another team"}
 *
 * REST statuses are HTTP numbers, gateway statuses gRPC code names ("OK",
 * "NOT_FOUND").  The file is opened with O_APPEND and each record is one
 * write(2), so lines from a reopened or rotated file never interleave; the
 * daemon reopens it on every reload (SIGHUP), which is what logrotate needs.
 * When the file cannot be written the record goes to the daemon log
 * instead (warn), so no decision is lost silently.
 */
#ifndef SPARKPLANE_CORE_AUDIT_H
#define SPARKPLANE_CORE_AUDIT_H

#include <sparkplane/auth.h>

#include "config.h"
#include "diag.h"

/* The reason labels of the decisions metric: a small fixed set. */
typedef enum audit_reason {
    AUDIT_OK = 0,          /* allowed */
    AUDIT_UNAUTHENTICATED, /* no credential, or one no provider accepted */
    AUDIT_VIEWER,          /* a viewer asked to write */
    AUDIT_OTHER_TEAM,      /* the object or team belongs to a team the caller is not in */
    AUDIT_REFUSED          /* another refusal (a gateway user_id the caller may not use) */
} audit_reason;

typedef struct audit_entry {
    const char *transport;         /* "rest" or "gateway" */
    const char *peer;              /* "host:port" */
    const sp_principal *principal; /* NULL: unauthenticated */
    const char *action;            /* "GET /api/v1/jobs/{id}", or the gRPC method path */
    const char *object;            /* the request path, or "cluster:<id>" */
    audit_reason reason;           /* AUDIT_OK: allow; anything else: deny */
    const char *message;           /* why, for denials (NULL: none) */
    int http_status;               /* REST: the answer's status */
    const char *grpc_status;       /* gateway: the gRPC code name (http_status unused) */
} audit_entry;

/*
 * Opens (start) or reopens (reload) the configured file.  -1 with a
 * problem naming audit.file when it cannot be opened; the previous file
 * stays in use then.
 */
int audit_configure(const config *cfg, diag_list *problems);

/* Writes and counts one decision. */
void audit_record(const audit_entry *entry);

/* Closes the file (shutdown). */
void audit_close(void);

#endif
