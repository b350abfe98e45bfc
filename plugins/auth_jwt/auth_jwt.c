/*
 * auth_jwt.c - the auth_jwt plugin: bearer JWTs (OIDC access or ID tokens)
 * verified against a JSON Web Key Set.
 *
 * authenticate() is synchronous and never blocks: it only reads the key
 * set already in memory.  The set comes from a file (jwks_file) or from an
 * HTTPS URL (jwks_url) fetched with the host's asynchronous HTTP client,
 * and is refreshed every jwks_refresh by a repeating host timer.  A token
 * whose kid is not in the set schedules one refresh on a zero-delay timer
 * (at most one every jwks_min_refresh, so forged kids cannot make us
 * hammer the identity provider; the periodic refresh does not count) and is denied meanwhile with a
 * message that says so: after a key rotation the client's next attempt passes. A failed refresh
 * keeps the keys already loaded.
 *
 * The order of checks in authenticate(): does it look like a JWS at all
 * (else DEFER, so a static-token provider can follow in the chain), the
 * algorithm policy (jwt_verify.c), the key (kid, kty/crv fit the alg),
 * the signature, then the claims and the group map (jwt_claims.c).  No
 * message repeats the token or a claim from it.
 *
 * Before all that, a token that passed every check recently answers from
 * the verified-token cache (credential_cache.c): same token string, same
 * principal, while its exp + leeway and one jwks_refresh period allow.
 * A new JWKS document flushes the cache; refusals are never cached.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sparkplane/sparkplane.h>

#include "credential_cache.h"
#include "jwt_claims.h"
#include "jwt_jwks.h"
#include "jwt_verify.h"

#define AUTH_JWT_NAME           "auth_jwt"
#define AUTH_JWT_DECISIONS      "sparkplane_auth_jwt_decisions_total"
#define AUTH_JWT_REFRESHES      "sparkplane_auth_jwt_jwks_refreshes_total"
#define AUTH_JWT_KEYS           "sparkplane_auth_jwt_jwks_keys"
#define AUTH_JWT_CACHE_LOOKUPS  "sparkplane_auth_jwt_cache_lookups_total"
#define AUTH_JWT_CACHE_ENTRIES  "sparkplane_auth_jwt_cache_entries"
#define AUTH_JWT_JWKS_MAX_BYTES ((size_t)1024 * 1024)
#define AUTH_JWT_JWKS_FILE_MAX  ((long)1024 * 1024)

typedef struct auth_jwt_metrics {
    sp_metric *ok, *invalid, *defer;
    sp_metric *refresh_ok, *refresh_error;
    sp_metric *keys;
    sp_metric *cache_hit, *cache_miss, *cache_entries;
} auth_jwt_metrics;

typedef struct auth_jwt_state {
    sp_plugin_context *ctx;
    char *jwks_file, *jwks_url, *jwks_ca_file;
    char *issuer, *audience, *principal_claim, *groups_claim;
    uint64_t refresh_ms, min_refresh_ms, fetch_timeout_ms;
    unsigned allowed_algs;
    jwt_claim_rules rules;
    jwt_group_map group_map;
    jwt_keyset keys;
    sp_timer *refresh_timer;      /* repeating, every jwks_refresh */
    sp_timer *soon_timer;         /* one-shot, an unknown kid asked for a refresh */
    sp_http_call *fetch;          /* the JWKS request in flight */
    uint64_t last_kid_refresh_ms; /* when an unknown kid last started a refresh */
    int kid_refreshed;
    credential_cache cache; /* verified tokens; capacity 0 when off */
    unsigned char
        jwks_digest[CREDENTIAL_CACHE_KEY_BYTES]; /* SHA-256 of the JWKS document in force */
    auth_jwt_metrics metrics;
} auth_jwt_state;

