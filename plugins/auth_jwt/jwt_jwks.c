/*
 * jwt_jwks.c - a JSON Web Key Set (RFC 7517) into OpenSSL public keys.
 *
 * Each usable JWK becomes an EVP_PKEY built with EVP_PKEY_fromdata (RSA
 * n/e, EC P-256 as an uncompressed point, which OpenSSL checks is on the
 * curve) or as a raw Ed25519 key.  The key type fixes the one algorithm the
 * key may verify: RSA -> RS256, EC P-256 -> ES256, OKP Ed25519 -> EdDSA; a
 * JWK "alg" member, when present, must agree.  Keys for other purposes
 * (symmetric "oct", other curves, "use": "enc", RSA under 2048 bits) are
 * skipped so that a provider's mixed set still loads; a usable key that
 * is malformed fails the whole set, so a broken rotation is noticed
 * instead of half-applied.
 */
#include "jwt_jwks.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT_RSA_MIN_BITS    2048
#define JWT_P256_COORDINATE 32
#define JWT_ED25519_KEY     32

/* A base64url member of a JWK, decoded; NULL when absent or malformed. */
static unsigned char *jwks_member_bytes(const json_t *jwk, const char *name, size_t *len)
{
    const char *text = json_string_value(json_object_get(jwk, name));
    unsigned char *bytes = NULL;

    if (text == NULL || jwt_base64url_decode(text, strlen(text), &bytes, len) != 0 || *len == 0) {
        free(bytes);
        return NULL;
    }
    return bytes;
}

