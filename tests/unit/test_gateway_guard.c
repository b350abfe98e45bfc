/*
 * test_gateway_guard.c - when the gateway ends a client connection, as
 * that client would notice: floods of RST_STREAM, empty DATA, SETTINGS,
 * PING, PRIORITY, tiny WINDOW_UPDATEs and invalid frames end it with
 * ENHANCE_YOUR_CALM and a reason that says what and how many, while what
 * real gRPC clients do (cancel calls, BDP pings during downloads, a
 * half-close with an empty DATA, window updates) never does; a slow
 * preface or header block ends it after header_timeout, no stream for
 * idle_timeout ends it gracefully; and the gRPC framing meter refuses an
 * oversized or cut-off request message with a message naming the limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/gateway_guard.h"
#include "unit_test.h"

static gateway_guard_limits limits;

static void setup(gateway_guard *guard, uint64_t now)
{
    gateway_guard_limits_default(&limits);
    gateway_guard_init(guard, &limits, now);
}

static nghttp2_frame frame_of(uint8_t type, uint8_t flags, size_t length)
{
    nghttp2_frame frame;
    memset(&frame, 0, sizeof(frame));
    frame.hd.type = type;
    frame.hd.flags = flags;
    frame.hd.length = length;
    frame.hd.stream_id = type == NGHTTP2_SETTINGS || type == NGHTTP2_PING ? 0 : 1;
    return frame;
}

/* Sends `count` copies of frame at now; returns how many went through before a verdict. */
static int send_many(gateway_guard *guard, const nghttp2_frame *frame, int count, uint64_t now,
                     gateway_guard_verdict *verdict)
{
    *verdict = GATEWAY_GUARD_FINE;
    for (int i = 0; i < count; i++) {
        *verdict = gateway_guard_on_frame(guard, frame, now);
        if (*verdict != GATEWAY_GUARD_FINE)
            return i;
    }
    return count;
}

static void expect_reason(const gateway_guard *guard, const char *expected)
{
    if (strcmp(gateway_guard_reason(guard), expected) != 0)
        fprintf(stderr, "\n    reason '%s'\n    expected '%s'", gateway_guard_reason(guard),
                expected);
    CU_ASSERT_STRING_EQUAL(gateway_guard_reason(guard), expected);
}

static void test_rapid_reset_ends_the_connection(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 1000);
    nghttp2_frame rst = frame_of(NGHTTP2_RST_STREAM, 0, 4);
    CU_ASSERT_EQUAL(send_many(&guard, &rst, 1000, 1500, &verdict), 200);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);
    expect_reason(&guard, "201 RST_STREAM frames within 1 s (at most 200)");
    CU_ASSERT_EQUAL(gateway_guard_goaway_code(verdict), NGHTTP2_ENHANCE_YOUR_CALM);
    CU_ASSERT_STRING_EQUAL(gateway_guard_verdict_label(verdict), "abuse");
    /* one verdict per connection: the gateway ends it once */
    CU_ASSERT_EQUAL(gateway_guard_on_frame(&guard, &rst, 1500), GATEWAY_GUARD_FINE);
}

static void test_cancelling_calls_steadily_is_fine(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame rst = frame_of(NGHTTP2_RST_STREAM, 0, 4);
    /* 150 cancellations a second for a minute: a busy client, not an attack */
    for (uint64_t second = 0; second < 60; second++)
        CU_ASSERT_EQUAL(send_many(&guard, &rst, 150, second * 1000 + 10, &verdict), 150);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_FINE);
}

static void test_empty_data_without_end_stream_is_counted(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame half_close = frame_of(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 0);
    nghttp2_frame data = frame_of(NGHTTP2_DATA, 0, 100);
    CU_ASSERT_EQUAL(send_many(&guard, &half_close, 1000, 10, &verdict), 1000);
    CU_ASSERT_EQUAL(send_many(&guard, &data, 1000, 10, &verdict), 1000);
    nghttp2_frame padded_empty = frame_of(NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 8);
    padded_empty.data.padlen = 8;
    CU_ASSERT_EQUAL(send_many(&guard, &padded_empty, 10, 10, &verdict), 10);
    nghttp2_frame empty = frame_of(NGHTTP2_DATA, 0, 0);
    CU_ASSERT_EQUAL(send_many(&guard, &empty, 1000, 10, &verdict), 40);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);
    expect_reason(&guard, "51 empty DATA frames within 1 s (at most 50)");
}

