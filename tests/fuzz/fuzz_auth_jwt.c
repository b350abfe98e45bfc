/*
 * fuzz_auth_jwt.c - libFuzzer target for auth_jwt's parsers
 * (plugins/auth_jwt: jwt_verify.c, jwt_jwks.c, jwt_claims.c), which read
 * what any client or identity provider sends.
 *
 * The first byte picks the parser, the rest is its input:
 *   0  a bearer token: split, algorithm policy, signature against a fixed
 *      JWKS (an ES256 and an Ed25519 key), claims and the group map, the
 *      way auth_jwt_verify runs them;
 *   1  a JWKS document, then a lookup of every kid it gave;
 *   2  group_map entries, one per line, then a principal for a fixed token.
 * Besides memory errors it checks what callers rely on: a refusal has a
 * message, an accepted principal's fields are NUL-terminated within their
 * arrays, and a signature that verifies stops verifying when one byte of
 * the signed text changes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_claims.h"
#include "jwt_jwks.h"
#include "jwt_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_jwks[] =
    "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": "
    "\"4GfoafIE4bhe4CMKQ7IghW81Zlh9xL4-PCODqMZe7uM\", \"y\": "
    "\"8GczD4nwf0hdoMHFiu8wVXfvkbhDLpjYWus4OV_ixDI\", \"kid\": \"ec1\", \"use\": \"sig\"}, {\"x\": "
    "\"itQd1VuvmJxMZdXgVLTtuScCHP_ZSrot3Qn2WjKo6pA\", \"kty\": \"OKP\", \"crv\": \"Ed25519\", "
    "\"kid\": \"ed1\"}]}";

static const char *const fuzz_group_map[] = {"spark-analytics=analytics:member",
                                             "spark-analytics=ml:viewer", "spark-platform=*:admin",
                                             NULL};

static const jwt_claim_rules fuzz_rules = {
    .issuer = "https://idp.example",
    .audience = "sparkplane",
    .leeway_seconds = 60,
    .principal_claim = "sub",
    .groups_claim = "groups",
};

static jwt_keyset fuzz_keys;
static jwt_group_map fuzz_map;

static void fuzz_setup(void)
{
    static int ready;
    char err[256];
    if (ready)
        return;
    if (jwt_keyset_parse(fuzz_jwks, strlen(fuzz_jwks), &fuzz_keys, err, sizeof(err)) != 0)
        abort();
    for (size_t i = 0; fuzz_group_map[i] != NULL; i++)
        if (jwt_group_map_add(&fuzz_map, fuzz_group_map[i], i, err, sizeof(err)) != 0)
            abort();
    ready = 1;
}

static void fuzz_check_principal(const sp_principal *p)
{
    if (memchr(p->subject, '\0', sizeof(p->subject)) == NULL ||
        memchr(p->role, '\0', sizeof(p->role)) == NULL || p->team_count > SP_PRINCIPAL_MAX_TEAMS)
        abort();
    for (uint32_t i = 0; i < p->team_count; i++)
        if (memchr(p->teams[i], '\0', sizeof(p->teams[i])) == NULL)
            abort();
}

/* A valid signature over a changed text would be a forgery. */
static void fuzz_check_signature_binds(jwt_token *token, const jwt_key *key)
{
    if (token->signing_input_len == 0)
        return;
    char *text = token->text;
    size_t at = token->signing_input_len / 2;
    text[at] ^= 0x01;
    int still_valid = jwt_token_signature_valid(token, key->alg, key->pkey);
    text[at] ^= 0x01;
    if (still_valid)
        abort();
}

static void fuzz_token(const char *text, size_t len)
{
    jwt_token token;
    char err[256] = "";
    sp_principal principal = {.size = sizeof(principal)};
    if (jwt_token_split(text, len, &token) != 0)
        return;
    if (jwt_token_check_alg(&token, JWT_ALG_ALL, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        goto done;
    }
    const jwt_key *key = jwt_keyset_find(&fuzz_keys, token.kid ? token.kid : "");
    if (key != NULL && jwt_token_signature_valid(&token, key->alg, key->pkey))
        fuzz_check_signature_binds(&token, key);
    if (jwt_token_decode_claims(&token, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        goto done;
    }
    if (jwt_claims_check(token.claims, &fuzz_rules, 1800000000, err, sizeof(err)) == 0 &&
        jwt_principal_fill(token.claims, &fuzz_rules, &fuzz_map, &principal, err, sizeof(err)) == 0)
        fuzz_check_principal(&principal);
done:
    jwt_token_clear(&token);
}

static void fuzz_keyset(const char *text, size_t len)
{
    jwt_keyset set = {0};
    char err[256] = "";
    if (jwt_keyset_parse(text, len, &set, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        return;
    }
    for (size_t i = 0; i < set.count; i++)
        if (jwt_keyset_find(&set, set.keys[i].kid) == NULL || set.keys[i].pkey == NULL)
            abort();
    jwt_keyset_clear(&set);
}

static void fuzz_group_entries(const char *text, size_t len)
{
    jwt_group_map map = {0};
    char err[256];
    char *copy = strndup(text, len);
    size_t index = 0;
    if (copy == NULL)
        return;
    for (char *line = strtok(copy, "\n"); line != NULL; line = strtok(NULL, "\n"), index++)
        if (jwt_group_map_add(&map, line, index, err, sizeof(err)) != 0 && err[0] == '\0')
            abort();
    json_t *claims =
        json_pack("{s:s, s:[s, s, s]}", "sub", "alice", "groups", "spark-analytics", "a", "b");
    sp_principal principal = {.size = sizeof(principal)};
    if (claims != NULL &&
        jwt_principal_fill(claims, &fuzz_rules, &map, &principal, err, sizeof(err)) == 0)
        fuzz_check_principal(&principal);
    json_decref(claims);
    jwt_group_map_clear(&map);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) {
    case 0:
        fuzz_token(text, len);
        break;
    case 1:
        fuzz_keyset(text, len);
        break;
    default:
        fuzz_group_entries(text, len);
        break;
    }
    return 0;
}
