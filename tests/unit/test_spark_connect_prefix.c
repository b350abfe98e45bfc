/*
 * test_spark_connect_prefix.c - the Spark Connect request prefix reader.
 *
 * The request vectors below are real Spark Connect messages, serialized by pyspark 4.0.5's
 * generated classes (pyspark.sql.connect.proto.base_pb2, google.protobuf 5.x) when this test
 * was written, e.g.
 *   req = base_pb2.ExecutePlanRequest(); req.session_id = "3f2c..."; ...
 *   req.user_context.extensions.append(any_pb2.Any(type_url=..., value=b"\x08\x2a"))
 *   print(", ".join(f"0x{b:02x}" for b in req.SerializeToString()))
 * The execute_plan_longer, execute_plan_shorter and config_carol vectors are the same requests
 * serialized by Python with another user_id: our rewrite must produce exactly those bytes.
 * Framing (the 5-byte gRPC header) and compression (zlib, gzip and deflate wrappers) are done
 * here in C.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "spark_connect_prefix.h"
#include "spark_connect_prefix.pb-c.h"
#include "unit_test.h"

/* ExecutePlanRequest{session_id, user_context{user_id=alice, user_name, 1 extension},
 * plan(sql), operation_id, client_type, tags} */
static const uint8_t execute_plan_alice[] = {
    0x0a, 0x24, 0x33, 0x66, 0x32, 0x63, 0x39, 0x61, 0x38, 0x65, 0x2d, 0x37,
    0x62, 0x34, 0x31, 0x2d, 0x34, 0x64, 0x32, 0x61, 0x2d, 0x39, 0x63, 0x35,
    0x35, 0x2d, 0x30, 0x65, 0x36, 0x66, 0x31, 0x61, 0x32, 0x62, 0x33, 0x63,
    0x34, 0x64, 0x12, 0x3e, 0x0a, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x12,
    0x0d, 0x41, 0x6c, 0x69, 0x63, 0x65, 0x20, 0x4c, 0x69, 0x64, 0x64, 0x65,
    0x6c, 0x6c, 0xba, 0x3e, 0x25, 0x0a, 0x1f, 0x74, 0x79, 0x70, 0x65, 0x2e,
    0x67, 0x6f, 0x6f, 0x67, 0x6c, 0x65, 0x61, 0x70, 0x69, 0x73, 0x2e, 0x63,
    0x6f, 0x6d, 0x2f, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45,
    0x78, 0x74, 0x12, 0x02, 0x08, 0x2a, 0x1a, 0x46, 0x0a, 0x44, 0x0a, 0x02,
    0x10, 0x2a, 0x52, 0x3e, 0x0a, 0x3c, 0x53, 0x45, 0x4c, 0x45, 0x43, 0x54,
    0x20, 0x69, 0x64, 0x2c, 0x20, 0x69, 0x64, 0x20, 0x2a, 0x20, 0x32, 0x20,
    0x41, 0x53, 0x20, 0x74, 0x77, 0x69, 0x63, 0x65, 0x20, 0x46, 0x52, 0x4f,
    0x4d, 0x20, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x28, 0x31, 0x30, 0x30, 0x30,
    0x29, 0x20, 0x57, 0x48, 0x45, 0x52, 0x45, 0x20, 0x69, 0x64, 0x20, 0x25,
    0x20, 0x37, 0x20, 0x3d, 0x20, 0x30, 0x22, 0x21, 0x5f, 0x53, 0x50, 0x41,
    0x52, 0x4b, 0x5f, 0x43, 0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54, 0x5f, 0x50,
    0x59, 0x54, 0x48, 0x4f, 0x4e, 0x20, 0x73, 0x70, 0x61, 0x72, 0x6b, 0x2f,
    0x34, 0x2e, 0x30, 0x2e, 0x35, 0x32, 0x24, 0x39, 0x61, 0x31, 0x62, 0x32,
    0x63, 0x33, 0x64, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x2d, 0x34, 0x30, 0x30,
    0x30, 0x2d, 0x38, 0x30, 0x30, 0x30, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x30,
    0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x3a, 0x07, 0x6e, 0x69, 0x67,
    0x68, 0x74, 0x6c, 0x79,
};
/* the same with user_id=bob.the.much.longer.identity@example.com */
static const uint8_t execute_plan_longer[] = {
    0x0a, 0x24, 0x33, 0x66, 0x32, 0x63, 0x39, 0x61, 0x38, 0x65, 0x2d, 0x37,
    0x62, 0x34, 0x31, 0x2d, 0x34, 0x64, 0x32, 0x61, 0x2d, 0x39, 0x63, 0x35,
    0x35, 0x2d, 0x30, 0x65, 0x36, 0x66, 0x31, 0x61, 0x32, 0x62, 0x33, 0x63,
    0x34, 0x64, 0x12, 0x61, 0x0a, 0x28, 0x62, 0x6f, 0x62, 0x2e, 0x74, 0x68,
    0x65, 0x2e, 0x6d, 0x75, 0x63, 0x68, 0x2e, 0x6c, 0x6f, 0x6e, 0x67, 0x65,
    0x72, 0x2e, 0x69, 0x64, 0x65, 0x6e, 0x74, 0x69, 0x74, 0x79, 0x40, 0x65,
    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x12, 0x0d,
    0x41, 0x6c, 0x69, 0x63, 0x65, 0x20, 0x4c, 0x69, 0x64, 0x64, 0x65, 0x6c,
    0x6c, 0xba, 0x3e, 0x25, 0x0a, 0x1f, 0x74, 0x79, 0x70, 0x65, 0x2e, 0x67,
    0x6f, 0x6f, 0x67, 0x6c, 0x65, 0x61, 0x70, 0x69, 0x73, 0x2e, 0x63, 0x6f,
    0x6d, 0x2f, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x78,
    0x74, 0x12, 0x02, 0x08, 0x2a, 0x1a, 0x46, 0x0a, 0x44, 0x0a, 0x02, 0x10,
    0x2a, 0x52, 0x3e, 0x0a, 0x3c, 0x53, 0x45, 0x4c, 0x45, 0x43, 0x54, 0x20,
    0x69, 0x64, 0x2c, 0x20, 0x69, 0x64, 0x20, 0x2a, 0x20, 0x32, 0x20, 0x41,
    0x53, 0x20, 0x74, 0x77, 0x69, 0x63, 0x65, 0x20, 0x46, 0x52, 0x4f, 0x4d,
    0x20, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x28, 0x31, 0x30, 0x30, 0x30, 0x29,
    0x20, 0x57, 0x48, 0x45, 0x52, 0x45, 0x20, 0x69, 0x64, 0x20, 0x25, 0x20,
    0x37, 0x20, 0x3d, 0x20, 0x30, 0x22, 0x21, 0x5f, 0x53, 0x50, 0x41, 0x52,
    0x4b, 0x5f, 0x43, 0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54, 0x5f, 0x50, 0x59,
    0x54, 0x48, 0x4f, 0x4e, 0x20, 0x73, 0x70, 0x61, 0x72, 0x6b, 0x2f, 0x34,
    0x2e, 0x30, 0x2e, 0x35, 0x32, 0x24, 0x39, 0x61, 0x31, 0x62, 0x32, 0x63,
    0x33, 0x64, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x2d, 0x34, 0x30, 0x30, 0x30,
    0x2d, 0x38, 0x30, 0x30, 0x30, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
    0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x3a, 0x07, 0x6e, 0x69, 0x67, 0x68,
    0x74, 0x6c, 0x79,
};
/* the same with user_id=b */
static const uint8_t execute_plan_shorter[] = {
    0x0a, 0x24, 0x33, 0x66, 0x32, 0x63, 0x39, 0x61, 0x38, 0x65, 0x2d, 0x37,
    0x62, 0x34, 0x31, 0x2d, 0x34, 0x64, 0x32, 0x61, 0x2d, 0x39, 0x63, 0x35,
    0x35, 0x2d, 0x30, 0x65, 0x36, 0x66, 0x31, 0x61, 0x32, 0x62, 0x33, 0x63,
    0x34, 0x64, 0x12, 0x3a, 0x0a, 0x01, 0x62, 0x12, 0x0d, 0x41, 0x6c, 0x69,
    0x63, 0x65, 0x20, 0x4c, 0x69, 0x64, 0x64, 0x65, 0x6c, 0x6c, 0xba, 0x3e,
    0x25, 0x0a, 0x1f, 0x74, 0x79, 0x70, 0x65, 0x2e, 0x67, 0x6f, 0x6f, 0x67,
    0x6c, 0x65, 0x61, 0x70, 0x69, 0x73, 0x2e, 0x63, 0x6f, 0x6d, 0x2f, 0x65,
    0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x78, 0x74, 0x12, 0x02,
    0x08, 0x2a, 0x1a, 0x46, 0x0a, 0x44, 0x0a, 0x02, 0x10, 0x2a, 0x52, 0x3e,
    0x0a, 0x3c, 0x53, 0x45, 0x4c, 0x45, 0x43, 0x54, 0x20, 0x69, 0x64, 0x2c,
    0x20, 0x69, 0x64, 0x20, 0x2a, 0x20, 0x32, 0x20, 0x41, 0x53, 0x20, 0x74,
    0x77, 0x69, 0x63, 0x65, 0x20, 0x46, 0x52, 0x4f, 0x4d, 0x20, 0x72, 0x61,
    0x6e, 0x67, 0x65, 0x28, 0x31, 0x30, 0x30, 0x30, 0x29, 0x20, 0x57, 0x48,
    0x45, 0x52, 0x45, 0x20, 0x69, 0x64, 0x20, 0x25, 0x20, 0x37, 0x20, 0x3d,
    0x20, 0x30, 0x22, 0x21, 0x5f, 0x53, 0x50, 0x41, 0x52, 0x4b, 0x5f, 0x43,
    0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54, 0x5f, 0x50, 0x59, 0x54, 0x48, 0x4f,
    0x4e, 0x20, 0x73, 0x70, 0x61, 0x72, 0x6b, 0x2f, 0x34, 0x2e, 0x30, 0x2e,
    0x35, 0x32, 0x24, 0x39, 0x61, 0x31, 0x62, 0x32, 0x63, 0x33, 0x64, 0x2d,
    0x30, 0x30, 0x30, 0x30, 0x2d, 0x34, 0x30, 0x30, 0x30, 0x2d, 0x38, 0x30,
    0x30, 0x30, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
    0x30, 0x30, 0x31, 0x3a, 0x07, 0x6e, 0x69, 0x67, 0x68, 0x74, 0x6c, 0x79,
};
/* ReleaseSessionRequest{session_id=only-a-session}: the prefix is the whole message */
static const uint8_t release_session_only[] = {
    0x0a, 0x0e, 0x6f, 0x6e, 0x6c, 0x79, 0x2d, 0x61, 0x2d, 0x73, 0x65, 0x73,
    0x73, 0x69, 0x6f, 0x6e,
};
/* ConfigRequest{session_id=s-cfg, operation.get}: no user_context */
static const uint8_t config_no_user[] = {
    0x0a, 0x05, 0x73, 0x2d, 0x63, 0x66, 0x67, 0x1a, 0x20, 0x12, 0x1e, 0x0a,
    0x1c, 0x73, 0x70, 0x61, 0x72, 0x6b, 0x2e, 0x73, 0x71, 0x6c, 0x2e, 0x73,
    0x68, 0x75, 0x66, 0x66, 0x6c, 0x65, 0x2e, 0x70, 0x61, 0x72, 0x74, 0x69,
    0x74, 0x69, 0x6f, 0x6e, 0x73,
};
/* ConfigRequest{session_id=s-cfg, user_context{user_id=carol}, operation.get}:
 * what config_no_user becomes with user_id=carol */
