"""test_auth_mtls.py - the auth_mtls plugin in the real daemon, with certificates from `openssl`.

A client CA is made with `openssl ca` (its own index, so it can revoke and
publish CRLs) in a temp directory: valid, expired, revoked and unmapped client
certificates, and one from another CA nobody trusts.  The daemon's server
certificate comes from the test CA of test_gateway_tls.py, another CA than the
client one, as in a real deployment.

The chain is [auth_mtls, auth_token] on an HTTPS listener and a TLS gateway
listener, both with client_certificates: request.  What a user would notice:
- REST (python requests, cert=(crt, key)): a mapped certificate is whoami 200 with
  the mapped subject, team and role; another CA's, an expired and a revoked
  certificate are 401 with the plugin's message; no certificate but a token is
  200 through auth_token; nothing at all is 401; an unmapped certificate with a
  token is served as the token's caller; revoking a certificate (a new CRL
  file) refuses it within the reload interval;
- the gateway (grpcio, grpc.ssl_channel_credentials with the client key and
  chain): no certificate and a revoked one are UNAUTHENTICATED; a mapped
  certificate of a team that owns no cluster gets NOT_FOUND, i.e. it was
  authenticated and then routed;
- a bad map entry stops the start with a message naming the entry.
"""
import os
import shutil
import subprocess

import pytest

import helpers
from spark_connect import skip_or_fail
from test_gateway_tls import HOST, Pki, install_certificate

SERVICE = "/spark.connect.SparkConnectService/"
REFUSALS = "sparkplane_auth_mtls_refusals_total"
MAP = ["etl.batch.example.com=data-eng:member",
       "*.ops.example.com=*:admin",
       "revoked.batch.example.com=data-eng:member",
       "later.batch.example.com=data-eng:member"]

CA_CONFIG = """\
[ ca ]
default_ca = client_ca
[ client_ca ]
dir = .
database = index.txt
new_certs_dir = .
certificate = client-ca.pem
private_key = client-ca.key
serial = serial
crlnumber = crlnumber
default_md = sha256
default_days = 2
default_crl_days = 2
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
"""


class ClientCa:
    """A CA that issues client certificates and CRLs with `openssl ca`."""

    def __init__(self, directory, name="client-ca"):
        self.directory = str(directory)
        self.ca = os.path.join(self.directory, f"{name}.pem")
        self.crl = os.path.join(self.directory, "crl.pem")
        with open(os.path.join(self.directory, "ca.cnf"), "w") as out:
            out.write(CA_CONFIG.replace("client-ca", name))
        for path, text in (("index.txt", ""), ("serial", "1000\n"), ("crlnumber", "1000\n")):
            with open(os.path.join(self.directory, path), "w") as out:
                out.write(text)
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                     "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def openssl(self, *args):
        result = subprocess.run(["openssl", *args], cwd=self.directory, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"

    def issue(self, name, dns, start=None, end=None):
        """(certificate path, key path) for a client certificate with SAN DNS:dns."""
        self.openssl("genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-out", f"{name}.key")
        self.openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr",
                     "-subj", f"/CN={name}")
        with open(os.path.join(self.directory, f"{name}.ext"), "w") as out:
            out.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
                      f"subjectAltName=DNS:{dns}\n")
        dates = ["-startdate", start, "-enddate", end] if start else []
        self.openssl("ca", "-batch", "-config", "ca.cnf", "-in", f"{name}.csr", "-out",
                     f"{name}.pem", "-extfile", f"{name}.ext", "-notext", *dates)
        return (os.path.join(self.directory, f"{name}.pem"),
                os.path.join(self.directory, f"{name}.key"))

    def revoke(self, certificate):
        self.openssl("ca", "-config", "ca.cnf", "-revoke", certificate)

    def publish_crl(self):
        """Writes crl.pem as a deployment tool would: a new file renamed into place."""
        self.openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem.new")
        os.replace(self.crl + ".new", self.crl)