static void test_settings_flood_but_not_acks(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame ack = frame_of(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0);
    CU_ASSERT_EQUAL(send_many(&guard, &ack, 1000, 5, &verdict), 1000);
    nghttp2_frame settings = frame_of(NGHTTP2_SETTINGS, 0, 6);
    CU_ASSERT_EQUAL(send_many(&guard, &settings, 1000, 5, &verdict), 50);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);
    expect_reason(&guard, "51 SETTINGS frames within 1 s (at most 50)");
}

static void test_pings_are_free_while_the_gateway_sends_data(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame ping = frame_of(NGHTTP2_PING, 0, 8);
    /* BDP pings: one per DATA frame the client receives, thousands a second */
    for (int i = 0; i < 5000; i++) {
        gateway_guard_on_sent(&guard, NGHTTP2_DATA);
        CU_ASSERT_EQUAL_FATAL(gateway_guard_on_frame(&guard, &ping, 100), GATEWAY_GUARD_FINE);
    }
    /* a window update or settings ack from us does not count as response data */
    gateway_guard_on_sent(&guard, NGHTTP2_WINDOW_UPDATE);
    CU_ASSERT_EQUAL(send_many(&guard, &ping, 1000, 100, &verdict), 49);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);
    expect_reason(&guard,
                  "51 PING frames with no response data between them within 1 s (at most 50)");
}

static void test_priority_and_small_window_updates(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame priority = frame_of(NGHTTP2_PRIORITY, 0, 5);
    CU_ASSERT_EQUAL(send_many(&guard, &priority, 1000, 1, &verdict), 100);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);

    setup(&guard, 0);
    nghttp2_frame big = frame_of(NGHTTP2_WINDOW_UPDATE, 0, 4);
    big.window_update.window_size_increment = 32768;
    CU_ASSERT_EQUAL(send_many(&guard, &big, 10000, 1, &verdict), 10000);
    nghttp2_frame tiny = frame_of(NGHTTP2_WINDOW_UPDATE, 0, 4);
    tiny.window_update.window_size_increment = 1;
    CU_ASSERT_EQUAL(send_many(&guard, &tiny, 1000, 1, &verdict), 100);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_ABUSE);
    expect_reason(&guard, "101 WINDOW_UPDATE frames with small increments within 1 s "
                          "(at most 100)");
}

static void test_invalid_frames_and_headers(void)
{
    gateway_guard guard;
    setup(&guard, 0);
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(gateway_guard_on_invalid(&guard, 20), GATEWAY_GUARD_FINE);
    CU_ASSERT_EQUAL(gateway_guard_on_invalid(&guard, 20), GATEWAY_GUARD_ABUSE);
    expect_reason(&guard, "11 invalid frames or headers within 1 s (at most 10)");
}

static void test_budgets_restart_each_window_and_zero_is_unlimited(void)
{
    gateway_guard guard;
    gateway_guard_verdict verdict;
    setup(&guard, 0);
    nghttp2_frame rst = frame_of(NGHTTP2_RST_STREAM, 0, 4);
    CU_ASSERT_EQUAL(send_many(&guard, &rst, 200, 999, &verdict), 200);
    CU_ASSERT_EQUAL(send_many(&guard, &rst, 200, 1000, &verdict), 200);
    CU_ASSERT_EQUAL(verdict, GATEWAY_GUARD_FINE);
    limits.rst_stream = 0;
    CU_ASSERT_EQUAL(send_many(&guard, &rst, 100000, 1001, &verdict), 100000);
    /* a reload that lowers a budget applies to open connections */
    limits.rst_stream = 5;
    limits.window_ms = 60000;
    CU_ASSERT_EQUAL(send_many(&guard, &rst, 100, 70000, &verdict), 5);
    expect_reason(&guard, "6 RST_STREAM frames within 1 min (at most 5)");
}

static void test_a_client_that_never_greets_is_too_slow(void)
{
    gateway_guard guard;
    setup(&guard, 5000);
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), 15000);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 14999), GATEWAY_GUARD_FINE);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 15000), GATEWAY_GUARD_TOO_SLOW);
    expect_reason(&guard, "no HTTP/2 preface and SETTINGS within 10 s of connecting");
    CU_ASSERT_EQUAL(gateway_guard_goaway_code(GATEWAY_GUARD_TOO_SLOW), NGHTTP2_ENHANCE_YOUR_CALM);
    /* it then has goaway_linger to read our GOAWAY before the socket is closed */
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), 17000);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 16999), GATEWAY_GUARD_FINE);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 17000), GATEWAY_GUARD_HANG_UP);
    expect_reason(&guard, "the client did not read the GOAWAY within 2 s");
}

