/*
 * mtls_trust.h - the CAs and CRLs a client certificate is verified
 * against, and the verification itself (mtls_trust.c).
 */
#ifndef AUTH_MTLS_TRUST_H
#define AUTH_MTLS_TRUST_H

#include <openssl/x509.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* A presented chain longer than this is refused without verifying it. */
#define MTLS_CHAIN_MAX 8
/* Nor is PEM text longer than this (8 certificates with room to spare). */
#define MTLS_CHAIN_PEM_MAX ((size_t)64 * 1024)
/* ca_file and crl_file larger than this are refused. */
#define MTLS_TRUST_FILE_MAX ((long)16 * 1024 * 1024)

/* What identifies one version of a file, to notice a change cheaply. */
typedef struct mtls_file_id {
    int present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} mtls_file_id;

/* The trust in force: a ready X509_STORE, parsed once per file version. */
typedef struct mtls_trust {
    X509_STORE *store;
    size_t ca_count, crl_count;
    mtls_file_id ca_id, crl_id; /* the versions the store was built from */
} mtls_trust;

/* Why a chain was refused; each has a counter (reason label) and a message. */
typedef enum mtls_refusal {
    MTLS_REFUSED_MALFORMED = 0, /* not PEM certificates, too many, too big */
    MTLS_REFUSED_UNKNOWN_CA,
    MTLS_REFUSED_EXPIRED,
    MTLS_REFUSED_NOT_YET_VALID,
    MTLS_REFUSED_REVOKED,
    MTLS_REFUSED_PURPOSE,
    MTLS_REFUSED_CRL, /* no CRL for the issuer, or it expired */
    MTLS_REFUSED_OTHER,
    MTLS_REFUSED_COUNT
} mtls_refusal;

/* "expired", "unknown_ca", ...: the metric label of a refusal. */
const char *mtls_refusal_label(mtls_refusal refusal);

/* The identity of `path` now; id->present is 0 when it cannot be stat'ed. */
void mtls_file_id_of(const char *path, mtls_file_id *id);
int mtls_file_id_same(const mtls_file_id *a, const mtls_file_id *b);

/*
 * Builds a store from ca_file (at least one certificate) and crl_file (NULL:
 * no revocation check; else at least one CRL, and X509_V_FLAG_CRL_CHECK).
 * 0, or -1 with a message naming the option and file; *trust is untouched
 * on failure.
 */
int mtls_trust_load(const char *ca_file, const char *crl_file, mtls_trust *trust, char *err,
                    size_t err_size);
void mtls_trust_clear(mtls_trust *trust);

/*
 * Parses the presented chain (leaf first) and verifies it for TLS client
 * use at the current time, the rest of the chain as untrusted
 * intermediates.  SP_OK with *leaf_out (the caller frees it), or
 * SP_INVALID with *refusal and "client certificate refused: ..." in err.
 */
int mtls_trust_verify(const mtls_trust *trust, const char *chain_pem, X509 **leaf_out,
                      mtls_refusal *refusal, char *err, size_t err_size);

#endif
