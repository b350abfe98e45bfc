/*
 * test_auth_mtls.c - the built auth_mtls.so, loaded into the mock host.
 *
 * The PKI is made here with the OpenSSL C API (EC P-256 keys): a root CA
 * (the only certificate in ca_file), an intermediate CA under it that
 * issues the client certificates (presented as leaf + intermediate, as a
 * TLS client would), another root nobody trusts, and CRLs signed by the
 * intermediate.  Certificates are made per test with the dates, names and
 * extended key usage the test is about.
 *
 * The mock host splits list options at commas, but a map entry holds
 * commas ("name=team-a,team-b:role"), so the fixture gives the plugin a
 * copy of the host table whose option_list_* answer "map" from an array.
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH TEST_BUILDDIR "/plugins/auth_mtls/.libs/auth_mtls.so"
#define DECISIONS   "sparkplane_auth_mtls_decisions_total"
#define REFUSALS    "sparkplane_auth_mtls_refusals_total"
#define RELOADS     "sparkplane_auth_mtls_reloads_total"
#define CACHE       "sparkplane_auth_mtls_cache_lookups_total"
#define HOUR        3600L

/* ---- the PKI --------------------------------------------------------------- */

typedef struct test_ca {
    EVP_PKEY *key;
    X509 *cert;
} test_ca;

static test_ca root, intermediate, other_root;
static EVP_PKEY *leaf_key;
static long next_serial = 100;

/* What a test certificate looks like. */
typedef struct cert_spec {
    const char *cn;
    const char *san;            /* "DNS:a.example,URI:spiffe://x" or NULL */
    const char *eku;            /* "clientAuth" when NULL; "" for none */
    long not_before, not_after; /* seconds from now; 0, 0 means -1h, +1h */
    long serial;                /* 0: the next one */
    int ca;
} cert_spec;

static void cert_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ext);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/* A certificate for `key` signed by `issuer` (NULL: self-signed with key). */
static X509 *make_cert(const cert_spec *spec, EVP_PKEY *key, const test_ca *issuer)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    long not_before = spec->not_before || spec->not_after ? spec->not_before : -HOUR;
    long not_after = spec->not_before || spec->not_after ? spec->not_after : HOUR;

    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), spec->serial ? spec->serial : next_serial++);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"sparkplane test",
                               -1, -1, 0);
    if (spec->cn != NULL)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)spec->cn, -1,
                                   -1, 0);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer->cert) : name);
    X509_NAME_free(name);
    X509_gmtime_adj(X509_getm_notBefore(cert), not_before);
    X509_gmtime_adj(X509_getm_notAfter(cert), not_after);
    X509_set_pubkey(cert, key);
    if (spec->ca) {
        cert_add_ext(cert, issuer ? issuer->cert : cert, NID_basic_constraints, "critical,CA:TRUE");
        cert_add_ext(cert, issuer ? issuer->cert : cert, NID_key_usage,
                     "critical,keyCertSign,cRLSign");
    } else {
        cert_add_ext(cert, issuer->cert, NID_basic_constraints, "CA:FALSE");
        if (spec->eku == NULL || spec->eku[0] != '\0')
            cert_add_ext(cert, issuer->cert, NID_ext_key_usage,
                         spec->eku ? spec->eku : "clientAuth");
        if (spec->san != NULL)
            cert_add_ext(cert, issuer->cert, NID_subject_alt_name, spec->san);
    }
    CU_ASSERT_FATAL(X509_sign(cert, issuer ? issuer->key : key, EVP_sha256()) > 0);
    return cert;
}

static void make_ca(test_ca *ca, const char *cn, const test_ca *issuer)
{
    cert_spec spec = {.cn = cn, .ca = 1, .not_before = -HOUR, .not_after = 24 * HOUR};
    ca->key = EVP_EC_gen("P-256");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ca->key);
    ca->cert = make_cert(&spec, ca->key, issuer);
}

static int pki_setup(void)
{
    make_ca(&root, "Test Root CA", NULL);
    make_ca(&intermediate, "Test Client CA", &root);
    make_ca(&other_root, "Someone Else's CA", NULL);
    leaf_key = EVP_EC_gen("P-256");
    return 0;
}