static void test_slowloris_headers(void)
{
    gateway_guard guard;
    setup(&guard, 0);
    nghttp2_frame settings = frame_of(NGHTTP2_SETTINGS, 0, 6);
    CU_ASSERT_EQUAL(gateway_guard_on_frame(&guard, &settings, 10), GATEWAY_GUARD_FINE);
    gateway_guard_on_begin_headers(&guard, 1, 1, 100);
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), 10100);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 10099), GATEWAY_GUARD_FINE);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 10100), GATEWAY_GUARD_TOO_SLOW);
    expect_reason(&guard, "the HEADERS of stream 1 were not complete within 10 s");
    CU_ASSERT_STRING_EQUAL(gateway_guard_verdict_label(GATEWAY_GUARD_TOO_SLOW), "header_timeout");
}

static void test_complete_headers_clear_the_header_timer(void)
{
    gateway_guard guard;
    setup(&guard, 0);
    nghttp2_frame headers = frame_of(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 50);
    gateway_guard_on_begin_headers(&guard, 1, 1, 100);
    CU_ASSERT_EQUAL(gateway_guard_on_frame(&guard, &headers, 150), GATEWAY_GUARD_FINE);
    /* a stream is open: neither timeout applies while it runs for an hour */
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), UINT64_MAX);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 3600000), GATEWAY_GUARD_FINE);
    /* a header block whose stream nghttp2 reset never completes; its end clears the timer */
    gateway_guard_on_begin_headers(&guard, 3, 1, 200);
    gateway_guard_on_stream_end(&guard, 3, 300);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 3600000), GATEWAY_GUARD_FINE);
    /* trailers are a header block too, but open no stream */
    gateway_guard_on_begin_headers(&guard, 1, 0, 4000000);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 4010000), GATEWAY_GUARD_TOO_SLOW);
}

static void test_idle_connections_end_gracefully(void)
{
    gateway_guard guard;
    setup(&guard, 0);
    limits.idle_timeout_ms = 1000;
    nghttp2_frame settings = frame_of(NGHTTP2_SETTINGS, 0, 6);
    nghttp2_frame headers = frame_of(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 50);
    nghttp2_frame ping = frame_of(NGHTTP2_PING, 0, 8);
    gateway_guard_on_frame(&guard, &settings, 1);
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), 1000);
    gateway_guard_on_begin_headers(&guard, 1, 1, 900);
    gateway_guard_on_frame(&guard, &headers, 900);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 5000), GATEWAY_GUARD_FINE);
    gateway_guard_on_stream_end(&guard, 1, 6000);
    /* keepalive pings do not make a connection busy */
    gateway_guard_on_frame(&guard, &ping, 6500);
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), 7000);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 6999), GATEWAY_GUARD_FINE);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, 7000), GATEWAY_GUARD_IDLE);
    expect_reason(&guard, "no request for 1 s");
    CU_ASSERT_EQUAL(gateway_guard_goaway_code(GATEWAY_GUARD_IDLE), NGHTTP2_NO_ERROR);
    CU_ASSERT_STRING_EQUAL(gateway_guard_verdict_label(GATEWAY_GUARD_IDLE), "idle");
}

static void test_zero_timeouts_mean_never(void)
{
    gateway_guard guard;
    setup(&guard, 0);
    limits.idle_timeout_ms = 0;
    limits.header_timeout_ms = 0;
    gateway_guard_on_begin_headers(&guard, 1, 0, 10);
    CU_ASSERT_EQUAL(gateway_guard_next_deadline(&guard), UINT64_MAX);
    CU_ASSERT_EQUAL(gateway_guard_check_timeouts(&guard, UINT64_MAX - 1), GATEWAY_GUARD_FINE);
}

/* ---- the gRPC framing meter ---------------------------------------------------------- */

static int feed_hex(gateway_grpc_meter *meter, const char *hex, uint64_t max, char *message)
{
    uint8_t bytes[64];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned value = 0;
        sscanf(hex + 2 * i, "%2x", &value);
        bytes[i] = (uint8_t)value;
    }
    /* one byte at a time: prefixes split across DATA frames must work */
    for (size_t i = 0; i < n; i++) {
        int status = gateway_grpc_meter_feed(meter, bytes + i, 1, max, message, 512);
        if (status != 0)
            return status;
    }
    return 0;
}

static void test_meter_passes_whole_messages(void)
{
    gateway_grpc_meter meter = GATEWAY_GRPC_METER_INIT;
    char message[512] = "";
    CU_ASSERT_EQUAL(feed_hex(&meter,
                             "0000000003aabbcc"
                             "0100000000"
                             "0000000001ff",
                             16, message),
                    0);
    CU_ASSERT_EQUAL(meter.messages, 3);
    CU_ASSERT_EQUAL(gateway_grpc_meter_finish(&meter, message, sizeof(message)), 0);
    gateway_grpc_meter empty = GATEWAY_GRPC_METER_INIT;
    CU_ASSERT_EQUAL(gateway_grpc_meter_finish(&empty, message, sizeof(message)), 0);
}

