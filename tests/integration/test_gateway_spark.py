"""test_gateway_spark.py - the Spark Connect gateway in front of several real Spark Connect servers.

Two Spark Connect servers (spark_connect.py: pyspark's own jars, local
mode, 512 MiB heaps) start side by side once per module: server A and
server B.  They share one pre-shared token, because a cluster's endpoints
share the cluster's token.  Every test starts its own daemon (so the
gateway's per-driver session counts start at zero) with these clusters:

    analytics-dev   team analytics   [A]
    platform-dev    team platform    [B]
    shared-dev      team analytics   [A, B]   (session affinity)
    failover-dev    team analytics   [C, A]   (only in the driver-death test,
                                               C is a third server started for it)

Clients are real pyspark processes (spark_apps/gateway_client.py) with
alice's or bob's gateway token in the sc:// string.  Which server a
client's session really ran on comes from the servers' own logs ("Session
with userId: U and sessionId: S"), never from the gateway.

At most three JVMs run at once (A, B and C during the driver-death test).
Without java or pyspark (with grpcio, pandas, pyarrow) the tests skip,
unless SPARKPLANE_REQUIRE_INTEGRATION=1.
"""
import json
import os
import subprocess
import sys
import time

import pytest

import helpers
import spark_connect

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "spark_apps", "gateway_client.py")
CLIENT_TIMEOUT = 180.0
LOG_WAIT = 10.0             # a server writes its log lines asynchronously
MIB = 1024 * 1024
COLLECT_ROWS = 1_000_000    # 136 bytes a row in Arrow: 136 MB through the gateway
SPARK_TOKEN = spark_connect.new_server_token()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Spark Connect servers A and B, started side by side."""
    with spark_connect.running_servers(tmp_path_factory, ["spark-a", "spark-b"],
                                       token=SPARK_TOKEN) as pair:
        yield pair


def base_clusters(server_a, server_b):
    return [
        {"id": "analytics-dev", "team": "analytics", "environment": "dev",
         "endpoints": [server_a.address], "token": SPARK_TOKEN},
        {"id": "platform-dev", "team": "platform", "environment": "dev",
         "endpoints": [server_b.address], "token": SPARK_TOKEN},
        {"id": "shared-dev", "team": "analytics", "environment": "shared",
         "endpoints": [server_a.address, server_b.address], "token": SPARK_TOKEN},
    ]


@pytest.fixture
def start_gateway(daemon_factory, servers):
    """start(extra_clusters=(), env=None, **gateway options) -> (daemon, gateway port)."""
    def start(extra_clusters=(), env=None, **gateway_options):
        for server in servers:    # pyspark would retry a dead driver for ten minutes
            if not server.alive():
                pytest.fail(f"{server.name} died earlier:\n{server.log()[-3000:]}")
        port = helpers.free_port()
        clusters = base_clusters(*servers) + list(extra_clusters)
        daemon = daemon_factory(env=env, configure=lambda cfg: spark_connect.configure_gateway(
            cfg, port, clusters, **gateway_options))
        if not helpers.port_accepts(port):
            pytest.fail(f"the daemon does not listen on gateway port {port}\n"
                        + daemon.log_tail(20))
        return daemon, port
    return start


@pytest.fixture
def gateway(start_gateway):
    return start_gateway()


def alice_url(daemon, port, cluster):
    return spark_connect.connect_url(port, daemon.token, cluster, user="alice")


def bob_url(daemon, port, cluster):
    return spark_connect.connect_url(port, daemon.token_for("bob"), cluster, user="bob")


def start_client(mode, *args):
    return subprocess.Popen([sys.executable, CLIENT, mode, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_client(process):
    try:
        out, err = process.communicate(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"client did not finish within {CLIENT_TIMEOUT}s:\n{err[-4000:]}")
    finally:
        if process.poll() is None:      # interrupted: no orphan clients
            process.kill()
            process.wait()
    assert process.returncode == 0, f"client failed:\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


def run_client(mode, *args):
    return finish_client(start_client(mode, *args))


def wait_seen(server, session_id):
    """Waits until server logged session_id; returns the users it logged for it."""
    return helpers.wait_until(lambda: server.logged_users(session_id), LOG_WAIT,
                              what=f"session {session_id} in the log of {server.name}")


def proc_status(pid, field):
    """A /proc/<pid>/status field in bytes (VmHWM, VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def response_bytes(daemon):
    """DATA bytes the gateway passed from Spark servers to clients (its own counter)."""
    return helpers.metric_value(daemon.metrics(), "sparkplane_gateway_bytes_total",
                                direction="response")


# ---- each team on its own server ---------------------------------------------------------

EXPECTED_FRAMES = {"joined": [["data", 1], ["infra", 1], ["ops", 1]],
                   "evens": [[k, 100] for k in range(5)], "oldest": "di", "sql": 5050,
                   "round_trip": 4}


def test_each_team_works_on_its_own_server(gateway, servers):
    """DataFrames, SQL, pandas in and out: right answers, and each on its team's server."""
    daemon, port = gateway
    server_a, server_b = servers
    analytics = start_client("frames", alice_url(daemon, port, "analytics-dev"))
    platform = start_client("frames", bob_url(daemon, port, "platform-dev"))
    alice, bob = finish_client(analytics), finish_client(platform)
    for answer in (alice, bob):
        assert {key: answer[key] for key in EXPECTED_FRAMES} == EXPECTED_FRAMES, answer
    assert wait_seen(server_a, alice["session_id"]) == {"alice"}
    assert wait_seen(server_b, bob["session_id"]) == {"bob"}
    assert not server_b.saw_session(alice["session_id"])
    assert not server_a.saw_session(bob["session_id"])


def test_the_other_teams_cluster_is_refused_before_spark(gateway, servers):
    """alice (analytics) asking for platform-dev gets NOT_FOUND, as if it did not exist; B never
    hears of it."""
    daemon, port = gateway
    _, server_b = servers
    url = alice_url(daemon, port, "platform-dev")
    answer = run_client("probe", url)[url]
    assert answer["status"] == "NOT_FOUND", answer
    assert "no cluster 'platform-dev'" in answer["message"], answer
    assert "team" not in answer["message"], answer
    if answer["session_id"]:
        assert not server_b.saw_session(answer["session_id"])


# ---- a big result --------------------------------------------------------------------------

def test_a_big_collect_streams_through_without_piling_up(start_gateway, servers):
    """toPandas of 136 MB of Arrow arrives whole, and the gateway never holds it.

    The client checks row count, the sum of ids and a CRC32 sum of every
    string against the same aggregates computed by Spark.  Spark's default
    Arrow batches (spark.connect.grpc.arrow.maxBatchSize, 4 MiB) and
    pyspark's 128 MiB receive limit need no change.

    Why the daemon's memory stays bounded: flow control is end to end.  The
    gateway grants the Spark server at most a 1 MiB stream window and a
    16 MiB connection window and reopens them only as the client takes the
    bytes, so at most ~16 MiB of response (plus nghttp2's and libevent's
    per-frame copies) can sit in the daemon at any time.  The peak resident
    size (VmHWM) may therefore grow by well under 64 MiB while 136 MB pass;
    a gateway that buffered the result would grow by at least 136 MB.
    ASan keeps freed blocks in a quarantine (256 MiB by default) that would
    count as resident; this daemon runs with a 16 MiB quarantine so the
    figure measures what the gateway holds, not what ASan delays reusing.
    """
    daemon, port = start_gateway(env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                                      "quarantine_size_mb=16"})
    server_a, _ = servers
    baseline_peak = proc_status(daemon.pid, "VmHWM")
    read_before = response_bytes(daemon)
    answer = run_client("collect", alice_url(daemon, port, "analytics-dev"), str(COLLECT_ROWS))
    peak = proc_status(daemon.pid, "VmHWM")
    read = response_bytes(daemon) - read_before
    print(f"\n[big collect] {answer['bytes'] / 1e6:.1f} MB of rows in {answer['seconds']:.1f}s; "
          f"daemon read {read / 1e6:.1f} MB; VmHWM {baseline_peak / MIB:.1f} -> "
          f"{peak / MIB:.1f} MiB")
    assert answer["rows"] == answer["expected_rows"] == COLLECT_ROWS, answer
    assert answer["ids"] == answer["expected_ids"], answer
    assert answer["crcs"] == answer["expected_crcs"], answer
    assert answer["bytes"] == answer["expected_chars"] + 8 * COLLECT_ROWS >= 100 * 10**6
    assert read >= 100 * 10**6, f"only {read} bytes went through the daemon"
    assert peak - baseline_peak < 64 * MIB, \
        f"the daemon's peak RSS grew from {baseline_peak} to {peak} bytes"
    assert wait_seen(server_a, answer["session_id"]) == {"alice"}


