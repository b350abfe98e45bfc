"""test_rest_tls.py - the REST server over TLS (server.tls.*), next to its plain listener.

Certificates come from the test CA of test_gateway_tls.py (the openssl command in a temp
directory; SAN localhost and 127.0.0.1).  Each daemon gets its own copy of chain.pem and
key.pem, so a test can rotate or break them and reload.

What a user would notice:
- https://127.0.0.1:PORT/api/v1/whoami answers with a token, as the plain port does, and
  both ports serve at once; ALPN http/1.1 is selected when offered;
- the daemon refuses to start on a missing key file or a key that is not the certificate's,
  naming server.tls.key; --check-config names the setting at fault;
- SIGHUP serves a rotated certificate to new connections;
- with client_certificates: request the server asks for a certificate, a client that sends
  one (unverified: a self-signed one) or none is served with its token;
- plain HTTP on the TLS port is dropped and the daemon carries on; the guard's limits
  (431 for a huge header block) answer over TLS too.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

import helpers
from spark_connect import skip_or_fail
from test_gateway_tls import Pki, fingerprint, install_certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is not installed")
    return Pki(tmp_path_factory.mktemp("rest-pki"))


@pytest.fixture(scope="module")
def certificates(pki):
    """Two server certificates (served, rotated in) and a self-signed client certificate."""
    client_key = pki.new_key("client.key")
    pki._openssl("req", "-x509", "-new", "-key", client_key, "-out", "client.pem", "-days", "2",
                 "-subj", "/CN=alice-laptop")
    return {"first": pki.issue("rest-first", 0x3003), "rotated": pki.issue("rest-rotated", 0x4004),
            "client": (os.path.join(pki.directory, "client.pem"), client_key)}


def start_https(daemon_factory, certificate, **tls_options):
    """A daemon with its plain listener and one HTTPS listener; returns (daemon, TLS port)."""
    tls_port = helpers.free_port()

    def configure(cfg):
        workdir = os.path.dirname(cfg["state"]["directory"])
        install_certificate(workdir, certificate[0], certificate[1])
        cfg["server"]["tls"] = {"listen": [f"127.0.0.1:{tls_port}"],
                                "certificate": os.path.join(workdir, "chain.pem"),
                                "key": os.path.join(workdir, "key.pem"), **tls_options}

    daemon = daemon_factory(configure=configure)
    daemon.wait_log(rf"listening on 127\.0\.0\.1:{tls_port} \(HTTPS\)")
    return daemon, tls_port


def https_get(port, ca, path, token=None, cert=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return helpers.http("GET", f"https://127.0.0.1:{port}{path}", headers=headers, verify=ca,
                        cert=cert)


def served_certificate(port, ca, alpn=None):
    """(DER certificate, selected ALPN) of a new TLS connection to port."""
    context = ssl.create_default_context(cafile=ca)
    if alpn:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return sock.getpeercert(binary_form=True), sock.selected_alpn_protocol()


def s_client(port, ca, *extra):
    """openssl s_client's report of one handshake, with every handshake message (-msg)."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca, "-msg",
         "-verify_return_error", "-servername", "localhost", *extra],
        input="", capture_output=True, text=True, timeout=30)
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def https_daemon(daemon_factory, certificates):
    return start_https(daemon_factory, certificates["first"])


# ---- serving ---------------------------------------------------------------------------------

