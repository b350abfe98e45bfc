"""test_jobs_spark.py - batch jobs end to end: the real daemon, the local backend, real Spark.

Every test starts sparkplaned from the build tree with the backend_local
plugin and spark_versions {"4.0": {spark_home: <the pyspark package>}}, and
submits the small PySpark applications in spark_apps/ through the REST API.
spark-submit runs in local mode with a 512m driver; the drivers use the
Python that runs pytest (it imports pyspark).  What the tests check is what
a user would see: the job's state, reason, Spark application id, events and
logs, the files the application wrote, and (for cancel and restart) which
processes are left on the machine, read from /proc.

Without pyspark or java the tests skip, unless SPARKPLANE_REQUIRE_INTEGRATION=1
(CI), where that is a failure.  Every wait is a bounded poll (JOB_TIMEOUT per
job); jobs that can run side by side are submitted together (the backend
runs two at once) to keep the suite short on two cores.  Whatever a test
leaves running is killed at teardown, found through the job directory in
the processes' environment.
"""
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
import uuid

import pytest
import requests

import helpers

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spark_apps")
JOB_TIMEOUT = 120.0         # one Spark job, start to end, on a busy 2-core machine
POLL_INTERVAL = 0.25
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
LOG_LIMIT = 1024 * 1024     # the API's largest slice: a whole small driver log
APP_ID = re.compile(r"^local-\d+$")


# ---- is there a Spark to run? ----------------------------------------------------------------

@pytest.fixture(scope="session")
def spark_home():
    """SPARK_HOME of the pyspark that the Python running pytest imports; skip or fail without."""
    problems = []
    home = None
    try:
        import pyspark
        home = os.path.dirname(pyspark.__file__)
        if not os.access(os.path.join(home, "bin", "spark-submit"), os.X_OK):
            problems.append(f"{home}/bin/spark-submit is not executable")
    except ImportError as error:
        problems.append(f"{sys.executable} cannot import pyspark ({error}); "
                        "scripts/install-deps.sh installs it in .venv")
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no java on PATH"
        problems.append(f"{where} (Debian: openjdk-17-jre-headless)")
    if problems:
        message = "real Spark is not available: " + "; ".join(problems)
        if os.environ.get("SPARKPLANE_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message + " (SPARKPLANE_REQUIRE_INTEGRATION=1, so this fails)",
                        pytrace=False)
        pytest.skip(message)
    return home


# ---- processes, from /proc --------------------------------------------------------------------

def _proc_read(pid, name):
    with open(f"/proc/{pid}/{name}", "rb") as source:
        return source.read()


def job_processes(needles):
    """Live processes whose command line or environment mentions one of needles.

    Returns [(pid, command line)]; zombies are left out (they hold nothing
    and their environment cannot be read).
    """
    wanted = [needle.encode() for needle in needles]
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            stat = _proc_read(name, "stat")
            if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"):
                continue
            cmdline = _proc_read(name, "cmdline")
            environ = _proc_read(name, "environ")
        except (OSError, ValueError):
            continue                      # gone meanwhile, or not ours to read
        if any(needle in cmdline or needle in environ for needle in wanted):
            found.append((int(name), cmdline.replace(b"\0", b" ").decode("utf-8", "replace")))
    return found


def process_alive(pid):
    try:
        stat = _proc_read(pid, "stat")
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def assert_no_processes(needles, what, timeout=5.0):
    """Nothing may mention needles once `timeout` passed (SIGKILL is not instant)."""
    try:
        helpers.wait_until(lambda: not job_processes(needles), timeout, interval=0.2,
                           what=f"the processes of {what} to exit")
    except AssertionError:
        pytest.fail(f"processes of {what} remain: {job_processes(needles)}", pytrace=False)


def read_text(path):
    with open(path, errors="replace") as source:
        return source.read()


def kill_job_processes(needles):
    """SIGKILLs what job_processes finds (teardown); returns what it killed."""
    victims = job_processes(needles)
    for pid, _ in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return victims


# ---- the daemon with the local backend -------------------------------------------------------

def _tokens():
    return {
        "alice-" + secrets.token_hex(16): ("alice", "member", ["analytics", "ml"]),
        "bob-" + secrets.token_hex(16): ("bob", "admin", ["platform"]),
        "vera-" + secrets.token_hex(16): ("vera", "viewer", ["analytics"]),
    }


