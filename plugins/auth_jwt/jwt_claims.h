/*
 * jwt_claims.h - the registered claims a token must carry, and the group
 * map that turns its groups into teams and a role (jwt_claims.c).
 */
#ifndef AUTH_JWT_CLAIMS_H
#define AUTH_JWT_CLAIMS_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include <sparkplane/sparkplane.h>

#include "team_rules.h"

typedef struct jwt_claim_rules {
    const char *issuer;          /* exact "iss" */
    const char *audience;        /* "aud" (string or array) must hold it */
    int64_t leeway_seconds;      /* clock skew allowed on exp, nbf, iat */
    const char *principal_claim; /* "sub", "email", ... */
    const char *groups_claim;    /* "groups" */
} jwt_claim_rules;

/* "group=team:role" entries (team_rules.h): a rule's key is the group, one team per rule. */
typedef team_rules jwt_group_map;

/* iss, aud, exp (required), nbf and iat (when present) at time `now`. */
int jwt_claims_check(const json_t *claims, const jwt_claim_rules *rules, time_t now, char *err,
                     size_t err_size);

/* Parses and adds one "group=team:role" entry; the message names the entry. */
int jwt_group_map_add(jwt_group_map *map, const char *entry, size_t index, char *err,
                      size_t err_size);
void jwt_group_map_clear(jwt_group_map *map);

/*
 * Fills principal from the principal claim and the mapped groups: teams
 * are the mapped teams of its groups, the role is the highest one mapped.
 * A token none of whose groups is mapped is refused.  0 or -1 + message.
 */
int jwt_principal_fill(const json_t *claims, const jwt_claim_rules *rules, const jwt_group_map *map,
                       sp_principal *principal, char *err, size_t err_size);

#endif
