/*
 * gateway_route.c - route resolution, authorization and the user_id rule
 * for the Spark Connect gateway (see gateway_route.h for the rules).
 *
 * Patterns are compiled once into literal and placeholder parts.  Matching
 * a host is a small backtracking search: a placeholder tries its longest
 * run of allowed characters first and gives back one character at a time,
 * and every complete match is a candidate (team, env, region) checked
 * against the registry right away; the search stops at the first one that
 * names a cluster.  Hosts are at most 253 characters and a pattern has at
 * most three free placeholders, so the search stays tiny.
 */
#include "gateway_route.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "principal.h"

#define GATEWAY_NAME_MAX 63          /* a DNS label */
#define GATEWAY_DEFAULT_PORT 15002
#define GATEWAY_SHOWN_MAX 100        /* client text echoed in messages */

struct gateway_router {
    gateway_pattern *patterns;
    size_t pattern_count;
    char *domain;                    /* lower case, or NULL */
    char *default_region;
    int port;
};

typedef struct gateway_candidate {
    char team[GATEWAY_NAME_MAX + 1];
    char environment[GATEWAY_NAME_MAX + 1];
    char region[GATEWAY_NAME_MAX + 1];
} gateway_candidate;

typedef struct gateway_search {
    const gateway_router *router;
    const cluster_registry *registry;
    const gateway_pattern *pattern;
    const char *host;
    size_t host_len;
    gateway_candidate current;
    gateway_candidate first;         /* the preferred reading, for NOT_FOUND */
    int have_first;
    const cluster_entry *found;
} gateway_search;

/* ---- patterns ---- */

static const struct {
    const char *name;
    gateway_pattern_part_kind kind;
} gateway_placeholders[] = {{"team", GATEWAY_PART_TEAM},
                            {"env", GATEWAY_PART_ENV},
                            {"region", GATEWAY_PART_REGION},
                            {"domain", GATEWAY_PART_DOMAIN}};

#define GATEWAY_PLACEHOLDER_COUNT (sizeof(gateway_placeholders) / sizeof(gateway_placeholders[0]))

static int gateway_is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
}

/* Reads "{name}" at text[*pos]; the part's kind, or -1 with a message. */
static int gateway_pattern_placeholder(const char *text, size_t *pos, char *err, size_t err_size)
{
    const char *open = text + *pos;
    const char *close = strchr(open, '}');
    if (close == NULL) {
        snprintf(err, err_size, "'{' without a closing '}' in '%.80s'", text);
        return -1;
    }
    size_t len = (size_t)(close - open - 1);
    for (size_t i = 0; i < GATEWAY_PLACEHOLDER_COUNT; i++) {
        if (strlen(gateway_placeholders[i].name) == len &&
            strncmp(gateway_placeholders[i].name, open + 1, len) == 0) {
            *pos += len + 2;
            return (int)gateway_placeholders[i].kind;
        }
    }
    snprintf(err, err_size,
             "unknown placeholder '{%.*s}' in '%.80s'; known: {team}, {env}, {region}, {domain}",
             (int)(len > 40 ? 40 : len), open + 1, text);
    return -1;
}

/* Appends a placeholder part; -1 when repeated or glued to the previous one. */
static int gateway_pattern_add_placeholder(gateway_pattern *out, int kind, const char *text,
                                           char *err, size_t err_size)
{
    const char *name = gateway_placeholders[kind - GATEWAY_PART_TEAM].name;
    for (size_t i = 0; i < out->part_count; i++) {
        if ((int)out->parts[i].kind == kind) {
            snprintf(err, err_size, "{%s} appears twice in '%.80s'", name, text);
            return -1;
        }
    }
    if (out->part_count > 0 && out->parts[out->part_count - 1].kind != GATEWAY_PART_LITERAL) {
        snprintf(err, err_size,
                 "'%.80s' is ambiguous: {%s} follows another placeholder with nothing between "
                 "them",
                 text, name);
        return -1;
    }
    out->parts[out->part_count++].kind = (gateway_pattern_part_kind)kind;
    out->uses_domain |= kind == GATEWAY_PART_DOMAIN;
    out->uses_region |= kind == GATEWAY_PART_REGION;
    return 0;
}

