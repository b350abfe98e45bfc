/*
 * plugin_host.c - loading plugins, checking their descriptors, running
 * their init/fini and keeping the providers they register.
 *
 * A plugin_set is one generation of loaded plugins.  Preparing it dlopens
 * every enabled plugin and checks everything that can be checked without
 * running plugin code (descriptor, name, options); every problem is
 * collected so --check-config prints them all.  Starting it runs init() in
 * config order; registration is accepted only from the plugin whose init()
 * is running, so a provider always has an owner that will be stopped.
 *
 * The descriptor check reads the frozen header (magic, major, minor, size)
 * before anything else and touches a later field only when both the ABI
 * version and descriptor_size say it is there.
 *
 * Freeing a set calls fini() in reverse order, then the release hook
 * (host_api.c cancels the plugin's timers, HTTP calls and processes), drops
 * the plugin's providers and dlcloses it.  SPARKPLANE_NO_DLCLOSE=1 keeps
 * the objects mapped: LeakSanitizer symbolises leak stacks at exit, and a
 * plugin unloaded by then shows up as "<unknown module>", hiding the leak.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_host.h"

#define PLUGIN_NAME_MAX 64
#define PLUGIN_ERROR_MAX 512

struct plugin_set {
    const sp_host_api *host;
    loaded_plugin **plugins;
    size_t count;
    plugin_provider **providers;
    size_t provider_count;
    size_t started;              /* plugins[0, started) ran init and are not stopped */
    loaded_plugin *initialising; /* the plugin whose init() runs now, or NULL */
};

static plugin_release_fn plugin_release_hook;

/* The end of the last ABI 1.0 field of a table: what every 1.0 plugin has. */
#define PLUGIN_ABI_1_0_SIZE(type, last_field)                                 \
    (offsetof(type, last_field) + sizeof(((type *)0)->last_field))

static const size_t plugin_descriptor_min_size = PLUGIN_ABI_1_0_SIZE(sp_plugin_descriptor, fini);

const char *plugin_kind_name(uint32_t kind)
{
    switch (kind) {
    case SP_KIND_BACKEND:
        return "backend";
    case SP_KIND_AUTH:
        return "auth";
    case SP_KIND_POLICY:
        return "policy";
    case SP_KIND_MANIFEST:
        return "manifest";
    default:
        return NULL;
    }
}

/* Size of the ABI 1.0 ops table for a kind; 0 for a kind we do not know. */
static size_t plugin_ops_min_size(sp_plugin_kind kind)
{
    switch (kind) {
    case SP_KIND_BACKEND:
        return PLUGIN_ABI_1_0_SIZE(sp_backend_ops, reconcile);
    case SP_KIND_AUTH:
        return PLUGIN_ABI_1_0_SIZE(sp_auth_ops, authenticate);
    case SP_KIND_POLICY:
        return PLUGIN_ABI_1_0_SIZE(sp_policy_ops, decide);
    case SP_KIND_MANIFEST:
        return PLUGIN_ABI_1_0_SIZE(sp_manifest_ops, parse);
    default:
        return 0;
    }
}

