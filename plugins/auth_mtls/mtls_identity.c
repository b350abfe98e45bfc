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

static const team_rules_syntax mtls_map_syntax = {
    .option = "map", .shape = "name=team[,team...]:role", .max_teams = SP_PRINCIPAL_MAX_TEAMS};

/* A name: exact text, or "*.suffix" with a non-empty suffix and no other '*'. */
static int mtls_map_check_name(const char *name, size_t index, char *err, size_t err_size)
{
    size_t len = strlen(name);
    const char *star = strchr(name, '*');

    if (len >= SP_PRINCIPAL_NAME_MAX) {
        snprintf(err, err_size, "map[%zu]: name longer than %d bytes", index,
                 SP_PRINCIPAL_NAME_MAX - 1);
        return -1;
    }
    if (star != NULL && (star != name || len < 3 || name[1] != '.' || strchr(name + 1, '*'))) {
        snprintf(err, err_size,
                 "map[%zu]: \"%.*s\": a wildcard is only \"*.suffix\" (one leftmost label)", index,
                 (int)(len > 64 ? 64 : len), name);
        return -1;
    }
    return 0;
}

int mtls_map_add(mtls_map *map, const char *entry, size_t index, char *err, size_t err_size)
{
    if (team_rules_add(map, &mtls_map_syntax, entry, index, err, err_size) != 0)
        return -1;
    if (mtls_map_check_name(map->rules[map->count - 1].key, index, err, err_size) == 0)
        return 0;
    free(map->rules[--map->count].key); /* refused: the map stays as it was */
    return -1;
}

void mtls_map_clear(mtls_map *map)
{
    team_rules_clear(map);
}

/* ---- matching --------------------------------------------------------------- */

static int mtls_rule_matches(const team_rule *rule, const char *name)
{
    const char *dot;

    if (rule->key[0] != '*')
        return strcasecmp(rule->key, name) == 0;
    /* "*.suffix": one non-empty label, then ".suffix" exactly. */
    dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, rule->key + 1) == 0;
}

int mtls_map_principal(const mtls_map *map, const char *name, sp_principal *principal)
{
    int rank = 0;

    for (size_t i = 0; i < map->count; i++) {
        if (mtls_rule_matches(&map->rules[i], name))
            team_rule_merge(&map->rules[i], principal, &rank);
    }
    if (rank == 0)
        return 0;
    snprintf(principal->subject, sizeof(principal->subject), "%s", name);
    snprintf(principal->role, sizeof(principal->role), "%s", team_role_name(rank));
    return 1;
}
