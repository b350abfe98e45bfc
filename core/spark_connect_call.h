/*
 * spark_connect_call.h - one Spark Connect call made by the daemon itself
 * (Config, or ExecutePlan of one SQL query), over the gateway's pooled
 * upstream connections.
 *
 * Users: the cluster manager asks a new cluster's server for a setting and
 * runs a small warm-up query on it before calling the cluster RUNNING (real
 * calls, not a port check), and the gateway sets a provisioned cluster's
 * catalog settings in each new session before forwarding the session's
 * first request.
 *
 * The call sends the server's own token, never a client's.  `done` is
 * called exactly once from the event loop unless the call is cancelled
 * first; the call frees itself after `done` returns.
 */
#ifndef SPARKPLANE_CORE_SPARK_CONNECT_CALL_H
#define SPARKPLANE_CORE_SPARK_CONNECT_CALL_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway_upstream.h"

#define SC_CALL_MAX_RESPONSE (1024u * 1024u)

typedef struct sc_call sc_call;

/*
 * grpc_status 0 = OK with a Config response's "pairs" as a JSON object
 * (borrowed, may be empty; empty for ExecutePlan); otherwise the gRPC status (14 UNAVAILABLE for
 * transport failures, 4 DEADLINE_EXCEEDED when timeout_ms passed) and a
 * message a person can read.
 */
typedef void (*sc_call_done_fn)(void *arg, int grpc_status, const char *message,
                                const json_t *pairs);

/* Config.set of every string in `pairs` (a JSON object) for (session_id, user_id). */
sc_call *sc_call_config_set(struct event_base *base, gateway_upstream_pool *pool,
                            const char *endpoint, const char *token, const char *session_id,
                            const char *user_id, const json_t *pairs, uint64_t timeout_ms,
                            sc_call_done_fn done, void *arg, char *err, size_t err_size);

/* Config.get of one key for (session_id, user_id). */
sc_call *sc_call_config_get(struct event_base *base, gateway_upstream_pool *pool,
                            const char *endpoint, const char *token, const char *session_id,
                            const char *user_id, const char *key, uint64_t timeout_ms,
                            sc_call_done_fn done, void *arg, char *err, size_t err_size);

/* ExecutePlan of `query` (Spark SQL) for (session_id, user_id); OK once the whole result came
 * back (at most SC_CALL_MAX_RESPONSE bytes of it). */
sc_call *sc_call_execute_sql(struct event_base *base, gateway_upstream_pool *pool,
                             const char *endpoint, const char *token, const char *session_id,
                             const char *user_id, const char *query, uint64_t timeout_ms,
                             sc_call_done_fn done, void *arg, char *err, size_t err_size);

/* Stops a call: RST_STREAM upstream, no `done`, memory freed. */
void sc_call_cancel(sc_call *call);

/* A random version 4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"), what Spark takes as a
 * session id.  0, or -1 when no randomness is available. */
int sc_random_uuid(char out[37]);

#endif
