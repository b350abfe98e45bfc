"""test_gateway_tls.py - the Spark Connect gateway over TLS with ALPN h2 (gateway.tls.*).

A CA and server certificates are made with the openssl command in a temp
directory (SAN analytics-dev.example.team, localhost, 127.0.0.1).  Each
daemon gets its own copy of the certificate and key files, so a test can
rotate or break them and reload.

What a user would notice:
- --check-config names the TLS key at fault (file:line:column and dotted key)
  for a missing file, a key that is not the certificate's, a missing key, an
  address that is both h2c and TLS;
- a real pyspark client with a token reaches sc://analytics-dev.example.team
  over TLS, trusting the CA through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, and is
  routed by the host name (pattern {team}-{env}.{domain});
- a TLS client that does not speak h2 (ALPN http/1.1, or no ALPN) and a plain
  h2c client on the TLS port are turned away while other clients carry on;
- SIGHUP picks up a rotated certificate for new connections, open ones keep
  working; a reload with a bad key keeps serving the old certificate and says why.

The pyspark test needs java and pyspark (one Spark Connect server from
spark_connect.py); the rest needs only the daemon, openssl and the h2 package.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

import helpers
import spark_connect
from spark_connect import skip_or_fail

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_CLIENT = os.path.join(HERE, "spark_apps", "gateway_tls_client.py")
CLIENT_TIMEOUT = 300.0
HOST = "analytics-dev.example.team"


# ---- certificates ---------------------------------------------------------------------------

class Pki:
    """A test CA in `directory` that issues server certificates for HOST and localhost."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.ca = os.path.join(self.directory, "ca.pem")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                      "-subj", "/CN=sparkplane test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        with open(os.path.join(self.directory, "server.ext"), "w") as out:
            out.write(f"subjectAltName=DNS:{HOST},DNS:localhost,IP:127.0.0.1\n"
                      "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")

    def _openssl(self, *args):
        result = subprocess.run(["openssl", *args], cwd=self.directory, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"

    def new_key(self, name):
        self._openssl("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-out", name)
        return os.path.join(self.directory, name)

    def issue(self, name, serial):
        """Returns (chain PEM text: leaf then CA, key PEM text, the leaf's DER bytes)."""
        key = self.new_key(f"{name}.key")
        self._openssl("req", "-new", "-key", key, "-out", f"{name}.csr", "-subj", f"/CN={HOST}")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-set_serial", str(serial), "-days", "2", "-out", f"{name}.pem",
                      "-extfile", "server.ext")
        leaf = open(os.path.join(self.directory, f"{name}.pem")).read()
        ca = open(self.ca).read()
        return leaf + ca, open(key).read(), ssl.PEM_cert_to_DER_cert(leaf)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is not installed")
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_certificates(pki):
    """Two certificates for the same names: the first served, the one rotated in."""
    return {"first": pki.issue("first", 0x1001), "rotated": pki.issue("rotated", 0x2002)}


def install_certificate(directory, chain, key):
    """Writes chain.pem and key.pem as a deployment tool would (replace, not edit in place)."""
    for name, text in (("chain.pem", chain), ("key.pem", key)):
        path = os.path.join(directory, name)
        with open(path + ".new", "w") as out:
            out.write(text)
        os.replace(path + ".new", path)


# ---- talking TLS ----------------------------------------------------------------------------

def tls_socket(port, ca, alpn=("h2",)):
    """A TLS connection to the gateway port, checked against the test CA for HOST."""
    context = ssl.create_default_context(cafile=ca)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def served_certificate(port, ca):
    """The DER certificate the gateway serves to a new connection."""
    with tls_socket(port, ca) as sock:
        return sock.getpeercert(binary_form=True)


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


class H2OverTls:
    """One HTTP/2 client connection over TLS (h2 package), enough to prove it is served."""

    def __init__(self, port, ca):
        import h2.config
        import h2.connection
        self.sock = tls_socket(port, ca)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def ping(self, timeout=5.0):
        """Sends PING and returns once its ACK arrives (AssertionError if the server closes)."""
        import h2.events
        payload = os.urandom(8)
        self.conn.ping(payload)
        self.sock.sendall(self.conn.data_to_send())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            assert data, "the gateway closed the connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.PingAckReceived) and event.ping_data == payload:
                    return True
            pending = self.conn.data_to_send()
            if pending:
                self.sock.sendall(pending)
        raise AssertionError(f"no PING ACK within {timeout}s")

    def close(self):
        self.sock.close()


