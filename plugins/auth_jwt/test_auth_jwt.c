/*
 * test_auth_jwt.c - the built auth_jwt.so, loaded into the mock host.
 *
 * Keys are made here with OpenSSL (RSA 2048, EC P-256, Ed25519), their
 * JWKS is written by this file, and tokens are signed here byte by byte
 * (JWS compact form), so the plugin is checked against an independent
 * signer; tests/integration/test_auth_jwt.py does the same with PyJWT.
 *
 * The mock host's HTTP client answers UNAVAILABLE, so the jwks_url tests
 * put a recorder in its place: the test swaps the context's host table for
 * a copy whose http_request records the call and whose answer the test
 * delivers by hand (http_answer).  Timers run with mock_host_run (only
 * those due in real time) or mock_host_fire_timers (all of them).
 */
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH TEST_BUILDDIR "/plugins/auth_jwt/.libs/auth_jwt.so"
#define DECISIONS   "sparkplane_auth_jwt_decisions_total"
#define LOOKUPS     "sparkplane_auth_jwt_cache_lookups_total"
#define ENTRIES     "sparkplane_auth_jwt_cache_entries"
#define HITS        "result=\"hit\""
#define MISSES      "result=\"miss\""
#define REFRESHES   "sparkplane_auth_jwt_jwks_refreshes_total"
#define ISSUER      "https://idp.example.test/oauth2/default"
#define AUDIENCE    "sparkplane"
#define GROUP_MAP                                                                                  \
    "spark-feature-eng=feature-engineering:member, spark-analysts=analytics:viewer, "              \
    "spark-feature-eng=ml:viewer, spark-platform=*:admin"

/* ---- keys, JWKS and tokens made by the test ------------------------------ */

typedef enum test_key_id {
    KEY_RSA,
    KEY_EC,
    KEY_ED,
    KEY_RSA_OTHER,
    KEY_EC_NEW,
    KEY_COUNT
} test_key_id;

static EVP_PKEY *test_keys[KEY_COUNT];

static EVP_PKEY *test_key(test_key_id id)
{
    if (test_keys[id] == NULL) {
        if (id == KEY_RSA || id == KEY_RSA_OTHER)
            test_keys[id] = EVP_RSA_gen(2048);
        else if (id == KEY_ED)
            test_keys[id] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        else
            test_keys[id] = EVP_EC_gen("P-256");
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(test_keys[id]);
    return test_keys[id];
}

static char *b64url(const unsigned char *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4), *p = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0) |
                     (i + 2 < len ? data[i + 2] : 0);
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        if (i + 1 < len)
            *p++ = alphabet[v >> 6 & 63];
        if (i + 2 < len)
            *p++ = alphabet[v & 63];
    }
    *p = '\0';
    return out;
}

static char *b64url_text(const char *text)
{
    return b64url((const unsigned char *)text, strlen(text));
}

/* A BIGNUM parameter as base64url, left-padded to `pad` bytes (0: natural size). */
static char *b64url_bn_param(EVP_PKEY *key, const char *name, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buffer[512];
    int len;
    CU_ASSERT_FATAL(EVP_PKEY_get_bn_param(key, name, &bn) == 1);
    len = pad > 0 ? BN_bn2binpad(bn, buffer, pad) : BN_bn2bin(bn, buffer);
    BN_free(bn);
    return b64url(buffer, (size_t)len);
}

/* Sets jwk[name] to text and frees text. */
static void jwk_set(json_t *jwk, const char *name, char *text)
{
    json_object_set_new(jwk, name, json_string(text));
    free(text);
}

/* One JWK (a JSON object) for a test key under `kid`. */
static json_t *test_jwk(test_key_id id, const char *kid)
{
    EVP_PKEY *key = test_key(id);
    json_t *jwk = json_pack("{s:s, s:s}", "kid", kid, "use", "sig");
    if (EVP_PKEY_is_a(key, "RSA")) {
        json_object_set_new(jwk, "kty", json_string("RSA"));
        jwk_set(jwk, "n", b64url_bn_param(key, "n", 0));
        jwk_set(jwk, "e", b64url_bn_param(key, "e", 0));
    } else if (EVP_PKEY_is_a(key, "EC")) {
        json_object_set_new(jwk, "kty", json_string("EC"));
        json_object_set_new(jwk, "crv", json_string("P-256"));
        jwk_set(jwk, "x", b64url_bn_param(key, "qx", 32));
        jwk_set(jwk, "y", b64url_bn_param(key, "qy", 32));
    } else {
        unsigned char raw[32];
        size_t len = sizeof(raw);
        CU_ASSERT_FATAL(EVP_PKEY_get_raw_public_key(key, raw, &len) == 1);
        json_object_set_new(jwk, "kty", json_string("OKP"));
        json_object_set_new(jwk, "crv", json_string("Ed25519"));
        jwk_set(jwk, "x", b64url(raw, len));
    }
    return jwk;
}

/* {"keys": [...]} with (key, kid) pairs; the caller frees the text. */
static char *test_jwks(size_t count, const test_key_id *ids, const char *const *kids)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(keys, test_jwk(ids[i], kids[i]));
    json_t *root = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* The JWS signature of `input` by `key` for `alg` (ES256 as r||s). */
