"""test_auth_jwt.py - the auth_jwt plugin in the real daemon, with tokens from PyJWT.

Keys are made by `cryptography`, tokens are minted by PyJWT (a third-party
signer, not our code), and the JWKS is served over real HTTPS on loopback by
Python's http.server with a certificate from a CA that `openssl` makes in
the test; the daemon trusts that CA through the plugin's jwks_ca_file
option (the host HTTP client's ca_file).  The chain is [auth_jwt,
auth_token], so static tokens still work behind the JWT provider.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import ssl
import subprocess
import threading
import time

import pytest

import helpers

jwt = pytest.importorskip("jwt")
pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm  # noqa: E402

ISSUER = "https://idp.example.test/oauth2/default"
AUDIENCE = "sparkplane"
GROUP_MAP = ["spark-feature-eng=feature-engineering:member",
             "spark-feature-eng=ml:viewer",
             "spark-platform=*:admin"]
DECISIONS = "sparkplane_auth_jwt_decisions_total"
REFRESHES = "sparkplane_auth_jwt_jwks_refreshes_total"


# ---- keys and the HTTPS JWKS endpoint ---------------------------------------------------

def make_keys():
    return {
        "rsa-1": ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ec-1": ("ES256", ec.generate_private_key(ec.SECP256R1())),
        "ed-1": ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    }


def public_jwk(kid, alg, private_key):
    converter = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[alg]
    jwk = converter.to_jwk(private_key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return jwk


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls_files(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca, cert, key)."""
    d = str(directory)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=auth_jwt test CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return (os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"),
            os.path.join(d, "server.key"))


class JwksServer:
    """Serves {"keys": [...]} of the current keys at https://127.0.0.1:<port>/keys."""

    def __init__(self, directory, keys):
        self.keys = dict(keys)
        self.requests = 0
        self.ca_file, cert, key = make_tls_files(directory)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                body = json.dumps(server.jwks()).encode()
                status = 200 if self.path == "/keys" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/keys"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def jwks(self):
        return {"keys": [public_jwk(kid, alg, key) for kid, (alg, key) in self.keys.items()]}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture
def jwks_server(tmp_path, keys):
    directory = tmp_path / "tls"
    directory.mkdir()
    server = JwksServer(directory, keys)
    yield server
    server.close()


@pytest.fixture
def jwt_daemon(daemon_factory, builddir, jwks_server, keys):
    def configure(cfg):
        cfg["plugins"]["auth_jwt"] = {
            "path": os.path.join(builddir, "plugins", "auth_jwt", ".libs", "auth_jwt.so"),
            "options": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "jwks_url": jwks_server.url,
                "jwks_ca_file": jwks_server.ca_file,
                "jwks_min_refresh": "1s",
                "group_map": GROUP_MAP,
            },
        }
        cfg["auth"]["chain"] = ["auth_jwt", "auth_token"]

    daemon = daemon_factory(configure=configure)
    # The first JWKS fetch runs in the background after start-up.
    helpers.wait_until(lambda: whoami(daemon, mint(keys, "rsa-1")).status_code == 200, 10,
                       what="the first JWKS fetch")
    return daemon


# ---- tokens -------------------------------------------------------------------------------

def claims(**changes):
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "00u1abcd", "email": "alice@example.com",
            "groups": ["spark-feature-eng", "everyone"], "iat": now, "exp": now + 300}
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def mint(keys, kid, signer=None, **changes):
    alg, key = keys[kid]
    return jwt.encode(claims(**changes), signer or key, algorithm=alg, headers={"kid": kid})


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def whoami(daemon, token):
    return daemon.get("/api/v1/whoami", token=token)


def assert_refused(response, reason):
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert reason in error["message"], error["message"]


# ---- the cases ----------------------------------------------------------------------------

@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
def test_valid_token_shows_principal_teams_and_role(jwt_daemon, keys, kid):
    response = whoami(jwt_daemon, mint(keys, kid))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "00u1abcd", "role": "member",
                               "teams": ["feature-engineering", "ml"]}


