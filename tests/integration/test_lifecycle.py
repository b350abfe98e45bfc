"""test_lifecycle.py - SIGTERM drain, start-up failures, and the systemd notify protocol."""
import os
import re
import signal
import socket
import tempfile
import time

import pytest

import helpers


def test_sigterm_exits_zero_promptly(daemon):
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 3 + 2, "an idle daemon should not wait out drain_timeout"
    daemon.assert_clean_log()


def test_sigint_also_drains(daemon):
    daemon.send_signal(signal.SIGINT)
    assert daemon.wait_exit() == 0


def test_sigterm_closes_listeners_and_drains_within_drain_timeout(daemon_factory):
    drain_s = 2

    def configure(cfg):
        cfg["server"]["drain_timeout"] = f"{drain_s}s"
        cfg["server"]["request_timeout"] = "30s"
    daemon = daemon_factory(configure=configure)
    # A client stuck in the middle of a request, and an idle keep-alive connection.
    stuck = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    stuck.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    idle = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        helpers.wait_until(lambda: not helpers.port_accepts(daemon.port) or not daemon.alive(),
                           drain_s, what="the listener to close on SIGTERM")
        assert daemon.wait_exit(timeout=drain_s + 10) == 0
        took = time.monotonic() - started
        assert took <= drain_s + 2, f"drain took {took:.1f}s with drain_timeout {drain_s}s"
    finally:
        stuck.close()
        idle.close()
    assert re.search(r"drain", daemon.log()), "the drain is not logged"
    daemon.assert_clean_log()


def test_bad_config_refuses_to_start(daemon_factory):
    def configure(cfg):
        cfg["server"]["bogus_key"] = 1
    daemon = daemon_factory(configure=configure, wait=False)
    assert daemon.wait_exit(timeout=20) == 1
    assert "bogus_key" in daemon.log()
    daemon.assert_clean_log()


def test_listen_address_in_use_refuses_to_start(daemon_factory):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]

        def configure(cfg):
            cfg["server"]["listen"] = [f"127.0.0.1:{port}"]
        daemon = daemon_factory(configure=configure, wait=False)
        assert daemon.wait_exit(timeout=20) == 1
    assert str(port) in daemon.log()
    daemon.assert_clean_log()


# ---- systemd notify ---------------------------------------------------------------------

class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET: an AF_UNIX datagram socket in a short path."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sp-notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def expect(self, predicate, timeout=15, what="a notify message"):
        """Reads datagrams until one satisfies predicate; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append(message)
            if predicate(message):
                return message
        raise AssertionError(f"no {what} within {timeout}s; got {self.messages}")

    def close(self):
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


def fields(message):
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


def test_notify_protocol(daemon_factory, notify_socket):
    daemon = daemon_factory(env={"NOTIFY_SOCKET": notify_socket.path}, wait=False)

    notify_socket.expect(lambda m: fields(m).get("READY") == "1", what="READY=1")
    # READY=1 means listening: the very next connection must be answered.
    assert daemon.get("/healthz").status_code == 200
    assert any("STATUS" in fields(m) for m in notify_socket.messages), notify_socket.messages
    assert not any("RELOADING" in fields(m) for m in notify_socket.messages)

    seen = len(notify_socket.messages)
    before_us = time.monotonic_ns() // 1000
    daemon.send_signal(signal.SIGHUP)
    reloading = notify_socket.expect(lambda m: fields(m).get("RELOADING") == "1",
                                     what="RELOADING=1")
    after_us = time.monotonic_ns() // 1000
    stamp = fields(reloading).get("MONOTONIC_USEC", "")
    assert stamp.isdigit(), f"RELOADING=1 without MONOTONIC_USEC: {reloading!r}"
    assert before_us <= int(stamp) <= after_us, "MONOTONIC_USEC is not CLOCK_MONOTONIC now"
    notify_socket.expect(lambda m: fields(m).get("READY") == "1", what="READY=1 after reload")
    assert "STOPPING" not in "".join(notify_socket.messages[seen:])

    daemon.send_signal(signal.SIGTERM)
    notify_socket.expect(lambda m: fields(m).get("STOPPING") == "1", what="STOPPING=1")
    assert daemon.wait_exit() == 0
    daemon.assert_clean_log()


def test_notify_after_refused_reload_says_why(daemon_factory, notify_socket):
    daemon = daemon_factory(env={"NOTIFY_SOCKET": notify_socket.path}, wait=False)
    notify_socket.expect(lambda m: fields(m).get("READY") == "1", what="READY=1")
    daemon.write_config(text="server: [unclosed\n")
    daemon.send_signal(signal.SIGHUP)
    notify_socket.expect(lambda m: fields(m).get("RELOADING") == "1", what="RELOADING=1")
    notify_socket.expect(lambda m: fields(m).get("READY") == "1", what="READY=1 after refusal")
    notify_socket.expect(lambda m: "refused" in fields(m).get("STATUS", ""),
                         what="a STATUS saying the reload was refused")
    assert daemon.get("/healthz").status_code == 200
