/*
 * init_fails.c - registers a provider, then fails init with a message:
 * the host must report the message and drop the registration.
 */
#include <stdio.h>
#include <sparkplane/sparkplane.h>

static int init_fails_authenticate(void *provider, const sp_auth_request *request,
                                   sp_principal *principal, char *err, size_t err_size)
{
    return SP_DEFER;
}

static const sp_auth_ops init_fails_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = init_fails_authenticate,
};

static int init_fails_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    ctx->host->register_provider(ctx, SP_KIND_AUTH, "init_fails", &init_fails_ops, NULL);
    snprintf(err, err_size, "cannot reach the license server at %s", "10.0.0.1:443");
    return SP_UNAVAILABLE;
}

static void init_fails_fini(sp_plugin_context *ctx)
{
    ctx->host->log(ctx, SP_LOG_ERROR, "fini init_fails must not run");
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = "init_fails",
    .init = init_fails_init,
    .fini = init_fails_fini,
};
