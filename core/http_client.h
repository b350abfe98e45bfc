/*
 * http_client.h - outbound HTTP for the daemon and its plugins: libcurl's
 * multi interface driven by the libevent loop (socket and timer callbacks,
 * no threads, no blocking).
 *
 * Reaches what backends need: unix sockets (Docker/podman), TLS with CA
 * files and client certificates (Kubernetes), AWS SigV4 (EMR), bounded
 * response sizes and timeouts.  Every call belongs to an owner (a plugin)
 * so everything a plugin started can be cancelled when it unloads.
 */
#ifndef SPARKPLANE_CORE_HTTP_CLIENT_H
#define SPARKPLANE_CORE_HTTP_CLIENT_H

#include <event2/event.h>
#include <sparkplane/host.h>

typedef struct http_client http_client;

http_client *http_client_new(struct event_base *base);
/* Cancels every call (no callbacks) and frees. */
void http_client_free(http_client *client);

/*
 * Starts a request; `done` runs once from the loop.  Returns SP_OK, or
 * SP_INVALID with a message for a request that cannot be made (no URL,
 * unknown method...).  `call_out` may be NULL.
 */
int http_client_request(http_client *client, void *owner, const sp_http_request *request,
                        sp_http_done_fn done, void *arg, sp_http_call **call_out,
                        char *err, size_t err_size);

/* Cancels one call; its callback will not run. */
void http_client_cancel(sp_http_call *call);

/* Cancels every call of one owner. */
void http_client_cancel_owner(http_client *client, void *owner);

/* Calls in flight (metrics, tests). */
size_t http_client_active(const http_client *client);

#endif
