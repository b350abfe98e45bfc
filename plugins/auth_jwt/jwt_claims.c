/*
 * jwt_claims.c - what a verified token says: the registered claims it must
 * carry and the identity it gives.
 *
 * iss must equal the configured issuer, aud (a string or an array) must
 * hold the configured audience, exp is required; nbf and iat are checked
 * when present; all three allow the configured leeway for clock skew.
 *
 * The group map is a list of "group=team:role" entries.  A caller's teams
 * are the teams mapped from its groups (in map order, each once), its role
 * the highest mapped (admin > member > viewer).  Team "*" (every team) is
 * allowed for admin entries only.  A token whose groups map to nothing is
 * refused: an identity with no team and no role can do nothing useful,
 * and a clear 401 says why better than a later 403.  Messages name the
 * claim that failed and never repeat claim values from the token.
 */
#include "jwt_claims.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- registered claims -------------------------------------------------- */

/* A NumericDate claim: 1 when present (value in *out), 0 absent, -1 not a number. */
static int jwt_claim_time(const json_t *claims, const char *name, double *out)
{
    const json_t *value = json_object_get(claims, name);
    if (value == NULL)
        return 0;
    if (!json_is_number(value))
        return -1;
    *out = json_number_value(value);
    return 1;
}

static int jwt_audience_matches(const json_t *aud, const char *audience)
{
    size_t index;
    const json_t *item;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    json_array_foreach(aud, index, item) {
        if (json_is_string(item) && strcmp(json_string_value(item), audience) == 0)
            return 1;
    }
    return 0;
}

static int jwt_check_times(const json_t *claims, int64_t leeway, time_t now, char *err,
                           size_t err_size)
{
    double exp = 0, nbf = 0, iat = 0;
    int has_exp = jwt_claim_time(claims, "exp", &exp);
    int has_nbf = jwt_claim_time(claims, "nbf", &nbf);
    int has_iat = jwt_claim_time(claims, "iat", &iat);
    double t = (double)now;

    if (has_exp <= 0 || has_nbf < 0 || has_iat < 0) {
        snprintf(err, err_size, "token refused: claim %s must be a number (NumericDate)%s",
                 has_exp <= 0  ? "exp"
                 : has_nbf < 0 ? "nbf"
                               : "iat",
                 has_exp == 0 ? " and is required" : "");
        return -1;
    }
    if (t >= exp + (double)leeway) {
        snprintf(err, err_size, "token refused: expired (claim exp)");
        return -1;
    }
    if (has_nbf && t + (double)leeway < nbf) {
        snprintf(err, err_size, "token refused: not valid yet (claim nbf)");
        return -1;
    }
    if (has_iat && t + (double)leeway < iat) {
        snprintf(err, err_size, "token refused: issued in the future (claim iat)");
        return -1;
    }
    return 0;
}

int jwt_claims_check(const json_t *claims, const jwt_claim_rules *rules, time_t now, char *err,
                     size_t err_size)
{
    const json_t *iss = json_object_get(claims, "iss");

    if (!json_is_string(iss) || strcmp(json_string_value(iss), rules->issuer) != 0) {
        snprintf(err, err_size, "token refused: claim iss is not the configured issuer");
        return -1;
    }
    if (!jwt_audience_matches(json_object_get(claims, "aud"), rules->audience)) {
        snprintf(err, err_size,
                 "token refused: claim aud does not contain the configured "
                 "audience");
        return -1;
    }
    return jwt_check_times(claims, rules->leeway_seconds, now, err, err_size);
}

/* ---- the group map ------------------------------------------------------ */

static const team_rules_syntax jwt_group_map_syntax = {
    .option = "group_map", .shape = "group=team:role", .max_teams = 1};

int jwt_group_map_add(jwt_group_map *map, const char *entry, size_t index, char *err,
                      size_t err_size)
{
    return team_rules_add(map, &jwt_group_map_syntax, entry, index, err, err_size);
}

void jwt_group_map_clear(jwt_group_map *map)
{
    team_rules_clear(map);
}

/* ---- the principal ------------------------------------------------------ */

static int jwt_token_has_group(const json_t *groups, const char *group)
{
    size_t index;
    const json_t *item;
    json_array_foreach(groups, index, item) {
        if (json_is_string(item) && strcmp(json_string_value(item), group) == 0)
            return 1;
    }
    return 0;
}

static int jwt_groups_valid(const json_t *groups)
{
    size_t index;
    const json_t *item;
    if (!json_is_array(groups))
        return 0;
    json_array_foreach(groups, index, item) {
        if (!json_is_string(item))
            return 0;
    }
    return 1;
}

/* Teams and the highest role from the map; 0 when no group is mapped. */
static int jwt_principal_map_groups(const json_t *groups, const jwt_group_map *map,
                                    sp_principal *principal)
{
    int rank = 0;
    for (size_t i = 0; i < map->count; i++) {
        if (jwt_token_has_group(groups, map->rules[i].key))
            team_rule_merge(&map->rules[i], principal, &rank);
    }
    if (rank > 0)
        snprintf(principal->role, sizeof(principal->role), "%s", team_role_name(rank));
    return rank;
}

int jwt_principal_fill(const json_t *claims, const jwt_claim_rules *rules, const jwt_group_map *map,
                       sp_principal *principal, char *err, size_t err_size)
{
    const char *subject = json_string_value(json_object_get(claims, rules->principal_claim));
    const json_t *groups = json_object_get(claims, rules->groups_claim);
    sp_principal filled = {.size = principal->size};

    if (subject == NULL || subject[0] == '\0' || strlen(subject) >= SP_PRINCIPAL_NAME_MAX) {
        snprintf(err, err_size,
                 "token refused: claim %.64s (the principal) must be a string of "
                 "1 to %d bytes",
                 rules->principal_claim, SP_PRINCIPAL_NAME_MAX - 1);
        return -1;
    }
    if (groups != NULL && !jwt_groups_valid(groups)) {
        snprintf(err, err_size, "token refused: claim %.64s must be an array of strings",
                 rules->groups_claim);
        return -1;
    }
    snprintf(filled.subject, sizeof(filled.subject), "%s", subject);
    if (jwt_principal_map_groups(groups, map, &filled) == 0) {
        snprintf(err, err_size,
                 "token refused: no group in claim %.64s is mapped to a team "
                 "(group_map)",
                 rules->groups_claim);
        return -1;
    }
    memcpy(principal->subject, filled.subject, sizeof(filled.subject));
    memcpy(principal->role, filled.role, sizeof(filled.role));
    principal->team_count = filled.team_count;
    memcpy(principal->teams, filled.teams, sizeof(filled.teams));
    return 0;
}