static const sp_option_spec auth_jwt_options[] = {
    {"issuer", SP_OPTION_STRING, NULL, 1, "the exact iss claim tokens must carry"},
    {"audience", SP_OPTION_STRING, NULL, 1, "a value the aud claim (string or array) must hold"},
    {"jwks_file", SP_OPTION_STRING, NULL, 0, "JWKS file (set this or jwks_url)"},
    {"jwks_url", SP_OPTION_STRING, NULL, 0, "https URL of the JWKS (set this or jwks_file)"},
    {"jwks_ca_file", SP_OPTION_STRING, NULL, 0, "CA bundle (PEM) to trust for jwks_url"},
    {"jwks_refresh", SP_OPTION_DURATION, "10m", 0, "how often the JWKS is fetched again"},
    {"jwks_min_refresh", SP_OPTION_DURATION, "30s", 0,
     "least time between refreshes triggered by an unknown kid"},
    {"jwks_timeout", SP_OPTION_DURATION, "10s", 0, "limit for one JWKS request"},
    {"algorithms", SP_OPTION_STRING_LIST, "[RS256, ES256, EdDSA]", 0,
     "accepted signature algorithms (RS256, ES256, EdDSA)"},
    {"leeway", SP_OPTION_DURATION, "60s", 0, "clock skew allowed on exp, nbf and iat"},
    {"principal_claim", SP_OPTION_STRING, "sub", 0, "claim naming the caller (sub, email, ...)"},
    {"groups_claim", SP_OPTION_STRING, "groups", 0, "claim holding the caller's groups"},
    {"group_map", SP_OPTION_STRING_LIST, NULL, 1,
     "'group=team:role' entries (role admin, member or viewer)"},
    {"cache_size", SP_OPTION_INT, "1024", 0, "verified tokens remembered (0 turns the cache off)"},
    {NULL, 0, NULL, 0, NULL}};

static uint64_t auth_jwt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void auth_jwt_count(auth_jwt_state *state, sp_metric *metric, double value)
{
    if (metric != NULL)
        state->ctx->host->metric_add(metric, value);
}

/* ---- the verified-token cache --------------------------------------------- */

static void auth_jwt_cache_count(auth_jwt_state *state)
{
    if (state->metrics.cache_entries != NULL)
        state->ctx->host->metric_set(state->metrics.cache_entries, (double)state->cache.used);
}

/*
 * A new JWKS document: when it differs from the one in force, every cached
 * answer is forgotten, so a key removed by the provider stops working at
 * once instead of when its tokens' entries expire.
 */
static void auth_jwt_cache_flush_if_changed(auth_jwt_state *state, const char *json, size_t len)
{
    unsigned char digest[CREDENTIAL_CACHE_KEY_BYTES];

    credential_cache_key(json, len, digest);
    if (memcmp(digest, state->jwks_digest, sizeof(digest)) == 0)
        return;
    memcpy(state->jwks_digest, digest, sizeof(digest));
    if (state->cache.used > 0)
        state->ctx->host->log(state->ctx, SP_LOG_INFO,
                              "the key set changed: %zu cached tokens forgotten",
                              state->cache.used);
    credential_cache_flush(&state->cache);
    auth_jwt_cache_count(state);
}

/* A NumericDate claim of a verified token, or `absent` when it has none. */
static double auth_jwt_claim_time(const json_t *claims, const char *name, double absent)
{
    const json_t *value = json_object_get(claims, name);
    return json_is_number(value) ? json_number_value(value) : absent;
}

/*
 * Remembers a token that just passed every check.  Its entry answers while
 * the claims checks would still pass at that time (from max(nbf, iat) -
 * leeway, until exp + leeway) and no longer than one jwks_refresh period.
 */
static void auth_jwt_cache_store(auth_jwt_state *state, const unsigned char *key,
                                 const json_t *claims, const sp_principal *principal, double now)
{
    double leeway = (double)state->rules.leeway_seconds;
    double nbf = auth_jwt_claim_time(claims, "nbf", -HUGE_VAL);
    double iat = auth_jwt_claim_time(claims, "iat", -HUGE_VAL);
    double until = auth_jwt_claim_time(claims, "exp", -HUGE_VAL) + leeway;
    double refresh_end = now + (double)state->refresh_ms / 1000.0;

    credential_cache_store(&state->cache, key, principal, (nbf > iat ? nbf : iat) - leeway,
                           until < refresh_end ? until : refresh_end);
    auth_jwt_cache_count(state);
}

/* ---- the key set -------------------------------------------------------- */

/* Replaces the keys in force with a new set parsed from `json`. */
static int auth_jwt_install_keys(auth_jwt_state *state, const char *json, size_t len,
                                 const char *source, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    jwt_keyset keys;

    if (jwt_keyset_parse(json, len, &keys, err, err_size) != 0)
        return -1;
    auth_jwt_cache_flush_if_changed(state, json, len);
    jwt_keyset_clear(&state->keys);
    state->keys = keys;
    if (state->metrics.keys != NULL)
        host->metric_set(state->metrics.keys, (double)keys.count);
    host->log(state->ctx, SP_LOG_INFO, "loaded %zu signing keys from %s (%zu skipped)", keys.count,
              source, keys.skipped);
    return 0;
}

