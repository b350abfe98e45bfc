"""test_gateway_streams.py - what a stream through the gateway must survive: big messages,
long quiet streams, deadlines, cancellation and a daemon that is told to stop.

The "Spark Connect server" is a grpcio server in this process (no JVM), with
three behaviours chosen by method name:
  AnalyzePlan   unary: answers as many bytes as it received (an echo of the size);
  ExecutePlan   server streaming: x-test-count messages, x-test-interval-ms apart;
  Interrupt     unary: waits up to 20 s and records whether the caller went away.
Clients are grpcio channels (h2c to localhost, the token as metadata) and, for the
deadline test, a raw h2 client, because grpcio would enforce the deadline itself.
"""
import os
import socket
import struct
import threading
import time
from concurrent import futures

import pytest

import helpers

try:
    import grpc
    import h2.config
    import h2.connection
    import h2.events
except ImportError as missing:      # scripts/install-deps.sh --test installs both
    if os.environ.get("SPARKPLANE_REQUIRE_INTEGRATION") == "1":
        raise
    pytest.skip(f"the stream tests need {missing.name}", allow_module_level=True)

SERVICE = "/spark.connect.SparkConnectService/"
MIB = 1024 * 1024
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class FakeSpark(grpc.GenericRpcHandler):
    def __init__(self):
        self.cancelled = threading.Event()      # an Interrupt call's client went away

    def service(self, details):
        method = details.method[len(SERVICE):] if details.method.startswith(SERVICE) else None
        if method == "AnalyzePlan":
            return grpc.unary_unary_rpc_method_handler(lambda request, context:
                                                       b"x" * len(request))
        if method == "ExecutePlan":
            return grpc.unary_stream_rpc_method_handler(self.execute)
        if method == "Interrupt":
            return grpc.unary_unary_rpc_method_handler(self.wait)
        return None

    def execute(self, request, context):
        metadata = dict(context.invocation_metadata())
        count = int(metadata.get("x-test-count", "3"))
        interval = int(metadata.get("x-test-interval-ms", "0")) / 1000.0
        for index in range(count):
            if index:
                time.sleep(interval)
            yield b"message %d" % index

    def wait(self, request, context):
        context.add_callback(self.cancelled.set)
        deadline = time.monotonic() + 20
        while context.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        return b"done"


@pytest.fixture
def fake_spark():
    port = helpers.free_port()
    handler = FakeSpark()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=UNLIMITED)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield port, handler
    server.stop(grace=None)


def start_gateway(daemon_factory, spark_port, env=None, **gateway_options):
    gateway_port = helpers.free_port()

    def configure(cfg):
        cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team",
                          **gateway_options}
        workdir = os.path.dirname(cfg["state"]["directory"])
        os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
        with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
            out.write("clusters:\n  - id: fake-dev\n    team: analytics\n    environment: dev\n"
                      f"    endpoints: [\"127.0.0.1:{spark_port}\"]\n")

    return daemon_factory(configure=configure, env=env), gateway_port


def field(number, payload):
    """A length-delimited protobuf field."""
    length, size = b"", len(payload)
    while True:
        byte = size & 0x7F
        size >>= 7
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            break
    return bytes([number << 3 | 2]) + length + payload


def request(user="alice", session="3b8c5f0e-4b65-4f43-9d1c-6c2a1f0c9a11", padding=0):
    """A Spark Connect-shaped request: session_id, user_context.user_id, then padding."""
    body = field(1, session.encode()) + field(2, field(1, user.encode()))
    return body + (field(3, b"p" * padding) if padding else b"")


def call_metadata(daemon, **extra):
    return [("authorization", f"Bearer {daemon.token}"), ("x-sparkplane-cluster-id", "fake-dev"),
            *extra.items()]


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_a_128_mib_message_passes_each_way_without_being_held(daemon_factory, fake_spark):
    """gateway.max_message_size defaults to 128 MiB: a message that size goes up and one comes
    back.  The gateway streams both through its flow-control windows (a few MiB), so its peak
    memory grows by far less than one message.  (ASan's quarantine of freed blocks, 256 MiB
    by default, would count as resident: this daemon runs with 16 MiB.)"""
    spark_port, _ = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port, env={
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"})
    before = vm_hwm_kib(daemon.pid)
    body = request(padding=128 * MIB - len(request()) - 5)   # tag + 4-byte length + padding
    assert len(body) == 128 * MIB
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=UNLIMITED) as channel:
        analyze = channel.unary_unary(SERVICE + "AnalyzePlan")
        answer = analyze(body, metadata=call_metadata(daemon), timeout=120)
    assert len(answer) == 128 * MIB
    grown_mib = (vm_hwm_kib(daemon.pid) - before) / 1024
    assert grown_mib < 64, f"the gateway's peak memory grew by {grown_mib:.0f} MiB"
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_gateway_bytes_total", cluster="fake-dev",
                                direction="response") >= 128 * MIB


