"""test_gateway_badinput.py - bad input and abuse on the gateway end only the offending connection.

Every test starts the daemon with its gateway on h2c and one cluster
(fake-dev, team analytics) whose only "Spark Connect server" is a tiny
grpcio server in this process: it answers any SparkConnectService method
with the bytes b"ok", so no JVM is needed and requests are fast.

Misbehaving clients are written frame by frame (RawH2 below: raw sockets,
HPACK from the `hpack` package that comes with `h2`), because real client
libraries refuse to send most of this.  In every test a well-behaved
bystander connection completes a request before and after the abuse, on
the same connection, and never sees a GOAWAY: only the offender is cut
off, and the daemon keeps answering (conftest checks /healthz and a clean
exit at teardown).

Abuse limits that need the gateway's guard (core/gateway_guard.h) wired
into core/gateway.c are marked in their docstrings.  Config keys used:
gateway.header_timeout, gateway.idle_timeout, gateway.max_message_size,
gateway.max_concurrent_streams.  Metric: sparkplane_gateway_connections_closed_total{reason}.
"""
import os
import socket
import struct
import time
from concurrent import futures

import pytest

import helpers

try:
    import grpc
    import hpack
except ImportError as missing:      # scripts/install-deps.sh --test installs both
    if os.environ.get("SPARKPLANE_REQUIRE_INTEGRATION") == "1":
        raise
    pytest.skip(f"the bad-input tests need {missing.name}", allow_module_level=True)

SERVICE = "/spark.connect.SparkConnectService/"
MAX_STREAMS = 50

# frame types and error codes (RFC 9113)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = \
    0x0, 0x1, 0x2, 0x7, 0x8, 0xb
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# ---- a fake Spark Connect server ------------------------------------------------------------

class AnswerOk(grpc.GenericRpcHandler):
    """Any SparkConnectService method, unary, answered with b"ok" (bytes in, bytes out)."""

    def service(self, handler_call_details):
        if not handler_call_details.method.startswith(SERVICE):
            return None
        return grpc.unary_unary_rpc_method_handler(lambda request, context: b"ok")