@pytest.fixture(scope="module")
def pkis(tmp_path_factory):
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is not installed")
    server = Pki(tmp_path_factory.mktemp("mtls-server-pki"))
    clients = ClientCa(tmp_path_factory.mktemp("mtls-client-ca"))
    stranger = ClientCa(tmp_path_factory.mktemp("mtls-other-ca"), name="other-ca")
    certs = {
        "valid": clients.issue("etl", "etl.batch.example.com"),
        "admin": clients.issue("console", "console.ops.example.com"),
        "expired": clients.issue("old", "etl.batch.example.com", "20200101000000Z",
                                 "20200102000000Z"),
        "revoked": clients.issue("revoked", "revoked.batch.example.com"),
        "later": clients.issue("later", "later.batch.example.com"),
        "unmapped": clients.issue("nobody", "nobody.example.com"),
        "stranger": stranger.issue("stranger", "etl.batch.example.com"),
    }
    clients.revoke(certs["revoked"][0])
    clients.publish_crl()
    return {"server": server, "serving": server.issue("mtls-server", 0x5005),
            "clients": clients, "certs": certs}


def start_daemon(daemon_factory, builddir, pkis):
    """A daemon with an HTTPS listener and a TLS gateway, both requesting client certificates.

    Returns (daemon, HTTPS port, gateway port).  Cluster analytics-dev (team analytics)
    points where nothing listens: the tests only need to see that routing was reached."""
    https_port, gateway_port = helpers.free_port(), helpers.free_port()
    clients = pkis["clients"]

    def configure(cfg):
        workdir = os.path.dirname(cfg["state"]["directory"])
        install_certificate(workdir, pkis["serving"][0], pkis["serving"][1])
        tls = {"certificate": os.path.join(workdir, "chain.pem"),
               "key": os.path.join(workdir, "key.pem"), "client_certificates": "request"}
        cfg["server"]["tls"] = {"listen": [f"127.0.0.1:{https_port}"], **tls}
        cfg["gateway"] = {"domain": "example.team",
                          "tls": {"listen": [f"127.0.0.1:{gateway_port}"], **tls}}
        os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
        with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
            out.write("clusters:\n  - id: analytics-dev\n    team: analytics\n"
                      "    environment: dev\n"
                      f"    endpoints: [\"127.0.0.1:{helpers.free_port()}\"]\n")
        cfg["plugins"]["auth_mtls"] = {
            "path": os.path.join(builddir, "plugins", "auth_mtls", ".libs", "auth_mtls.so"),
            "options": {"ca_file": clients.ca, "crl_file": clients.crl,
                        "reload_interval": "1s", "map": MAP},
        }
        cfg["auth"]["chain"] = ["auth_mtls", "auth_token"]

    daemon = daemon_factory(configure=configure)
    daemon.wait_log(rf"listening on 127\.0\.0\.1:{https_port} \(HTTPS\)")
    daemon.wait_log(rf"listening on 127\.0\.0\.1:{gateway_port} \(TLS, h2\)")
    return daemon, https_port, gateway_port


@pytest.fixture
def mtls_daemon(daemon_factory, builddir, pkis):
    return start_daemon(daemon_factory, builddir, pkis)