/* Reads the whole JWKS file; *out is malloc'd. */
static int auth_jwt_read_file(const char *path, char **out, size_t *len, char *err, size_t err_size)
{
    FILE *file = fopen(path, "rb");
    char *buffer = NULL;
    long size = -1;

    if (file == NULL || fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 ||
        fseek(file, 0, SEEK_SET) != 0) {
        snprintf(err, err_size, "jwks_file: cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (size > AUTH_JWT_JWKS_FILE_MAX) {
        snprintf(err, err_size, "jwks_file: %s is larger than %ld bytes", path,
                 AUTH_JWT_JWKS_FILE_MAX);
        goto fail;
    }
    if ((buffer = malloc((size_t)size + 1)) == NULL ||
        fread(buffer, 1, (size_t)size, file) != (size_t)size) {
        snprintf(err, err_size, "jwks_file: cannot read %s", path);
        goto fail;
    }
    fclose(file);
    buffer[size] = '\0';
    *out = buffer;
    *len = (size_t)size;
    return 0;
fail:
    if (file != NULL)
        fclose(file);
    free(buffer);
    return -1;
}

static int auth_jwt_load_file(auth_jwt_state *state, char *err, size_t err_size)
{
    char *json = NULL;
    size_t len = 0;
    int rc = auth_jwt_read_file(state->jwks_file, &json, &len, err, err_size);

    if (rc == 0)
        rc = auth_jwt_install_keys(state, json, len, state->jwks_file, err, err_size);
    free(json);
    auth_jwt_count(state, rc == 0 ? state->metrics.refresh_ok : state->metrics.refresh_error, 1);
    return rc;
}

static void auth_jwt_on_fetched(void *arg, const sp_http_response *response)
{
    auth_jwt_state *state = arg;
    const sp_host_api *host = state->ctx->host;
    char err[512];

    state->fetch = NULL;
    if (response->status != SP_OK || response->http_status != 200) {
        snprintf(err, sizeof(err), "jwks_url: %s answered %ld%s%s", state->jwks_url,
                 response->http_status, response->error_message[0] ? ": " : "",
                 response->error_message);
    } else if (auth_jwt_install_keys(state, response->body, response->body_len, state->jwks_url,
                                     err, sizeof(err)) == 0) {
        auth_jwt_count(state, state->metrics.refresh_ok, 1);
        return;
    }
    auth_jwt_count(state, state->metrics.refresh_error, 1);
    host->log(state->ctx, SP_LOG_WARN, "JWKS refresh failed, keeping %zu keys: %s",
              state->keys.count, err);
}

static void auth_jwt_start_fetch(auth_jwt_state *state)
{
    const sp_host_api *host = state->ctx->host;
    sp_http_request request = {
        .size = sizeof(request),
        .method = "GET",
        .url = state->jwks_url,
        .ca_file = state->jwks_ca_file,
        .timeout_ms = (uint32_t)state->fetch_timeout_ms,
        .max_response_bytes = AUTH_JWT_JWKS_MAX_BYTES,
    };
    int rc = host->http_request(state->ctx, &request, auth_jwt_on_fetched, state, &state->fetch);

    if (rc != SP_OK) {
        state->fetch = NULL;
        auth_jwt_count(state, state->metrics.refresh_error, 1);
        host->log(state->ctx, SP_LOG_WARN, "JWKS request to %s refused by the host (%d)",
                  state->jwks_url, rc);
    }
}

/* One refresh, from the file or the URL (unless a fetch is already running). */
static void auth_jwt_refresh(auth_jwt_state *state)
{
    char err[512];

    if (state->fetch != NULL)
        return;
    if (state->jwks_url != NULL) {
        auth_jwt_start_fetch(state);
        return;
    }
    if (auth_jwt_load_file(state, err, sizeof(err)) != 0)
        state->ctx->host->log(state->ctx, SP_LOG_WARN, "JWKS reload failed, keeping %zu keys: %s",
                              state->keys.count, err);
}

static void auth_jwt_on_refresh_timer(void *arg)
{
    auth_jwt_refresh(arg);
}

static void auth_jwt_on_soon_timer(void *arg)
{
    auth_jwt_state *state = arg;
    state->soon_timer = NULL; /* a one-shot timer is gone once it fired */
    state->last_kid_refresh_ms = auth_jwt_now_ms();
    state->kid_refreshed = 1;
    auth_jwt_refresh(state);
}

/*
 * An unknown kid: asks for one refresh unless one is running or the last
 * began less than jwks_min_refresh ago.  Always refuses, saying which.
 */
static int auth_jwt_unknown_kid(auth_jwt_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    uint64_t now = auth_jwt_now_ms();

    if (state->fetch != NULL || state->soon_timer != NULL) {
        snprintf(err, err_size,
                 "token refused: unknown signing key (kid); the key set is being "
                 "refreshed, try again shortly");
        return SP_INVALID;
    }
    if (state->kid_refreshed && now - state->last_kid_refresh_ms < state->min_refresh_ms) {
        snprintf(err, err_size,
                 "token refused: unknown signing key (kid); the key set was "
                 "refreshed less than jwks_min_refresh ago");
        return SP_INVALID;
    }
    state->soon_timer = host->timer_start(state->ctx, 0, 0, auth_jwt_on_soon_timer, state);
    snprintf(err, err_size, "token refused: unknown signing key (kid); %s",
             state->soon_timer != NULL ? "the key set is being refreshed, try again shortly"
                                       : "the key set could not be refreshed");
    return SP_INVALID;
}

/* ---- authenticate ------------------------------------------------------- */

/* The token of "Bearer <token>", or NULL when the header is another scheme. */
static const char *auth_jwt_bearer(const char *header, size_t *len)
{
    const char *p = header + strspn(header, " \t");
    size_t n;

    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return NULL;
    p += 6;
    p += strspn(p, " \t");
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *len = n;
    return n > 0 ? p : NULL;
}

/* The key that must verify the token (kid named, or the only one fitting the alg). */
static int auth_jwt_choose_key(auth_jwt_state *state, const jwt_token *token, const jwt_key **key,
                               char *err, size_t err_size)
{
    jwt_alg alg = jwt_alg_from_name(token->alg_name);

    *key = NULL;
    if (token->kid != NULL) {
        *key = jwt_keyset_find(&state->keys, token->kid);
    } else {
        for (size_t i = 0; i < state->keys.count; i++) {
            if (state->keys.keys[i].alg != alg)
                continue;
            if (*key != NULL) {
                snprintf(err, err_size,
                         "token refused: no kid in the header and several %s "
                         "keys in the key set",
                         jwt_alg_name(alg));
                return SP_INVALID;
            }
            *key = &state->keys.keys[i];
        }
    }
    if (*key == NULL)
        return auth_jwt_unknown_kid(state, err, err_size);
    if ((*key)->alg != alg) {
        snprintf(err, err_size, "token refused: alg %s does not fit the key's type (a %s key)",
                 jwt_alg_name(alg), jwt_alg_name((*key)->alg));
        return SP_INVALID;
    }
    return SP_OK;
}

/* Every check after "it is a JWS" at time now; SP_OK with principal filled, or SP_INVALID. */
static int auth_jwt_verify(auth_jwt_state *state, jwt_token *token, time_t now,
                           sp_principal *principal, char *err, size_t err_size)
{
    const jwt_key *key;
    int rc;

    if (jwt_token_check_alg(token, state->allowed_algs, err, err_size) != 0)
        return SP_INVALID;
    if (json_object_get(token->header, "kid") != NULL && token->kid == NULL) {
        snprintf(err, err_size, "token refused: header kid must be a string");
        return SP_INVALID;
    }
    if ((rc = auth_jwt_choose_key(state, token, &key, err, err_size)) != SP_OK)
        return rc;
    if (!jwt_token_signature_valid(token, key->alg, key->pkey)) {
        snprintf(err, err_size, "token refused: bad signature");
        return SP_INVALID;
    }
    if (jwt_token_decode_claims(token, err, err_size) != 0 ||
        jwt_claims_check(token->claims, &state->rules, now, err, err_size) != 0 ||
        jwt_principal_fill(token->claims, &state->rules, &state->group_map, principal, err,
                           err_size) != 0)
        return SP_INVALID;
    return SP_OK;
}

static int auth_jwt_authenticate(void *provider, const sp_auth_request *request,
                                 sp_principal *principal, char *err, size_t err_size)
{
    auth_jwt_state *state = provider;
    const char *text = NULL;
    unsigned char key[CREDENTIAL_CACHE_KEY_BYTES];
    int cached = state->cache.capacity > 0;
    time_t now = time(NULL);
    jwt_token token;
    size_t len = 0;
    int rc;

    if (SP_HAS_FIELD(request, sp_auth_request, authorization) && request->authorization != NULL)
        text = auth_jwt_bearer(request->authorization, &len);
    if (text == NULL || !SP_HAS_FIELD(principal, sp_principal, teams))
        goto defer;
    /* A hit skips even the split: only tokens that passed every check are stored. */
    if (cached && len <= JWT_TOKEN_MAX) {
        credential_cache_key(text, len, key);
        if (credential_cache_lookup(&state->cache, key, (double)now, principal)) {
            auth_jwt_count(state, state->metrics.cache_hit, 1);
            auth_jwt_count(state, state->metrics.ok, 1);
            return SP_OK;
        }
        auth_jwt_cache_count(state); /* a miss may have dropped an expired entry */
    }
    if (jwt_token_split(text, len, &token) != 0)
        goto defer;
    if (len > JWT_TOKEN_MAX) {
        snprintf(err, err_size, "token refused: longer than %d bytes", JWT_TOKEN_MAX);
        rc = SP_INVALID;
    } else {
        if (cached)
            auth_jwt_count(state, state->metrics.cache_miss, 1);
        rc = auth_jwt_verify(state, &token, now, principal, err, err_size);
        if (rc == SP_OK && cached)
            auth_jwt_cache_store(state, key, token.claims, principal, (double)now);
    }
    jwt_token_clear(&token);
    auth_jwt_count(state, rc == SP_OK ? state->metrics.ok : state->metrics.invalid, 1);
    return rc;
defer:
    auth_jwt_count(state, state->metrics.defer, 1);
    return SP_DEFER;
}

static const sp_auth_ops auth_jwt_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = auth_jwt_authenticate,
};