def test_a_message_over_the_limit_is_resource_exhausted(daemon_factory, fake_spark):
    spark_port, _ = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port, max_message_size="8MiB")
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=UNLIMITED) as channel:
        analyze = channel.unary_unary(SERVICE + "AnalyzePlan")
        with pytest.raises(grpc.RpcError) as refused:
            analyze(request(padding=9 * MIB), metadata=call_metadata(daemon), timeout=60)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "gateway.max_message_size" in refused.value.details()
        # the connection keeps serving
        assert len(analyze(request(padding=1000), metadata=call_metadata(daemon))) > 1000


def test_a_quiet_stream_outlives_the_idle_and_header_timeouts(daemon_factory, fake_spark):
    """Timeouts are for connections without streams and for slow headers, not for a query
    that takes a while between results."""
    spark_port, _ = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port, idle_timeout="1s",
                                 header_timeout="1s")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        execute = channel.unary_stream(SERVICE + "ExecutePlan")
        started = time.monotonic()
        messages = list(execute(request(), timeout=60, metadata=call_metadata(
            daemon, **{"x-test-count": "4", "x-test-interval-ms": "1500"})))
    assert messages == [b"message %d" % i for i in range(4)]
    assert time.monotonic() - started >= 4.5
    assert helpers.metric_value(daemon.metrics(), "sparkplane_gateway_connections_closed_total",
                                reason="header_timeout") == 0


def test_a_client_cancel_reaches_the_spark_server(daemon_factory, fake_spark):
    spark_port, fake = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        interrupt = channel.unary_unary(SERVICE + "Interrupt")
        call = interrupt.future(request(), metadata=call_metadata(daemon), timeout=60)
        time.sleep(0.5)
        assert not fake.cancelled.is_set()
        call.cancel()
        assert fake.cancelled.wait(10), "the upstream call was not cancelled"


def raw_call(port, headers, body, timeout):
    """One request over a raw h2 connection; returns (trailers or headers dict, seconds)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, headers)
    conn.send_data(stream, b"\0" + struct.pack(">I", len(body)) + body, end_stream=True)
    sock.sendall(conn.data_to_send())
    started = time.monotonic()
    answer = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    answer.update({k.decode(): v.decode() for k, v in event.headers})
                if isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return answer, time.monotonic() - started
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return answer, time.monotonic() - started


class SilentSpark:
    """An HTTP/2 server that takes requests and never answers them (it records the resets it
    gets), so only the gateway can end a call - a grpcio server would enforce grpc-timeout
    itself and race the gateway."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reset = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(sock,), daemon=True).start()

    def handle(self, sock):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        with sock:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamReset):
                        self.reset.set()
                sock.sendall(conn.data_to_send())

    def close(self):
        self.listener.close()


def test_the_gateway_enforces_grpc_timeout(daemon_factory):
    """A client's deadline holds even when the server does not answer at all: the gateway
    answers DEADLINE_EXCEEDED and cancels the Spark server's stream."""
    silent = SilentSpark()
    try:
        daemon, port = start_gateway(daemon_factory, silent.port)
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                   (":path", SERVICE + "Interrupt"), ("content-type", "application/grpc"),
                   ("te", "trailers"), ("grpc-timeout", "700m"),
                   ("authorization", f"Bearer {daemon.token}"),
                   ("x-sparkplane-cluster-id", "fake-dev")]
        answer, seconds = raw_call(port, headers, request(), timeout=15)
        assert answer.get("grpc-status") == "4", answer
        assert "grpc-timeout 700m" in answer.get("grpc-message", ""), answer
        assert 0.6 < seconds < 5
        assert silent.reset.wait(10), "the upstream stream was not cancelled"
        headers[6] = ("grpc-timeout", "soon")
        answer, _ = raw_call(port, headers, request(), timeout=15)
        assert answer.get("grpc-status") == "3" and "grpc-timeout" in answer["grpc-message"]
    finally:
        silent.close()


