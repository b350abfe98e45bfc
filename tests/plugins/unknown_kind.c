/* unknown_kind.c - a descriptor of a kind the host does not have (9). */
#include <sparkplane/sparkplane.h>

static int unknown_kind_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    return SP_OK;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = 9,
    .name = "unknown_kind",
    .init = unknown_kind_init,
};