static char *test_sign(const char *alg, EVP_PKEY *key, const char *input)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char signature[1024], raw[64];
    size_t len = sizeof(signature);
    const EVP_MD *digest = strcmp(alg, "EdDSA") == 0 ? NULL : EVP_sha256();

    CU_ASSERT_FATAL(EVP_DigestSignInit(md, NULL, digest, NULL, key) == 1);
    CU_ASSERT_FATAL(
        EVP_DigestSign(md, signature, &len, (const unsigned char *)input, strlen(input)) == 1);
    EVP_MD_CTX_free(md);
    if (strcmp(alg, "ES256") == 0) {
        const unsigned char *p = signature;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
        ECDSA_SIG_free(sig);
        return b64url(raw, 64);
    }
    return b64url(signature, len);
}

/* Claims that pass: the caller changes what its test is about. */
static json_t *test_claims(void)
{
    json_int_t now = (json_int_t)time(NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:[s, s], s:I, s:I}", "iss", ISSUER, "aud", AUDIENCE,
                     "sub", "00u1abcd", "email", "alice@example.com", "groups", "spark-feature-eng",
                     "everyone", "iat", now - 5, "exp", now + 300);
}

/* header.payload.signature; the signature from `key` (NULL: empty). Takes claims. */
static char *test_token_header(const char *header, json_t *claims, EVP_PKEY *key, const char *alg)
{
    char *payload_json = json_dumps(claims, JSON_COMPACT);
    char *header_part = b64url_text(header), *payload_part = b64url_text(payload_json);
    char *input = malloc(strlen(header_part) + strlen(payload_part) + 2), *signature, *token;

    sprintf(input, "%s.%s", header_part, payload_part);
    signature = key != NULL ? test_sign(alg, key, input) : strdup("");
    token = malloc(strlen(input) + strlen(signature) + 2);
    sprintf(token, "%s.%s", input, signature);
    json_decref(claims);
    free(payload_json);
    free(header_part);
    free(payload_part);
    free(input);
    free(signature);
    return token;
}

static char *test_token(const char *alg, const char *kid, test_key_id id, json_t *claims)
{
    char header[256];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    return test_token_header(header, claims, test_key(id), alg);
}

/* ---- the fixture ----------------------------------------------------------- */

typedef struct http_recorder {
    sp_host_api api;
    int calls, cancels, pending;
    char url[256], ca_file[256];
    size_t max_response_bytes;
    sp_http_done_fn done;
    void *arg;
} http_recorder;

static http_recorder recorder;

static int recorder_request(sp_plugin_context *ctx, const sp_http_request *request,
                            sp_http_done_fn done, void *arg, sp_http_call **call_out)
{
    (void)ctx;
    recorder.calls++;
    recorder.pending = 1;
    snprintf(recorder.url, sizeof(recorder.url), "%s", request->url);
    snprintf(recorder.ca_file, sizeof(recorder.ca_file), "%s",
             request->ca_file ? request->ca_file : "");
    recorder.max_response_bytes = request->max_response_bytes;
    recorder.done = done;
    recorder.arg = arg;
    *call_out = (sp_http_call *)&recorder;
    return SP_OK;
}

static void recorder_cancel(sp_http_call *call)
{
    CU_ASSERT_PTR_EQUAL(call, (sp_http_call *)&recorder);
    recorder.cancels++;
    recorder.pending = 0;
}

static void http_answer(long http_status, const char *body)
{
    sp_http_response response = {.size = sizeof(response),
                                 .status = SP_OK,
                                 .http_status = http_status,
                                 .body = body,
                                 .body_len = strlen(body),
                                 .error_message = ""};
    CU_ASSERT_FATAL(recorder.pending);
    recorder.pending = 0;
    recorder.done(recorder.arg, &response);
}

typedef struct fixture {
    char dir[64];
    char jwks_path[128];
    mock_host *host;
    const sp_auth_ops *ops;
    void *provider;
    char err[512];
} fixture;

static void fixture_write_jwks(fixture *f, const char *jwks)
{
    FILE *file = fopen(f->jwks_path, "w");
    CU_ASSERT_FATAL(file != NULL);
    fputs(jwks, file);
    fclose(file);
}

/* The default key file: rsa-1, ec-1, ed-1. */
static char *default_jwks(void)
{
    static const test_key_id ids[] = {KEY_RSA, KEY_EC, KEY_ED};
    static const char *const kids[] = {"rsa-1", "ec-1", "ed-1"};
    return test_jwks(3, ids, kids);
}

static void fixture_open(fixture *f)
{
    char *jwks = default_jwks();
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth_jwt.XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
    snprintf(f->jwks_path, sizeof(f->jwks_path), "%s/jwks.json", f->dir);
    fixture_write_jwks(f, jwks);
    free(jwks);
    f->host = mock_host_new();
    CU_ASSERT_FATAL(f->host != NULL);
    CU_ASSERT_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)) == 0);
    mock_host_set_option(f->host, "issuer", ISSUER);
    mock_host_set_option(f->host, "audience", AUDIENCE);
    mock_host_set_option(f->host, "jwks_file", f->jwks_path);
    mock_host_set_option(f->host, "group_map", GROUP_MAP);
}

/* Puts the HTTP recorder in the host table the plugin will see. */
static void fixture_use_url(fixture *f, const char *url)
{
    sp_plugin_context *ctx = mock_host_context(f->host);
    memset(&recorder, 0, sizeof(recorder));
    recorder.api = *ctx->host;
    recorder.api.http_request = recorder_request;
    recorder.api.http_cancel = recorder_cancel;
    ctx->host = &recorder.api;
    mock_host_set_option(f->host, "jwks_file", "");
    mock_host_set_option(f->host, "jwks_url", url);
}

