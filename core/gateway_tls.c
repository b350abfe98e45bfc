/*
 * gateway_tls.c - the gateway's OpenSSL server context and TLS
 * bufferevents.
 *
 * A context is built in one go from the two configured files: the
 * certificate chain, then the private key, read by us (not by
 * SSL_CTX_use_PrivateKey_file) so that a missing file, an encrypted key
 * and a key that belongs to another certificate each get a message naming
 * the file, and no passphrase prompt ever reaches a terminal.  The same
 * function serves --check-config (config.c builds and drops a context) and
 * the gateway (which keeps it).
 *
 * Protocol policy: TLS 1.2 minimum, and on TLS 1.2 only ECDHE with AEAD
 * ciphers (what RFC 9113 section 9.2 asks of HTTP/2); no compression, no
 * renegotiation.  The ALPN callback selects "h2" or fails the handshake
 * with no_application_protocol, logging the peer, which the accepting
 * code attaches to each SSL as its app data.  A client that sends no ALPN
 * at all is not seen by that callback; the gateway checks the negotiated
 * protocol once the handshake completes (gateway_tls_negotiated_h2).
 */
#include "gateway_tls.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define GATEWAY_TLS_CIPHERS_TLS12   "ECDHE+AESGCM:ECDHE+CHACHA20"
#define GATEWAY_TLS_SESSION_CONTEXT "sparkplane-gateway"

/* The oldest queued OpenSSL error as text, or `fallback`; clears the queue. */
static void gateway_tls_openssl_reason(char *out, size_t out_size, const char *fallback)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0)
        snprintf(out, out_size, "%s", fallback);
    else
        ERR_error_string_n(code, out, out_size);
    ERR_clear_error();
}

/* Refuses every passphrase prompt: an encrypted key is a configuration error here. */
static int gateway_tls_no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

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

/* A file we can open, or a message saying why not. */
static int gateway_tls_readable(const char *path, char *message, size_t message_size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(message, message_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(file);
    return 0;
}

static int gateway_tls_load_certificate(SSL_CTX *context, const char *path, char *message,
                                        size_t message_size)
{
    char reason[256];
    if (gateway_tls_readable(path, message, message_size) != 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(context, path) != 1) {
        gateway_tls_openssl_reason(reason, sizeof(reason), "no certificate found");
        snprintf(message, message_size, "%s is not a PEM certificate chain: %s", path, reason);
        return -1;
    }
    return 0;
}

static int gateway_tls_load_key(SSL_CTX *context, const char *key_path,
                                const char *certificate_path, char *message, size_t message_size)
{
    char reason[256];
    FILE *file = fopen(key_path, "r");
    if (file == NULL) {
        snprintf(message, message_size, "cannot read %s: %s", key_path, strerror(errno));
        return -1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, gateway_tls_no_passphrase, NULL);
    fclose(file);
    if (key == NULL) {
        gateway_tls_openssl_reason(reason, sizeof(reason), "no private key found");
        snprintf(message, message_size,
                 "%s is not an unencrypted PEM private key (passphrases are not supported): %s",
                 key_path, reason);
        return -1;
    }
    int rc = -1;
    if (X509_check_private_key(SSL_CTX_get0_certificate(context), key) != 1) {
        ERR_clear_error();
        snprintf(message, message_size, "the key in %s does not match the certificate in %s",
                 key_path, certificate_path);
    } else if (SSL_CTX_use_PrivateKey(context, key) != 1) {
        gateway_tls_openssl_reason(reason, sizeof(reason), "rejected");
        snprintf(message, message_size, "cannot use the key in %s: %s", key_path, reason);
    } else {
        rc = 0;
    }
    EVP_PKEY_free(key);
    return rc;
}

/* TLS 1.2+, HTTP/2-acceptable ciphers, ALPN h2. */
static int gateway_tls_set_policy(SSL_CTX *context)
{
    static const unsigned char session_context[] = GATEWAY_TLS_SESSION_CONTEXT;
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_default_passwd_cb(context, gateway_tls_no_passphrase);
    SSL_CTX_set_alpn_select_cb(context, gateway_tls_select_alpn, NULL);
    SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
    return SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 &&
                   SSL_CTX_set_cipher_list(context, GATEWAY_TLS_CIPHERS_TLS12) == 1 &&
                   SSL_CTX_set_session_id_context(context, session_context,
                                                  sizeof(session_context) - 1) == 1
               ? 0
               : -1;
}

SSL_CTX *gateway_tls_context_new(const char *certificate_path, const char *key_path,
                                 gateway_tls_fault *fault, char *message, size_t message_size)
{
    char reason[256];
    *fault = GATEWAY_TLS_FAULT_NONE;
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (context == NULL || gateway_tls_set_policy(context) != 0) {
        gateway_tls_openssl_reason(reason, sizeof(reason), "out of memory");
        snprintf(message, message_size, "cannot set up TLS: %s", reason);
        *fault = GATEWAY_TLS_FAULT_CERTIFICATE;
        goto fail;
    }
    if (gateway_tls_load_certificate(context, certificate_path, message, message_size) != 0) {
        *fault = GATEWAY_TLS_FAULT_CERTIFICATE;
        goto fail;
    }
    if (gateway_tls_load_key(context, key_path, certificate_path, message, message_size) != 0) {
        *fault = GATEWAY_TLS_FAULT_KEY;
        goto fail;
    }
    return context;
fail:
    SSL_CTX_free(context);
    return NULL;
}

void gateway_tls_context_free(SSL_CTX *context)
{
    SSL_CTX_free(context);
}

void gateway_tls_context_describe(SSL_CTX *context, char *out, size_t out_size)
{
    X509 *leaf = context ? SSL_CTX_get0_certificate(context) : NULL;
    BIO *text = BIO_new(BIO_s_mem());
    char *data = NULL;
    if (leaf == NULL || text == NULL) {
        snprintf(out, out_size, "no certificate");
        BIO_free(text);
        return;
    }
    X509_NAME_print_ex(text, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char *serial_hex = serial ? BN_bn2hex(serial) : NULL;
    BIO_printf(text, ", serial %s, expires ", serial_hex ? serial_hex : "?");
    ASN1_TIME_print(text, X509_get0_notAfter(leaf));
    long len = BIO_get_mem_data(text, &data);
    snprintf(out, out_size, "%.*s", (int)len, data ? data : "");
    OPENSSL_free(serial_hex);
    BN_free(serial);
    BIO_free(text);
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

void gateway_tls_describe_error(struct bufferevent *bev, char *out, size_t out_size)
{
    /* libevent queues SSL_get_error()'s small code, then OpenSSL's errors, and hands them
     * back newest first: keep the oldest real OpenSSL error (it has a library). */
    unsigned long code = 0, next;
    while ((next = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(next) != 0)
            code = next;
    }
    if (code == 0)
        snprintf(out, out_size, "connection closed during TLS");
    else
        ERR_error_string_n(code, out, out_size);
}

char *gateway_tls_peer_certificate_pem(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *certificate = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    BIO *text = certificate ? BIO_new(BIO_s_mem()) : NULL;
    char *pem = NULL, *data = NULL;
    if (text != NULL && PEM_write_bio_X509(text, certificate) == 1) {
        long len = BIO_get_mem_data(text, &data);
        pem = len > 0 ? strndup(data, (size_t)len) : NULL;
    }
    BIO_free(text);
    X509_free(certificate);
    return pem;
}
