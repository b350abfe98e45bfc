/* bad_magic.c - a descriptor whose first word is not "SPLG". */
#include <sparkplane/sparkplane.h>

static int bad_magic_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    return SP_OK;
}

SP_PLUGIN_DECLARE = {
    .magic = 0xdeadbeefu,
    .abi_major = SP_ABI_MAJOR,
    .abi_minor = SP_ABI_MINOR,
    .descriptor_size = sizeof(sp_plugin_descriptor),
    .kind = SP_KIND_AUTH,
    .name = "bad_magic",
    .init = bad_magic_init,
};