static const uint8_t config_carol[] = {
    0x0a, 0x05, 0x73, 0x2d, 0x63, 0x66, 0x67, 0x12, 0x07, 0x0a, 0x05, 0x63,
    0x61, 0x72, 0x6f, 0x6c, 0x1a, 0x20, 0x12, 0x1e, 0x0a, 0x1c, 0x73, 0x70,
    0x61, 0x72, 0x6b, 0x2e, 0x73, 0x71, 0x6c, 0x2e, 0x73, 0x68, 0x75, 0x66,
    0x66, 0x6c, 0x65, 0x2e, 0x70, 0x61, 0x72, 0x74, 0x69, 0x74, 0x69, 0x6f,
    0x6e, 0x73,
};

typedef struct frame {
    uint8_t *bytes;
    size_t len;
} frame;

/* A gRPC length-prefixed message: flag, 4-byte big-endian length, body. */
static frame frame_message(const uint8_t *body, size_t len, uint8_t flag)
{
    frame f = {malloc(len + 5), len + 5};
    CU_ASSERT_FATAL(f.bytes != NULL);
    f.bytes[0] = flag;
    f.bytes[1] = (uint8_t)(len >> 24);
    f.bytes[2] = (uint8_t)(len >> 16);
    f.bytes[3] = (uint8_t)(len >> 8);
    f.bytes[4] = (uint8_t)len;
    if (len > 0)
        memcpy(f.bytes + 5, body, len);
    return f;
}

