/*
 * mtls_identity.c - from a verified client certificate to a principal.
 *
 * The `identity` option lists certificate names in order (san_uri,
 * san_dns, san_email, cn); the first kind the certificate holds names the
 * caller, using the first name of that kind (for cn, the last CN of the
 * subject, the most specific one, as OpenSSL's host checks do).  A name
 * that is not printable text (an embedded NUL, a control character) is
 * refused rather than matched: a name must mean what it prints.
 *
 * The `map` option is a list of `name=team[,team...]:role` entries.  The
 * name ends at the last '=' (URIs may hold '='), the role follows the
 * first ':' after it.  A name is exact, or `*.suffix`, which stands for
 * exactly one leftmost label: `*.batch.example.com` matches
 * `etl.batch.example.com`, not `batch.example.com` nor
 * `a.b.batch.example.com`.  Names compare ignoring ASCII case.  A caller
 * matching several entries gets their teams (map order, each once) and
 * the highest role (admin > member > viewer), as auth_jwt's group_map.
 */
#include "mtls_identity.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const mtls_role_names[] = {NULL, "viewer", "member", "admin"};

static const struct {
    mtls_name_kind kind;
    const char *text;
} mtls_kind_names[] = {{MTLS_NAME_SAN_URI, "san_uri"},
                       {MTLS_NAME_SAN_DNS, "san_dns"},
                       {MTLS_NAME_SAN_EMAIL, "san_email"},
                       {MTLS_NAME_CN, "cn"}};

const char *mtls_name_kind_text(mtls_name_kind kind)
{
    for (size_t i = 0; i < sizeof(mtls_kind_names) / sizeof(mtls_kind_names[0]); i++)
        if (mtls_kind_names[i].kind == kind)
            return mtls_kind_names[i].text;
    return "?";
}

/* ---- the identity order ------------------------------------------------- */

int mtls_identity_order_add(mtls_identity_order *order, const char *item, size_t index, char *err,
                            size_t err_size)
{
    mtls_name_kind kind = 0;

    for (size_t i = 0; i < sizeof(mtls_kind_names) / sizeof(mtls_kind_names[0]); i++)
        if (strcmp(mtls_kind_names[i].text, item) == 0)
            kind = mtls_kind_names[i].kind;
    if (kind == 0) {
        snprintf(err, err_size,
                 "identity[%zu]: unknown name \"%.32s\" (san_uri, san_dns, "
                 "san_email or cn)",
                 index, item);
        return -1;
    }
    for (size_t i = 0; i < order->count; i++)
        if (order->kinds[i] == kind) {
            snprintf(err, err_size, "identity[%zu]: %s is listed twice", index, item);
            return -1;
        }
    order->kinds[order->count++] = kind;
    return 0;
}

void mtls_identity_order_text(const mtls_identity_order *order, char *out, size_t out_size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < order->count && used < out_size; i++)
        used += (size_t)snprintf(out + used, out_size - used, "%s%s",
                                 i == 0                  ? ""
                                 : i + 1 == order->count ? " or "
                                                         : ", ",
                                 mtls_name_kind_text(order->kinds[i]));
}

/* ---- names in the certificate -------------------------------------------- */

/* Copies bytes that are printable text (UTF-8 allowed, no controls); -1 otherwise. */
static int mtls_copy_printable(const unsigned char *data, int len, char *out, size_t out_size)
{
    if (data == NULL || len <= 0 || (size_t)len >= out_size)
        return -1;
    for (int i = 0; i < len; i++)
        if (data[i] < 0x20 || data[i] == 0x7f)
            return -1; /* NUL included: "a.example\0.evil" must not pass as a name */
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    return 1;
}

