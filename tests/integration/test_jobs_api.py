"""test_jobs_api.py - what the jobs API refuses, and that a refusal changes nothing.

Runs the real daemon with the simulator backend (no Spark needed): bad JSON,
wrong types, missing fields, unknown versions, oversized bodies, bad query
parameters, unknown ids, other teams' jobs and the viewer role.  Each answer
must be the documented 4xx with a message naming the problem, and after all
of them the team's job list must still be empty.  Also: the OpenAPI document
is served without a token and every path it lists is routed.
"""
import json
import os
import secrets

import pytest

import helpers

PLAIN = {"name": "count", "team": "analytics", "spark_version": "4.0",
         "application": {"file": "/jobs/count.py"}}


def _tokens():
    return {
        "alice-" + secrets.token_hex(16): ("alice", "member", ["analytics", "ml"]),
        "bob-" + secrets.token_hex(16): ("bob", "admin", ["platform"]),
        "vera-" + secrets.token_hex(16): ("vera", "viewer", ["analytics"]),
        "carl-" + secrets.token_hex(16): ("carl", "member", ["ml"]),
        "root-" + secrets.token_hex(16): ("root", "admin", ["*"]),
    }


@pytest.fixture
def jobs_daemon(daemon_factory, builddir):
    def configure(cfg):
        cfg["plugins"]["backend_sim"] = {
            "path": os.path.join(builddir, "plugins", "backend_sim", ".libs", "backend_sim.so"),
            "options": {"run_duration": "30s"},
        }
        cfg["runner"] = {"default_backend": "sim"}
        cfg["spark_versions"] = {"4.0": {"image": "spark-platform:4.0-latest"},
                                 "3.5": {"image": "spark-platform:3.5-latest"}}
        cfg["server"]["max_body_size"] = "64KiB"
    return daemon_factory(configure=configure, tokens=_tokens())


def call(daemon, method, path, who="alice", body=None, data=None, headers=None):
    headers = dict(headers or {})
    headers["Authorization"] = f"Bearer {daemon.token_for(who)}"
    if body is not None:
        data = json.dumps(body)
    return helpers.http(method, daemon.url + path, data=data, headers=headers)


def error_of(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def assert_no_jobs(daemon, team="analytics"):
    response = call(daemon, "GET", f"/api/v1/jobs?team={team}", who="root")
    assert response.status_code == 200, response.text
    assert response.json() == {"jobs": [], "next_page_token": None}


def test_malformed_json_is_refused_with_its_place(jobs_daemon):
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", data='{"name": "x",\n  "team": }'),
                     400, "invalid_json")
    assert error["details"]["line"] == 2
    assert "line 2" in error["message"]
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", data=""), 400, "invalid_json")
    assert "empty" in error["message"]
    error_of(call(jobs_daemon, "POST", "/api/v1/jobs", data='{"name":"a","name":"b"}'),
             400, "invalid_json")
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", data="[1]"), 400, "invalid_request")
    assert error["message"] == "expected a JSON object"
    assert_no_jobs(jobs_daemon)


@pytest.mark.parametrize("change, field, message", [
    ({"name": 5}, "name", "name: expected a string"),
    ({"team": None}, "team", "team: required"),
    ({"application": None}, "application", "application: required"),
    ({"application": {"file": "/jobs/count.py", "args": ["a", 1]}}, "application.args[1]",
     "application.args[1]: expected a string"),
    ({"application": {"file": "/jobs/count.py", "conf": {"spark.x": True}}},
     "application.conf.spark.x", "application.conf.spark.x: expected a string"),
    ({"resources": {"executor": {"memory": "lots"}}}, "resources.executor.memory",
     "resources.executor.memory: expected a size like 512m or 4g"),
    ({"resources": {"executor": {"cores": 100}}}, "resources.executor.cores",
     "resources.executor.cores: expected an integer from 1 to 64"),
    ({"colour": "red"}, "colour", None),
])
def test_wrong_types_name_the_field(jobs_daemon, change, field, message):
    body = dict(PLAIN)
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=body), 400, "invalid_request")
    assert error["details"]["field"] == field
    if message:
        assert error["message"] == message
    assert_no_jobs(jobs_daemon)


def test_docs_shape_errors_use_its_paths(jobs_daemon):
    body = {"name": "etl", "team": "analytics",
            "config": {"spark_version": "4.0", "job_type": "BATCH",
                       "core_etl": {"version": "1.0", "job_spec": {"main_class": "a.B"}}}}
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=body), 400, "invalid_request")
    assert error["details"]["field"] == "config.core_etl.job_spec.file"
    assert_no_jobs(jobs_daemon)


def test_unknown_version_lists_the_known_ones(jobs_daemon):
    body = dict(PLAIN, spark_version="9.9")
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=body), 400, "invalid_request")
    assert "9.9" in error["message"] and "4.0" in error["message"] and "3.5" in error["message"]
    assert error["details"]["field"] == "spark_version"
    assert_no_jobs(jobs_daemon)


