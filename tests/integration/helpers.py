"""helpers.py - what the integration tests share: the built daemon and ways to talk to it.

A Daemon is one real sparkplaned process started from the build tree with
a config written into a private temp directory: a listen address on a
free loopback port, a state directory, the built auth_token plugin and a
tokens file holding the SHA-256 of two known tokens (two teams).  Its
stderr goes to a file the tests read (Daemon.log()); every wait is a
bounded poll, never a fixed sleep.

Configs are Python dicts written out as block YAML by to_yaml(), so a
test changes one key (cfg["server"]["listen"] = [...]) and reloads.
"""
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time

import requests

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
START_TIMEOUT = 20.0    # ASan builds start slower; a healthy daemon answers in well under 1s
STOP_TIMEOUT = 20.0
HTTP_TIMEOUT = 5.0


# ---- the build tree -------------------------------------------------------------------------

def _looks_like_builddir(path):
    return os.path.isfile(os.path.join(path, "core", "sparkplaned"))


def find_builddir():
    """SPARKPLANE_BUILDDIR, abs_top_builddir, or a build dir near the source tree."""
    for var in ("SPARKPLANE_BUILDDIR", "abs_top_builddir"):
        path = os.environ.get(var)
        if path:
            if not _looks_like_builddir(path):
                raise RuntimeError(f"{var}={path}: no core/sparkplaned there (run make first)")
            return os.path.abspath(path)
    srcdir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    candidates = [os.getcwd(), srcdir, os.path.join(srcdir, "build-asan"),
                  os.path.join(srcdir, "build-plain"), os.path.join(srcdir, "build")]
    for path in candidates:
        if _looks_like_builddir(path):
            return os.path.abspath(path)
    raise RuntimeError("cannot find a build directory with core/sparkplaned; "
                       "set SPARKPLANE_BUILDDIR")


def daemon_binary(builddir):
    return os.path.join(builddir, "core", "sparkplaned")


def plugin_directory(builddir):
    """Where libtool leaves the built plugin .so files."""
    path = os.path.join(builddir, "plugins", "auth_token", ".libs")
    if not os.path.isfile(os.path.join(path, "auth_token.so")):
        raise RuntimeError(f"{path}/auth_token.so is missing (make plugins/auth_token/auth_token.la)")
    return path


