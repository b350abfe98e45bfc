"""test_limits.py - server.max_header_size (431), max_body_size (413), request_timeout (408).

Raw sockets, because the point is what the daemon does with requests a
well-behaved client library would never send.
"""
import json
import socket
import time

import pytest

import helpers

MAX_HEADER = 4096
MAX_BODY = 1024
TIMEOUT_S = 1


def limited(cfg):
    cfg["server"]["max_header_size"] = f"{MAX_HEADER // 1024}KiB"
    cfg["server"]["max_body_size"] = f"{MAX_BODY}"
    cfg["server"]["request_timeout"] = f"{TIMEOUT_S}s"


@pytest.fixture
def small(daemon_factory):
    return daemon_factory(configure=limited)


def refused_total(daemon):
    return helpers.metric_value(daemon.metrics(), "sparkplane_http_refused_total")


def assert_json_refusal(data, status, code):
    got_status, headers, body = helpers.parse_response(data)
    assert got_status == status, data[:300]
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert json.loads(body)["error"]["code"] == code


def test_oversized_headers_get_431(small):
    before = refused_total(small)
    filler = b"X-Filler: " + b"a" * (MAX_HEADER + 100) + b"\r\n"
    data, _ = helpers.raw_exchange(
        small.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
    assert_json_refusal(data, 431, "request_header_fields_too_large")
    assert refused_total(small) == before + 1


def test_many_small_headers_over_the_limit_get_431(small):
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(MAX_HEADER // 40 + 10))
    data, _ = helpers.raw_exchange(small.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert_json_refusal(data, 431, "request_header_fields_too_large")


def test_headers_just_under_the_limit_pass(small):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    filler_len = MAX_HEADER - len(request) - len(b"X-Filler: \r\n\r\n") - 64
    request += b"X-Filler: " + b"a" * filler_len + b"\r\n\r\n"
    data, _ = helpers.raw_exchange(small.port, request)
    status, _, body = helpers.parse_response(data)
    assert status == 200, body


def test_oversized_body_gets_413_before_the_body_is_sent(small):
    before = refused_total(small)
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        data, _ = helpers.read_until_close(sock, timeout=3)
    assert_json_refusal(data, 413, "payload_too_large")
    assert refused_total(small) == before + 1


def test_body_within_limit_reaches_routing(small):
    body = b"x" * MAX_BODY
    data, _ = helpers.raw_exchange(
        small.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    status, _, _ = helpers.parse_response(data)
    assert status == 405   # the router answered, so the guard let it through


def test_slow_request_gets_408_after_request_timeout(small):
    before = refused_total(small)
    started = time.monotonic()
    data, first_byte = helpers.raw_exchange(small.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                                            timeout=TIMEOUT_S + 4)
    assert_json_refusal(data, 408, "request_timeout")
    elapsed = time.monotonic() - started
    assert TIMEOUT_S * 0.8 <= first_byte <= TIMEOUT_S + 2, f"408 after {first_byte}s"
    assert elapsed < TIMEOUT_S + 4
    assert refused_total(small) == before + 1


def test_slow_body_gets_408(small):
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        data, _ = helpers.read_until_close(sock, timeout=TIMEOUT_S + 4)
    assert_json_refusal(data, 408, "request_timeout")


def test_keep_alive_and_pipelining_pass_the_guard(small):
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data, _ = helpers.raw_exchange(small.port, one + one + last)
    assert data.count(b"HTTP/1.1 200") == 3, data


def test_idle_keep_alive_connection_is_not_answered_408(small):
    """A finished request followed by silence is not a slow request."""
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = helpers.read_until_close(sock, timeout=TIMEOUT_S + 1.5)
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b"408" not in data, data


def test_limits_apply_per_request_on_a_connection(small):
    """A good request answered, then an oversized one on the same connection: 431."""
    good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-F: " + b"a" * (MAX_HEADER + 10) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as sock:
        sock.sendall(good)
        first = b""
        while b"\r\n\r\n" not in first or not first.endswith(b"}\n"):
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {first!r}"
            first += chunk
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.sendall(bad)
        data, _ = helpers.read_until_close(sock, timeout=3)
    assert_json_refusal(data, 431, "request_header_fields_too_large")


@pytest.mark.xfail(reason="known daemon bug: a refused request pipelined behind a good one "
                          "gets no 431 (the connection closes after the 200); remove this mark "
                          "once http_guard answers in order", strict=False)
def test_pipelined_oversized_request_is_answered_in_order(small):
    good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-F: " + b"a" * (MAX_HEADER + 10) + b"\r\n\r\n"
    data, _ = helpers.raw_exchange(small.port, good + bad, timeout=3)
    statuses = [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert [s[9:12] for s in statuses] == [b"200", b"431"], data[:500]
