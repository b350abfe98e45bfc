/*
 * sparkplane/plugin.h - the plugin ABI: what a plugin exports and what the
 * host hands it.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * SP_PLUGIN_SYMBOL ("sp_plugin_descriptor"), a read-only sp_plugin_descriptor.
 * Its first four fields (magic, ABI major, ABI minor, descriptor size) are
 * frozen forever: they protect the rest.  The host accepts a plugin when the
 * majors are equal and the plugin's minor is <= the host's, and refuses it
 * otherwise with the exact reason ("plugin X needs ABI 1.3, sparkplaned
 * provides 1.2").
 *
 * The host validates the plugin's options against its options table, then
 * calls init() with a context.  The context carries the host API
 * (sparkplane/host.h), a size-prefixed table of function pointers: a plugin
 * calls the host, it never links against the daemon.  In init() the plugin
 * registers what it provides (an auth provider, a backend, a policy, a
 * manifest kind) with a kind-specific ops table that also starts with its
 * size.  On unload the host calls fini() and unregisters everything.
 *
 * Growth rules (as for OpenSSL provider dispatch tables): adding a field at
 * the end of any table bumps the minor; removing or changing a field bumps
 * the major.  Readers check a table's size before touching a newer field
 * (SP_HAS_FIELD), so old plugins keep working in new hosts.
 *
 * ABI changelog (newest first):
 *   1.1  2026-11-23  Cluster operations specified (backend.h: the
 *                    cluster_start/scale/stop/endpoint documents, cluster
 *                    events, "clusters" in the reconcile reply).  No table
 *                    changed: a 1.0 backend without clusters loads as before.
 *   1.0  2026-11-23  First ABI: descriptor, options table, host API (log,
 *                    options, timers, HTTP client, child processes,
 *                    metrics, key/value store, registration), auth,
 *                    backend, policy and manifest ops tables.
 */
#ifndef SPARKPLANE_PLUGIN_H
#define SPARKPLANE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_ABI_MAJOR 1
#define SP_ABI_MINOR 1

/* "SPLG" - the first word of every descriptor. */
#define SP_PLUGIN_MAGIC 0x53504c47u

/* The one symbol a plugin exports. */
#define SP_PLUGIN_SYMBOL sp_plugin_descriptor
#define SP_PLUGIN_SYMBOL_NAME "sp_plugin_descriptor"

#if defined(__GNUC__)
#define SP_EXPORT __attribute__((visibility("default")))
#define SP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SP_EXPORT
#define SP_PRINTF(fmt, args)
#endif

/* True when a size-prefixed table is large enough to hold `field`. */
#define SP_HAS_FIELD(table_ptr, type, field)                                  \
    ((table_ptr) != NULL &&                                                   \
     (size_t)(table_ptr)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

/*
 * One error vocabulary for every call across the ABI.  Functions return one
 * of these and, where they take one, fill a caller-provided message buffer.
 */
typedef enum sp_status {
    SP_OK = 0,
    SP_ERROR = -1,         /* failed; the message says why */
    SP_AGAIN = -2,         /* not now; try again later */
    SP_DEFER = -3,         /* not mine: let the next in the chain answer */
    SP_NOT_FOUND = -4,
    SP_INVALID = -5,       /* the input is wrong (bad credentials, bad spec) */
    SP_CONFLICT = -6,
    SP_UNAVAILABLE = -7,   /* a dependency is down */
    SP_NOT_SUPPORTED = -8  /* the host or plugin does not know this call */
} sp_status;

/* Old name used by the architecture notes. */
#define SP_DECLINED SP_DEFER

/* The kinds of plugin.  A descriptor names one. */
typedef enum sp_plugin_kind {
    SP_KIND_BACKEND = 1,
    SP_KIND_AUTH = 2,
    SP_KIND_POLICY = 3,
    SP_KIND_MANIFEST = 4
} sp_plugin_kind;

/*
 * Option types.  Values arrive already checked: a DURATION is read back in
 * milliseconds ("30s", "5m", "250ms", "2h", "7d"), a SIZE in bytes ("1MiB",
 * "512k", "4096"), a BOOL from true/false/yes/no/on/off.
 */
typedef enum sp_option_type {
    SP_OPTION_STRING = 1,
    SP_OPTION_INT = 2,
    SP_OPTION_BOOL = 3,
    SP_OPTION_DURATION = 4,
    SP_OPTION_SIZE = 5,
    SP_OPTION_STRING_LIST = 6
} sp_option_type;

/* One row of a plugin's options table; the table ends with key == NULL. */
typedef struct sp_option_spec {
    const char *key;
    sp_option_type type;
    const char *default_value; /* text as it would be written in YAML, or NULL */
    int required;              /* non-zero: the config must set it */
    const char *help;          /* one line, shown by --list-plugins */
} sp_option_spec;

typedef struct sp_plugin_context sp_plugin_context;

/*
 * The descriptor.  Declare it with SP_PLUGIN_DECLARE so the frozen header is
 * filled in correctly:
 *
 *   SP_PLUGIN_DECLARE = {
 *       SP_PLUGIN_HEADER,
 *       .kind = SP_KIND_AUTH,
 *       .name = "auth_token",
 *       ...
 *   };
 */
typedef struct sp_plugin_descriptor {
    /* Frozen: never moves, never changes meaning. */
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t descriptor_size;
    /* ABI 1.0 */
    uint32_t kind; /* sp_plugin_kind */
    const char *name;
    const char *version;
    const char *description;
    const sp_option_spec *options;
    /* Return SP_OK, or an error with a message in err. */
    int (*init)(sp_plugin_context *ctx, char *err, size_t err_size);
    /* Release everything.  Registrations are removed by the host. */
    void (*fini)(sp_plugin_context *ctx);
} sp_plugin_descriptor;

#define SP_PLUGIN_HEADER                                                      \
    .magic = SP_PLUGIN_MAGIC, .abi_major = SP_ABI_MAJOR,                      \
    .abi_minor = SP_ABI_MINOR,                                                \
    .descriptor_size = (uint32_t)sizeof(sp_plugin_descriptor)

/*
 * C forbids an object named like a typedef in the same scope, so the C
 * name is sp_plugin_descriptor_export and the asm label gives the exported
 * symbol its fixed name, "sp_plugin_descriptor" (GCC and Clang, ELF).
 */
#define SP_PLUGIN_DECLARE                                                     \
    SP_EXPORT extern const sp_plugin_descriptor sp_plugin_descriptor_export   \
        __asm__(SP_PLUGIN_SYMBOL_NAME);                                       \
    SP_EXPORT const sp_plugin_descriptor sp_plugin_descriptor_export

struct sp_host_api;

/*
 * What init() receives.  The host owns it; it lives until fini() returns.
 * `user_data` is the plugin's own pointer: set it in init, read it anywhere.
 */
struct sp_plugin_context {
    uint32_t size;
    const struct sp_host_api *host;
    void *user_data;
};

#ifdef __cplusplus
}
#endif

#include <sparkplane/host.h>

#endif /* SPARKPLANE_PLUGIN_H */
