"""test_system.py - the daemon's own routes: /healthz, /readyz, /metrics, /api/v1/version."""
import re

import helpers


def test_healthz_answers_ok_json(daemon):
    response = daemon.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_once_started(daemon):
    response = daemon.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


def test_metrics_count_requests_by_route_method_status(daemon):
    before = daemon.metrics()
    for _ in range(3):
        assert daemon.get("/healthz").status_code == 200
    assert daemon.get("/no/such/route").status_code == 404

    response = daemon.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    after = helpers.parse_metrics(response.text)

    def delta(**labels):
        return (helpers.metric_value(after, "sparkplane_http_requests_total", **labels)
                - helpers.metric_value(before, "sparkplane_http_requests_total", **labels))

    assert delta(route="/healthz", method="GET", status="200") == 3
    assert delta(method="GET", status="404") == 1
    assert helpers.metric_value(after, "process_resident_memory_bytes") > 1024 * 1024


def test_metrics_latency_histogram_is_consistent(daemon):
    for _ in range(5):
        daemon.get("/healthz")
    samples = daemon.metrics()
    name = "sparkplane_http_request_duration_seconds"
    buckets = [(labels["le"], value) for sample, labels, value in samples
               if sample == name + "_bucket" and labels.get("route") == "/healthz"]
    assert buckets, "no latency histogram for /healthz"
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), f"cumulative buckets must not decrease: {buckets}"
    assert buckets[-1][0] == "+Inf"
    count = helpers.metric_value(samples, name + "_count", route="/healthz")
    assert count >= 5
    assert buckets[-1][1] == count
    assert 0 <= helpers.metric_value(samples, name + "_sum", route="/healthz") < count * 1.0


def test_metrics_text_is_well_formed(daemon):
    text = daemon.get("/metrics").text
    typed = set()
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$", line)
        if match:
            assert match.group(1) not in typed, f"TYPE given twice for {match.group(1)}"
            typed.add(match.group(1))
    for name, _, _ in helpers.parse_metrics(text):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"{name} has no # TYPE line"


def test_version_lists_build_abi_and_plugins(daemon, builddir):
    cli = helpers.run_cli(builddir, "--version")
    match = re.match(r"sparkplaned (\S+) \(plugin ABI (\d+\.\d+)\)", cli.stdout)
    assert match, cli.stdout

    response = daemon.get("/api/v1/version", token=daemon.token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == match.group(1)
    assert body["abi"] == match.group(2)
    assert isinstance(body["schema_version"], int) and body["schema_version"] >= 1
    plugins = {p["name"]: p for p in body["plugins"]}
    assert set(plugins) == {"auth_token"}
    assert plugins["auth_token"]["kind"] == "auth"
    assert re.match(r"\d+\.\d+$", plugins["auth_token"]["abi"])
    assert plugins["auth_token"]["version"]


def test_version_needs_authentication(daemon):
    response = daemon.get("/api/v1/version")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_head_healthz_has_no_body(daemon):
    response = helpers.http("HEAD", daemon.url + "/healthz")
    assert response.status_code == 200
    assert response.content == b""
