/*
 * spark_connect_prefix.c - incremental reader of a Spark Connect request's leading fields.
 *
 * State machine: HEADER (collect the 5-byte gRPC header) -> BODY (collect protobuf bytes) ->
 * DONE or FAILED.  In BODY the reader walks protobuf tags and length varints by hand, only to
 * find where the leading run of fields 1 and 2 ends; it asks for exactly the bytes the next step
 * needs, so it never takes a byte past the tag that follows the prefix.  The prefix is then
 * decoded by protobuf-c with our own proto/spark_connect_prefix.proto.
 *
 * Uncompressed, the protobuf bytes are the held bytes after the header.  Compressed, zlib
 * inflates into a separate buffer of max_prefix bytes, fed only the compressed bytes it asks
 * for; held (compressed) bytes are bounded too, so a stream of empty deflate blocks cannot grow
 * memory.
 */
#include "spark_connect_prefix.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "spark_connect_prefix.pb-c.h"

/* Room after the prefix for the next field's tag (a varint is at most 10 bytes). */
#define PREFIX_TAIL_ROOM 16
/* Compressed input allowed per byte of prefix, plus gzip header room (file name, comment). */
#define PREFIX_COMPRESSED_SLACK 4096

enum prefix_state { PREFIX_HEADER, PREFIX_BODY, PREFIX_DONE, PREFIX_FAILED };
enum prefix_codec { CODEC_IDENTITY, CODEC_ZLIB, CODEC_UNKNOWN };

struct sc_prefix_reader {
    enum prefix_state state;
    enum prefix_codec codec;
    char encoding[32];
    size_t max_prefix;
    int compressed;
    uint32_t message_length;
    uint8_t *held; /* original bytes: header + body bytes taken */
    size_t held_len, held_alloc, held_cap;
    uint8_t *inflated; /* protobuf bytes of a compressed message */
    size_t inflated_len;
    z_stream zstream;
    int zstream_ready, zstream_end;
    size_t scan_pos;   /* protobuf bytes [0, scan_pos) are whole fields 1 or 2 */
    size_t want;       /* protobuf bytes the next scan step needs */
    size_t prefix_end; /* on DONE: length of the prefix */
    RequestPrefix *decoded;
    char *session_id, *user_id, *user_name;
    char error[256];
};