/* A CRL by `ca` revoking `serials` (0-terminated); next update in `next_update` s. */
static X509_CRL *make_crl(const test_ca *ca, const long *serials, long next_update)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_new();

    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert));
    X509_gmtime_adj(t, -HOUR);
    X509_CRL_set1_lastUpdate(crl, t);
    X509_gmtime_adj(t, next_update);
    X509_CRL_set1_nextUpdate(crl, t);
    for (size_t i = 0; serials != NULL && serials[i] != 0; i++) {
        X509_REVOKED *revoked = X509_REVOKED_new();
        ASN1_INTEGER *serial = ASN1_INTEGER_new();
        ASN1_INTEGER_set(serial, serials[i]);
        X509_REVOKED_set_serialNumber(revoked, serial);
        X509_gmtime_adj(t, -60);
        X509_REVOKED_set_revocationDate(revoked, t);
        X509_CRL_add0_revoked(crl, revoked);
        ASN1_INTEGER_free(serial);
    }
    ASN1_TIME_free(t);
    X509_CRL_sort(crl);
    CU_ASSERT_FATAL(X509_CRL_sign(crl, ca->key, EVP_sha256()) > 0);
    return crl;
}

/* PEM text of certificates (NULL-terminated); the caller frees it. */
static char *pem_of(X509 *const *certs)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *text;
    long len;
    for (size_t i = 0; certs[i] != NULL; i++)
        PEM_write_bio_X509(bio, certs[i]);
    len = BIO_get_mem_data(bio, &data);
    text = strndup(data, (size_t)len);
    BIO_free(bio);
    return text;
}

/* The chain a client presents: the new leaf, then the intermediate. Frees the leaf. */
static char *client_chain(const cert_spec *spec)
{
    X509 *leaf = make_cert(spec, leaf_key, &intermediate);
    X509 *certs[] = {leaf, intermediate.cert, NULL};
    char *pem = pem_of(certs);
    X509_free(leaf);
    return pem;
}

static void write_text(const char *path, const char *text)
{
    char tmp[256];
    FILE *file;
    /* a rename gives a new inode, so the reload check sees a change */
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    file = fopen(tmp, "w");
    CU_ASSERT_FATAL(file != NULL);
    fputs(text, file);
    fclose(file);
    CU_ASSERT_FATAL(rename(tmp, path) == 0);
}

static void write_crls(const char *path, X509_CRL *const *crls)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *text;
    long len;
    for (size_t i = 0; crls[i] != NULL; i++) {
        PEM_write_bio_X509_CRL(bio, crls[i]);
        X509_CRL_free(crls[i]);
    }
    len = BIO_get_mem_data(bio, &data);
    text = strndup(data, (size_t)len);
    BIO_free(bio);
    write_text(path, text);
    free(text);
}

/* ---- the fixture ------------------------------------------------------------ */

static sp_host_api list_api;
static const sp_host_api *real_api;
static const char *const *map_items;
static size_t map_count;

static size_t map_list_count(sp_plugin_context *ctx, const char *key)
{
    return strcmp(key, "map") == 0 ? map_count : real_api->option_list_count(ctx, key);
}

static const char *map_list_item(sp_plugin_context *ctx, const char *key, size_t index)
{
    if (strcmp(key, "map") != 0)
        return real_api->option_list_item(ctx, key, index);
    return index < map_count ? map_items[index] : NULL;
}

static const char *const default_map[] = {
    "*.batch.example.com=data-eng:member",
    "etl.batch.example.com=ml,data-eng:viewer",
    "alice=analytics,ml:viewer",
    "spiffe://example.org/svc/etl=platform:admin",
    "ops=*:admin",
};

typedef struct fixture {
    char dir[64];
    char ca_path[128], crl_path[128];
    mock_host *host;
    const sp_auth_ops *ops;
    void *provider;
    char err[512];
} fixture;

static void fixture_set_map(const char *const *items, size_t count)
{
    map_items = items;
    map_count = count;
}

