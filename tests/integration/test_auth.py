"""test_auth.py - bearer tokens through the auth chain (auth_token plugin) on /api/v1."""
import json
import os
import signal

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


# ---- the audit log ----------------------------------------------------------------------------

def audit_records(daemon):
    path = os.path.join(daemon.workdir, "state", "audit.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_every_decision_is_audited_and_counted(daemon):
    bob = daemon.token_for("bob")      # admin of platform only
    alice = daemon.token_for("alice")  # member of analytics, ml
    assert daemon.get("/api/v1/whoami").status_code == 401
    assert daemon.get("/api/v1/whoami", token=alice).status_code == 200
    assert daemon.get("/healthz").status_code == 200  # open: no decision
    listed = daemon.get("/api/v1/jobs?team=analytics", token=bob)
    assert listed.status_code == 403, listed.text

    records = audit_records(daemon)
    assert [r["action"] for r in records] == ["GET /api/v1/whoami", "GET /api/v1/whoami",
                                             "GET /api/v1/jobs"], records
    anonymous, allowed, refused = records
    assert anonymous["principal"] is None and anonymous["decision"] == "deny"
    assert anonymous["status"] == 401 and anonymous["reason"]
    assert allowed == {**allowed, "transport": "rest", "principal": "alice", "role": "member",
                       "object": "/api/v1/whoami", "decision": "allow", "status": 200}
    assert "reason" not in allowed
    assert allowed["peer"].startswith("127.0.0.1:") and allowed["time"].endswith("Z")
    assert refused["principal"] == "bob" and refused["decision"] == "deny"
    assert refused["status"] == 403 and "analytics" in refused["reason"]
    assert bob not in open(os.path.join(daemon.workdir, "state", "audit.log")).read()

    samples = daemon.metrics()
    name = "sparkplane_auth_decisions_total"
    assert helpers.metric_value(samples, name, transport="rest", decision="deny",
                                reason="unauthenticated") == 1
    assert helpers.metric_value(samples, name, transport="rest", decision="allow",
                                reason="ok") >= 1
    assert helpers.metric_value(samples, name, transport="rest", decision="deny",
                                reason="other_team") == 1


def test_the_audit_log_is_reopened_on_reload(daemon):
    alice = daemon.token_for("alice")
    path = os.path.join(daemon.workdir, "state", "audit.log")
    assert daemon.get("/api/v1/whoami", token=alice).status_code == 200
    os.rename(path, path + ".1")  # what logrotate does
    daemon.send_signal(signal.SIGHUP)
    helpers.wait_until(lambda: os.path.exists(path), 10.0, what="a new audit.log after SIGHUP")
    assert daemon.get("/api/v1/version", token=alice).status_code == 200
    assert [r["action"] for r in audit_records(daemon)] == ["GET /api/v1/version"]


def test_an_unopenable_audit_file_is_refused_at_start(daemon_factory, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    d = daemon_factory(configure=lambda c: c.update(audit={"file": str(blocker / "audit.log")}),
                       wait=False)
    assert d.wait_exit() != 0
    assert "audit.file: cannot open" in d.log()