static int prefix_fail(sc_prefix_reader *reader, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int prefix_fail(sc_prefix_reader *reader, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(reader->error, sizeof reader->error, fmt, args);
    va_end(args);
    reader->state = PREFIX_FAILED;
    return SC_PREFIX_ERROR;
}

static void prefix_copy_error(const char *message, char *err, size_t err_size)
{
    if (err != NULL && err_size > 0)
        snprintf(err, err_size, "%s", message);
}

sc_prefix_reader *sc_prefix_reader_new(size_t max_prefix, const char *grpc_encoding)
{
    sc_prefix_reader *reader = calloc(1, sizeof *reader);
    if (reader == NULL)
        return NULL;
    reader->max_prefix = max_prefix ? max_prefix : SC_PREFIX_DEFAULT_MAX;
    reader->state = PREFIX_HEADER;
    if (grpc_encoding == NULL || grpc_encoding[0] == '\0' ||
        strcmp(grpc_encoding, "identity") == 0)
        reader->codec = CODEC_IDENTITY;
    else if (strcmp(grpc_encoding, "gzip") == 0 || strcmp(grpc_encoding, "deflate") == 0)
        reader->codec = CODEC_ZLIB;
    else
        reader->codec = CODEC_UNKNOWN; /* fine as long as the message is not compressed */
    snprintf(reader->encoding, sizeof reader->encoding, "%s",
             grpc_encoding ? grpc_encoding : "identity");
    return reader;
}

void sc_prefix_reader_free(sc_prefix_reader *reader)
{
    if (reader == NULL)
        return;
    if (reader->zstream_ready)
        inflateEnd(&reader->zstream);
    if (reader->decoded != NULL)
        request_prefix__free_unpacked(reader->decoded, NULL);
    free(reader->held);
    free(reader->inflated);
    free(reader->session_id);
    free(reader->user_id);
    free(reader->user_name);
    free(reader);
}

/* Appends to the held bytes, growing the buffer (doubling) but never past held_cap. */
static int prefix_hold(sc_prefix_reader *reader, const uint8_t *data, size_t len)
{
    size_t need = reader->held_len + len;
    if (len == 0)
        return 0;
    if (need > reader->held_cap)
        return -1;
    if (need > reader->held_alloc) {
        size_t size = reader->held_alloc ? reader->held_alloc * 2 : 256;
        if (size < need)
            size = need;
        if (size > reader->held_cap)
            size = reader->held_cap;
        uint8_t *grown = realloc(reader->held, size);
        if (grown == NULL)
            return -1;
        reader->held = grown;
        reader->held_alloc = size;
    }
    memcpy(reader->held + reader->held_len, data, len);
    reader->held_len = need;
    return 0;
}

static const uint8_t *prefix_plain(const sc_prefix_reader *reader, size_t *len)
{
    if (reader->compressed) {
        *len = reader->inflated_len;
        return reader->inflated;
    }
    *len = reader->held_len - SC_PREFIX_GRPC_HEADER;
    return reader->held + SC_PREFIX_GRPC_HEADER;
}

/* Reads a varint: returns its size, 0 if the bytes end inside it, -1 if it is malformed. */
static int prefix_read_varint(const uint8_t *bytes, size_t len, uint64_t *value)
{
    uint64_t result = 0;
    for (size_t i = 0; i < 10; i++) {
        if (i == len)
            return 0;
        if (i == 9 && bytes[i] > 1)
            return -1; /* more than 64 bits */
        result |= (uint64_t)(bytes[i] & 0x7f) << (7 * i);
        if ((bytes[i] & 0x80) == 0) {
            *value = result;
            return (int)i + 1;
        }
    }
    return -1;
}

static int prefix_start_inflate(sc_prefix_reader *reader)
{
    if (reader->codec != CODEC_ZLIB)
        return prefix_fail(reader,
                           "grpc message is compressed but grpc-encoding '%s' is not supported "
                           "(identity, gzip or deflate)",
                           reader->encoding);
    reader->inflated = malloc(reader->max_prefix + PREFIX_TAIL_ROOM);
    if (reader->inflated == NULL)
        return prefix_fail(reader, "out of memory for the inflated request prefix");
    /* 15 + 32: accept both the zlib (deflate) and the gzip wrapper. */
    if (inflateInit2(&reader->zstream, 15 + 32) != Z_OK)
        return prefix_fail(reader, "cannot start zlib inflate");
    reader->zstream_ready = 1;
    reader->held_cap += reader->max_prefix + PREFIX_COMPRESSED_SLACK;
    return SC_PREFIX_MORE;
}

static int prefix_parse_header(sc_prefix_reader *reader)
{
    const uint8_t *header = reader->held;
    if (header[0] > 1)
        return prefix_fail(reader, "grpc message header: compressed flag is %u, expected 0 or 1",
                           header[0]);
    reader->compressed = header[0];
    reader->message_length = (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 |
                             (uint32_t)header[3] << 8 | (uint32_t)header[4];
    reader->state = PREFIX_BODY;
    if (reader->compressed)
        return prefix_start_inflate(reader);
    reader->held_cap = SC_PREFIX_GRPC_HEADER + reader->max_prefix + PREFIX_TAIL_ROOM;
    return SC_PREFIX_MORE;
}

/* True when every protobuf byte of the message has been taken. */
static int prefix_body_complete(const sc_prefix_reader *reader)
{
    size_t plain_len;
    prefix_plain(reader, &plain_len);
    if (reader->compressed)
        return reader->zstream_end ||
               reader->held_len - SC_PREFIX_GRPC_HEADER == reader->message_length;
    return plain_len == reader->message_length;
}

static const char *prefix_field_name(uint64_t field)
{
    return field == 1 ? "session_id (field 1)" : "user_context (field 2)";
}

/* Checks one length-delimited field 1 or 2 starting at `pos`, whose tag is `tag_size` bytes.
 * Returns MORE with want set, or ERROR; advances scan_pos over a whole field. */
static int prefix_scan_field(sc_prefix_reader *reader, const uint8_t *plain, size_t plain_len,
                             uint64_t field, int tag_size)
{
    size_t pos = reader->scan_pos + (size_t)tag_size;
    uint64_t length = 0;
    int size = prefix_read_varint(plain + pos, plain_len - pos, &length);
    if (size < 0)
        return prefix_fail(reader, "%s: malformed length varint at byte %zu",
                           prefix_field_name(field), pos);
    if (size == 0) {
        if (prefix_body_complete(reader))
            return prefix_fail(reader, "%s: message ends inside its length",
                               prefix_field_name(field));
        reader->want = 1;
        return SC_PREFIX_MORE;
    }
    size_t start = pos + (size_t)size;
    if (length > reader->max_prefix || start + length > reader->max_prefix)
        return prefix_fail(reader,
                           "%s: %llu bytes makes the request prefix larger than the %zu byte "
                           "limit",
                           prefix_field_name(field), (unsigned long long)length,
                           reader->max_prefix);
    if (!reader->compressed && start + length > reader->message_length)
        return prefix_fail(reader, "%s: %llu bytes run past the end of the %u byte message",
                           prefix_field_name(field), (unsigned long long)length,
                           reader->message_length);
    if (plain_len < start + length) {
        if (prefix_body_complete(reader))
            return prefix_fail(reader, "%s: message ends inside the field",
                               prefix_field_name(field));
        reader->want = start + length - plain_len;
        return SC_PREFIX_MORE;
    }
    reader->scan_pos = start + length;
    return SC_PREFIX_DONE;
}

/* Walks the protobuf bytes taken so far.  Returns DONE (prefix_end set), MORE (want set) or
 * ERROR. */
static int prefix_scan(sc_prefix_reader *reader)
{
    size_t plain_len;
    const uint8_t *plain = prefix_plain(reader, &plain_len);
    for (;;) {
        size_t pos = reader->scan_pos;
        uint64_t tag = 0;
        int size = prefix_read_varint(plain + pos, plain_len - pos, &tag);
        if (size < 0 || tag > UINT32_MAX)
            return prefix_fail(reader, "malformed protobuf tag at byte %zu of the message", pos);
        if (size == 0 && pos == plain_len && prefix_body_complete(reader))
            break; /* the message holds nothing but the prefix */
        if (size == 0 && prefix_body_complete(reader))
            return prefix_fail(reader, "message ends inside a protobuf tag at byte %zu", pos);
        if (size == 0) {
            reader->want = 1;
            return SC_PREFIX_MORE;
        }
        uint64_t field = tag >> 3, wire_type = tag & 7;
        if (field == 0)
            return prefix_fail(reader, "invalid protobuf tag (field number 0) at byte %zu", pos);
        if (field != 1 && field != 2)
            break;
        if (wire_type != 2)
            return prefix_fail(reader, "%s has wire type %u, expected 2 (length-delimited)",
                               prefix_field_name(field), (unsigned)wire_type);
        int rc = prefix_scan_field(reader, plain, plain_len, field, size);
        if (rc != SC_PREFIX_DONE)
            return rc;
    }
    reader->prefix_end = reader->scan_pos;
    return SC_PREFIX_DONE;
}

/* Uncompressed: takes exactly the bytes the scan asked for. */
static size_t prefix_take_plain(sc_prefix_reader *reader, const uint8_t *data, size_t len)
{
    size_t plain_len;
    prefix_plain(reader, &plain_len);
    size_t take = reader->want;
    if (take > len)
        take = len;
    if (take > reader->message_length - plain_len)
        take = reader->message_length - plain_len;
    if (prefix_hold(reader, data, take) != 0) {
        prefix_fail(reader, "request prefix is larger than the %zu byte limit",
                    reader->max_prefix);
        return 0;
    }
    return take;
}

/* Compressed: inflates as far as the output buffer allows, holding the input zlib took. */
static size_t prefix_take_compressed(sc_prefix_reader *reader, const uint8_t *data, size_t len)
{
    size_t body_taken = reader->held_len - SC_PREFIX_GRPC_HEADER;
    size_t offer = len;
    if (offer > reader->message_length - body_taken)
        offer = reader->message_length - body_taken;
    if (offer > reader->held_cap - reader->held_len)
        offer = reader->held_cap - reader->held_len;
    size_t room = reader->max_prefix + PREFIX_TAIL_ROOM - reader->inflated_len;
    if (room == 0) {
        prefix_fail(reader, "request prefix is larger than the %zu byte limit",
                    reader->max_prefix);
        return 0;
    }
    if (offer == 0) {
        prefix_fail(reader, "compressed request prefix takes more than %zu compressed bytes",
                    reader->held_cap - SC_PREFIX_GRPC_HEADER);
        return 0;
    }
    z_stream *z = &reader->zstream;
    z->next_in = (Bytef *)(uintptr_t)data; /* zlib's API is not const */
    z->avail_in = (uInt)(offer > UINT32_MAX ? UINT32_MAX : offer);
    z->next_out = reader->inflated + reader->inflated_len;
    z->avail_out = (uInt)room;
    size_t before = reader->inflated_len;
    int rc = inflate(z, Z_NO_FLUSH);
    size_t used = (size_t)(z->next_in - data);
    reader->inflated_len = (size_t)(z->next_out - reader->inflated);
    if (rc == Z_STREAM_END)
        reader->zstream_end = 1;
    else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        prefix_fail(reader, "compressed grpc message is corrupt: %s",
                    z->msg ? z->msg : "inflate failed");
        return 0;
    } else if (used == 0 && reader->inflated_len == before) {
        /* With input and room zlib always moves; if not, stop rather than spin. */
        prefix_fail(reader, "compressed grpc message: inflate made no progress");
        return 0;
    }
    if (prefix_hold(reader, data, used) != 0) {
        prefix_fail(reader, "out of memory holding the compressed request prefix");
        return 0;
    }
    return used;
}

/* Copies a bytes field into a NUL-terminated string; refuses an embedded NUL, which a C string
 * would silently cut short while the Spark server sees the whole id. */
static int prefix_copy_field(sc_prefix_reader *reader, const ProtobufCBinaryData *field,
                             const char *name, char **out)
{
    if (field->len > 0 && memchr(field->data, '\0', field->len) != NULL)
        return prefix_fail(reader, "%s contains a NUL byte", name);
    *out = malloc(field->len + 1);
    if (*out == NULL)
        return prefix_fail(reader, "out of memory copying %s", name);
    if (field->len > 0)
        memcpy(*out, field->data, field->len);
    (*out)[field->len] = '\0';
    return SC_PREFIX_DONE;
}

static int prefix_decode(sc_prefix_reader *reader)
{
    size_t plain_len;
    const uint8_t *plain = prefix_plain(reader, &plain_len);
    reader->decoded = request_prefix__unpack(NULL, reader->prefix_end, plain);
    if (reader->decoded == NULL)
        return prefix_fail(reader, "session_id/user_context do not decode as protobuf "
                                   "(malformed user_context)");
    static const ProtobufCBinaryData empty = {0, NULL};
    const UserContext *context = reader->decoded->user_context;
    if (prefix_copy_field(reader, &reader->decoded->session_id, "session_id",
                          &reader->session_id) != SC_PREFIX_DONE ||
        prefix_copy_field(reader, context ? &context->user_id : &empty, "user_context.user_id",
                          &reader->user_id) != SC_PREFIX_DONE ||
        prefix_copy_field(reader, context ? &context->user_name : &empty,
                          "user_context.user_name", &reader->user_name) != SC_PREFIX_DONE)
        return SC_PREFIX_ERROR;
    if (reader->zstream_ready) {
        inflateEnd(&reader->zstream);
        reader->zstream_ready = 0;
    }
    reader->state = PREFIX_DONE;
    return SC_PREFIX_DONE;
}

/* Takes header bytes; returns MORE or ERROR. */
static int prefix_feed_header(sc_prefix_reader *reader, const uint8_t *data, size_t len,
                              size_t *used)
{
    reader->held_cap = SC_PREFIX_GRPC_HEADER;
    size_t take = SC_PREFIX_GRPC_HEADER - reader->held_len;
    if (take > len)
        take = len;
    if (prefix_hold(reader, data, take) != 0)
        return prefix_fail(reader, "out of memory holding the grpc message header");
    *used = take;
    if (reader->held_len < SC_PREFIX_GRPC_HEADER)
        return SC_PREFIX_MORE;
    return prefix_parse_header(reader);
}

int sc_prefix_reader_feed(sc_prefix_reader *reader, const uint8_t *data, size_t len,
                          size_t *consumed, char *err, size_t err_size)
{
    int rc = SC_PREFIX_MORE;
    *consumed = 0;
    while (reader->state == PREFIX_HEADER || reader->state == PREFIX_BODY) {
        size_t used = 0;
        if (reader->state == PREFIX_HEADER) {
            if (len == 0)
                return SC_PREFIX_MORE;
            rc = prefix_feed_header(reader, data, len, &used);
        } else {
            rc = prefix_scan(reader);
            if (rc == SC_PREFIX_DONE)
                rc = prefix_decode(reader);
            else if (rc == SC_PREFIX_MORE && len == 0)
                return SC_PREFIX_MORE;
            else if (rc == SC_PREFIX_MORE)
                used = reader->compressed ? prefix_take_compressed(reader, data, len)
                                          : prefix_take_plain(reader, data, len);
        }
        data += used;
        len -= used;
        *consumed += used;
    }
    if (reader->state == PREFIX_FAILED) {
        prefix_copy_error(reader->error, err, err_size);
        return SC_PREFIX_ERROR;
    }
    return SC_PREFIX_DONE;
}

const char *sc_prefix_session_id(const sc_prefix_reader *reader)
{
    return reader->state == PREFIX_DONE ? reader->session_id : NULL;
}

const char *sc_prefix_user_id(const sc_prefix_reader *reader)
{
    return reader->state == PREFIX_DONE ? reader->user_id : NULL;
}

const char *sc_prefix_user_name(const sc_prefix_reader *reader)
{
    return reader->state == PREFIX_DONE ? reader->user_name : NULL;
}

int sc_prefix_compressed(const sc_prefix_reader *reader)
{
    return reader->compressed;
}

uint32_t sc_prefix_message_length(const sc_prefix_reader *reader)
{
    return reader->message_length;
}

const uint8_t *sc_prefix_held(const sc_prefix_reader *reader, size_t *len)
{
    *len = reader->held_len;
    return reader->held;
}

static void prefix_write_header(uint8_t *out, uint32_t length)
{
    out[0] = 0;
    out[1] = (uint8_t)(length >> 24);
    out[2] = (uint8_t)(length >> 16);
    out[3] = (uint8_t)(length >> 8);
    out[4] = (uint8_t)length;
}

int sc_prefix_rewrite_user_id(const sc_prefix_reader *reader, const char *user_id, uint8_t **out,
                              size_t *out_len, size_t *replaces_len, char *err, size_t err_size)
{
    *out = NULL;
    if (reader->state != PREFIX_DONE || user_id == NULL) {
        prefix_copy_error("rewrite of user_context.user_id needs a fully read prefix and an id",
                          err, err_size);
        return SC_PREFIX_ERROR;
    }
    if (reader->compressed) {
        prefix_copy_error("cannot rewrite user_context.user_id of a compressed grpc message",
                          err, err_size);
        return SC_PREFIX_NOT_SUPPORTED;
    }
    /* Shallow copies: packing only reads, and user_name and unknown fields (extensions) stay. */
    RequestPrefix message = *reader->decoded;
    UserContext context;
    if (reader->decoded->user_context != NULL)
        context = *reader->decoded->user_context;
    else
        user_context__init(&context);
    context.user_id.data = (uint8_t *)(uintptr_t)user_id;
    context.user_id.len = strlen(user_id);
    message.user_context = &context;

    size_t prefix_len = request_prefix__get_packed_size(&message);
    size_t tail = reader->held_len - SC_PREFIX_GRPC_HEADER - reader->prefix_end;
    uint64_t length = (uint64_t)reader->message_length - reader->prefix_end + prefix_len;
    if (length > UINT32_MAX) {
        prefix_copy_error("rewritten grpc message would exceed 4 GiB", err, err_size);
        return SC_PREFIX_ERROR;
    }
    size_t total = SC_PREFIX_GRPC_HEADER + prefix_len + tail;
    uint8_t *bytes = malloc(total);
    if (bytes == NULL) {
        prefix_copy_error("out of memory rewriting user_context.user_id", err, err_size);
        return SC_PREFIX_ERROR;
    }
    prefix_write_header(bytes, (uint32_t)length);
    request_prefix__pack(&message, bytes + SC_PREFIX_GRPC_HEADER);
    memcpy(bytes + SC_PREFIX_GRPC_HEADER + prefix_len,
           reader->held + SC_PREFIX_GRPC_HEADER + reader->prefix_end, tail);
    *out = bytes;
    *out_len = total;
    *replaces_len = reader->held_len;
    return SC_PREFIX_DONE;
}
