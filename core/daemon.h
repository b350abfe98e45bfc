/*
 * daemon.h - the running sparkplaned: what the layers share.
 *
 * daemon.c owns the lifecycle: start (config, store, plugins, listeners,
 * READY=1), SIGHUP reload (build the new plugin set beside the old one,
 * swap on success, keep the old on any failure), SIGTERM drain (stop
 * accepting, finish in-flight requests up to drain_timeout, stop plugins).
 */
#ifndef SPARKPLANE_CORE_DAEMON_H
#define SPARKPLANE_CORE_DAEMON_H

#include <event2/event.h>

#include "config.h"
#include "http_client.h"
#include "plugin_host.h"
#include "process.h"
#include "rest.h"
#include "runner.h"
#include "store.h"

typedef struct daemon_state {
    struct event_base *base;
    char *config_path;
    config *cfg;
    plugin_set *plugins;
    store *state;
    http_client *http;
    process_manager *processes;
    rest_server *rest;
    runner *jobs;                   /* the batch job runner */
    struct gateway *gateway;        /* the Spark Connect gateway */
    struct clusters *clusters;      /* provisioned clusters (POST /api/v1/clusters) */
    int ready;                      /* store open and plugins initialised */
    int draining;
    double started_at;              /* unix seconds */
    double drain_started_at;        /* monotonic seconds */
    struct event *sighup;
    struct event *sigterm;
    struct event *sigint;
    struct event *drain_timer;
} daemon_state;

/* Starts everything from cfg (consumed). 0 or -1 with problems. */
int daemon_start(daemon_state *daemon, config *cfg, diag_list *problems);

/* SIGHUP: reload from daemon->config_path. */
void daemon_reload(daemon_state *daemon);

/* SIGTERM: drain and leave the loop. */
void daemon_begin_drain(daemon_state *daemon);

void daemon_stop(daemon_state *daemon);

#endif
