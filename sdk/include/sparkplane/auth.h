/*
 * sparkplane/auth.h - auth providers.
 *
 * An auth plugin registers an sp_auth_ops table with register_provider(
 * SP_KIND_AUTH, ...).  For every authenticated request (REST /api/v1 and the
 * Spark Connect gateway) the host walks the configured chain in order: the
 * first provider whose answer is not SP_DEFER decides.  SP_OK admits the
 * caller with the principal the provider filled in; any other answer denies
 * with the provider's message.  When every provider defers, the host denies.
 *
 * authenticate() runs on the event loop and must not block: a provider
 * that needs remote keys (JWKS) fetches them ahead of time with the host's
 * HTTP client.
 */
#ifndef SPARKPLANE_AUTH_H
#define SPARKPLANE_AUTH_H

#include <sparkplane/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_PRINCIPAL_MAX_TEAMS 32
#define SP_PRINCIPAL_NAME_MAX 256
#define SP_TEAM_NAME_MAX 64
#define SP_ROLE_NAME_MAX 32

/* Where a request came from. */
typedef enum sp_auth_transport {
    SP_AUTH_REST = 1,
    SP_AUTH_GATEWAY = 2
} sp_auth_transport;

typedef struct sp_auth_request {
    uint32_t size;
    sp_auth_transport transport;
    const char *authorization;      /* the Authorization header, or NULL */
    const char *peer_address;       /* "127.0.0.1:51234" */
    const char *client_cert_pem;    /* the certificate chain the client presented on a TLS
                                     * listener with client_certificates: request, PEM, leaf
                                     * first, NOT verified by the host (a provider verifies
                                     * it against its own trust anchors), or NULL */
} sp_auth_request;

/* Who the caller is.  The host zeroes it and sets `size` before the call. */
typedef struct sp_principal {
    uint32_t size;
    char subject[SP_PRINCIPAL_NAME_MAX];   /* user or service name */
    char role[SP_ROLE_NAME_MAX];           /* "admin", "member", "viewer" */
    uint32_t team_count;
    char teams[SP_PRINCIPAL_MAX_TEAMS][SP_TEAM_NAME_MAX];
} sp_principal;

typedef struct sp_auth_ops {
    uint32_t size;
    /*
     * SP_OK: authenticated, `principal` filled.  SP_DEFER: these credentials
     * are not for this provider.  SP_INVALID: they are, and they are wrong
     * (message in err; it reaches the client, so never echo secrets).
     */
    int (*authenticate)(void *provider, const sp_auth_request *request,
                        sp_principal *principal, char *err, size_t err_size);
} sp_auth_ops;

#ifdef __cplusplus
}
#endif

#endif /* SPARKPLANE_AUTH_H */