static void gateway_pattern_add_char(gateway_pattern *out, char c)
{
    gateway_pattern_part *last =
        out->part_count > 0 ? &out->parts[out->part_count - 1] : NULL;
    if (last == NULL || last->kind != GATEWAY_PART_LITERAL) {
        last = &out->parts[out->part_count++];
        last->kind = GATEWAY_PART_LITERAL;
        last->text[0] = '\0';
    }
    size_t len = strlen(last->text);
    last->text[len] = (char)tolower((unsigned char)c);
    last->text[len + 1] = '\0';
}

static int gateway_pattern_parse(const char *text, gateway_pattern *out, char *err,
                                 size_t err_size)
{
    size_t pos = 0;
    while (text[pos] != '\0') {
        if (text[pos] == '{') {
            int kind = gateway_pattern_placeholder(text, &pos, err, err_size);
            if (kind < 0 || gateway_pattern_add_placeholder(out, kind, text, err, err_size) != 0)
                return -1;
            continue;
        }
        if (!gateway_is_host_char(text[pos])) {
            snprintf(err, err_size,
                     "'%.80s': '%c' cannot be part of a host name (use a-z, 0-9, '-', '.' and "
                     "placeholders)",
                     text, isprint((unsigned char)text[pos]) ? text[pos] : '?');
            return -1;
        }
        gateway_pattern_add_char(out, text[pos++]);
    }
    return 0;
}

int gateway_pattern_compile(const char *text, gateway_pattern *out, char *err, size_t err_size)
{
    size_t len = text ? strlen(text) : 0;
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > GATEWAY_PATTERN_MAX) {
        snprintf(err, err_size, "a pattern is 1 to %d characters", GATEWAY_PATTERN_MAX);
        return -1;
    }
    memcpy(out->text, text, len + 1);
    /* At most 4 placeholders and 5 literals between them: the parts fit. */
    if (gateway_pattern_parse(text, out, err, err_size) != 0)
        return -1;
    int has_team = 0, has_env = 0;
    for (size_t i = 0; i < out->part_count; i++) {
        has_team |= out->parts[i].kind == GATEWAY_PART_TEAM;
        has_env |= out->parts[i].kind == GATEWAY_PART_ENV;
    }
    if (!has_team || !has_env) {
        snprintf(err, err_size, "'%.80s' must contain {team} and {env}", text);
        return -1;
    }
    return 0;
}

/* ---- the router ---- */

void gateway_router_free(gateway_router *router)
{
    if (router == NULL)
        return;
    free(router->patterns);
    free(router->domain);
    free(router->default_region);
    free(router);
}