@pytest.fixture
def fake_spark():
    port = helpers.free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    server.add_generic_rpc_handlers((AnswerOk(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield port
    server.stop(grace=None)


def start_gateway(daemon_factory, spark_port, **gateway_options):
    """A daemon whose gateway serves cluster fake-dev; returns (daemon, gateway port)."""
    gateway_port = helpers.free_port()

    def configure(cfg):
        cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team",
                          "max_concurrent_streams": MAX_STREAMS, **gateway_options}
        workdir = os.path.dirname(cfg["state"]["directory"])
        os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
        with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
            out.write("clusters:\n  - id: fake-dev\n    team: analytics\n"
                      f"    environment: dev\n    endpoints: [\"127.0.0.1:{spark_port}\"]\n")

    daemon = daemon_factory(configure=configure)
    assert helpers.port_accepts(gateway_port), daemon.log_tail(20)
    return daemon, gateway_port


@pytest.fixture
def gateway(daemon_factory, fake_spark):
    return start_gateway(daemon_factory, fake_spark)


# ---- HTTP/2 by hand ---------------------------------------------------------------------------

def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def grpc_message(body, declared=None, flag=0):
    """One length-prefixed gRPC message; `declared` lies about the length."""
    return bytes([flag]) + struct.pack(">I", len(body) if declared is None else declared) + body


class Closed(Exception):
    """The gateway ended the connection before what the test waited for."""


class RawH2:
    """One client connection to the gateway, frame by frame.

    read() keeps every frame the server sent in self.frames, decodes HEADERS
    (so HPACK state stays in step) and ACKs the server's SETTINGS unless quiet.
    """

    def __init__(self, port, greet=True):
        self.quiet = False         # True: no more SETTINGS ACKs (a half-sent frame is pending)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.port = port
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.buffer = b""
        self.frames = []           # (type, flags, stream, payload or decoded headers)
        self.goaway = None         # (last stream id, error code, debug data)
        self.closed = False
        self.next_stream = 1
        if greet:
            self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise Closed(str(error))

    def close(self):
        self.sock.close()

    # -- requests

    def request_headers(self, token, path=SERVICE + "Config", cluster="fake-dev", extra=()):
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", f"127.0.0.1:{self.port}"), ("content-type", "application/grpc"),
                   ("te", "trailers"), ("authorization", f"Bearer {token}"),
                   ("x-sparkplane-cluster-id", cluster)]
        return self.encoder.encode(headers + list(extra))

    def open_stream(self, token, end_stream=False, **options):
        stream = self.next_stream
        self.next_stream += 2
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        self.send(frame(HEADERS, flags, stream, self.request_headers(token, **options)))
        return stream

    def call(self, token, body=grpc_message(b""), timeout=10.0, **options):
        """A whole unary call; returns (grpc-status, grpc-message) or raises Closed."""
        stream = self.open_stream(token, **options)
        self.send(frame(DATA, END_STREAM, stream, body))
        return self.status_of(stream, timeout)

    def status_of(self, stream, timeout=10.0):
        """The stream's grpc-status and message, ("RST", code) if it was reset."""
        def answered():
            for kind, _, sid, payload in self.frames:
                if sid != stream:
                    continue
                if kind == RST_STREAM:
                    return ("RST", struct.unpack(">I", payload)[0])
                if kind == HEADERS:
                    fields = dict(payload)
                    if "grpc-status" in fields:
                        return (int(fields["grpc-status"]), fields.get("grpc-message", ""))
            if self.closed or self.goaway:
                raise Closed(f"connection ended before stream {stream} was answered "
                             f"(GOAWAY {self.goaway})")
            return None
        return self.read_until(answered, timeout, f"an answer on stream {stream}")

    # -- reading

    def read_until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if self.closed or time.monotonic() >= deadline:
                raise AssertionError(f"no {what} within {timeout}s (GOAWAY {self.goaway}, "
                                     f"closed {self.closed})")
            self.read(deadline - time.monotonic())

    def read(self, timeout):
        """Reads what arrives within timeout (at least one recv); parses whole frames."""
        self.sock.settimeout(max(0.01, min(timeout, 0.5)))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            stream = int.from_bytes(self.buffer[5:9], "big") & 0x7fffffff
            payload = self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            self.on_frame(kind, flags, stream, payload)

    def on_frame(self, kind, flags, stream, payload):
        if kind == HEADERS:
            payload = [(k.decode() if isinstance(k, bytes) else k,
                        v.decode() if isinstance(v, bytes) else v)
                       for k, v in self.decoder.decode(payload)]
        elif kind == SETTINGS and not flags & ACK and not self.quiet:
            self.send_quietly(frame(SETTINGS, ACK, 0))
        elif kind == GOAWAY and self.goaway is None:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last & 0x7fffffff, code, payload[8:])
        self.frames.append((kind, flags, stream, payload))

    def send_quietly(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def settle(self):
        """Waits until both SETTINGS are acknowledged, so nothing more is sent by itself."""
        self.read_until(lambda: any(k == SETTINGS and f & ACK for k, f, _, _ in self.frames),
                        5.0, "the ACK of our SETTINGS")
        self.quiet = True

    def wait_closed(self, timeout):
        """Reads until the server closes the connection; True if it did within timeout."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read(deadline - time.monotonic())
        return self.closed


# ---- the bystander ----------------------------------------------------------------------------

class Bystander:
    """A well-behaved client on its own connection: one call before the abuse, one after."""

    def __init__(self, daemon, port):
        self.daemon = daemon
        self.port = port
        self.conn = RawH2(port)
        assert self.conn.call(daemon.token) == (0, ""), "the bystander's first call failed"

    def still_served(self):
        assert self.conn.call(self.daemon.token) == (0, ""), "the bystander's second call failed"
        assert self.conn.goaway is None, f"the bystander got GOAWAY {self.conn.goaway}"
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            answer = channel.unary_unary(SERVICE + "Config")(
                b"", timeout=10, metadata=[("authorization", f"Bearer {self.daemon.token}"),
                                           ("x-sparkplane-cluster-id", "fake-dev")])
        assert answer == b"ok"
        assert self.daemon.alive()
        self.conn.close()


@pytest.fixture
def bystander(gateway):
    daemon, port = gateway
    return Bystander(daemon, port)


def closed_total(daemon, reason):
    return helpers.metric_value(daemon.metrics(), "sparkplane_gateway_connections_closed_total",
                                reason=reason)


def assert_calmed_down(conn, what):
    """The connection got GOAWAY ENHANCE_YOUR_CALM and was closed."""
    assert conn.wait_closed(10.0), f"{what}: the connection stayed open (GOAWAY {conn.goaway})"
    assert conn.goaway is not None, f"{what}: closed without GOAWAY"
    assert conn.goaway[1] == ENHANCE_YOUR_CALM, f"{what}: GOAWAY {conn.goaway}"


# ---- garbage instead of HTTP/2 ----------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200),     # a TLS ClientHello
    bytes(range(256)) * 8,
], ids=["http1", "tls", "binary"])
def test_garbage_instead_of_the_preface_closes_that_connection(gateway, bystander, garbage):
    """A client that does not speak HTTP/2 is disconnected at once; nobody else notices."""
    daemon, port = gateway
    conn = RawH2(port, greet=False)
    conn.send(garbage)
    assert conn.wait_closed(10.0), "the gateway kept a connection that sent garbage"
    kinds = {kind for kind, _, _, _ in conn.frames}
    assert kinds <= {SETTINGS, WINDOW_UPDATE, GOAWAY}, conn.frames      # no answer to it
    if conn.goaway:
        assert conn.goaway[1] == PROTOCOL_ERROR, conn.goaway
    assert b"HTTP/1.1" not in conn.buffer
    bystander.still_served()


# ---- broken gRPC framing ----------------------------------------------------------------------

def test_a_truncated_first_message_is_invalid_argument(gateway, bystander):
    """The 5-byte prefix says 100 bytes, the stream ends after 10: INVALID_ARGUMENT, and the same
    connection serves the next call."""
    daemon, port = gateway
    conn = RawH2(port)
    body = grpc_message(b"\x0a\x08abcdefgh", declared=100)
    status, message = conn.call(daemon.token, body=body)
    assert status == 3, (status, message)
    assert "ended" in message, message
    assert conn.call(daemon.token) == (0, "")
    assert conn.goaway is None
    bystander.still_served()


def test_a_truncated_later_message_is_invalid_argument(gateway, bystander):
    """The first message is whole, the second is cut off: INVALID_ARGUMENT.  (Needs the gRPC
    framing meter, gateway_grpc_meter_finish, wired in.)"""
    daemon, port = gateway
    conn = RawH2(port)
    body = grpc_message(b"") + grpc_message(b"0123456789", declared=100)
    status, message = conn.call(daemon.token, body=body)
    assert status == 3, (status, message)
    assert "gRPC message 2" in message, message
    assert conn.call(daemon.token) == (0, "")
    bystander.still_served()


@pytest.fixture
def small_gateway(daemon_factory, fake_spark):
    return start_gateway(daemon_factory, fake_spark, max_message_size="1MiB")


def test_a_message_over_the_limit_is_resource_exhausted(small_gateway):
    """A message announcing 2 MiB against gateway.max_message_size 1MiB is refused before its
    bytes arrive, naming the limit; the connection stays usable.  (Needs the meter wired.)"""
    daemon, port = small_gateway
    bystander = Bystander(daemon, port)
    conn = RawH2(port)
    stream = conn.open_stream(daemon.token)
    conn.send(frame(DATA, 0, stream, grpc_message(b"", declared=2 * 1024 * 1024)))
    conn.send(frame(DATA, 0, stream, bytes(16000)))
    status, message = conn.status_of(stream)
    assert status == 8, (status, message)
    assert "max_message_size" in message, message
    assert "1 MiB" in message or "1048576" in message, message      # the limit, named
    assert conn.call(daemon.token) == (0, "")
    bystander.still_served()


def varint(value):
    out = b""
    while True:
        low, value = value & 0x7f, value >> 7
        out += bytes([low | (0x80 if value else 0)])
        if not value:
            return out


def test_a_message_at_the_limit_passes(small_gateway):
    """Exactly gateway.max_message_size (1 MiB) is allowed; it streams through the gateway's
    1 MiB stream window as upstream takes the bytes."""
    daemon, port = small_gateway
    conn = RawH2(port)
    filler = 1024 * 1024 - 4                   # field 3, length-delimited: 1 + 3 + filler bytes
    body = grpc_message(b"\x1a" + varint(filler) + bytes(filler))
    assert len(body) == 5 + 1024 * 1024
    stream = conn.open_stream(daemon.token)
    sent = 0
    for offset in range(0, len(body), 16384):
        chunk = body[offset:offset + 16384]
        last = offset + 16384 >= len(body)
        while sent + len(chunk) > window_granted(conn, stream):
            conn.read(1.0)
            assert not conn.closed and conn.goaway is None, conn.goaway
            assert not any(k == HEADERS and s == stream for k, _, s, _ in conn.frames), \
                conn.status_of(stream)
        conn.send(frame(DATA, END_STREAM if last else 0, stream, chunk))
        sent += len(chunk)
    assert conn.status_of(stream, timeout=30) == (0, "")


def window_granted(conn, stream):
    """How many bytes the client may have sent on stream: the server's initial window (its
    SETTINGS) plus the stream's WINDOW_UPDATEs."""
    granted = 65535
    for kind, flags, sid, payload in conn.frames:
        if kind == WINDOW_UPDATE and sid == stream:
            granted += struct.unpack(">I", payload)[0] & 0x7fffffff
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                key, value = struct.unpack(">HI", payload[i:i + 6])
                if key == 4:
                    granted += value - 65535
    return granted