static EVP_PKEY *jwks_pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *jwks_rsa_key(const json_t *jwk, const char **problem)
{
    size_t n_len = 0, e_len = 0;
    unsigned char *n = jwks_member_bytes(jwk, "n", &n_len);
    unsigned char *e = jwks_member_bytes(jwk, "e", &e_len);
    BIGNUM *n_bn = n ? BN_bin2bn(n, (int)n_len, NULL) : NULL;
    BIGNUM *e_bn = e ? BN_bin2bn(e, (int)e_len, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    *problem = "\"n\" and \"e\" must be non-empty base64url";
    if (n_bn != NULL && e_bn != NULL && bld != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n_bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e_bn) == 1) {
        *problem = "OpenSSL refused the RSA key";
        pkey = jwks_pkey_from_params("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(n_bn);
    BN_free(e_bn);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwks_p256_key(const json_t *jwk, const char **problem)
{
    size_t x_len = 0, y_len = 0;
    unsigned char *x = jwks_member_bytes(jwk, "x", &x_len);
    unsigned char *y = jwks_member_bytes(jwk, "y", &y_len);
    unsigned char point[1 + 2 * JWT_P256_COORDINATE];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;

    *problem = "\"x\" and \"y\" must be 32-byte base64url coordinates";
    if (x != NULL && y != NULL && x_len == JWT_P256_COORDINATE && y_len == JWT_P256_COORDINATE &&
        bld != NULL) {
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, JWT_P256_COORDINATE);
        memcpy(point + 1 + JWT_P256_COORDINATE, y, JWT_P256_COORDINATE);
        *problem = "the point is not on curve P-256";
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
                1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ==
                1)
            pkey = jwks_pkey_from_params("EC", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *jwks_ed25519_key(const json_t *jwk, const char **problem)
{
    size_t x_len = 0;
    unsigned char *x = jwks_member_bytes(jwk, "x", &x_len);
    EVP_PKEY *pkey = NULL;

    *problem = "\"x\" must be a 32-byte base64url public key";
    if (x != NULL && x_len == JWT_ED25519_KEY)
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, x_len);
    free(x);
    return pkey;
}

/* The algorithm a JWK's kty/crv allows, or 0 when this plugin cannot use it. */
static jwt_alg jwks_key_alg(const json_t *jwk)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *alg_name = json_string_value(json_object_get(jwk, "alg"));
    jwt_alg alg = 0;

    if (kty == NULL || (use != NULL && strcmp(use, "sig") != 0))
        return 0;
    if (strcmp(kty, "RSA") == 0)
        alg = JWT_ALG_RS256;
    else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0)
        alg = JWT_ALG_ES256;
    else if (strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0)
        alg = JWT_ALG_EDDSA;
    if (alg_name != NULL && jwt_alg_from_name(alg_name) != alg)
        return 0;
    return alg;
}

static EVP_PKEY *jwks_build_key(const json_t *jwk, jwt_alg alg, const char **problem)
{
    switch (alg) {
    case JWT_ALG_RS256:
        return jwks_rsa_key(jwk, problem);
    case JWT_ALG_ES256:
        return jwks_p256_key(jwk, problem);
    case JWT_ALG_EDDSA:
        return jwks_ed25519_key(jwk, problem);
    }
    return NULL;
}

/* Adds keys[index] to set (or counts it as skipped). 0 or -1 with a message. */
static int jwks_add_key(jwt_keyset *set, const json_t *jwk, size_t index, char *err,
                        size_t err_size)
{
    const json_t *kid_value = json_object_get(jwk, "kid");
    const char *kid = kid_value != NULL ? json_string_value(kid_value) : "";
    jwt_alg alg = json_is_object(jwk) ? jwks_key_alg(jwk) : 0;
    const char *problem = "";
    jwt_key *key;

    if (alg == 0) {
        set->skipped++;
        return 0;
    }
    if (kid == NULL || strlen(kid) >= JWT_KID_MAX) {
        snprintf(err, err_size, "jwks: keys[%zu]: \"kid\" must be a string of at most %d bytes",
                 index, JWT_KID_MAX - 1);
        return -1;
    }
    if (kid[0] != '\0' && jwt_keyset_find(set, kid) != NULL) {
        snprintf(err, err_size, "jwks: keys[%zu]: duplicate kid \"%s\"", index, kid);
        return -1;
    }
    key = &set->keys[set->count];
    if ((key->pkey = jwks_build_key(jwk, alg, &problem)) == NULL) {
        snprintf(err, err_size, "jwks: keys[%zu] (kid \"%s\", %s): %s", index, kid,
                 jwt_alg_name(alg), problem);
        return -1;
    }
    if (alg == JWT_ALG_RS256 && EVP_PKEY_get_bits(key->pkey) < JWT_RSA_MIN_BITS) {
        EVP_PKEY_free(key->pkey);
        key->pkey = NULL;
        set->skipped++;
        return 0;
    }
    snprintf(key->kid, sizeof(key->kid), "%s", kid);
    key->alg = alg;
    set->count++;
    return 0;
}

int jwt_keyset_parse(const char *json, size_t len, jwt_keyset *out, char *err, size_t err_size)
{
    json_error_t error;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &error);
    json_t *keys = json_object_get(root, "keys");
    jwt_keyset set = {NULL, 0, 0};
    size_t index;
    json_t *jwk;

    if (root == NULL) {
        snprintf(err, err_size, "jwks: not JSON (line %d: %s)", error.line, error.text);
        goto fail;
    }
    if (!json_is_array(keys) || json_array_size(keys) > JWT_JWKS_MAX_KEYS) {
        snprintf(err, err_size, "jwks: \"keys\" must be an array of at most %d keys",
                 JWT_JWKS_MAX_KEYS);
        goto fail;
    }
    if ((set.keys = calloc(json_array_size(keys) + 1, sizeof(*set.keys))) == NULL) {
        snprintf(err, err_size, "jwks: out of memory");
        goto fail;
    }
    json_array_foreach(keys, index, jwk) {
        if (jwks_add_key(&set, jwk, index, err, err_size) != 0)
            goto fail;
    }
    if (set.count == 0) {
        snprintf(err, err_size,
                 "jwks: no usable key (RSA >= 2048 bits, EC P-256 or OKP Ed25519 "
                 "for signatures) among %zu",
                 json_array_size(keys));
        goto fail;
    }
    json_decref(root);
    *out = set;
    return 0;
fail:
    json_decref(root);
    jwt_keyset_clear(&set);
    return -1;
}

const jwt_key *jwt_keyset_find(const jwt_keyset *set, const char *kid)
{
    for (size_t i = 0; kid != NULL && i < set->count; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return &set->keys[i];
    return NULL;
}

void jwt_keyset_clear(jwt_keyset *set)
{
    for (size_t i = 0; i < set->count; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set->keys);
    set->keys = NULL;
    set->count = set->skipped = 0;
}
