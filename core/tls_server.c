/*
 * tls_server.c - OpenSSL server contexts for every TLS listener (REST and
 * gateway), and what a connection's client presented.
 *
 * A context is built in one go from the two configured files: the
 * certificate chain, then the private key, read by us (not by
 * SSL_CTX_use_PrivateKey_file) so that a missing file, an encrypted key
 * and a key that belongs to another certificate each get a message naming
 * the file, and no passphrase prompt ever reaches a terminal.  The same
 * function serves --check-config (config.c builds and drops a context) and
 * the listeners (which keep it).
 *
 * Protocol policy: TLS 1.2 minimum, and on TLS 1.2 only ECDHE with AEAD
 * ciphers (what RFC 9113 section 9.2 asks of HTTP/2, and fine for REST);
 * no compression, no renegotiation.
 *
 * Client certificates are requested with SSL_VERIFY_PEER and a verify
 * callback that accepts whatever arrives: the TLS layer only carries the
 * chain to the auth chain, whose provider judges it and can say why it
 * refuses (an OpenSSL alert would only say "bad certificate").  Session
 * resumption is off on such a context: a resumed session (a ticket) does
 * not carry the client's intermediates, and each connection's chain must
 * reach the provider as the client sent it.
 */
#include "tls_server.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_SERVER_CIPHERS_TLS12 "ECDHE+AESGCM:ECDHE+CHACHA20"

/* The oldest queued OpenSSL error as text, or `fallback`; clears the queue. */
static void tls_server_openssl_reason(char *out, size_t out_size, const char *fallback)
{
    unsigned long code = ERR_peek_last_error();
    if (code == 0)
        snprintf(out, out_size, "%s", fallback);
    else
        ERR_error_string_n(code, out, out_size);
    ERR_clear_error();
}

/* Refuses every passphrase prompt: an encrypted key is a configuration error here. */
static int tls_server_no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

/* A file we can open, or a message saying why not. */
static int tls_server_readable(const char *path, char *message, size_t message_size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(message, message_size, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(file);
    return 0;
}

static int tls_server_load_certificate(SSL_CTX *context, const char *path, char *message,
                                       size_t message_size)
{
    char reason[256];
    if (tls_server_readable(path, message, message_size) != 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(context, path) != 1) {
        tls_server_openssl_reason(reason, sizeof(reason), "no certificate found");
        snprintf(message, message_size, "%s is not a PEM certificate chain: %s", path, reason);
        return -1;
    }
    return 0;
}

static int tls_server_load_key(SSL_CTX *context, const char *key_path, const char *certificate_path,
                               char *message, size_t message_size)
{
    char reason[256];
    FILE *file = fopen(key_path, "r");
    if (file == NULL) {
        snprintf(message, message_size, "cannot read %s: %s", key_path, strerror(errno));
        return -1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, tls_server_no_passphrase, NULL);
    fclose(file);
    if (key == NULL) {
        tls_server_openssl_reason(reason, sizeof(reason), "no private key found");
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
        tls_server_openssl_reason(reason, sizeof(reason), "rejected");
        snprintf(message, message_size, "cannot use the key in %s: %s", key_path, reason);
    } else {
        rc = 0;
    }
    EVP_PKEY_free(key);
    return rc;
}

/* TLS 1.2+ with forward-secret AEAD ciphers only. */
static int tls_server_set_policy(SSL_CTX *context, const char *session_context)
{
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_default_passwd_cb(context, tls_server_no_passphrase);
    SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
    return SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 &&
                   SSL_CTX_set_cipher_list(context, TLS_SERVER_CIPHERS_TLS12) == 1 &&
                   SSL_CTX_set_session_id_context(context, (const unsigned char *)session_context,
                                                  (unsigned int)strlen(session_context)) == 1
               ? 0
               : -1;
}

/* Every presented chain goes through: the auth provider verifies it (see the file comment). */
static int tls_server_accept_any_certificate(int preverify_ok, X509_STORE_CTX *store)
{
    (void)preverify_ok;
    (void)store;
    return 1;
}

static void tls_server_request_client_certificates(SSL_CTX *context)
{
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, tls_server_accept_any_certificate);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(context, 0);
}

SSL_CTX *tls_server_context_new(const tls_server_settings *settings, tls_server_fault *fault,
                                char *message, size_t message_size)
{
    char reason[256];
    *fault = TLS_SERVER_FAULT_NONE;
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (context == NULL || tls_server_set_policy(context, settings->session_context) != 0) {
        tls_server_openssl_reason(reason, sizeof(reason), "out of memory");
        snprintf(message, message_size, "cannot set up TLS: %s", reason);
        *fault = TLS_SERVER_FAULT_CERTIFICATE;
        goto fail;
    }
    if (tls_server_load_certificate(context, settings->certificate_path, message, message_size) !=
        0) {
        *fault = TLS_SERVER_FAULT_CERTIFICATE;
        goto fail;
    }
    if (tls_server_load_key(context, settings->key_path, settings->certificate_path, message,
                            message_size) != 0) {
        *fault = TLS_SERVER_FAULT_KEY;
        goto fail;
    }
    if (settings->request_client_certificates)
        tls_server_request_client_certificates(context);
    return context;
fail:
    SSL_CTX_free(context);
    return NULL;
}

void tls_server_context_free(SSL_CTX *context)
{
    SSL_CTX_free(context);
}

void tls_server_context_describe(SSL_CTX *context, char *out, size_t out_size)
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

void tls_server_describe_error(struct bufferevent *bev, char *out, size_t out_size)
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

/* Appends one certificate unless that would pass the byte cap; 0 when appended. */
static int tls_server_append_pem(BIO *text, X509 *certificate)
{
    BIO *one = BIO_new(BIO_s_mem());
    char *data = NULL;
    int rc = -1;
    if (one != NULL && PEM_write_bio_X509(one, certificate) == 1) {
        long len = BIO_get_mem_data(one, &data);
        if (len > 0 && BIO_ctrl_pending(text) + (size_t)len <= TLS_SERVER_PEER_CHAIN_MAX_BYTES)
            rc = BIO_write(text, data, (int)len) == (int)len ? 0 : -1;
    }
    BIO_free(one);
    return rc;
}

char *tls_server_peer_chain_pem(const SSL *ssl)
{
    /* On a server, the peer chain leaves the leaf out; some builds list it anyway. */
    X509 *leaf = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    STACK_OF(X509) *rest = leaf ? SSL_get_peer_cert_chain(ssl) : NULL;
    BIO *text = leaf ? BIO_new(BIO_s_mem()) : NULL;
    char *pem = NULL, *data = NULL;
    if (text == NULL || tls_server_append_pem(text, leaf) != 0)
        goto done;
    int count = 1;
    for (int i = 0; i < sk_X509_num(rest) && count < TLS_SERVER_PEER_CHAIN_MAX_CERTIFICATES; i++) {
        X509 *certificate = sk_X509_value(rest, i);
        if (X509_cmp(certificate, leaf) == 0)
            continue;
        if (tls_server_append_pem(text, certificate) != 0)
            break;
        count++;
    }
    long len = BIO_get_mem_data(text, &data);
    pem = len > 0 ? strndup(data, (size_t)len) : NULL;
done:
    BIO_free(text);
    ERR_clear_error();
    return pem;
}
