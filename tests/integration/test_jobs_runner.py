"""test_jobs_runner.py - the runner's own behaviour, on the simulator backend.

Retries (max_attempts): a job whose attempts fail is retried as a new
attempt through PENDING until max_attempts, each failure recorded as a
RETRYING event with its reason.  Admission control: jobs over the per-team
limit wait in PENDING with the reason visible in the API, and start once
capacity frees up.
"""
import json
import os
import secrets
import time

import pytest

import helpers

JOB = {"name": "sim-job", "team": "analytics", "spark_version": "4.0",
       "application": {"file": "/jobs/job.py"}}


def _daemon(daemon_factory, builddir, sim_options, runner=None):
    token = "alice-" + secrets.token_hex(16)

    def configure(cfg):
        cfg["plugins"]["backend_sim"] = {
            "path": os.path.join(builddir, "plugins", "backend_sim", ".libs", "backend_sim.so"),
            "options": sim_options,
        }
        cfg["runner"] = {"default_backend": "sim", "reconcile_interval": "200ms",
                         **(runner or {})}
        cfg["spark_versions"] = {"4.0": {"image": "spark-platform:4.0-latest"}}
    daemon = daemon_factory(configure=configure,
                            tokens={token: ("alice", "member", ["analytics"])})
    return daemon, token


def _call(daemon, token, method, path, body=None):
    return helpers.http(method, daemon.url + path,
                        data=json.dumps(body) if body is not None else None,
                        headers={"Authorization": f"Bearer {token}"})


def _wait_state(daemon, token, job_id, states, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _call(daemon, token, "GET", f"/api/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} never reached {states}; last: {job}")


def test_failed_attempts_are_retried_up_to_max_attempts(daemon_factory, builddir):
    daemon, token = _daemon(daemon_factory, builddir,
                            {"run_duration": "200ms", "failure_rate": 100})
    created = _call(daemon, token, "POST", "/api/v1/jobs", dict(JOB, max_attempts=3))
    assert created.status_code == 201, created.text
    job = _wait_state(daemon, token, created.json()["id"], {"FAILED", "SUCCEEDED"})
    assert job["state"] == "FAILED"
    assert job["attempt"] == 3 and job["max_attempts"] == 3
    events = _call(daemon, token, "GET", f"/api/v1/jobs/{job['id']}/events").json()["events"]
    retries = [e for e in events if e["to_state"] == "RETRYING"]
    assert [e["reason"].split(":")[0] for e in retries] == ["attempt 1 of 3 failed",
                                                            "attempt 2 of 3 failed"]
    assert "simulated failure" in retries[0]["reason"]
    assert [e["reason"] for e in events if e["from_state"] == "RETRYING"] == [
        "retrying: attempt 2 of 3", "retrying: attempt 3 of 3"]
    assert events[-1]["to_state"] == "FAILED"


def test_a_single_attempt_job_is_not_retried(daemon_factory, builddir):
    daemon, token = _daemon(daemon_factory, builddir,
                            {"run_duration": "200ms", "failure_rate": 100})
    created = _call(daemon, token, "POST", "/api/v1/jobs", JOB)
    job = _wait_state(daemon, token, created.json()["id"], {"FAILED", "SUCCEEDED"})
    assert job["state"] == "FAILED" and job["attempt"] == 1
    events = _call(daemon, token, "GET", f"/api/v1/jobs/{job['id']}/events").json()["events"]
    assert "RETRYING" not in [e["to_state"] for e in events]


def test_jobs_over_the_team_limit_wait_with_the_reason(daemon_factory, builddir):
    daemon, token = _daemon(daemon_factory, builddir, {"run_duration": "3s"},
                            runner={"max_running_per_team": 1})
    first = _call(daemon, token, "POST", "/api/v1/jobs", dict(JOB, name="first")).json()
    _wait_state(daemon, token, first["id"], {"RUNNING", "SUBMITTED"})
    second = _call(daemon, token, "POST", "/api/v1/jobs", dict(JOB, name="second")).json()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        waiting = _call(daemon, token, "GET", f"/api/v1/jobs/{second['id']}").json()
        if waiting["reason"] and waiting["reason"].startswith("waiting:"):
            break
        time.sleep(0.1)
    assert waiting["state"] == "PENDING"
    assert "team analytics has 1 job(s) running" in waiting["reason"]
    assert "runner.max_running_per_team=1" in waiting["reason"]
    _wait_state(daemon, token, first["id"], {"SUCCEEDED"})
    _wait_state(daemon, token, second["id"], {"SUCCEEDED"}, timeout=20)