# ---- header floods ----------------------------------------------------------------------------

def test_endless_continuation_frames_end_the_connection(gateway, bystander):
    """One HEADERS followed by CONTINUATION frames for ever (CVE-2024-27316 style): the
    connection ends; nobody else notices."""
    daemon, port = gateway
    conn = RawH2(port)
    block = conn.request_headers(daemon.token)
    conn.send(frame(HEADERS, 0, 1, block))
    filler = hpack.Encoder()
    try:
        for i in range(200):
            piece = filler.encode([(f"x-flood-{i}", "v" * 4000)], huffman=False)
            conn.send(frame(CONTINUATION, 0, 1, piece))
    except Closed:
        pass
    assert conn.wait_closed(10.0), "the gateway kept reading CONTINUATION frames"
    assert not any(kind == HEADERS for kind, _, _, _ in conn.frames)
    bystander.still_served()


def assert_refused(conn, stream, what):
    """The stream got no OK: reset, an error status, or its connection ended."""
    try:
        answer = conn.status_of(stream)
    except Closed:
        return
    assert answer[0] != 0, f"{what}: the request was served: {answer}"


def test_a_header_list_over_64k_is_refused(gateway, bystander):
    """Five 15 KB headers (75 KB, in HEADERS + CONTINUATIONs): that request is refused and the
    connection serves the next one."""
    daemon, port = gateway
    conn = RawH2(port)
    extra = [(f"x-big-{i}", "v" * 15000) for i in range(5)]
    block = conn.request_headers(daemon.token, extra=extra)
    pieces = [block[i:i + 16000] for i in range(0, len(block), 16000)]
    conn.send(frame(HEADERS, END_STREAM | (END_HEADERS if len(pieces) == 1 else 0), 1,
                    pieces[0]))
    for index, piece in enumerate(pieces[1:], start=1):
        conn.send(frame(CONTINUATION, END_HEADERS if index == len(pieces) - 1 else 0, 1, piece))
    conn.next_stream = 3
    assert_refused(conn, 1, "75 KB of headers")
    if conn.goaway is None and not conn.closed:
        assert conn.call(daemon.token) == (0, "")
    bystander.still_served()


