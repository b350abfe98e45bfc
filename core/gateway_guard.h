/*
 * gateway_guard.h - how much misbehaviour one gateway client connection
 * may show before it is ended, and its timeouts; plus the check of a
 * request body's gRPC message framing.  Pure logic: no I/O, no nghttp2
 * session calls.  The gateway feeds it events and acts on its verdicts.
 *
 * Why: nghttp2 1.52 (Debian 12) answers each bad frame correctly, but a
 * client may send correct-but-useless frames for ever (rapid reset, empty
 * DATA, PING/SETTINGS floods, ...), each costing the gateway work and,
 * for a request, an upstream stream.  The guard counts them per
 * connection and asks for GOAWAY ENHANCE_YOUR_CALM once a budget is
 * spent, so one abusive client loses its connection and nobody else
 * notices.
 *
 * What is counted (fixed windows of limits.window_ms, default 1 s; all
 * counters restart at each window; a budget of 0 means unlimited).  The
 * defaults sit far above what a real gRPC client (pyspark/grpc-core,
 * grpc-java, grpc-go) does and far below a flood (10^4..10^6 frames/s):
 *
 *   rst_stream      200  RST_STREAM from the client.  Clients cancel calls
 *                        (deadlines, interruptAll), at most one per open
 *                        stream at once: raise it to 2 x
 *                        max_concurrent_streams when that is larger.  A
 *                        rapid-reset attack sends thousands per second,
 *                        each one a request the gateway authenticates and
 *                        opens upstream.
 *   empty_data      50   DATA frames with no payload (padding aside) and no
 *                        END_STREAM.  gRPC clients send none; an empty
 *                        DATA with END_STREAM (half-close) is not counted.
 *   settings        50   SETTINGS without ACK (an ACK answers ours).  One at
 *                        the start, a few more when grpc-core retunes its
 *                        window.
 *   ping            50   PING frames since the gateway last sent HEADERS
 *                        or DATA on the connection.  Keepalive pings are
 *                        seconds apart; BDP pings (grpc-core, grpc-java)
 *                        come only while the gateway sends data, which
 *                        resets this count (grpc-go's server policy too).
 *   priority        100  PRIORITY frames.  gRPC clients send none.
 *   small_window_update 100  WINDOW_UPDATE with an increment below
 *                        limits.small_window_update (1024 bytes).  Real
 *                        clients reopen half a window at a time; 1-byte
 *                        updates make the gateway send 1-byte DATA frames.
 *   invalid         10   frames nghttp2 found invalid
 *                        (on_invalid_frame_recv), invalid header fields
 *                        (on_invalid_header) and requests refused for an
 *                        oversized header list.  Each one is already an
 *                        error answer; many mean a broken or hostile client.
 *
 * Timeouts (gateway_guard_check_timeouts, driven by one timer per
 * connection armed at gateway_guard_next_deadline):
 *
 *   header_timeout  10 s  (gateway.header_timeout) from accept to the
 *                         client's first frame (preface + SETTINGS), and
 *                         from the start of any HEADERS block to its end:
 *                         a slowloris client that dribbles a header block
 *                         holds a stream and HPACK state.  0 = never.
 *   idle_timeout    10 min (gateway.idle_timeout) without any open stream:
 *                         a graceful GOAWAY NO_ERROR, not an abuse (gRPC
 *                         clients reconnect on their next call).  PINGs do
 *                         not keep a connection busy.  0 = never.
 *   goaway_linger   2 s   after a verdict's GOAWAY, the client has this
 *                         long to read it before the socket is closed
 *                         anyway (GATEWAY_GUARD_HANG_UP).
 *
 * After the first verdict other than GATEWAY_GUARD_FINE the guard only
 * answers HANG_UP at the linger deadline, so the gateway ends a
 * connection once.
 */
#ifndef SPARKPLANE_CORE_GATEWAY_GUARD_H
#define SPARKPLANE_CORE_GATEWAY_GUARD_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gateway_guard_limits {
    uint64_t window_ms;              /* 1000: the counting window */
    uint32_t rst_stream;             /* 200 per window */
    uint32_t empty_data;             /* 50 */
    uint32_t settings;               /* 50 */
    uint32_t ping;                   /* 50 (reset by HEADERS/DATA the gateway sends) */
    uint32_t priority;               /* 100 */
    uint32_t small_window_update;    /* 100 */
    uint32_t invalid;                /* 10 */
    uint32_t small_window_increment; /* 1024: increments below this are "small" */
    uint64_t header_timeout_ms;      /* 10 s; 0 = never */
    uint64_t idle_timeout_ms;        /* 10 min; 0 = never */
    uint64_t goaway_linger_ms;       /* 2 s */
} gateway_guard_limits;

void gateway_guard_limits_default(gateway_guard_limits *limits);

/* What the gateway does with a connection. */
typedef enum gateway_guard_verdict {
    GATEWAY_GUARD_FINE = 0, /* carry on */
    GATEWAY_GUARD_ABUSE,    /* a budget is spent: GOAWAY ENHANCE_YOUR_CALM, stop reading */
    GATEWAY_GUARD_TOO_SLOW, /* preface or a header block not complete in time: same */
    GATEWAY_GUARD_IDLE,     /* no stream for idle_timeout: graceful GOAWAY NO_ERROR */
    GATEWAY_GUARD_HANG_UP   /* our GOAWAY was not read within goaway_linger: close now */
} gateway_guard_verdict;