/* ---- options ------------------------------------------------------------ */

/* A copy of a string option; NULL when unset or empty.  -1 only when out of memory. */
static int auth_jwt_copy_option(auth_jwt_state *state, const char *key, char **out)
{
    const char *value = state->ctx->host->option_string(state->ctx, key);
    *out = NULL;
    if (value == NULL || value[0] == '\0')
        return 0;
    return (*out = strdup(value)) != NULL ? 0 : -1;
}

static int auth_jwt_read_strings(auth_jwt_state *state, char *err, size_t err_size)
{
    if (auth_jwt_copy_option(state, "issuer", &state->issuer) != 0 ||
        auth_jwt_copy_option(state, "audience", &state->audience) != 0 ||
        auth_jwt_copy_option(state, "jwks_file", &state->jwks_file) != 0 ||
        auth_jwt_copy_option(state, "jwks_url", &state->jwks_url) != 0 ||
        auth_jwt_copy_option(state, "jwks_ca_file", &state->jwks_ca_file) != 0 ||
        auth_jwt_copy_option(state, "principal_claim", &state->principal_claim) != 0 ||
        auth_jwt_copy_option(state, "groups_claim", &state->groups_claim) != 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (state->issuer == NULL || state->audience == NULL) {
        snprintf(err, err_size, "%s: option is required", state->issuer ? "audience" : "issuer");
        return -1;
    }
    if (state->principal_claim == NULL || state->groups_claim == NULL) {
        snprintf(err, err_size, "%s: must not be empty",
                 state->principal_claim ? "groups_claim" : "principal_claim");
        return -1;
    }
    return 0;
}

static int auth_jwt_check_source(auth_jwt_state *state, char *err, size_t err_size)
{
    if ((state->jwks_file == NULL) == (state->jwks_url == NULL)) {
        snprintf(err, err_size, "jwks_file, jwks_url: set exactly one of them");
        return -1;
    }
    if (state->jwks_url != NULL && strncasecmp(state->jwks_url, "https://", 8) != 0) {
        snprintf(err, err_size, "jwks_url: must be an https:// URL");
        return -1;
    }
    if (state->jwks_ca_file != NULL && state->jwks_url == NULL) {
        snprintf(err, err_size, "jwks_ca_file: only used with jwks_url");
        return -1;
    }
    return 0;
}

static int auth_jwt_read_algorithms(auth_jwt_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    size_t count = host->option_list_count(state->ctx, "algorithms");

    for (size_t i = 0; i < count; i++) {
        const char *name = host->option_list_item(state->ctx, "algorithms", i);
        jwt_alg alg = jwt_alg_from_name(name);
        if (alg == 0) {
            snprintf(err, err_size,
                     "algorithms[%zu]: \"%.16s\" is not supported (RS256, ES256, "
                     "EdDSA)",
                     i, name != NULL ? name : "");
            return -1;
        }
        state->allowed_algs |= alg;
    }
    if (state->allowed_algs == 0) {
        snprintf(err, err_size, "algorithms: list at least one of RS256, ES256, EdDSA");
        return -1;
    }
    return 0;
}

static int auth_jwt_read_group_map(auth_jwt_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    size_t count = host->option_list_count(state->ctx, "group_map");

    if (count == 0) {
        snprintf(err, err_size, "group_map: list at least one \"group=team:role\"");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const char *entry = host->option_list_item(state->ctx, "group_map", i);
        if (jwt_group_map_add(&state->group_map, entry != NULL ? entry : "", i, err, err_size) != 0)
            return -1;
    }
    return 0;
}

static int auth_jwt_read_durations(auth_jwt_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    int64_t refresh = host->option_int(state->ctx, "jwks_refresh");
    int64_t min_refresh = host->option_int(state->ctx, "jwks_min_refresh");
    int64_t timeout = host->option_int(state->ctx, "jwks_timeout");
    int64_t leeway = host->option_int(state->ctx, "leeway");

    if (refresh < 1000 || min_refresh < 0 || timeout < 1 || timeout > UINT32_MAX || leeway < 0) {
        snprintf(err, err_size, "%s: out of range",
                 refresh < 1000    ? "jwks_refresh (at least 1s)"
                 : min_refresh < 0 ? "jwks_min_refresh"
                 : leeway < 0      ? "leeway"
                                   : "jwks_timeout");
        return -1;
    }
    state->refresh_ms = (uint64_t)refresh;
    state->min_refresh_ms = (uint64_t)min_refresh;
    state->fetch_timeout_ms = (uint64_t)timeout;
    state->rules.leeway_seconds = leeway / 1000;
    return 0;
}

static int auth_jwt_read_cache_size(auth_jwt_state *state, char *err, size_t err_size)
{
    int64_t size = state->ctx->host->option_int(state->ctx, "cache_size");

    if (size < 0 || size > CREDENTIAL_CACHE_MAX) {
        snprintf(err, err_size, "cache_size: must be 0 (off) to %d", CREDENTIAL_CACHE_MAX);
        return -1;
    }
    if (credential_cache_init(&state->cache, (size_t)size) != 0) {
        snprintf(err, err_size, "cache_size: out of memory for %lld entries", (long long)size);
        return -1;
    }
    return 0;
}

static int auth_jwt_read_options(auth_jwt_state *state, char *err, size_t err_size)
{
    if (auth_jwt_read_strings(state, err, err_size) != 0 ||
        auth_jwt_check_source(state, err, err_size) != 0 ||
        auth_jwt_read_algorithms(state, err, err_size) != 0 ||
        auth_jwt_read_group_map(state, err, err_size) != 0 ||
        auth_jwt_read_durations(state, err, err_size) != 0 ||
        auth_jwt_read_cache_size(state, err, err_size) != 0)
        return -1;
    state->rules.issuer = state->issuer;
    state->rules.audience = state->audience;
    state->rules.principal_claim = state->principal_claim;
    state->rules.groups_claim = state->groups_claim;
    return 0;
}

/* ---- init / fini -------------------------------------------------------- */

static void auth_jwt_register_metrics(auth_jwt_state *state)
{
    const sp_host_api *host = state->ctx->host;
    sp_plugin_context *ctx = state->ctx;
    const char *decisions = "auth_jwt decisions by result";
    const char *refreshes = "auth_jwt JWKS loads and fetches by result";
    const char *lookups = "auth_jwt verified-token cache lookups by result";

    state->metrics.ok = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_DECISIONS, decisions,
                                              "result=\"ok\"");
    state->metrics.invalid = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_DECISIONS,
                                                   decisions, "result=\"invalid\"");
    state->metrics.defer = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_DECISIONS,
                                                 decisions, "result=\"defer\"");
    state->metrics.refresh_ok = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_REFRESHES,
                                                      refreshes, "result=\"ok\"");
    state->metrics.refresh_error = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_REFRESHES,
                                                         refreshes, "result=\"error\"");
    state->metrics.keys = host->metric_register(ctx, SP_METRIC_GAUGE, AUTH_JWT_KEYS,
                                                "auth_jwt signing keys in force", NULL);
    if (state->cache.capacity == 0)
        return;
    state->metrics.cache_hit = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_JWT_CACHE_LOOKUPS,
                                                     lookups, "result=\"hit\"");
    state->metrics.cache_miss = host->metric_register(
        ctx, SP_METRIC_COUNTER, AUTH_JWT_CACHE_LOOKUPS, lookups, "result=\"miss\"");
    state->metrics.cache_entries = host->metric_register(
        ctx, SP_METRIC_GAUGE, AUTH_JWT_CACHE_ENTRIES, "auth_jwt verified tokens cached", NULL);
}

