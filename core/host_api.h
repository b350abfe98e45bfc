/*
 * host_api.h - the sp_host_api table handed to every plugin, and the
 * services behind it.
 *
 * The table is built once; its functions find the calling plugin from the
 * context (the first member of loaded_plugin) and the daemon's services
 * from host_api_bind().  host_api_release() is the plugin host's release
 * hook: it cancels the plugin's timers and HTTP calls and detaches its
 * processes when the plugin unloads.
 */
#ifndef SPARKPLANE_CORE_HOST_API_H
#define SPARKPLANE_CORE_HOST_API_H

#include <event2/event.h>
#include <sparkplane/sparkplane.h>

#include "http_client.h"
#include "plugin_host.h"
#include "process.h"
#include "store.h"

typedef struct host_services {
    struct event_base *base;
    http_client *http;
    process_manager *processes;
    store *state;                   /* may be NULL (tests): kv answers SP_UNAVAILABLE */
} host_services;

void host_api_bind(const host_services *services);
const sp_host_api *host_api_table(void);
void host_api_release(loaded_plugin *plugin);

#endif