@pytest.fixture
def spark_daemon(daemon_factory, builddir, spark_home, tmp_path):
    """start(versions=None, **options) -> a daemon running the local backend.

    The daemon gets .work (the backend's work_directory); versions adds
    spark_versions entries beside "4.0"; options override backend_local's.
    """
    work = str(tmp_path / "spark-work")
    plugin = os.path.join(builddir, "plugins", "backend_local", ".libs", "backend_local.so")
    if not os.path.isfile(plugin):
        pytest.fail(f"{plugin} is missing (make plugins/backend_local/backend_local.la)",
                    pytrace=False)

    def start(versions=None, **options):
        def configure(cfg):
            backend_options = {
                "work_directory": work,
                "python": sys.executable,
                "max_concurrent_jobs": 2,
                "cores_per_job": 1,
                "cancel_grace_period": "5s",
                "poll_interval": "500ms",
                "extra_conf": ["spark.ui.enabled=false", "spark.sql.shuffle.partitions=2",
                               "spark.ui.showConsoleProgress=false",
                               "spark.driver.host=127.0.0.1",
                               "spark.driver.bindAddress=127.0.0.1"],
            }
            backend_options.update(options)
            cfg["plugins"]["backend_local"] = {"path": plugin, "options": backend_options}
            cfg["runner"] = {"default_backend": "local", "reconcile_interval": "500ms"}
            cfg["spark_versions"] = {"4.0": {"spark_home": spark_home}}
            cfg["spark_versions"].update(versions or {})
        daemon = daemon_factory(configure=configure, tokens=_tokens())
        daemon.work = work
        return daemon

    yield start
    kill_job_processes([work + "/"])      # a failed test may leave drivers behind


def job_body(name, app, *args, team="analytics"):
    return {"name": name, "team": team, "spark_version": "4.0",
            "application": {"file": os.path.join(APPS, app), "args": [str(a) for a in args]},
            "resources": {"driver": {"memory": "512m", "cores": 1}}}


def call(daemon, method, path, who="alice", body=None, data=None, headers=None, **kwargs):
    headers = dict(headers or {})
    headers["Authorization"] = f"Bearer {daemon.token_for(who)}"
    if body is not None:
        data = json.dumps(body)
    return helpers.http(method, daemon.url + path, data=data, headers=headers, **kwargs)


def submit(daemon, body, who="alice", key=None, expect=201):
    headers = {"Idempotency-Key": key} if key else None
    response = call(daemon, "POST", "/api/v1/jobs", who=who, body=body, headers=headers)
    assert response.status_code == expect, response.text
    return response


def get_job(daemon, job_id, who="alice"):
    response = call(daemon, "GET", f"/api/v1/jobs/{job_id}", who=who)
    assert response.status_code == 200, response.text
    return response.json()


def job_log(daemon, job_id, who="alice"):
    response = call(daemon, "GET", f"/api/v1/jobs/{job_id}/logs?limit={LOG_LIMIT}", who=who)
    assert response.status_code == 200, response.text
    return response


def job_events(daemon, job_id, who="alice"):
    response = call(daemon, "GET", f"/api/v1/jobs/{job_id}/events", who=who)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def event_states(events):
    return [event["to_state"] for event in events]


def job_list(daemon, team, who="alice"):
    response = call(daemon, "GET", f"/api/v1/jobs?team={team}&limit=1000", who=who)
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def describe(daemon, job_id, who="alice"):
    """The job, its events and its log tail: what a failed assertion should show."""
    parts = []
    try:
        parts.append(json.dumps(get_job(daemon, job_id, who), indent=1))
        parts.append(json.dumps(job_events(daemon, job_id, who), indent=1))
        parts.append("\n".join(job_log(daemon, job_id, who).text.splitlines()[-40:]))
    except (AssertionError, requests.RequestException) as error:
        parts.append(f"(cannot read the job: {error})")
    parts.append("--- daemon log tail:\n" + daemon.log_tail(30))
    return "\n".join(parts)


