/*
 * tls_server.h - the server side of TLS shared by the REST server and the
 * Spark Connect gateway: an OpenSSL context from a certificate chain and
 * its key, optional requests for client certificates, and what a
 * connection's peer presented.
 *
 * A context accepts TLS 1.2 and 1.3 with ECDHE and AEAD ciphers only.  The
 * caller adds what its protocol needs (the gateway: ALPN h2; REST: ALPN
 * http/1.1 when offered) and builds a new context on every configure, so a
 * reload (SIGHUP) picks up rotated files; an SSL_CTX is reference counted,
 * so connections accepted earlier keep the context they started with.
 *
 * Client certificates ("client_certificates: request"): the server sends a
 * CertificateRequest, a client without a certificate still connects, and a
 * presented chain is NOT verified here: expired, self-signed or unknown-CA
 * certificates all get through, so that an auth provider (auth_mtls),
 * which verifies against its own trust anchors, can refuse them with a
 * message that says why.  tls_server_peer_chain_pem hands the chain over.
 */
#ifndef SPARKPLANE_CORE_TLS_SERVER_H
#define SPARKPLANE_CORE_TLS_SERVER_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <stddef.h>

/* What tls_server_peer_chain_pem hands over at most. */
#define TLS_SERVER_PEER_CHAIN_MAX_CERTIFICATES 10
#define TLS_SERVER_PEER_CHAIN_MAX_BYTES        (64 * 1024)

/* Which configured file a context could not be built from. */
typedef enum tls_server_fault {
    TLS_SERVER_FAULT_NONE = 0,
    TLS_SERVER_FAULT_CERTIFICATE, /* <section>.tls.certificate: missing, unreadable, not PEM */
    TLS_SERVER_FAULT_KEY          /* <section>.tls.key: same, encrypted, or not the cert's key */
} tls_server_fault;

typedef struct tls_server_settings {
    const char *certificate_path;    /* PEM chain, leaf first */
    const char *key_path;            /* its unencrypted PEM private key */
    const char *session_context;     /* per service, so sessions never cross services */
    int request_client_certificates; /* client_certificates: request */
} tls_server_settings;

/*
 * A server context, or NULL with `fault` and a message naming the file
 * (the caller prefixes the configuration key).
 */
SSL_CTX *tls_server_context_new(const tls_server_settings *settings, tls_server_fault *fault,
                                char *message, size_t message_size);

/* Drops the caller's reference; connections using it keep theirs. NULL is fine. */
void tls_server_context_free(SSL_CTX *context);

/* "CN=..., serial 0A1B..., expires 2027-01-01": the leaf, for the log. */
void tls_server_context_describe(SSL_CTX *context, char *out, size_t out_size);

/* Why the TLS layer of bev failed, from OpenSSL's errors (drains them). */
void tls_server_describe_error(struct bufferevent *bev, char *out, size_t out_size);

/*
 * The certificates the client presented, as PEM: the leaf first, then the
 * rest of its chain in the order sent, at most
 * TLS_SERVER_PEER_CHAIN_MAX_CERTIFICATES certificates and
 * TLS_SERVER_PEER_CHAIN_MAX_BYTES (later ones are left off).  Not verified.
 * malloc'd, the caller frees; NULL when ssl is NULL, the client sent no
 * certificate or the handshake is not done.
 */
char *tls_server_peer_chain_pem(const SSL *ssl);

#endif