/* Compresses body with zlib (gzip wrapper when gzip, else zlib's = grpc "deflate"). */
static frame frame_compressed(const uint8_t *body, size_t len, int gzip)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    CU_ASSERT_FATAL(deflateInit2(&z, 6, Z_DEFLATED, gzip ? 15 + 16 : 15, 8,
                                 Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&z, len) + 32;
    uint8_t *packed = malloc(cap);
    CU_ASSERT_FATAL(packed != NULL);
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = packed;
    z.avail_out = (uInt)cap;
    CU_ASSERT_FATAL(deflate(&z, Z_FINISH) == Z_STREAM_END);
    frame f = frame_message(packed, z.total_out, 1);
    deflateEnd(&z);
    free(packed);
    return f;
}

/* Feeds data in chunks of `chunk` bytes until the reader stops asking for more. */
static int feed_chunks(sc_prefix_reader *reader, const uint8_t *data, size_t len, size_t chunk,
                       size_t *consumed, char *err, size_t err_size)
{
    int rc = SC_PREFIX_MORE;
    *consumed = 0;
    for (size_t off = 0; off < len && rc == SC_PREFIX_MORE; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk, used = 0;
        rc = sc_prefix_reader_feed(reader, data + off, n, &used, err, err_size);
        *consumed += used;
        if (rc == SC_PREFIX_MORE)
            CU_ASSERT_EQUAL(used, n);
    }
    return rc;
}

