/*
 * good.c - a minimal correct plugin, built three times by local.mk:
 * as "good" and, with PLUGIN_NAME=dup, as dup_a and dup_b (two objects
 * claiming one name).  It has a required option and a defaulted one so
 * test_plugin_abi can see option validation reach plugin_set_prepare,
 * logs init/fini so the test can check their order, and registers one
 * auth provider that admits nobody (it always defers).
 */
#include <sparkplane/sparkplane.h>

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "good"
#endif

static int good_authenticate(void *provider, const sp_auth_request *request,
                             sp_principal *principal, char *err, size_t err_size)
{
    return SP_DEFER;
}

static const sp_auth_ops good_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = good_authenticate,
};

static int good_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    const char *greeting = ctx->host->option_string(ctx, "greeting");
    ctx->host->log(ctx, SP_LOG_INFO, "init %s: %s every %lld ms", PLUGIN_NAME,
                   greeting != NULL ? greeting : "(none)",
                   (long long)ctx->host->option_int(ctx, "interval"));
    return ctx->host->register_provider(ctx, SP_KIND_AUTH, PLUGIN_NAME, &good_ops, NULL);
}

static void good_fini(sp_plugin_context *ctx)
{
    ctx->host->log(ctx, SP_LOG_INFO, "fini %s", PLUGIN_NAME);
}

static const sp_option_spec good_options[] = {
    {"greeting", SP_OPTION_STRING, NULL, 1, "what to log at init"},
    {"interval", SP_OPTION_DURATION, "1s", 0, "an unused duration"},
    {NULL, 0, NULL, 0, NULL}};

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = PLUGIN_NAME,
    .version = "1.0",
    .description = "a correct plugin for the ABI tests",
    .options = good_options,
    .init = good_init,
    .fini = good_fini,
};