static int fixture_init(fixture *f)
{
    int rc = mock_host_init(f->host, f->err, sizeof(f->err));
    if (rc == SP_OK)
        f->ops = mock_host_provider(f->host, SP_KIND_AUTH, "auth_jwt", &f->provider);
    return rc;
}

static void fixture_close(fixture *f)
{
    mock_host_free(f->host);
    unlink(f->jwks_path);
    rmdir(f->dir);
}

static int fixture_auth_header(fixture *f, const char *authorization, sp_principal *principal)
{
    sp_auth_request request = {.size = sizeof(request),
                               .transport = SP_AUTH_REST,
                               .authorization = authorization,
                               .peer_address = "127.0.0.1:1"};
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    f->err[0] = '\0';
    return f->ops->authenticate(f->provider, &request, principal, f->err, sizeof(f->err));
}

static int fixture_auth(fixture *f, const char *token, sp_principal *principal)
{
    char header[8192];
    snprintf(header, sizeof(header), "Bearer %s", token);
    return fixture_auth_header(f, header, principal);
}

/* `token` (freed here) is refused with a message holding `needle` and none of the token. */
static void expect_refused(fixture *f, char *token, const char *needle)
{
    sp_principal p;
    const char *payload = strchr(token, '.') + 1;
    char piece[17];
    CU_ASSERT_EQUAL(fixture_auth(f, token, &p), SP_INVALID);
    if (strstr(f->err, needle) == NULL)
        fprintf(stderr, "\n  want \"%s\" in \"%s\"\n", needle, f->err);
    CU_ASSERT_PTR_NOT_NULL(strstr(f->err, needle));
    snprintf(piece, sizeof(piece), "%s", payload);
    CU_ASSERT_PTR_NULL(strstr(f->err, piece));
    CU_ASSERT_STRING_EQUAL(p.subject, "");
    free(token);
}

static void expect_accepted(fixture *f, char *token)
{
    sp_principal p;
    int rc = fixture_auth(f, token, &p);
    if (rc != SP_OK)
        fprintf(stderr, "\n  refused: %s\n", f->err);
    CU_ASSERT_EQUAL(rc, SP_OK);
    free(token);
}

/* ---- the tests --------------------------------------------------------------- */

static void test_descriptor(void)
{
    fixture f;
    fixture_open(&f);
    const sp_plugin_descriptor *d = mock_host_descriptor(f.host);
    CU_ASSERT_EQUAL(d->kind, SP_KIND_AUTH);
    CU_ASSERT_STRING_EQUAL(d->name, "auth_jwt");
    for (const sp_option_spec *o = d->options; o->key != NULL; o++) {
        if (strcmp(o->key, "jwks_refresh") == 0)
            CU_ASSERT_STRING_EQUAL(o->default_value, "10m");
        if (strcmp(o->key, "jwks_min_refresh") == 0)
            CU_ASSERT_STRING_EQUAL(o->default_value, "30s");
        if (strcmp(o->key, "leeway") == 0)
            CU_ASSERT_STRING_EQUAL(o->default_value, "60s");
        if (strcmp(o->key, "issuer") == 0 || strcmp(o->key, "audience") == 0)
            CU_ASSERT_TRUE(o->required);
    }
    fixture_close(&f);
}

static void test_each_algorithm(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "loaded 3 signing keys"));

    static const struct {
        const char *alg, *kid;
        test_key_id key;
    } cases[] = {{"RS256", "rsa-1", KEY_RSA}, {"ES256", "ec-1", KEY_EC}, {"EdDSA", "ed-1", KEY_ED}};
    for (size_t i = 0; i < 3; i++) {
        char *token = test_token(cases[i].alg, cases[i].kid, cases[i].key, test_claims());
        CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
        CU_ASSERT_STRING_EQUAL(p.subject, "00u1abcd");
        /* spark-feature-eng maps to two teams: member of one, viewer of the other. */
        CU_ASSERT_STRING_EQUAL(p.role, "member");
        CU_ASSERT_EQUAL(p.team_count, 2);
        CU_ASSERT_STRING_EQUAL(p.teams[0], "feature-engineering");
        CU_ASSERT_STRING_EQUAL(p.teams[1], "ml");
        free(token);
    }
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"ok\""), 3);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFRESHES, "result=\"ok\""), 1);
    fixture_close(&f);
}

static void test_groups_and_principal_claim(void)
{
    fixture f;
    sp_principal p;
    json_t *claims;
    char *token;
    fixture_open(&f);
    mock_host_set_option(f.host, "principal_claim", "email");
    mock_host_set_option(f.host, "groups_claim", "roles");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    claims = test_claims();
    json_object_set_new(claims, "roles", json_pack("[s, s]", "spark-analysts", "spark-platform"));
    token = test_token("ES256", "ec-1", KEY_EC, claims);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, "alice@example.com");
    CU_ASSERT_STRING_EQUAL(p.role, "admin"); /* the highest mapped role */
    CU_ASSERT_EQUAL(p.team_count, 2);
    CU_ASSERT_STRING_EQUAL(p.teams[0], "analytics");
    CU_ASSERT_STRING_EQUAL(p.teams[1], "*");
    free(token);

    claims = test_claims();
    json_object_set_new(claims, "roles", json_pack("[s]", "spark-analysts"));
    token = test_token("ES256", "ec-1", KEY_EC, claims);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.role, "viewer");
    free(token);

    /* "groups" is not the configured claim any more: nothing maps. */
    expect_refused(&f, test_token("ES256", "ec-1", KEY_EC, test_claims()),
                   "no group in claim roles is mapped to a team");
    claims = test_claims();
    json_object_del(claims, "email");
    json_object_set_new(claims, "roles", json_pack("[s]", "spark-analysts"));
    expect_refused(&f, test_token("ES256", "ec-1", KEY_EC, claims),
                   "claim email (the principal) must be a string");
    claims = test_claims();
    json_object_set_new(claims, "roles", json_string("spark-analysts"));
    expect_refused(&f, test_token("ES256", "ec-1", KEY_EC, claims),
                   "claim roles must be an array of strings");
    fixture_close(&f);
}

