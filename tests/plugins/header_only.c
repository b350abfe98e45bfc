/*
 * header_only.c - only the frozen header, nothing after it, built three
 * times by local.mk: ABI 2.0 and ABI 0.9 (layouts the host must not read
 * past the header), and ABI 1.0 with descriptor_size 12 (too small).  The
 * object really is 12 bytes, so a host that read further would trip
 * AddressSanitizer's redzone.
 */
#include <sparkplane/sparkplane.h>

typedef struct header_only_descriptor {
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t descriptor_size;
} header_only_descriptor;

SP_EXPORT extern const header_only_descriptor header_export __asm__(SP_PLUGIN_SYMBOL_NAME);
SP_EXPORT const header_only_descriptor header_export = {
    .magic = SP_PLUGIN_MAGIC,
    .abi_major = HEADER_ABI_MAJOR,
    .abi_minor = HEADER_ABI_MINOR,
    .descriptor_size = sizeof(header_only_descriptor),
};
