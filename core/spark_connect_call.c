/*
 * spark_connect_call.c - the daemon's own unary Spark Connect Config calls.
 *
 * A call is one gRPC request on a pooled upstream HTTP/2 connection
 * (gateway_upstream.h): headers, one length-prefixed ConfigRequest encoded
 * with protobuf-c (proto/spark_connect_calls.proto), then the response
 * message and the grpc-status trailer (or a trailers-only answer) are
 * collected.  A timer bounds the whole call.
 */
#include <config.h>

#include "spark_connect_call.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spark_connect_calls.pb-c.h"

#define SC_CONFIG_PATH            "/spark.connect.SparkConnectService/Config"
#define SC_EXECUTE_PATH           "/spark.connect.SparkConnectService/ExecutePlan"
#define SC_GRPC_UNAVAILABLE       14
#define SC_GRPC_DEADLINE_EXCEEDED 4
#define SC_GRPC_INTERNAL          13
#define SC_CLIENT_TYPE            "sparkplane"

struct sc_call {
    gateway_upstream_stream *up;
    struct event *timer;
    sc_call_done_fn done;
    void *arg;
    uint8_t *request; /* length-prefixed message */
    size_t request_len;
    size_t request_sent;
    uint8_t *response;
    size_t response_len;
    int http_ok;     /* :status 200 seen */
    int grpc_status; /* -1 until a grpc-status header */
    char grpc_message[256];
    char endpoint[256];
    uint64_t timeout_ms;
    int decode_config; /* a Config call: decode its ConfigResponse */
};

/* ---- ending a call ------------------------------------------------------------------- */

static void sc_call_free(sc_call *call)
{
    if (call->timer)
        event_free(call->timer);
    free(call->request);
    free(call->response);
    free(call);
}

static void sc_call_finish(sc_call *call, int grpc_status, const char *message, const json_t *pairs)
{
    call->done(call->arg, grpc_status, message, pairs);
    sc_call_free(call);
}

void sc_call_cancel(sc_call *call)
{
    if (call == NULL)
        return;
    if (call->up)
        gateway_upstream_cancel(call->up);
    sc_call_free(call);
}

/* ---- the response -------------------------------------------------------------------- */

static int sc_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* grpc-message is percent-encoded (gRPC over HTTP/2). */
static void sc_decode_grpc_message(const uint8_t *value, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < out_size; i++) {
        int hi = i + 2 < len ? sc_hex((char)value[i + 1]) : -1;
        int lo = i + 2 < len ? sc_hex((char)value[i + 2]) : -1;
        if (value[i] == '%' && hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = (char)value[i];
        }
    }
    out[o] = '\0';
}

static void sc_on_headers(void *arg, const nghttp2_nv *nva, size_t nvlen, int trailers,
                          int end_stream)
{
    (void)trailers;
    (void)end_stream;
    sc_call *call = arg;
    for (size_t i = 0; i < nvlen; i++) {
        const nghttp2_nv *nv = &nva[i];
        if (nv->namelen == 7 && memcmp(nv->name, ":status", 7) == 0)
            call->http_ok = nv->valuelen == 3 && memcmp(nv->value, "200", 3) == 0;
        else if (nv->namelen == 11 && memcmp(nv->name, "grpc-status", 11) == 0)
            call->grpc_status = nv->valuelen > 0 && nv->valuelen < 4 ? atoi((const char *)nv->value)
                                                                     : SC_GRPC_INTERNAL;
        else if (nv->namelen == 12 && memcmp(nv->name, "grpc-message", 12) == 0)
            sc_decode_grpc_message(nv->value, nv->valuelen, call->grpc_message,
                                   sizeof(call->grpc_message));
    }
}