static void test_defers_what_is_not_a_jws(void)
{
    fixture f;
    sp_principal p;
    char *header_only = b64url_text("{\"typ\":\"JWT\"}"), text[256];
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    CU_ASSERT_EQUAL(fixture_auth_header(&f, NULL, &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Basic YWxpY2U6cHc=", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Bearer ", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Bearer alice-0123456789abcdef", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Bearer a.b.c", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Bearer a.b", &p), SP_DEFER);
    snprintf(text, sizeof(text), "Bearer %s.e30.", header_only); /* no "alg" */
    CU_ASSERT_EQUAL(fixture_auth_header(&f, text, &p), SP_DEFER);
    snprintf(text, sizeof(text), "Bearer %s.e30.x.y", header_only); /* four parts */
    CU_ASSERT_EQUAL(fixture_auth_header(&f, text, &p), SP_DEFER);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"defer\""), 8);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"invalid\""), 0);
    free(header_only);
    fixture_close(&f);
}

/* HS256 over the token with the RSA public key's PEM as the HMAC secret. */
static char *test_hmac_with_public_key(void)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem, *header = b64url_text("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}"), *payload_json;
    char *payload, input[4096], *token = malloc(8192);
    unsigned char mac[32];
    size_t mac_len = sizeof(mac);
    long pem_len;

    PEM_write_bio_PUBKEY(bio, test_key(KEY_RSA));
    pem_len = BIO_get_mem_data(bio, &pem);
    json_t *claims = test_claims();
    payload_json = json_dumps(claims, JSON_COMPACT);
    payload = b64url_text(payload_json);
    snprintf(input, sizeof(input), "%s.%s", header, payload);
    CU_ASSERT_FATAL(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t)pem_len,
                              (unsigned char *)input, strlen(input), mac, sizeof(mac),
                              &mac_len) != NULL);
    char *signature = b64url(mac, mac_len);
    snprintf(token, 8192, "%s.%s", input, signature);
    free(signature);
    free(payload);
    free(payload_json);
    free(header);
    json_decref(claims);
    BIO_free(bio);
    return token;
}

static void test_algorithm_policy(void)
{
    fixture f;
    fixture_open(&f);
    mock_host_set_option(f.host, "algorithms", "[RS256, EdDSA]");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    expect_refused(
        &f, test_token_header("{\"alg\":\"none\",\"kid\":\"rsa-1\"}", test_claims(), NULL, "none"),
        "alg \"none\" (unsigned) is never accepted");
    expect_refused(&f, test_hmac_with_public_key(), "HMAC algorithms (alg HS256)");
    expect_refused(&f, test_token("ES256", "ec-1", KEY_EC, test_claims()),
                   "alg ES256 is not in the configured algorithms");
    expect_refused(&f,
                   test_token_header("{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}", test_claims(),
                                     test_key(KEY_RSA), "RS256"),
                   "alg \"PS256\" is not supported");
    /* An Ed25519 signature under the RSA key's kid: the key's type does not fit. */
    expect_refused(&f, test_token("EdDSA", "rsa-1", KEY_ED, test_claims()),
                   "alg EdDSA does not fit the key's type (a RS256 key)");
    expect_refused(&f,
                   test_token_header("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"crit\":[\"b64\"]}",
                                     test_claims(), test_key(KEY_RSA), "RS256"),
                   "header \"crit\"");
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"invalid\""), 6);
    fixture_close(&f);
}

/* The token with its payload replaced by other claims, the signature kept. */
static char *test_tampered(void)
{
    char *token = test_token("RS256", "rsa-1", KEY_RSA, test_claims());
    json_t *claims = test_claims();
    json_object_set_new(claims, "groups", json_pack("[s]", "spark-platform"));
    char *json = json_dumps(claims, JSON_COMPACT), *payload = b64url_text(json);
    char *first_dot = strchr(token, '.'), *second_dot = strchr(first_dot + 1, '.');
    char *out = malloc(strlen(token) + strlen(payload) + 1);
    sprintf(out, "%.*s.%s%s", (int)(first_dot - token), token, payload, second_dot);
    free(token);
    free(json);
    free(payload);
    json_decref(claims);
    return out;
}

static void test_signatures(void)
{
    fixture f;
    char *token;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA_OTHER, test_claims()), "bad signature");
    expect_refused(&f, test_token("ES256", "ec-1", KEY_EC_NEW, test_claims()), "bad signature");
    expect_refused(&f, test_tampered(), "bad signature");
    token = test_token("EdDSA", "ed-1", KEY_ED, test_claims());
    token[strlen(token) - 4] = '\0'; /* a truncated signature */
    expect_refused(&f, token, "bad signature");
    fixture_close(&f);
}