/* Length of the leading fields 1 and 2 of a vector (both with one-byte lengths). */
static size_t vector_prefix_len(const uint8_t *body)
{
    size_t len = 2 + body[1];
    if (body[len] == 0x12)
        len += 2 + body[len + 1];
    return len;
}

static void check_execute_plan(size_t chunk)
{
    frame f = frame_message(execute_plan_alice, sizeof execute_plan_alice, 0);
    sc_prefix_reader *reader = sc_prefix_reader_new(0, NULL);
    char err[256] = "";
    size_t consumed = 0;
    CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len, chunk, &consumed, err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_STRING_EQUAL(sc_prefix_session_id(reader), "3f2c9a8e-7b41-4d2a-9c55-0e6f1a2b3c4d");
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_id(reader), "alice");
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_name(reader), "Alice Liddell");
    CU_ASSERT_EQUAL(sc_prefix_message_length(reader), sizeof execute_plan_alice);
    CU_ASSERT_FALSE(sc_prefix_compressed(reader));
    /* header + prefix + the one-byte tag of field 3 (plan): not one byte of the plan. */
    size_t expect = 5 + vector_prefix_len(execute_plan_alice) + 1;
    CU_ASSERT_EQUAL(consumed, expect);
    size_t held_len = 0;
    const uint8_t *held = sc_prefix_held(reader, &held_len);
    CU_ASSERT_EQUAL(held_len, expect);
    CU_ASSERT(memcmp(held, f.bytes, expect) == 0);
    /* Done is sticky and takes nothing more. */
    CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, f.bytes + consumed, f.len - consumed, &consumed,
                                          err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_EQUAL(consumed, 0);
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

