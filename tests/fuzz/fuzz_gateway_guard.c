/*
 * fuzz_gateway_guard.c - libFuzzer target for the gateway's per-connection input checks in
 * core/gateway_guard.c: the gRPC message framing of request bodies and the abuse budgets.
 *
 * Input: byte 0 picks the message size limit, byte 1 how the body is cut into DATA chunks;
 * up to the first 0xFF byte the rest is a request body fed to gateway_grpc_meter, after it
 * every 4 bytes are one event for a guard (a frame of some type and flags, an invalid frame,
 * a stream opening or ending, time passing, a timeout check).  Besides memory errors it
 * checks what the gateway relies on: the meter refuses only with 3 or 8 and always says
 * why, a body the meter accepted ends cleanly or with 3, verdicts are known values, and a
 * deadline never lies in the past of a check that found nothing due.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_meter(const uint8_t *body, size_t size, uint64_t max, size_t chunk)
{
    gateway_grpc_meter meter = GATEWAY_GRPC_METER_INIT;
    char message[256];
    for (size_t at = 0; at < size; at += chunk) {
        size_t len = size - at < chunk ? size - at : chunk;
        message[0] = '\0';
        int status = gateway_grpc_meter_feed(&meter, body + at, len, max, message,
                                             sizeof(message));
        if (status != 0) {
            if ((status != 3 && status != 8) || message[0] == '\0')
                abort();
            return;     /* the gateway refuses the request: nothing more is fed */
        }
    }
    message[0] = '\0';
    int status = gateway_grpc_meter_finish(&meter, message, sizeof(message));
    if (status != 0 && (status != 3 || message[0] == '\0'))
        abort();
}

static void fuzz_guard(const uint8_t *events, size_t size)
{
    gateway_guard_limits limits;
    gateway_guard guard;
    gateway_guard_limits_default(&limits);
    limits.header_timeout_ms = 1000;
    limits.idle_timeout_ms = 2000;
    uint64_t now = 1000000;
    gateway_guard_init(&guard, &limits, now);
    int32_t next_stream = 1;
    for (size_t at = 0; at + 4 <= size; at += 4) {
        const uint8_t *e = events + at;
        gateway_guard_verdict verdict = GATEWAY_GUARD_FINE;
        nghttp2_frame frame;
        memset(&frame, 0, sizeof(frame));
        switch (e[0] % 6) {
        case 0: /* a frame */
            frame.hd.type = e[1] % 10;
            frame.hd.flags = e[2];
            frame.hd.length = e[3];
            frame.hd.stream_id = frame.hd.type == NGHTTP2_SETTINGS || frame.hd.type == NGHTTP2_PING
                                     ? 0
                                     : next_stream;
            if (frame.hd.type == NGHTTP2_WINDOW_UPDATE)
                frame.window_update.window_size_increment = e[3] * 97;
            verdict = gateway_guard_on_frame(&guard, &frame, now);
            break;
        case 1:
            verdict = gateway_guard_on_invalid(&guard, now);
            break;
        case 2:
            gateway_guard_on_begin_headers(&guard, next_stream, e[1] & 1, now);
            break;
        case 3:
            gateway_guard_on_stream_end(&guard, next_stream, now);
            next_stream += 2;
            break;
        case 4:
            now += (uint64_t)e[1] * 37;
            gateway_guard_on_sent(&guard, e[2] % 10);
            break;
        default: {
            uint64_t due = gateway_guard_next_deadline(&guard);
            verdict = gateway_guard_check_timeouts(&guard, now);
            if (verdict == GATEWAY_GUARD_FINE && due != UINT64_MAX && due + 1 < now &&
                gateway_guard_next_deadline(&guard) < now)
                abort();    /* something was due, nothing was answered, and still due */
            break;
        }
        }
        if (verdict > GATEWAY_GUARD_HANG_UP)
            abort();
        if (verdict != GATEWAY_GUARD_FINE && gateway_guard_reason(&guard)[0] == '\0')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 65536)
        return 0;
    uint64_t max = (uint64_t)(data[0] + 1) * 64;
    size_t chunk = (size_t)(data[1] % 32) + 1;
    const uint8_t *rest = data + 2;
    size_t rest_size = size - 2;
    const uint8_t *split = memchr(rest, 0xFF, rest_size);
    size_t body_size = split ? (size_t)(split - rest) : rest_size;
    fuzz_meter(rest, body_size, max, chunk);
    if (split)
        fuzz_guard(split + 1, rest_size - body_size - 1);
    return 0;
}
