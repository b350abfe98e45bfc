/*
 * auth_mtls.c - the auth_mtls plugin: callers identified by a TLS client
 * certificate issued by the operator's CA.
 *
 * The host hands over the chain the client presented on a listener with
 * `client_certificates: request` (sp_auth_request.client_cert_pem), without
 * verifying it; this plugin verifies it (mtls_trust.c) against ca_file and,
 * when set, crl_file, takes the caller's name from the certificate in the
 * `identity` order and maps it to teams and a role (mtls_identity.c).
 *
 * Decisions: no certificate defers (a token provider can follow in the
 * chain).  A chain that fails verification is refused, whatever else the
 * request carries: a client that presents a bad certificate is told so.
 * A good certificate whose name is not mapped defers when the request also
 * has an Authorization header (the token decides) and is refused otherwise.
 *
 * authenticate() runs on the event loop and touches no file: the CA and
 * CRL files are parsed once into an X509_STORE, and a repeating host timer
 * (reload_interval) stats them and rebuilds the store when the mtime, size
 * or inode of either changed.  A bad new file is logged once and the store
 * in force stays.
 *
 * Verified chains are cached (plugins/common/credential_cache.c, option
 * cache_size): the SHA-256 of the presented PEM -> the principal, usable
 * until the leaf's notAfter and for at most one reload_interval (60 s when
 * reloading is off), and forgotten whenever a reload brings a new CA or
 * CRL file, so a revocation takes effect with the reload that reads it.
 * Only admitted chains are cached; refusals are verified every time.
 */
#include <math.h>
#include <openssl/asn1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sparkplane/sparkplane.h>

#include "credential_cache.h"
#include "mtls_identity.h"
#include "mtls_trust.h"

#define AUTH_MTLS_NAME             "auth_mtls"
#define AUTH_MTLS_DECISIONS        "sparkplane_auth_mtls_decisions_total"
#define AUTH_MTLS_REFUSALS         "sparkplane_auth_mtls_refusals_total"
#define AUTH_MTLS_RELOADS          "sparkplane_auth_mtls_reloads_total"
#define AUTH_MTLS_CACHE            "sparkplane_auth_mtls_cache_lookups_total"
#define AUTH_MTLS_CACHE_MAX_AGE_MS 60000 /* an entry's longest life when reloading is off */

typedef struct auth_mtls_metrics {
    sp_metric *ok, *invalid, *defer;
    sp_metric *refused[MTLS_REFUSED_COUNT];
    sp_metric *unmapped; /* verified, but no mapped name */
    sp_metric *reload_ok, *reload_error;
    sp_metric *cache_hit, *cache_miss;
} auth_mtls_metrics;

typedef struct auth_mtls_state {
    sp_plugin_context *ctx;
    char *ca_file, *crl_file;
    mtls_trust trust;
    mtls_file_id seen_ca, seen_crl; /* the versions last looked at, good or bad */
    mtls_identity_order identity;
    mtls_map map;
    sp_timer *reload_timer;
    uint64_t cache_max_age_ms; /* reload_interval, or AUTH_MTLS_CACHE_MAX_AGE_MS */
    credential_cache cache;    /* verified chains; capacity 0 when off */
    auth_mtls_metrics metrics;
} auth_mtls_state;

static const sp_option_spec auth_mtls_options[] = {
    {"ca_file", SP_OPTION_STRING, NULL, 1, "PEM bundle of the CAs that issue client certificates"},
    {"crl_file", SP_OPTION_STRING, NULL, 0,
     "PEM CRL(s) of those CAs; with it the leaf's revocation is checked"},
    {"reload_interval", SP_OPTION_DURATION, "30s", 0,
     "how often ca_file and crl_file are checked for changes (0 disables)"},
    {"identity", SP_OPTION_STRING_LIST, "[san_dns, cn]", 0,
     "certificate names to try in order (san_uri, san_dns, san_email, cn)"},
    {"map", SP_OPTION_STRING_LIST, NULL, 1,
     "'name=team[,team...]:role' entries; name exact or '*.suffix'"},
    {"cache_size", SP_OPTION_INT, "1024", 0, "verified chains remembered (0 disables)"},
    {NULL, 0, NULL, 0, NULL}};

static void auth_mtls_count(auth_mtls_state *state, sp_metric *metric)
{
    if (metric != NULL)
        state->ctx->host->metric_add(metric, 1);
}

/* ---- reload ---------------------------------------------------------------- */

