/*
 * mtls_trust.c - verifying a client's certificate chain with OpenSSL.
 *
 * The host hands the plugin the chain the client presented on the TLS
 * handshake, unverified.  mtls_trust_load parses ca_file (and crl_file)
 * once into an X509_STORE, so authenticate() on the event loop only
 * parses the presented PEM and runs X509_verify_cert: no file access, no
 * network.  The presented chain is capped in bytes and certificates
 * before anything is parsed beyond the cap.
 *
 * Verification is OpenSSL's own: the leaf is the target, the rest of the
 * presented chain are untrusted intermediates, the chain must reach a
 * certificate of ca_file (each one is a trust anchor, so ca_file may hold
 * just the intermediate that issues client certificates), purpose "SSL client" (a certificate whose
 * extended key usage does not include clientAuth is refused), the current time, and with crl_file
 * X509_V_FLAG_CRL_CHECK (the leaf's issuer must have a current CRL in crl_file, and the leaf must
 * not be on it).  OpenSSL's reason becomes the message, reworded where its text would puzzle a user
 * ("unable to get local issuer certificate" is "issued by an unknown CA").
 */
#include "mtls_trust.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sparkplane/sparkplane.h>

static const char *const mtls_refusal_labels[MTLS_REFUSED_COUNT] = {
    [MTLS_REFUSED_MALFORMED] = "malformed",
    [MTLS_REFUSED_UNKNOWN_CA] = "unknown_ca",
    [MTLS_REFUSED_EXPIRED] = "expired",
    [MTLS_REFUSED_NOT_YET_VALID] = "not_yet_valid",
    [MTLS_REFUSED_REVOKED] = "revoked",
    [MTLS_REFUSED_PURPOSE] = "purpose",
    [MTLS_REFUSED_CRL] = "crl",
    [MTLS_REFUSED_OTHER] = "other"};

const char *mtls_refusal_label(mtls_refusal refusal)
{
    return refusal < MTLS_REFUSED_COUNT ? mtls_refusal_labels[refusal] : "other";
}

/* ---- files ---------------------------------------------------------------- */

void mtls_file_id_of(const char *path, mtls_file_id *id)
{
    struct stat st;

    memset(id, 0, sizeof(*id));
    if (path != NULL && stat(path, &st) == 0)
        *id = (mtls_file_id){1, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

int mtls_file_id_same(const mtls_file_id *a, const mtls_file_id *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* After a PEM_read_bio_* loop returned NULL: 1 when it just ran out of PEM blocks. */
static int mtls_pem_ended_cleanly(void)
{
    unsigned long e = ERR_peek_last_error();
    int clean =
        e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    ERR_clear_error();
    return clean;
}

/* Opens a trust file after checking it exists and is not absurdly large. */
static BIO *mtls_open_file(const char *option, const char *path, mtls_file_id *id, char *err,
                           size_t err_size)
{
    BIO *bio;

    mtls_file_id_of(path, id);
    if (!id->present || (bio = BIO_new_file(path, "rb")) == NULL) {
        snprintf(err, err_size, "%s: cannot read %s: %s", option, path, strerror(errno));
        ERR_clear_error();
        return NULL;
    }
    if (id->size > MTLS_TRUST_FILE_MAX) {
        snprintf(err, err_size, "%s: %s is larger than %ld bytes", option, path,
                 MTLS_TRUST_FILE_MAX);
        BIO_free(bio);
        return NULL;
    }
    return bio;
}

/* Every certificate of ca_file into the store. */
static int mtls_load_cas(X509_STORE *store, const char *path, mtls_trust *trust, char *err,
                         size_t err_size)
{
    BIO *bio = mtls_open_file("ca_file", path, &trust->ca_id, err, err_size);
    X509 *cert;

    if (bio == NULL)
        return -1;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, cert); /* a duplicate is not an error worth failing on */
        X509_free(cert);
        trust->ca_count++;
    }
    BIO_free(bio);
    if (!mtls_pem_ended_cleanly()) {
        snprintf(err, err_size, "ca_file: %s: certificate %zu is not valid PEM/DER", path,
                 trust->ca_count + 1);
        return -1;
    }
    if (trust->ca_count == 0) {
        snprintf(err, err_size, "ca_file: %s holds no PEM certificate", path);
        return -1;
    }
    ERR_clear_error();
    return 0;
}

/* Every CRL of crl_file into the store. */
static int mtls_load_crls(X509_STORE *store, const char *path, mtls_trust *trust, char *err,
                          size_t err_size)
{
    BIO *bio = mtls_open_file("crl_file", path, &trust->crl_id, err, err_size);
    X509_CRL *crl;

    if (bio == NULL)
        return -1;
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        trust->crl_count++;
    }
    BIO_free(bio);
    if (!mtls_pem_ended_cleanly()) {
        snprintf(err, err_size, "crl_file: %s: CRL %zu is not valid PEM/DER", path,
                 trust->crl_count + 1);
        return -1;
    }
    if (trust->crl_count == 0) {
        snprintf(err, err_size, "crl_file: %s holds no PEM CRL (X509 CRL)", path);
        return -1;
    }
    ERR_clear_error();
    return 0;
}