static void fixture_open(fixture *f)
{
    X509 *cas[] = {root.cert, NULL};
    char *pem = pem_of(cas);
    sp_plugin_context *ctx;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_auth_mtls.XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
    snprintf(f->ca_path, sizeof(f->ca_path), "%s/ca.pem", f->dir);
    snprintf(f->crl_path, sizeof(f->crl_path), "%s/crl.pem", f->dir);
    write_text(f->ca_path, pem);
    free(pem);
    f->host = mock_host_new();
    CU_ASSERT_FATAL(f->host != NULL);
    CU_ASSERT_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)) == 0);
    ctx = mock_host_context(f->host);
    real_api = ctx->host;
    list_api = *ctx->host;
    list_api.option_list_count = map_list_count;
    list_api.option_list_item = map_list_item;
    ctx->host = &list_api;
    fixture_set_map(default_map, sizeof(default_map) / sizeof(default_map[0]));
    mock_host_set_option(f->host, "ca_file", f->ca_path);
}

static int fixture_init(fixture *f)
{
    int rc = mock_host_init(f->host, f->err, sizeof(f->err));
    if (rc == SP_OK)
        f->ops = mock_host_provider(f->host, SP_KIND_AUTH, "auth_mtls", &f->provider);
    return rc;
}

static void fixture_close(fixture *f)
{
    mock_host_free(f->host);
    unlink(f->ca_path);
    unlink(f->crl_path);
    rmdir(f->dir);
}

static int fixture_auth(fixture *f, const char *chain, const char *authorization,
                        sp_principal *principal)
{
    sp_auth_request request = {.size = sizeof(request),
                               .transport = SP_AUTH_REST,
                               .authorization = authorization,
                               .peer_address = "127.0.0.1:1",
                               .client_cert_pem = chain};
    memset(principal, 0, sizeof(*principal));
    principal->size = sizeof(*principal);
    f->err[0] = '\0';
    return f->ops->authenticate(f->provider, &request, principal, f->err, sizeof(f->err));
}

/* The chain (freed here) is refused with exactly `message`. */
static void expect_refused(fixture *f, char *chain, const char *message)
{
    sp_principal p;
    CU_ASSERT_EQUAL(fixture_auth(f, chain, NULL, &p), SP_INVALID);
    if (strcmp(f->err, message) != 0)
        fprintf(stderr, "\n  want \"%s\"\n  got  \"%s\"\n", message, f->err);
    CU_ASSERT_STRING_EQUAL(f->err, message);
    CU_ASSERT_STRING_EQUAL(p.subject, "");
    free(chain);
}

static void expect_principal(fixture *f, char *chain, const char *subject, const char *role,
                             const char *teams)
{
    sp_principal p;
    char got[512] = "";
    int rc = fixture_auth(f, chain, NULL, &p);
    if (rc != SP_OK)
        fprintf(stderr, "\n  refused: %s\n", f->err);
    CU_ASSERT_EQUAL(rc, SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, subject);
    CU_ASSERT_STRING_EQUAL(p.role, role);
    for (uint32_t i = 0; i < p.team_count; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "", p.teams[i]);
    CU_ASSERT_STRING_EQUAL(got, teams);
    free(chain);
}

/* ---- the tests ------------------------------------------------------------------ */

static void test_descriptor(void)
{
    fixture f;
    fixture_open(&f);
    const sp_plugin_descriptor *d = mock_host_descriptor(f.host);
    CU_ASSERT_EQUAL(d->kind, SP_KIND_AUTH);
    CU_ASSERT_STRING_EQUAL(d->name, "auth_mtls");
    for (const sp_option_spec *o = d->options; o->key != NULL; o++) {
        if (strcmp(o->key, "reload_interval") == 0)
            CU_ASSERT_STRING_EQUAL(o->default_value, "30s");
        if (strcmp(o->key, "identity") == 0)
            CU_ASSERT_STRING_EQUAL(o->default_value, "[san_dns, cn]");
        if (strcmp(o->key, "ca_file") == 0 || strcmp(o->key, "map") == 0)
            CU_ASSERT_TRUE(o->required);
    }
    fixture_close(&f);
}

static void test_defers_without_certificate(void)
{
    fixture f;
    sp_principal p;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, NULL, "Bearer abc", &p), SP_DEFER);
    CU_ASSERT_EQUAL(fixture_auth(&f, "", NULL, &p), SP_DEFER);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"defer\""), 2);
    fixture_close(&f);
}