def test_an_hpack_bomb_is_refused(gateway, bystander):
    """A 1 KB header put in the HPACK table once and repeated by 1-byte references: 100 KB of
    headers from 1 KB on the wire.  Refused like any oversized header list."""
    daemon, port = gateway
    conn = RawH2(port)
    value = "b" * 1000
    assert conn.call(daemon.token, extra=[("x-bomb", value)])[0] == 0
    # the usual headers are in the table too now, so encoding them again adds nothing
    usual = conn.request_headers(daemon.token)
    index = conn.encoder.header_table.search(b"x-bomb", value.encode())[0]
    assert 62 <= index < 127, index          # a dynamic entry with a 1-byte reference
    bomb = usual + bytes([0x80 | index]) * 100
    stream = conn.next_stream
    conn.next_stream += 2
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, bomb))
    assert_refused(conn, stream, "an HPACK bomb")
    bystander.still_served()


def literal_block(headers):
    """Header fields as never-indexed literals: a block that leaves the HPACK table alone, so
    one encoding serves any number of requests (as fast as an attacker sends them)."""
    fields = [hpack.NeverIndexedHeaderTuple(name, value) for name, value in headers]
    return hpack.Encoder().encode(fields, huffman=False)


def test_many_requests_with_huge_headers_end_the_connection(gateway, bystander):
    """Request after request with 70 KB of headers: each is refused, and after the invalid
    budget the connection gets GOAWAY ENHANCE_YOUR_CALM.  (Needs the guard wired: on_invalid
    for an oversized header list.)"""
    daemon, port = gateway
    conn = RawH2(port)
    extra = literal_block([(f"x-big-{i}", "v" * 14000) for i in range(5)])
    try:
        for _ in range(40):
            stream = conn.next_stream
            conn.next_stream += 2
            block = conn.request_headers(daemon.token) + extra
            pieces = [block[i:i + 16000] for i in range(0, len(block), 16000)]
            conn.send(frame(HEADERS, END_STREAM, stream, pieces[0]))
            for index, piece in enumerate(pieces[1:], start=1):
                conn.send(frame(CONTINUATION, END_HEADERS if index == len(pieces) - 1 else 0,
                                stream, piece))
            conn.read(0.01)
    except Closed:
        pass
    assert_calmed_down(conn, "40 oversized header lists")
    assert closed_total(daemon, "abuse") >= 1
    bystander.still_served()