static void sc_on_data(void *arg, const uint8_t *data, size_t len, int end_stream)
{
    (void)end_stream;
    sc_call *call = arg;
    if (call->up)
        gateway_upstream_consume(call->up, len);
    if (call->response_len + len > SC_CALL_MAX_RESPONSE) {
        call->grpc_status = SC_GRPC_INTERNAL;
        snprintf(call->grpc_message, sizeof(call->grpc_message),
                 "the Config response is larger than %u bytes", SC_CALL_MAX_RESPONSE);
        return;
    }
    uint8_t *grown = realloc(call->response, call->response_len + len);
    if (grown == NULL)
        return;
    memcpy(grown + call->response_len, data, len);
    call->response = grown;
    call->response_len += len;
}

/* The decoded response's pairs as a JSON object; NULL when the message is malformed. */
static json_t *sc_response_pairs(const sc_call *call)
{
    const uint8_t *p = call->response;
    if (call->response_len < 5 || p[0] != 0)
        return NULL;
    size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
    if (len != call->response_len - 5)
        return NULL;
    Sparkplane__Sc__ConfigResponse *response =
        sparkplane__sc__config_response__unpack(NULL, len, p + 5);
    if (response == NULL)
        return NULL;
    json_t *pairs = json_object();
    for (size_t i = 0; pairs && i < response->n_pairs; i++)
        json_object_set_new(
            pairs, response->pairs[i]->key,
            json_string(response->pairs[i]->value ? response->pairs[i]->value : ""));
    sparkplane__sc__config_response__free_unpacked(response, NULL);
    return pairs;
}

static void sc_on_close(void *arg, uint32_t error_code, const char *why)
{
    sc_call *call = arg;
    char message[640];
    call->up = NULL;
    if (why != NULL || error_code != 0) {
        snprintf(message, sizeof(message), "Spark Connect server %s: %s", call->endpoint,
                 why ? why : "the stream was reset");
        sc_call_finish(call, SC_GRPC_UNAVAILABLE, message, NULL);
        return;
    }
    if (!call->http_ok || call->grpc_status < 0) {
        snprintf(message, sizeof(message), "Spark Connect server %s: not a gRPC answer",
                 call->endpoint);
        sc_call_finish(call, SC_GRPC_UNAVAILABLE, message, NULL);
        return;
    }
    if (call->grpc_status != 0) {
        snprintf(message, sizeof(message), "Spark Connect server %s: %s", call->endpoint,
                 call->grpc_message[0] ? call->grpc_message : "the call failed");
        sc_call_finish(call, call->grpc_status, message, NULL);
        return;
    }
    json_t *pairs = call->decode_config ? sc_response_pairs(call) : json_object();
    if (pairs == NULL) {
        snprintf(message, sizeof(message), "Spark Connect server %s: malformed response",
                 call->endpoint);
        sc_call_finish(call, SC_GRPC_INTERNAL, message, NULL);
        return;
    }
    sc_call_finish(call, 0, "", pairs);
    json_decref(pairs);
}

static ssize_t sc_read_body(void *arg, uint8_t *buf, size_t len, int *eof)
{
    sc_call *call = arg;
    size_t left = call->request_len - call->request_sent;
    size_t n = left < len ? left : len;
    memcpy(buf, call->request + call->request_sent, n);
    call->request_sent += n;
    if (call->request_sent == call->request_len)
        *eof = 1;
    return (ssize_t)n;
}

static const gateway_upstream_ops sc_ops = {
    .on_headers = sc_on_headers,
    .on_data = sc_on_data,
    .on_close = sc_on_close,
    .read_body = sc_read_body,
};

static void sc_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sc_call *call = arg;
    char message[384];
    snprintf(message, sizeof(message), "Spark Connect server %s did not answer within %llu ms",
             call->endpoint, (unsigned long long)call->timeout_ms);
    if (call->up)
        gateway_upstream_cancel(call->up);
    call->up = NULL;
    sc_call_finish(call, SC_GRPC_DEADLINE_EXCEEDED, message, NULL);
}

/* ---- the request --------------------------------------------------------------------- */

