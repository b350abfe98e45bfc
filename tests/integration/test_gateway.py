"""test_gateway.py - the Spark Connect gateway with a real Spark Connect server and real pyspark.

One Spark Connect server (pyspark's own jars, local mode, 512 MiB heap)
starts per module with a server token (spark.connect.authenticate.token).
The daemon runs its gateway on h2c with two static clusters pointing at
that server: analytics-dev (team analytics, with the server's token) and
platform-dev (team platform).  Clients are real pyspark processes
(spark_apps/gateway_client.py).

How a real client gets its token to an h2c gateway: pyspark 4 accepts
`sc://localhost:<port>/;token=...` without TLS because gRPC allows call
credentials on local channel credentials for localhost; any other host
needs TLS (next step).  The cluster is chosen with the sc:// parameter
x-sparkplane-cluster-id, which pyspark sends as gRPC metadata.

Without java or pyspark (with grpcio, pandas, pyarrow) the tests skip,
unless SPARKPLANE_REQUIRE_INTEGRATION=1.
"""
import json
import os
import re
import subprocess
import sys

import pytest

import helpers
import spark_connect

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "spark_apps", "gateway_client.py")
CLIENT_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory):
    """A Spark Connect server: (port, its token, its log file)."""
    with spark_connect.running_server(tmp_path_factory) as server:
        yield server.port, server.token, server.log_path


def clusters_yaml(spark_port, spark_token, extra=()):
    """The `clusters:` block (lists of maps are beyond helpers.to_yaml)."""
    clusters = [("analytics-dev", "analytics", "dev", f"127.0.0.1:{spark_port}", spark_token),
                ("platform-dev", "platform", "dev", f"127.0.0.1:{spark_port}", spark_token)]
    clusters += list(extra)
    lines = ["clusters:"]
    for cluster_id, team, environment, endpoint, token in clusters:
        lines += [f"  - id: {cluster_id}", f"    team: {team}", f"    environment: {environment}",
                  f"    endpoints: [{json.dumps(endpoint)}]"]
        if token:
            lines.append(f"    token: {json.dumps(token)}")
    return "\n".join(lines) + "\n"


def start_gateway(daemon_factory, spark_server, **gateway_options):
    """A daemon with the gateway on; returns (daemon, gateway port)."""
    spark_port, spark_token, _ = spark_server
    gateway_port = helpers.free_port()
    dead_port = helpers.free_port()     # nothing listens there

    def configure(cfg):
        cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team",
                          "max_concurrent_streams": 50, **gateway_options}
        # clusters (a list of maps) go in a conf.d drop-in beside the main file
        workdir = os.path.dirname(cfg["state"]["directory"])
        os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
        extra = [("down-dev", "analytics", "staging", f"127.0.0.1:{dead_port}", None)]
        with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
            out.write(clusters_yaml(spark_port, spark_token, extra))

    daemon = daemon_factory(configure=configure)
    if not helpers.port_accepts(gateway_port):
        pytest.fail(f"the daemon does not listen on gateway.listen 127.0.0.1:{gateway_port} "
                    "(is the gateway wired into core/daemon.c?)\n" + daemon.log_tail(20))
    return daemon, gateway_port


@pytest.fixture
def gateway(daemon_factory, spark_server):
    """The gateway with the default gateway.user_id_policy (replace)."""
    return start_gateway(daemon_factory, spark_server)


@pytest.fixture
def gateway_deny(daemon_factory, spark_server):
    """The gateway with gateway.user_id_policy: deny."""
    return start_gateway(daemon_factory, spark_server, user_id_policy="deny")


def run_client(mode, *urls):
    result = subprocess.run([sys.executable, CLIENT, mode, *urls], capture_output=True,
                            text=True, timeout=CLIENT_TIMEOUT)
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def url(port, token, cluster=None, user="alice"):
    text = f"sc://localhost:{port}/;token={token};user_id={user}"
    return text + (f";x-sparkplane-cluster-id={cluster}" if cluster else "")


def test_queries_run_through_the_gateway(gateway):
    daemon, port = gateway
    answers = run_client("queries", url(port, daemon.token, "analytics-dev"))
    assert answers == {"count": 100, "filtered": 10, "groups": [[0, 334], [1, 333], [2, 333]],
                       "sql": 42, "join": 25}
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_gateway_streams_total",
                                cluster="analytics-dev", grpc_status="0") >= 5


def test_the_client_token_never_reaches_spark(gateway, spark_server):
    daemon, port = gateway
    spark_port, _, _ = spark_server
    # The Spark server only knows its own token: alice's token straight to it is refused,
    # so the queries above can only have worked because the gateway swapped tokens.
    direct = run_client("probe", f"sc://localhost:{spark_port}/;token={daemon.token}")
    assert list(direct.values())[0]["status"] == "UNAUTHENTICATED"