# ---- floods of cheap frames -------------------------------------------------------------------

def flood(conn, data, count):
    """Sends data count times (in batches), reading what comes back so ACKs do not pile up."""
    batch = data * 50
    try:
        for _ in range(count // 50):
            conn.send(batch)
            conn.read(0.001)
    except Closed:
        pass


def test_rapid_reset_gets_enhance_your_calm(gateway, bystander):
    """1000 HEADERS + RST_STREAM pairs (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM after the
    RST_STREAM budget.  (Needs the guard wired.)"""
    daemon, port = gateway
    conn = RawH2(port)
    try:
        for _ in range(20):
            batch = b""
            for _ in range(50):
                stream = conn.next_stream
                conn.next_stream += 2
                batch += frame(HEADERS, END_HEADERS, stream, conn.request_headers(daemon.token))
                batch += frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            conn.send(batch)
            conn.read(0.001)
    except Closed:
        pass
    assert_calmed_down(conn, "rapid reset")
    assert b"RST_STREAM" in conn.goaway[2] or conn.goaway[2] == b""
    assert closed_total(daemon, "abuse") >= 1
    bystander.still_served()


@pytest.mark.parametrize("what", ["empty DATA", "PING", "SETTINGS", "PRIORITY",
                                  "tiny WINDOW_UPDATE"])
def test_a_flood_of_cheap_frames_gets_enhance_your_calm(gateway, bystander, what):
    """2000 frames that cost the gateway work and do nothing: GOAWAY ENHANCE_YOUR_CALM.
    (Needs the guard wired.)"""
    daemon, port = gateway
    conn = RawH2(port)
    stream = conn.open_stream(daemon.token)
    data = {
        "empty DATA": frame(DATA, 0, stream),
        "PING": frame(PING, 0, 0, bytes(8)),
        "SETTINGS": frame(SETTINGS, 0, 0),
        "PRIORITY": frame(PRIORITY, 0, stream + 2, struct.pack(">IB", 0, 15)),
        "tiny WINDOW_UPDATE": frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)),
    }[what]
    flood(conn, data, 2000)
    assert_calmed_down(conn, f"a {what} flood")
    assert closed_total(daemon, "abuse") >= 1
    bystander.still_served()