def test_whoami_over_https_next_to_the_plain_listener(https_daemon, pki):
    """The token works over TLS as over plain HTTP, on both ports at once; no token is 401."""
    daemon, port = https_daemon
    answer = https_get(port, pki.ca, "/api/v1/whoami", token=daemon.token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["subject"] == "alice"
    refused = https_get(port, pki.ca, "/api/v1/whoami")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    plain = daemon.get("/api/v1/whoami", token=daemon.token)
    assert plain.status_code == 200 and plain.json()["subject"] == "alice"
    assert https_get(port, pki.ca, "/healthz").status_code == 200


def test_alpn_selects_http11_and_keep_alive_works(https_daemon, pki):
    """A client offering h2 and http/1.1 gets http/1.1; several requests share one connection."""
    daemon, port = https_daemon
    _, protocol = served_certificate(port, pki.ca, alpn=["h2", "http/1.1"])
    assert protocol == "http/1.1"
    _, protocol = served_certificate(port, pki.ca)
    assert protocol is None
    import requests
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(3):
            answer = session.get(f"https://127.0.0.1:{port}/api/v1/whoami", verify=pki.ca,
                                 headers={"Authorization": f"Bearer {daemon.token}"}, timeout=10)
            assert answer.status_code == 200, answer.text


def test_a_large_answer_arrives_whole_over_tls(https_daemon, pki):
    """An answer larger than one TLS piece (the OpenAPI document) arrives intact and closes
    cleanly with Connection: close."""
    daemon, port = https_daemon
    plain = daemon.get("/api/v1/openapi.json")
    assert plain.status_code == 200
    answer = helpers.http("GET", f"https://127.0.0.1:{port}/api/v1/openapi.json",
                          verify=pki.ca, headers={"Connection": "close"})
    assert answer.status_code == 200
    assert answer.content == plain.content


def test_a_job_submitted_and_followed_over_tls(daemon_factory, builddir, pki, certificates):
    """A POST body goes in over TLS, and a followed log (a chunked answer that ends with the
    job) comes out whole, the same text as over plain HTTP."""
    sim = os.path.join(builddir, "plugins", "backend_sim", ".libs", "backend_sim.so")
    tls_port = helpers.free_port()

    def configure(cfg):
        workdir = os.path.dirname(cfg["state"]["directory"])
        install_certificate(workdir, *certificates["first"][:2])
        cfg["server"]["tls"] = {"listen": [f"127.0.0.1:{tls_port}"],
                                "certificate": os.path.join(workdir, "chain.pem"),
                                "key": os.path.join(workdir, "key.pem")}
        cfg["plugins"]["backend_sim"] = {"path": sim, "options": {"run_duration": "1s"}}
        cfg["runner"] = {"default_backend": "sim", "reconcile_interval": "200ms"}
        cfg["spark_versions"] = {"3.5": {"image": "spark-platform:3.5-latest"}}

    daemon = daemon_factory(configure=configure)
    auth = {"Authorization": f"Bearer {daemon.token}"}
    job = {"name": "over-tls", "team": "analytics", "spark_version": "3.5",
           "application": {"file": "/jobs/count_rows.py", "args": ["--rows", "1000"]},
           "resources": {"executor": {"cores": 1, "memory": "1g", "instances": 1}}}
    base = f"https://127.0.0.1:{tls_port}/api/v1/jobs"
    created = helpers.http("POST", base, json=job, headers=auth, verify=pki.ca)
    assert created.status_code in (201, 202), created.text
    job_id = created.json()["id"]
    followed = helpers.http("GET", f"{base}/{job_id}/logs?follow=true", headers=auth,
                            verify=pki.ca, timeout=30)
    assert followed.status_code == 200, followed.text
    assert followed.content
    plain = daemon.get(f"/api/v1/jobs/{job_id}/logs", token=daemon.token)
    assert plain.status_code == 200 and plain.content == followed.content


# ---- bad configuration -----------------------------------------------------------------------

def test_start_is_refused_when_the_key_is_missing_or_foreign(daemon_factory, pki, certificates):
    """A missing key file and a key of another certificate each stop the start, naming
    server.tls.key and the files."""
    for broken in ("missing", "foreign"):
        tls_port = helpers.free_port()

        def configure(cfg):
            workdir = os.path.dirname(cfg["state"]["directory"])
            install_certificate(workdir, *certificates["first"][:2])
            key = os.path.join(workdir, "key.pem")
            if broken == "missing":
                os.unlink(key)
            else:
                shutil.copy(pki.new_key(f"foreign-{tls_port}.key"), key)
            cfg["server"]["tls"] = {"listen": [f"127.0.0.1:{tls_port}"],
                                    "certificate": os.path.join(workdir, "chain.pem"),
                                    "key": key}

        daemon = daemon_factory(configure=configure, wait=False)
        assert daemon.wait_exit() != 0
        log = daemon.log()
        key = os.path.join(daemon.workdir, "key.pem")
        if broken == "missing":
            assert f"server.tls.key: cannot read {key}: No such file or directory" in log, log
        else:
            assert (f"server.tls.key: the key in {key} does not match the certificate in "
                    f"{os.path.join(daemon.workdir, 'chain.pem')}") in log, log
        assert not helpers.port_accepts(tls_port)


def test_check_config_names_the_server_tls_setting_at_fault(builddir, tmp_path, certificates):
    """--check-config: a missing key, a port both plain and TLS, an unknown client_certificates
    mode, each with its dotted key."""
    install_certificate(str(tmp_path), *certificates["first"][:2])
    port = helpers.free_port()
    config = {"server": {"listen": [f"127.0.0.1:{port}"],
                         "tls": {"listen": [f"127.0.0.1:{port}"],
                                 "certificate": "chain.pem",
                                 "client_certificates": "require"}},
              "state": {"directory": str(tmp_path / "state")}}
    path = tmp_path / "sparkplane.yaml"
    path.write_text(helpers.to_yaml(config) + "\n")
    result = helpers.run_cli(builddir, "--check-config", "--config", str(path))
    assert result.returncode == 1, result.stdout
    assert (f"server.tls.listen[0]: '127.0.0.1:{port}' is in server.listen too: a port serves "
            "HTTP or TLS, not both") in result.stderr, result.stderr
    assert "server.tls.key: required: server.tls.listen is set" in result.stderr
    assert ("server.tls.client_certificates: expected one of none, request, got 'require'"
            in result.stderr)

    config["server"]["tls"] = {"listen": [f"127.0.0.1:{helpers.free_port()}"],
                               "certificate": "chain.pem", "key": "key.pem",
                               "client_certificates": "request"}
    path.write_text(helpers.to_yaml(config) + "\n")
    result = helpers.run_cli(builddir, "--check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr


# ---- reload ------------------------------------------------------------------------------------

def test_reload_serves_a_rotated_certificate(https_daemon, pki, certificates):
    """Replace the files, SIGHUP: new connections get the new certificate; a bad key is
    refused with the reason and the rotated certificate stays."""
    daemon, port = https_daemon
    first, rotated = certificates["first"], certificates["rotated"]
    assert fingerprint(served_certificate(port, pki.ca)[0]) == fingerprint(first[2])

    install_certificate(daemon.workdir, rotated[0], rotated[1])
    offset = len(daemon.log())
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"subsystem=rest .*TLS certificate: CN=analytics-dev\.example\.team, serial 4004",
                    offset=offset)
    daemon.wait_log(r"msg=\"reloaded", offset=offset)
    assert fingerprint(served_certificate(port, pki.ca)[0]) == fingerprint(rotated[2])
    assert https_get(port, pki.ca, "/api/v1/whoami", token=daemon.token).status_code == 200

    install_certificate(daemon.workdir, first[0], open(pki.new_key("wrong-rest.key")).read())
    offset = len(daemon.log())
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"reload refused", offset=offset)
    why = daemon.log()[offset:]
    assert "server.tls.key: the key in" in why and "does not match the certificate" in why, why
    assert fingerprint(served_certificate(port, pki.ca)[0]) == fingerprint(rotated[2])