def sanitizer_env(extra=None):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.pop("NOTIFY_SOCKET", None)
    if extra:
        env.update(extra)
    return env


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or None."""
    for line in text.splitlines():
        if any(marker in line for marker in SANITIZER_MARKERS):
            return line
    return None


# ---- YAML, tokens, ports --------------------------------------------------------------------

def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))      # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent=0):
    """Block YAML for nested dicts/lists of scalars (what the daemon's schema needs)."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2))
            elif isinstance(item, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                raise ValueError("lists of collections are not needed by the schema")
            lines.append(f"{pad}- {_yaml_scalar(item)}")
    return "\n".join(lines)


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_tokens(path, tokens):
    """tokens: {token: (principal, role, [teams])} -> the auth_token file format."""
    with open(path, "w") as out:
        out.write("# written by the integration tests\n\n")
        for token, (principal, role, teams) in tokens.items():
            out.write(f"{sha256_hex(token)} {principal} {role} {','.join(teams)}\n")


def make_tokens():
    """Two callers in two teams; fresh random tokens for every daemon."""
    return {
        "alice-" + secrets.token_hex(16): ("alice", "member", ["analytics", "ml"]),
        "bob-" + secrets.token_hex(16): ("bob", "admin", ["platform"]),
    }


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something true; raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except (OSError, requests.RequestException) as error:
            last = error
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: {error}")
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# ---- HTTP ----------------------------------------------------------------------------------

def http(method, url, **kwargs):
    """requests.request without the environment's proxies (*_proxy must not catch 127.0.0.1)."""
    kwargs.setdefault("timeout", HTTP_TIMEOUT)
    with requests.Session() as session:
        session.trust_env = False
        return session.request(method, url, **kwargs)


# ---- raw HTTP ------------------------------------------------------------------------------

def raw_exchange(port, data, timeout=5.0, chunks=None):
    """Sends data (bytes) on a fresh connection and reads until the server closes or timeout.

    Returns (bytes received, seconds until the first byte or None).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()
        for piece in chunks or [data]:
            sock.sendall(piece)
        return read_until_close(sock, timeout, started)


def read_until_close(sock, timeout, started=None):
    started = started or time.monotonic()
    deadline = started + timeout
    received = b""
    first_byte = None
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        if first_byte is None:
            first_byte = time.monotonic() - started
        received += data
    return received, first_byte


def parse_response(data):
    """(status, {lower-case header: value}, body bytes) of the first response in data."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete HTTP response in {data[:300]!r}")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not match:
        raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        body = body[:int(length)]
    return int(match.group(1)), headers, body


# ---- metrics --------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> list of (name, {label: value}, float)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise AssertionError(f"unparseable metrics line: {line!r}")
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def metric_value(samples, name, **labels):
    """Sum of the samples called name whose labels include labels (0 when none)."""
    total = 0.0
    for sample_name, sample_labels, value in samples:
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            total += value
    return total


# ---- the daemon -----------------------------------------------------------------------------

class Daemon:
    """One sparkplaned process and the files it was started with."""

    def __init__(self, builddir, workdir, config=None, tokens=None, env=None):
        self.builddir = builddir
        self.binary = daemon_binary(builddir)
        self.workdir = str(workdir)
        self.tokens = tokens or make_tokens()
        self.tokens_path = os.path.join(self.workdir, "tokens")
        self.config_path = os.path.join(self.workdir, "sparkplane.yaml")
        self.log_path = os.path.join(self.workdir, "sparkplaned.log")
        self.port = free_port()
        self.config = config if config is not None else self.default_config()
        self.env = env or {}
        self.process = None
        self.returncode = None
        write_tokens(self.tokens_path, self.tokens)

    def default_config(self):
        return {
            "server": {
                "listen": [f"127.0.0.1:{self.port}"],
                "request_timeout": "5s",
                "drain_timeout": "3s",
            },
            "log": {"level": "info", "format": "kv"},
            "state": {"directory": os.path.join(self.workdir, "state")},
            "plugin_directory": plugin_directory(self.builddir),
            "plugins": {
                "auth_token": {
                    "options": {"tokens_file": self.tokens_path, "reload_interval": "1s"},
                },
            },
            "auth": {"chain": ["auth_token"]},
        }

    # -- who can call it

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def token_for(self, principal):
        for token, (name, _, _) in self.tokens.items():
            if name == principal:
                return token
        raise KeyError(principal)

    @property
    def token(self):
        return self.token_for("alice")

    def get(self, path, token=None, port=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        base = f"http://127.0.0.1:{port}" if port else self.url
        return http("GET", base + path, headers=headers, **kwargs)

    def metrics(self, port=None):
        response = self.get("/metrics", port=port)
        assert response.status_code == 200, response.text
        return parse_metrics(response.text)

    # -- its config

    def write_config(self, config=None, text=None):
        """Writes the config file (a dict, or raw text for broken configs)."""
        if config is not None:
            self.config = config
        with open(self.config_path, "w") as out:
            out.write(text if text is not None else to_yaml(self.config) + "\n")

    # -- its life

    def start(self, wait=True):
        self.write_config()
        os.makedirs(self.workdir, exist_ok=True)
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config_path],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file,
            env=sanitizer_env(self.env), cwd=self.workdir)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=START_TIMEOUT):
        def healthy():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"sparkplaned exited {self.process.returncode} while starting:\n{self.log()}")
            try:
                return self.get("/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(healthy, timeout, what=f"/healthz on {self.url}")

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum):
        self.process.send_signal(signum)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
            raise AssertionError(f"sparkplaned did not exit within {timeout}s:\n{self.log_tail()}")
        self._log_file.close()
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit status."""
        if self.alive():
            self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()
        if self.process is not None and not self._log_file.closed:
            self._log_file.close()

    # -- its log

    def log(self):
        try:
            with open(self.log_path, "rb") as log_file:
                return log_file.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log().splitlines()[-lines:])

    def log_lines_after(self, offset):
        return self.log()[offset:].splitlines()

    def wait_log(self, pattern, timeout=10.0, offset=0):
        """Waits for a log line (after character offset) matching the regex; returns it."""
        regex = re.compile(pattern)

        def found():
            for line in self.log_lines_after(offset):
                if regex.search(line):
                    return line
            if not self.alive():
                raise AssertionError(f"sparkplaned exited while waiting for /{pattern}/:\n"
                                     f"{self.log_tail()}")
            return None
        return wait_until(found, timeout, what=f"a log line matching /{pattern}/")

    def assert_clean_log(self):
        report = sanitizer_report(self.log())
        assert report is None, f"sanitizer report in the daemon log: {report}\n{self.log_tail(80)}"


def run_cli(builddir, *args, env=None, timeout=60):
    """Runs sparkplaned with args; returns CompletedProcess (text)."""
    return subprocess.run([daemon_binary(builddir), *args], capture_output=True, text=True,
                          env=sanitizer_env(env), timeout=timeout, stdin=subprocess.DEVNULL)
