/*
 * auth_chain.h - asks the configured auth providers in order.
 *
 * The first answer that is not SP_DEFER decides; if every provider defers
 * (or none is configured) the caller is denied.  Used by the REST layer
 * for /api/v1 and by the gateway.
 */
#ifndef SPARKPLANE_CORE_AUTH_CHAIN_H
#define SPARKPLANE_CORE_AUTH_CHAIN_H

#include <sparkplane/auth.h>

#include "plugin_host.h"

/*
 * Checks at start and reload that every name in the chain is a registered
 * auth provider.
 */
int auth_chain_check(const plugin_set *set, char *const *chain, size_t chain_count,
                     diag_list *problems);

/*
 * SP_OK with `principal` filled, or a denial status with a message that
 * is safe to show the client.
 */
int auth_chain_authenticate(const plugin_set *set, char *const *chain, size_t chain_count,
                            const sp_auth_request *request, sp_principal *principal,
                            char *err, size_t err_size);

#endif