/* The first subjectAltName of `type` (GEN_URI, GEN_DNS, GEN_EMAIL): 1, 0 none, -1 unusable. */
static int mtls_san_of(X509 *leaf, int type, char *out, size_t out_size)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    int found = 0;

    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && found == 0; i++) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
        if (name->type != type)
            continue;
        /* URI, DNS and email names are all IA5String. */
        found = mtls_copy_printable(ASN1_STRING_get0_data(name->d.ia5),
                                    ASN1_STRING_length(name->d.ia5), out, out_size);
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* The last commonName of the subject: 1, 0 none, -1 unusable. */
static int mtls_cn_of(X509 *leaf, char *out, size_t out_size)
{
    const X509_NAME *subject = X509_get_subject_name(leaf);
    unsigned char *utf8 = NULL;
    int index = -1, last = -1, len, found;

    while ((index = X509_NAME_get_index_by_NID(subject, NID_commonName, index)) >= 0)
        last = index;
    if (last < 0)
        return 0;
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last)));
    found = mtls_copy_printable(utf8, len, out, out_size);
    OPENSSL_free(utf8);
    return found;
}

int mtls_identity_of(X509 *leaf, const mtls_identity_order *order, char *name, size_t name_size,
                     mtls_name_kind *kind_out)
{
    for (size_t i = 0; i < order->count; i++) {
        int found;
        switch (order->kinds[i]) {
        case MTLS_NAME_SAN_URI:
            found = mtls_san_of(leaf, GEN_URI, name, name_size);
            break;
        case MTLS_NAME_SAN_DNS:
            found = mtls_san_of(leaf, GEN_DNS, name, name_size);
            break;
        case MTLS_NAME_SAN_EMAIL:
            found = mtls_san_of(leaf, GEN_EMAIL, name, name_size);
            break;
        default:
            found = mtls_cn_of(leaf, name, name_size);
            break;
        }
        if (found != 0) {
            *kind_out = order->kinds[i];
            return found;
        }
    }
    return 0;
}

/* ---- the map -------------------------------------------------------------- */

static int mtls_team_valid(const char *team, size_t len)
{
    if (len == 0 || len >= SP_TEAM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((team[i] >= 'a' && team[i] <= 'z') || (team[i] >= '0' && team[i] <= '9') ||
              team[i] == '-'))
            return 0;
    return 1;
}

static int mtls_role_rank(const char *role)
{
    for (int rank = 1; rank <= 3; rank++)
        if (strcmp(mtls_role_names[rank], role) == 0)
            return rank;
    return 0;
}