static void test_execute_plan_all_at_once(void)
{
    check_execute_plan(1 << 20);
}

static void test_execute_plan_byte_by_byte(void)
{
    check_execute_plan(1);
}

static void test_execute_plan_odd_chunks(void)
{
    check_execute_plan(7);
}

/* A header announcing a 100 MB plan: the reader finishes on the prefix alone. */
static void test_large_plan_not_buffered(void)
{
    size_t prefix = vector_prefix_len(execute_plan_alice);
    uint8_t body[4096];
    memcpy(body, execute_plan_alice, prefix);
    memset(body + prefix, 0x1a, sizeof body - prefix);
    frame f = frame_message(body, sizeof body, 0);
    uint32_t huge = 100u * 1000 * 1000;
    f.bytes[1] = (uint8_t)(huge >> 24);
    f.bytes[2] = (uint8_t)(huge >> 16);
    f.bytes[3] = (uint8_t)(huge >> 8);
    f.bytes[4] = (uint8_t)huge;
    sc_prefix_reader *reader = sc_prefix_reader_new(0, NULL);
    char err[256] = "";
    size_t consumed = 0;
    CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, f.bytes, f.len, &consumed, err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_EQUAL(consumed, 5 + prefix + 1);
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_id(reader), "alice");
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

/* A message that is nothing but the prefix ends when its last byte arrives. */
static void test_prefix_is_whole_message(void)
{
    frame f = frame_message(release_session_only, sizeof release_session_only, 0);
    sc_prefix_reader *reader = sc_prefix_reader_new(0, NULL);
    char err[256] = "";
    size_t consumed = 0;
    CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len - 1, 1, &consumed, err, sizeof err),
                    SC_PREFIX_MORE);
    CU_ASSERT_PTR_NULL(sc_prefix_session_id(reader));
    CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, f.bytes + f.len - 1, 1, &consumed, err,
                                          sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_EQUAL(consumed, 1);
    CU_ASSERT_STRING_EQUAL(sc_prefix_session_id(reader), "only-a-session");
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_id(reader), "");
    sc_prefix_reader_free(reader);
    free(f.bytes);

    /* An empty message (all defaults) is a prefix too. */
    f = frame_message(NULL, 0, 0);
    reader = sc_prefix_reader_new(0, "zstd"); /* unknown codec is fine while uncompressed */
    CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, f.bytes, f.len, &consumed, err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_STRING_EQUAL(sc_prefix_session_id(reader), "");
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

/* Rewrites `original`'s user_id and checks the result is byte for byte `expected`, as Python
 * serializes it, with a gRPC length that matches. */
