/*
 * future_minor.c - a plugin built against ABI 1.99: the same major, a minor
 * the host does not have yet, and a descriptor grown by a field.
 */
#include <sparkplane/sparkplane.h>

typedef struct future_descriptor {
    sp_plugin_descriptor base;
    const char *field_from_the_future;
} future_descriptor;

static int future_minor_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    return SP_OK;
}

SP_EXPORT extern const future_descriptor future_export __asm__(SP_PLUGIN_SYMBOL_NAME);
SP_EXPORT const future_descriptor future_export = {
    .base = {
        .magic = SP_PLUGIN_MAGIC,
        .abi_major = 1,
        .abi_minor = 99,
        .descriptor_size = sizeof(future_descriptor),
        .kind = SP_KIND_AUTH,
        .name = "future_minor",
        .init = future_minor_init,
    },
    .field_from_the_future = "?",
};