static json_t *claims_with(const char *key, json_t *value)
{
    json_t *claims = test_claims();
    if (value == NULL)
        json_object_del(claims, key);
    else
        json_object_set_new(claims, key, value);
    return claims;
}

static void test_claims_checked(void)
{
    fixture f;
    json_int_t now = (json_int_t)time(NULL);
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("exp", json_integer(now - 61))),
        "expired (claim exp)");
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA,
                                   claims_with("exp", json_integer(now - 30)))); /* leeway */
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("exp", NULL)),
                   "claim exp must be a number (NumericDate) and is required");
    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("exp", json_string("tomorrow"))),
        "claim exp must be a number");
    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("nbf", json_integer(now + 120))),
        "not valid yet (claim nbf)");
    expect_accepted(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("nbf", json_integer(now + 30))));
    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("iat", json_integer(now + 120))),
        "issued in the future (claim iat)");
    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("iss", json_string(ISSUER "/other"))),
        "claim iss is not the configured issuer");
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("iss", NULL)),
                   "claim iss is not the configured issuer");
    expect_refused(
        &f,
        test_token("RS256", "rsa-1", KEY_RSA, claims_with("aud", json_string("another-service"))),
        "claim aud does not contain the configured audience");
    expect_refused(
        &f,
        test_token("RS256", "rsa-1", KEY_RSA, claims_with("aud", json_pack("[s, s]", "a", "b"))),
        "claim aud does not contain the configured audience");
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA,
                                   claims_with("aud", json_pack("[s, s]", "a", AUDIENCE))));
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("sub", NULL)),
                   "claim sub (the principal) must be a string");
    expect_refused(
        &f,
        test_token("RS256", "rsa-1", KEY_RSA, claims_with("groups", json_pack("[s]", "everyone"))),
        "no group in claim groups is mapped to a team (group_map)");
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("groups", NULL)),
                   "no group in claim groups is mapped");
    expect_refused(
        &f,
        test_token("RS256", "rsa-1", KEY_RSA, claims_with("groups", json_pack("[s, i]", "x", 3))),
        "claim groups must be an array of strings");
    fixture_close(&f);
}

static void test_leeway_option(void)
{
    fixture f;
    json_int_t now = (json_int_t)time(NULL);
    fixture_open(&f);
    mock_host_set_option(f.host, "leeway", "0s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f,
                   test_token("RS256", "rsa-1", KEY_RSA, claims_with("exp", json_integer(now - 2))),
                   "expired");
    expect_refused(
        &f, test_token("RS256", "rsa-1", KEY_RSA, claims_with("nbf", json_integer(now + 30))),
        "not valid yet");
    fixture_close(&f);
}

/* init must refuse with exactly `message` after `option` is set to `value`. */
static void check_bad_option(const char *option, const char *value, const char *message)
{
    fixture f;
    fixture_open(&f);
    mock_host_set_option(f.host, option, value);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    if (strcmp(f.err, message) != 0)
        fprintf(stderr, "\n  want \"%s\"\n  got  \"%s\"\n", message, f.err);
    CU_ASSERT_STRING_EQUAL(f.err, message);
    CU_ASSERT_PTR_NULL(mock_host_provider(f.host, SP_KIND_AUTH, "auth_jwt", NULL));
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 0);
    fixture_close(&f);
}

static void test_bad_options(void)
{
    check_bad_option("jwks_url", "https://idp.example.test/keys",
                     "jwks_file, jwks_url: set exactly one of them");
    check_bad_option("jwks_file", "", "jwks_file, jwks_url: set exactly one of them");
    check_bad_option("jwks_ca_file", "/etc/ssl/ca.pem", "jwks_ca_file: only used with jwks_url");
    check_bad_option("algorithms", "RS256, HS256",
                     "algorithms[1]: \"HS256\" is not supported (RS256, ES256, EdDSA)");
    check_bad_option("group_map", "spark-feature-eng",
                     "group_map[0]: \"spark-feature-eng\" is not \"group=team:role\"");
    check_bad_option("group_map", "a=ml:member, b=ml:owner",
                     "group_map[1]: unknown role \"owner\" (admin, member or viewer)");
    check_bad_option("group_map", "a=*:member",
                     "group_map[0]: team \"*\" is allowed alone and for admin only");
    check_bad_option("group_map", "a=Feature_Eng:member",
                     "group_map[0]: bad team \"Feature_Eng\" (want [a-z0-9-]{1,63})");
    check_bad_option("jwks_file", "/nonexistent/jwks.json",
                     "jwks_file: cannot read /nonexistent/jwks.json: No such file or directory");
}

static void check_bad_jwks(const char *jwks, const char *message)
{
    fixture f;
    fixture_open(&f);
    fixture_write_jwks(&f, jwks);
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    if (strstr(f.err, message) == NULL)
        fprintf(stderr, "\n  want \"%s\"\n  got  \"%s\"\n", message, f.err);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, message));
    fixture_close(&f);
}

