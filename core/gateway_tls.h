/*
 * gateway_tls.h - TLS for the Spark Connect gateway: the server context
 * for gateway.tls (tls_server.h, plus ALPN h2) and the wrapping of an
 * accepted socket in a libevent OpenSSL bufferevent.
 *
 * A context selects ALPN "h2" or refuses the handshake
 * (no_application_protocol alert): the gateway speaks HTTP/2 and nothing
 * else on a TLS port.  The gateway builds a new context on every configure
 * (start and SIGHUP), so a reload picks up a rotated certificate.  With
 * gateway.tls.client_certificates: request, the client's chain reaches the
 * auth chain through gateway_tls_peer_chain_pem, unverified (tls_server.h).
 */
#ifndef SPARKPLANE_CORE_GATEWAY_TLS_H
#define SPARKPLANE_CORE_GATEWAY_TLS_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>

#include "tls_server.h"

/*
 * A gateway context from a PEM certificate chain (leaf first) and its PEM
 * private key, asking for client certificates when told to.  NULL with
 * `fault` and a message naming the file otherwise.  Free it with
 * tls_server_context_free.
 */
SSL_CTX *gateway_tls_context_new(const char *certificate_path, const char *key_path,
                                 int request_client_certificates, tls_server_fault *fault,
                                 char *message, size_t message_size);

/*
 * An accepting OpenSSL bufferevent over the accepted socket `fd`, owning
 * both (BEV_OPT_CLOSE_ON_FREE).  `peer` ("host:port") names the client in
 * log lines and must outlive the bufferevent.  Output written before the
 * handshake completes is held by libevent and sent after it.  NULL on
 * failure (fd left open for the caller).
 */
struct bufferevent *gateway_tls_accept(SSL_CTX *context, struct event_base *base,
                                       evutil_socket_t fd, const char *peer);

/* 1 when bev is a TLS bufferevent. */
int gateway_tls_is_tls(struct bufferevent *bev);

/* 1 when the completed handshake on bev selected ALPN "h2". */
int gateway_tls_negotiated_h2(struct bufferevent *bev);

/*
 * The client's certificate chain as PEM, leaf first (tls_server_peer_chain_pem;
 * malloc'd, the caller frees), or NULL when the connection is h2c or the
 * client sent none.
 */
char *gateway_tls_peer_chain_pem(struct bufferevent *bev);

#endif