/* [a-z0-9_]{1,64}: names end up in log tags, metric labels and paths. */
static int plugin_name_valid(const char *name)
{
    size_t len = 0;
    for (; name[len] != '\0'; len++) {
        char c = name[len];
        if (len >= PLUGIN_NAME_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return len > 0;
}

/* The name a version message may show: the descriptor's when it is there and sane. */
static const char *plugin_descriptor_label(const char *path, const sp_plugin_descriptor *d)
{
    if (d->abi_major != SP_ABI_MAJOR) /* another layout: later fields mean nothing */
        return path;
    if (d->descriptor_size < offsetof(sp_plugin_descriptor, name) + sizeof(d->name))
        return path;
    if (d->name == NULL || !plugin_name_valid(d->name))
        return path;
    return d->name;
}

static int plugin_check_header(const char *path, const sp_plugin_descriptor *d, char *err,
                               size_t err_size)
{
    if (d->magic != SP_PLUGIN_MAGIC) {
        snprintf(err, err_size, "%s: not a sparkplane plugin (bad magic 0x%08x)", path,
                 (unsigned)d->magic);
        return -1;
    }
    if (d->abi_major != SP_ABI_MAJOR || d->abi_minor > SP_ABI_MINOR) {
        snprintf(err, err_size, "plugin %s needs ABI %u.%u, sparkplaned provides %u.%u",
                 plugin_descriptor_label(path, d), (unsigned)d->abi_major,
                 (unsigned)d->abi_minor, (unsigned)SP_ABI_MAJOR, (unsigned)SP_ABI_MINOR);
        return -1;
    }
    /* Larger than ours (same minor from a sloppy build) is fine: we read only our fields. */
    if (d->descriptor_size < plugin_descriptor_min_size) {
        snprintf(err, err_size, "%s: descriptor too small (%u bytes, ABI 1.0 needs at least %zu)",
                 path, (unsigned)d->descriptor_size, plugin_descriptor_min_size);
        return -1;
    }
    return 0;
}

/* Copies at most PLUGIN_NAME_MAX characters of a bad name, printable ones only. */
static void plugin_quote_name(const char *name, char *out, size_t out_size)
{
    size_t i = 0;
    for (; name[i] != '\0' && i < PLUGIN_NAME_MAX && i + 1 < out_size; i++)
        out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    out[i] = '\0';
}

int plugin_check_descriptor(const char *path, const sp_plugin_descriptor *d, char *err,
                            size_t err_size)
{
    char quoted[PLUGIN_NAME_MAX + 1];

    if (d == NULL) {
        snprintf(err, err_size, "%s: sp_plugin_descriptor is NULL", path);
        return -1;
    }
    if (plugin_check_header(path, d, err, err_size) != 0)
        return -1;
    if (d->name == NULL) {
        snprintf(err, err_size, "plugin %s: missing name", path);
        return -1;
    }
    if (!plugin_name_valid(d->name)) {
        plugin_quote_name(d->name, quoted, sizeof(quoted));
        snprintf(err, err_size, "plugin %s: invalid name \"%s\" (must match [a-z0-9_]{1,64})",
                 path, quoted);
        return -1;
    }
    if (plugin_kind_name(d->kind) == NULL) {
        snprintf(err, err_size, "plugin %s: unknown kind %u", d->name, (unsigned)d->kind);
        return -1;
    }
    if (d->init == NULL) {
        snprintf(err, err_size, "plugin %s: missing init", d->name);
        return -1;
    }
    return 0;
}

/* ---- the set ------------------------------------------------------------ */

size_t plugin_set_provider_count(const plugin_set *set)
{
    return set ? set->provider_count : 0;
}

const plugin_provider *plugin_set_provider_at(const plugin_set *set, size_t index)
{
    return (set && index < set->provider_count) ? set->providers[index] : NULL;
}

size_t plugin_set_count(const plugin_set *set)
{
    return set == NULL ? 0 : set->count;
}

loaded_plugin *plugin_set_get(plugin_set *set, size_t index)
{
    return (set == NULL || index >= set->count) ? NULL : set->plugins[index];
}

void plugin_host_set_release_hook(plugin_release_fn release)
{
    plugin_release_hook = release;
}

static loaded_plugin *plugin_set_find_plugin(const plugin_set *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->plugins[i]->name, name) == 0)
            return set->plugins[i];
    return NULL;
}

