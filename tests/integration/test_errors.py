"""test_errors.py - the error shape for unknown routes, wrong methods and malformed requests.

Every error is {"error": {"code", "message", "details"?}} with the right
status, and the daemon keeps serving afterwards (the fixture's final
/healthz checks that).
"""
import pytest

import helpers


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"code", "message", "details"}, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/healthz/extra", "/api/v2/version",
                                  "/api/v1/version/"])
def test_unknown_route_is_404(daemon, path):
    assert_error(daemon.get(path), 404, "not_found")


def test_unknown_route_under_api_is_404_even_with_a_token(daemon):
    assert_error(daemon.get("/api/v1/nope", token=daemon.token), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("POST", "/healthz"),
    ("DELETE", "/readyz"),
    ("PUT", "/metrics"),
    ("POST", "/api/v1/version"),
    ("PATCH", "/api/v1/whoami"),
])
def test_wrong_method_is_405(daemon, method, path):
    response = helpers.http(method, daemon.url + path, data=b"{}",
                            headers={"Authorization": f"Bearer {daemon.token}"})
    assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize("request_bytes", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
    b"\x00\x01\x02\x03\r\n\r\n",
], ids=["garbage", "bad-version", "bad-content-length", "conflicting-content-length", "binary"])
def test_malformed_request_gets_4xx_or_close(daemon, request_bytes):
    data, _ = helpers.raw_exchange(daemon.port, request_bytes, timeout=5)
    if data:
        status, _, _ = helpers.parse_response(data)
        assert 400 <= status < 500, data[:200]
    assert daemon.get("/healthz").status_code == 200


def test_malformed_content_length_is_json_400(daemon):
    data, _ = helpers.raw_exchange(
        daemon.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
    status, headers, body = helpers.parse_response(data)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert b'"error"' in body


def test_encoded_nul_in_path_is_refused(daemon):
    data, _ = helpers.raw_exchange(daemon.port,
                                   b"GET /healthz%00/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = helpers.parse_response(data)
    assert status in (400, 404), body