def test_reload_moves_an_address_between_plain_and_tls(https_daemon, pki):
    """An address taken from server.tls.listen into server.listen keeps its port and speaks
    plain HTTP after SIGHUP (and the TLS one goes)."""
    daemon, port = https_daemon
    config = daemon.config
    config["server"]["listen"] = [f"127.0.0.1:{daemon.port}", f"127.0.0.1:{port}"]
    config["server"]["tls"]["listen"] = []
    daemon.write_config(config)
    offset = len(daemon.log())
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_log(r"msg=\"reloaded", offset=offset)
    assert f"listener 127.0.0.1:{port} now serves plain HTTP" in daemon.log()[offset:]
    answer = helpers.http("GET", f"http://127.0.0.1:{port}/api/v1/whoami",
                          headers={"Authorization": f"Bearer {daemon.token}"})
    assert answer.status_code == 200 and answer.json()["subject"] == "alice"


# ---- client certificates ---------------------------------------------------------------------

def test_client_certificates_request(daemon_factory, pki, certificates):
    """client_certificates: request sends a CertificateRequest; a client with an unverifiable
    (self-signed) certificate and one without any both get in with their token."""
    daemon, port = start_https(daemon_factory, certificates["first"],
                               client_certificates="request")
    report = s_client(port, pki.ca)
    assert "CertificateRequest" in report, report

    with_cert = https_get(port, pki.ca, "/api/v1/whoami", token=daemon.token,
                          cert=certificates["client"])
    assert with_cert.status_code == 200, with_cert.text
    assert with_cert.json()["subject"] == "alice"
    without = https_get(port, pki.ca, "/api/v1/whoami", token=daemon.token)
    assert without.status_code == 200, without.text
    assert https_get(port, pki.ca, "/api/v1/whoami",
                     cert=certificates["client"]).status_code == 401


def test_no_certificate_request_by_default(https_daemon, pki):
    daemon, port = https_daemon
    report = s_client(port, pki.ca)
    assert "ServerHello" in report and "CertificateRequest" not in report, report


# ---- bad input -------------------------------------------------------------------------------

def test_plain_http_on_the_tls_port_is_dropped(https_daemon, pki):
    """HTTP in clear text to the TLS port gets no HTTP answer (at most a TLS alert) and the
    daemon carries on over TLS and plain."""
    daemon, port = https_daemon
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    received, _ = helpers.raw_exchange(port, request, timeout=5.0)
    assert not received.startswith(b"HTTP/"), received[:80]
    assert received == b"" or received[:1] == b"\x15", received[:40]
    assert https_get(port, pki.ca, "/healthz").status_code == 200
    assert daemon.get("/healthz").status_code == 200


def test_guard_limits_answer_over_tls(https_daemon, pki):
    """A header block over server.max_header_size gets the guard's 431 in JSON, over TLS."""
    daemon, port = https_daemon
    context = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: "
                         + b"a" * (64 * 1024) + b"\r\n\r\n")
            received = helpers.read_until_close(sock, 10.0)[0]
    status, headers, body = helpers.parse_response(received)
    assert status == 431, received[:200]
    assert b"request_header_fields_too_large" in body
    assert re.search(rb"exceed \d+ bytes", body)
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_http_refused_total",
                                reason="header_too_large") == 1
    assert https_get(port, pki.ca, "/healthz").status_code == 200


def test_a_client_that_never_starts_tls_is_closed(https_daemon, pki):
    """A connection that sends nothing holds nothing for long: the idle timeout
    (server.request_timeout + 1s) closes it; TLS clients are served meanwhile."""
    daemon, port = https_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=20) as silent:
        assert https_get(port, pki.ca, "/healthz").status_code == 200
        try:
            assert silent.recv(100) == b""
        except ConnectionResetError:
            pass
