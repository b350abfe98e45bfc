/*
 * jwt_verify.c - compact JWS tokens (RFC 7515): split, decode, check the
 * algorithm and verify the signature.
 *
 * Only asymmetric algorithms exist here: RS256 (RSASSA-PKCS1-v1_5 with
 * SHA-256), ES256 (ECDSA P-256 with SHA-256; the JWS signature is r||s,
 * turned into DER for OpenSSL) and EdDSA (Ed25519).  "none" and every HS*
 * algorithm are refused by name before any key is looked at, so a public
 * key can never be used as an HMAC secret.  Headers that would make us
 * trust something the token brings (jku, x5u, jwk, x5c) are never read,
 * and a "crit" header is refused because we understand no extension.
 */
#include "jwt_verify.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JWT_ES256_PART 32

static const struct {
    jwt_alg alg;
    const char *name;
} jwt_alg_names[] = {{JWT_ALG_RS256, "RS256"}, {JWT_ALG_ES256, "ES256"}, {JWT_ALG_EDDSA, "EdDSA"}};

jwt_alg jwt_alg_from_name(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(jwt_alg_names) / sizeof(jwt_alg_names[0]); i++)
        if (strcmp(jwt_alg_names[i].name, name) == 0)
            return jwt_alg_names[i].alg;
    return 0;
}

const char *jwt_alg_name(jwt_alg alg)
{
    for (size_t i = 0; i < sizeof(jwt_alg_names) / sizeof(jwt_alg_names[0]); i++)
        if (jwt_alg_names[i].alg == alg)
            return jwt_alg_names[i].name;
    return "?";
}

/* ---- base64url ---------------------------------------------------------- */

static int jwt_base64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwt_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *buffer;
    uint32_t bits = 0;
    int bit_count = 0;
    size_t n = 0;

    if (len % 4 == 1 || (buffer = malloc(len * 3 / 4 + 1)) == NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = jwt_base64url_value((unsigned char)in[i]);
        if (v < 0) {
            free(buffer);
            return -1;
        }
        bits = bits << 6 | (uint32_t)v;
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            buffer[n++] = (unsigned char)(bits >> bit_count);
        }
    }
    buffer[n] = '\0';
    *out = buffer;
    *out_len = n;
    return 0;
}

/* ---- splitting ---------------------------------------------------------- */

/* A JSON object from base64url text, or NULL. */
static json_t *jwt_decode_json_object(const char *in, size_t len)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    json_t *value;

    if (jwt_base64url_decode(in, len, &raw, &raw_len) != 0)
        return NULL;
    value = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (value != NULL && !json_is_object(value)) {
        json_decref(value);
        return NULL;
    }
    return value;
}

int jwt_token_split(const char *text, size_t len, jwt_token *out)
{
    const char *first_dot = memchr(text, '.', len), *second_dot;
    json_t *alg;

    memset(out, 0, sizeof(*out));
    /* A NUL would end the copy in out->text early while the offsets below count to `len`. */
    if (first_dot == NULL || memchr(text, '\0', len) != NULL)
        return -1;
    second_dot = memchr(first_dot + 1, '.', len - (size_t)(first_dot + 1 - text));
    if (second_dot == NULL || memchr(second_dot + 1, '.', len - (size_t)(second_dot + 1 - text)))
        return -1;
    out->header = jwt_decode_json_object(text, (size_t)(first_dot - text));
    alg = json_object_get(out->header, "alg");
    if (!json_is_string(alg) || (out->text = strndup(text, len)) == NULL)
        goto fail;
    out->alg_name = json_string_value(alg);
    out->kid = json_string_value(json_object_get(out->header, "kid"));
    out->signing_input_len = (size_t)(second_dot - text);
    out->payload = out->text + (first_dot + 1 - text);
    out->payload_len = (size_t)(second_dot - first_dot - 1);
    if (jwt_base64url_decode(second_dot + 1, len - (size_t)(second_dot + 1 - text), &out->signature,
                             &out->signature_len) != 0)
        goto fail;
    return 0;
fail:
    jwt_token_clear(out);
    return -1;
}

int jwt_token_check_alg(const jwt_token *token, unsigned allowed, char *err, size_t err_size)
{
    jwt_alg alg = jwt_alg_from_name(token->alg_name);

    if (strcasecmp(token->alg_name, "none") == 0) {
        snprintf(err, err_size, "token refused: alg \"none\" (unsigned) is never accepted");
        return -1;
    }
    if (strncasecmp(token->alg_name, "HS", 2) == 0) {
        snprintf(err, err_size,
                 "token refused: HMAC algorithms (alg %.16s) are never accepted, "
                 "the signing keys are public",
                 token->alg_name);
        return -1;
    }
    if (alg == 0) {
        snprintf(err, err_size,
                 "token refused: alg \"%.16s\" is not supported (RS256, ES256, "
                 "EdDSA)",
                 token->alg_name);
        return -1;
    }
    if ((allowed & alg) == 0) {
        snprintf(err, err_size, "token refused: alg %s is not in the configured algorithms",
                 jwt_alg_name(alg));
        return -1;
    }
    if (json_object_get(token->header, "crit") != NULL) {
        snprintf(err, err_size,
                 "token refused: header \"crit\" names extensions this server "
                 "does not implement");
        return -1;
    }
    return 0;
}

int jwt_token_decode_claims(jwt_token *token, char *err, size_t err_size)
{
    token->claims = jwt_decode_json_object(token->payload, token->payload_len);
    if (token->claims == NULL) {
        snprintf(err, err_size, "token refused: the payload is not a base64url JSON object");
        return -1;
    }
    return 0;
}

/* ---- signatures --------------------------------------------------------- */

/* r||s (32 bytes each) as a DER ECDSA-Sig-Value; *der is OPENSSL_malloc'd. */
static int jwt_es256_to_der(const unsigned char *raw, size_t len, unsigned char **der)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, JWT_ES256_PART, NULL);
    BIGNUM *s = BN_bin2bn(raw + JWT_ES256_PART, JWT_ES256_PART, NULL);
    int der_len = -1;

    *der = NULL;
    if (len != 2 * JWT_ES256_PART || sig == NULL || r == NULL || s == NULL ||
        ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }
    der_len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    return der_len;
}

int jwt_token_signature_valid(const jwt_token *token, jwt_alg alg, EVP_PKEY *key)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    const unsigned char *signature = token->signature;
    size_t signature_len = token->signature_len;
    unsigned char *der = NULL;
    int valid = 0;

    if (md == NULL)
        return 0;
    if (alg == JWT_ALG_ES256) {
        int der_len = jwt_es256_to_der(token->signature, token->signature_len, &der);
        if (der_len <= 0)
            goto done;
        signature = der;
        signature_len = (size_t)der_len;
    } else if (alg == JWT_ALG_EDDSA && signature_len != 64) {
        goto done;
    }
    if (EVP_DigestVerifyInit(md, NULL, alg == JWT_ALG_EDDSA ? NULL : EVP_sha256(), NULL, key) != 1)
        goto done;
    valid = EVP_DigestVerify(md, signature, signature_len, (const unsigned char *)token->text,
                             token->signing_input_len) == 1;
done:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return valid;
}

void jwt_token_clear(jwt_token *token)
{
    json_decref(token->header);
    json_decref(token->claims);
    free(token->text);
    free(token->signature);
    memset(token, 0, sizeof(*token));
}