def test_admin_group_maps_to_every_team(jwt_daemon, keys):
    response = whoami(jwt_daemon, mint(keys, "ec-1", groups=["spark-platform"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "00u1abcd", "role": "admin", "teams": ["*"]}


def test_static_tokens_still_work_behind_the_jwt_provider(jwt_daemon):
    response = whoami(jwt_daemon, jwt_daemon.token)
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "alice"


def test_expired_and_not_yet_valid(jwt_daemon, keys):
    now = int(time.time())
    assert_refused(whoami(jwt_daemon, mint(keys, "rsa-1", exp=now - 120)), "expired")
    assert_refused(whoami(jwt_daemon, mint(keys, "rsa-1", nbf=now + 600)), "not valid yet")


def test_wrong_audience_and_issuer(jwt_daemon, keys):
    assert_refused(whoami(jwt_daemon, mint(keys, "ec-1", aud="another-api")), "claim aud")
    assert_refused(whoami(jwt_daemon, mint(keys, "ec-1", aud=["a", "b"])), "claim aud")
    assert_refused(whoami(jwt_daemon, mint(keys, "ec-1", iss="https://evil.example.test")),
                   "claim iss")


def test_signed_by_another_key(jwt_daemon, keys):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(whoami(jwt_daemon, mint(keys, "rsa-1", signer=other)), "bad signature")
    other_ed = ed25519.Ed25519PrivateKey.generate()
    assert_refused(whoami(jwt_daemon, mint(keys, "ed-1", signer=other_ed)), "bad signature")


def test_alg_none(jwt_daemon):
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"})
    assert token.count(".") == 2
    assert_refused(whoami(jwt_daemon, token), "alg \"none\"")


def test_rs256_public_key_used_as_hmac_secret(jwt_daemon, keys):
    # PyJWT itself refuses to HMAC with a PEM public key, so the forgery is built by hand.
    public_pem = keys["rsa-1"][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64url(json.dumps(claims(groups=["spark-platform"])).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = b64url(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    assert_refused(whoami(jwt_daemon, f"{header}.{payload}.{signature}"), "HMAC algorithms")


def test_tampered_payload(jwt_daemon, keys):
    header, _, signature = mint(keys, "ec-1").split(".")
    payload = b64url(json.dumps(claims(groups=["spark-platform"])).encode())
    assert_refused(whoami(jwt_daemon, f"{header}.{payload}.{signature}"), "bad signature")


def test_refusals_never_echo_the_token(jwt_daemon, keys):
    token = mint(keys, "rsa-1", aud="another-api")
    response = whoami(jwt_daemon, token)
    assert response.status_code == 401
    for part in token.split("."):
        assert part[:16] not in response.text
        assert part[:16] not in jwt_daemon.log()


def test_key_rotation_with_a_new_kid(jwt_daemon, jwks_server, keys):
    rotated = dict(keys)
    rotated["ec-2"] = ("ES256", ec.generate_private_key(ec.SECP256R1()))
    token = mint(rotated, "ec-2")
    requests_before = jwks_server.requests
    jwks_server.keys = {kid: rotated[kid] for kid in ("ec-2", "ed-1")}  # rsa-1, ec-1 retired

    # Denied while the refresh it triggered is in flight, accepted once it landed.
    assert_refused(whoami(jwt_daemon, token), "unknown signing key")
    response = helpers.wait_until(
        lambda: (lambda r: r if r.status_code == 200 else None)(whoami(jwt_daemon, token)), 10,
        what="the rotated key")
    assert response.json()["subject"] == "00u1abcd"
    assert jwks_server.requests == requests_before + 1, "one refresh for the unknown kid"
    assert_refused(whoami(jwt_daemon, mint(keys, "rsa-1")), "unknown signing key")

    samples = jwt_daemon.metrics()
    assert helpers.metric_value(samples, REFRESHES, result="ok") >= 2
    assert helpers.metric_value(samples, "sparkplane_auth_jwt_jwks_keys") == 2


def test_forged_kids_are_rate_limited(jwt_daemon, jwks_server, keys):
    requests_before = jwks_server.requests
    for i in range(20):
        forged = jwt.encode(claims(), keys["rsa-1"][1], algorithm="RS256",
                            headers={"kid": f"forged-{i}"})
        assert_refused(whoami(jwt_daemon, forged), "unknown signing key")
    # jwks_min_refresh is 1s: 20 quick forged kids cost at most a couple of fetches.
    assert jwks_server.requests - requests_before <= 2


def test_decisions_are_counted(jwt_daemon, keys):
    before = jwt_daemon.metrics()
    whoami(jwt_daemon, mint(keys, "ed-1"))
    whoami(jwt_daemon, mint(keys, "ed-1", aud="x"))
    whoami(jwt_daemon, jwt_daemon.token)            # not a JWT: auth_jwt defers
    after = jwt_daemon.metrics()

    def delta(result):
        return (helpers.metric_value(after, DECISIONS, result=result)
                - helpers.metric_value(before, DECISIONS, result=result))
    assert (delta("ok"), delta("invalid"), delta("defer")) == (1, 1, 1)
