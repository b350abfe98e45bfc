/*
 * plugin_host.h - loading plugins and keeping what they register.
 *
 * A plugin set ("generation") is built from a config in two steps:
 * plugin_set_prepare() dlopens every enabled plugin, checks its descriptor
 * (plugin_check_descriptor) and validates its options - any problem is
 * reported with the exact reason and nothing is initialised;
 * plugin_set_start() then calls each init() in config order.  Providers
 * register into the set's own registry, so a reload can build and start
 * a new set while the old one still serves, swap, and stop the old one.
 * A failing new set is stopped and freed: the old set keeps running.
 *
 * Stopping a set calls fini() in reverse order, then releases what each
 * plugin left behind (timers, HTTP calls, process callbacks, providers).
 */
#ifndef SPARKPLANE_CORE_PLUGIN_HOST_H
#define SPARKPLANE_CORE_PLUGIN_HOST_H

#include <stddef.h>
#include <sparkplane/sparkplane.h>

#include "config.h"
#include "diag.h"
#include "plugin_options.h"

/*
 * Checks a descriptor read from a plugin.  `path` and the symbol's address
 * come from dlsym; the check reads the frozen header first and touches
 * later fields only when descriptor_size covers them.  0 when acceptable,
 * else -1 and one of:
 *   "<path>: not a sparkplane plugin (bad magic 0x...)"
 *   "plugin <name|path> needs ABI 2.0, sparkplaned provides 1.0"
 *   "plugin X needs ABI 1.3, sparkplaned provides 1.0"
 *   "<path>: descriptor too small (N bytes, ABI 1.0 needs at least M)"
 *   "plugin X: unknown kind 9"
 *   "plugin X: missing name" / "missing init"
 */
int plugin_check_descriptor(const char *path, const sp_plugin_descriptor *descriptor,
                            char *err, size_t err_size);

/* "backend", "auth", "policy", "manifest", or NULL. */
const char *plugin_kind_name(uint32_t kind);

typedef struct plugin_set plugin_set;

/* One loaded plugin, as the host API sees it (ctx is first: cast back). */
typedef struct loaded_plugin {
    sp_plugin_context ctx;          /* handed to the plugin */
    char *name;                     /* the config name */
    char *path;
    void *dl_handle;
    const sp_plugin_descriptor *descriptor;
    plugin_options *options;
    plugin_set *set;
    int initialised;
} loaded_plugin;

/* A registered provider. */
typedef struct plugin_provider {
    sp_plugin_kind kind;
    char *name;
    const void *ops;                /* starts with uint32_t size */
    void *provider;
    loaded_plugin *owner;
} plugin_provider;

/*
 * dlopens and checks every enabled plugin in cfg.  Collects every problem
 * in `problems` and returns NULL when there is any.
 */
plugin_set *plugin_set_prepare(const config *cfg, const sp_host_api *host_api,
                               diag_list *problems);

/* Calls init() in order; on the first failure stops what started, -1. */
int plugin_set_start(plugin_set *set, diag_list *problems);

/* fini() in reverse order, releases everything, dlcloses, frees. */
void plugin_set_free(plugin_set *set);

size_t plugin_set_count(const plugin_set *set);
loaded_plugin *plugin_set_get(plugin_set *set, size_t index);

/* Registration, called through the host API. */
int plugin_set_register(loaded_plugin *plugin, sp_plugin_kind kind, const char *name,
                        const void *ops, void *provider);

/* Every registered provider, in registration order (the runner attaches to backends). */
size_t plugin_set_provider_count(const plugin_set *set);
const plugin_provider *plugin_set_provider_at(const plugin_set *set, size_t index);

/* Finds a provider by kind and name (NULL when absent). */
const plugin_provider *plugin_set_find(const plugin_set *set, sp_plugin_kind kind,
                                       const char *name);

/*
 * Hooks the host gives the set so that releasing a plugin also cancels
 * its timers, HTTP calls and process callbacks (see host_api.c).
 */
typedef void (*plugin_release_fn)(loaded_plugin *plugin);
void plugin_host_set_release_hook(plugin_release_fn release);

#endif