/* Packs a request message behind the 5-byte gRPC message prefix. */
static uint8_t *sc_frame(const ProtobufCMessage *request, size_t *len_out)
{
    size_t len = protobuf_c_message_get_packed_size(request);
    uint8_t *framed = malloc(len + 5);
    if (framed == NULL)
        return NULL;
    framed[0] = 0;
    framed[1] = (uint8_t)(len >> 24);
    framed[2] = (uint8_t)(len >> 16);
    framed[3] = (uint8_t)(len >> 8);
    framed[4] = (uint8_t)len;
    protobuf_c_message_pack(request, framed + 5);
    *len_out = len + 5;
    return framed;
}

static nghttp2_nv sc_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

static sc_call *sc_call_start(struct event_base *base, gateway_upstream_pool *pool,
                              const char *endpoint, const char *token, const char *path,
                              uint8_t *framed, size_t framed_len, uint64_t timeout_ms,
                              sc_call_done_fn done, void *arg, char *err, size_t err_size)
{
    sc_call *call = calloc(1, sizeof(*call));
    if (call == NULL || framed == NULL) {
        free(framed);
        free(call);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    call->request = framed;
    call->request_len = framed_len;
    call->done = done;
    call->arg = arg;
    call->grpc_status = -1;
    call->timeout_ms = timeout_ms;
    call->decode_config = strcmp(path, SC_CONFIG_PATH) == 0;
    snprintf(call->endpoint, sizeof(call->endpoint), "%s", endpoint);
    char bearer[4200];
    nghttp2_nv nva[7];
    size_t n = 0;
    nva[n++] = sc_nv(":method", "POST");
    nva[n++] = sc_nv(":scheme", "http");
    nva[n++] = sc_nv(":path", path);
    nva[n++] = sc_nv(":authority", endpoint);
    nva[n++] = sc_nv("content-type", "application/grpc");
    nva[n++] = sc_nv("te", "trailers");
    if (token && token[0]) {
        snprintf(bearer, sizeof(bearer), "Bearer %s", token);
        nva[n++] = sc_nv("authorization", bearer);
    }
    struct timeval after = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    call->timer = event_new(base, -1, 0, sc_on_timeout, call);
    if (call->timer == NULL || event_add(call->timer, &after) != 0) {
        snprintf(err, err_size, "out of memory");
        sc_call_free(call);
        return NULL;
    }
    call->up = gateway_upstream_open(pool, endpoint, nva, n, &sc_ops, call, err, err_size);
    if (call->up == NULL) {
        sc_call_free(call);
        return NULL;
    }
    return call;
}

sc_call *sc_call_config_set(struct event_base *base, gateway_upstream_pool *pool,
                            const char *endpoint, const char *token, const char *session_id,
                            const char *user_id, const json_t *pairs, uint64_t timeout_ms,
                            sc_call_done_fn done, void *arg, char *err, size_t err_size)
{
    size_t count = json_object_size(pairs);
    Sparkplane__Sc__KeyValue *kv = calloc(count ? count : 1, sizeof(*kv));
    Sparkplane__Sc__KeyValue **kvp = calloc(count ? count : 1, sizeof(*kvp));
    size_t n = 0;
    const char *key;
    json_t *value;
    if (kv == NULL || kvp == NULL)
        goto oom;
    json_object_foreach((json_t *)pairs, key, value) {
        if (!json_is_string(value))
            continue;
        sparkplane__sc__key_value__init(&kv[n]);
        kv[n].key = (char *)key;
        kv[n].value = (char *)json_string_value(value);
        kvp[n] = &kv[n];
        n++;
    }
    Sparkplane__Sc__UserContext user = SPARKPLANE__SC__USER_CONTEXT__INIT;
    user.user_id = (char *)user_id;
    Sparkplane__Sc__ConfigRequest__Set set = SPARKPLANE__SC__CONFIG_REQUEST__SET__INIT;
    set.n_pairs = n;
    set.pairs = kvp;
    Sparkplane__Sc__ConfigRequest__Operation op = SPARKPLANE__SC__CONFIG_REQUEST__OPERATION__INIT;
    op.op_type_case = SPARKPLANE__SC__CONFIG_REQUEST__OPERATION__OP_TYPE_SET;
    op.set = &set;
    Sparkplane__Sc__ConfigRequest request = SPARKPLANE__SC__CONFIG_REQUEST__INIT;
    request.session_id = (char *)session_id;
    request.user_context = &user;
    request.operation = &op;
    request.client_type = (char *)SC_CLIENT_TYPE;
    size_t framed_len = 0;
    uint8_t *framed = sc_frame(&request.base, &framed_len);
    free(kvp);
    free(kv);
    return sc_call_start(base, pool, endpoint, token, SC_CONFIG_PATH, framed, framed_len,
                         timeout_ms, done, arg, err, err_size);
oom:
    free(kvp);
    free(kv);
    snprintf(err, err_size, "out of memory");
    return NULL;
}

sc_call *sc_call_config_get(struct event_base *base, gateway_upstream_pool *pool,
                            const char *endpoint, const char *token, const char *session_id,
                            const char *user_id, const char *key, uint64_t timeout_ms,
                            sc_call_done_fn done, void *arg, char *err, size_t err_size)
{
    char *keys[1] = {(char *)key};
    Sparkplane__Sc__UserContext user = SPARKPLANE__SC__USER_CONTEXT__INIT;
    user.user_id = (char *)user_id;
    Sparkplane__Sc__ConfigRequest__Get get = SPARKPLANE__SC__CONFIG_REQUEST__GET__INIT;
    get.n_keys = 1;
    get.keys = keys;
    Sparkplane__Sc__ConfigRequest__Operation op = SPARKPLANE__SC__CONFIG_REQUEST__OPERATION__INIT;
    op.op_type_case = SPARKPLANE__SC__CONFIG_REQUEST__OPERATION__OP_TYPE_GET;
    op.get = &get;
    Sparkplane__Sc__ConfigRequest request = SPARKPLANE__SC__CONFIG_REQUEST__INIT;
    request.session_id = (char *)session_id;
    request.user_context = &user;
    request.operation = &op;
    request.client_type = (char *)SC_CLIENT_TYPE;
    size_t framed_len = 0;
    uint8_t *framed = sc_frame(&request.base, &framed_len);
    return sc_call_start(base, pool, endpoint, token, SC_CONFIG_PATH, framed, framed_len,
                         timeout_ms, done, arg, err, err_size);
}

sc_call *sc_call_execute_sql(struct event_base *base, gateway_upstream_pool *pool,
                             const char *endpoint, const char *token, const char *session_id,
                             const char *user_id, const char *query, uint64_t timeout_ms,
                             sc_call_done_fn done, void *arg, char *err, size_t err_size)
{
    Sparkplane__Sc__UserContext user = SPARKPLANE__SC__USER_CONTEXT__INIT;
    user.user_id = (char *)user_id;
    Sparkplane__Sc__SQL sql = SPARKPLANE__SC__SQL__INIT;
    sql.query = (char *)query;
    Sparkplane__Sc__Relation relation = SPARKPLANE__SC__RELATION__INIT;
    relation.sql = &sql;
    Sparkplane__Sc__Plan plan = SPARKPLANE__SC__PLAN__INIT;
    plan.root = &relation;
    Sparkplane__Sc__ExecutePlanRequest request = SPARKPLANE__SC__EXECUTE_PLAN_REQUEST__INIT;
    request.session_id = (char *)session_id;
    request.user_context = &user;
    request.plan = &plan;
    request.client_type = (char *)SC_CLIENT_TYPE;
    size_t framed_len = 0;
    uint8_t *framed = sc_frame(&request.base, &framed_len);
    return sc_call_start(base, pool, endpoint, token, SC_EXECUTE_PATH, framed, framed_len,
                         timeout_ms, done, arg, err, err_size);
}

int sc_random_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}
