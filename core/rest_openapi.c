/*
 * rest_openapi.c - GET /api/v1/openapi.json, the API described for clients.
 *
 * The document is a plain JSON file in the tree (core/openapi.json), so it
 * is reviewed and validated like code.  The build embeds it as a byte array
 * (core/local.mk generates core/openapi_json.c with od and sed), so the
 * daemon needs no file at run time.  The route is open: a client reads the
 * contract before it has a token.
 */
#include <event2/buffer.h>
#include <string.h>

#include "rest.h"

/* Generated from core/openapi.json, NUL-terminated. */
extern const char rest_openapi_document[];

const char *rest_openapi_text(void)
{
    return rest_openapi_document;
}

static void openapi_serve(rest_request *request)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        rest_reply_error(request, 500, "internal", "out of memory", NULL);
        return;
    }
    evbuffer_add_reference(body, rest_openapi_document, strlen(rest_openapi_document), NULL,
                           NULL);
    rest_reply_text(request, 200, "application/json", body);
    evbuffer_free(body);
}

void rest_openapi_routes(rest_server *server)
{
    rest_route_add(server, "GET", "/api/v1/openapi.json", REST_OPEN, openapi_serve);
}