static void test_mapped_certificates(void)
{
    fixture f;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    /* The wildcard and the exact entry both match: teams of both, highest role. */
    expect_principal(&f,
                     client_chain(&(cert_spec){.cn = "etl", .san = "DNS:etl.batch.example.com"}),
                     "etl.batch.example.com", "member", "data-eng,ml");
    /* Only the wildcard; case does not matter. */
    expect_principal(&f,
                     client_chain(&(cert_spec){.cn = "x", .san = "DNS:Nightly.Batch.Example.com"}),
                     "Nightly.Batch.Example.com", "member", "data-eng");
    /* No SAN: the CN names the caller. */
    expect_principal(&f, client_chain(&(cert_spec){.cn = "alice"}), "alice", "viewer",
                     "analytics,ml");
    expect_principal(&f, client_chain(&(cert_spec){.cn = "ops"}), "ops", "admin", "*");
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"ok\""), 4);
    fixture_close(&f);
}

static void test_wildcard_is_one_label(void)
{
    fixture f;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f, client_chain(&(cert_spec){.san = "DNS:a.b.batch.example.com"}),
                   "client certificate 'a.b.batch.example.com' is not mapped to a team "
                   "(auth_mtls map)");
    expect_refused(&f, client_chain(&(cert_spec){.san = "DNS:batch.example.com"}),
                   "client certificate 'batch.example.com' is not mapped to a team "
                   "(auth_mtls map)");
    fixture_close(&f);
}

static void test_identity_order(void)
{
    fixture f;
    fixture_open(&f);
    mock_host_set_option(f.host, "identity", "san_uri, san_email, cn");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_principal(&f,
                     client_chain(&(cert_spec){.cn = "alice",
                                               .san = "DNS:etl.batch.example.com,"
                                                      "URI:spiffe://example.org/svc/etl"}),
                     "spiffe://example.org/svc/etl", "admin", "platform");
    /* No URI, no email: the CN, though a DNS name is there (san_dns is not listed). */
    expect_principal(&f, client_chain(&(cert_spec){.cn = "alice", .san = "DNS:x.example.com"}),
                     "alice", "viewer", "analytics,ml");
    fixture_close(&f);

    fixture_open(&f);
    mock_host_set_option(f.host, "identity", "san_email");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f, client_chain(&(cert_spec){.cn = "alice"}),
                   "client certificate has no san_email to name the caller (auth_mtls identity)");
    fixture_close(&f);
}

static void test_unmapped(void)
{
    fixture f;
    sp_principal p;
    char *chain = client_chain(&(cert_spec){.cn = "mallory", .san = "DNS:mallory.example.com"});
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    /* With a token, the token decides. */
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, "Bearer 0123456789abcdef", &p), SP_DEFER);
    expect_refused(&f, chain,
                   "client certificate 'mallory.example.com' is not mapped to a team "
                   "(auth_mtls map)");
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"unmapped\""), 1);
    fixture_close(&f);
}

static void test_verification_refusals(void)
{
    fixture f;
    X509 *stranger;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(
        &f, client_chain(&(cert_spec){.cn = "alice", .not_before = -2 * HOUR, .not_after = -HOUR}),
        "client certificate refused: certificate has expired");
    expect_refused(
        &f, client_chain(&(cert_spec){.cn = "alice", .not_before = HOUR, .not_after = 2 * HOUR}),
        "client certificate refused: certificate is not yet valid");
    expect_refused(&f, client_chain(&(cert_spec){.cn = "alice", .eku = "serverAuth"}),
                   "client certificate refused: not a TLS client certificate (extended key "
                   "usage lacks clientAuth)");

    /* Another CA's certificate, and ours without the intermediate. */
    stranger = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &other_root);
    expect_refused(&f, pem_of((X509 *[]){stranger, NULL}),
                   "client certificate refused: issued by an unknown CA");
    X509_free(stranger);
    stranger = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &intermediate);
    expect_refused(&f, pem_of((X509 *[]){stranger, NULL}),
                   "client certificate refused: issued by an unknown CA");
    X509_free(stranger);
    /* A self-signed "client certificate" naming a mapped admin. */
    stranger = make_cert(&(cert_spec){.cn = "ops", .ca = 1}, leaf_key, NULL);
    expect_refused(&f, pem_of((X509 *[]){stranger, NULL}),
                   "client certificate refused: issued by an unknown CA");
    X509_free(stranger);

    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"expired\""), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"not_yet_valid\""), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"purpose\""), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"unknown_ca\""), 3);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"invalid\""), 6);
    fixture_close(&f);
}

