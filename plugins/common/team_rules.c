/*
 * team_rules.c - "key=team[,team...]:role" rules and their checks
 * (team_rules.h).  Pure functions on strings and sp_principal.
 */
#include "team_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const team_role_names[] = {"", "viewer", "member", "admin"};

int team_name_valid(const char *team, size_t len)
{
    if (len == 0 || len >= SP_TEAM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((team[i] >= 'a' && team[i] <= 'z') || (team[i] >= '0' && team[i] <= '9') ||
              team[i] == '-'))
            return 0;
    return 1;
}

int team_role_rank(const char *role)
{
    for (int rank = TEAM_ROLE_VIEWER; rank <= TEAM_ROLE_ADMIN; rank++)
        if (strcmp(team_role_names[rank], role) == 0)
            return rank;
    return 0;
}

const char *team_role_name(int rank)
{
    return rank >= TEAM_ROLE_VIEWER && rank <= TEAM_ROLE_ADMIN ? team_role_names[rank] : "";
}

/* The teams between `teams` and `end` ("a,b" or "*") into rule. */
static int team_rule_parse_teams(const team_rules_syntax *syntax, const char *teams,
                                 const char *end, size_t index, team_rule *rule, char *err,
                                 size_t err_size)
{
    while (teams <= end) {
        /* With one team per entry there is no list: "a,b" is one (bad) team name. */
        const char *comma =
            syntax->max_teams > 1 ? memchr(teams, ',', (size_t)(end - teams)) : NULL;
        size_t len = (size_t)((comma != NULL ? comma : end) - teams);
        int star = len == 1 && teams[0] == '*';

        if (star && (rule->role_rank != TEAM_ROLE_ADMIN || rule->team_count > 0 || comma)) {
            snprintf(err, err_size, "%s[%zu]: team \"*\" is allowed alone and for admin only",
                     syntax->option, index);
            return -1;
        }
        if (!star && !team_name_valid(teams, len)) {
            snprintf(err, err_size, "%s[%zu]: bad team \"%.*s\" (want [a-z0-9-]{1,63})",
                     syntax->option, index, (int)(len > 63 ? 63 : len), teams);
            return -1;
        }
        if (rule->team_count == syntax->max_teams || rule->team_count == SP_PRINCIPAL_MAX_TEAMS) {
            snprintf(err, err_size, "%s[%zu]: more than %zu teams", syntax->option, index,
                     rule->team_count);
            return -1;
        }
        memcpy(rule->teams[rule->team_count], teams, len);
        rule->teams[rule->team_count++][len] = '\0';
        if (comma == NULL)
            break;
        teams = comma + 1;
    }
    return 0;
}

/* "key=teams:role" into rule (key not yet copied); the message names entry `index`. */
static int team_rule_parse(const team_rules_syntax *syntax, const char *entry, size_t index,
                           team_rule *rule, char *err, size_t err_size)
{
    const char *equals = strrchr(entry, '='), *colon = equals ? strchr(equals, ':') : NULL;

    if (equals == NULL || equals == entry || colon == NULL || colon == equals + 1) {
        snprintf(err, err_size, "%s[%zu]: \"%.64s\" is not \"%s\"", syntax->option, index, entry,
                 syntax->shape);
        return -1;
    }
    rule->role_rank = team_role_rank(colon + 1);
    if (rule->role_rank == 0) {
        snprintf(err, err_size, "%s[%zu]: unknown role \"%.31s\" (admin, member or viewer)",
                 syntax->option, index, colon + 1);
        return -1;
    }
    if (team_rule_parse_teams(syntax, equals + 1, colon, index, rule, err, err_size) != 0)
        return -1;
    rule->key = strndup(entry, (size_t)(equals - entry));
    if (rule->key == NULL) {
        snprintf(err, err_size, "%s[%zu]: out of memory", syntax->option, index);
        return -1;
    }
    return 0;
}

int team_rules_add(team_rules *rules, const team_rules_syntax *syntax, const char *entry,
                   size_t index, char *err, size_t err_size)
{
    team_rule rule = {0}, *grown;

    if (team_rule_parse(syntax, entry, index, &rule, err, err_size) != 0)
        return -1;
    grown = realloc(rules->rules, (rules->count + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(rule.key);
        snprintf(err, err_size, "%s[%zu]: out of memory", syntax->option, index);
        return -1;
    }
    rules->rules = grown;
    rules->rules[rules->count++] = rule;
    return 0;
}

void team_rules_clear(team_rules *rules)
{
    for (size_t i = 0; i < rules->count; i++)
        free(rules->rules[i].key);
    free(rules->rules);
    rules->rules = NULL;
    rules->count = 0;
}

static void team_principal_add(sp_principal *principal, const char *team)
{
    for (uint32_t i = 0; i < principal->team_count; i++)
        if (strcmp(principal->teams[i], team) == 0)
            return;
    if (principal->team_count < SP_PRINCIPAL_MAX_TEAMS)
        snprintf(principal->teams[principal->team_count++], SP_TEAM_NAME_MAX, "%s", team);
}

void team_rule_merge(const team_rule *rule, sp_principal *principal, int *rank)
{
    for (size_t t = 0; t < rule->team_count; t++)
        team_principal_add(principal, rule->teams[t]);
    if (rule->role_rank > *rank)
        *rank = rule->role_rank;
}