def closed_without_data(sock, timeout=5.0):
    """True when the peer closes sock (EOF, reset or TLS close) without sending data."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return True
    except ssl.SSLError as error:
        return "EOF" in str(error) or "closed" in str(error).lower()


# ---- the daemon -----------------------------------------------------------------------------

def tls_gateway_options(workdir, tls_port):
    return {"domain": "example.team", "max_concurrent_streams": 50,
            "tls": {"listen": [f"127.0.0.1:{tls_port}"],
                    "certificate": os.path.join(workdir, "chain.pem"),
                    "key": os.path.join(workdir, "key.pem")}}


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory):
    with spark_connect.running_server(tmp_path_factory, "spark-connect-tls") as server:
        yield server


def start_tls_gateway(daemon_factory, certificate, spark=None, **gateway_options):
    """A daemon whose gateway listens with TLS only; returns (daemon, TLS port).

    Cluster analytics-dev (team analytics) points at the Spark server, or at a
    port where nothing listens when there is none."""
    endpoint = spark.address if spark else f"127.0.0.1:{helpers.free_port()}"
    cluster = {"id": "analytics-dev", "team": "analytics", "environment": "dev",
               "endpoints": [endpoint], "token": spark.token if spark else None}
    tls_port = helpers.free_port()

    def configure(cfg):
        workdir = os.path.dirname(cfg["state"]["directory"])
        install_certificate(workdir, certificate[0], certificate[1])
        cfg["gateway"] = {**tls_gateway_options(workdir, tls_port), **gateway_options}
        os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
        with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
            out.write(spark_connect.clusters_yaml([cluster]))

    daemon = daemon_factory(configure=configure)
    daemon.wait_log(rf"listening on 127\.0\.0\.1:{tls_port} \(TLS, h2\)")
    return daemon, tls_port


@pytest.fixture
def tls_gateway(daemon_factory, server_certificates):
    """A TLS gateway serving the first certificate (no Spark server behind it)."""
    return start_tls_gateway(daemon_factory, server_certificates["first"])


# ---- --check-config -------------------------------------------------------------------------

def check_config(builddir, directory, gateway):
    config = {"server": {"listen": [f"127.0.0.1:{helpers.free_port()}"]},
              "state": {"directory": os.path.join(str(directory), "state")},
              "gateway": gateway}
    path = os.path.join(str(directory), "sparkplane.yaml")
    with open(path, "w") as out:
        out.write(helpers.to_yaml(config) + "\n")
    return helpers.run_cli(builddir, "--check-config", "--config", path)


def test_check_config_names_the_tls_setting_at_fault(builddir, tmp_path, pki,
                                                     server_certificates):
    """--check-config points at the TLS line that is wrong and says what is wrong with it."""
    install_certificate(str(tmp_path), *server_certificates["first"][:2])
    stranger = pki.new_key("stranger.key")
    port = helpers.free_port()
    chain = str(tmp_path / "chain.pem")

    both = check_config(builddir, tmp_path, {
        "listen": [f"127.0.0.1:{port}"], "domain": "example.team",
        "tls": {"listen": [f"127.0.0.1:{port}"], "certificate": chain, "key": stranger}})
    assert both.returncode == 1, both.stdout
    assert f"gateway.tls.listen[0]: '127.0.0.1:{port}' is in gateway.listen too" in both.stderr
    assert "gateway.tls.key: the key in " + stranger + " does not match the certificate in " \
        + chain in both.stderr
    assert "2 problem(s)" in both.stderr

    missing = check_config(builddir, tmp_path, {
        "domain": "example.team",
        "tls": {"listen": [f"127.0.0.1:{port}"], "certificate": "no-such.pem",
                "key": str(tmp_path / "key.pem")}})
    assert missing.returncode == 1
    assert "sparkplane.yaml:" in missing.stderr
    assert (f"gateway.tls.certificate: cannot read {tmp_path}/no-such.pem: "
            "No such file or directory") in missing.stderr, missing.stderr

    no_key = check_config(builddir, tmp_path, {
        "domain": "example.team",
        "tls": {"listen": [f"127.0.0.1:{port}"], "certificate": chain}})
    assert no_key.returncode == 1
    assert "gateway.tls.key: required: gateway.tls.listen is set" in no_key.stderr

    not_a_key = check_config(builddir, tmp_path, {
        "domain": "example.team",
        "tls": {"listen": [f"127.0.0.1:{port}"], "certificate": chain, "key": chain}})
    assert not_a_key.returncode == 1
    assert "gateway.tls.key: " + chain + " is not an unencrypted PEM private key" \
        in not_a_key.stderr, not_a_key.stderr


def test_check_config_accepts_a_good_tls_setup(builddir, tmp_path, server_certificates):
    """A certificate with its own key, relative to the config file, passes --check-config."""
    install_certificate(str(tmp_path), *server_certificates["first"][:2])
    result = check_config(builddir, tmp_path, {
        "domain": "example.team",
        "tls": {"listen": [f"127.0.0.1:{helpers.free_port()}"], "certificate": "chain.pem",
                "key": "key.pem"}})
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


# ---- a real pyspark client ------------------------------------------------------------------

def test_pyspark_reaches_its_cluster_by_host_name_over_tls(daemon_factory, spark_server, pki,
                                                            server_certificates):
    """sc://analytics-dev.example.team:PORT/;token=... works from a notebook: TLS, the CA
    trusted through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, routed by the host name alone."""
    daemon, port = start_tls_gateway(daemon_factory, server_certificates["first"],
                                     spark=spark_server)
    url = f"sc://{HOST}:{port}/;token={daemon.token};user_id=alice"
    env = dict(os.environ, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=pki.ca)
    result = subprocess.run([sys.executable, TLS_CLIENT, "queries", url, f"127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=CLIENT_TIMEOUT, env=env)
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}"
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"status": "OK", "count": 100, "groups": [[0, 334], [1, 333], [2, 333]],
                      "sql": 42}, answer
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_gateway_streams_total",
                                cluster="analytics-dev", grpc_status="0") >= 3


# ---- clients that do not speak h2 over TLS --------------------------------------------------

def test_a_tls_client_without_alpn_h2_is_refused(tls_gateway, pki):
    """ALPN http/1.1 gets the no_application_protocol alert and a log line naming the client;
    a client with no ALPN is closed after the handshake; an h2 client is served meanwhile."""
    daemon, port = tls_gateway
    served = H2OverTls(port, pki.ca)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        peer = "127.0.0.1:%d" % raw.getsockname()[1]
        context = ssl.create_default_context(cafile=pki.ca)
        context.set_alpn_protocols(["http/1.1"])
        with pytest.raises(ssl.SSLError, match="no application protocol"):
            context.wrap_socket(raw, server_hostname=HOST)
        raw.close()
        daemon.wait_log(rf"{peer}: refused a TLS client that offers no ALPN h2 "
                        r"\(offered: http/1\.1\)")

        with tls_socket(port, pki.ca, alpn=()) as no_alpn:
            assert no_alpn.selected_alpn_protocol() is None
            peer = "127.0.0.1:%d" % no_alpn.getsockname()[1]
            assert closed_without_data(no_alpn)
        daemon.wait_log(rf"{peer}: TLS client negotiated no ALPN h2: closed")

        assert served.ping()
    finally:
        served.close()
    assert helpers.wait_until(
        lambda: helpers.metric_value(daemon.metrics(), "sparkplane_gateway_connections") == 0,
        5.0, what="every connection closed")


def test_plain_h2c_on_the_tls_port_is_dropped(tls_gateway, pki):
    """An HTTP/2 preface in clear text on the TLS port is dropped; TLS clients carry on."""
    daemon, port = tls_gateway
    served = H2OverTls(port, pki.ca)
    try:
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        received, _ = helpers.raw_exchange(port, preface, timeout=5.0)
        # Nothing HTTP/2 comes back: at most a TLS alert record (content type 21).
        assert received == b"" or received[:1] == b"\x15", received[:40]
        assert served.ping()
    finally:
        served.close()


# ---- reload -----------------------------------------------------------------------------------

def test_reload_serves_a_rotated_certificate_to_new_connections(tls_gateway, pki,
                                                                server_certificates):
    """After the files are replaced and SIGHUP, new connections get the new certificate;
    a connection opened before keeps its certificate and keeps working."""
    daemon, port = tls_gateway
    first, rotated = server_certificates["first"], server_certificates["rotated"]
    assert fingerprint(served_certificate(port, pki.ca)) == fingerprint(first[2])
    before = H2OverTls(port, pki.ca)
    try:
        install_certificate(daemon.workdir, rotated[0], rotated[1])
        offset = len(daemon.log())
        daemon.send_signal(signal.SIGHUP)
        daemon.wait_log(r"TLS certificate: CN=analytics-dev\.example\.team, serial 2002",
                        offset=offset)
        daemon.wait_log(r"msg=\"reloaded", offset=offset)
        assert fingerprint(served_certificate(port, pki.ca)) == fingerprint(rotated[2])
        assert fingerprint(before.sock.getpeercert(binary_form=True)) == fingerprint(first[2])
        assert before.ping()
    finally:
        before.close()


def test_reload_with_a_bad_key_keeps_the_old_certificate(tls_gateway, pki, server_certificates):
    """A rotation gone wrong (a key of another certificate) is refused with the reason, and
    the gateway goes on serving the certificate it had."""
    daemon, port = tls_gateway
    first, rotated = server_certificates["first"], server_certificates["rotated"]
    install_certificate(daemon.workdir, rotated[0], open(pki.new_key("wrong.key")).read())
    offset = len(daemon.log())
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"reload refused", offset=offset)
    why = daemon.log()[offset:]
    assert "gateway.tls.key: the key in" in why and "does not match the certificate" in why, why
    assert fingerprint(served_certificate(port, pki.ca)) == fingerprint(first[2])
    served = H2OverTls(port, pki.ca)
    try:
        assert served.ping()
    finally:
        served.close()


def test_a_stalled_tls_handshake_is_closed_after_the_header_timeout(daemon_factory,
                                                                     server_certificates):
    """A client that connects and never starts TLS holds nothing for long: no HTTP/2 preface
    within gateway.header_timeout ends it (after the short GOAWAY linger)."""
    daemon, port = start_tls_gateway(daemon_factory, server_certificates["first"],
                                     header_timeout="1s")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(15)
    started = time.monotonic()
    try:
        assert sock.recv(100) == b""
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert time.monotonic() - started < 10
    assert helpers.metric_value(daemon.metrics(), "sparkplane_gateway_connections_closed_total",
                                reason="header_timeout") == 1