static void test_malformed_chains(void)
{
    fixture f;
    sp_principal p;
    char *good = client_chain(&(cert_spec){.cn = "alice"}), *chain;
    size_t good_len = strlen(good);
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    expect_refused(&f, strdup("hello"), "client certificate refused: not a PEM certificate chain");
    chain = strdup(good);
    memcpy(strstr(chain, "\n") + 10, "!!!!", 4); /* break the base64 of the leaf */
    expect_refused(&f, chain, "client certificate refused: not a PEM certificate chain");

    /* Leaf and intermediate, then the intermediate six times more: eight certificates. */
    chain = malloc(good_len * 9);
    strcpy(chain, good);
    for (int i = 0; i < 6; i++)
        strcat(chain, strstr(good, "-----END CERTIFICATE-----\n") + 26);
    expect_principal(&f, strdup(chain), "alice", "viewer", "analytics,ml"); /* eight pass */
    strcat(chain, strstr(good, "-----END CERTIFICATE-----\n") + 26);        /* a ninth */
    expect_refused(&f, chain, "client certificate refused: more than 8 certificates in the chain");

    chain = malloc(70 * 1024);
    memset(chain, 'A', 70 * 1024 - 1);
    chain[70 * 1024 - 1] = '\0';
    memcpy(chain, good, good_len);
    expect_refused(&f, chain, "client certificate refused: the chain is larger than 65536 bytes");

    CU_ASSERT_EQUAL(fixture_auth(&f, good, NULL, &p), SP_OK); /* nothing stuck in the state */
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"malformed\""), 4);
    free(good);
    fixture_close(&f);
}

static void test_unprintable_name(void)
{
    fixture f;
    X509 *leaf = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &intermediate);
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *name = GENERAL_NAME_new();
    ASN1_IA5STRING *text = ASN1_IA5STRING_new();

    /* "ops\0.evil.example": must not be read as "ops". */
    ASN1_STRING_set(text, "ops\0.evil.example", 17);
    GENERAL_NAME_set0_value(name, GEN_DNS, text);
    sk_GENERAL_NAME_push(names, name);
    X509_add1_ext_i2d(leaf, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(names);
    X509_sign(leaf, intermediate.key, EVP_sha256());
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f, pem_of((X509 *[]){leaf, intermediate.cert, NULL}),
                   "client certificate refused: its san_dns is not a printable name");
    X509_free(leaf);
    fixture_close(&f);
}

static void test_revocation_and_crl_reload(void)
{
    fixture f;
    sp_principal p;
    char *revoked = client_chain(&(cert_spec){.cn = "alice", .serial = 7001});
    char *good = client_chain(&(cert_spec){.cn = "alice"});

    fixture_open(&f);
    write_crls(f.crl_path, (X509_CRL *[]){make_crl(&intermediate, NULL, HOUR), NULL});
    mock_host_set_option(f.host, "crl_file", f.crl_path);
    mock_host_set_option(f.host, "reload_interval", "1s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL(mock_host_timer_count(f.host), 1);
    CU_ASSERT_EQUAL(fixture_auth(&f, revoked, NULL, &p), SP_OK);

    /* Unchanged files: a timer tick reloads nothing. */
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, RELOADS, "result=\"ok\""), 0);

    write_crls(f.crl_path,
               (X509_CRL *[]){make_crl(&intermediate, (const long[]){7001, 0}, HOUR), NULL});
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, RELOADS, "result=\"ok\""), 1);
    expect_refused(&f, strdup(revoked), "client certificate refused: certificate revoked");
    CU_ASSERT_EQUAL(fixture_auth(&f, good, NULL, &p), SP_OK);

    /* A broken CRL file is logged once and the CRL in force stays. */
    write_text(f.crl_path, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
    mock_host_fire_timers(f.host);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, RELOADS, "result=\"error\""), 1);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_ERROR, "crl_file"));
    expect_refused(&f, strdup(revoked), "client certificate refused: certificate revoked");
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"revoked\""), 2);
    free(revoked);
    free(good);
    fixture_close(&f);
}