static void check_rewrite(const uint8_t *original, size_t original_len, const char *user_id,
                          const uint8_t *expected, size_t expected_len, size_t chunk)
{
    frame f = frame_message(original, original_len, 0);
    sc_prefix_reader *reader = sc_prefix_reader_new(0, "identity");
    char err[256] = "";
    size_t consumed = 0, out_len = 0, replaces = 0;
    uint8_t *out = NULL;
    CU_ASSERT_EQUAL_FATAL(feed_chunks(reader, f.bytes, f.len, chunk, &consumed, err, sizeof err),
                          SC_PREFIX_DONE);
    CU_ASSERT_EQUAL_FATAL(sc_prefix_rewrite_user_id(reader, user_id, &out, &out_len, &replaces,
                                                    err, sizeof err),
                          SC_PREFIX_DONE);
    CU_ASSERT_EQUAL(replaces, consumed);
    /* What goes upstream: the rewritten bytes, then the original rest, untouched. */
    size_t total = out_len + f.len - replaces;
    uint8_t *sent = malloc(total);
    CU_ASSERT_FATAL(sent != NULL);
    memcpy(sent, out, out_len);
    memcpy(sent + out_len, f.bytes + replaces, f.len - replaces);
    CU_ASSERT_EQUAL(total, expected_len + 5);
    uint32_t length = (uint32_t)sent[1] << 24 | (uint32_t)sent[2] << 16 |
                      (uint32_t)sent[3] << 8 | sent[4];
    CU_ASSERT_EQUAL(sent[0], 0);
    CU_ASSERT_EQUAL(length, total - 5);
    CU_ASSERT(total == expected_len + 5 && memcmp(sent + 5, expected, expected_len) == 0);
    /* And protobuf-c reads the new id back out of the whole rewritten message. */
    RequestPrefix *decoded = request_prefix__unpack(NULL, total - 5, sent + 5);
    CU_ASSERT_FATAL(decoded != NULL && decoded->user_context != NULL);
    CU_ASSERT_EQUAL(decoded->user_context->user_id.len, strlen(user_id));
    CU_ASSERT(memcmp(decoded->user_context->user_id.data, user_id, strlen(user_id)) == 0);
    request_prefix__free_unpacked(decoded, NULL);
    free(sent);
    free(out);
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

static void test_rewrite_longer_id(void)
{
    check_rewrite(execute_plan_alice, sizeof execute_plan_alice,
                  "bob.the.much.longer.identity@example.com", execute_plan_longer,
                  sizeof execute_plan_longer, 1);
}

static void test_rewrite_shorter_id(void)
{
    check_rewrite(execute_plan_alice, sizeof execute_plan_alice, "b", execute_plan_shorter,
                  sizeof execute_plan_shorter, 1 << 20);
}

static void test_rewrite_adds_user_context(void)
{
    check_rewrite(config_no_user, sizeof config_no_user, "carol", config_carol,
                  sizeof config_carol, 3);
}

static void check_compressed(int gzip, size_t chunk)
{
    frame f = frame_compressed(execute_plan_alice, sizeof execute_plan_alice, gzip);
    sc_prefix_reader *reader = sc_prefix_reader_new(0, gzip ? "gzip" : "deflate");
    char err[256] = "";
    size_t consumed = 0, out_len = 0, replaces = 0;
    uint8_t *out = NULL;
    CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len, chunk, &consumed, err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT(sc_prefix_compressed(reader));
    CU_ASSERT_STRING_EQUAL(sc_prefix_session_id(reader), "3f2c9a8e-7b41-4d2a-9c55-0e6f1a2b3c4d");
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_id(reader), "alice");
    size_t held_len = 0;
    const uint8_t *held = sc_prefix_held(reader, &held_len);
    CU_ASSERT(held_len == consumed && memcmp(held, f.bytes, held_len) == 0);
    CU_ASSERT_EQUAL(sc_prefix_rewrite_user_id(reader, "bob", &out, &out_len, &replaces, err,
                                              sizeof err),
                    SC_PREFIX_NOT_SUPPORTED);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "compressed"));
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

static void test_compressed_gzip(void)
{
    check_compressed(1, 1);
    check_compressed(1, 1 << 20);
}

static void test_compressed_deflate(void)
{
    check_compressed(0, 1);
    check_compressed(0, 5);
}

/* A compressed message with a 1 MiB incompressible plan: only the start is taken. */
static void test_compressed_large_plan_not_buffered(void)
{
    size_t prefix = vector_prefix_len(execute_plan_alice), plan = 1 << 20;
    size_t len = prefix + 4 + plan;
    uint8_t *body = malloc(len);
    CU_ASSERT_FATAL(body != NULL);
    memcpy(body, execute_plan_alice, prefix);
    body[prefix] = 0x1a; /* field 3, length 1 MiB as a varint */
    body[prefix + 1] = 0x80;
    body[prefix + 2] = 0x80;
    body[prefix + 3] = 0x40;
    uint32_t state = 12345;
    for (size_t i = 0; i < plan; i++) {
        state = state * 1103515245u + 12345u;
        body[prefix + 4 + i] = (uint8_t)(state >> 16);
    }
    frame f = frame_compressed(body, len, 1);
    sc_prefix_reader *reader = sc_prefix_reader_new(0, "gzip");
    char err[256] = "";
    size_t consumed = 0;
    CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len, 16384, &consumed, err, sizeof err),
                    SC_PREFIX_DONE);
    CU_ASSERT_STRING_EQUAL(sc_prefix_user_id(reader), "alice");
    CU_ASSERT(consumed <= 5 + SC_PREFIX_DEFAULT_MAX + 4096);
    CU_ASSERT(consumed < f.len / 4);
    sc_prefix_reader_free(reader);
    free(f.bytes);
    free(body);
}

