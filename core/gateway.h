/*
 * gateway.h - the Spark Connect gateway: HTTP/2 listeners, one nghttp2
 * server session per client connection, each request stream
 * authenticated, routed to a cluster and proxied to that cluster's Spark
 * Connect server over a pooled upstream session (gateway_upstream.h).
 *
 * The daemon drives it with four calls:
 *   gateway_new(daemon)                       at start, after the plugins
 *   gateway_configure(gw, cfg, problems)      at start and on every reload
 *   gateway_close_listeners(gw)               on drain: stop accepting, GOAWAY
 *   gateway_free(gw)                          at stop
 * and gateway_in_flight(gw) tells the drain loop how many streams remain.
 *
 * Which cluster a request goes to is decided by a resolver.  The default
 * one routes with gateway_route.h over a cluster_registry the gateway
 * loads from the config's `clusters` (rebuilt on reload);
 * gateway_set_resolver() replaces it (e.g. once the registry is shared
 * with the provisioner).
 */
#ifndef SPARKPLANE_CORE_GATEWAY_H
#define SPARKPLANE_CORE_GATEWAY_H

#include <sparkplane/auth.h>
#include <stddef.h>

#include "config.h"
#include "diag.h"
#include "gateway_route.h"

struct daemon_state;
typedef struct gateway gateway;

/* Where one request goes. */
typedef struct gateway_target {
    char cluster[128];      /* cluster id, for metrics and logs */
    char endpoint[256];     /* Spark Connect server "host:port" */
    char token[1024];       /* the server's own token, "" when it has none */
} gateway_target;

/*
 * Chooses the target for an authenticated caller.  `cluster_id` is the
 * x-sparkplane-cluster-id metadata or NULL, `authority` the :authority.
 * Returns GATEWAY_GRPC_OK with `target` filled, or a gRPC status
 * (NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE) with a message for the client.
 */
typedef int (*gateway_resolve_fn)(void *arg, const char *authority, const char *cluster_id,
                                  const sp_principal *principal, gateway_target *target,
                                  char *message, size_t message_size);

gateway *gateway_new(struct daemon_state *daemon);

/*
 * Applies gateway.listen (none: no gateway), gateway.max_concurrent_streams
 * (for new connections), the routing patterns and the static clusters:
 * opens new listeners, closes dropped ones, keeps the rest.  0, or -1 with
 * problems and the previous state kept.
 */
int gateway_configure(gateway *gw, const config *cfg, diag_list *problems);

void gateway_set_resolver(gateway *gw, gateway_resolve_fn resolve, void *arg);

/* Drain: stop accepting and send GOAWAY on every client connection. */
void gateway_close_listeners(gateway *gw);

/* Client streams still open. */
size_t gateway_in_flight(const gateway *gw);

void gateway_free(gateway *gw);

/* Percent-encodes a grpc-message value (gRPC over HTTP/2 spec). */
void gateway_encode_grpc_message(const char *message, char *out, size_t out_size);

#endif
