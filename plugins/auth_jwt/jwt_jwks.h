/*
 * jwt_jwks.h - a JSON Web Key Set turned into OpenSSL public keys
 * (jwt_jwks.c).
 */
#ifndef AUTH_JWT_JWKS_H
#define AUTH_JWT_JWKS_H

#include <openssl/evp.h>
#include <stddef.h>

#include "jwt_verify.h"

#define JWT_JWKS_MAX_KEYS 64
#define JWT_KID_MAX       128

/* One usable key: the only algorithm it verifies follows from kty/crv. */
typedef struct jwt_key {
    char kid[JWT_KID_MAX]; /* "" when the JWK has none */
    jwt_alg alg;
    EVP_PKEY *pkey;
} jwt_key;

typedef struct jwt_keyset {
    jwt_key *keys;
    size_t count;
    size_t skipped; /* JWKs of another type or use, ignored */
} jwt_keyset;

/*
 * Parses a JWKS document ({"keys": [...]}).  Keys of a type this plugin
 * cannot use (oct, RSA under 2048 bits, other curves, "use": "enc") are
 * skipped and counted; a set with no usable key is an error, as is a
 * malformed usable key.  0, or -1 with a message naming the key.
 */
int jwt_keyset_parse(const char *json, size_t len, jwt_keyset *out, char *err, size_t err_size);

/* The key with this kid, or NULL. */
const jwt_key *jwt_keyset_find(const jwt_keyset *set, const char *kid);

void jwt_keyset_clear(jwt_keyset *set);

#endif