/* The kinds of frames with a budget, in the order of the limits' fields. */
typedef enum gateway_guard_kind {
    GATEWAY_GUARD_RST_STREAM = 0,
    GATEWAY_GUARD_EMPTY_DATA,
    GATEWAY_GUARD_SETTINGS,
    GATEWAY_GUARD_PING,
    GATEWAY_GUARD_PRIORITY,
    GATEWAY_GUARD_SMALL_WINDOW_UPDATE,
    GATEWAY_GUARD_INVALID,
    GATEWAY_GUARD_KINDS
} gateway_guard_kind;

/* One per client connection, embedded in it.  Fields are private. */
typedef struct gateway_guard {
    const gateway_guard_limits *limits; /* shared, may change on reload */
    uint64_t window_start_ms;
    uint32_t counts[GATEWAY_GUARD_KINDS];
    uint64_t opened_ms;
    int greeted;                 /* the client's first frame arrived */
    int32_t header_block_stream; /* 0: no HEADERS block in progress */
    uint64_t header_block_since_ms;
    size_t open_streams;
    uint64_t idle_since_ms;      /* when open_streams last became 0 */
    gateway_guard_verdict ended; /* the first verdict, FINE while none */
    uint64_t ended_ms;
    char reason[192];
} gateway_guard;

/* `limits` must outlive the guard; later changes to it apply at once. */
void gateway_guard_init(gateway_guard *guard, const gateway_guard_limits *limits, uint64_t now_ms);

/* Every frame received (nghttp2 on_frame_recv).  ABUSE when a budget is spent. */
gateway_guard_verdict gateway_guard_on_frame(gateway_guard *guard, const nghttp2_frame *frame,
                                             uint64_t now_ms);

/* An invalid frame or header field, or a request refused for its header list size. */
gateway_guard_verdict gateway_guard_on_invalid(gateway_guard *guard, uint64_t now_ms);

/* A HEADERS block begins (nghttp2 on_begin_headers, any category); `request` when it opens
 * a stream the gateway keeps (paired with one gateway_guard_on_stream_end). */
void gateway_guard_on_begin_headers(gateway_guard *guard, int32_t stream_id, int request,
                                    uint64_t now_ms);

/* A stream opened by a request HEADERS is gone (the gateway freed it). */
void gateway_guard_on_stream_end(gateway_guard *guard, int32_t stream_id, uint64_t now_ms);

/* The gateway sent a frame of this type (nghttp2 on_frame_send); HEADERS and DATA reset the
 * PING count. */
void gateway_guard_on_sent(gateway_guard *guard, uint8_t type);

/* When gateway_guard_check_timeouts may next answer something: an absolute time in ms, or
 * UINT64_MAX for never (as things stand: events may bring it forward). */
uint64_t gateway_guard_next_deadline(const gateway_guard *guard);

/* TOO_SLOW, IDLE, HANG_UP or FINE at now_ms. */
gateway_guard_verdict gateway_guard_check_timeouts(gateway_guard *guard, uint64_t now_ms);

/* Why the last verdict was given, for the log ("201 RST_STREAM frames within 1 s ..."). */
const char *gateway_guard_reason(const gateway_guard *guard);

/* A metric label for a verdict: "abuse", "header_timeout", "idle", "goaway_timeout", "". */
const char *gateway_guard_verdict_label(gateway_guard_verdict verdict);

/* The GOAWAY error code for a verdict (ENHANCE_YOUR_CALM or NO_ERROR). */
uint32_t gateway_guard_goaway_code(gateway_guard_verdict verdict);

/*
 * The request body's gRPC framing, per stream: every message is a 1-byte
 * compressed flag (0 or 1), a 4-byte big-endian length and that many
 * bytes.  The meter reads only the prefixes, so it costs nothing per
 * byte; it refuses a message whose declared length is over the limit
 * before its bytes arrive (a compressed message is judged by its
 * compressed length: inflating is the server's business) and a body that
 * ends inside a message.
 */
typedef struct gateway_grpc_meter {
    uint8_t prefix[5];
    size_t prefix_have; /* bytes of the current message's prefix seen */
    uint64_t body_left; /* bytes of the current message still to come */
    uint64_t messages;  /* prefixes read */
} gateway_grpc_meter;

#define GATEWAY_GRPC_METER_INIT                                                                    \
    {                                                                                              \
        {0}, 0, 0, 0                                                                               \
    }

/* A body chunk.  0, or the gRPC status to refuse the request with and a message for the
 * client: 8 (RESOURCE_EXHAUSTED) for a message over max_message_bytes, 3
 * (INVALID_ARGUMENT) for a compressed flag other than 0 or 1.  Feed nothing after an error. */
int gateway_grpc_meter_feed(gateway_grpc_meter *meter, const uint8_t *data, size_t len,
                            uint64_t max_message_bytes, char *message, size_t message_size);

/* The body ended (END_STREAM).  0 when it ended between messages, else 3 (INVALID_ARGUMENT)
 * and a message saying how much of which message was missing. */
int gateway_grpc_meter_finish(const gateway_grpc_meter *meter, char *message, size_t message_size);

#endif
