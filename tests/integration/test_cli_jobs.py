"""test_cli_jobs.py - the `sparkplane` client against the real daemon.

Every test runs the built cli/sparkplane as a user would (a subprocess with
a clean environment and a private HOME) and checks what the user sees: exit
status, stdout, stderr.  Jobs run on the daemon's SIMULATED backend
(backend_sim, "sim") so their lifecycle is quick and deterministic; the
simulator is named as such and only used here because the CLI's behaviour
does not depend on what runs the job.

Covered: usage errors (2), an unreachable server (3), bad or missing token
(4), not found (5), API errors with their message and code (1), the
settings precedence flags > environment > config file, and submit (YAML,
JSON, stdin, idempotency), get, list (filters, --all pagination), cancel,
events, logs -f, and submit --wait ending SUCCEEDED (0), FAILED (6) and
CANCELLED (7).
"""
import json
import os
import re
import subprocess
import time

import pytest

import helpers

TEAM = "analytics"            # alice's first team (helpers.make_tokens)
JOB_YAML = """\
# a job as a user writes it
name: {name}
team: analytics
spark_version: "3.5"
application:
  file: /jobs/count_rows.py
  args: ["--rows", "1000"]
resources:
  executor: {{cores: 1, memory: 1g, instances: 1}}
"""
RESULT_TIMEOUT = 30.0


# ---- running the client -----------------------------------------------------------------------

def cli_binary(builddir):
    path = os.path.join(builddir, "cli", "sparkplane")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: make cli/sparkplane")
    return path


def sim_plugin(builddir):
    path = os.path.join(builddir, "plugins", "backend_sim", ".libs", "backend_sim.so")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: make plugins/backend_sim/backend_sim.la")
    return path


class Cli:
    """Runs sparkplane with a clean environment: no proxies, no user config, no SPARKPLANE_*."""

    def __init__(self, builddir, home):
        self.binary = cli_binary(builddir)
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)

    def env(self, extra=None):
        env = helpers.sanitizer_env()
        for name in list(env):
            if name.startswith("SPARKPLANE_") or name.lower().endswith("_proxy") \
                    or name == "XDG_CONFIG_HOME":
                del env[name]
        env["HOME"] = self.home
        env.update(extra or {})
        return env

    def run(self, *args, env=None, stdin=None, timeout=60):
        result = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                env=self.env(env), timeout=timeout,
                                input=stdin if stdin is not None else "")
        report = helpers.sanitizer_report(result.stderr)
        assert report is None, f"sanitizer report from sparkplane {args}: {report}\n" \
                               f"{result.stderr}"
        return result

    def popen(self, *args, env=None):
        return subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(env),
                                stdin=subprocess.DEVNULL)


def on(daemon, token=None):
    """The flags that point the client at a daemon as alice (or with `token`)."""
    return ["--server", daemon.url, "--token", token if token is not None else daemon.token]