static void test_verified_chains_are_cached(void)
{
    fixture f;
    sp_principal p;
    char *chain = client_chain(&(cert_spec){.cn = "alice"});
    X509 *stranger = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &other_root);
    char *other_ca = pem_of((X509 *[]){stranger, NULL});
    X509_free(stranger);

    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_OK);
        CU_ASSERT_STRING_EQUAL(p.subject, "alice");
        CU_ASSERT_STRING_EQUAL(p.role, "viewer");
    }
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, CACHE, "result=\"miss\""), 1);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, CACHE, "result=\"hit\""), 2);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, DECISIONS, "result=\"ok\""), 3);
    /* refusals are never cached: each one is verified again */
    CU_ASSERT_EQUAL(fixture_auth(&f, other_ca, NULL, &p), SP_INVALID);
    CU_ASSERT_EQUAL(fixture_auth(&f, other_ca, NULL, &p), SP_INVALID);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, REFUSALS, "reason=\"unknown_ca\""), 2);
    fixture_close(&f);

    /* cache_size 0: every request verifies, and there is no cache metric */
    fixture_open(&f);
    mock_host_set_option(f.host, "cache_size", "0");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_OK);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, CACHE, "result=\"hit\""), -1);
    fixture_close(&f);

    fixture_open(&f);
    mock_host_set_option(f.host, "cache_size", "70000");
    CU_ASSERT_NOT_EQUAL(fixture_init(&f), SP_OK);
    CU_ASSERT_STRING_EQUAL(f.err, "cache_size: must be 0 (off) to 65536");
    fixture_close(&f);
    free(chain);
    free(other_ca);
}

static void test_crl_must_cover_the_issuer(void)
{
    fixture f;
    fixture_open(&f);
    /* Only the root's CRL: the intermediate that issued the leaf has none. */
    write_crls(f.crl_path, (X509_CRL *[]){make_crl(&root, NULL, HOUR), NULL});
    mock_host_set_option(f.host, "crl_file", f.crl_path);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f, client_chain(&(cert_spec){.cn = "alice"}),
                   "client certificate refused: no CRL from its issuer in crl_file");
    fixture_close(&f);

    fixture_open(&f);
    write_crls(f.crl_path, (X509_CRL *[]){make_crl(&intermediate, NULL, -60), NULL});
    mock_host_set_option(f.host, "crl_file", f.crl_path);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_refused(&f, client_chain(&(cert_spec){.cn = "alice"}),
                   "client certificate refused: the issuer's CRL in crl_file has expired");
    fixture_close(&f);
}

static void test_ca_reload(void)
{
    fixture f;
    sp_principal p;
    X509 *stranger = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &other_root);
    char *chain = pem_of((X509 *[]){stranger, NULL});
    char *both = pem_of((X509 *[]){root.cert, other_root.cert, NULL});

    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_INVALID);
    write_text(f.ca_path, both);
    mock_host_fire_timers(f.host);
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_OK);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_INFO, "reloaded 2 CAs"));
    /* An empty CA file is refused; both CAs stay. */
    write_text(f.ca_path, "");
    mock_host_fire_timers(f.host);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_ERROR, "holds no PEM certificate"));
    CU_ASSERT_EQUAL(fixture_auth(&f, chain, NULL, &p), SP_OK);
    X509_free(stranger);
    free(chain);
    free(both);
    fixture_close(&f);
}

static void test_intermediate_as_the_only_anchor(void)
{
    fixture f;
    sp_principal p;
    X509 *leaf = make_cert(&(cert_spec){.cn = "alice"}, leaf_key, &intermediate);
    char *anchor = pem_of((X509 *[]){intermediate.cert, NULL});
    char *alone = pem_of((X509 *[]){leaf, NULL});

    fixture_open(&f);
    write_text(f.ca_path, anchor);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    /* The issuing CA in ca_file is enough: the client need not send it, the root is not needed. */
    CU_ASSERT_EQUAL(fixture_auth(&f, alone, NULL, &p), SP_OK);
    CU_ASSERT_STRING_EQUAL(p.subject, "alice");
    X509_free(leaf);
    free(anchor);
    free(alone);
    fixture_close(&f);
}

/* init refuses with `message` (a prefix of the error). */
static void expect_init_error(fixture *f, const char *message)
{
    CU_ASSERT_EQUAL(fixture_init(f), SP_INVALID);
    if (strncmp(f->err, message, strlen(message)) != 0)
        fprintf(stderr, "\n  want \"%s...\"\n  got  \"%s\"\n", message, f->err);
    CU_ASSERT_EQUAL(strncmp(f->err, message, strlen(message)), 0);
    fixture_close(f);
}

