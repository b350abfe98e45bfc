"""test_clusters_spark.py - provisioned clusters end to end: the API, the local backend, real Spark.

Every test starts sparkplaned from the build tree with the gateway on h2c,
the backend_local plugin running clusters (a Spark standalone master, one
worker per executor and a Spark Connect server with its own token, all in
the backend's work_directory) and a `provisioning:` section whose sizes
fit two cores: small = a 512m driver and one 512m executor.  The catalog
template `pedregal` is an Iceberg hadoop catalog on a warehouse in the
test's temp dir (one folder per team: the value uses {team}), and every
cluster starts with spark.jars = the Iceberg runtime jar that
scripts/fetch-jars.sh downloads.

Clients are real pyspark processes (spark_apps/cluster_client.py) that
reach the cluster only through the gateway, by x-sparkplane-cluster-id,
with alice's gateway token.  What the tests check is what a user sees:
statuses and events from the API, query answers, the gRPC error of a
session whose cluster ended, the hosts file, Iceberg's files in the
warehouse, and (for expiry, delete and restart) which processes are left
on the machine, read from /proc.

At most two clusters run at once (the hot test: the handed-over cluster
and the pool's refill).  Every wait is a bounded poll.  Whatever a test
leaves running is killed at teardown, found through the backend's work
directory in /proc/*/cmdline, environ and cwd, after the daemons stopped.

Without java, pyspark (with grpcio, pandas, pyarrow) or the Iceberg jar
the tests skip, unless SPARKPLANE_REQUIRE_INTEGRATION=1 (then they fail).
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import clusters_support as cs
import helpers
import spark_connect

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
CLIENT = os.path.join(HERE, "spark_apps", "cluster_client.py")
FETCH_JARS = os.path.join(SRCDIR, "scripts", "fetch-jars.sh")

START_TIMEOUT = 300.0       # a cold cluster (master, worker, executor, server) on two busy cores
CLIENT_TIMEOUT = 240.0
STOP_TIMEOUT = 90.0         # TERMINATING -> TERMINATED, and every process gone
SCALE_TIMEOUT = 180.0
POLL = 0.25
TEAM = "analytics"          # alice's team (helpers.make_tokens)
TABLE = "pedregal.feature_store.user_features"
ROWS = [[1, 10], [2, 20], [3, 30]]
SMALL = {"driver": {"cores": 1, "memory": "512m"}, "executors": 1,
         "executor": {"cores": 1, "memory": "512m"}}
SMALL_CORES = 2             # driver + one executor


# ---- what the tests need on the machine -----------------------------------------------------

@pytest.fixture(scope="session")
def spark_home():
    return spark_connect.spark_home()


@pytest.fixture(scope="session")
def iceberg_jar():
    """The Iceberg runtime jar where scripts/fetch-jars.sh puts it (downloads nothing)."""
    try:
        paths = subprocess.run(["bash", FETCH_JARS, "--path"], capture_output=True, text=True,
                               check=True, timeout=30, stdin=subprocess.DEVNULL).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        spark_connect.skip_or_fail(f"{FETCH_JARS} --path failed: {error}")
    jars = [path for path in paths if "iceberg-spark-runtime" in os.path.basename(path)]
    if not jars or not os.path.isfile(jars[0]):
        spark_connect.skip_or_fail(f"no Iceberg runtime jar at {jars or paths}: "
                                   "run scripts/fetch-jars.sh")
    return jars[0]


# ---- processes, from /proc --------------------------------------------------------------------

def _proc_text(pid):
    """cmdline, environ and cwd of a live process, as one string ("" when gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as source:
            stat = source.read()
        if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"):
            return ""
        parts = []
        for name in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{name}", "rb") as source:
                parts.append(source.read().replace(b"\0", b" ").decode("utf-8", "replace"))
        parts.append(os.readlink(f"/proc/{pid}/cwd"))
        return "\n".join(parts)
    except (OSError, ValueError):
        return ""                       # gone meanwhile, or not ours to read


def processes_mentioning(needle, exclude=()):
    """[(pid, command line)] of live processes whose cmdline, environ or cwd holds needle."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or int(name) in exclude:
            continue
        text = _proc_text(name)
        if needle in text:
            found.append((int(name), text.split("\n", 1)[0][:300]))
    return found


def cluster_processes(daemon, ref):
    """The processes of one cluster: under the backend's work directory and naming its ref."""
    return [(pid, line) for pid, line in processes_mentioning(ref, exclude=daemon_pids(daemon))
            if daemon.work in _proc_text(pid)]


def daemon_pids(daemon):
    return {daemon.process.pid} if daemon.process is not None else set()


def assert_no_cluster_processes(daemon, ref, what):
    try:
        helpers.wait_until(lambda: not cluster_processes(daemon, ref), STOP_TIMEOUT, interval=0.5,
                           what=f"the processes of {what} to exit")
    except AssertionError:
        pytest.fail(f"processes of {what} remain: {cluster_processes(daemon, ref)}",
                    pytrace=False)


def kill_processes_under(path):
    """SIGKILLs everything whose cmdline, environ or cwd mentions path (teardown)."""
    victims = processes_mentioning(path)
    for pid, _ in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return victims


# ---- the daemon with provisioning ---------------------------------------------------------------

def provisioning_overrides(hosts_file, warehouse, jar, warm, pool_cores):
    """What these tests set on top of clusters_support's defaults (region local, reap 1s)."""
    return {
        "hosts_file": hosts_file,
        "hosts_address": "127.0.0.1",
        "start_timeout": "5m",
        "environments": {"dev": {"default_ttl": "1h", "max_ttl": "1d",
                                 "warm": {"small": warm}}},
        "sizes": {"small": SMALL},
        "regions": {"local": {}, "eu-west-1": {"fallback": "local"}},
        "catalogs": {"pedregal": {
            "spark.sql.catalog.pedregal": "org.apache.iceberg.spark.SparkCatalog",
            "spark.sql.catalog.pedregal.type": "hadoop",
            "spark.sql.catalog.pedregal.warehouse": f"file://{warehouse}/{{team}}",
            "spark.sql.defaultCatalog": "pedregal",
        }},
        "spark_conf": {"spark.jars": jar, "spark.sql.shuffle.partitions": "2"},
        "pool_budget": {"cores": pool_cores},
    }


@pytest.fixture
def cluster_daemon(daemon_factory, builddir, spark_home, iceberg_jar, tmp_path):
    """start(warm=0, pool_cores=0) -> a daemon that provisions clusters with the local backend.

    The daemon carries .gateway_port, .work (the backend's work_directory),
    .warehouse and .hosts_file.  At teardown every daemon is stopped first
    (so no pool refills what is being killed), then whatever still runs
    under a work directory is killed.
    """
    plugin = cs.plugin_path(builddir, "backend_local")
    if not os.path.isfile(plugin):
        pytest.fail(f"{plugin} is missing (make plugins/backend_local/backend_local.la)",
                    pytrace=False)
    started = []

    def start(warm=0, pool_cores=0):
        index = len(started)
        work = str(tmp_path / f"clusters-work{index}")
        warehouse = str(tmp_path / f"warehouse{index}")
        os.makedirs(warehouse)
        gateway_port = helpers.free_port()

        def configure(cfg):
            hosts_file = os.path.join(os.path.dirname(cfg["state"]["directory"]),
                                      "clusters.hosts")
            cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team"}
            cs.add_provisioning(
                cfg, builddir, backend="local", spark_home=spark_home,
                plugin_options={"work_directory": work, "python": sys.executable},
                **provisioning_overrides(hosts_file, warehouse, iceberg_jar, warm, pool_cores))
        daemon = daemon_factory(configure=configure)
        daemon.gateway_port = gateway_port
        daemon.work = work
        daemon.warehouse = warehouse
        daemon.hosts_file = daemon.config["provisioning"]["hosts_file"]
        daemon.database = os.path.join(daemon.config["state"]["directory"], "sparkplane.db")
        started.append(daemon)
        if not helpers.port_accepts(gateway_port):
            pytest.fail(f"the daemon does not listen on gateway port {gateway_port}\n"
                        + daemon.log_tail(20))
        return daemon

    yield start

    problems = []
    for daemon in started:
        try:
            if daemon.alive():
                assert daemon.get("/healthz").status_code == 200, "final /healthz"
                assert daemon.stop() == 0, "sparkplaned did not exit 0 after SIGTERM"
        except Exception as error:  # collect, so every cluster is still killed
            problems.append(f"{daemon.workdir}: {error}\n{daemon.log_tail(40)}")
        finally:
            daemon.kill()
            kill_processes_under(daemon.work)
    if problems:
        pytest.fail("cluster daemon teardown:\n" + "\n\n".join(problems), pytrace=False)


# ---- the API (clusters_support) ----------------------------------------------------------

def create_cluster(daemon, **fields):
    """POST a small dev cluster of alice's team with pedregal; asserts 201."""
    body = {"team": TEAM, "environment": "dev", "size": "small", "catalogs": ["pedregal"]}
    body.update(fields)
    response = cs.create(daemon, body)
    assert response.status_code == 201, f"{response.status_code}: {response.text}"
    return response.json()


def get_cluster(daemon, cluster_id):
    response = cs.get(daemon, cluster_id)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def wait_status(daemon, cluster_id, wanted, timeout=START_TIMEOUT):
    """Waits for one of `wanted`; a cluster that FAILED instead fails the test at once."""
    cluster = cs.wait_status(daemon, cluster_id, tuple(wanted) + ("FAILED",), timeout=timeout)
    assert cluster["status"] in wanted, \
        f"cluster {cluster_id} FAILED: {cluster.get('reason')}\n{daemon.log_tail(30)}"
    return cluster


def start_running_cluster(daemon, **fields):
    created = create_cluster(daemon, **fields)
    assert created["status"] == "PROVISIONING", created
    return wait_status(daemon, created["cluster_id"], ("RUNNING",))


def created_total(daemon, source):
    """sparkplane_clusters_created_total{source=...} (read line by line, as cs.metric does)."""
    response = helpers.http("GET", daemon.url + "/metrics")
    assert response.status_code == 200, response.text
    prefix = f'sparkplane_clusters_created_total{{source="{source}"}} '
    values = [float(line[len(prefix):]) for line in response.text.splitlines()
              if line.startswith(prefix)]
    return sum(values)


def event_states(daemon, cluster_id):
    """(the to-states of the cluster's events oldest first, the events)."""
    events = cs.events(daemon, cluster_id)
    return [event.get("to_state", event.get("to")) for event in events], events


def assert_states_in_order(states, *expected):
    """expected appear in states in this order (other events may come between)."""
    position = 0
    for state in states:
        if position < len(expected) and state == expected[position]:
            position += 1
    assert position == len(expected), f"events {states} do not show {' -> '.join(expected)}"


# ---- the store ----------------------------------------------------------------------------------

def store_rows(daemon, sql, *args):
    """Reads the daemon's SQLite store (read-only; WAL lets it read beside the daemon)."""
    with sqlite3.connect(f"file:{daemon.database}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql, args).fetchall()


def backend_ref(daemon, cluster_id):
    rows = store_rows(daemon, "SELECT backend_ref FROM clusters WHERE id = ?", cluster_id)
    assert rows and rows[0][0], f"no backend_ref stored for {cluster_id}"
    return rows[0][0]


def running_warm_clusters(daemon):
    """Ids of RUNNING warm clusters (rows with a pool; the API never shows them)."""
    return [row[0] for row in store_rows(
        daemon, "SELECT id FROM clusters WHERE pool IS NOT NULL AND state = 'RUNNING'")]


# ---- clients ----------------------------------------------------------------------------------

def client_url(daemon, cluster_id):
    return spark_connect.connect_url(daemon.gateway_port, daemon.token, cluster_id, user="alice")


def start_client(mode, *args):
    return subprocess.Popen([sys.executable, CLIENT, mode, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_client(process, timeout=CLIENT_TIMEOUT):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"client did not finish within {timeout}s:\n{err[-4000:]}")
    finally:
        if process.poll() is None:      # interrupted: no orphan clients
            process.kill()
            process.wait()
    assert process.returncode == 0, f"client failed:\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


def run_client(mode, *args):
    return finish_client(start_client(mode, *args))


def hold_session(daemon, cluster_id):
    """A client with a live session on the cluster, waiting for a line on stdin."""
    process = start_client("hold", client_url(daemon, cluster_id))
    line = process.stdout.readline()
    if not line:
        finish_client(process)          # reports why it died
    ready = json.loads(line)
    assert ready["phase"] == "ready" and ready["count"] == 5, ready
    return process


def release_session(process):
    process.stdin.write("go\n")
    process.stdin.flush()
    return finish_client(process)


# ---- cold: a new cluster with the team's catalogs ---------------------------------------------

def test_cold_cluster_serves_the_teams_iceberg_catalog(cluster_daemon):
    """PROVISIONING -> RUNNING; through the gateway, pedregal resolves by its qualified name and
    as the default catalog; the endpoint's host name is in the hosts file."""
    daemon = cluster_daemon()
    created = create_cluster(daemon)
    assert created["status"] == "PROVISIONING", created
    assert created["catalogs"] == ["pedregal"], created
    assert created["estimated_ready_seconds"] > 0, created
    host = re.match(r"^sc://([^:/]+):\d+$", created["endpoint"]).group(1)
    assert host == f"{TEAM}-dev-local.example.team", created

    cluster = wait_status(daemon, created["cluster_id"], ("RUNNING",))
    assert cluster["endpoint"] == created["endpoint"]

    answer = run_client("catalog", client_url(daemon, cluster["cluster_id"]), TABLE)
    assert answer["qualified"] == ROWS, answer
    assert answer["unqualified"] == ROWS, answer
    assert answer["current_catalog"] == "pedregal", answer
    assert answer["provider"] == "iceberg", answer
    # the table really lives in the team's warehouse folder ({team} in the template)
    metadata = os.path.join(daemon.warehouse, TEAM, "feature_store", "user_features", "metadata")
    assert any(name.endswith(".metadata.json") for name in os.listdir(metadata)), metadata

    with open(daemon.hosts_file) as hosts:
        entries = [line.split("#")[0].split() for line in hosts if not line.startswith("#")]
    assert ["127.0.0.1", host] in entries, entries
    states, _ = event_states(daemon, cluster["cluster_id"])
    assert states[0] == "PROVISIONING", states
    assert_states_in_order(states, "PROVISIONING", "RUNNING")

    # discovery: the region's own cluster, and the fallback region's for eu-west-1
    here = cs.discovery(daemon, team=TEAM, environment="dev", region="local")
    assert here.status_code == 200, here.text
    assert here.json()["cluster_id"] == cluster["cluster_id"] and not here.json()["fallback"]
    assert here.json()["endpoint"] == cluster["endpoint"], here.json()
    there = cs.discovery(daemon, team=TEAM, environment="dev", region="eu-west-1")
    assert there.status_code == 200, there.text
    assert there.json()["cluster_id"] == cluster["cluster_id"], there.json()
    assert there.json()["fallback"] is True and there.json()["region"] == "local", there.json()


# ---- hot: a warm cluster handed over ---------------------------------------------------------

def test_hot_cluster_is_running_at_once_and_the_pool_refills(cluster_daemon):
    """With one warm small cluster, POST answers RUNNING; the team's catalogs come from the
    gateway's per-session settings (the warm server started without them); a new warm
    cluster replaces the one handed over."""
    daemon = cluster_daemon(warm=1, pool_cores=SMALL_CORES)
    warm = helpers.wait_until(lambda: running_warm_clusters(daemon), START_TIMEOUT,
                              interval=0.5, what="the hot pool to hold a RUNNING cluster")
    listed = cs.list_clusters(daemon)
    assert listed.status_code == 200 and listed.json()["clusters"] == [], \
        f"a warm cluster is visible: {listed.text}"

    started = time.monotonic()
    created = create_cluster(daemon)
    answered = time.monotonic() - started
    assert created["status"] == "RUNNING", created
    assert answered < 5.0, f"a hot create took {answered:.2f} s"
    assert created_total(daemon, "hot") == 1 and created_total(daemon, "cold") == 0

    answer = run_client("catalog", client_url(daemon, created["cluster_id"]), TABLE)
    assert answer["qualified"] == ROWS, answer
    assert answer["unqualified"] == ROWS, answer
    assert answer["default_catalog"] == "pedregal", answer
    metadata = os.path.join(daemon.warehouse, TEAM, "feature_store", "user_features", "metadata")
    assert os.path.isdir(metadata), f"the table is not in the team's warehouse: {metadata}"

    refilled = helpers.wait_until(
        lambda: [cid for cid in running_warm_clusters(daemon) if cid not in warm],
        START_TIMEOUT, interval=0.5, what="the hot pool to refill")
    assert created["cluster_id"] not in refilled
    states, events = event_states(daemon, created["cluster_id"])
    assert states[0] == "RUNNING" and "PROVISIONING" not in states, events


# ---- ttl expiry and delete with a session open -----------------------------------------------

def assert_session_refused(result, *phrases):
    """The held session's second query failed with a gRPC status message (the gateway's, not
    pyspark's wrapping text) that says the cluster was terminated and why."""
    after = result["after"]
    assert after["status"] != "OK", f"the query ran on an ended cluster: {result}"
    for phrase in ("terminated",) + phrases:
        assert phrase in after["details"], f"'{phrase}' is not in the gRPC message: {after}"


def test_ttl_expiry_ends_an_open_session_with_a_clear_error(cluster_daemon):
    """A session is open when the ttl (30s) runs out: the reaper ends the cluster, the
    session's next query fails saying why, and nothing of the cluster is left.  A cold start
    can take longer than 30 s, so the cluster starts with 1h and POST /ttl sets 30s (from
    now) once the session is open."""
    daemon = cluster_daemon()
    cluster = start_running_cluster(daemon, ttl="1h")
    ref = backend_ref(daemon, cluster["cluster_id"])
    assert cluster_processes(daemon, ref), "no process of the running cluster is visible"
    session = hold_session(daemon, cluster["cluster_id"])
    try:
        shortened = cs.set_ttl(daemon, cluster["cluster_id"], "30s")
        assert shortened.status_code == 200, shortened.text
        assert cs.seconds_until(shortened.json()["expires_at"]) <= 31, shortened.text
        wait_status(daemon, cluster["cluster_id"], ("TERMINATED",), timeout=30 + STOP_TIMEOUT)
    finally:
        result = release_session(session)
    assert_session_refused(result, "ttl", "expired")
    states, events = event_states(daemon, cluster["cluster_id"])
    assert_states_in_order(states, "RUNNING", "TERMINATING", "TERMINATED")
    terminating = events[states.index("TERMINATING")]
    assert "ttl" in (terminating.get("reason") or ""), events
    assert_no_cluster_processes(daemon, ref, f"expired cluster {cluster['cluster_id']}")


def test_delete_ends_an_open_session_with_who_deleted_it(cluster_daemon):
    """DELETE while a session is open: 202 TERMINATING, then TERMINATED; the session's next
    query fails naming who deleted the cluster, and nothing of the cluster is left."""
    daemon = cluster_daemon()
    cluster = start_running_cluster(daemon)
    ref = backend_ref(daemon, cluster["cluster_id"])
    assert cluster_processes(daemon, ref), "no process of the running cluster is visible"
    session = hold_session(daemon, cluster["cluster_id"])
    try:
        deleted = cs.delete(daemon, cluster["cluster_id"])
        assert deleted.status_code == 202, deleted.text
        assert deleted.json()["status"] in ("TERMINATING", "TERMINATED"), deleted.text
        wait_status(daemon, cluster["cluster_id"], ("TERMINATED",), timeout=STOP_TIMEOUT)
    finally:
        result = release_session(session)
    assert_session_refused(result, "deleted by alice")
    states, _ = event_states(daemon, cluster["cluster_id"])
    assert_states_in_order(states, "RUNNING", "TERMINATING", "TERMINATED")
    assert_no_cluster_processes(daemon, ref, f"deleted cluster {cluster['cluster_id']}")


# ---- scale up -----------------------------------------------------------------------------------

def test_scale_up_adds_an_executor_that_runs_tasks(cluster_daemon):
    """1 executor -> POST /scale {"executors": 2} -> SCALING -> RUNNING; a query's tasks then
    run in two executors.  A Python UDF's os.getcwd() tells them apart: Spark Connect runs a
    session's Python workers in that session's folder under the executor's own files root,
    so one session sees one directory per executor."""
    daemon = cluster_daemon()
    cluster = start_running_cluster(daemon)
    cluster_id = cluster["cluster_id"]
    assert cluster["executors"] == 1, cluster
    url = client_url(daemon, cluster_id)
    before = run_client("executors", url, 2, 0)
    assert len(before["work_dirs"]) == 1, before

    scaled = cs.scale(daemon, cluster_id, {"executors": 2})
    assert scaled.status_code == 200, scaled.text
    assert scaled.json()["status"] == "SCALING", scaled.text
    after = wait_status(daemon, cluster_id, ("RUNNING",), timeout=SCALE_TIMEOUT)
    assert after["executors"] == 2, after
    states, _ = event_states(daemon, cluster_id)
    assert_states_in_order(states, "RUNNING", "SCALING", "RUNNING")

    answer = run_client("executors", url, 2, 60)
    assert len(answer["work_dirs"]) == 2, answer


# ---- restart --------------------------------------------------------------------------------

def restart_and_adopt(daemon, signum, cluster_id):
    """Stops the daemon with signum, starts it on the same state and waits for the adoption."""
    daemon.send_signal(signum)
    status = daemon.wait_exit()
    assert status == (-signum if signum == signal.SIGKILL else 0), status
    offset = len(daemon.log())
    daemon.start()
    daemon.wait_log(rf"cluster {re.escape(cluster_id)} adopted", timeout=60, offset=offset)


def test_restart_adopts_running_clusters_and_never_leaves_orphans(cluster_daemon):
    """SIGKILL with a RUNNING cluster: the new daemon adopts it (same endpoint, same server, a
    query works).  Then SIGTERM and a start again, and a delete: nothing of it is left."""
    daemon = cluster_daemon()
    cluster = start_running_cluster(daemon)
    cluster_id = cluster["cluster_id"]
    ref = backend_ref(daemon, cluster_id)
    driver_before = store_rows(daemon, "SELECT driver FROM clusters WHERE id = ?", cluster_id)
    processes_before = {pid for pid, _ in cluster_processes(daemon, ref)}
    assert processes_before, "no process of the running cluster is visible"

    restart_and_adopt(daemon, signal.SIGKILL, cluster_id)
    adopted = get_cluster(daemon, cluster_id)
    assert adopted["status"] == "RUNNING", adopted
    assert adopted["endpoint"] == cluster["endpoint"], adopted
    assert store_rows(daemon, "SELECT driver FROM clusters WHERE id = ?",
                      cluster_id) == driver_before
    assert processes_before <= {pid for pid, _ in cluster_processes(daemon, ref)}, \
        "the cluster's processes were restarted, not adopted"
    assert run_client("count", client_url(daemon, cluster_id))["count"] == 10

    restart_and_adopt(daemon, signal.SIGTERM, cluster_id)
    assert get_cluster(daemon, cluster_id)["status"] == "RUNNING"
    assert cs.delete(daemon, cluster_id).status_code == 202
    wait_status(daemon, cluster_id, ("TERMINATED",), timeout=STOP_TIMEOUT)
    assert_no_cluster_processes(daemon, ref, f"deleted cluster {cluster_id}")
    assert not processes_mentioning(daemon.work, exclude=daemon_pids(daemon)), \
        "processes are left in the backend's work directory"