def wait_for_state(daemon, job_id, states, timeout=JOB_TIMEOUT, who="alice"):
    """Polls the job until its state is in states; a final state outside them fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(daemon, job_id, who)
        if job["state"] in states:
            return job
        if job["state"] in FINAL_STATES:
            raise AssertionError(f"job {job_id} ended {job['state']}, expected {states}:\n"
                                 + describe(daemon, job_id, who))
        if time.monotonic() >= deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s, "
                                 f"expected {states}:\n" + describe(daemon, job_id, who))
        time.sleep(POLL_INTERVAL)


def wait_for_file(daemon, job_id, path, timeout=JOB_TIMEOUT):
    """Waits until the application created path, failing early if its job ended."""
    def created():
        if os.path.exists(path):
            return True
        assert get_job(daemon, job_id)["state"] not in FINAL_STATES, \
            f"job {job_id} ended before creating {path}:\n" + describe(daemon, job_id)
        return False
    helpers.wait_until(created, timeout, interval=POLL_INTERVAL, what=f"{path} from {job_id}")


def read_json(path):
    with open(path) as source:
        return json.load(source)


def assert_count_result(path, rows, job):
    result = read_json(path)
    assert result["count"] == rows, result
    assert result["sum"] == rows * (rows - 1) // 2, result
    assert result["app_id"] == job["spark_app_id"], (result, job)


class LogFollower(threading.Thread):
    """GET .../logs?follow=true read to its end; then the job's state at that moment."""

    def __init__(self, daemon, job_id):
        super().__init__(daemon=True)
        self.url = f"{daemon.url}/api/v1/jobs/{job_id}/logs?follow=true&limit=65536"
        self.headers = {"Authorization": f"Bearer {daemon.token}"}
        self.daemon_under_test = daemon
        self.job_id = job_id
        self.status = None
        self.data = b""
        self.state_at_end = None
        self.error = None

    def run(self):
        try:
            with requests.Session() as session:
                session.trust_env = False
                with session.get(self.url, headers=self.headers, stream=True,
                                 timeout=(5, JOB_TIMEOUT)) as response:
                    self.status = response.status_code
                    for chunk in response.iter_content(chunk_size=None):
                        self.data += chunk
            self.state_at_end = get_job(self.daemon_under_test, self.job_id)["state"]
        except Exception as error:  # reported by the test thread
            self.error = error


# ---- 1 and 2: a job that computes a result, a job that raises --------------------------------

def test_count_job_succeeds_and_raising_job_fails(spark_daemon, tmp_path):
    daemon = spark_daemon()
    rows = 100_000
    output = str(tmp_path / "count.json")
    message = f"boom-{uuid.uuid4().hex}"

    created = submit(daemon, job_body("count-rows", "count_rows.py", "--rows", rows,
                                      "--output", output)).json()
    failing = submit(daemon, job_body("raise-error", "raise_error.py", message)).json()
    assert created["state"] == "PENDING" and created["team"] == "analytics", created
    assert created["spark_app_id"] is None, created
    count_id, fail_id = created["id"], failing["id"]

    # follow the counting job's log from its start to its end
    wait_for_state(daemon, count_id, ("RUNNING",))
    follower = LogFollower(daemon, count_id)
    follower.start()

    done = wait_for_state(daemon, count_id, ("SUCCEEDED",))
    assert APP_ID.match(done["spark_app_id"] or ""), done
    assert done["finished_at"] is not None and done["reason"], done
    assert_count_result(output, rows, done)

    states = event_states(job_events(daemon, count_id))
    assert states == ["PENDING", "SUBMITTED", "RUNNING", "SUCCEEDED"], states
    events = job_events(daemon, count_id)
    assert all(event["reason"] for event in events), events
    assert [event["at"] for event in events] == sorted(event["at"] for event in events), events

    log = job_log(daemon, count_id)
    assert log.headers["X-Log-Complete"] == "true", log.headers
    assert f"SPARKIT-RESULT count={rows} sum={rows * (rows - 1) // 2}" in log.text
    assert "Running Spark version 4.0" in log.text, log.text[:2000]
    assert f"SPARKIT-APP-ID {done['spark_app_id']}" in log.text

    follower.join(JOB_TIMEOUT)
    assert not follower.is_alive(), "logs?follow=true did not end when the job ended"
    assert follower.error is None, follower.error
    assert follower.status == 200
    assert follower.state_at_end == "SUCCEEDED", "the follow stream ended before the job did"
    assert follower.data.decode("utf-8") == log.text, "the followed log differs from the log"

    failed = wait_for_state(daemon, fail_id, ("FAILED",))
    assert message in (failed["reason"] or ""), failed
    assert "ValueError" in failed["reason"], failed
    assert event_states(job_events(daemon, fail_id)) == \
        ["PENDING", "SUBMITTED", "RUNNING", "FAILED"]
    assert message in job_log(daemon, fail_id).text
    assert_no_processes([count_id, fail_id], "two finished jobs")


# ---- 3: cancel ------------------------------------------------------------------------------

