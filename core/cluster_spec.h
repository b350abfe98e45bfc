/*
 * cluster_spec.h - a POST /api/v1/clusters body -> the normalised cluster
 * request, and the names a cluster gets.
 *
 * Pure functions over the configuration (no I/O, no daemon state), so the
 * unit tests and the fuzz target reach every rule.  The request:
 *
 *   {"team", "environment", "region"?, "size"?, "catalogs"?: ["name", ...],
 *    "ttl"?: "30m" | "12h" | "7d" | "persistent", "idempotency_token"?}
 *
 * Defaults: region = the first configured region, size "small" (or the
 * first configured size), catalogs [], ttl = the environment's
 * default_ttl.  Every refusal names the field: "environment: 'qa' is not
 * one of dev, staging, ci, prod".  Unknown top-level keys are refused.
 *
 * The normalised document (what is hashed for Idempotency-Key and stored
 * as the cluster's spec):
 *
 *   {"team", "environment", "region", "size", "catalogs": [sorted, unique],
 *    "ttl": "12h" | "persistent", "ttl_seconds": N (0 = persistent),
 *    "resources": {"driver": {"cores", "memory": "1g"}, "executors": N,
 *                  "executor": {"cores", "memory"}},
 *    "cores": total cores (driver + executors * executor cores),
 *    "memory_mib": total memory}
 */
#ifndef SPARKPLANE_CORE_CLUSTER_SPEC_H
#define SPARKPLANE_CORE_CLUSTER_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CLUSTER_SPEC_FIELD_SIZE 64
#define CLUSTER_SPEC_MESSAGE_SIZE 512
#define CLUSTER_SPEC_MAX_CATALOGS 32
#define CLUSTER_SPEC_TTL_MAX_S (366ULL * 24 * 3600)   /* longest finite ttl: 366d */

typedef struct cluster_spec_error {
    char field[CLUSTER_SPEC_FIELD_SIZE];     /* "" when the body as a whole is wrong */
    char message[CLUSTER_SPEC_MESSAGE_SIZE]; /* starts with the field */
} cluster_spec_error;

/*
 * SP_OK and *spec_out (new reference) and *idempotency_token_out
 * (borrowed from request, or NULL); SP_INVALID with `error`; SP_ERROR when
 * out of memory.  Does not check the caller or quotas.
 */
int cluster_spec_normalise(const config *cfg, const json_t *request, json_t **spec_out,
                           const char **idempotency_token_out, cluster_spec_error *error);

/*
 * "90s", "30m", "12h", "7d": one whole number and one unit (s, m, h, d),
 * 1 s .. CLUSTER_SPEC_TTL_MAX_S.  "persistent" -> 0.  0 and
 * *seconds_out, or -1 with a message in err (without the field name).
 */
int cluster_spec_parse_ttl(const char *text, uint64_t *seconds_out, char *err, size_t err_size);

/*
 * Checks a ttl against an environment: persistent only when max_ttl_s is
 * 0 (no bound), a finite ttl <= max_ttl_s.  0, or -1 with a message naming
 * the field `field` ("ttl").
 */
int cluster_spec_check_ttl_bound(const config_environment *env, uint64_t ttl_seconds,
                                 const char *field, char *err, size_t err_size);

/*
 * The body of POST /clusters/{id}/scale: {"size": "large"} or
 * {"executors": N} (1..CLUSTER_SPEC_MAX_EXECUTORS), not both.  SP_OK with
 * *scale_out = {"size": name, "executors": N, "executor": {"cores",
 * "memory"}} (size present only when given; executors from the size when
 * a size is given, executor settings from the size or from `current`'s
 * resources.executor); SP_INVALID with error.
 */
#define CLUSTER_SPEC_MAX_EXECUTORS 256
int cluster_spec_scale(const config *cfg, const json_t *current_spec, const json_t *request,
                       json_t **scale_out, cluster_spec_error *error);

/* The body of POST /clusters/{id}/ttl: {"ttl": "..."}; checked against the environment. */
int cluster_spec_ttl_request(const config *cfg, const char *environment, const json_t *request,
                             uint64_t *ttl_seconds_out, cluster_spec_error *error);

/*
 * Names.  id: "sc-{team}-{env}-{region}-{suffix}" shortened so it fits
 * min(CLUSTER_ID_MAX (63), out_size - 1): team and region are cut first, an
 * environment too long to leave room for them last, the suffix never;
 * suffix = 6 random [a-z0-9] chars chosen by the caller.  namespace:
 * "sjns-{team}-{env}-{region}".  Endpoint: provisioning.endpoint_pattern
 * with {team} {env} {region} {domain} replaced.  Host: the endpoint's host
 * part (between "sc://" and ":" or "/").  Each returns 0 or -1 when the
 * result does not fit.
 */
int cluster_spec_id(const char *team, const char *environment, const char *region,
                    const char *suffix, char *out, size_t out_size);
int cluster_spec_namespace(const char *team, const char *environment, const char *region,
                           char *out, size_t out_size);
int cluster_spec_endpoint(const config *cfg, const char *team, const char *environment,
                          const char *region, char *out, size_t out_size);
int cluster_spec_endpoint_host(const char *endpoint, char *out, size_t out_size);

/*
 * The Spark settings of the named catalogs for a placement: each catalog's
 * conf with {team} {env} {region} replaced, as a new JSON object of
 * strings ({} for no catalogs).  Later catalogs win on equal keys.  NULL
 * when a catalog is unknown or out of memory.
 */
json_t *cluster_spec_catalog_conf(const config *cfg, const json_t *catalog_names,
                                  const char *team, const char *environment, const char *region);

#endif