static void test_bad_jwks(void)
{
    check_bad_jwks("{\"keys\": [", "jwks: not JSON");
    check_bad_jwks("{\"keys\": {}}", "jwks: \"keys\" must be an array");
    check_bad_jwks("{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}", "jwks: no usable key");
    check_bad_jwks("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"e\", "
                   "\"x\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", "
                   "\"y\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
                   "jwks: keys[0] (kid \"e\", ES256): the point is not on curve P-256");
    check_bad_jwks("{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"kid\": \"d\", "
                   "\"x\": \"AAAA\"}]}",
                   "keys[0] (kid \"d\", EdDSA): \"x\" must be a 32-byte base64url public key");

    /* A JWK for encryption or of an unknown type is skipped, the rest loads. */
    fixture f;
    json_t *root = json_pack("{s:[o, {s:s, s:s}]}", "keys", test_jwk(KEY_RSA, "rsa-1"), "kty",
                             "oct", "k", "c2VjcmV0");
    json_t *enc = test_jwk(KEY_EC, "ec-enc");
    json_object_set_new(enc, "use", json_string("enc"));
    json_array_append_new(json_object_get(root, "keys"), enc);
    char *text = json_dumps(root, 0);
    fixture_open(&f);
    fixture_write_jwks(&f, text);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "loaded 1 signing keys"));
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "(2 skipped)"));
    expect_refused(&f, test_token("ES256", "ec-enc", KEY_EC, test_claims()), "unknown signing key");
    free(text);
    json_decref(root);
    fixture_close(&f);
}

/* Runs the mock loop for ms (only due timers fire). */
static void run_for(fixture *f, uint64_t ms)
{
    mock_host_run(f->host, NULL, NULL, ms);
}

static char *jwks_of(test_key_id a, const char *kid_a, test_key_id b, const char *kid_b)
{
    test_key_id ids[] = {a, b};
    const char *kids[] = {kid_a, kid_b};
    return test_jwks(b == KEY_COUNT ? 1 : 2, ids, kids);
}

static void test_jwks_url_rotation(void)
{
    fixture f;
    char *jwks;
    fixture_open(&f);
    fixture_use_url(&f, "https://idp.example.test/oauth2/v1/keys");
    mock_host_set_option(f.host, "jwks_ca_file", "/tmp/idp-ca.pem");
    mock_host_set_option(f.host, "jwks_min_refresh", "300ms");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    /* init asked for the keys and did not wait for them. */
    CU_ASSERT_EQUAL(recorder.calls, 1);
    CU_ASSERT_STRING_EQUAL(recorder.url, "https://idp.example.test/oauth2/v1/keys");
    CU_ASSERT_STRING_EQUAL(recorder.ca_file, "/tmp/idp-ca.pem");
    CU_ASSERT_TRUE(recorder.max_response_bytes > 0);
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()),
                   "the key set is being refreshed, try again shortly");
    run_for(&f, 20);
    CU_ASSERT_EQUAL(recorder.calls, 1); /* one fetch at a time */
    jwks = jwks_of(KEY_RSA, "rsa-1", KEY_COUNT, NULL);
    http_answer(200, jwks);
    free(jwks);
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()));

    /* The provider rotates to ec-2: the first token with it asks for a refresh. */
    expect_refused(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()),
                   "the key set is being refreshed");
    CU_ASSERT_EQUAL(recorder.calls, 1); /* on the loop, not inside authenticate */
    run_for(&f, 20);
    CU_ASSERT_EQUAL(recorder.calls, 2);
    expect_refused(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()),
                   "the key set is being refreshed");
    run_for(&f, 20);
    CU_ASSERT_EQUAL(recorder.calls, 2);
    jwks = jwks_of(KEY_RSA, "rsa-1", KEY_EC_NEW, "ec-2");
    http_answer(200, jwks);
    free(jwks);
    expect_accepted(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()));

    /* Forged kids right after a refresh: no new request within jwks_min_refresh. */
    expect_refused(&f, test_token("ES256", "ec-9", KEY_EC, test_claims()),
                   "refreshed less than jwks_min_refresh ago");
    run_for(&f, 20);
    CU_ASSERT_EQUAL(recorder.calls, 2);
    run_for(&f, 320);
    expect_refused(&f, test_token("ES256", "ec-9", KEY_EC, test_claims()),
                   "the key set is being refreshed");
    run_for(&f, 20);
    CU_ASSERT_EQUAL(recorder.calls, 3);

    /* A failed fetch keeps the keys in force. */
    http_answer(503, "unavailable");
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_WARN, "JWKS refresh failed, keeping 2 keys"));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFRESHES, "result=\"ok\""), 2);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFRESHES, "result=\"error\""), 1);
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()));

    /* A bad JWKS body is a failed refresh too. */
    run_for(&f, 320);
    expect_refused(&f, test_token("ES256", "ec-9", KEY_EC, test_claims()), "being refreshed");
    run_for(&f, 20);
    http_answer(200, "{\"keys\": []}");
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_WARN, "jwks: no usable key"));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFRESHES, "result=\"error\""), 2);
    expect_accepted(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()));

    /* Unload with a fetch in flight cancels it. */
    run_for(&f, 320);
    expect_refused(&f, test_token("ES256", "ec-9", KEY_EC, test_claims()), "being refreshed");
    run_for(&f, 20);
    CU_ASSERT_TRUE(recorder.pending);
    mock_host_fini(f.host);
    CU_ASSERT_EQUAL(recorder.cancels, 1);
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 0);
    fixture_close(&f);
}

static void test_jwks_url_must_be_https(void)
{
    fixture f;
    fixture_open(&f);
    fixture_use_url(&f, "http://idp.example.test/keys");
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_STRING_EQUAL(f.err, "jwks_url: must be an https:// URL");
    CU_ASSERT_EQUAL(recorder.calls, 0);
    fixture_close(&f);
}

