/*
 * auth_chain.c - the auth providers, asked in configured order.
 *
 * The first answer that is not SP_DEFER decides.  Denials carry the
 * provider's message, which providers keep free of secrets; when all defer
 * the caller is told which credentials are accepted, not why others failed.
 */
#include "auth_chain.h"

#include <stdio.h>
#include <string.h>

int auth_chain_check(const plugin_set *set, char *const *chain, size_t chain_count,
                     diag_list *problems)
{
    int ok = 0;
    for (size_t i = 0; i < chain_count; i++) {
        if (set == NULL || plugin_set_find(set, SP_KIND_AUTH, chain[i]) == NULL) {
            diag_add(problems, "auth.chain: '%s' is not a registered auth provider", chain[i]);
            ok = -1;
        }
    }
    return ok;
}

int auth_chain_authenticate(const plugin_set *set, char *const *chain, size_t chain_count,
                            const sp_auth_request *request, sp_principal *principal,
                            char *err, size_t err_size)
{
    for (size_t i = 0; i < chain_count; i++) {
        const plugin_provider *p =
            set ? plugin_set_find(set, SP_KIND_AUTH, chain[i]) : NULL;
        if (p == NULL)
            continue;
        const sp_auth_ops *ops = p->ops;
        if (!SP_HAS_FIELD(ops, sp_auth_ops, authenticate) || ops->authenticate == NULL)
            continue;

        memset(principal, 0, sizeof(*principal));
        principal->size = sizeof(*principal);
        err[0] = '\0';
        int status = ops->authenticate(p->provider, request, principal, err, err_size);
        if (status == SP_DEFER)
            continue;
        if (status == SP_OK && principal->subject[0] != '\0') {
            principal->subject[sizeof(principal->subject) - 1] = '\0';
            principal->role[sizeof(principal->role) - 1] = '\0';
            if (principal->team_count > SP_PRINCIPAL_MAX_TEAMS)
                principal->team_count = SP_PRINCIPAL_MAX_TEAMS;
            return SP_OK;
        }
        if (status == SP_OK)
            snprintf(err, err_size, "provider %s admitted a caller without a subject",
                     chain[i]);
        else if (err[0] == '\0')
            snprintf(err, err_size, "credentials refused");
        return status == SP_OK ? SP_ERROR : status;
    }
    if (request->authorization == NULL)
        snprintf(err, err_size, "authentication required: send 'Authorization: Bearer <token>'");
    else
        snprintf(err, err_size, "credentials not accepted by any configured auth provider");
    return SP_INVALID;
}
