/*
 * gateway_guard.c - per-connection misbehaviour budgets and timeouts, and
 * the gRPC framing meter (see gateway_guard.h for what and why).
 *
 * Budgets are fixed-window counters: one window for all kinds, restarted
 * by the first event after it expired, so an idle connection costs no
 * timer.  A fixed window lets a client send up to twice a budget across a
 * window edge; that is still bounded and keeps the reason exact ("201
 * RST_STREAM frames within 1 s").  Timeouts are plain timestamps compared
 * when the gateway's timer fires.
 */
#include "gateway_guard.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define GATEWAY_GRPC_INVALID_ARGUMENT_CODE   3
#define GATEWAY_GRPC_RESOURCE_EXHAUSTED_CODE 8

static const char *const gateway_guard_kind_names[GATEWAY_GUARD_KINDS] = {
    "RST_STREAM frames",         "empty DATA frames",
    "SETTINGS frames",           "PING frames with no response data between them",
    "PRIORITY frames",           "WINDOW_UPDATE frames with small increments",
    "invalid frames or headers",
};

void gateway_guard_limits_default(gateway_guard_limits *limits)
{
    memset(limits, 0, sizeof(*limits));
    limits->window_ms = 1000;
    limits->rst_stream = 200;
    limits->empty_data = 50;
    limits->settings = 50;
    limits->ping = 50;
    limits->priority = 100;
    limits->small_window_update = 100;
    limits->invalid = 10;
    limits->small_window_increment = 1024;
    limits->header_timeout_ms = UINT64_C(10) * 1000u;
    limits->idle_timeout_ms = UINT64_C(10) * 60u * 1000u;
    limits->goaway_linger_ms = UINT64_C(2) * 1000u;
}

static uint32_t gateway_guard_budget(const gateway_guard_limits *limits, gateway_guard_kind kind)
{
    switch (kind) {
    case GATEWAY_GUARD_RST_STREAM:
        return limits->rst_stream;
    case GATEWAY_GUARD_EMPTY_DATA:
        return limits->empty_data;
    case GATEWAY_GUARD_SETTINGS:
        return limits->settings;
    case GATEWAY_GUARD_PING:
        return limits->ping;
    case GATEWAY_GUARD_PRIORITY:
        return limits->priority;
    case GATEWAY_GUARD_SMALL_WINDOW_UPDATE:
        return limits->small_window_update;
    default:
        return limits->invalid;
    }
}

/* "1 s", "10 min", "1500 ms": how a person reads a duration. */
static void gateway_guard_format_ms(uint64_t ms, char *out, size_t out_size)
{
    if (ms >= 60000 && ms % 60000 == 0)
        snprintf(out, out_size, "%" PRIu64 " min", ms / 60000);
    else if (ms >= 1000 && ms % 1000 == 0)
        snprintf(out, out_size, "%" PRIu64 " s", ms / 1000);
    else
        snprintf(out, out_size, "%" PRIu64 " ms", ms);
}

static void gateway_guard_format_bytes(uint64_t bytes, char *out, size_t out_size)
{
    if (bytes >= 1048576 && bytes % 1048576 == 0)
        snprintf(out, out_size, "%" PRIu64 " MiB", bytes / 1048576);
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(out, out_size, "%" PRIu64 " KiB", bytes / 1024);
    else
        snprintf(out, out_size, "%" PRIu64 " bytes", bytes);
}

void gateway_guard_init(gateway_guard *guard, const gateway_guard_limits *limits, uint64_t now_ms)
{
    memset(guard, 0, sizeof(*guard));
    guard->limits = limits;
    guard->window_start_ms = now_ms;
    guard->opened_ms = now_ms;
    guard->idle_since_ms = now_ms;
}

static gateway_guard_verdict gateway_guard_end(gateway_guard *guard, gateway_guard_verdict verdict,
                                               uint64_t now_ms)
{
    guard->ended = verdict;
    guard->ended_ms = now_ms;
    return verdict;
}

