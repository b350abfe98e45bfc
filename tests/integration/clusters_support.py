"""clusters_support.py - what the cluster tests share: a provisioning config and REST helpers.

add_provisioning(cfg, builddir, backend=...) loads the backend plugin that
runs clusters (backend_<name> from the build tree) and writes the
`provisioning:` section with a test's overrides on top of small, fast
defaults: one region "local", reap_interval 1s, a generous start_timeout.
The helpers call the clusters API as a named caller of the daemon's tokens
file (helpers.Daemon.token_for) and return the requests.Response, so a test
asserts the status itself; wait_status polls (bounded) until a cluster
reaches one of the given states.
"""
import calendar
import json
import os
import time

import helpers

PREFIX = "/api/v1/clusters"
ALIAS_PREFIX = "/api/v1/spark-connect-clusters"
FINAL_STATES = ("TERMINATED", "FAILED")


def plugin_path(builddir, plugin):
    """The built .so of a plugin (libtool puts it in .libs)."""
    return os.path.join(builddir, "plugins", plugin, ".libs", f"{plugin}.so")


def add_provisioning(cfg, builddir, backend="sim", plugin_options=None, spark_home=None,
                     **provisioning):
    """Loads backend_<backend> and adds `provisioning:` to a daemon config dict.

    provisioning: keys of the section that replace the defaults below
    (environments, regions, sizes, catalogs, quotas, endpoint_pattern, ...).
    spark_home: the runtime of spark_version 4.0 for a backend that runs real
    Spark (backend_local); without it the runtime names an image only.
    """
    plugin = f"backend_{backend}"
    cfg["plugins"][plugin] = {"path": plugin_path(builddir, plugin),
                              "options": dict(plugin_options or {})}
    runtime = {"spark_home": spark_home} if spark_home else {"image": "spark-platform:4.0-latest"}
    cfg.setdefault("spark_versions", {}).setdefault("4.0", runtime)
    section = {
        "backend": backend,
        "spark_version": "4.0",
        "domain": "example.team",
        "start_timeout": "10m",
        "reap_interval": "1s",
        "regions": {"local": {}},
    }
    section.update(provisioning)
    cfg["provisioning"] = section
    return cfg


# ---- REST ---------------------------------------------------------------------------------

def call(daemon, method, path, who="alice", body=None, data=None, headers=None):
    """One request as `who`; body is sent as JSON, data as it is (for broken bodies)."""
    headers = dict(headers or {})
    headers["Authorization"] = f"Bearer {daemon.token_for(who)}"
    if body is not None:
        data = json.dumps(body)
    return helpers.http(method, daemon.url + path, data=data, headers=headers)


def create(daemon, body, who="alice", key=None, prefix=PREFIX):
    """POST /clusters; key: the Idempotency-Key header."""
    headers = {"Idempotency-Key": key} if key is not None else None
    return call(daemon, "POST", prefix, who=who, body=body, headers=headers)


def get(daemon, cluster_id, who="alice", prefix=PREFIX):
    return call(daemon, "GET", f"{prefix}/{cluster_id}", who=who)


def list_clusters(daemon, who="alice", prefix=PREFIX, **filters):
    """GET /clusters with the given query filters; the response."""
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return call(daemon, "GET", prefix + (f"?{query}" if query else ""), who=who)


def delete(daemon, cluster_id, who="alice", prefix=PREFIX):
    return call(daemon, "DELETE", f"{prefix}/{cluster_id}", who=who)


def set_ttl(daemon, cluster_id, ttl, who="alice", prefix=PREFIX):
    return call(daemon, "POST", f"{prefix}/{cluster_id}/ttl", who=who, body={"ttl": ttl})


def scale(daemon, cluster_id, body, who="alice", prefix=PREFIX):
    return call(daemon, "POST", f"{prefix}/{cluster_id}/scale", who=who, body=body)


def events(daemon, cluster_id, who="alice", prefix=PREFIX):
    """The cluster's events (asserts 200)."""
    response = call(daemon, "GET", f"{prefix}/{cluster_id}/events", who=who)
    assert response.status_code == 200, response.text
    return response.json()["events"]


def discovery(daemon, who="alice", **query):
    text = "&".join(f"{key}={value}" for key, value in query.items())
    return call(daemon, "GET", "/api/v1/discovery" + (f"?{text}" if text else ""), who=who)


def wait_status(daemon, cluster_id, statuses, who="alice", timeout=30.0):
    """Polls GET /clusters/{id} until its status is one of `statuses`; returns the cluster."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    last = {}

    def reached():
        nonlocal last
        response = get(daemon, cluster_id, who=who)
        assert response.status_code == 200, response.text
        last = response.json()
        return last if last["status"] in statuses else None
    try:
        return helpers.wait_until(reached, timeout, interval=0.1,
                                  what=f"cluster {cluster_id} in {statuses}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last seen: {last}") from None


def error_of(response, status, code=None, field=None):
    """The error object of a refusal, after checking its status, code and field."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert (error.get("details") or {}).get("field") == field, error
    return error


def metric(daemon, name):
    """The sum of a metric's samples in /metrics.

    Read line by line: a label value may hold braces (route="/api/v1/clusters/{id}"), which
    helpers.parse_metrics does not accept.
    """
    response = helpers.http("GET", daemon.url + "/metrics")
    assert response.status_code == 200, response.text
    total = 0.0
    for line in response.text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def seconds_until(timestamp):
    """Seconds from now to an API timestamp (UTC, 2024-01-02T03:04:05.678Z)."""
    return calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.time()