# ---- slow and idle clients --------------------------------------------------------------------

@pytest.fixture
def impatient_gateway(daemon_factory, fake_spark):
    return start_gateway(daemon_factory, fake_spark, header_timeout="1s")


@pytest.fixture
def idle_gateway(daemon_factory, fake_spark):
    return start_gateway(daemon_factory, fake_spark, idle_timeout="2s")


def test_half_a_headers_frame_is_closed_after_the_header_timeout(impatient_gateway):
    """Slowloris: the preface and half a HEADERS frame, then nothing.  Closed after
    gateway.header_timeout (1s here).  (Needs the guard's timer wired.)"""
    daemon, port = impatient_gateway
    bystander = Bystander(daemon, port)
    conn = RawH2(port)
    conn.settle()
    block = conn.request_headers(daemon.token)
    conn.send(frame(HEADERS, END_HEADERS, 1, block)[:9 + len(block) // 2])
    assert conn.wait_closed(10.0), "a half-sent HEADERS frame kept its connection"
    if conn.goaway:
        assert conn.goaway[1] == ENHANCE_YOUR_CALM, conn.goaway
    assert closed_total(daemon, "header_timeout") >= 1
    bystander.still_served()


def test_no_preface_is_closed_after_the_header_timeout(impatient_gateway):
    """Half the preface and then nothing: closed after gateway.header_timeout.  (Needs the
    guard's timer wired.)"""
    daemon, port = impatient_gateway
    bystander = Bystander(daemon, port)
    conn = RawH2(port, greet=False)
    conn.quiet = True           # not even a SETTINGS ACK
    conn.send(PREFACE[:10])
    assert conn.wait_closed(10.0), "half a preface kept its connection"
    bystander.still_served()


def test_an_idle_connection_gets_a_graceful_goaway(idle_gateway):
    """No stream for gateway.idle_timeout (2s here): GOAWAY NO_ERROR, then the connection is
    closed.  A connection that keeps calling is not idle.  (Needs the guard's timer wired.)"""
    daemon, port = idle_gateway
    busy = RawH2(port)
    idle = RawH2(port)
    assert idle.call(daemon.token) == (0, "")
    started = time.monotonic()
    while not idle.closed and time.monotonic() - started < 10.0:
        assert busy.call(daemon.token) == (0, "")     # about every 0.5s: never idle for 2s
        idle.read(0.5)
    assert idle.closed, f"an idle connection stayed open (GOAWAY {idle.goaway})"
    assert idle.goaway is not None and idle.goaway[1] == NO_ERROR, idle.goaway
    assert idle.goaway[0] == 1      # the last stream it served
    assert busy.goaway is None
    assert busy.call(daemon.token) == (0, "")
    assert closed_total(daemon, "idle") >= 1


# ---- too many streams -------------------------------------------------------------------------

def test_streams_beyond_max_concurrent_streams_are_refused(gateway, bystander):
    """gateway.max_concurrent_streams open streams are served; one more is refused by nghttp2
    (RST_STREAM REFUSED_STREAM, or GOAWAY PROTOCOL_ERROR once our SETTINGS are acknowledged)."""
    daemon, port = gateway
    conn = RawH2(port)
    conn.settle()
    streams = [conn.open_stream(daemon.token) for _ in range(MAX_STREAMS)]
    extra = conn.open_stream(daemon.token)
    try:
        answer = conn.status_of(extra)
        assert answer == ("RST", REFUSED_STREAM), answer
        for stream in streams:          # the first ones are still open: finish them
            conn.send(frame(DATA, END_STREAM, stream, grpc_message(b"")))
        for stream in streams:
            assert conn.status_of(stream) == (0, "")
    except Closed:
        assert conn.goaway[1] == PROTOCOL_ERROR, conn.goaway
        assert conn.goaway[0] < extra
    bystander.still_served()