def whoami(port, pkis, cert=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return helpers.http("GET", f"https://127.0.0.1:{port}/api/v1/whoami", headers=headers,
                        verify=pkis["server"].ca, cert=cert)


def assert_refused(response, message):
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert error["message"] == message, error["message"]


# ---- REST -------------------------------------------------------------------------------------

def test_a_mapped_certificate_is_the_caller(mtls_daemon, pkis):
    daemon, port, _ = mtls_daemon
    answer = whoami(port, pkis, cert=pkis["certs"]["valid"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"subject": "etl.batch.example.com", "role": "member",
                             "teams": ["data-eng"]}
    admin = whoami(port, pkis, cert=pkis["certs"]["admin"])
    assert admin.status_code == 200, admin.text
    assert admin.json() == {"subject": "console.ops.example.com", "role": "admin",
                            "teams": ["*"]}


def test_refused_certificates_say_why(mtls_daemon, pkis):
    """Another CA's, an expired and a revoked certificate: 401 with the reason, even with a
    token next to it (a bad certificate is not silently ignored)."""
    daemon, port, _ = mtls_daemon
    certs = pkis["certs"]
    assert_refused(whoami(port, pkis, cert=certs["stranger"]),
                   "client certificate refused: issued by an unknown CA")
    assert_refused(whoami(port, pkis, cert=certs["expired"]),
                   "client certificate refused: certificate has expired")
    assert_refused(whoami(port, pkis, cert=certs["revoked"]),
                   "client certificate refused: certificate revoked")
    assert_refused(whoami(port, pkis, cert=certs["revoked"], token=daemon.token),
                   "client certificate refused: certificate revoked")
    samples = daemon.metrics()
    assert helpers.metric_value(samples, REFUSALS, reason="unknown_ca") == 1
    assert helpers.metric_value(samples, REFUSALS, reason="expired") == 1
    assert helpers.metric_value(samples, REFUSALS, reason="revoked") == 2


def test_without_a_certificate_the_token_decides(mtls_daemon, pkis):
    daemon, port, _ = mtls_daemon
    answer = whoami(port, pkis, token=daemon.token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["subject"] == "alice"
    refused = whoami(port, pkis)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_an_unmapped_certificate_defers_to_a_token(mtls_daemon, pkis):
    daemon, port, _ = mtls_daemon
    unmapped = pkis["certs"]["unmapped"]
    assert_refused(whoami(port, pkis, cert=unmapped),
                   "client certificate 'nobody.example.com' is not mapped to a team "
                   "(auth_mtls map)")
    answer = whoami(port, pkis, cert=unmapped, token=daemon.token)
    assert answer.status_code == 200, answer.text
    assert answer.json()["subject"] == "alice"


def test_a_new_crl_revokes_within_the_reload_interval(mtls_daemon, pkis):
    """Revoking a certificate and publishing the CRL refuses it without a restart."""
    daemon, port, _ = mtls_daemon
    later = pkis["certs"]["later"]
    assert whoami(port, pkis, cert=later).status_code == 200
    pkis["clients"].revoke(later[0])
    pkis["clients"].publish_crl()
    helpers.wait_until(lambda: whoami(port, pkis, cert=later).status_code == 401, 10,
                       what="the new CRL to be loaded")
    assert_refused(whoami(port, pkis, cert=later),
                   "client certificate refused: certificate revoked")
    assert whoami(port, pkis, cert=pkis["certs"]["valid"]).status_code == 200
    daemon.wait_log("reloaded 1 CAs")


# ---- the gateway ----------------------------------------------------------------------------

def gateway_call(port, pkis, cert=None):
    """One Config call over TLS; returns the gRPC status code name."""
    grpc = pytest.importorskip("grpc")
    key_pem = chain_pem = None
    if cert is not None:
        chain_pem = open(cert[0], "rb").read()
        key_pem = open(cert[1], "rb").read()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=open(pkis["server"].ca, "rb").read(),
        private_key=key_pem, certificate_chain=chain_pem)
    options = [("grpc.ssl_target_name_override", HOST), ("grpc.default_authority", HOST)]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        try:
            channel.unary_unary(SERVICE + "Config")(
                b"", timeout=15, metadata=[("x-sparkplane-cluster-id", "analytics-dev")])
        except grpc.RpcError as error:
            return error.code().name, error.details()
    return "OK", ""


def test_gateway_certificates(mtls_daemon, pkis):
    """No certificate and a revoked one: UNAUTHENTICATED.  A mapped certificate of a team that
    owns no cluster: NOT_FOUND, so it got past authentication."""
    daemon, _, gateway_port = mtls_daemon
    status, _ = gateway_call(gateway_port, pkis)
    assert status == "UNAUTHENTICATED"
    status, details = gateway_call(gateway_port, pkis, cert=pkis["certs"]["revoked"])
    assert status == "UNAUTHENTICATED"
    assert "certificate revoked" in details, details
    status, details = gateway_call(gateway_port, pkis, cert=pkis["certs"]["valid"])
    assert status == "NOT_FOUND", details
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_auth_mtls_decisions_total",
                                result="ok") >= 1


# ---- configuration ----------------------------------------------------------------------------

def test_a_bad_map_entry_stops_the_start_naming_it(daemon_factory, builddir, pkis):
    def configure(cfg):
        cfg["plugins"]["auth_mtls"] = {
            "path": os.path.join(builddir, "plugins", "auth_mtls", ".libs", "auth_mtls.so"),
            "options": {"ca_file": pkis["clients"].ca, "map": [MAP[0], "alice=Analytics:member"]},
        }
        cfg["auth"]["chain"] = ["auth_mtls", "auth_token"]

    daemon = daemon_factory(configure=configure, wait=False)
    assert daemon.wait_exit(timeout=20) == 1
    # the kv log escapes the quotes around the team
    assert 'plugin auth_mtls: init failed: map[1]: bad team \\"Analytics\\"' in daemon.log(), \
        daemon.log_tail(10)
    daemon.assert_clean_log()
