/*
 * gateway_sessions.h - session affinity: which Spark Connect server (driver)
 * each Spark session lives on.
 *
 * A Spark Connect session is server state (temp views, configs, running
 * executions) keyed by (user, session_id); the client fails when its
 * server-side session changes.  So every request of a session must reach
 * the driver that served its first request.  This table pins a session to
 * an endpoint the first time the gateway sees it: the healthy endpoint of
 * the cluster with the fewest pinned sessions (cluster_registry's
 * counts), and keeps it there for the session's life.
 *
 * A pin ends when the client releases the session (ReleaseSession), when
 * nothing used it for the session timeout (the Spark server forgets idle
 * sessions after its own timeout, 60 minutes by default), or when its
 * endpoint is no longer part of the cluster.  A pin to an endpoint that is
 * unhealthy is kept - the driver may come back - but requests get
 * UNAVAILABLE and a message telling the user to start a new session, which
 * then lands on a healthy driver.
 *
 * Keys are (cluster id, authenticated subject, session_id): the subject is
 * the gateway's identity of the caller, so one user cannot steer another's
 * session.  Pure bookkeeping over a cluster_registry; single-threaded.
 */
#ifndef SPARKPLANE_CORE_GATEWAY_SESSIONS_H
#define SPARKPLANE_CORE_GATEWAY_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster_registry.h"

#define GATEWAY_SESSION_ID_MAX 256

typedef struct gateway_sessions gateway_sessions;

typedef struct gateway_session_key {
    const char *cluster;        /* cluster id */
    const char *subject;        /* the authenticated caller */
    const char *session_id;     /* from the request's first message; "" = none */
} gateway_session_key;

gateway_sessions *gateway_sessions_new(void);

/* Ends every pin (counted out of `registry` when not NULL) and frees the table. */
void gateway_sessions_free(gateway_sessions *sessions, cluster_registry *registry);

/*
 * The endpoint for a request of `key` on `cluster`: the session's pinned
 * driver, or - for a session not seen before - the least-loaded healthy
 * endpoint, pinned from now on.  A request without a session id gets the
 * least-loaded healthy endpoint and no pin.  On success copies the
 * address into endpoint, marks one more stream of the session in flight
 * (end it with gateway_sessions_stream_end), sets *created when this call
 * made the pin, and returns 0 (gRPC OK); otherwise returns a gRPC status
 * (UNAVAILABLE, INVALID_ARGUMENT) with a message for the user.
 */
int gateway_sessions_route(gateway_sessions *sessions, cluster_registry *registry,
                           const cluster_entry *cluster, const gateway_session_key *key,
                           uint64_t now_ms, char *endpoint, size_t endpoint_size, int *created,
                           char *message, size_t message_size);

/* Ends the pin now, streams in flight or not: a new session whose first request could not
 * reach its driver has no state there, so its retry may go to another one. */
void gateway_sessions_forget(gateway_sessions *sessions, cluster_registry *registry,
                             const gateway_session_key *key);

/* A stream routed by gateway_sessions_route ended; the session was used at now_ms. */
void gateway_sessions_stream_end(gateway_sessions *sessions, cluster_registry *registry,
                                 const gateway_session_key *key, uint64_t now_ms);

/* The client released the session: the pin ends now (or when its last stream ends). */
void gateway_sessions_release(gateway_sessions *sessions, cluster_registry *registry,
                              const gateway_session_key *key);

/*
 * Ends pins unused since now_ms - timeout_ms with no stream in flight,
 * and pins whose cluster or endpoint left the registry.  Returns how
 * many ended.
 */
size_t gateway_sessions_expire(gateway_sessions *sessions, cluster_registry *registry,
                               uint64_t now_ms, uint64_t timeout_ms);

/* Pinned sessions, all clusters / one cluster. */
size_t gateway_sessions_count(const gateway_sessions *sessions);
size_t gateway_sessions_count_cluster(const gateway_sessions *sessions, const char *cluster);

/* The pinned endpoint of key, or NULL (for tests and logs). */
const char *gateway_sessions_endpoint(const gateway_sessions *sessions,
                                      const gateway_session_key *key);

#endif