static void auth_mtls_reload(auth_mtls_state *state)
{
    const sp_host_api *host = state->ctx->host;
    mtls_file_id ca_now, crl_now;
    mtls_trust trust;
    char err[512];

    mtls_file_id_of(state->ca_file, &ca_now);
    mtls_file_id_of(state->crl_file, &crl_now);
    if (mtls_file_id_same(&ca_now, &state->seen_ca) &&
        mtls_file_id_same(&crl_now, &state->seen_crl))
        return;
    state->seen_ca = ca_now; /* log each version once, good or bad */
    state->seen_crl = crl_now;
    if (mtls_trust_load(state->ca_file, state->crl_file, &trust, err, sizeof(err)) != 0) {
        auth_mtls_count(state, state->metrics.reload_error);
        host->log(state->ctx, SP_LOG_ERROR,
                  "reload failed, keeping %zu CAs and %zu CRLs in force: %s", state->trust.ca_count,
                  state->trust.crl_count, err);
        return;
    }
    mtls_trust_clear(&state->trust);
    state->trust = trust;
    credential_cache_flush(&state->cache); /* a revoked or distrusted chain must not linger */
    state->seen_ca = trust.ca_id;          /* what was read, in case it changed meanwhile */
    state->seen_crl = trust.crl_id;
    auth_mtls_count(state, state->metrics.reload_ok);
    host->log(state->ctx, SP_LOG_INFO, "reloaded %zu CAs from %s and %zu CRLs%s%s", trust.ca_count,
              state->ca_file, trust.crl_count, state->crl_file ? " from " : "",
              state->crl_file ? state->crl_file : "");
}

static void auth_mtls_on_reload_timer(void *arg)
{
    auth_mtls_reload(arg);
}

/* ---- authenticate ------------------------------------------------------------ */

/* Verified, but no mapped name: the token decides if there is one. */
static int auth_mtls_unmapped(auth_mtls_state *state, const sp_auth_request *request, int found,
                              const char *name, char *err, size_t err_size)
{
    char kinds[64];

    if (request->authorization != NULL && request->authorization[0] != '\0')
        return SP_DEFER;
    auth_mtls_count(state, state->metrics.unmapped);
    if (found) {
        snprintf(err, err_size,
                 "client certificate '%.200s' is not mapped to a team (auth_mtls map)", name);
    } else {
        mtls_identity_order_text(&state->identity, kinds, sizeof(kinds));
        snprintf(err, err_size,
                 "client certificate has no %s to name the caller (auth_mtls identity)", kinds);
    }
    return SP_INVALID;
}

/* The verified leaf to a principal: SP_OK, SP_DEFER or SP_INVALID. */
static int auth_mtls_identify(auth_mtls_state *state, const sp_auth_request *request, X509 *leaf,
                              sp_principal *principal, char *err, size_t err_size)
{
    char name[SP_PRINCIPAL_NAME_MAX];
    mtls_name_kind kind = 0;
    sp_principal mapped = {.size = principal->size};
    int found = mtls_identity_of(leaf, &state->identity, name, sizeof(name), &kind);

    if (found < 0) {
        auth_mtls_count(state, state->metrics.refused[MTLS_REFUSED_MALFORMED]);
        snprintf(err, err_size, "client certificate refused: its %s is not a printable name",
                 mtls_name_kind_text(kind));
        return SP_INVALID;
    }
    if (found == 0 || !mtls_map_principal(&state->map, name, &mapped))
        return auth_mtls_unmapped(state, request, found, name, err, err_size);
    memcpy(principal->subject, mapped.subject, sizeof(mapped.subject));
    memcpy(principal->role, mapped.role, sizeof(mapped.role));
    principal->team_count = mapped.team_count;
    memcpy(principal->teams, mapped.teams, sizeof(mapped.teams));
    return SP_OK;
}

/* Remembers an admitted chain until its leaf expires, for at most cache_max_age_ms. */
static void auth_mtls_cache_store(auth_mtls_state *state, const unsigned char *key, X509 *leaf,
                                  const sp_principal *principal, double now)
{
    struct tm not_after;
    double until = now + (double)state->cache_max_age_ms / 1000.0;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &not_after) != 1)
        return; /* an expiry we cannot read: verify every time */
    double expires = (double)timegm(&not_after);
    credential_cache_store(&state->cache, key, principal, -HUGE_VAL,
                           expires < until ? expires : until);
}