class BackgroundStream:
    """An ExecutePlan server stream of `count` messages read on a thread, over `channel`;
    started() waits for its first message, finish() for its end (status and messages)."""

    def __init__(self, channel, daemon, count, interval_ms):
        self.channel, self.daemon = channel, daemon
        self.metadata = call_metadata(daemon, **{"x-test-count": str(count),
                                                 "x-test-interval-ms": str(interval_ms)})
        self.received, self.status = [], None
        self.first = threading.Event()
        self.thread = threading.Thread(target=self.consume)
        self.thread.start()

    def consume(self):
        execute = self.channel.unary_stream(SERVICE + "ExecutePlan")
        try:
            for message in execute(request(), timeout=60, metadata=self.metadata):
                self.received.append(message)
                self.first.set()
            self.status = "OK"
        except grpc.RpcError as error:
            self.status = error.code().name
        self.first.set()

    def started(self):
        assert self.first.wait(30), "no first message"

    def finish(self):
        self.thread.join(30)
        return self.status, self.received


def test_sigterm_lets_open_streams_finish(daemon_factory, fake_spark):
    """On SIGTERM the gateway stops accepting, sends GOAWAY, and streams already open run to
    their end (within server.drain_timeout) before the daemon exits 0."""
    spark_port, _ = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = BackgroundStream(channel, daemon, 6, 400)
        stream.started()
        daemon.send_signal(15)
        helpers.wait_until(lambda: not helpers.port_accepts(port), 5.0,
                           what="the gateway listener to close")
        status, received = stream.finish()
    assert status == "OK", status
    assert received == [b"message %d" % i for i in range(6)]
    assert daemon.wait_exit() == 0


def test_a_reload_leaves_open_streams_alone(daemon_factory, fake_spark):
    """SIGHUP with a changed gateway config (new limits, a second cluster) applies to what
    comes next; a stream open during the reload runs to its end on its connection."""
    spark_port, _ = fake_spark
    daemon, port = start_gateway(daemon_factory, spark_port)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = BackgroundStream(channel, daemon, 6, 300)
        stream.started()
        daemon.config["gateway"]["max_message_size"] = "8MiB"
        before = helpers.metric_value(daemon.metrics(), "sparkplane_config_reloads_total",
                                      result="ok")
        daemon.write_config()
        daemon.send_signal(1)
        helpers.wait_until(lambda: helpers.metric_value(
            daemon.metrics(), "sparkplane_config_reloads_total", result="ok") == before + 1,
            10, what="the reload")
        status, received = stream.finish()
        assert status == "OK", status
        assert received == [b"message %d" % i for i in range(6)]
        # the new limit holds for the next call on the same connection
        analyze = channel.unary_unary(SERVICE + "AnalyzePlan")
        with pytest.raises(grpc.RpcError) as refused:
            analyze(request(padding=9 * MIB), metadata=call_metadata(daemon), timeout=60)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_reload_that_drops_a_listener_drains_its_connections(daemon_factory, fake_spark):
    """Moving gateway.listen to another port closes the old listener; its connections get a
    graceful GOAWAY (the open stream finishes there) and clients reconnect to the new port."""
    spark_port, _ = fake_spark
    daemon, old_port = start_gateway(daemon_factory, spark_port)
    new_port = helpers.free_port()
    with grpc.insecure_channel(f"127.0.0.1:{old_port}") as channel:
        stream = BackgroundStream(channel, daemon, 5, 300)
        stream.started()
        daemon.config["gateway"]["listen"] = [f"127.0.0.1:{new_port}"]
        daemon.write_config()
        daemon.send_signal(1)
        helpers.wait_until(lambda: helpers.port_accepts(new_port), 10,
                           what="the new gateway listener")
        status, received = stream.finish()
        assert status == "OK", status
        assert received == [b"message %d" % i for i in range(5)]
        assert not helpers.port_accepts(old_port)
        helpers.wait_until(lambda: helpers.metric_value(
            daemon.metrics(), "sparkplane_gateway_connections") == 0, 10,
            what="the drained connection to close")
    with grpc.insecure_channel(f"127.0.0.1:{new_port}") as channel:
        analyze = channel.unary_unary(SERVICE + "AnalyzePlan")
        assert analyze(request(padding=10), metadata=call_metadata(daemon), timeout=30)
