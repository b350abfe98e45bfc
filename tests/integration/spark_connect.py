"""spark_connect.py - real Spark Connect servers and gateway clusters for the integration tests.

A SparkConnectServer is one `spark-submit --class SparkConnectServer`
process from the pyspark package of this Python (local mode, 512 MiB
driver heap, no UI, two shuffle partitions) in its own process group,
listening on a free loopback port with its own pre-shared token
(spark.connect.authenticate.token).  start() only launches it; ready()
polls its port, so several servers start side by side and the JVMs' start-up
overlaps.  running_servers() is the context manager test modules build
their fixtures on; everything it started is killed (by process group) on
the way out, even when a test killed a server itself.

Each server logs "Session with userId: U and sessionId: S" whenever a
request reaches a session; logged_users()/saw_session() read that, so a
test proves which server a client's session really ran on.

clusters_yaml() writes the gateway's `clusters:` drop-in (a list of maps,
beyond helpers.to_yaml), and connect_url() the sc:// string a pyspark
client uses: the token and user_id as sc:// parameters, the cluster as the
x-sparkplane-cluster-id parameter, which pyspark sends as gRPC metadata.

Without java, pyspark, grpcio, pandas or pyarrow the callers skip, unless
SPARKPLANE_REQUIRE_INTEGRATION=1 (then they fail).
"""
import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess

import pytest

import helpers

START_TIMEOUT = 180.0       # a cold JVM on two busy cores
STOP_TIMEOUT = 30.0
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def skip_or_fail(message):
    if os.environ.get("SPARKPLANE_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message + " (SPARKPLANE_REQUIRE_INTEGRATION=1, so this fails)", pytrace=False)
    pytest.skip(message)


def spark_home():
    """The pyspark package folder of this Python, after checking what client and server need."""
    if shutil.which("java") is None:
        skip_or_fail("java is not installed")
    try:
        import grpc  # noqa: F401
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
        import pyspark
    except ImportError as error:
        skip_or_fail(f"the Spark Connect client needs {error.name}")
    home = os.path.dirname(pyspark.__file__)
    jars = os.path.join(home, "jars")
    if not any(name.startswith("spark-connect_") for name in os.listdir(jars)):
        skip_or_fail(f"no spark-connect jar in {jars}")
    return home


def new_server_token():
    """A Spark server's own pre-shared token; one cluster's endpoints must share one."""
    return "spark-server-" + helpers.secrets.token_hex(8)


class SparkConnectServer:
    """One Spark Connect server process: its port, token, log and process group."""

    def __init__(self, workdir, name="spark-connect", memory="512m", conf=None, token=None):
        self.workdir = str(workdir)
        self.name = name
        self.memory = memory
        self.conf = dict(conf or {})
        self.port = helpers.free_port()
        self.token = token or new_server_token()
        self.log_path = pathlib.Path(self.workdir) / "server.log"
        self.process = None
        self._log_file = None

    @property
    def address(self):
        """host:port as a gateway cluster endpoint names it."""
        return f"127.0.0.1:{self.port}"

    def start(self):
        """Launches the JVM without waiting for it (see ready())."""
        home = spark_home()
        os.makedirs(self.workdir, exist_ok=True)
        conf = {"spark.connect.grpc.binding.port": str(self.port),
                "spark.connect.authenticate.token": self.token,
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "2",
                **self.conf}
        command = [os.path.join(home, "bin", "spark-submit"), "--class", SERVER_CLASS,
                   "--driver-memory", self.memory]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        command.append("spark-internal")
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, SPARK_HOME=home, SPARK_LOCAL_IP="127.0.0.1")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                        stderr=self._log_file, env=env, cwd=self.workdir,
                                        start_new_session=True)
        return self

    def ready(self, timeout=START_TIMEOUT):
        """Waits until the server accepts connections; fails with its log if it died."""
        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n"
                                     + self.log()[-3000:])
            return helpers.port_accepts(self.port)
        helpers.wait_until(up, timeout, interval=0.5, what=f"the port of {self.name}")
        return self

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL to the whole process group: the driver dies the way a crashed node does."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        """SIGTERM to the process group, SIGKILL if it lingers; closes the log."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as log_file:
                return log_file.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def logged_users(self, session_id):
        """The user ids this server logged for one client session (empty: never reached it).

        current_user() is no help (Spark Connect 4.0 answers the server's OS
        user), but the server logs "Session with userId: U and sessionId: S"
        whenever a request reaches a session, and sessions are keyed by both.
        """
        pattern = re.compile(r"userId: (\S+) and sessionId: " + re.escape(session_id))
        return set(pattern.findall(self.log()))

    def saw_session(self, session_id):
        return bool(self.logged_users(session_id))


@contextlib.contextmanager
def running_servers(tmp_path_factory, names, **options):
    """Starts one server per name side by side, yields them once all answer, stops them all.

    options go to SparkConnectServer (memory=, conf=, token=: pass one token
    when the servers serve one cluster).  Mind the two cores:
    the suite never runs more than three JVMs at once.
    """
    servers = [SparkConnectServer(tmp_path_factory.mktemp(name), name=name, **options)
               for name in names]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def running_server(tmp_path_factory, name="spark-connect", **options):
    """One server (see running_servers)."""
    with running_servers(tmp_path_factory, [name], **options) as servers:
        yield servers[0]


# ---- the gateway side --------------------------------------------------------------------

def clusters_yaml(clusters):
    """The `clusters:` drop-in for clusters given as dicts.

    Each dict: id, team, environment, endpoints (a list of host:port) and
    optionally token (the Spark servers' own token, sent upstream).
    """
    lines = ["clusters:"]
    for cluster in clusters:
        lines += [f"  - id: {cluster['id']}", f"    team: {cluster['team']}",
                  f"    environment: {cluster['environment']}",
                  f"    endpoints: {json.dumps(list(cluster['endpoints']))}"]
        if cluster.get("token"):
            lines.append(f"    token: {json.dumps(cluster['token'])}")
    return "\n".join(lines) + "\n"


def configure_gateway(cfg, gateway_port, clusters, **gateway_options):
    """Edits a daemon config dict: the gateway on gateway_port, clusters in conf.d/."""
    cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team",
                      "max_concurrent_streams": 50, **gateway_options}
    workdir = os.path.dirname(cfg["state"]["directory"])
    os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
    with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
        out.write(clusters_yaml(clusters))


def connect_url(port, token, cluster=None, user="alice"):
    """The sc:// string of a pyspark client of the gateway on port."""
    text = f"sc://localhost:{port}/;token={token};user_id={user}"
    return text + (f";x-sparkplane-cluster-id={cluster}" if cluster else "")