static char *gateway_lower_dup(const char *text)
{
    char *copy = strdup(text);
    for (char *c = copy; c != NULL && *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
    return copy;
}

int gateway_router_new(const char *const *patterns, size_t pattern_count, const char *domain,
                       const char *default_region, int port, gateway_router **out, char *err,
                       size_t err_size)
{
    char message[512];
    gateway_router *router = calloc(1, sizeof(*router));
    *out = NULL;
    if (router == NULL || (pattern_count > 0 &&
                           !(router->patterns = calloc(pattern_count, sizeof(gateway_pattern)))))
        goto oom;
    router->port = port > 0 ? port : GATEWAY_DEFAULT_PORT;
    router->default_region = gateway_lower_dup(default_region ? default_region : "local");
    router->domain = domain ? gateway_lower_dup(domain) : NULL;
    if (router->default_region == NULL || (domain != NULL && router->domain == NULL))
        goto oom;
    for (size_t i = 0; i < pattern_count; i++) {
        gateway_pattern *pattern = &router->patterns[router->pattern_count++];
        if (gateway_pattern_compile(patterns[i], pattern, message, sizeof(message)) != 0) {
            snprintf(err, err_size, "authority pattern %zu: %s", i, message);
            goto fail;
        }
        if (pattern->uses_domain && router->domain == NULL) {
            snprintf(err, err_size, "authority pattern '%s' uses {domain} but no domain is set",
                     pattern->text);
            goto fail;
        }
    }
    *out = router;
    return 0;
oom:
    snprintf(err, err_size, "out of memory");
fail:
    gateway_router_free(router);
    return -1;
}

int gateway_router_from_config(const config *cfg, gateway_router **out, char *err,
                               size_t err_size)
{
    char host[256];
    int port = GATEWAY_DEFAULT_PORT;
    if (cfg->gateway_listen_count > 0)
        config_split_listen(cfg->gateway_listen[0], host, sizeof(host), &port);
    return gateway_router_new((const char *const *)cfg->gateway_authority_patterns,
                              cfg->gateway_authority_pattern_count, cfg->gateway_domain,
                              cfg->gateway_default_region, port, out, err, err_size);
}

/* ---- messages ---- */

/* Client text made safe to echo: printable, no quotes, bounded. */
static void gateway_shown(const char *text, char *buffer, size_t size)
{
    size_t used = 0, len = strlen(text);
    for (size_t i = 0; i < len && used + 4 < size && i < GATEWAY_SHOWN_MAX; i++) {
        unsigned char c = (unsigned char)text[i];
        buffer[used++] = isprint(c) && c != '\'' && c != '"' && c != '\\' ? (char)c : '?';
    }
    if (len > GATEWAY_SHOWN_MAX && used + 4 < size) {
        memcpy(buffer + used, "...", 3);
        used += 3;
    }
    buffer[used] = '\0';
}

/* One pattern as a client would write it: "sc://{team}-{env}.example.team:15002". */
static void gateway_hint_one(const gateway_router *router, const gateway_pattern *pattern,
                             char *buffer, size_t size)
{
    size_t used = (size_t)snprintf(buffer, size, "sc://");
    for (size_t i = 0; i < pattern->part_count && used < size; i++) {
        const gateway_pattern_part *part = &pattern->parts[i];
        const char *text = part->kind == GATEWAY_PART_LITERAL ? part->text
                           : part->kind == GATEWAY_PART_DOMAIN ? router->domain
                           : part->kind == GATEWAY_PART_TEAM  ? "{team}"
                           : part->kind == GATEWAY_PART_ENV   ? "{env}"
                                                              : "{region}";
        used += (size_t)snprintf(buffer + used, size - used, "%s", text);
    }
    if (used < size)
        snprintf(buffer + used, size - used, ":%d", router->port);
}

/* "use sc://A:15002 or sc://B:15002, or set x-sparkplane-cluster-id" */
static void gateway_hint(const gateway_router *router, char *buffer, size_t size)
{
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < router->pattern_count && used < size; i++) {
        char one[GATEWAY_PATTERN_MAX + 300];
        gateway_hint_one(router, &router->patterns[i], one, sizeof(one));
        used += (size_t)snprintf(buffer + used, size - used, "%s%s", i ? " or " : "use ", one);
    }
    if (used < size)
        snprintf(buffer + used, size - used, "%sset " GATEWAY_CLUSTER_ID_HEADER,
                 router->pattern_count == 0 ? "" : router->pattern_count == 1 ? " or " : ", or ");
}

/* ---- matching ---- */

static int gateway_allowed(gateway_pattern_part_kind kind, char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c == '-' && kind != GATEWAY_PART_ENV;
}

static char *gateway_slot(gateway_candidate *candidate, gateway_pattern_part_kind kind)
{
    if (kind == GATEWAY_PART_TEAM)
        return candidate->team;
    if (kind == GATEWAY_PART_ENV)
        return candidate->environment;
    return candidate->region;
}

/* A complete match: 1 when it names a registered cluster (search ends). */
static int gateway_try_candidate(gateway_search *search)
{
    gateway_candidate *c = &search->current;
    if (!search->pattern->uses_region)
        snprintf(c->region, sizeof(c->region), "%s", search->router->default_region);
    if (!search->have_first) {
        search->first = *c;
        search->have_first = 1;
    }
    search->found =
        cluster_registry_find_placement(search->registry, c->team, c->environment, c->region);
    return search->found != NULL;
}