/* Counts one event of `kind`; ABUSE once its budget for this window is spent. */
static gateway_guard_verdict gateway_guard_count(gateway_guard *guard, gateway_guard_kind kind,
                                                 uint64_t now_ms)
{
    const gateway_guard_limits *limits = guard->limits;
    char window[32];
    if (guard->ended != GATEWAY_GUARD_FINE)
        return GATEWAY_GUARD_FINE;
    if (now_ms < guard->window_start_ms || now_ms - guard->window_start_ms >= limits->window_ms) {
        memset(guard->counts, 0, sizeof(guard->counts));
        guard->window_start_ms = now_ms;
    }
    uint32_t budget = gateway_guard_budget(limits, kind);
    if (guard->counts[kind] < UINT32_MAX)
        guard->counts[kind]++;
    if (budget == 0 || guard->counts[kind] <= budget)
        return GATEWAY_GUARD_FINE;
    gateway_guard_format_ms(limits->window_ms, window, sizeof(window));
    snprintf(guard->reason, sizeof(guard->reason), "%" PRIu32 " %s within %s (at most %" PRIu32 ")",
             guard->counts[kind], gateway_guard_kind_names[kind], window, budget);
    return gateway_guard_end(guard, GATEWAY_GUARD_ABUSE, now_ms);
}