def test_cancel_stops_a_long_job_and_all_its_processes(spark_daemon, tmp_path):
    daemon = spark_daemon()
    started = str(tmp_path / "udf-started")
    job_id = submit(daemon, job_body("sleep-120", "sleep_in_udf.py", 120, started)).json()["id"]
    wait_for_state(daemon, job_id, ("RUNNING",))
    wait_for_file(daemon, job_id, started)          # the Python worker is sleeping now

    needles = [job_id, os.path.join(daemon.work, job_id)]
    before = job_processes(needles)
    commands = " | ".join(command for _, command in before)
    assert "java" in commands and "python" in commands, before

    cancelled_at = time.monotonic()
    response = call(daemon, "DELETE", f"/api/v1/jobs/{job_id}")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "CANCELLING", response.text

    final = wait_for_state(daemon, job_id, ("CANCELLED",), timeout=60)
    assert time.monotonic() - cancelled_at < 60, "the cancel waited for the job to end"
    assert final["finished_at"] is not None, final
    assert_no_processes(needles, f"cancelled job {job_id}")
    assert event_states(job_events(daemon, job_id)) == \
        ["PENDING", "SUBMITTED", "RUNNING", "CANCELLING", "CANCELLED"]

    again = call(daemon, "DELETE", f"/api/v1/jobs/{job_id}")
    assert again.status_code == 409, again.text
    assert "CANCELLED" in again.json()["error"]["message"], again.text
    assert get_job(daemon, job_id)["state"] == "CANCELLED"


# ---- 4: idempotency, also across a restart -------------------------------------------------

def test_idempotency_key_replays_one_job_across_a_restart(spark_daemon, tmp_path):
    daemon = spark_daemon()
    rows = 1000
    markers = str(tmp_path / "markers")
    output = str(tmp_path / "count.json")
    go = str(tmp_path / "go")                      # the job runs until the restart is done
    body = job_body("count-once", "count_rows.py", "--rows", rows, "--output", output,
                    "--marker-dir", markers, "--wait-for", go, "--wait-timeout", 2 * JOB_TIMEOUT)
    other = job_body("count-once", "count_rows.py", "--rows", rows + 1, "--output", output,
                     "--marker-dir", markers, "--wait-for", go)
    key = f"sparkit-{uuid.uuid4().hex}"

    def assert_replays(job_id):
        again = submit(daemon, body, key=key, expect=200)
        assert again.json()["id"] == job_id, again.text
        assert again.headers.get("Idempotent-Replayed") == "true", again.headers
        assert again.headers.get("Location") == f"/api/v1/jobs/{job_id}", again.headers
        conflict = submit(daemon, other, key=key, expect=409)
        error = conflict.json()["error"]
        assert error["code"] == "idempotency_conflict" and key in error["message"], error
        assert [job["id"] for job in job_list(daemon, "analytics")] == [job_id]

    job_id = submit(daemon, body, key=key).json()["id"]
    assert_replays(job_id)
    # the key may also come in the body
    in_body = submit(daemon, dict(body, idempotency_token=key), expect=200)
    assert in_body.json()["id"] == job_id, in_body.text
    # keys belong to a team: the same key in another team is another job (one that cannot
    # start, so no second Spark runs)
    elsewhere = dict(body, team="ml", application={"file": os.path.join(APPS, "missing.py")})
    assert submit(daemon, elsewhere, key=key).json()["id"] != job_id

    wait_for_state(daemon, job_id, ("RUNNING",))
    assert daemon.stop() == 0, daemon.log_tail()
    daemon.start()
    assert_replays(job_id)
    assert get_job(daemon, job_id)["state"] == "RUNNING"     # the stop did not end it
    with open(go, "w"):
        pass
    done = wait_for_state(daemon, job_id, ("SUCCEEDED",))
    assert_count_result(output, rows, done)
    assert len(os.listdir(markers)) == 1, os.listdir(markers)
    assert_replays(job_id)


# ---- 5: SIGKILL the daemon while jobs run ----------------------------------------------------

