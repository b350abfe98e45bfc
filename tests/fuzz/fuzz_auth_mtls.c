/*
 * fuzz_auth_mtls.c - libFuzzer target for auth_mtls's parsers
 * (plugins/auth_mtls: mtls_trust.c, mtls_identity.c): the certificate
 * chain a client presents, and the plugin's map and identity options.
 *
 * The first byte picks the parser, the rest is its input:
 *   0  a presented chain (PEM, leaf first), verified against a fixed CA,
 *      then named (identity san_uri, san_dns, cn) and mapped;
 *   1  map entries, one per line, then principals for a few names;
 *   2  identity items, one per line.
 * Besides memory errors it checks: a refusal has a message and a known
 * reason; an accepted chain has a leaf; a principal's fields stay
 * NUL-terminated within their arrays.
 */
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtls_identity.h"
#include "mtls_trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A P-256 CA made with openssl for this target only (the corpus holds a certificate it issued). */
static const char fuzz_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBezCCASGgAwIBAgIUMLyrueBvQWfIbPBpjqSjwlXiv/gwCgYIKoZIzj0EAwIw\n"
    "EjEQMA4GA1UEAwwHZnV6eiBDQTAgFw0yNjExMjQwMDA2MzhaGA8yMTI2MTAzMTAw\n"
    "MDYzOFowEjEQMA4GA1UEAwwHZnV6eiBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
    "A0IABNVFvccjgLwdyEh1+tOVSZLt9DnVb+XFT/d2ictsrLElmU1qT/R+aJrc8wAW\n"
    "RLjerKX4RtnoE43920s9MMRJChmjUzBRMB0GA1UdDgQWBBRuvGcXfpOw7hqr7+bK\n"
    "Y8yOClVm3zAfBgNVHSMEGDAWgBRuvGcXfpOw7hqr7+bKY8yOClVm3zAPBgNVHRMB\n"
    "Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCICcEcStxTWCGhQLT7l9XjOCl6nAn\n"
    "P1WWcI0ZB9qx5gGoAiEApGRIqlHEWjzwDtH5HWiNZy1DYRmfI8b1InBiZjFWopc=\n"
    "-----END CERTIFICATE-----\n";

static const char *const fuzz_map_entries[] = {
    "ci-runner.analytics.internal=analytics:member", "*.platform.internal=*:admin",
    "spiffe://corp/analytics/ci=analytics,ml:viewer", NULL};

static mtls_trust fuzz_trust;
static mtls_map fuzz_map;
static mtls_identity_order fuzz_order;

static void fuzz_setup(void)
{
    static int ready;
    char err[512], path[] = "/tmp/fuzz-auth-mtls-ca-XXXXXX";
    if (ready)
        return;
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, fuzz_ca_pem, strlen(fuzz_ca_pem)) != (ssize_t)strlen(fuzz_ca_pem))
        abort();
    close(fd);
    if (mtls_trust_load(path, NULL, &fuzz_trust, err, sizeof(err)) != 0)
        abort();
    unlink(path);
    for (size_t i = 0; fuzz_map_entries[i] != NULL; i++)
        if (mtls_map_add(&fuzz_map, fuzz_map_entries[i], i, err, sizeof(err)) != 0)
            abort();
    const char *order[] = {"san_uri", "san_dns", "cn"};
    for (size_t i = 0; i < 3; i++)
        if (mtls_identity_order_add(&fuzz_order, order[i], i, err, sizeof(err)) != 0)
            abort();
    ready = 1;
}

static void fuzz_check_principal(const sp_principal *p)
{
    if (memchr(p->subject, '\0', sizeof(p->subject)) == NULL ||
        memchr(p->role, '\0', sizeof(p->role)) == NULL || p->team_count > SP_PRINCIPAL_MAX_TEAMS)
        abort();
    for (uint32_t i = 0; i < p->team_count; i++)
        if (memchr(p->teams[i], '\0', sizeof(p->teams[i])) == NULL)
            abort();
}

static void fuzz_chain(const char *pem)
{
    X509 *leaf = NULL;
    mtls_refusal refusal = MTLS_REFUSED_COUNT;
    char err[512] = "", name[SP_PRINCIPAL_NAME_MAX];
    mtls_name_kind kind;
    if (mtls_trust_verify(&fuzz_trust, pem, &leaf, &refusal, err, sizeof(err)) != SP_OK) {
        if (err[0] == '\0' || refusal >= MTLS_REFUSED_COUNT || leaf != NULL)
            abort();
        return;
    }
    if (leaf == NULL)
        abort();
    if (mtls_identity_of(leaf, &fuzz_order, name, sizeof(name), &kind) == 1) {
        sp_principal principal = {.size = sizeof(principal)};
        if (memchr(name, '\0', sizeof(name)) == NULL)
            abort();
        if (mtls_map_principal(&fuzz_map, name, &principal))
            fuzz_check_principal(&principal);
    }
    X509_free(leaf);
}

/* Calls add() for every line of text (a NUL-terminated copy). */
static void fuzz_lines(char *text, int (*add)(void *, const char *, size_t, char *, size_t),
                       void *target)
{
    char err[512];
    size_t index = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"), index++) {
        err[0] = '\0';
        if (add(target, line, index, err, sizeof(err)) != 0 && err[0] == '\0')
            abort();
    }
}

static int fuzz_map_add(void *map, const char *entry, size_t index, char *err, size_t err_size)
{
    return mtls_map_add(map, entry, index, err, err_size);
}

static int fuzz_order_add(void *order, const char *item, size_t index, char *err, size_t err_size)
{
    return mtls_identity_order_add(order, item, index, err, err_size);
}

static void fuzz_map_entries_from(char *text)
{
    static const char *const names[] = {
        "ci-runner.analytics.internal", "a.platform.internal", "platform.internal", "", "*", NULL};
    mtls_map map = {0};
    fuzz_lines(text, fuzz_map_add, &map);
    for (size_t i = 0; names[i] != NULL; i++) {
        sp_principal principal = {.size = sizeof(principal)};
        if (mtls_map_principal(&map, names[i], &principal))
            fuzz_check_principal(&principal);
    }
    mtls_map_clear(&map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size == 0)
        return 0;
    char *text = strndup((const char *)data + 1, size - 1);
    if (text == NULL)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_chain(text);
        break;
    case 1:
        fuzz_map_entries_from(text);
        break;
    default: {
        mtls_identity_order order = {0};
        fuzz_lines(text, fuzz_order_add, &order);
        char described[256];
        mtls_identity_order_text(&order, described, sizeof(described));
        break;
    }
    }
    free(text);
    return 0;
}