static void auth_jwt_state_free(auth_jwt_state *state)
{
    const sp_host_api *host;

    if (state == NULL)
        return;
    host = state->ctx->host;
    if (state->refresh_timer != NULL)
        host->timer_cancel(state->refresh_timer);
    if (state->soon_timer != NULL)
        host->timer_cancel(state->soon_timer);
    if (state->fetch != NULL)
        host->http_cancel(state->fetch);
    jwt_keyset_clear(&state->keys);
    credential_cache_free(&state->cache);
    jwt_group_map_clear(&state->group_map);
    free(state->jwks_file);
    free(state->jwks_url);
    free(state->jwks_ca_file);
    free(state->issuer);
    free(state->audience);
    free(state->principal_claim);
    free(state->groups_claim);
    free(state);
}

/* The first load: a file must be good now; a URL is fetched in the background. */
static int auth_jwt_first_load(auth_jwt_state *state, char *err, size_t err_size)
{
    if (state->jwks_file != NULL)
        return auth_jwt_load_file(state, err, err_size);
    auth_jwt_start_fetch(state);
    return 0;
}

static int auth_jwt_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    const sp_host_api *host = ctx->host;
    auth_jwt_state *state;
    int rc = SP_INVALID;

    if (!SP_HAS_FIELD(host, sp_host_api, register_provider)) {
        snprintf(err, err_size, "host API too old (size %u)", (unsigned)host->size);
        return SP_NOT_SUPPORTED;
    }
    if ((state = calloc(1, sizeof(*state))) == NULL) {
        snprintf(err, err_size, "out of memory");
        return SP_ERROR;
    }
    state->ctx = ctx;
    if (auth_jwt_read_options(state, err, err_size) != 0)
        goto fail;
    auth_jwt_register_metrics(state);
    if (auth_jwt_first_load(state, err, err_size) != 0)
        goto fail;
    rc = host->register_provider(ctx, SP_KIND_AUTH, AUTH_JWT_NAME, &auth_jwt_ops, state);
    if (rc != SP_OK) {
        snprintf(err, err_size, "register_provider(auth, %s) answered %d", AUTH_JWT_NAME, rc);
        goto fail;
    }
    state->refresh_timer =
        host->timer_start(ctx, state->refresh_ms, 1, auth_jwt_on_refresh_timer, state);
    if (state->refresh_timer == NULL)
        host->log(ctx, SP_LOG_WARN, "no refresh timer: the JWKS will not be refreshed");
    ctx->user_data = state;
    host->log(ctx, SP_LOG_INFO,
              "issuer %s, audience %s, keys from %s (refresh every %llu ms), "
              "cache of %zu verified tokens",
              state->issuer, state->audience,
              state->jwks_url != NULL ? state->jwks_url : state->jwks_file,
              (unsigned long long)state->refresh_ms, state->cache.capacity);
    return SP_OK;
fail:
    auth_jwt_state_free(state);
    return rc;
}

static void auth_jwt_fini(sp_plugin_context *ctx)
{
    auth_jwt_state_free(ctx->user_data);
    ctx->user_data = NULL;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = AUTH_JWT_NAME,
    .version = "1.0.0",
    .description = "JWT bearer tokens (RS256, ES256, EdDSA) verified against a JWKS",
    .options = auth_jwt_options,
    .init = auth_jwt_init,
    .fini = auth_jwt_fini,
};
