/*
 * gateway_tls.h - TLS for the Spark Connect gateway: the OpenSSL server
 * context built from gateway.tls.certificate and gateway.tls.key, and the
 * wrapping of an accepted socket in a libevent OpenSSL bufferevent.
 *
 * A context accepts TLS 1.2 and 1.3 only and selects ALPN "h2" or refuses
 * the handshake (no_application_protocol alert): the gateway speaks
 * HTTP/2 and nothing else on a TLS port.  The gateway builds a new context
 * on every configure (start and SIGHUP), so a reload picks up a rotated
 * certificate; an SSL_CTX is reference counted, so connections accepted
 * earlier keep the context they started with until they close.
 *
 * Client certificates are not requested yet; gateway_tls_peer_certificate_pem
 * is the place where mTLS (auth_mtls) will read the caller's certificate.
 */
#ifndef SPARKPLANE_CORE_GATEWAY_TLS_H
#define SPARKPLANE_CORE_GATEWAY_TLS_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>

/* Which configured file a context could not be built from. */
typedef enum gateway_tls_fault {
    GATEWAY_TLS_FAULT_NONE = 0,
    GATEWAY_TLS_FAULT_CERTIFICATE, /* gateway.tls.certificate: missing, unreadable, not PEM */
    GATEWAY_TLS_FAULT_KEY          /* gateway.tls.key: same, encrypted, or not the cert's key */
} gateway_tls_fault;

/*
 * A server context from a PEM certificate chain (leaf first) and its PEM
 * private key.  NULL with `fault` and a message naming the file otherwise.
 */
SSL_CTX *gateway_tls_context_new(const char *certificate_path, const char *key_path,
                                 gateway_tls_fault *fault, char *message, size_t message_size);

/* Drops the caller's reference; connections using it keep theirs. NULL is fine. */
void gateway_tls_context_free(SSL_CTX *context);

/* "CN=..., serial 0A1B..., expires 2027-01-01": the leaf, for the log. */
void gateway_tls_context_describe(SSL_CTX *context, char *out, size_t out_size);

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

/* Why the TLS layer of bev failed, from OpenSSL's errors (drains them). */
void gateway_tls_describe_error(struct bufferevent *bev, char *out, size_t out_size);

/*
 * The client's certificate as PEM (malloc'd; the caller frees), or NULL
 * when the connection is not TLS or the client sent none.  Nothing asks
 * for client certificates yet: this is where mTLS will read it.
 */
char *gateway_tls_peer_certificate_pem(struct bufferevent *bev);

#endif