def test_refusals_are_grpc_statuses(gateway):
    daemon, port = gateway
    wrong_token = url(port, "not-a-token", "analytics-dev")
    unknown = url(port, daemon.token, "no-such-cluster")
    other_team = url(port, daemon.token, "platform-dev")
    by_host = f"sc://localhost:{port}/;token={daemon.token}"
    answers = run_client("probe", wrong_token, unknown, other_team, by_host)
    assert answers[wrong_token]["status"] == "UNAUTHENTICATED"
    assert answers[unknown]["status"] == "NOT_FOUND"
    assert "no-such-cluster" in answers[unknown]["message"]
    # another team's cluster reads exactly like one that does not exist
    assert answers[other_team]["status"] == "NOT_FOUND"
    assert "no cluster 'platform-dev'" in answers[other_team]["message"]
    assert "team" not in answers[other_team]["message"]
    assert "no cluster 'no-such-cluster'" in answers[unknown]["message"]
    assert answers[by_host]["status"] == "NOT_FOUND"
    down = run_client("raw", str(port), daemon.token, "down-dev")
    assert down["status"] == "UNAVAILABLE", down
    assert "127.0.0.1:" in down["message"] and "unreachable" in down["message"], down
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_gateway_streams_total",
                                grpc_status="16") >= 1
    # a refused caller's stream is not counted under the cluster it asked for
    assert helpers.metric_value(samples, "sparkplane_gateway_streams_total",
                                cluster="platform-dev", grpc_status="5") == 0
    assert helpers.metric_value(samples, "sparkplane_auth_decisions_total", transport="gateway",
                                decision="deny", reason="other_team") >= 1
    assert helpers.metric_value(samples, "sparkplane_gateway_connections") == 0


def test_other_team_member_uses_own_cluster(gateway):
    daemon, port = gateway
    answers = run_client("probe", url(port, daemon.token_for("bob"), "platform-dev", user="bob"))
    assert list(answers.values())[0]["status"] == "OK"


def server_users(log_path, session_id):
    """The user ids the Spark Connect server logged for one client session.

    current_user() is no help here (Spark Connect 4.0 answers the server's OS
    user), but the server logs "Session with userId: U and sessionId: S"
    whenever a request reaches a session, and sessions are keyed by both.
    """
    pattern = re.compile(r"userId: (\S+) and sessionId: " + re.escape(session_id))
    return set(pattern.findall(log_path.read_text(errors="replace")))


def test_a_foreign_user_id_is_replaced_by_the_caller(gateway, spark_server):
    daemon, port = gateway
    _, _, log_path = spark_server
    answers = run_client("probe", url(port, daemon.token, "analytics-dev", user="mallory"))
    answer = list(answers.values())[0]
    assert answer["status"] == "OK", answer
    assert answer["session_id"]
    # alice's token, mallory's user_id: the server only ever saw alice.
    helpers.wait_until(lambda: server_users(log_path, answer["session_id"]), 10.0,
                       what="the server's session log lines")
    assert server_users(log_path, answer["session_id"]) == {"alice"}


def test_a_foreign_user_id_is_refused_under_deny(gateway_deny, spark_server):
    daemon, port = gateway_deny
    _, _, log_path = spark_server
    answers = run_client("probe", url(port, daemon.token, "analytics-dev", user="mallory"))
    answer = list(answers.values())[0]
    assert answer["status"] == "PERMISSION_DENIED", answer
    assert "mallory" in answer["message"] and "alice" in answer["message"], answer
    if answer["session_id"]:
        assert server_users(log_path, answer["session_id"]) == set()
    samples = daemon.metrics()
    assert helpers.metric_value(samples, "sparkplane_gateway_streams_total",
                                cluster="analytics-dev", grpc_status="7") >= 1


def test_the_callers_own_user_id_works_under_deny(gateway_deny, spark_server):
    daemon, port = gateway_deny
    _, _, log_path = spark_server
    answers = run_client("probe", url(port, daemon.token, "analytics-dev", user="alice"),
                         url(port, daemon.token_for("bob"), "platform-dev", user="bob"))
    for answer in answers.values():
        assert answer["status"] == "OK", answer
    alice, bob = answers.values()
    helpers.wait_until(lambda: server_users(log_path, bob["session_id"]), 10.0,
                       what="the server's session log lines")
    assert server_users(log_path, alice["session_id"]) == {"alice"}
    assert server_users(log_path, bob["session_id"]) == {"bob"}


def test_a_rewritten_request_larger_than_the_window_streams_through(gateway, spark_server):
    daemon, port = gateway
    _, _, log_path = spark_server
    # One ExecutePlan message of ~6 MiB: the rewritten prefix goes first, the rest streams
    # through 1 MiB stream windows the client only gets back as upstream takes the bytes.
    answer = run_client("big", url(port, daemon.token, "analytics-dev", user="mallory"))
    assert answer["total"] == 60000 * 59999 // 2 and answer["pad"] == 60000 * 100, answer
    assert server_users(log_path, answer["session_id"]) == {"alice"}


def test_a_malformed_first_message_is_invalid_argument(gateway):
    daemon, port = gateway
    # field 1 (session_id) claims 100 bytes, the message has 2
    answer = run_client("raw", str(port), daemon.token, "analytics-dev", "0a64")
    assert answer["status"] == "INVALID_ARGUMENT", answer
    assert "session_id" in answer["message"], answer