# ---- interrupting, several sessions -------------------------------------------------------

def test_interrupt_all_stops_a_long_query_and_the_session_goes_on(gateway):
    """interruptAll from another thread ends a query meant to run for hours; the session works."""
    daemon, port = gateway
    answer = run_client("interrupt", alice_url(daemon, port, "analytics-dev"))
    print(f"\n[interrupt] the query failed {answer['seconds_to_fail']}s after interruptAll")
    assert answer["interrupted"], answer          # interruptAll named the running operation
    assert not answer["still_running"], answer
    assert answer["error"] is not None, answer
    text = answer["error"]["message"].lower()
    assert "cancel" in text or "interrupt" in text, answer
    assert answer["after"] == 7, answer


def test_two_sessions_of_one_user_keep_their_own_views(gateway, servers):
    """Two concurrent SparkSessions of alice: each sees only its own temp view."""
    daemon, port = gateway
    server_a, _ = servers
    answer = run_client("two_sessions", alice_url(daemon, port, "analytics-dev"))
    first, second = answer["session_ids"]
    assert first != second
    assert answer["counts"] == {"first": [10] * 5, "second": [1000] * 5}, answer
    assert wait_seen(server_a, first) == {"alice"}
    assert wait_seen(server_a, second) == {"alice"}


# ---- several drivers per cluster (core/gateway.c: affinity, failover, idle) ----------------