/* Feeds a framed body and expects an error whose message contains `needle`. */
static void check_error(const uint8_t *body, size_t len, uint8_t flag, const char *encoding,
                        size_t max_prefix, const char *needle)
{
    frame f = frame_message(body, len, flag);
    sc_prefix_reader *reader = sc_prefix_reader_new(max_prefix, encoding);
    for (size_t chunk = 1; chunk <= f.len; chunk = chunk * 4 + 1) {
        sc_prefix_reader_free(reader);
        reader = sc_prefix_reader_new(max_prefix, encoding);
        char err[256] = "";
        size_t consumed = 0;
        CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len, chunk, &consumed, err, sizeof err),
                        SC_PREFIX_ERROR);
        if (strstr(err, needle) == NULL)
            fprintf(stderr, "\nexpected '%s' in '%s'\n", needle, err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
        CU_ASSERT_PTR_NULL(sc_prefix_session_id(reader));
        /* the error is sticky */
        err[0] = '\0';
        CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, f.bytes, f.len, &consumed, err, sizeof err),
                        SC_PREFIX_ERROR);
        CU_ASSERT_EQUAL(consumed, 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
    }
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

static void test_errors_header(void)
{
    static const uint8_t session[] = {0x0a, 0x01, 'x'};
    check_error(session, sizeof session, 2, NULL, 0, "compressed flag is 2");
    check_error(session, sizeof session, 1, NULL, 0, "grpc-encoding 'identity' is not supported");
    check_error(session, sizeof session, 1, "snappy", 0, "'snappy' is not supported");
    check_error(session, sizeof session, 1, "gzip", 0, "corrupt");
}