static int gateway_match(gateway_search *search, size_t part_index, size_t pos);

static int gateway_match_literal(gateway_search *search, size_t part_index, size_t pos,
                                 const char *literal)
{
    size_t len = strlen(literal);
    if (search->host_len - pos < len || memcmp(search->host + pos, literal, len) != 0)
        return 0;
    return gateway_match(search, part_index + 1, pos + len);
}

/* Longest first: for {team} that is the right-most split. */
static int gateway_match_placeholder(gateway_search *search, size_t part_index, size_t pos,
                                     gateway_pattern_part_kind kind)
{
    const char *at = search->host + pos;
    size_t run = 0;
    while (pos + run < search->host_len && gateway_allowed(kind, at[run]))
        run++;
    if (run > GATEWAY_NAME_MAX)
        run = GATEWAY_NAME_MAX;
    for (size_t len = run; len >= 1; len--) {
        if (at[0] == '-' || at[len - 1] == '-')
            continue;
        char *slot = gateway_slot(&search->current, kind);
        memcpy(slot, at, len);
        slot[len] = '\0';
        if (gateway_match(search, part_index + 1, pos + len))
            return 1;
    }
    return 0;
}

static int gateway_match(gateway_search *search, size_t part_index, size_t pos)
{
    const gateway_pattern *pattern = search->pattern;
    if (part_index == pattern->part_count)
        return pos == search->host_len && gateway_try_candidate(search);
    const gateway_pattern_part *part = &pattern->parts[part_index];
    if (part->kind == GATEWAY_PART_LITERAL)
        return gateway_match_literal(search, part_index, pos, part->text);
    if (part->kind == GATEWAY_PART_DOMAIN)
        return gateway_match_literal(search, part_index, pos, search->router->domain);
    return gateway_match_placeholder(search, part_index, pos, part->kind);
}

/*
 * The host of an authority, lower case, without port or trailing dot.
 * 0 for a name, 1 for an IP literal (never matches), -1 when empty.
 * `shown` gets the host as the client wrote it, made safe to echo.
 */
static int gateway_authority_host(const char *authority, char *host, size_t size, char *shown,
                                  size_t shown_size)
{
    if (authority == NULL || authority[0] == '\0')
        return -1;
    size_t len = strlen(authority);
    const char *colon = strrchr(authority, ':');
    int ip_literal = authority[0] == '[' ||
                     (colon != NULL && memchr(authority, ':', (size_t)(colon - authority)));
    if (authority[0] == '[') {
        const char *close = strchr(authority, ']');
        len = close ? (size_t)(close - authority) + 1 : len;
    } else if (!ip_literal && colon != NULL) {
        len = (size_t)(colon - authority);
    }
    char raw[GATEWAY_PATTERN_MAX + 2];
    snprintf(raw, sizeof(raw), "%.*s", (int)(len < sizeof(raw) ? len : sizeof(raw) - 1),
             authority);
    gateway_shown(raw, shown, shown_size);
    if (ip_literal)
        return 1;
    if (len > 0 && authority[len - 1] == '.')
        len--;
    if (len == 0 || len > GATEWAY_PATTERN_MAX || len >= size)
        return 1; /* nothing a pattern could match */
    for (size_t i = 0; i < len; i++)
        host[i] = (char)tolower((unsigned char)authority[i]);
    host[len] = '\0';
    return 0;
}

/* The answer for a cluster id that names nothing the caller may use. */
static gateway_grpc_code gateway_no_cluster(const char *id, char *message, size_t message_size)
{
    char shown[GATEWAY_SHOWN_MAX + 8];
    gateway_shown(id, shown, sizeof(shown));
    snprintf(message, message_size, "no cluster '%s'", shown);
    return GATEWAY_GRPC_NOT_FOUND;
}

static gateway_grpc_code gateway_route_by_id(const cluster_registry *registry, const char *id,
                                             const cluster_entry **out, char *message,
                                             size_t message_size)
{
    *out = cluster_registry_find(registry, id);
    if (*out != NULL)
        return GATEWAY_GRPC_OK;
    return gateway_no_cluster(id, message, message_size);
}

