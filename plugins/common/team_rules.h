/*
 * team_rules.h - how the in-tree auth plugins turn what they verified into
 * teams and a role: rules written "key=team[,team...]:role" in an option
 * (auth_jwt's group_map: key = a group; auth_mtls's map: key = a
 * certificate name), the checks on team and role names, and folding the
 * rules that match a caller into an sp_principal (team_rules.c).
 *
 * Shared by the in-tree auth plugins (compiled into each); it includes
 * only the SDK and libc and is not part of the SDK's ABI.
 */
#ifndef PLUGINS_COMMON_TEAM_RULES_H
#define PLUGINS_COMMON_TEAM_RULES_H

#include <stddef.h>

#include <sparkplane/sparkplane.h>

/* Role ranks: a caller mapped by several rules gets the highest. */
enum { TEAM_ROLE_VIEWER = 1, TEAM_ROLE_MEMBER = 2, TEAM_ROLE_ADMIN = 3 };

typedef struct team_rule {
    char *key;     /* before the last '=': a group, a certificate name */
    int role_rank; /* TEAM_ROLE_* */
    size_t team_count;
    char teams[SP_PRINCIPAL_MAX_TEAMS][SP_TEAM_NAME_MAX]; /* or the one team "*" (admin) */
} team_rule;

typedef struct team_rules {
    team_rule *rules;
    size_t count;
} team_rules;

/* How an option writes its rules, for parsing and for messages. */
typedef struct team_rules_syntax {
    const char *option; /* "group_map": messages start "group_map[2]: " */
    const char *shape;  /* "group=team:role", shown when an entry has another shape */
    size_t max_teams;   /* teams per entry: 1 (no list), up to SP_PRINCIPAL_MAX_TEAMS */
} team_rules_syntax;

/* 1 when team is [a-z0-9-]{1,63}. */
int team_name_valid(const char *team, size_t len);

/* "viewer" -> TEAM_ROLE_VIEWER ...; 0 for anything else. */
int team_role_rank(const char *role);
/* The name of a rank ("" for 0). */
const char *team_role_name(int rank);

/*
 * Parses entry `index` of the option into a new rule at the end of rules
 * (its key malloc'd, non-empty): "*" stands for every team, for admin
 * rules only and alone.  0, or -1 with "<option>[<index>]: ..." in err and
 * rules unchanged.
 */
int team_rules_add(team_rules *rules, const team_rules_syntax *syntax, const char *entry,
                   size_t index, char *err, size_t err_size);
void team_rules_clear(team_rules *rules);

/*
 * Folds a matching rule into principal: its teams once each (in rule
 * order, up to SP_PRINCIPAL_MAX_TEAMS), and *rank raised to the rule's.
 */
void team_rule_merge(const team_rule *rule, sp_principal *principal, int *rank);

#endif
