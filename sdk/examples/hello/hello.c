/*
 * hello.c - the smallest real sparkplaned plugin: an auth provider.
 *
 * It admits requests carrying "Authorization: Bearer hello-<secret>" as
 * the configured user (role viewer, one team), defers anything else to the
 * next provider in the chain, logs through the host and counts decisions
 * in a metric.  It shows the whole contract: the descriptor, an options
 * table the daemon validates, init/fini, registering an ops table, and the
 * host API (log, options, metrics).  It includes only <sparkplane/...>.
 *
 * A demo, not a security mechanism: one shared secret, no revocation.
 *
 *   plugins:
 *     hello:
 *       options: { secret: s3cret, user: alice, team: analytics }
 *   auth:
 *     chain: [hello]
 *
 *   curl -H 'Authorization: Bearer hello-s3cret' http://127.0.0.1:8080/api/v1/jobs
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sparkplane/sparkplane.h>

#define HELLO_PREFIX "Bearer hello-"

typedef struct hello_state {
    sp_plugin_context *ctx;
    char *secret;
    char *user;
    char *team;
    sp_metric *admitted;
    sp_metric *refused;
} hello_state;

/* Compares all of both strings, so the time taken does not reveal a prefix. */
static int hello_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i < lb ? i : 0]);
    return diff == 0;
}

static int hello_authenticate(void *provider, const sp_auth_request *request,
                              sp_principal *principal, char *err, size_t err_size)
{
    hello_state *state = provider;
    const char *header = request->authorization;
    size_t prefix_len = strlen(HELLO_PREFIX);

    /* Not a "Bearer hello-..." token: not ours, let the chain go on. */
    if (header == NULL || strncasecmp(header, HELLO_PREFIX, prefix_len) != 0)
        return SP_DEFER;
    if (!hello_equal(header + prefix_len, state->secret)) {
        state->ctx->host->metric_add(state->refused, 1);
        snprintf(err, err_size, "wrong hello secret");
        return SP_INVALID;
    }
    snprintf(principal->subject, sizeof(principal->subject), "%s", state->user);
    snprintf(principal->role, sizeof(principal->role), "viewer");
    snprintf(principal->teams[0], sizeof(principal->teams[0]), "%s", state->team);
    principal->team_count = 1;
    state->ctx->host->metric_add(state->admitted, 1);
    return SP_OK;
}

static const sp_auth_ops hello_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = hello_authenticate,
};

static void hello_free(hello_state *state)
{
    if (state == NULL)
        return;
    free(state->secret);
    free(state->user);
    free(state->team);
    free(state);
}

static int hello_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    const sp_host_api *host = ctx->host;
    hello_state *state = calloc(1, sizeof(*state));
    int rc;

    /* The daemon applied defaults and checked "secret" is set. */
    if (state == NULL || (state->secret = strdup(host->option_string(ctx, "secret"))) == NULL ||
        (state->user = strdup(host->option_string(ctx, "user"))) == NULL ||
        (state->team = strdup(host->option_string(ctx, "team"))) == NULL) {
        snprintf(err, err_size, "out of memory");
        hello_free(state);
        return SP_ERROR;
    }
    state->ctx = ctx;
    state->admitted = host->metric_register(ctx, SP_METRIC_COUNTER,
                                            "sparkplane_hello_decisions_total",
                                            "hello plugin decisions", "result=\"ok\"");
    state->refused = host->metric_register(ctx, SP_METRIC_COUNTER,
                                           "sparkplane_hello_decisions_total",
                                           "hello plugin decisions", "result=\"invalid\"");
    rc = host->register_provider(ctx, SP_KIND_AUTH, "hello", &hello_ops, state);
    if (rc != SP_OK) {
        snprintf(err, err_size, "register_provider answered %d", rc);
        hello_free(state);
        return rc;
    }
    ctx->user_data = state;
    host->log(ctx, SP_LOG_INFO, "hello: admitting user %s (team %s) with Bearer hello-<secret>",
              state->user, state->team);
    return SP_OK;
}

static void hello_fini(sp_plugin_context *ctx)
{
    ctx->host->log(ctx, SP_LOG_INFO, "hello: goodbye");
    hello_free(ctx->user_data);
    ctx->user_data = NULL;
}

static const sp_option_spec hello_options[] = {
    {"secret", SP_OPTION_STRING, NULL, 1, "clients send Bearer hello-<secret>"},
    {"user", SP_OPTION_STRING, "hello", 0, "the principal admitted"},
    {"team", SP_OPTION_STRING, "hello", 0, "the principal's team"},
    {NULL, 0, NULL, 0, NULL}};

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = "hello",
    .version = "1.0.0",
    .description = "example: admits Bearer hello-<secret>",
    .options = hello_options,
    .init = hello_init,
    .fini = hello_fini,
};