def test_sigkill_restart_reattaches_running_jobs_and_fails_lost_ones(spark_daemon, tmp_path):
    """Three jobs run when the daemon is SIGKILLed.  While it is down one finishes, one's
    driver is killed and one keeps running; after the restart each ends as it really did."""
    daemon = spark_daemon(max_concurrent_jobs=3)
    rows = {"survivor": 5000, "early": 7000}
    jobs, go = {}, {}
    for name in rows:
        go[name] = str(tmp_path / f"go-{name}")
        jobs[name] = submit(daemon, job_body(
            name, "count_rows.py", "--rows", rows[name], "--output", str(tmp_path / name),
            "--marker-dir", str(tmp_path / f"markers-{name}"), "--wait-for", go[name],
            "--wait-timeout", 2 * JOB_TIMEOUT)).json()["id"]
    started = str(tmp_path / "udf-started")
    jobs["victim"] = submit(daemon, job_body("victim", "sleep_in_udf.py", 600,
                                             started)).json()["id"]
    for name in rows:
        log = os.path.join(daemon.work, jobs[name], "driver.log")
        helpers.wait_until(lambda: "SPARKIT-WAITING" in read_text(log), JOB_TIMEOUT,
                           interval=POLL_INTERVAL, what=f"{name} to wait for its go file")
    wait_for_file(daemon, jobs["victim"], started)
    for job_id in jobs.values():
        assert get_job(daemon, job_id)["state"] == "RUNNING"

    daemon.send_signal(signal.SIGKILL)
    assert daemon.wait_exit() == -signal.SIGKILL
    # while the daemon is down: the victim's driver dies with its whole process group ...
    with open(os.path.join(daemon.work, jobs["victim"], "pid")) as source:
        victim_group = int(source.read())
    os.killpg(victim_group, signal.SIGKILL)
    helpers.wait_until(lambda: not process_alive(victim_group), 10, interval=0.1,
                       what="the victim's wrapper to die")
    # ... "early" finishes ...
    with open(go["early"], "w"):
        pass
    early_exit = os.path.join(daemon.work, jobs["early"], "exit_code")
    helpers.wait_until(lambda: os.path.exists(early_exit), JOB_TIMEOUT, interval=POLL_INTERVAL,
                       what="the early job to finish while the daemon is down")
    # ... and the survivor still runs
    assert job_processes([os.path.join(daemon.work, jobs["survivor"])]), "the survivor died"
    assert not os.path.exists(tmp_path / "survivor")

    daemon.start()
    lost = wait_for_state(daemon, jobs["victim"], ("FAILED",), timeout=60)
    assert re.search(r"disappeared|killed", lost["reason"] or ""), lost
    early = wait_for_state(daemon, jobs["early"], ("SUCCEEDED",), timeout=60)
    assert_count_result(str(tmp_path / "early"), rows["early"], early)
    # the survivor was re-attached: still RUNNING, then it ends normally
    assert get_job(daemon, jobs["survivor"])["state"] == "RUNNING"
    with open(go["survivor"], "w"):
        pass
    survivor = wait_for_state(daemon, jobs["survivor"], ("SUCCEEDED",))
    assert_count_result(str(tmp_path / "survivor"), rows["survivor"], survivor)

    for name in rows:
        runs = os.listdir(tmp_path / f"markers-{name}")
        assert len(runs) == 1, f"{name} ran {len(runs)} times: {runs}"
        assert event_states(job_events(daemon, jobs[name])) == \
            ["PENDING", "SUBMITTED", "RUNNING", "SUCCEEDED"], name
    assert event_states(job_events(daemon, jobs["victim"])) == \
        ["PENDING", "SUBMITTED", "RUNNING", "FAILED"]
    assert_no_processes(list(jobs.values()), "the three jobs")


# ---- 6: bad input with the real config -------------------------------------------------------

