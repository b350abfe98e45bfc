/*
 * principal.h - what an authenticated caller may do, from its sp_principal.
 *
 * One rule set for the REST handlers (jobs, clusters) and the clusters
 * module: an admin whose teams include "*" belongs to every team; anyone
 * else belongs to the teams listed; the viewer role reads but never
 * writes.  The principal's fixed-size name fields are read with bounds,
 * so a provider that fills a field to the brim (no NUL) cannot make these
 * read past it.
 */
#ifndef SPARKPLANE_CORE_PRINCIPAL_H
#define SPARKPLANE_CORE_PRINCIPAL_H

#include <sparkplane/auth.h>

/* 1 for an admin of every team ("*" among its teams), else 0. */
int principal_sees_all_teams(const sp_principal *p);

/* 1 when `p` may act for `team` (a member, or an admin of every team); 0 for NULL. */
int principal_in_team(const sp_principal *p, const char *team);

/* 1 unless the role is "viewer" (reads only). */
int principal_may_write(const sp_principal *p);

#endif
