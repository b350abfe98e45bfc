/*
 * principal.c - team membership and the viewer rule for a caller
 * (principal.h).  Pure functions over sp_principal; no daemon state.
 */
#include "principal.h"

#include <string.h>

/* The number of team slots that are really filled, capped by the array. */
static uint32_t principal_team_count(const sp_principal *p)
{
    return p->team_count < SP_PRINCIPAL_MAX_TEAMS ? p->team_count : SP_PRINCIPAL_MAX_TEAMS;
}

static int principal_has_team(const sp_principal *p, const char *team)
{
    /* Longer than a slot holds: no slot can name it (strncmp would see a prefix). */
    if (strnlen(team, SP_TEAM_NAME_MAX + 1) > SP_TEAM_NAME_MAX)
        return 0;
    for (uint32_t i = 0; i < principal_team_count(p); i++)
        if (strncmp(p->teams[i], team, SP_TEAM_NAME_MAX) == 0)
            return 1;
    return 0;
}

static int principal_role_is(const sp_principal *p, const char *role)
{
    return strncmp(p->role, role, SP_ROLE_NAME_MAX) == 0;
}

int principal_sees_all_teams(const sp_principal *p)
{
    return p != NULL && principal_role_is(p, "admin") && principal_has_team(p, "*");
}

int principal_in_team(const sp_principal *p, const char *team)
{
    if (p == NULL || team == NULL)
        return 0;
    return principal_sees_all_teams(p) || principal_has_team(p, team);
}

int principal_may_write(const sp_principal *p)
{
    return p != NULL && !principal_role_is(p, "viewer");
}