/* The teams between `teams` and `end` ("a,b" or "*") into rule. */
static int mtls_map_parse_teams(const char *teams, const char *end, size_t index,
                                mtls_map_rule *rule, char *err, size_t err_size)
{
    while (teams <= end) {
        const char *comma = memchr(teams, ',', (size_t)(end - teams));
        size_t len = (size_t)((comma != NULL ? comma : end) - teams);
        int star = len == 1 && teams[0] == '*';

        if (star && (rule->role_rank != 3 || rule->team_count > 0 || comma != NULL)) {
            snprintf(err, err_size, "map[%zu]: team \"*\" is allowed alone and for admin only",
                     index);
            return -1;
        }
        if (!star && !mtls_team_valid(teams, len)) {
            snprintf(err, err_size, "map[%zu]: bad team \"%.*s\" (want [a-z0-9-]{1,63})", index,
                     (int)(len > 63 ? 63 : len), teams);
            return -1;
        }
        if (rule->team_count == SP_PRINCIPAL_MAX_TEAMS) {
            snprintf(err, err_size, "map[%zu]: more than %d teams", index, SP_PRINCIPAL_MAX_TEAMS);
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

/* A name: exact text, or "*.suffix" with a non-empty suffix and no other '*'. */
static int mtls_map_parse_name(const char *entry, size_t len, size_t index, mtls_map_rule *rule,
                               char *err, size_t err_size)
{
    const char *star = memchr(entry, '*', len);

    if (len >= SP_PRINCIPAL_NAME_MAX) {
        snprintf(err, err_size, "map[%zu]: name longer than %d bytes", index,
                 SP_PRINCIPAL_NAME_MAX - 1);
        return -1;
    }
    if (star != NULL &&
        (star != entry || len < 3 || entry[1] != '.' || memchr(entry + 1, '*', len - 1) != NULL)) {
        snprintf(err, err_size,
                 "map[%zu]: \"%.*s\": a wildcard is only \"*.suffix\" (one leftmost label)", index,
                 (int)(len > 64 ? 64 : len), entry);
        return -1;
    }
    rule->wildcard = star != NULL;
    rule->name = strndup(entry, len);
    if (rule->name == NULL) {
        snprintf(err, err_size, "map[%zu]: out of memory", index);
        return -1;
    }
    return 0;
}

/* "name=team[,team...]:role" into rule; the message names entry `index`. */
static int mtls_map_rule_parse(const char *entry, size_t index, mtls_map_rule *rule, char *err,
                               size_t err_size)
{
    const char *equals = strrchr(entry, '='), *colon = equals ? strchr(equals, ':') : NULL;

    if (equals == NULL || equals == entry || colon == NULL || colon == equals + 1) {
        snprintf(err, err_size, "map[%zu]: \"%.64s\" is not \"name=team[,team...]:role\"", index,
                 entry);
        return -1;
    }
    rule->role_rank = mtls_role_rank(colon + 1);
    if (rule->role_rank == 0) {
        snprintf(err, err_size, "map[%zu]: unknown role \"%.31s\" (admin, member or viewer)", index,
                 colon + 1);
        return -1;
    }
    if (mtls_map_parse_teams(equals + 1, colon, index, rule, err, err_size) != 0)
        return -1;
    return mtls_map_parse_name(entry, (size_t)(equals - entry), index, rule, err, err_size);
}

int mtls_map_add(mtls_map *map, const char *entry, size_t index, char *err, size_t err_size)
{
    mtls_map_rule rule = {0}, *grown;

    if (mtls_map_rule_parse(entry, index, &rule, err, err_size) != 0)
        return -1;
    grown = realloc(map->rules, (map->count + 1) * sizeof(*grown));
    if (grown == NULL) {
        free(rule.name);
        snprintf(err, err_size, "map[%zu]: out of memory", index);
        return -1;
    }
    map->rules = grown;
    map->rules[map->count++] = rule;
    return 0;
}

void mtls_map_clear(mtls_map *map)
{
    for (size_t i = 0; i < map->count; i++)
        free(map->rules[i].name);
    free(map->rules);
    map->rules = NULL;
    map->count = 0;
}

/* ---- matching --------------------------------------------------------------- */

static int mtls_rule_matches(const mtls_map_rule *rule, const char *name)
{
    const char *dot;

    if (!rule->wildcard)
        return strcasecmp(rule->name, name) == 0;
    /* "*.suffix": one non-empty label, then ".suffix" exactly. */
    dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, rule->name + 1) == 0;
}

static void mtls_principal_add_team(sp_principal *principal, const char *team)
{
    for (uint32_t i = 0; i < principal->team_count; i++)
        if (strcmp(principal->teams[i], team) == 0)
            return;
    if (principal->team_count < SP_PRINCIPAL_MAX_TEAMS)
        snprintf(principal->teams[principal->team_count++], SP_TEAM_NAME_MAX, "%s", team);
}

int mtls_map_principal(const mtls_map *map, const char *name, sp_principal *principal)
{
    int rank = 0;

    for (size_t i = 0; i < map->count; i++) {
        const mtls_map_rule *rule = &map->rules[i];
        if (!mtls_rule_matches(rule, name))
            continue;
        for (size_t t = 0; t < rule->team_count; t++)
            mtls_principal_add_team(principal, rule->teams[t]);
        if (rule->role_rank > rank)
            rank = rule->role_rank;
    }
    if (rank == 0)
        return 0;
    snprintf(principal->subject, sizeof(principal->subject), "%s", name);
    snprintf(principal->role, sizeof(principal->role), "%s", mtls_role_names[rank]);
    return 1;
}