def table_rows(text):
    """A table printed by the client -> list of dicts keyed by its header."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no table printed"
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[1:]:
        cells = [line[start:(starts[i + 1] if i + 1 < len(starts) else None)].strip()
                 for i, start in enumerate(starts)]
        rows.append(dict(zip(names, cells)))
    return rows


def job_file(tmp_path, name="count-rows", text=None):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else JOB_YAML.format(name=name))
    return str(path)


@pytest.fixture
def cli(builddir, tmp_path):
    return Cli(builddir, tmp_path / "home")


def sim_daemon(daemon_factory, builddir, **options):
    """A daemon whose default backend is the simulator with these options."""
    sim_options = {"run_duration": "1s"}
    sim_options.update(options)

    def configure(cfg):
        cfg["plugins"]["backend_sim"] = {"path": sim_plugin(builddir), "options": sim_options}
        cfg["runner"] = {"default_backend": "sim", "reconcile_interval": "200ms"}
        cfg["spark_versions"] = {"3.5": {"image": "spark-platform:3.5-latest"}}
    return daemon_factory(configure=configure)


@pytest.fixture
def sim(daemon_factory, builddir):
    return sim_daemon(daemon_factory, builddir)


def submit_json(cli, daemon, path, *extra):
    result = cli.run(*on(daemon), "-o", "json", "jobs", "submit", "-f", path, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_state(cli, daemon, job_id, states):
    def reached():
        result = cli.run(*on(daemon), "-o", "json", "jobs", "get", job_id)
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        return job if job["state"] in states else None
    return helpers.wait_until(reached, RESULT_TIMEOUT, interval=0.2,
                              what=f"{job_id} in {states}")


# ---- without a server ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    ([], "missing command"),
    (["jobs"], "missing jobs command"),
    (["jobs", "frobnicate"], "unknown command 'jobs frobnicate'"),
    (["jobs", "get"], "missing JOB_ID"),
    (["jobs", "submit"], "needs -f FILE"),
    (["jobs", "list", "--limit", "0"], "--limit"),
    (["jobs", "list", "--state", "DONE"], "--state"),
    (["-o", "yaml", "jobs", "list"], "--output"),
    (["jobs", "get", "job-1", "--team", "x"], "--team"),
    (["--server", "ftp://example", "jobs", "list"], "http://"),
])
def test_usage_errors_exit_2(cli, args, needle):
    result = cli.run(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert result.stderr.startswith("sparkplane: ")
    assert result.stdout == ""


def test_help_documents_commands_and_exit_codes(cli):
    result = cli.run("--help")
    assert result.returncode == 0, result.stderr
    for text in ("jobs submit -f FILE", "jobs logs [-f] JOB_ID", "3  cannot reach the server",
                 "4  authentication", "6  submit --wait: the job FAILED"):
        assert text in result.stdout


def test_client_version_needs_no_server(cli):
    result = cli.run("version", "--client", "--server", "http://127.0.0.1:1")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"client: sparkplane \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout


def test_unreachable_server_exits_3(cli):
    port = helpers.free_port()   # nothing listens there
    result = cli.run("--server", f"http://127.0.0.1:{port}", "--token", "t", "jobs", "list")
    assert result.returncode == 3, result.stderr
    assert f"cannot reach http://127.0.0.1:{port}" in result.stderr


def test_unreadable_job_file_is_a_usage_error(cli, tmp_path):
    port = helpers.free_port()
    server = ["--server", f"http://127.0.0.1:{port}"]
    missing = str(tmp_path / "absent.yaml")
    result = cli.run(*server, "jobs", "submit", "-f", missing)
    assert result.returncode == 2 and missing in result.stderr
    broken = job_file(tmp_path, "broken", "name: x\nteam: [unclosed\n")
    result = cli.run(*server, "jobs", "submit", "-f", broken)
    assert result.returncode == 2
    assert re.search(re.escape(broken) + r":\d+:\d+: ", result.stderr), result.stderr


# ---- auth and settings ------------------------------------------------------------------------

def test_bad_or_missing_token_exits_4_and_is_never_printed(cli, daemon):
    wrong = "wrong-" + "x" * 24
    result = cli.run(*on(daemon, token=wrong), "jobs", "list")
    assert result.returncode == 4, result.stderr
    assert "HTTP 401" in result.stderr and "unauthenticated" in result.stderr
    assert wrong not in result.stdout + result.stderr
    result = cli.run("--server", daemon.url, "jobs", "list")
    assert result.returncode == 4, result.stderr


def test_version_shows_the_server(cli, daemon):
    result = cli.run(*on(daemon), "version")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^server: sparkplaned \S+ \(plugin ABI 1\.\d+, schema \d+\) at "
                     + re.escape(daemon.url), result.stdout, re.M), result.stdout
    result = cli.run(*on(daemon), "-o", "json", "version")
    assert json.loads(result.stdout)["server"]["abi"].startswith("1.")


def test_settings_precedence_flags_env_file(cli, daemon, tmp_path):
    unreachable = f"http://127.0.0.1:{helpers.free_port()}"
    config = tmp_path / "config.yaml"
    config.write_text(f"server: {daemon.url}\ntoken: {daemon.token}\n")
    file_only = {"SPARKPLANE_CONFIG": str(config)}
    result = cli.run("version", env=file_only)
    assert result.returncode == 0, result.stderr          # the file alone is enough

    env_over_file = dict(file_only, SPARKPLANE_SERVER=unreachable)
    result = cli.run("version", env=env_over_file)
    assert result.returncode == 3, result.stderr          # env beats the file

    result = cli.run("--server", daemon.url, "version", env=env_over_file)
    assert result.returncode == 0, result.stderr          # a flag beats env

    env_token = dict(file_only, SPARKPLANE_TOKEN="revoked-token")
    result = cli.run("version", env=env_token)
    assert result.returncode == 4, result.stderr          # env token beats the file's
    result = cli.run("--token", daemon.token, "version", env=env_token)
    assert result.returncode == 0, result.stderr


def test_default_config_file_in_home(cli, daemon):
    config_dir = os.path.join(cli.home, ".config", "sparkplane")
    os.makedirs(config_dir)
    with open(os.path.join(config_dir, "config.yaml"), "w") as out:
        out.write(f"server: {daemon.url}\ntoken: {daemon.token}\n")
    result = cli.run("version")
    assert result.returncode == 0, result.stderr
    assert daemon.url in result.stdout


def test_bad_config_file_names_file_and_line(cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("server: http://127.0.0.1:1\nsever: typo\n")
    result = cli.run("jobs", "list", env={"SPARKPLANE_CONFIG": str(config)})
    assert result.returncode == 2
    assert f"{config}:2:1: unknown key 'sever'" in result.stderr
    missing = str(tmp_path / "absent.yaml")
    result = cli.run("jobs", "list", env={"SPARKPLANE_CONFIG": missing})
    assert result.returncode == 2 and missing in result.stderr


# ---- jobs against the daemon ------------------------------------------------------------------

def test_submit_get_and_list(cli, sim, tmp_path):
    path = job_file(tmp_path)
    result = cli.run(*on(sim), "jobs", "submit", "-f", path)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert len(rows) == 1
    job_id = rows[0]["ID"]
    assert job_id.startswith("job-")
    assert rows[0]["NAME"] == "count-rows" and rows[0]["TEAM"] == TEAM
    assert rows[0]["STATE"] in ("PENDING", "SUBMITTED", "RUNNING")

    result = cli.run(*on(sim), "jobs", "get", job_id)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^id:\s+{job_id}$", result.stdout, re.M), result.stdout
    assert re.search(r"^team:\s+analytics$", result.stdout, re.M)
    assert re.search(r"^submitted_by:\s+alice$", result.stdout, re.M)
    assert re.search(r"^application:\s+/jobs/count_rows.py$", result.stdout, re.M)

    # -o json is the API's own document
    result = cli.run(*on(sim), "-o", "json", "jobs", "get", job_id)
    via_cli = json.loads(result.stdout)
    via_api = sim.get(f"/api/v1/jobs/{job_id}", token=sim.token).json()
    assert via_cli["id"] == via_api["id"] == job_id
    assert via_cli["spec"] == via_api["spec"]
    assert via_cli["spec"]["application"]["args"] == ["--rows", "1000"]

    result = cli.run(*on(sim), "jobs", "list", "--team", TEAM, "--name", "count-rows")
    assert result.returncode == 0, result.stderr
    assert [row["ID"] for row in table_rows(result.stdout)] == [job_id]
    result = cli.run(*on(sim), "jobs", "list", "--team", TEAM, "--name", "no-such-name")
    assert result.returncode == 0 and result.stdout == ""
    assert "no jobs found" in result.stderr


def test_submit_json_and_stdin(cli, sim, tmp_path):
    body = {"name": "from-json", "team": TEAM, "spark_version": "3.5",
            "application": {"file": "/jobs/x.py"}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))
    job = submit_json(cli, sim, str(path))
    assert job["name"] == "from-json"
    result = cli.run(*on(sim), "-o", "json", "jobs", "submit", "-f", "-",
                     stdin=JOB_YAML.format(name="from-stdin"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "from-stdin"


def test_list_all_follows_pages(cli, sim, tmp_path):
    ids = {submit_json(cli, sim, job_file(tmp_path, f"paged-{i}"))["id"] for i in range(3)}
    result = cli.run(*on(sim), "jobs", "list", "--team", TEAM, "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert len(table_rows(result.stdout)) == 1
    assert "--all" in result.stderr                      # the user learns that more exist

    result = cli.run(*on(sim), "jobs", "list", "--team", TEAM, "--limit", "1", "--all")
    assert result.returncode == 0, result.stderr
    assert {row["ID"] for row in table_rows(result.stdout)} == ids

    result = cli.run(*on(sim), "-o", "json", "jobs", "list", "--team", TEAM, "--limit", "1",
                     "--all")
    merged = json.loads(result.stdout)
    assert {job["id"] for job in merged["jobs"]} == ids and merged["next_page_token"] is None


def test_list_filters_by_state(cli, sim, tmp_path):
    job = submit_json(cli, sim, job_file(tmp_path))
    wait_for_state(cli, sim, job["id"], ("SUCCEEDED",))
    result = cli.run(*on(sim), "-o", "json", "jobs", "list", "--team", TEAM,
                     "--state", "succeeded")
    assert result.returncode == 0, result.stderr
    assert job["id"] in [j["id"] for j in json.loads(result.stdout)["jobs"]]
    result = cli.run(*on(sim), "-o", "json", "jobs", "list", "--team", TEAM,
                     "--state", "RUNNING")
    assert job["id"] not in [j["id"] for j in json.loads(result.stdout)["jobs"]]


def test_cancel_then_cancel_again(cli, daemon_factory, builddir, tmp_path):
    daemon = sim_daemon(daemon_factory, builddir, run_duration="60s")
    job = submit_json(cli, daemon, job_file(tmp_path))
    result = cli.run(*on(daemon), "jobs", "cancel", job["id"])
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout)[0]["STATE"] in ("CANCELLING", "CANCELLED")
    wait_for_state(cli, daemon, job["id"], ("CANCELLED",))

    result = cli.run(*on(daemon), "jobs", "cancel", job["id"])
    assert result.returncode == 1, result.stderr
    assert re.search(r"^sparkplane: .*CANCELLED.* \(\w+, HTTP 409\)$", result.stderr, re.M), \
        result.stderr

    result = cli.run(*on(daemon), "jobs", "events", job["id"])
    assert result.returncode == 0, result.stderr
    states = [row["TO"] for row in table_rows(result.stdout)]
    assert states[0] == "PENDING" and states[-1] == "CANCELLED"


def test_unknown_job_exits_5(cli, sim):
    for command in (["get"], ["cancel"], ["events"], ["logs"]):
        result = cli.run(*on(sim), "jobs", *command, "job-doesnotexist")
        assert result.returncode == 5, (command, result.stderr)
        assert "HTTP 404" in result.stderr


def test_foreign_team_exits_4(cli, sim):
    result = cli.run(*on(sim), "jobs", "list", "--team", "platform")
    assert result.returncode == 4, result.stderr
    assert "HTTP 403" in result.stderr


def test_api_validation_error_is_shown_with_its_field(cli, sim, tmp_path):
    path = job_file(tmp_path, "no-version", "name: x\nteam: analytics\n"
                                            "application: {file: /jobs/x.py}\n")
    result = cli.run(*on(sim), "jobs", "submit", "-f", path)
    assert result.returncode == 1, result.stderr
    assert re.search(r"^sparkplane: .*spark_version.* \(\w+, HTTP 400\)$", result.stderr, re.M), \
        result.stderr
    listed = cli.run(*on(sim), "-o", "json", "jobs", "list", "--team", TEAM)
    assert json.loads(listed.stdout)["jobs"] == []        # nothing was stored


def test_idempotency_key(cli, sim, tmp_path):
    path = job_file(tmp_path)
    first = submit_json(cli, sim, path, "--idempotency-key", "nightly-2026-01-10")
    result = cli.run(*on(sim), "-o", "json", "jobs", "submit", "-f", path,
                     "--idempotency-key", "nightly-2026-01-10")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == first["id"]
    assert "not submitted again" in result.stderr

    other = job_file(tmp_path, "another-name")
    result = cli.run(*on(sim), "jobs", "submit", "-f", other,
                     "--idempotency-key", "nightly-2026-01-10")
    assert result.returncode == 1
    assert "HTTP 409" in result.stderr


def test_submit_wait_succeeded(cli, sim, tmp_path):
    result = cli.run(*on(sim), "-o", "json", "jobs", "submit", "-f", job_file(tmp_path),
                     "--wait")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["state"] == "SUCCEEDED"
    # progress went to stderr, one line per state seen
    assert re.search(rf"^{job['id']}: SUCCEEDED$", result.stderr, re.M), result.stderr


def test_submit_wait_failed_exits_6(cli, daemon_factory, builddir, tmp_path):
    daemon = sim_daemon(daemon_factory, builddir, failure_rate=100)
    result = cli.run(*on(daemon), "jobs", "submit", "-f", job_file(tmp_path), "--wait")
    assert result.returncode == 6, result.stderr
    assert table_rows(result.stdout)[0]["STATE"] == "FAILED"


def test_submit_wait_cancelled_exits_7(cli, daemon_factory, builddir, tmp_path):
    daemon = sim_daemon(daemon_factory, builddir, run_duration="60s")
    waiter = cli.popen(*on(daemon), "-o", "json", "jobs", "submit", "-f", job_file(tmp_path),
                       "--wait")
    try:
        def submitted():
            listed = cli.run(*on(daemon), "-o", "json", "jobs", "list", "--team", TEAM)
            jobs = json.loads(listed.stdout)["jobs"]
            return jobs[0]["id"] if jobs else None
        job_id = helpers.wait_until(submitted, RESULT_TIMEOUT, interval=0.2, what="the job")
        result = cli.run(*on(daemon), "jobs", "cancel", job_id)
        assert result.returncode == 0, result.stderr
        stdout, stderr = waiter.communicate(timeout=RESULT_TIMEOUT)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 7, stderr
    assert json.loads(stdout)["state"] == "CANCELLED"
    assert helpers.sanitizer_report(stderr) is None, stderr


def test_logs_follow_until_the_job_ends(cli, sim, tmp_path):
    job = submit_json(cli, sim, job_file(tmp_path))
    started = time.monotonic()
    result = cli.run(*on(sim), "jobs", "logs", "-f", job["id"], timeout=RESULT_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout, "no log text"
    # following returns only once the job has ended, so it is final now
    final = cli.run(*on(sim), "-o", "json", "jobs", "get", job["id"])
    assert json.loads(final.stdout)["state"] == "SUCCEEDED"
    assert time.monotonic() - started < RESULT_TIMEOUT

    # without -f: the same text, and --offset skips what was already read
    whole = cli.run(*on(sim), "jobs", "logs", job["id"])
    assert whole.returncode == 0 and whole.stdout == result.stdout
    tail = cli.run(*on(sim), "jobs", "logs", job["id"], "--offset", "5")
    assert tail.returncode == 0 and tail.stdout == result.stdout[5:]
