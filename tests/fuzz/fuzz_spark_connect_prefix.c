/*
 * fuzz_spark_connect_prefix.c - libFuzzer target for the Spark Connect prefix reader.
 *
 * Input: byte 0 picks the grpc-encoding and the prefix limit, byte 1 seeds the chunk sizes,
 * the rest is the request's DATA stream, fed in those arbitrary chunks.  Besides memory errors
 * it checks what the gateway relies on: the reader never claims more bytes than it was given,
 * the held bytes are exactly the bytes it consumed, and a rewrite's gRPC length changes by
 * exactly as much as the bytes it sends.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spark_connect_prefix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t fuzz_read_length(const uint8_t *header)
{
    return (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 | (uint32_t)header[3] << 8 |
           header[4];
}

/* After DONE: the rewrite must keep the gRPC framing consistent. */
static void fuzz_check_rewrite(const sc_prefix_reader *reader, size_t consumed)
{
    static const char *const ids[] = {"", "u", "a-much-longer-authenticated-identity"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint8_t *out = NULL;
        size_t out_len = 0, replaces = 0;
        char err[128];
        int rc = sc_prefix_rewrite_user_id(reader, ids[i], &out, &out_len, &replaces, err,
                                           sizeof err);
        if (rc != SC_PREFIX_DONE) {
            if (out != NULL || (rc == SC_PREFIX_NOT_SUPPORTED) != sc_prefix_compressed(reader))
                abort();
            continue;
        }
        int64_t delta = (int64_t)fuzz_read_length(out) - sc_prefix_message_length(reader);
        if (replaces != consumed || out_len < SC_PREFIX_GRPC_HEADER || out[0] != 0 ||
            delta != (int64_t)out_len - (int64_t)replaces)
            abort();
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const encodings[] = {NULL, "gzip", "deflate", "zstd"};
    if (size < 2)
        return 0;
    sc_prefix_reader *reader =
        sc_prefix_reader_new(data[0] & 4 ? 64 : SC_PREFIX_DEFAULT_MAX, encodings[data[0] & 3]);
    if (reader == NULL)
        return 0;
    uint32_t seed = data[1];
    const uint8_t *stream = data + 2;
    size_t left = size - 2, total = 0;
    int rc = SC_PREFIX_MORE;
    while (rc == SC_PREFIX_MORE && left > 0) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 97, used = 0;
        if (chunk > left)
            chunk = left;
        char err[256];
        rc = sc_prefix_reader_feed(reader, stream, chunk, &used, err, sizeof err);
        if (used > chunk || (rc == SC_PREFIX_MORE && used != chunk))
            abort();
        stream += chunk;
        left -= chunk;
        total += used;
    }
    size_t held_len = 0;
    const uint8_t *held = sc_prefix_held(reader, &held_len);
    if (held_len != total || (held_len > 0 && memcmp(held, data + 2, held_len) != 0))
        abort();
    if (rc == SC_PREFIX_DONE) {
        if (sc_prefix_session_id(reader) == NULL || sc_prefix_user_id(reader) == NULL)
            abort();
        fuzz_check_rewrite(reader, total);
    }
    sc_prefix_reader_free(reader);
    return 0;
}
