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
 * Which cluster a request goes to is decided with gateway_route.h over the
 * gateway's cluster_registry, loaded from the config's `clusters` (brought
 * up to date on reload, keeping driver health and session counts); which
 * driver of the cluster serves it, by the session pins of
 * gateway_sessions.h once the request's first message names its session.
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

gateway *gateway_new(struct daemon_state *daemon);

/*
 * Applies the gateway.* keys and the static clusters: opens gateway.listen
 * (h2c) and gateway.tls.listen (TLS, ALPN h2) listeners that are new, closes
 * dropped ones (their connections get a graceful GOAWAY) and keeps the rest;
 * rebuilds the TLS context from gateway.tls.certificate/key (rotation);
 * limits and timeouts apply to what comes next.  0, or -1 with problems and
 * the previous state kept.  No listener at all: the gateway is off.
 */
int gateway_configure(gateway *gw, const config *cfg, diag_list *problems);

/* Drain: stop accepting and send GOAWAY on every client connection. */
void gateway_close_listeners(gateway *gw);

/* Client streams still open. */
size_t gateway_in_flight(const gateway *gw);

void gateway_free(gateway *gw);

/*
 * Provisioned clusters (core/clusters.c).  put adds or replaces one
 * (entry->provisioned is forced to 1; a terminated cluster still holding
 * the placement gives way); config reloads leave provisioned clusters
 * alone.  end marks one terminated: it takes no new requests, and for an
 * hour every request that names it (by id or host) gets NOT_FOUND with
 * `reason`, so a notebook whose cluster expired reads why.
 */
struct cluster_entry;
int gateway_cluster_put(gateway *gw, const struct cluster_entry *entry, char *err,
                        size_t err_size);
void gateway_cluster_end(gateway *gw, const char *id, const char *reason);
/* The live registry (read only) and the upstream pool, for discovery and Config calls. */
const struct cluster_registry *gateway_registry(const gateway *gw);
struct gateway_upstream_pool *gateway_pool(gateway *gw);

/* Percent-encodes a grpc-message value (gRPC over HTTP/2 spec). */
void gateway_encode_grpc_message(const char *message, char *out, size_t out_size);

#endif
