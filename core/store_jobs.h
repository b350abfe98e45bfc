/*
 * store_jobs.h - batch jobs, their events and idempotency keys in the store.
 *
 * Rows come back as jansson objects shaped like the API's job resource, so
 * the REST layer returns them as they are:
 *
 *   {"id", "name", "team", "state", "backend", "spark_app_id", "attempt",
 *    "max_attempts", "reason", "submitted_by", "created_at", "updated_at",
 *    "finished_at", "spec": {...the normalised job...}}
 *
 * (absent values are JSON null).  Every state change writes the job row and
 * its job_events row in one BEGIN IMMEDIATE transaction; a change is
 * conditional on the state the caller saw, so two writers never both win.
 * Timestamps are "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC), so text order is time
 * order.
 */
#ifndef SPARKPLANE_CORE_STORE_JOBS_H
#define SPARKPLANE_CORE_STORE_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* A new job as the runner hands it over. */
typedef struct store_job_new {
    const char *id;              /* "job-<26 chars>", made by the runner */
    const char *team;
    const char *name;
    const char *backend;         /* may be NULL until placed */
    const char *submitted_by;
    int max_attempts;            /* >= 1 */
    const json_t *spec;          /* the normalised job document */
    const char *reason;          /* reason of the creation event, e.g. "submitted" */
} store_job_new;

/* Idempotency for a create: (team, key) -> request hash and job id. */
typedef struct store_idempotency {
    const char *key;             /* NULL: not idempotent */
    const char *request_hash;    /* hex SHA-256 of the canonical request */
    uint64_t ttl_seconds;        /* how long the key is kept */
} store_idempotency;

typedef enum store_create_result {
    STORE_CREATED = 0,           /* a new job; *job_out is it */
    STORE_REPLAYED = 1,          /* same key, same request: *job_out is the earlier job */
    STORE_KEY_CONFLICT = 2,      /* same key, another request: nothing written */
    STORE_FAILED = -1            /* err says why; nothing written */
} store_create_result;

/*
 * Inserts the job in state PENDING with its creation event and, when
 * `idem->key` is set, the idempotency row - all in one transaction.  An
 * expired key is replaced as if it were absent.
 */
store_create_result store_job_create(store *s, const store_job_new *job,
                                     const store_idempotency *idem, json_t **job_out,
                                     char *err, size_t err_size);

/* 0 and the job; 1 when there is no such job; -1 on error. */
int store_job_get(store *s, const char *id, json_t **job_out);

/* GET /jobs filters.  NULL / 0 fields do not filter. */
typedef struct store_job_filter {
    const char *team;            /* required by the API, optional here */
    const char *state;
    const char *name;
    const char *page_token;      /* opaque, from a previous page */
    size_t limit;                /* 1..1000 */
} store_job_filter;

/*
 * Newest first, keyset-paginated on (created_at, id).  *next_token_out is a
 * malloc'd token when more rows may follow, else NULL.  A page_token that
 * does not decode is -2 (the caller answers 400).
 */
int store_job_list(store *s, const store_job_filter *filter, json_t **jobs_out,
                   char **next_token_out);

/* Extra columns a transition may set; NULL / 0 leave them as they are. */
typedef struct store_job_update {
    const char *backend;
    const char *spark_app_id;
    int attempt;                 /* 0: unchanged */
} store_job_update;

/*
 * Moves a job from `from_state` (NULL: whatever it is, unless finished) to
 * `to_state` and records the event with `reason`.  Entering SUCCEEDED,
 * FAILED or CANCELLED sets finished_at.  Returns 0 on success, 1 when the job
 * is not in `from_state` (someone else moved it; nothing written), 2 when it
 * does not exist, -1 on error.  The same state again with another reason
 * only updates reason/fields (no event), so a PENDING job can say why it
 * still waits.
 */
int store_job_transition(store *s, const char *id, const char *from_state,
                         const char *to_state, const char *reason,
                         const store_job_update *update, char *err, size_t err_size);

/* Every event of a job, oldest first: [{"at","from_state","to_state","reason"}]. 1 if no job. */
int store_job_events(store *s, const char *id, json_t **events_out);

/*
 * Jobs in any of `states` (NULL-terminated), oldest first, at most `limit`
 * (0 = all).  The runner's reconcile and admission loops use this.
 */
int store_jobs_in_states(store *s, const char *const *states, size_t limit, json_t **jobs_out);

/* How many jobs are in `states`, optionally only for one team or backend. */
int store_jobs_count(store *s, const char *const *states, const char *team, const char *backend,
                     int64_t *count_out);

/*
 * What an unexpired idempotency key of `team` names, whatever its kind:
 * SP_OK with kind ("job" or "cluster"), the resource id and the request
 * hash; SP_NOT_FOUND; SP_ERROR.  For creates that must check a replay
 * before anything else (clusters: a replay must not count against quotas).
 */
int store_idempotency_lookup(store *s, const char *team, const char *key, char kind_out[16],
                             char id_out[128], char hash_out[65]);

/* Deletes idempotency keys that expired before now; returns how many (or -1). */
int64_t store_idempotency_expire(store *s);

/* "2026-11-23T13:44:43.123Z" for now (shared by the store's writers). */
void store_timestamp_now(char out[32]);
/* The same shape for now + `seconds` (capped at 100 years): expiry times. */
void store_timestamp_after(uint64_t seconds, char out[32]);

#endif