static void test_errors_tags(void)
{
    static const uint8_t bad_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t big_tag[] = {0x82, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t session_varint[] = {0x08, 0x01};
    static const uint8_t context_fixed32[] = {0x0a, 0x00, 0x15, 1, 2, 3, 4};
    static const uint8_t field_zero[] = {0x02, 0x00};
    static const uint8_t cut_tag[] = {0x0a, 0x00, 0x80};
    check_error(bad_varint, sizeof bad_varint, 0, NULL, 0, "malformed protobuf tag at byte 0");
    check_error(big_tag, sizeof big_tag, 0, NULL, 0, "malformed protobuf tag");
    check_error(session_varint, sizeof session_varint, 0, NULL, 0,
                "session_id (field 1) has wire type 0");
    check_error(context_fixed32, sizeof context_fixed32, 0, NULL, 0,
                "user_context (field 2) has wire type 5");
    check_error(field_zero, sizeof field_zero, 0, NULL, 0, "field number 0");
    check_error(cut_tag, sizeof cut_tag, 0, NULL, 0, "ends inside a protobuf tag at byte 2");
}

static void test_errors_lengths(void)
{
    static const uint8_t past_end[] = {0x0a, 0x14, 'a', 'b'};
    static const uint8_t cut_length[] = {0x12, 0x80};
    static const uint8_t bad_length[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t long_session[] = {0x0a, 0x20, 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                           'a',  'a',  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                           'a',  'a',  'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                           'a',  'a',  'a', 'a'};
    check_error(past_end, sizeof past_end, 0, NULL, 0, "run past the end of the 4 byte message");
    check_error(cut_length, sizeof cut_length, 0, NULL, 0,
                "user_context (field 2): message ends inside its length");
    check_error(bad_length, sizeof bad_length, 0, NULL, 0,
                "session_id (field 1): malformed length varint");
    check_error(long_session, sizeof long_session, 0, NULL, 16, "larger than the 16 byte limit");
}

static void test_errors_content(void)
{
    static const uint8_t bad_context[] = {0x12, 0x02, 0x08, 0xff};
    static const uint8_t nul_session[] = {0x0a, 0x03, 'a', 0x00, 'b', 0x1a, 0x00};
    static const uint8_t nul_user[] = {0x12, 0x04, 0x0a, 0x02, 'a', 0x00};
    check_error(bad_context, sizeof bad_context, 0, NULL, 0, "do not decode");
    check_error(nul_session, sizeof nul_session, 0, NULL, 0, "session_id contains a NUL byte");
    check_error(nul_user, sizeof nul_user, 0, NULL, 0, "user_context.user_id contains a NUL");
}

/* Compression cannot be used to slip a prefix past the limit. */
static void test_errors_compressed_limit(void)
{
    uint8_t body[3 + 1000];
    body[0] = 0x0a;
    body[1] = 0xe8; /* 1000 as a varint */
    body[2] = 0x07;
    memset(body + 3, 'a', sizeof body - 3);
    frame f = frame_compressed(body, sizeof body, 1);
    sc_prefix_reader *reader = sc_prefix_reader_new(64, "gzip");
    char err[256] = "";
    size_t consumed = 0;
    CU_ASSERT_EQUAL(feed_chunks(reader, f.bytes, f.len, 1 << 20, &consumed, err, sizeof err),
                    SC_PREFIX_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than the 64 byte limit"));
    sc_prefix_reader_free(reader);
    free(f.bytes);
}

static void test_rewrite_needs_done(void)
{
    sc_prefix_reader *reader = sc_prefix_reader_new(0, NULL);
    char err[256] = "";
    uint8_t *out = NULL;
    size_t out_len = 0, replaces = 0, consumed = 0;
    CU_ASSERT_EQUAL(sc_prefix_rewrite_user_id(reader, "x", &out, &out_len, &replaces, err,
                                              sizeof err),
                    SC_PREFIX_ERROR);
    CU_ASSERT_PTR_NULL(out);
    CU_ASSERT_EQUAL(sc_prefix_reader_feed(reader, execute_plan_alice, 3, &consumed, err,
                                          sizeof err),
                    SC_PREFIX_MORE);
    CU_ASSERT_EQUAL(sc_prefix_rewrite_user_id(reader, "x", &out, &out_len, &replaces, err,
                                              sizeof err),
                    SC_PREFIX_ERROR);
    sc_prefix_reader_free(reader);
}

static const unit_test_case cases[] = {
    {"reads ExecutePlanRequest fed all at once", test_execute_plan_all_at_once},
    {"reads ExecutePlanRequest fed byte by byte", test_execute_plan_byte_by_byte},
    {"reads ExecutePlanRequest fed in 7-byte chunks", test_execute_plan_odd_chunks},
    {"does not take the plan of a 100 MB message", test_large_plan_not_buffered},
    {"reads a message that is only the prefix", test_prefix_is_whole_message},
    {"rewrites user_id to a longer id", test_rewrite_longer_id},
    {"rewrites user_id to a shorter id", test_rewrite_shorter_id},
    {"rewrite adds a missing user_context", test_rewrite_adds_user_context},
    {"reads a gzip message; refuses to rewrite it", test_compressed_gzip},
    {"reads a deflate message", test_compressed_deflate},
    {"inflates only the start of a large message", test_compressed_large_plan_not_buffered},
    {"errors: gRPC header and compression", test_errors_header},
    {"errors: tags and wire types", test_errors_tags},
    {"errors: field lengths", test_errors_lengths},
    {"errors: field contents", test_errors_content},
    {"errors: compressed prefix over the limit", test_errors_compressed_limit},
    {"rewrite before the prefix is read fails", test_rewrite_needs_done},
    {NULL, NULL}};

UNIT_TEST_MAIN("spark_connect_prefix", cases)