static int auth_mtls_authenticate(void *provider, const sp_auth_request *request,
                                  sp_principal *principal, char *err, size_t err_size)
{
    auth_mtls_state *state = provider;
    const char *pem =
        SP_HAS_FIELD(request, sp_auth_request, client_cert_pem) ? request->client_cert_pem : NULL;
    mtls_refusal refusal;
    X509 *leaf = NULL;
    int rc;

    unsigned char key[CREDENTIAL_CACHE_KEY_BYTES];
    double now = (double)time(NULL);

    if (pem == NULL || pem[0] == '\0') {
        auth_mtls_count(state, state->metrics.defer);
        return SP_DEFER;
    }
    if (state->cache.capacity > 0) {
        credential_cache_key(pem, strlen(pem), key);
        if (credential_cache_lookup(&state->cache, key, now, principal)) {
            auth_mtls_count(state, state->metrics.cache_hit);
            auth_mtls_count(state, state->metrics.ok);
            return SP_OK;
        }
        auth_mtls_count(state, state->metrics.cache_miss);
    }
    rc = mtls_trust_verify(&state->trust, pem, &leaf, &refusal, err, err_size);
    if (rc != SP_OK)
        auth_mtls_count(state, state->metrics.refused[refusal]);
    else
        rc = auth_mtls_identify(state, request, leaf, principal, err, err_size);
    if (rc == SP_OK && state->cache.capacity > 0)
        auth_mtls_cache_store(state, key, leaf, principal, now);
    X509_free(leaf);
    auth_mtls_count(state, rc == SP_OK      ? state->metrics.ok
                           : rc == SP_DEFER ? state->metrics.defer
                                            : state->metrics.invalid);
    return rc;
}

static const sp_auth_ops auth_mtls_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = auth_mtls_authenticate,
};

/* ---- options ------------------------------------------------------------------ */

/* A copy of a string option; NULL when unset or empty.  -1 only when out of memory. */
static int auth_mtls_copy_option(auth_mtls_state *state, const char *key, char **out)
{
    const char *value = state->ctx->host->option_string(state->ctx, key);
    *out = NULL;
    if (value == NULL || value[0] == '\0')
        return 0;
    return (*out = strdup(value)) != NULL ? 0 : -1;
}

static int auth_mtls_read_files(auth_mtls_state *state, char *err, size_t err_size)
{
    if (auth_mtls_copy_option(state, "ca_file", &state->ca_file) != 0 ||
        auth_mtls_copy_option(state, "crl_file", &state->crl_file) != 0) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (state->ca_file == NULL) {
        snprintf(err, err_size, "ca_file: option is required");
        return -1;
    }
    return 0;
}

static int auth_mtls_read_identity(auth_mtls_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    size_t count = host->option_list_count(state->ctx, "identity");

    if (count == 0) {
        snprintf(err, err_size, "identity: list at least one of san_uri, san_dns, san_email, cn");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const char *item = host->option_list_item(state->ctx, "identity", i);
        if (mtls_identity_order_add(&state->identity, item != NULL ? item : "", i, err, err_size) !=
            0)
            return -1;
    }
    return 0;
}

static int auth_mtls_read_cache(auth_mtls_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    int64_t size = host->option_int(state->ctx, "cache_size");
    int64_t reload_ms = host->option_int(state->ctx, "reload_interval");

    if (size < 0 || size > CREDENTIAL_CACHE_MAX) {
        snprintf(err, err_size, "cache_size: must be 0 (off) to %d", CREDENTIAL_CACHE_MAX);
        return -1;
    }
    state->cache_max_age_ms = reload_ms > 0 ? (uint64_t)reload_ms : AUTH_MTLS_CACHE_MAX_AGE_MS;
    if (credential_cache_init(&state->cache, (size_t)size) != 0) {
        snprintf(err, err_size, "cache_size: out of memory for %lld entries", (long long)size);
        return -1;
    }
    return 0;
}

static int auth_mtls_read_map(auth_mtls_state *state, char *err, size_t err_size)
{
    const sp_host_api *host = state->ctx->host;
    size_t count = host->option_list_count(state->ctx, "map");

    if (count == 0) {
        snprintf(err, err_size, "map: list at least one \"name=team[,team...]:role\"");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const char *entry = host->option_list_item(state->ctx, "map", i);
        if (mtls_map_add(&state->map, entry != NULL ? entry : "", i, err, err_size) != 0)
            return -1;
    }
    return 0;
}

/* ---- init / fini ------------------------------------------------------------------ */

