/*
 * spark_connect_prefix.h - reads session_id and user_context from the first gRPC message of a
 * Spark Connect request, without buffering the message.
 *
 * Every request of SparkConnectService starts with `string session_id = 1;` and
 * `UserContext user_context = 2;` (checked against pyspark 4.0.5's protos for all ten RPCs) and
 * encoders write fields in field-number order, so the two lead the wire.  The reader is fed the
 * request's DATA bytes as they arrive; it takes in only the 5-byte gRPC message header, the
 * leading fields 1 and 2, and the tag of the field after them (at most max_prefix bytes of
 * protobuf), then stops.  Everything it did not take - the plan, possibly many megabytes -
 * streams on unchanged.
 *
 *   sc_prefix_reader *r = sc_prefix_reader_new(SC_PREFIX_DEFAULT_MAX, grpc_encoding_header);
 *   rc = sc_prefix_reader_feed(r, data, len, &consumed, err, sizeof err);
 *       SC_PREFIX_MORE  - all of data was taken; feed the next chunk.
 *       SC_PREFIX_DONE  - the fields are read; data[consumed..len) was not taken.
 *       SC_PREFIX_ERROR - err says why (malformed, too large, corrupt compression).
 *   On DONE, send upstream either the held bytes (sc_prefix_held: exactly what the reader
 *   consumed, unchanged) or the rewritten ones (sc_prefix_rewrite_user_id), then the rest.
 *
 * Compressed messages (flag 1, grpc-encoding gzip or deflate) are inflated incrementally just
 * far enough to read the prefix; their held bytes are the compressed ones.  Rewriting one is
 * SC_PREFIX_NOT_SUPPORTED: it would mean re-compressing, and so buffering, the whole message.
 */
#ifndef SPARKPLANE_CORE_SPARK_CONNECT_PREFIX_H
#define SPARKPLANE_CORE_SPARK_CONNECT_PREFIX_H

#include <stddef.h>
#include <stdint.h>

enum {
    SC_PREFIX_DONE = 0,
    SC_PREFIX_MORE = 1,
    SC_PREFIX_ERROR = -1,
    SC_PREFIX_NOT_SUPPORTED = -2,
};

/* A session id and a user context are a few hundred bytes; 64 KiB is generous. */
#define SC_PREFIX_DEFAULT_MAX (64 * 1024)

/* The gRPC length-prefixed message header: compressed flag + 4-byte big-endian length. */
#define SC_PREFIX_GRPC_HEADER 5

typedef struct sc_prefix_reader sc_prefix_reader;

/* max_prefix bounds the protobuf bytes of fields 1 and 2 (0 = SC_PREFIX_DEFAULT_MAX).
 * grpc_encoding is the request's grpc-encoding header value (NULL = identity); it matters only
 * if the message is flagged compressed.  Returns NULL only when out of memory. */
sc_prefix_reader *sc_prefix_reader_new(size_t max_prefix, const char *grpc_encoding);
void sc_prefix_reader_free(sc_prefix_reader *reader);

/* Feeds the next bytes of the request's DATA stream.  *consumed says how many bytes of data
 * the reader took (all of them on MORE).  After DONE or ERROR further calls return the same
 * code and consume nothing; err is filled again on ERROR. */
int sc_prefix_reader_feed(sc_prefix_reader *reader, const uint8_t *data, size_t len,
                          size_t *consumed, char *err, size_t err_size);

/* After DONE: the fields, NUL-terminated, "" when absent (proto3 defaults).  NULL before. */
const char *sc_prefix_session_id(const sc_prefix_reader *reader);
const char *sc_prefix_user_id(const sc_prefix_reader *reader);
const char *sc_prefix_user_name(const sc_prefix_reader *reader);

/* After the header: 1 if the message is compressed, its length from the gRPC header. */
int sc_prefix_compressed(const sc_prefix_reader *reader);
uint32_t sc_prefix_message_length(const sc_prefix_reader *reader);

/* The bytes the reader consumed so far, unchanged (header + prefix + the next field's tag). */
const uint8_t *sc_prefix_held(const sc_prefix_reader *reader, size_t *len);

/* After DONE, for an uncompressed message: builds in *out (caller frees) the bytes to send in
 * place of the *replaces_len held bytes - a new gRPC header whose length is adjusted by the
 * size change, the prefix with user_context.user_id set to user_id (user_name and extensions
 * kept), and the held bytes after the prefix.  The rest of the message follows unchanged.
 * Returns SC_PREFIX_DONE, SC_PREFIX_NOT_SUPPORTED for a compressed message, or
 * SC_PREFIX_ERROR; err says why. */
int sc_prefix_rewrite_user_id(const sc_prefix_reader *reader, const char *user_id, uint8_t **out,
                              size_t *out_len, size_t *replaces_len, char *err, size_t err_size);

#endif
