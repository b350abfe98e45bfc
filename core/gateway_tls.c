/*
 * gateway_tls.c - the gateway's TLS: ALPN h2 on top of the shared server
 * context (tls_server.c), and TLS bufferevents for accepted sockets.
 *
 * The ALPN callback selects "h2" or fails the handshake with
 * no_application_protocol, logging the peer, which the accepting code
 * attaches to each SSL as its app data.  A client that sends no ALPN at
 * all is not seen by that callback; the gateway checks the negotiated
 * protocol once the handshake completes (gateway_tls_negotiated_h2).
 */
#include "gateway_tls.h"

#include <event2/bufferevent_ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define GATEWAY_TLS_SESSION_CONTEXT "sparkplane-gateway"

/* The client's ALPN list as "http/1.1,spdy/3" for a log line, printable characters only. */
static void gateway_tls_format_alpn(const unsigned char *in, unsigned int inlen, char *out,
                                    size_t out_size)
{
    size_t used = 0;
    unsigned int next_length_at = 0;
    for (unsigned int at = 0; at < inlen && used + 2 < out_size; at++) {
        if (at == next_length_at) {
            next_length_at = at + 1 + in[at];
            if (at > 0)
                out[used++] = ',';
        } else {
            out[used++] = in[at] >= 0x21 && in[at] <= 0x7e ? (char)in[at] : '?';
        }
    }
    out[used] = '\0';
}

static int gateway_tls_select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    /* `in` is the client's list: length-prefixed protocol names. */
    for (unsigned int at = 0; at < inlen;) {
        unsigned int len = in[at];
        if (at + 1 + len > inlen)
            break;
        if (len == 2 && memcmp(in + at + 1, "h2", 2) == 0) {
            *out = in + at + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        at += 1 + len;
    }
    char offered[128];
    const char *peer = SSL_get_app_data(ssl);
    gateway_tls_format_alpn(in, inlen, offered, sizeof(offered));
    log_msg(SP_LOG_INFO, "gateway", "%s: refused a TLS client that offers no ALPN h2 (offered: %s)",
            peer ? peer : "?", offered);
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* OpenSSL sends no_application_protocol */
}

SSL_CTX *gateway_tls_context_new(const char *certificate_path, const char *key_path,
                                 int request_client_certificates, tls_server_fault *fault,
                                 char *message, size_t message_size)
{
    tls_server_settings settings = {
        .certificate_path = certificate_path,
        .key_path = key_path,
        .session_context = GATEWAY_TLS_SESSION_CONTEXT,
        .request_client_certificates = request_client_certificates,
    };
    SSL_CTX *context = tls_server_context_new(&settings, fault, message, message_size);
    if (context != NULL)
        SSL_CTX_set_alpn_select_cb(context, gateway_tls_select_alpn, NULL);
    return context;
}

struct bufferevent *gateway_tls_accept(SSL_CTX *context, struct event_base *base,
                                       evutil_socket_t fd, const char *peer)
{
    SSL *ssl = SSL_new(context);
    if (ssl == NULL)
        return NULL;
    SSL_set_app_data(ssl, (void *)peer);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL; /* libevent freed the SSL (BEV_OPT_CLOSE_ON_FREE), not the fd */
    /* A client that closes without close_notify is ordinary (gRPC does it): EOF, not error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int gateway_tls_is_tls(struct bufferevent *bev)
{
    return bufferevent_openssl_get_ssl(bev) != NULL;
}

int gateway_tls_negotiated_h2(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    const unsigned char *protocol = NULL;
    unsigned int len = 0;
    if (ssl == NULL)
        return 0;
    SSL_get0_alpn_selected(ssl, &protocol, &len);
    return len == 2 && memcmp(protocol, "h2", 2) == 0;
}

char *gateway_tls_peer_chain_pem(struct bufferevent *bev)
{
    return tls_server_peer_chain_pem(bev ? bufferevent_openssl_get_ssl(bev) : NULL);
}