int mtls_trust_load(const char *ca_file, const char *crl_file, mtls_trust *trust, char *err,
                    size_t err_size)
{
    mtls_trust loaded = {0};

    if ((loaded.store = X509_STORE_new()) == NULL) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    if (mtls_load_cas(loaded.store, ca_file, &loaded, err, err_size) != 0 ||
        (crl_file != NULL && mtls_load_crls(loaded.store, crl_file, &loaded, err, err_size) != 0)) {
        X509_STORE_free(loaded.store);
        return -1;
    }
    /* Every certificate of ca_file is an anchor, an issuing intermediate included. */
    X509_STORE_set_flags(loaded.store, X509_V_FLAG_PARTIAL_CHAIN);
    if (crl_file != NULL)
        X509_STORE_set_flags(loaded.store, X509_V_FLAG_CRL_CHECK);
    *trust = loaded;
    return 0;
}

void mtls_trust_clear(mtls_trust *trust)
{
    X509_STORE_free(trust->store);
    memset(trust, 0, sizeof(*trust));
}

/* ---- the presented chain ------------------------------------------------- */

/* Leaf first; NULL with the refusal message in err when it is not a usable chain. */
static STACK_OF(X509) * mtls_chain_parse(const char *pem, char *err, size_t err_size)
{
    size_t len = strlen(pem);
    STACK_OF(X509) *chain = NULL;
    BIO *bio = NULL;
    X509 *cert;

    if (len > MTLS_CHAIN_PEM_MAX) {
        snprintf(err, err_size, "client certificate refused: the chain is larger than %zu bytes",
                 MTLS_CHAIN_PEM_MAX);
        return NULL;
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL || (chain = sk_X509_new_null()) == NULL)
        goto fail;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_num(chain) == MTLS_CHAIN_MAX || !sk_X509_push(chain, cert)) {
            X509_free(cert);
            snprintf(err, err_size,
                     "client certificate refused: more than %d certificates in the chain",
                     MTLS_CHAIN_MAX);
            goto fail_quiet;
        }
    }
    if (!mtls_pem_ended_cleanly() || sk_X509_num(chain) == 0)
        goto fail;
    BIO_free(bio);
    return chain;
fail:
    snprintf(err, err_size, "client certificate refused: not a PEM certificate chain");
fail_quiet:
    ERR_clear_error();
    BIO_free(bio);
    sk_X509_pop_free(chain, X509_free);
    return NULL;
}

/* OpenSSL's verify error as a refusal and the words a user is shown. */
static mtls_refusal mtls_refusal_of(int code, const char **words)
{
    *words = X509_verify_cert_error_string(code);
    switch (code) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        *words = "issued by an unknown CA";
        return MTLS_REFUSED_UNKNOWN_CA;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return MTLS_REFUSED_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return MTLS_REFUSED_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
        return MTLS_REFUSED_REVOKED;
    case X509_V_ERR_INVALID_PURPOSE:
        *words = "not a TLS client certificate (extended key usage lacks clientAuth)";
        return MTLS_REFUSED_PURPOSE;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        *words = "no CRL from its issuer in crl_file";
        return MTLS_REFUSED_CRL;
    case X509_V_ERR_CRL_HAS_EXPIRED:
        *words = "the issuer's CRL in crl_file has expired";
        return MTLS_REFUSED_CRL;
    default:
        return MTLS_REFUSED_OTHER;
    }
}

int mtls_trust_verify(const mtls_trust *trust, const char *chain_pem, X509 **leaf_out,
                      mtls_refusal *refusal, char *err, size_t err_size)
{
    STACK_OF(X509) *chain = mtls_chain_parse(chain_pem, err, err_size);
    X509_STORE_CTX *ctx = NULL;
    X509 *leaf;
    const char *words;
    int code, depth;

    *leaf_out = NULL;
    *refusal = MTLS_REFUSED_MALFORMED;
    if (chain == NULL)
        return SP_INVALID;
    leaf = sk_X509_shift(chain); /* the rest are the untrusted intermediates */
    if ((ctx = X509_STORE_CTX_new()) == NULL ||
        !X509_STORE_CTX_init(ctx, trust->store, leaf, chain) ||
        !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT)) {
        *refusal = MTLS_REFUSED_OTHER;
        snprintf(err, err_size, "client certificate refused: cannot set up verification");
        goto fail;
    }
    if (X509_verify_cert(ctx) == 1) {
        X509_STORE_CTX_free(ctx);
        sk_X509_pop_free(chain, X509_free);
        *leaf_out = leaf;
        return SP_OK;
    }
    code = X509_STORE_CTX_get_error(ctx);
    depth = X509_STORE_CTX_get_error_depth(ctx);
    *refusal = mtls_refusal_of(code, &words);
    if (depth > 0 && *refusal != MTLS_REFUSED_UNKNOWN_CA)
        snprintf(err, err_size, "client certificate refused: %s (the CA certificate at depth %d)",
                 words, depth);
    else
        snprintf(err, err_size, "client certificate refused: %s", words);
fail:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return SP_INVALID;
}