static int plugin_set_append(plugin_set *set, loaded_plugin *plugin)
{
    loaded_plugin **grown = realloc(set->plugins, (set->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    set->plugins = grown;
    set->plugins[set->count++] = plugin;
    return 0;
}

static void plugin_unload(loaded_plugin *plugin)
{
    const char *keep = getenv("SPARKPLANE_NO_DLCLOSE");

    if (plugin == NULL)
        return;
    plugin_options_free(plugin->options);
    if (plugin->dl_handle != NULL && !(keep != NULL && strcmp(keep, "1") == 0))
        dlclose(plugin->dl_handle);
    free(plugin->name);
    free(plugin->path);
    free(plugin);
}

/* dlopen + dlsym + descriptor check; the problem goes to `problems`. */
static int plugin_open(loaded_plugin *plugin, const config_plugin *cp, diag_list *problems)
{
    char err[PLUGIN_ERROR_MAX];
    const char *why;

    dlerror();
    plugin->dl_handle = dlopen(cp->path, RTLD_NOW | RTLD_LOCAL);
    if (plugin->dl_handle == NULL) {
        why = dlerror();
        diag_add_at(problems, cp->file, cp->line, cp->column, "plugins.%s: cannot load %s: %s",
                    cp->name, cp->path, why != NULL ? why : "unknown error");
        return -1;
    }
    plugin->descriptor = dlsym(plugin->dl_handle, SP_PLUGIN_SYMBOL_NAME);
    if (plugin->descriptor == NULL) {
        diag_add_at(problems, cp->file, cp->line, cp->column,
                    "%s: missing symbol " SP_PLUGIN_SYMBOL_NAME " (not a sparkplane plugin)",
                    cp->path);
        return -1;
    }
    if (plugin_check_descriptor(cp->path, plugin->descriptor, err, sizeof(err)) != 0) {
        diag_add_at(problems, cp->file, cp->line, cp->column, "%s", err);
        return -1;
    }
    return 0;
}

/* The checks that need the rest of the set: name, uniqueness, options. */
static int plugin_admit(plugin_set *set, loaded_plugin *plugin, const config_plugin *cp,
                        diag_list *problems)
{
    const sp_plugin_descriptor *d = plugin->descriptor;
    const loaded_plugin *other;

    if (strcmp(d->name, cp->name) != 0) {
        diag_add_at(problems, cp->file, cp->line, cp->column,
                    "plugins.%s: %s is plugin \"%s\", not \"%s\"", cp->name, cp->path, d->name,
                    cp->name);
        return -1;
    }
    other = plugin_set_find_plugin(set, d->name);
    if (other != NULL) {
        diag_add_at(problems, cp->file, cp->line, cp->column,
                    "plugins.%s: duplicate plugin name \"%s\" (already loaded from %s)",
                    cp->name, d->name, other->path);
        return -1;
    }
    plugin->options = plugin_options_build(cp->name, d->options, cp->options, cp->file,
                                           cp->line, cp->column, problems);
    return plugin->options == NULL ? -1 : 0;
}

static int plugin_set_load_one(plugin_set *set, const config_plugin *cp, diag_list *problems)
{
    loaded_plugin *plugin = calloc(1, sizeof(*plugin));

    if (plugin == NULL || (plugin->name = strdup(cp->name)) == NULL ||
        (plugin->path = strdup(cp->path)) == NULL) {
        diag_add_at(problems, cp->file, cp->line, cp->column, "plugins.%s: out of memory",
                    cp->name);
        goto fail;
    }
    plugin->set = set;
    plugin->ctx.size = (uint32_t)sizeof(plugin->ctx);
    plugin->ctx.host = set->host;
    if (plugin_open(plugin, cp, problems) != 0 || plugin_admit(set, plugin, cp, problems) != 0)
        goto fail;
    if (plugin_set_append(set, plugin) != 0) {
        diag_add(problems, "plugins.%s: out of memory", cp->name);
        goto fail;
    }
    return 0;
fail:
    plugin_unload(plugin);
    return -1;
}

plugin_set *plugin_set_prepare(const config *cfg, const sp_host_api *host_api,
                               diag_list *problems)
{
    plugin_set *set = calloc(1, sizeof(*set));
    int failed = 0;

    if (set == NULL) {
        diag_add(problems, "plugins: out of memory");
        return NULL;
    }
    set->host = host_api;
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const config_plugin *cp = &cfg->plugins[i];
        if (cp->enabled && plugin_set_load_one(set, cp, problems) != 0)
            failed = 1;
    }
    if (failed) {
        plugin_set_free(set);
        return NULL;
    }
    return set;
}

/* ---- providers ---------------------------------------------------------- */

static void plugin_set_drop_providers(plugin_set *set, const loaded_plugin *owner)
{
    size_t kept = 0;

    for (size_t i = 0; i < set->provider_count; i++) {
        plugin_provider *p = set->providers[i];
        if (p->owner == owner) {
            free(p->name);
            free(p);
        } else {
            set->providers[kept++] = p;
        }
    }
    set->provider_count = kept;
}

const plugin_provider *plugin_set_find(const plugin_set *set, sp_plugin_kind kind,
                                       const char *name)
{
    if (set == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < set->provider_count; i++) {
        const plugin_provider *p = set->providers[i];
        if (p->kind == kind && strcmp(p->name, name) == 0)
            return p;
    }
    return NULL;
}

/*
 * Answers: SP_NOT_SUPPORTED for a kind this host does not know, SP_CONFLICT
 * for a (kind, name) already registered in the set, SP_INVALID for a NULL
 * or empty name, NULL ops, an ops table smaller than its ABI 1.0 size, or a
 * call made outside the plugin's own init() (providers registered later
 * could outlive the stop order the host relies on).
 */
int plugin_set_register(loaded_plugin *plugin, sp_plugin_kind kind, const char *name,
                        const void *ops, void *provider)
{
    size_t min_size = plugin_ops_min_size(kind);
    plugin_set *set = plugin != NULL ? plugin->set : NULL;
    plugin_provider *entry = NULL;
    plugin_provider **grown;

    if (min_size == 0)
        return SP_NOT_SUPPORTED;
    if (set == NULL || set->initialising != plugin || name == NULL || name[0] == '\0' ||
        ops == NULL)
        return SP_INVALID;
    if (*(const uint32_t *)ops < min_size)
        return SP_INVALID;
    if (plugin_set_find(set, kind, name) != NULL)
        return SP_CONFLICT;
    entry = calloc(1, sizeof(*entry));
    if (entry == NULL || (entry->name = strdup(name)) == NULL)
        goto fail;
    grown = realloc(set->providers, (set->provider_count + 1) * sizeof(*grown));
    if (grown == NULL)
        goto fail;
    set->providers = grown;
    entry->kind = kind;
    entry->ops = ops;
    entry->provider = provider;
    entry->owner = plugin;
    set->providers[set->provider_count++] = entry;
    return SP_OK;
fail:
    if (entry != NULL)
        free(entry->name);
    free(entry);
    return SP_ERROR;
}

/* ---- start / stop ------------------------------------------------------- */

/* fini (when init succeeded), then the host's release hook and providers. */
static void plugin_stop(plugin_set *set, loaded_plugin *plugin)
{
    if (plugin->initialised && plugin->descriptor->fini != NULL)
        plugin->descriptor->fini(&plugin->ctx);
    plugin->initialised = 0;
    if (plugin_release_hook != NULL)
        plugin_release_hook(plugin);
    plugin_set_drop_providers(set, plugin);
}

static int plugin_init_one(plugin_set *set, loaded_plugin *plugin, diag_list *problems)
{
    char err[PLUGIN_ERROR_MAX] = "";
    int rc;

    plugin->ctx.size = (uint32_t)sizeof(plugin->ctx);
    plugin->ctx.host = set->host;
    set->initialising = plugin;
    rc = plugin->descriptor->init(&plugin->ctx, err, sizeof(err));
    set->initialising = NULL;
    err[sizeof(err) - 1] = '\0';
    if (rc == SP_OK) {
        plugin->initialised = 1;
        return 0;
    }
    if (err[0] == '\0')
        snprintf(err, sizeof(err), "returned %d without a message", rc);
    diag_add(problems, "plugin %s: init failed: %s", plugin->name, err);
    plugin_stop(set, plugin); /* no fini: release what it left registered */
    return -1;
}

/* Stops plugins[0, started) in reverse order. */
static void plugin_set_stop(plugin_set *set)
{
    while (set->started > 0)
        plugin_stop(set, set->plugins[--set->started]);
}

int plugin_set_start(plugin_set *set, diag_list *problems)
{
    while (set->started < set->count) {
        loaded_plugin *plugin = set->plugins[set->started];
        if (plugin_init_one(set, plugin, problems) != 0)
            goto fail;
        set->started++;
    }
    return 0;
fail:
    plugin_set_stop(set);
    return -1;
}

void plugin_set_free(plugin_set *set)
{
    if (set == NULL)
        return;
    plugin_set_stop(set);
    for (size_t i = set->count; i-- > 0;)
        plugin_unload(set->plugins[i]);
    free(set->plugins);
    free(set->providers);
    free(set);
}
