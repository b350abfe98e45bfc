/*
 * jwt_verify.h - compact JWS tokens: splitting, base64url, the algorithm
 * policy and signature checks with OpenSSL 3 EVP (jwt_verify.c).
 */
#ifndef AUTH_JWT_VERIFY_H
#define AUTH_JWT_VERIFY_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

/* The algorithms this plugin verifies; a bit set so options can list several. */
typedef enum jwt_alg { JWT_ALG_RS256 = 1, JWT_ALG_ES256 = 2, JWT_ALG_EDDSA = 4 } jwt_alg;

#define JWT_ALG_ALL   (JWT_ALG_RS256 | JWT_ALG_ES256 | JWT_ALG_EDDSA)
#define JWT_TOKEN_MAX 16384

/* A token split into its parts; everything it points to is owned by it. */
typedef struct jwt_token {
    json_t *header;
    json_t *claims;           /* NULL until jwt_token_decode_claims */
    const char *alg_name;     /* borrowed from header */
    const char *kid;          /* borrowed from header, or NULL */
    char *text;               /* a copy of the token */
    size_t signing_input_len; /* "header.payload" is text[0 .. len) */
    const char *payload;      /* inside text */
    size_t payload_len;
    unsigned char *signature;
    size_t signature_len;
} jwt_token;

/* RS256 -> JWT_ALG_RS256 ...; 0 for any other name. */
jwt_alg jwt_alg_from_name(const char *name);
const char *jwt_alg_name(jwt_alg alg);

/* Strict base64url without padding; *out is malloc'd (NUL-terminated). 0 or -1. */
int jwt_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

/*
 * Splits a token that looks like a JWS: three base64url parts and a JSON
 * header object with a string "alg".  -1 (and nothing to free) when it
 * does not look like one, so the caller can defer.
 */
int jwt_token_split(const char *text, size_t len, jwt_token *out);

/* The algorithm policy: 0, or -1 with a message (alg none, HS*, unknown, not allowed). */
int jwt_token_check_alg(const jwt_token *token, unsigned allowed, char *err, size_t err_size);

/* Decodes the payload into token->claims (a JSON object). 0 or -1 with a message. */
int jwt_token_decode_claims(jwt_token *token, char *err, size_t err_size);

/* 1 when the signature over "header.payload" verifies with key for alg. */
int jwt_token_signature_valid(const jwt_token *token, jwt_alg alg, EVP_PKEY *key);

void jwt_token_clear(jwt_token *token);

#endif