def test_oversized_body_is_413(jobs_daemon):
    body = dict(PLAIN, application={"file": "/jobs/count.py", "args": ["x" * 4000] * 20})
    response = call(jobs_daemon, "POST", "/api/v1/jobs", body=body)
    assert response.status_code == 413, response.text
    assert_no_jobs(jobs_daemon)


def test_bounds_inside_the_limit(jobs_daemon):
    body = dict(PLAIN, application={"file": "/jobs/count.py", "args": ["a"] * 257})
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=body), 400, "invalid_request")
    assert error["details"]["field"] == "application.args"
    body = dict(PLAIN, application={"file": "/jobs/count.py", "args": ["x" * 4097]})
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=body), 400, "invalid_request")
    assert error["details"]["field"] == "application.args[0]"
    assert_no_jobs(jobs_daemon)


def test_idempotency_key_checks(jobs_daemon):
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=PLAIN,
                          headers={"Idempotency-Key": "has space"}), 400, "invalid_request")
    assert error["details"]["field"] == "Idempotency-Key"
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs",
                          body=dict(PLAIN, idempotency_token="one"),
                          headers={"Idempotency-Key": "two"}), 400, "invalid_request")
    assert error["details"]["field"] == "idempotency_token"
    assert_no_jobs(jobs_daemon)


def test_teams_and_roles(jobs_daemon):
    # submitting for a team you are not in
    error = error_of(call(jobs_daemon, "POST", "/api/v1/jobs", body=dict(PLAIN, team="platform")),
                     403, "forbidden")
    assert "platform" in error["message"]
    # a viewer reads but does not submit
    error_of(call(jobs_daemon, "POST", "/api/v1/jobs", who="vera", body=PLAIN), 403, "forbidden")
    assert_no_jobs(jobs_daemon)
    assert_no_jobs(jobs_daemon, team="platform")

    created = call(jobs_daemon, "POST", "/api/v1/jobs", who="bob",
                   body=dict(PLAIN, team="platform"))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    # another team's job looks exactly like a missing one
    missing = call(jobs_daemon, "GET", "/api/v1/jobs/job-doesnotexist")
    error_of(missing, 404, "not_found")
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/events"), ("GET", "/logs")):
        response = call(jobs_daemon, method, f"/api/v1/jobs/{job_id}{suffix}")
        error_of(response, 404, "not_found")
        assert response.json()["error"]["message"] == f"no job '{job_id}'"
    error_of(call(jobs_daemon, "GET", "/api/v1/jobs?team=platform"), 403, "forbidden")
    # the admin of every team sees it; its team still does
    assert call(jobs_daemon, "GET", f"/api/v1/jobs/{job_id}", who="root").status_code == 200
    listed = call(jobs_daemon, "GET", "/api/v1/jobs", who="bob").json()["jobs"]
    assert [job["id"] for job in listed] == [job_id]
    # the viewer may read its team's jobs but not cancel them
    mine = call(jobs_daemon, "POST", "/api/v1/jobs", body=PLAIN)
    assert mine.status_code == 201, mine.text
    mine_id = mine.json()["id"]
    assert call(jobs_daemon, "GET", f"/api/v1/jobs/{mine_id}", who="vera").status_code == 200
    error_of(call(jobs_daemon, "DELETE", f"/api/v1/jobs/{mine_id}", who="vera"), 403, "forbidden")


@pytest.mark.parametrize("query, field", [
    ("", "team"),                        # alice has two teams
    ("?team=analytics&limit=0", "limit"),
    ("?team=analytics&limit=1001", "limit"),
    ("?team=analytics&limit=ten", "limit"),
    ("?team=analytics&state=SLEEPING", "state"),
    ("?team=analytics&name=a%20b", "name"),
    ("?team=analytics&page_token=garbage", "page_token"),
    ("?team=analytics&team=ml", "team"),
    ("?team=Analytics", "team"),
    ("?team=analytics&sort=name", "sort"),
])
def test_list_parameters_are_checked(jobs_daemon, query, field):
    error = error_of(call(jobs_daemon, "GET", "/api/v1/jobs" + query), 400, "invalid_request")
    assert error["details"]["field"] == field
    assert error["message"].startswith(field + ":")


def test_list_defaults_to_the_only_team(jobs_daemon):
    response = call(jobs_daemon, "GET", "/api/v1/jobs", who="carl")
    assert response.status_code == 200
    assert response.json() == {"jobs": [], "next_page_token": None}


def test_openapi_is_open_and_every_path_is_routed(jobs_daemon):
    response = helpers.http("GET", jobs_daemon.url + "/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.0")
    assert "/api/v1/jobs/{id}/logs" in document["paths"]
    for path, item in document["paths"].items():
        concrete = path.replace("{id}", "job-doesnotexist")
        for method in item:
            if method == "parameters":
                continue
            answer = call(jobs_daemon, method.upper(), concrete, who="root",
                          data="{}" if method == "post" else None)
            if answer.status_code in (404, 405):
                assert answer.json()["error"]["message"] != "no such route", (method, path)
                assert answer.status_code != 405, (method, path)