static void test_option_errors(void)
{
    fixture f;
    static const struct {
        const char *entry, *message;
    } bad_maps[] = {
        {"alice", "map[1]: \"alice\" is not \"name=team[,team...]:role\""},
        {"alice=analytics", "map[1]: \"alice=analytics\" is not"},
        {"alice=Analytics:member", "map[1]: bad team \"Analytics\""},
        {"alice=a,,b:member", "map[1]: bad team \"\""},
        {"alice=analytics:owner", "map[1]: unknown role \"owner\""},
        {"alice=*:member", "map[1]: team \"*\" is allowed alone and for admin only"},
        {"alice=*,ml:admin", "map[1]: team \"*\" is allowed alone and for admin only"},
        {"a.*.example.com=ml:member", "map[1]: \"a.*.example.com\": a wildcard is only"},
        {"*=ml:member", "map[1]: \"*\": a wildcard is only"},
    };

    fixture_open(&f);
    mock_host_set_option(f.host, "ca_file", "");
    expect_init_error(&f, "ca_file: option is required");

    fixture_open(&f);
    mock_host_set_option(f.host, "ca_file", "/nonexistent/ca.pem");
    expect_init_error(&f, "ca_file: cannot read /nonexistent/ca.pem");

    fixture_open(&f);
    write_text(f.ca_path, "not a certificate\n");
    expect_init_error(&f, "ca_file: ");

    fixture_open(&f);
    write_text(f.crl_path, "");
    mock_host_set_option(f.host, "crl_file", f.crl_path);
    expect_init_error(&f, "crl_file: ");

    fixture_open(&f);
    fixture_set_map(NULL, 0);
    expect_init_error(&f, "map: list at least one");

    fixture_open(&f);
    mock_host_set_option(f.host, "identity", "san_dns, subject");
    expect_init_error(&f, "identity[1]: unknown name \"subject\"");

    fixture_open(&f);
    mock_host_set_option(f.host, "identity", "cn, cn");
    expect_init_error(&f, "identity[1]: cn is listed twice");

    for (size_t i = 0; i < sizeof(bad_maps) / sizeof(bad_maps[0]); i++) {
        const char *items[] = {"ops=*:admin", bad_maps[i].entry};
        fixture_open(&f);
        fixture_set_map(items, 2);
        expect_init_error(&f, bad_maps[i].message);
    }
}

static int pki_teardown(void)
{
    X509_free(root.cert);
    X509_free(intermediate.cert);
    X509_free(other_root.cert);
    EVP_PKEY_free(root.key);
    EVP_PKEY_free(intermediate.key);
    EVP_PKEY_free(other_root.key);
    EVP_PKEY_free(leaf_key);
    return 0;
}

static void test_pki_setup(void)
{
    CU_ASSERT_EQUAL(pki_setup(), 0);
}

static void test_pki_teardown(void)
{
    CU_ASSERT_EQUAL(pki_teardown(), 0);
}

static const unit_test_case cases[] = {
    {"makes the test PKI", test_pki_setup},
    {"descriptor: kind, name, defaults", test_descriptor},
    {"no client certificate defers", test_defers_without_certificate},
    {"mapped certificates: exact, wildcard, CN, admin *", test_mapped_certificates},
    {"a wildcard stands for one leftmost label", test_wildcard_is_one_label},
    {"identity order picks the caller's name", test_identity_order},
    {"unmapped: DEFER with a token, refused without", test_unmapped},
    {"expired, not yet valid, server-only, unknown CA", test_verification_refusals},
    {"garbage PEM, too many certificates, too many bytes", test_malformed_chains},
    {"a name with a NUL is refused", test_unprintable_name},
    {"CRL: revoked after a reload; a bad CRL keeps the old", test_revocation_and_crl_reload},
    {"CRL: missing for the issuer, expired", test_crl_must_cover_the_issuer},
    {"verified chains are cached; refusals are not; cache_size", test_verified_chains_are_cached},
    {"ca_file reload; a bad one keeps the old", test_ca_reload},
    {"an issuing intermediate alone in ca_file is an anchor", test_intermediate_as_the_only_anchor},
    {"option errors name the option and entry", test_option_errors},
    {"frees the test PKI", test_pki_teardown},
    {NULL, NULL}};

UNIT_TEST_MAIN("auth_mtls", cases)