def test_new_sessions_spread_and_each_stays_on_its_driver(gateway, servers):
    """shared-dev has drivers A and B: the 1st session lands on A, the 2nd on B, and stay there."""
    daemon, port = gateway
    server_a, server_b = servers
    answer = run_client("affinity", alice_url(daemon, port, "shared-dev"))
    first, second = answer["session_ids"]
    assert answer["sums"] == {"first": [45] + [sum(range(10 + r)) for r in range(6)],
                              "second": [190] + [sum(range(20 + r)) for r in range(6)]}, answer
    assert wait_seen(server_a, first) == {"alice"}
    assert wait_seen(server_b, second) == {"alice"}
    assert not server_b.saw_session(first), "session 1 also reached B"
    assert not server_a.saw_session(second), "session 2 also reached A"


def test_a_dead_driver_is_unavailable_and_a_new_session_moves_on(
        start_gateway, servers, tmp_path_factory):
    """failover-dev is [C, A]; C dies between two queries of a session on C.

    The session's next call gets UNAVAILABLE with a message naming the
    session or the driver; a new SparkSession works, on A.
    """
    server_a, _ = servers
    with spark_connect.running_server(tmp_path_factory, "spark-c", token=SPARK_TOKEN) as server_c:
        failover = {"id": "failover-dev", "team": "analytics", "environment": "failover",
                    "endpoints": [server_c.address, server_a.address], "token": SPARK_TOKEN}
        daemon, port = start_gateway(extra_clusters=[failover])
        client = start_client("failover", alice_url(daemon, port, "failover-dev"))
        try:
            ready = json.loads(client.stdout.readline() or "{}")
            assert ready.get("phase") == "ready", ready
            old_session = ready["session_id"]
            assert wait_seen(server_c, old_session) == {"alice"}
            assert not server_a.saw_session(old_session)
            server_c.kill()
            client.stdin.write("go\n")
            client.stdin.flush()
            answer = finish_client(client)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    after = answer["old_after_kill"]
    print(f"\n[driver death] {after['status']}: {after['details']}")
    assert after["status"] == "UNAVAILABLE", answer
    assert "session" in after["details"].lower() or server_c.address in after["details"], answer
    assert answer["new_count"] == 8, answer
    assert wait_seen(server_a, answer["new_session_id"]) == {"alice"}
    assert not server_c.saw_session(answer["new_session_id"])


def test_an_idle_session_survives_the_idle_timeout_on_its_driver(start_gateway, servers):
    """gateway.idle_timeout 2s closes a quiet client connection; the session goes on, same driver.

    The client runs a query, then stays silent until the gateway has closed
    its connection (the connections gauge falls to 0 while the client lives),
    then queries again.  pyspark reconnects by itself and raises if its
    server-side session id changes, so a second answer means the session
    stayed on its driver.  shared-dev has two drivers: a gateway that forgot
    the session would pick the idle one (B) for the reconnected client.
    """
    daemon, port = start_gateway(idle_timeout="2s")
    server_a, server_b = servers

    def connections():
        return helpers.metric_value(daemon.metrics(), "sparkplane_gateway_connections")

    client = start_client("idle", alice_url(daemon, port, "shared-dev"))
    try:
        parked = json.loads(client.stdout.readline() or "{}")
        assert parked.get("phase") == "idle", parked
        started = time.monotonic()
        helpers.wait_until(lambda: connections() == 0, 30,
                           what="the gateway closing the idle client connection")
        print(f"\n[idle] the gateway closed the quiet connection after "
              f"{time.monotonic() - started:.1f}s")
        client.stdin.write("go\n")
        client.stdin.flush()
        answer = finish_client(client)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert answer["before"] == 11, answer
    assert answer["after"] == {"status": "OK", "count": 12}, answer
    assert wait_seen(server_a, answer["session_id"]) == {"alice"}
    assert not server_b.saw_session(answer["session_id"])