def test_bad_input_is_refused_and_nothing_is_stored(spark_daemon, tmp_path):
    daemon = spark_daemon()
    body = job_body("count-rows", "count_rows.py", "--rows", 10, "--output",
                    str(tmp_path / "never.json"))

    def refused(response, status, code, field=None, needle=None):
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code, error
        if field is not None:
            assert error.get("details", {}).get("field") == field, error
        if needle is not None:
            assert needle in error["message"], error
        assert job_list(daemon, "analytics") == [], "a refused request stored a job"
        assert os.listdir(daemon.work) == [], "a refused request reached the backend"
        return error

    post = "/api/v1/jobs"
    refused(call(daemon, "POST", post, data='{"name": "x", "team": '), 400, "invalid_json")
    refused(call(daemon, "POST", post, data="not json"), 400, "invalid_json")
    refused(call(daemon, "POST", post, body=dict(body, name=5)), 400, "invalid_request", "name")
    refused(call(daemon, "POST", post, body=dict(body, application={"file": 7})), 400,
            "invalid_request", "application.file")
    refused(call(daemon, "POST", post,
                 body=dict(body, resources={"driver": {"memory": "lots"}})), 400,
            "invalid_request", "resources.driver.memory")
    refused(call(daemon, "POST", post, body={k: v for k, v in body.items() if k != "team"}), 400,
            "invalid_request", "team")
    refused(call(daemon, "POST", post,
                 body={k: v for k, v in body.items() if k != "application"}), 400,
            "invalid_request", "application")
    error = refused(call(daemon, "POST", post, body=dict(body, spark_version="9.9")), 400,
                    "invalid_request", "spark_version", "9.9")
    assert "4.0" in error["message"], error
    big = dict(body, application=dict(body["application"], args=["x" * 4000] * 400))
    try:
        response = call(daemon, "POST", post, body=big)
    except requests.ConnectionError as broken:
        pytest.fail(f"an oversized body got no 413, the connection broke: {broken}")
    refused(response, 413, "payload_too_large")
    refused(call(daemon, "POST", post, who="vera", body=body), 403, "forbidden")
    refused(call(daemon, "POST", post, body=dict(body, team="platform")), 403, "forbidden",
            needle="platform")

    # another team's job looks exactly like a missing one (it cannot start: no Spark runs)
    foreign_body = dict(body, team="platform", application={"file": os.path.join(APPS, "no.py")})
    foreign = submit(daemon, foreign_body, who="bob").json()["id"]
    for job_id in (foreign, "job-doesnotexist"):
        for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/events"),
                               ("GET", "/logs")):
            response = call(daemon, method, f"/api/v1/jobs/{job_id}{suffix}")
            refused(response, 404, "not_found", needle=job_id)
            assert response.json()["error"]["message"] == f"no job '{job_id}'", response.text
    assert [job["id"] for job in job_list(daemon, "platform", who="bob")] == [foreign]


# ---- what only the backend can know ----------------------------------------------------------

def test_jobs_the_backend_cannot_start_fail_naming_the_problem(spark_daemon, tmp_path):
    broken_home = str(tmp_path / "no-spark-here")
    os.makedirs(broken_home)
    daemon = spark_daemon(versions={"3.5": {"spark_home": broken_home}})
    error = call(daemon, "POST", "/api/v1/jobs",
                 body=dict(job_body("x", "count_rows.py"), spark_version="9.9")).json()["error"]
    assert "4.0" in error["message"] and "3.5" in error["message"], error

    missing = os.path.join(APPS, "missing.py")
    cases = [
        (dict(job_body("no-file", "count_rows.py"), application={"file": missing}),
         f"application.file '{missing}'"),
        (dict(job_body("relative", "count_rows.py"), application={"file": "jobs/count.py"}),
         "application.file 'jobs/count.py' must be an absolute path"),
        (dict(job_body("old-spark", "count_rows.py"), spark_version="3.5"),
         f"runtime.spark_home '{broken_home}' has no executable bin/spark-submit"),
    ]
    ids = [submit(daemon, job).json()["id"] for job, _ in cases]
    for job_id, (_, needle) in zip(ids, cases):
        failed = wait_for_state(daemon, job_id, ("FAILED",), timeout=30)
        assert needle in (failed["reason"] or ""), failed
        assert failed["spark_app_id"] is None, failed
    assert not job_processes([daemon.work + "/"]), "a job that could not start left processes"


def test_a_failed_attempt_is_retried_as_a_new_run(spark_daemon, tmp_path):
    daemon = spark_daemon()
    marker, output = str(tmp_path / "attempt.marker"), str(tmp_path / "retry.json")
    body = job_body("retry-once", "fail_first_attempt.py", marker, output)
    body["max_attempts"] = 2
    job_id = submit(daemon, body).json()["id"]

    done = wait_for_state(daemon, job_id, ("SUCCEEDED", "FAILED"), timeout=2 * JOB_TIMEOUT)
    assert done["state"] == "SUCCEEDED", describe(daemon, job_id)
    assert done["attempt"] == 2 and done["max_attempts"] == 2, done
    assert read_json(output) == {"rows": 1000}

    events = job_events(daemon, job_id)
    retrying = [e for e in events if e["to_state"] == "RETRYING"]
    assert len(retrying) == 1, events
    assert retrying[0]["reason"].startswith("attempt 1 of 2 failed: "), retrying
    assert "RuntimeError: first attempt fails on purpose" in retrying[0]["reason"], retrying
    assert event_states(events) == ["PENDING", "SUBMITTED", "RUNNING", "RETRYING", "PENDING",
                                    "SUBMITTED", "RUNNING", "SUCCEEDED"], events
