/*
 * gateway_route.h - which cluster a Spark Connect request goes to, and
 * whether its caller may use it.  Pure logic: no sockets, no event loop.
 *
 * Routing (gateway_route_resolve):
 *   1. gRPC metadata x-sparkplane-cluster-id, when present, names the
 *      cluster; an unknown id is NOT_FOUND "no cluster 'x'".
 *   2. Otherwise the :authority host (port dropped, case folded, one
 *      trailing dot ignored) is matched against gateway.authority_patterns
 *      in order.  A pattern is literal text with the placeholders {team},
 *      {env}, {region} and {domain} (gateway.domain); patterns without
 *      {region} use gateway.default_region.
 *   3. Nothing matches (or no :authority, or an IP literal): NOT_FOUND with
 *      the host forms that would work.
 *
 * Hyphens make splits ambiguous: "feature-eng-prod" fits {team}-{env} as
 * (feature-eng, prod) or, with {team}-{env}-{region}, as (feature, eng,
 * prod).  The rules: {env} is [a-z0-9]+ without '-'; {team} and {region}
 * are DNS-label text [a-z0-9-]+ that neither starts nor ends with '-'.
 * Every way a host fits the patterns is a candidate, ordered by pattern,
 * then by the longest {team} first (the right-most split), then the
 * longest {region}; the first candidate that names a registered cluster
 * wins.  When none does, the NOT_FOUND message names the first candidate
 * ("no cluster for team feature-eng, environment prod, region local").
 *
 * Status codes are gRPC's (the gateway answers them in grpc-status).
 */
#ifndef SPARKPLANE_CORE_GATEWAY_ROUTE_H
#define SPARKPLANE_CORE_GATEWAY_ROUTE_H

#include <stddef.h>

#include <sparkplane/auth.h>

#include "cluster_registry.h"
#include "config.h"

/* The gRPC status codes route and authorization decisions produce. */
typedef enum gateway_grpc_code {
    GATEWAY_GRPC_OK = 0,
    GATEWAY_GRPC_INVALID_ARGUMENT = 3,
    GATEWAY_GRPC_DEADLINE_EXCEEDED = 4,
    GATEWAY_GRPC_NOT_FOUND = 5,
    GATEWAY_GRPC_PERMISSION_DENIED = 7,
    GATEWAY_GRPC_RESOURCE_EXHAUSTED = 8,
    GATEWAY_GRPC_UNAVAILABLE = 14,
    GATEWAY_GRPC_UNAUTHENTICATED = 16
} gateway_grpc_code;

#define GATEWAY_CLUSTER_ID_HEADER "x-sparkplane-cluster-id"
#define GATEWAY_PATTERN_MAX 253   /* a DNS name */
#define GATEWAY_PATTERN_PARTS_MAX 9

typedef enum gateway_pattern_part_kind {
    GATEWAY_PART_LITERAL = 0,
    GATEWAY_PART_TEAM,
    GATEWAY_PART_ENV,
    GATEWAY_PART_REGION,
    GATEWAY_PART_DOMAIN
} gateway_pattern_part_kind;

typedef struct gateway_pattern_part {
    gateway_pattern_part_kind kind;
    char text[GATEWAY_PATTERN_MAX + 1];   /* LITERAL: lower-case text */
} gateway_pattern_part;

typedef struct gateway_pattern {
    char text[GATEWAY_PATTERN_MAX + 1];   /* as written */
    size_t part_count;
    gateway_pattern_part parts[GATEWAY_PATTERN_PARTS_MAX];
    int uses_domain;
    int uses_region;
} gateway_pattern;

/*
 * Checks and splits one pattern.  -1 with a message for an empty pattern,
 * an unknown or repeated placeholder, a missing {team} or {env}, two
 * placeholders with nothing between them (ambiguous), or text that cannot
 * be part of a host name.  Used by config.c at load.
 */
int gateway_pattern_compile(const char *text, gateway_pattern *out, char *err, size_t err_size);

typedef struct gateway_router gateway_router;

/*
 * A router for these patterns.  `domain` replaces {domain} (required when
 * a pattern uses it); `default_region` is the region of patterns without
 * {region}; `port` only appears in messages (sc://...:port).
 */
int gateway_router_new(const char *const *patterns, size_t pattern_count, const char *domain,
                       const char *default_region, int port, gateway_router **out, char *err,
                       size_t err_size);
/* The same from cfg->gateway_* (port: the first gateway.listen, else 15002). */
int gateway_router_from_config(const config *cfg, gateway_router **out, char *err,
                               size_t err_size);
void gateway_router_free(gateway_router *router);

/*
 * The cluster for a request.  `cluster_id` is the x-sparkplane-cluster-id
 * value and `authority` the :authority; either may be NULL.  Returns
 * GATEWAY_GRPC_OK with *out set, or a status with a message for the client.
 */
gateway_grpc_code gateway_route_resolve(const gateway_router *router,
                                        const cluster_registry *registry,
                                        const char *cluster_id, const char *authority,
                                        const cluster_entry **out, char *message,
                                        size_t message_size);

/*
 * May `principal` use `cluster`?  Members and admins of the cluster's team
 * may, and admins whose teams include "*" (principal.h).  Anyone else gets
 * NOT_FOUND with the very message gateway_route_resolve gives for a
 * cluster that does not exist (`cluster_id`: the x-sparkplane-cluster-id
 * the request was routed by, or NULL when routed by its authority), so
 * another team's cluster cannot be told from a missing one.  A viewer of
 * the team gets PERMISSION_DENIED (a Spark session runs code and writes).
 */
gateway_grpc_code gateway_route_authorize(const sp_principal *principal,
                                          const cluster_entry *cluster, const char *cluster_id,
                                          char *message, size_t message_size);

typedef enum gateway_user_id_action {
    GATEWAY_USER_ID_OK = 0,      /* user_id is the caller: forward as is */
    GATEWAY_USER_ID_REPLACE,     /* empty or foreign: rewrite it to the caller's subject */
    GATEWAY_USER_ID_DENY         /* foreign and policy deny: PERMISSION_DENIED, message set */
} gateway_user_id_action;

/* What to do with a request's user_context.user_id (NULL: absent). */
gateway_user_id_action gateway_route_check_user_id(const sp_principal *principal,
                                                   const char *user_id,
                                                   config_user_id_policy policy, char *message,
                                                   size_t message_size);

#endif