static void auth_mtls_register_metrics(auth_mtls_state *state)
{
    const sp_host_api *host = state->ctx->host;
    sp_plugin_context *ctx = state->ctx;
    const char *decisions = "auth_mtls decisions by result";
    const char *refusals = "auth_mtls refused client certificates by reason";
    const char *reloads = "auth_mtls reloads of ca_file and crl_file by result";
    char labels[64];

    state->metrics.ok = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_DECISIONS,
                                              decisions, "result=\"ok\"");
    state->metrics.invalid = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_DECISIONS,
                                                   decisions, "result=\"invalid\"");
    state->metrics.defer = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_DECISIONS,
                                                 decisions, "result=\"defer\"");
    for (int r = 0; r < MTLS_REFUSED_COUNT; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", mtls_refusal_label((mtls_refusal)r));
        state->metrics.refused[r] =
            host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_REFUSALS, refusals, labels);
    }
    state->metrics.unmapped = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_REFUSALS,
                                                    refusals, "reason=\"unmapped\"");
    state->metrics.reload_ok =
        host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_RELOADS, reloads, "result=\"ok\"");
    state->metrics.reload_error = host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_RELOADS,
                                                        reloads, "result=\"error\"");
    if (state->cache.capacity == 0)
        return;
    state->metrics.cache_hit =
        host->metric_register(ctx, SP_METRIC_COUNTER, AUTH_MTLS_CACHE,
                              "auth_mtls verified-chain cache lookups by result", "result=\"hit\"");
    state->metrics.cache_miss = host->metric_register(
        ctx, SP_METRIC_COUNTER, AUTH_MTLS_CACHE, "auth_mtls verified-chain cache lookups by result",
        "result=\"miss\"");
}

static void auth_mtls_state_free(auth_mtls_state *state)
{
    if (state == NULL)
        return;
    if (state->reload_timer != NULL)
        state->ctx->host->timer_cancel(state->reload_timer);
    mtls_trust_clear(&state->trust);
    mtls_map_clear(&state->map);
    credential_cache_free(&state->cache);
    free(state->ca_file);
    free(state->crl_file);
    free(state);
}

static void auth_mtls_start_reload_timer(auth_mtls_state *state)
{
    const sp_host_api *host = state->ctx->host;
    int64_t interval_ms = host->option_int(state->ctx, "reload_interval");

    if (interval_ms <= 0)
        return;
    state->reload_timer =
        host->timer_start(state->ctx, (uint64_t)interval_ms, 1, auth_mtls_on_reload_timer, state);
    if (state->reload_timer == NULL)
        host->log(state->ctx, SP_LOG_WARN,
                  "no reload timer: ca_file and crl_file will not be "
                  "re-read");
}

static int auth_mtls_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    const sp_host_api *host = ctx->host;
    auth_mtls_state *state;
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
    if (auth_mtls_read_files(state, err, err_size) != 0 ||
        auth_mtls_read_identity(state, err, err_size) != 0 ||
        auth_mtls_read_map(state, err, err_size) != 0 ||
        auth_mtls_read_cache(state, err, err_size) != 0 ||
        mtls_trust_load(state->ca_file, state->crl_file, &state->trust, err, err_size) != 0)
        goto fail;
    state->seen_ca = state->trust.ca_id;
    state->seen_crl = state->trust.crl_id;
    auth_mtls_register_metrics(state);
    rc = host->register_provider(ctx, SP_KIND_AUTH, AUTH_MTLS_NAME, &auth_mtls_ops, state);
    if (rc != SP_OK) {
        snprintf(err, err_size, "register_provider(auth, %s) answered %d", AUTH_MTLS_NAME, rc);
        goto fail;
    }
    auth_mtls_start_reload_timer(state);
    ctx->user_data = state;
    host->log(ctx, SP_LOG_INFO, "%zu CAs from %s, %zu CRLs%s%s, %zu map entries",
              state->trust.ca_count, state->ca_file, state->trust.crl_count,
              state->crl_file ? " from " : " (no revocation check)",
              state->crl_file ? state->crl_file : "", state->map.count);
    return SP_OK;
fail:
    auth_mtls_state_free(state);
    return rc;
}

static void auth_mtls_fini(sp_plugin_context *ctx)
{
    auth_mtls_state_free(ctx->user_data);
    ctx->user_data = NULL;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = AUTH_MTLS_NAME,
    .version = "1.0.0",
    .description = "TLS client certificates verified against a CA bundle (and CRLs)",
    .options = auth_mtls_options,
    .init = auth_mtls_init,
    .fini = auth_mtls_fini,
};
