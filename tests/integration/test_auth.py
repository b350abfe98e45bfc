"""test_auth.py - bearer tokens through the auth chain (auth_token plugin) on /api/v1."""
import pytest

import helpers


def assert_unauthenticated(response):
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert error["message"]


def test_no_authorization_header_is_401(daemon):
    assert_unauthenticated(daemon.get("/api/v1/whoami"))


def test_wrong_token_is_401_and_not_logged(daemon):
    wrong = "not-a-known-token-" + "x" * 20
    assert_unauthenticated(daemon.get("/api/v1/whoami", token=wrong))
    assert wrong not in daemon.log(), "a presented token must never reach the log"


@pytest.mark.parametrize("header", [
    "Basic YWxpY2U6c2VjcmV0",
    "Bearer",
    "Bearer ",
    "Token {token}",
    "{token}",
])
def test_malformed_or_other_scheme_is_401(daemon, header):
    response = daemon.get("/api/v1/whoami",
                          headers={"Authorization": header.format(token=daemon.token)})
    assert_unauthenticated(response)


def test_good_tokens_identify_their_callers(daemon):
    for token, (principal, role, teams) in daemon.tokens.items():
        response = daemon.get("/api/v1/whoami", token=token)
        assert response.status_code == 200, response.text
        assert response.json() == {"subject": principal, "role": role, "teams": teams}


def test_token_is_case_and_byte_exact(daemon):
    assert_unauthenticated(daemon.get("/api/v1/whoami", token=daemon.token.upper()))
    assert_unauthenticated(daemon.get("/api/v1/whoami", token=daemon.token + "x"))
    assert_unauthenticated(daemon.get("/api/v1/whoami", token=daemon.token[:-1]))


def test_open_routes_ignore_a_bad_token(daemon):
    response = daemon.get("/healthz", token="garbage")
    assert response.status_code == 200


def test_auth_decisions_are_counted(daemon):
    name = "sparkplane_auth_token_decisions_total"
    before = daemon.metrics()
    daemon.get("/api/v1/whoami", token=daemon.token)
    daemon.get("/api/v1/whoami", token=daemon.token)
    daemon.get("/api/v1/whoami", token="wrong-token")
    after = daemon.metrics()
    ok = (helpers.metric_value(after, name, result="ok")
          - helpers.metric_value(before, name, result="ok"))
    total = helpers.metric_value(after, name) - helpers.metric_value(before, name)
    assert ok == 2
    assert total == 3, "the refused token must be counted under some other result"
    requests_401 = helpers.metric_value(after, "sparkplane_http_requests_total",
                                        route="/api/v1/whoami", status="401")
    assert requests_401 >= 1
