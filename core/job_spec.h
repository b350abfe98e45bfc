/*
 * job_spec.h - a POST /api/v1/jobs body -> the normalised job document.
 *
 * Pure functions (no I/O, no daemon state), so the unit tests and the fuzz
 * target reach every rule.  Two request shapes are accepted:
 *
 * The plain form:
 *   {"name", "team", "spark_version",
 *    "application": {"file", "class"?, "args"?, "py_files"?, "jars"?, "conf"?},
 *    "resources"?: {"driver"?: {"cores", "memory"},
 *                   "executor"?: {"cores", "memory", "instances"},
 *                   "dynamic_allocation"?: {"enabled", "min_executors", "max_executors"}},
 *    "environment"?, "region"?, "backend"?, "idempotency_token"?, "max_attempts"?}
 *
 * The platform docs shape:
 *   {"name", "team", "config": {"spark_version", "job_type"?: "BATCH",
 *                               "core_etl": {"version"?, "job_spec": {...}}},
 *    plus the same optional top-level keys as the plain form}
 * where core_etl.job_spec carries the application and its sizes:
 *   "file" | "main_application_file"  -> application.file
 *   "class" | "main_class"            -> application.class
 *   "args" | "arguments"              -> application.args
 *   "py_files", "jars"                -> application.py_files, .jars
 *   "conf" | "spark_conf"             -> application.conf
 *   "driver", "executor", "dynamic_allocation" -> resources.*
 * and core_etl.version, when given, is kept as "core_etl": {"version"}.
 * Errors name the path as the client wrote it ("config.core_etl.job_spec.file").
 *
 * The result is the document core/runner.h describes, with defaults filled
 * (environment "dev", region "local", driver 1 core / 1g, executor 1 core /
 * 1g / 1 instance, dynamic allocation off) and memory sizes written one way
 * ("1024m" and "1g" both become "1g"), so equal requests give equal documents.
 */
#ifndef SPARKPLANE_CORE_JOB_SPEC_H
#define SPARKPLANE_CORE_JOB_SPEC_H

#include <jansson.h>

#define JOB_SPEC_FIELD_SIZE 256
#define JOB_SPEC_MESSAGE_SIZE 512
#define JOB_SPEC_HASH_SIZE 65 /* 64 hex digits and a NUL */

/* Why a request was refused: "resources.executor.memory" and the full message. */
typedef struct job_spec_error {
    char field[JOB_SPEC_FIELD_SIZE];      /* "" when the body as a whole is wrong */
    char message[JOB_SPEC_MESSAGE_SIZE];  /* starts with the field: "name: required" */
} job_spec_error;

/*
 * SP_OK: *spec_out is the new normalised document (caller decrefs) and
 * *idempotency_token_out the request's idempotency_token or NULL (borrowed
 * from `request`).  SP_INVALID: `error` says which field and why; nothing
 * is allocated.  SP_ERROR: out of memory.
 */
int job_spec_normalise(const json_t *request, json_t **spec_out,
                       const char **idempotency_token_out, job_spec_error *error);

/*
 * The canonical request hash: SHA-256 (hex) of the normalised document
 * dumped with sorted keys and no whitespace.  0, or -1 when it cannot be
 * serialised.
 */
int job_spec_hash(const json_t *spec, char hex_out[JOB_SPEC_HASH_SIZE]);

/* Whether an Idempotency-Key / idempotency_token is 1..128 of [A-Za-z0-9._:-]. */
int job_spec_idempotency_key_valid(const char *key);

#endif