static void test_jwks_file_refresh(void)
{
    fixture f;
    char *jwks;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL_FATAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_EQUAL(mock_host_timer_delay(f.host, 0), 600000); /* "10m" */

    /* Rotation in the file: the new kid triggers a reload on the loop. */
    jwks = jwks_of(KEY_EC_NEW, "ec-2", KEY_ED, "ed-1");
    fixture_write_jwks(&f, jwks);
    free(jwks);
    expect_refused(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()),
                   "the key set is being refreshed");
    run_for(&f, 20);
    expect_accepted(&f, test_token("ES256", "ec-2", KEY_EC_NEW, test_claims()));
    expect_refused(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()), "unknown signing key");

    /* The periodic refresh; a broken file keeps the keys in force. */
    fixture_write_jwks(&f, "{\"keys\": [");
    mock_host_fire_timers(f.host);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_WARN, "JWKS reload failed, keeping 2 keys"));
    expect_accepted(&f, test_token("EdDSA", "ed-1", KEY_ED, test_claims()));
    jwks = jwks_of(KEY_RSA, "rsa-1", KEY_COUNT, NULL);
    fixture_write_jwks(&f, jwks);
    free(jwks);
    mock_host_fire_timers(f.host);
    expect_accepted(&f, test_token("RS256", "rsa-1", KEY_RSA, test_claims()));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_auth_jwt_jwks_keys", NULL), 1);
    fixture_close(&f);
}

static void test_token_without_kid(void)
{
    fixture f;
    json_t *claims = test_claims();
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    /* One EdDSA key in the set: a kid-less EdDSA token uses it. */
    expect_accepted(&f,
                    test_token_header("{\"alg\":\"EdDSA\"}", claims, test_key(KEY_ED), "EdDSA"));
    expect_refused(&f,
                   test_token_header("{\"alg\":\"EdDSA\",\"kid\":7}", test_claims(),
                                     test_key(KEY_ED), "EdDSA"),
                   "header kid must be a string");
    fixture_close(&f);
}

/* ---- the verified-token cache ------------------------------------------------ */

/*
 * The plugin reads the wall clock (time()), as exp does; these tests make
 * tokens that expire a second or two ahead and wait for the clock to get
 * there.  The wait is not the assertion: what is asserted is the answer
 * after it.
 */
static void wait_until(time_t when)
{
    while (time(NULL) < when)
        usleep(20000);
}

static void expect_same_principal(const sp_principal *a, const sp_principal *b)
{
    CU_ASSERT_STRING_EQUAL(a->subject, b->subject);
    CU_ASSERT_STRING_EQUAL(a->role, b->role);
    CU_ASSERT_EQUAL_FATAL(a->team_count, b->team_count);
    for (uint32_t i = 0; i < a->team_count; i++)
        CU_ASSERT_STRING_EQUAL(a->teams[i], b->teams[i]);
    CU_ASSERT_EQUAL(a->size, sizeof(*a));
}

static void test_cache_hit(void)
{
    fixture f;
    sp_principal first, again;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    char *token = test_token("ES256", "ec-1", KEY_EC, test_claims());

    CU_ASSERT_EQUAL(fixture_auth(&f, token, &first), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, MISSES), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 0);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 1);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &again), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    CU_ASSERT_STRING_EQUAL(again.subject, "00u1abcd");
    expect_same_principal(&first, &again);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"ok\""), 2);

    /* The same token with its signature changed is another key: verified, and refused. */
    char *tampered = strdup(token);
    char *last = tampered + strlen(tampered) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    expect_refused(&f, tampered, "bad signature");

    /* Refusals are not cached: the same bad token twice is verified twice. */
    json_int_t now = (json_int_t)time(NULL);
    expect_refused(&f,
                   test_token("ES256", "ec-1", KEY_EC, claims_with("exp", json_integer(now - 600))),
                   "expired");
    expect_refused(&f,
                   test_token("ES256", "ec-1", KEY_EC, claims_with("exp", json_integer(now - 600))),
                   "expired");
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, MISSES), 4);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 1);

    /* A static token (not a JWS) still defers, cache or not. */
    CU_ASSERT_EQUAL(fixture_auth_header(&f, "Bearer sp-static-token-0123456789", &again), SP_DEFER);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, MISSES), 4);
    free(token);
    fixture_close(&f);
}

static void test_cache_stops_at_exp(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f);
    mock_host_set_option(f.host, "leeway", "0s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    json_int_t exp = (json_int_t)time(NULL) + 2;
    char *token = test_token("EdDSA", "ed-1", KEY_ED, claims_with("exp", json_integer(exp)));

    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    wait_until((time_t)exp);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "expired (claim exp)"));
    CU_ASSERT_STRING_EQUAL(p.subject, "");
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 0);
    free(token);
    fixture_close(&f);
}

/* An entry lives at most one jwks_refresh period, even when exp is far away. */
static void test_cache_bounded_by_refresh_period(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f);
    mock_host_set_option(f.host, "jwks_refresh", "1s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    char *token = test_token("EdDSA", "ed-1", KEY_ED, test_claims()); /* exp in 5 minutes */
    time_t stored = time(NULL);

    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    wait_until(stored + 2);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, MISSES), 2);
    free(token);
    fixture_close(&f);
}

