/*
 * mtls_identity.h - who a verified client certificate names, and what that
 * name may do: the `identity` order (which certificate name is the caller)
 * and the `map` of names to teams and a role (mtls_identity.c).
 */
#ifndef AUTH_MTLS_IDENTITY_H
#define AUTH_MTLS_IDENTITY_H

#include <openssl/x509.h>
#include <stddef.h>

#include <sparkplane/sparkplane.h>

#include "team_rules.h"

/* The certificate names that can identify a caller. */
typedef enum mtls_name_kind {
    MTLS_NAME_SAN_URI = 1,
    MTLS_NAME_SAN_DNS,
    MTLS_NAME_SAN_EMAIL,
    MTLS_NAME_CN
} mtls_name_kind;

#define MTLS_IDENTITY_KINDS_MAX 4

/* The `identity` option: the kinds to try, in order. */
typedef struct mtls_identity_order {
    mtls_name_kind kinds[MTLS_IDENTITY_KINDS_MAX];
    size_t count;
} mtls_identity_order;

/*
 * The `map` option: `name=team[,team...]:role` entries (team_rules.h); a
 * rule's key is the name, exact or "*.suffix" (one leftmost label).
 */
typedef team_rules mtls_map;

const char *mtls_name_kind_text(mtls_name_kind kind);

/* Adds one `identity` item ("san_dns", ...); the message names item `index`. */
int mtls_identity_order_add(mtls_identity_order *order, const char *item, size_t index, char *err,
                            size_t err_size);

/* "san_dns or cn": the kinds in order, for messages. */
void mtls_identity_order_text(const mtls_identity_order *order, char *out, size_t out_size);

/*
 * The caller's name: the first kind in `order` the certificate holds,
 * copied into `name`.  1 found, 0 none of the kinds present, -1 when the
 * first one present is not a printable name (an embedded NUL, a control
 * character, too long): such a certificate is refused, never matched.
 */
int mtls_identity_of(X509 *leaf, const mtls_identity_order *order, char *name, size_t name_size,
                     mtls_name_kind *kind_out);

/* Parses and adds one map entry; the message names entry `index`. */
int mtls_map_add(mtls_map *map, const char *entry, size_t index, char *err, size_t err_size);
void mtls_map_clear(mtls_map *map);

/*
 * Fills principal (subject = name) from every entry matching `name`:
 * teams in map order, each once; the highest role.  0 when none matched.
 */
int mtls_map_principal(const mtls_map *map, const char *name, sp_principal *principal);

#endif