static void test_meter_refuses_an_oversized_message_before_its_bytes(void)
{
    gateway_grpc_meter meter = GATEWAY_GRPC_METER_INIT;
    char message[512] = "";
    uint8_t prefix[5] = {0, 0x00, 0x20, 0x00, 0x00}; /* 2 MiB */
    uint64_t limit = 1024 * 1024;
    CU_ASSERT_EQUAL(feed_hex(&meter, "0000000003aabbcc", limit, message), 0);
    CU_ASSERT_EQUAL(gateway_grpc_meter_feed(&meter, prefix, 5, limit, message, sizeof(message)), 8);
    CU_ASSERT_STRING_EQUAL(message, "gRPC message 2 is 2 MiB, larger than this gateway's limit "
                                    "of 1 MiB (gateway.max_message_size)");
    /* exactly the limit is fine */
    gateway_grpc_meter exact = GATEWAY_GRPC_METER_INIT;
    CU_ASSERT_EQUAL(feed_hex(&exact, "0000100000", limit, message), 0);
}

static void test_meter_refuses_a_bad_flag_and_a_cut_off_body(void)
{
    gateway_grpc_meter meter = GATEWAY_GRPC_METER_INIT;
    char message[512] = "";
    CU_ASSERT_EQUAL(feed_hex(&meter, "0200000001", 100, message), 3);
    CU_ASSERT_STRING_EQUAL(message, "gRPC message 1 has compressed flag 2 (only 0 or 1 are valid)");

    gateway_grpc_meter cut = GATEWAY_GRPC_METER_INIT;
    /* the prefix says 100 bytes, the stream ends after 10 */
    CU_ASSERT_EQUAL(feed_hex(&cut, "000000006400010203040506070809", 1000, message), 0);
    CU_ASSERT_EQUAL(gateway_grpc_meter_finish(&cut, message, sizeof(message)), 3);
    CU_ASSERT_STRING_EQUAL(
        message, "the request ended inside gRPC message 1 (90 more bytes were announced)");

    gateway_grpc_meter half_prefix = GATEWAY_GRPC_METER_INIT;
    CU_ASSERT_EQUAL(feed_hex(&half_prefix, "000000000100", 1000, message), 0);
    CU_ASSERT_EQUAL(feed_hex(&half_prefix, "0000", 1000, message), 0);
    CU_ASSERT_EQUAL(gateway_grpc_meter_finish(&half_prefix, message, sizeof(message)), 3);
    CU_ASSERT_STRING_EQUAL(message, "the request ended inside the 5-byte prefix of gRPC message 2 "
                                    "(2 of 5 bytes)");
}

static const unit_test_case cases[] = {
    {"rapid reset ends the connection with a reason", test_rapid_reset_ends_the_connection},
    {"cancelling calls steadily is fine", test_cancelling_calls_steadily_is_fine},
    {"empty DATA without END_STREAM is counted", test_empty_data_without_end_stream_is_counted},
    {"a SETTINGS flood ends it, ACKs do not", test_settings_flood_but_not_acks},
    {"pings are free while the gateway sends data",
     test_pings_are_free_while_the_gateway_sends_data},
    {"PRIORITY and tiny WINDOW_UPDATE floods", test_priority_and_small_window_updates},
    {"invalid frames and headers", test_invalid_frames_and_headers},
    {"budgets restart each window, 0 is unlimited, reload applies",
     test_budgets_restart_each_window_and_zero_is_unlimited},
    {"a client that never greets is too slow", test_a_client_that_never_greets_is_too_slow},
    {"slowloris headers end the connection", test_slowloris_headers},
    {"complete headers clear the header timer", test_complete_headers_clear_the_header_timer},
    {"idle connections end gracefully", test_idle_connections_end_gracefully},
    {"zero timeouts mean never", test_zero_timeouts_mean_never},
    {"meter: whole messages pass", test_meter_passes_whole_messages},
    {"meter: an oversized message is refused before its bytes",
     test_meter_refuses_an_oversized_message_before_its_bytes},
    {"meter: a bad flag and a cut-off body are refused",
     test_meter_refuses_a_bad_flag_and_a_cut_off_body},
    {NULL, NULL}};

UNIT_TEST_MAIN("gateway_guard", cases)