gateway_grpc_code gateway_route_resolve(const gateway_router *router,
                                        const cluster_registry *registry,
                                        const char *cluster_id, const char *authority,
                                        const cluster_entry **out, char *message,
                                        size_t message_size)
{
    char host[GATEWAY_PATTERN_MAX + 1], shown[GATEWAY_SHOWN_MAX + 8], hint[1024];
    gateway_search search = {.router = router, .registry = registry, .host = host};
    *out = NULL;
    if (cluster_id != NULL && cluster_id[0] != '\0')
        return gateway_route_by_id(registry, cluster_id, out, message, message_size);
    int kind = gateway_authority_host(authority, host, sizeof(host), shown, sizeof(shown));
    search.host_len = kind == 0 ? strlen(host) : 0;
    for (size_t i = 0; kind == 0 && i < router->pattern_count && search.found == NULL; i++) {
        search.pattern = &router->patterns[i];
        gateway_match(&search, 0, 0);
    }
    if (search.found != NULL) {
        *out = search.found;
        return GATEWAY_GRPC_OK;
    }
    if (search.have_first) {
        snprintf(message, message_size, "no cluster for team %s, environment %s, region %s",
                 search.first.team, search.first.environment, search.first.region);
        return GATEWAY_GRPC_NOT_FOUND;
    }
    gateway_hint(router, hint, sizeof(hint));
    if (kind < 0)
        snprintf(message, message_size, "cannot tell the cluster: the request has no :authority; "
                 "%s", hint);
    else
        snprintf(message, message_size, "cannot tell the cluster from host '%s': %s", shown, hint);
    return GATEWAY_GRPC_NOT_FOUND;
}

/* ---- who may use a cluster ---- */

gateway_grpc_code gateway_route_authorize(const sp_principal *principal,
                                          const cluster_entry *cluster, const char *cluster_id,
                                          char *message, size_t message_size)
{
    if (principal == NULL || cluster == NULL) {
        snprintf(message, message_size, "no authenticated caller");
        return GATEWAY_GRPC_PERMISSION_DENIED;
    }
    if (!principal_in_team(principal, cluster->team)) {
        if (cluster_id != NULL && cluster_id[0] != '\0')
            return gateway_no_cluster(cluster_id, message, message_size);
        snprintf(message, message_size, "no cluster for team %s, environment %s, region %s",
                 cluster->team, cluster->environment, cluster->region);
        return GATEWAY_GRPC_NOT_FOUND;
    }
    if (!principal_may_write(principal)) {
        const char *who = principal->subject;
        int subject_ok = memchr(who, '\0', sizeof(principal->subject)) != NULL;
        snprintf(message, message_size,
                 "%.*s has the viewer role, which may not open Spark sessions",
                 SP_PRINCIPAL_NAME_MAX, subject_ok && who[0] ? who : "the caller");
        return GATEWAY_GRPC_PERMISSION_DENIED;
    }
    return GATEWAY_GRPC_OK;
}

gateway_user_id_action gateway_route_check_user_id(const sp_principal *principal,
                                                   const char *user_id,
                                                   config_user_id_policy policy, char *message,
                                                   size_t message_size)
{
    char shown[GATEWAY_SHOWN_MAX + 8];
    if (user_id == NULL || user_id[0] == '\0')
        return GATEWAY_USER_ID_REPLACE;
    if (strncmp(user_id, principal->subject, sizeof(principal->subject)) == 0 &&
        strlen(user_id) < sizeof(principal->subject))
        return GATEWAY_USER_ID_OK;
    if (policy == CONFIG_USER_ID_REPLACE)
        return GATEWAY_USER_ID_REPLACE;
    gateway_shown(user_id, shown, sizeof(shown));
    snprintf(message, message_size,
             "user_context.user_id '%s' is not the authenticated user %.*s", shown,
             SP_PRINCIPAL_NAME_MAX, principal->subject);
    return GATEWAY_USER_ID_DENY;
}