/* The kind a received frame counts as, or GATEWAY_GUARD_KINDS when it costs no budget. */
static gateway_guard_kind gateway_guard_kind_of(const gateway_guard *guard,
                                                const nghttp2_frame *frame)
{
    switch (frame->hd.type) {
    case NGHTTP2_RST_STREAM:
        return GATEWAY_GUARD_RST_STREAM;
    case NGHTTP2_DATA:
        /* hd.length counts the padding and its length byte (data.padlen) too */
        if (frame->hd.length <= frame->data.padlen && !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            return GATEWAY_GUARD_EMPTY_DATA;
        return GATEWAY_GUARD_KINDS;
    case NGHTTP2_SETTINGS:
        return (frame->hd.flags & NGHTTP2_FLAG_ACK) ? GATEWAY_GUARD_KINDS : GATEWAY_GUARD_SETTINGS;
    case NGHTTP2_PING:
        return GATEWAY_GUARD_PING;
    case NGHTTP2_PRIORITY:
        return GATEWAY_GUARD_PRIORITY;
    case NGHTTP2_WINDOW_UPDATE:
        if ((uint32_t)frame->window_update.window_size_increment <
            guard->limits->small_window_increment)
            return GATEWAY_GUARD_SMALL_WINDOW_UPDATE;
        return GATEWAY_GUARD_KINDS;
    default:
        return GATEWAY_GUARD_KINDS;
    }
}

gateway_guard_verdict gateway_guard_on_frame(gateway_guard *guard, const nghttp2_frame *frame,
                                             uint64_t now_ms)
{
    guard->greeted = 1;
    /* A header block is contiguous on the wire: any whole frame means none is in progress
     * (nghttp2 delivers no frame for a block whose stream it reset). */
    guard->header_block_stream = 0;
    gateway_guard_kind kind = gateway_guard_kind_of(guard, frame);
    if (kind == GATEWAY_GUARD_KINDS)
        return GATEWAY_GUARD_FINE;
    return gateway_guard_count(guard, kind, now_ms);
}

gateway_guard_verdict gateway_guard_on_invalid(gateway_guard *guard, uint64_t now_ms)
{
    guard->greeted = 1;
    return gateway_guard_count(guard, GATEWAY_GUARD_INVALID, now_ms);
}

void gateway_guard_on_begin_headers(gateway_guard *guard, int32_t stream_id, int request,
                                    uint64_t now_ms)
{
    guard->greeted = 1;
    guard->header_block_stream = stream_id;
    guard->header_block_since_ms = now_ms;
    if (request)
        guard->open_streams++;
}

void gateway_guard_on_stream_end(gateway_guard *guard, int32_t stream_id, uint64_t now_ms)
{
    if (guard->header_block_stream == stream_id)
        guard->header_block_stream = 0; /* reset while its headers were arriving */
    if (guard->open_streams > 0 && --guard->open_streams == 0)
        guard->idle_since_ms = now_ms;
}

void gateway_guard_on_sent(gateway_guard *guard, uint8_t type)
{
    if (type == NGHTTP2_HEADERS || type == NGHTTP2_DATA)
        guard->counts[GATEWAY_GUARD_PING] = 0;
}

static uint64_t gateway_guard_after(uint64_t start_ms, uint64_t timeout_ms)
{
    return start_ms > UINT64_MAX - timeout_ms ? UINT64_MAX : start_ms + timeout_ms;
}

static uint64_t gateway_guard_earlier(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t gateway_guard_next_deadline(const gateway_guard *guard)
{
    const gateway_guard_limits *limits = guard->limits;
    uint64_t next = UINT64_MAX;
    if (guard->ended != GATEWAY_GUARD_FINE)
        return gateway_guard_after(guard->ended_ms, limits->goaway_linger_ms);
    if (limits->header_timeout_ms > 0 && !guard->greeted)
        next = gateway_guard_after(guard->opened_ms, limits->header_timeout_ms);
    if (limits->header_timeout_ms > 0 && guard->header_block_stream != 0)
        next = gateway_guard_earlier(
            next, gateway_guard_after(guard->header_block_since_ms, limits->header_timeout_ms));
    if (limits->idle_timeout_ms > 0 && guard->open_streams == 0)
        next = gateway_guard_earlier(
            next, gateway_guard_after(guard->idle_since_ms, limits->idle_timeout_ms));
    return next;
}

gateway_guard_verdict gateway_guard_check_timeouts(gateway_guard *guard, uint64_t now_ms)
{
    const gateway_guard_limits *limits = guard->limits;
    char duration[32];
    if (guard->ended != GATEWAY_GUARD_FINE) {
        if (now_ms < gateway_guard_after(guard->ended_ms, limits->goaway_linger_ms))
            return GATEWAY_GUARD_FINE;
        gateway_guard_format_ms(limits->goaway_linger_ms, duration, sizeof(duration));
        snprintf(guard->reason, sizeof(guard->reason),
                 "the client did not read the GOAWAY within %s", duration);
        return GATEWAY_GUARD_HANG_UP;
    }
    gateway_guard_format_ms(limits->header_timeout_ms, duration, sizeof(duration));
    if (limits->header_timeout_ms > 0 && !guard->greeted &&
        now_ms >= gateway_guard_after(guard->opened_ms, limits->header_timeout_ms)) {
        snprintf(guard->reason, sizeof(guard->reason),
                 "no HTTP/2 preface and SETTINGS within %s of connecting", duration);
        return gateway_guard_end(guard, GATEWAY_GUARD_TOO_SLOW, now_ms);
    }
    if (limits->header_timeout_ms > 0 && guard->header_block_stream != 0 &&
        now_ms >= gateway_guard_after(guard->header_block_since_ms, limits->header_timeout_ms)) {
        snprintf(guard->reason, sizeof(guard->reason),
                 "the HEADERS of stream %" PRId32 " were not complete within %s",
                 guard->header_block_stream, duration);
        return gateway_guard_end(guard, GATEWAY_GUARD_TOO_SLOW, now_ms);
    }
    if (limits->idle_timeout_ms > 0 && guard->open_streams == 0 &&
        now_ms >= gateway_guard_after(guard->idle_since_ms, limits->idle_timeout_ms)) {
        gateway_guard_format_ms(limits->idle_timeout_ms, duration, sizeof(duration));
        snprintf(guard->reason, sizeof(guard->reason), "no request for %s", duration);
        return gateway_guard_end(guard, GATEWAY_GUARD_IDLE, now_ms);
    }
    return GATEWAY_GUARD_FINE;
}

const char *gateway_guard_reason(const gateway_guard *guard)
{
    return guard->reason;
}

const char *gateway_guard_verdict_label(gateway_guard_verdict verdict)
{
    switch (verdict) {
    case GATEWAY_GUARD_ABUSE:
        return "abuse";
    case GATEWAY_GUARD_TOO_SLOW:
        return "header_timeout";
    case GATEWAY_GUARD_IDLE:
        return "idle";
    case GATEWAY_GUARD_HANG_UP:
        return "goaway_timeout";
    default:
        return "";
    }
}

uint32_t gateway_guard_goaway_code(gateway_guard_verdict verdict)
{
    return verdict == GATEWAY_GUARD_ABUSE || verdict == GATEWAY_GUARD_TOO_SLOW
               ? NGHTTP2_ENHANCE_YOUR_CALM
               : NGHTTP2_NO_ERROR;
}

/* ---- gRPC framing of a request body --------------------------------------------------- */

/* A whole prefix is in meter->prefix: check it and start its message. */
static int gateway_grpc_meter_start(gateway_grpc_meter *meter, uint64_t max_message_bytes,
                                    char *message, size_t message_size)
{
    const uint8_t *p = meter->prefix;
    uint64_t length =
        ((uint64_t)p[1] << 24) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 8) | (uint64_t)p[4];
    char declared[32];
    char limit[32];
    meter->messages++;
    meter->prefix_have = 0;
    if (p[0] > 1) {
        snprintf(message, message_size,
                 "gRPC message %" PRIu64 " has compressed flag %u (only 0 or 1 are valid)",
                 meter->messages, (unsigned)p[0]);
        return GATEWAY_GRPC_INVALID_ARGUMENT_CODE;
    }
    if (length > max_message_bytes) {
        gateway_guard_format_bytes(length, declared, sizeof(declared));
        gateway_guard_format_bytes(max_message_bytes, limit, sizeof(limit));
        snprintf(message, message_size,
                 "gRPC message %" PRIu64 " is %s, larger than this gateway's limit of %s "
                 "(gateway.max_message_size)",
                 meter->messages, declared, limit);
        return GATEWAY_GRPC_RESOURCE_EXHAUSTED_CODE;
    }
    meter->body_left = length;
    return 0;
}

int gateway_grpc_meter_feed(gateway_grpc_meter *meter, const uint8_t *data, size_t len,
                            uint64_t max_message_bytes, char *message, size_t message_size)
{
    while (len > 0) {
        if (meter->body_left > 0) {
            size_t skip = meter->body_left < len ? (size_t)meter->body_left : len;
            meter->body_left -= skip;
            data += skip;
            len -= skip;
            continue;
        }
        size_t take = sizeof(meter->prefix) - meter->prefix_have;
        if (take > len)
            take = len;
        memcpy(meter->prefix + meter->prefix_have, data, take);
        meter->prefix_have += take;
        data += take;
        len -= take;
        if (meter->prefix_have < sizeof(meter->prefix))
            break;
        int status = gateway_grpc_meter_start(meter, max_message_bytes, message, message_size);
        if (status != 0)
            return status;
    }
    return 0;
}

int gateway_grpc_meter_finish(const gateway_grpc_meter *meter, char *message, size_t message_size)
{
    if (meter->prefix_have > 0) {
        snprintf(message, message_size,
                 "the request ended inside the 5-byte prefix of gRPC message %" PRIu64
                 " (%zu of 5 bytes)",
                 meter->messages + 1, meter->prefix_have);
        return GATEWAY_GRPC_INVALID_ARGUMENT_CODE;
    }
    if (meter->body_left > 0) {
        snprintf(message, message_size,
                 "the request ended inside gRPC message %" PRIu64 " (%" PRIu64
                 " more bytes were announced)",
                 meter->messages, meter->body_left);
        return GATEWAY_GRPC_INVALID_ARGUMENT_CODE;
    }
    return 0;
}