static void test_cache_flushed_when_keys_change(void)
{
    fixture f;
    sp_principal p;
    char *jwks;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    char *token = test_token("RS256", "rsa-1", KEY_RSA, test_claims());
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);

    /* The same document read again: the cache stays. */
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFRESHES, "result=\"ok\""), 2);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);

    /* rsa-1 removed from the file: its cached token stops working at the next read. */
    jwks = jwks_of(KEY_EC, "ec-1", KEY_ED, "ed-1");
    fixture_write_jwks(&f, jwks);
    free(jwks);
    mock_host_fire_timers(f.host);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "1 cached tokens forgotten"));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 0);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &p), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "unknown signing key"));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), 1);
    free(token);
    fixture_close(&f);
}

static void test_cache_size_zero(void)
{
    fixture f;
    sp_principal first, again;
    fixture_open(&f);
    mock_host_set_option(f.host, "cache_size", "0");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "cache of 0 verified tokens"));
    char *token = test_token("ES256", "ec-1", KEY_EC, test_claims());
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &first), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &again), SP_OK);
    expect_same_principal(&first, &again);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"ok\""), 2);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, HITS), -1); /* not registered */

    /* Every request is verified: a removed key stops the token at the next read too. */
    char *jwks = jwks_of(KEY_RSA, "rsa-1", KEY_COUNT, NULL);
    fixture_write_jwks(&f, jwks);
    free(jwks);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(fixture_auth(&f, token, &again), SP_INVALID);
    free(token);
    fixture_close(&f);

    check_bad_option("cache_size", "-1", "cache_size: must be 0 (off) to 65536");
    check_bad_option("cache_size", "65537", "cache_size: must be 0 (off) to 65536");
}

/* Token n of the eviction test: a distinct jti, so a distinct token string. */
static char *numbered_token(int n)
{
    return test_token("EdDSA", "ed-1", KEY_ED, claims_with("jti", json_integer(n)));
}

static int cache_hits(fixture *f)
{
    return (int)mock_host_metric_value(f->host, LOOKUPS, HITS);
}

static void test_cache_eviction(void)
{
    fixture f;
    sp_principal p;
    char *tokens[12];
    fixture_open(&f);
    mock_host_set_option(f.host, "cache_size", "4");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (int i = 0; i < 12; i++)
        tokens[i] = numbered_token(i);

    /* 0..3 fill the table; a hit on 0 makes 1 the least recently used. */
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(fixture_auth(&f, tokens[i], &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 4);
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[0], &p), SP_OK);
    CU_ASSERT_EQUAL(cache_hits(&f), 1);
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[4], &p), SP_OK); /* evicts 1 */
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[0], &p), SP_OK);
    CU_ASSERT_EQUAL(cache_hits(&f), 2);
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[1], &p), SP_OK); /* verified again */
    CU_ASSERT_EQUAL(cache_hits(&f), 2);

    /* Many distinct tokens: the table stays at its size, the newest answer from it. */
    for (int i = 5; i < 12; i++) {
        CU_ASSERT_EQUAL(fixture_auth(&f, tokens[i], &p), SP_OK);
        CU_ASSERT_TRUE(mock_host_metric_value(f.host, ENTRIES, NULL) <= 4);
    }
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, ENTRIES, NULL), 4);
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[11], &p), SP_OK);
    CU_ASSERT_EQUAL(cache_hits(&f), 3);
    CU_ASSERT_EQUAL(fixture_auth(&f, tokens[0], &p), SP_OK);
    CU_ASSERT_EQUAL(cache_hits(&f), 3);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, LOOKUPS, MISSES), 12 + 2);
    for (int i = 0; i < 12; i++)
        free(tokens[i]);
    fixture_close(&f);
}

static const unit_test_case cases[] = {
    {"descriptor declares kind, name and defaults", test_descriptor},
    {"RS256, ES256 and EdDSA tokens authenticate with mapped teams", test_each_algorithm},
    {"principal_claim, groups_claim and the highest role", test_groups_and_principal_claim},
    {"what is not a JWS defers", test_defers_what_is_not_a_jws},
    {"alg none, HS256 with a public key, unlisted algs are refused", test_algorithm_policy},
    {"other key, tampered payload, truncated signature are refused", test_signatures},
    {"iss, aud, exp, nbf, iat, principal and groups are checked", test_claims_checked},
    {"leeway 0s is strict", test_leeway_option},
    {"bad options fail init with the option's name", test_bad_options},
    {"bad JWKS documents fail init; foreign keys are skipped", test_bad_jwks},
    {"jwks_url: async fetch, unknown kid refresh, rate limit, failures", test_jwks_url_rotation},
    {"jwks_url must be https", test_jwks_url_must_be_https},
    {"jwks_file: rotation and periodic refresh", test_jwks_file_refresh},
    {"a token without kid uses the one key of its type", test_token_without_kid},
    {"cache: a hit gives the same principal; refusals are not cached", test_cache_hit},
    {"cache: a cached token stops at exp + leeway", test_cache_stops_at_exp},
    {"cache: an entry lives at most one jwks_refresh", test_cache_bounded_by_refresh_period},
    {"cache: a changed key set flushes it, an unchanged one does not",
     test_cache_flushed_when_keys_change},
    {"cache: cache_size 0 verifies every time; bad sizes are refused", test_cache_size_zero},
    {"cache: least recently used evicted, the table stays bounded", test_cache_eviction},
    {NULL, NULL}};

UNIT_TEST_MAIN("auth_jwt", cases)
