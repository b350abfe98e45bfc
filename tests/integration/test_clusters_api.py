"""test_clusters_api.py - the clusters API against the real daemon, on the simulated backend.

provisioning.backend is `sim` (plugins/backend_sim): a cluster start is
answered at once with an endpoint where nothing listens, so no cluster
ever becomes RUNNING - it stays PROVISIONING (start_timeout is 10m here).
That is all these tests need: everything they check is decided by the
daemon itself.

  - every bad request is a 4xx whose error names the field, and creates
    nothing (the admin's list stays empty, no cluster was counted);
  - a create answers 201 with the documented names (cluster id, namespace,
    endpoint by the configured pattern), PROVISIONING, expires_at from the
    ttl; the alias prefix /api/v1/spark-connect-clusters serves the same;
  - Idempotency-Key replays (not refused by quota or placement) and
    conflicts; quotas on clusters and cores (429); one live cluster per
    team/environment/region (409);
  - another team's cluster answers 404 and is absent from lists; the list
    filters; viewers read but do not write;
  - DELETE: 202 TERMINATING, then TERMINATED, each change an event;
  - POST /ttl extends within the environment's max_ttl and refuses beyond;
  - discovery answers 404 naming team/environment/region while nothing runs;
  - a restart on the same state directory keeps every cluster: the sim
    backend forgets what it ran, so the daemon ends a started one FAILED
    with the reason (core/clusters.c, clusters_adopt_row).
"""
import os
import re
import secrets
import signal
import sqlite3
import time

import pytest

import clusters_support as cs
import helpers

BASE = {"team": "analytics", "environment": "dev", "region": "local", "size": "small",
        "catalogs": ["pedregal"], "ttl": "2h"}
SMALL_CORES = 2      # the default size small: a 1-core driver and one 1-core executor
MEDIUM_CORES = 5     # medium: a 1-core driver and two 2-core executors



def _tokens():
    return {
        "alice-" + secrets.token_hex(16): ("alice", "member", ["analytics", "ml"]),
        "bob-" + secrets.token_hex(16): ("bob", "admin", ["platform"]),
        "vera-" + secrets.token_hex(16): ("vera", "viewer", ["analytics"]),
        "carl-" + secrets.token_hex(16): ("carl", "member", ["ml"]),
        "root-" + secrets.token_hex(16): ("root", "admin", ["*"]),
    }


def _provisioning(**overrides):
    section = {
        "environments": {
            "dev": {"default_ttl": "8h", "max_ttl": "7d"},
            "ci": {"default_ttl": "2h", "max_ttl": "1d"},
            "prod": {"default_ttl": "7d", "max_ttl": "persistent"},
        },
        "regions": {"local": {}, "eu-west-1": {"fallback": "local"}},
        "catalogs": {"pedregal": {
            "spark.sql.catalog.pedregal": "org.apache.iceberg.spark.SparkCatalog",
            "spark.sql.catalog.pedregal.uri": "http://catalog.{env}.example/{team}",
        }},
        "quotas": {"default": {"clusters": 5, "cores": 64}},
    }
    section.update(overrides)
    return section


@pytest.fixture
def sim_daemon(daemon_factory, builddir):
    """start(**provisioning overrides) -> a daemon with alice, bob, vera, carl and root."""
    def start(sim_options=None, **overrides):
        def configure(cfg):
            cs.add_provisioning(cfg, builddir, backend="sim", plugin_options=sim_options,
                                **_provisioning(**overrides))
            cfg["runner"] = {"default_backend": "sim"}
            cfg["server"]["max_body_size"] = "64KiB"
        return daemon_factory(configure=configure, tokens=_tokens())
    return start


def body_with(**changes):
    """BASE with keys changed; a value of None removes the key."""
    body = dict(BASE)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def assert_cluster_id(cluster, team, environment, region):
    """sc-{team}-{env}-{region}-{6 random [a-z0-9]}."""
    pattern = rf"sc-{re.escape(team)}-{environment}-{re.escape(region)}-[a-z0-9]{{6}}"
    assert re.fullmatch(pattern, cluster["cluster_id"]), cluster


def created(response):
    assert response.status_code == 201, response.text
    return response.json()


def assert_nothing_created(daemon):
    for prefix in (cs.PREFIX, cs.ALIAS_PREFIX):
        response = cs.list_clusters(daemon, who="root", prefix=prefix)
        assert response.status_code == 200, response.text
        assert response.json() == {"clusters": []}
    assert cs.metric(daemon, "sparkplane_clusters_created_total") == 0
    assert cs.metric(daemon, "sparkplane_backend_sim_clusters_running") == 0


def sim_clusters_running(daemon):
    return cs.metric(daemon, "sparkplane_backend_sim_clusters_running")


# ---- refusals --------------------------------------------------------------------------------

INVALID_BODIES = [
    # (body changes, the field the error names, text the message holds)
    ({"team": None}, "team", "team: required"),
    ({"team": 5}, "team", "team: expected a string"),
    ({"team": "Analytics"}, "team", "[a-z0-9-]{1,63}"),
    ({"team": "a" * 64}, "team", "[a-z0-9-]{1,63}"),
    ({"team": "x" * 10000}, "team", "[a-z0-9-]{1,63}"),
    ({"environment": None}, "environment", "environment: required"),
    ({"environment": "qa"}, "environment", "'qa' is not one of dev, ci, prod"),
    ({"environment": ["dev"]}, "environment", "expected a string"),
    ({"environment": "e" * 10000}, "environment", "is not one of"),
    ({"region": "mars"}, "region", "'mars' is not one of local, eu-west-1"),
    ({"region": 1}, "region", "expected a string"),
    ({"size": "huge"}, "size", "'huge' is not one of small, medium, large, xlarge"),
    ({"size": {"cores": 4}}, "size", "expected a string"),
    ({"catalogs": ["nope"]}, "catalogs[0]", "'nope' is not one of pedregal"),
    ({"catalogs": ["pedregal", 7]}, "catalogs[1]", "expected a catalog name"),
    ({"catalogs": "pedregal"}, "catalogs", "expected an array"),
    ({"catalogs": ["pedregal"] * 33}, "catalogs", "at most"),
    ({"ttl": "10x"}, "ttl", "got '10x'"),
    ({"ttl": "0m"}, "ttl", "got '0m'"),
    ({"ttl": "-1h"}, "ttl", "got '-1h'"),
    ({"ttl": ""}, "ttl", "expected a whole number"),
    ({"ttl": "1h30m"}, "ttl", "expected a whole number"),
    ({"ttl": 3600}, "ttl", "expected a string"),
    ({"ttl": "persistent"}, "ttl", "persistent clusters are not allowed in environment 'dev'"),
    ({"ttl": "8d"}, "ttl", "longer than environment 'dev' allows (max_ttl 7d)"),
    ({"ttl": "400d"}, "ttl", "expected a whole number"),
    ({"environment": "ci", "ttl": "25h"}, "ttl", "max_ttl 1d"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"idempotency_token": "has space"}, "idempotency_token", "[A-Za-z0-9._:-]"),
    ({"idempotency_token": "k" * 129}, "idempotency_token", "[A-Za-z0-9._:-]"),
]


def test_bad_bodies_name_the_field_and_create_nothing(sim_daemon):
    daemon = sim_daemon()
    for changes, field, text in INVALID_BODIES:
        for prefix in (cs.PREFIX, cs.ALIAS_PREFIX):
            response = cs.create(daemon, body_with(**changes), prefix=prefix)
            error = cs.error_of(response, 400, "invalid_request", field)
            assert text in error["message"], (changes, error)
            assert error["message"].startswith(field + ":"), error
            assert len(error["message"]) < 600, "echoed input must be shortened"
    assert_nothing_created(daemon)


def test_unreadable_bodies_and_keys_are_refused(sim_daemon):
    daemon = sim_daemon()
    error = cs.error_of(cs.call(daemon, "POST", cs.PREFIX, data='{"team": }'), 400,
                        "invalid_json")
    assert "line 1" in error["message"], error
    cs.error_of(cs.call(daemon, "POST", cs.PREFIX, data=""), 400, "invalid_json")
    cs.error_of(cs.call(daemon, "POST", cs.PREFIX, data='{"team":"a","team":"b"}'), 400,
                "invalid_json")
    error = cs.error_of(cs.call(daemon, "POST", cs.PREFIX, data='["dev"]'), 400,
                        "invalid_request")
    assert error["message"] == "the request body must be a JSON object, not an array"
    for data in ('"dev"', "42", "null", "true"):
        response = cs.call(daemon, "POST", cs.PREFIX, data=data)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")
    response = cs.call(daemon, "POST", cs.PREFIX, data="{" + " " * 70000 + "}")
    assert response.status_code == 413, response.text
    cs.error_of(cs.create(daemon, BASE, key="not a key!"), 400, "invalid_request",
                "Idempotency-Key")
    cs.error_of(cs.create(daemon, BASE, key="k" * 129), 400, "invalid_request",
                "Idempotency-Key")
    response = helpers.http("POST", daemon.url + cs.PREFIX, json=BASE)
    cs.error_of(response, 401)
    assert_nothing_created(daemon)


def test_callers_outside_the_team_and_viewers_are_refused(sim_daemon):
    daemon = sim_daemon()
    error = cs.error_of(cs.create(daemon, body_with(team="platform")), 403, "forbidden", "team")
    assert "alice" in error["message"] and "platform" in error["message"]
    cs.error_of(cs.create(daemon, BASE, who="bob"), 403, "forbidden", "team")
    cs.error_of(cs.create(daemon, body_with(team="analytics"), who="carl"), 403, "forbidden",
                "team")
    error = cs.error_of(cs.create(daemon, BASE, who="vera"), 403, "forbidden")
    assert "viewer" in error["message"]
    cs.error_of(cs.create(daemon, BASE, who="vera", prefix=cs.ALIAS_PREFIX), 403, "forbidden")
    # The body is checked before the caller: a bad body from an outsider is still a 400.
    cs.error_of(cs.create(daemon, body_with(team="platform", size="huge")), 400,
                "invalid_request", "size")
    assert_nothing_created(daemon)


def test_quotas_placement_and_idempotency(sim_daemon):
    daemon = sim_daemon(quotas={"default": {"clusters": 2, "cores": 8},
                                "teams": {"ml": {"clusters": 3, "cores": 4}}})
    first = created(cs.create(daemon, BASE, key="first-1"))
    # One live cluster per team/environment/region.
    error = cs.error_of(cs.create(daemon, body_with(size="medium")), 409, "conflict", "region")
    assert first["cluster_id"] in error["message"]
    second = created(cs.create(daemon, body_with(region="eu-west-1", size="medium")))
    assert second["cores"] == MEDIUM_CORES
    # Two live clusters: the team's cluster quota is full.
    error = cs.error_of(cs.create(daemon, body_with(environment="ci")), 429, "quota_exceeded",
                        "team")
    assert "quota is 2" in error["message"], error
    # ml may have 3 clusters but only 4 cores: small (2) fits, then medium (5) does not.
    created(cs.create(daemon, body_with(team="ml")))
    error = cs.error_of(cs.create(daemon, body_with(team="ml", environment="ci", size="medium")),
                        429, "quota_exceeded", "size")
    assert f"needs {MEDIUM_CORES} cores" in error["message"], error
    cs.error_of(cs.create(daemon, body_with(team="ml", environment="prod", size="xlarge")),
                429, "quota_exceeded", "size")

    # A replay answers the same cluster, though quota and placement would refuse a new one.
    replay = cs.create(daemon, BASE, key="first-1")
    assert replay.status_code == 200, replay.text
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["cluster_id"] == first["cluster_id"]
    # The key in the body is the same key (the normalised body is what is compared).
    replay = cs.create(daemon, body_with(idempotency_token="first-1", catalogs=["pedregal"] * 2))
    assert replay.status_code == 200, replay.text
    assert replay.json()["cluster_id"] == first["cluster_id"]
    # The same key with another body is a conflict, not a new cluster.
    error = cs.error_of(cs.create(daemon, body_with(ttl="3h"), key="first-1"), 409,
                        "idempotency_conflict", "Idempotency-Key")
    assert "first-1" in error["message"]
    # Keys are per team: ml may use the same key for a request of its own.
    ml_again = created(cs.create(daemon, body_with(team="ml", environment="ci"), key="first-1"))
    assert ml_again["cluster_id"] != first["cluster_id"]
    listed = cs.list_clusters(daemon, who="root").json()["clusters"]
    assert len(listed) == 4, listed
    assert cs.metric(daemon, "sparkplane_clusters_created_total") == 4

    # Deleting frees the quota once the cluster is TERMINATED.
    assert cs.delete(daemon, second["cluster_id"]).status_code == 202
    cs.wait_status(daemon, second["cluster_id"], "TERMINATED", timeout=10)
    created(cs.create(daemon, body_with(environment="ci")))


# ---- create, read, list ---------------------------------------------------------------------

def test_create_answers_the_documented_names(sim_daemon):
    daemon = sim_daemon()
    response = cs.create(daemon, BASE, key="names-1")
    cluster = created(response)
    assert_cluster_id(cluster, "analytics", "dev", "local")
    assert response.headers["Location"] == f"/api/v1/clusters/{cluster['cluster_id']}"
    assert cluster["namespace"] == "sjns-analytics-dev-local"
    assert cluster["endpoint"] == "sc://analytics-dev-local.example.team:15002"
    assert cluster["status"] == "PROVISIONING"
    assert (cluster["team"], cluster["environment"], cluster["region"], cluster["size"]) == (
        "analytics", "dev", "local", "small")
    assert cluster["catalogs"] == ["pedregal"]
    assert cluster["ttl"] == "2h"
    assert abs(cs.seconds_until(cluster["expires_at"]) - 2 * 3600) < 120, cluster
    assert isinstance(cluster["estimated_ready_seconds"], int)
    assert cluster["estimated_ready_seconds"] > 0
    assert cluster["cores"] == SMALL_CORES and cluster["executors"] == 1
    assert cluster["created_by"] == "alice"
    assert "token" not in cluster and "backend_ref" not in cluster

    for prefix in (cs.PREFIX, cs.ALIAS_PREFIX):
        read = cs.get(daemon, cluster["cluster_id"], prefix=prefix)
        assert read.status_code == 200, read.text
        assert {k: read.json()[k] for k in ("cluster_id", "endpoint", "namespace", "status",
                                            "expires_at")} == {
            k: cluster[k] for k in ("cluster_id", "endpoint", "namespace", "status",
                                    "expires_at")}
    # A viewer of the team reads it.
    assert cs.get(daemon, cluster["cluster_id"], who="vera").status_code == 200

    # The alias creates too; defaults: the environment's default_ttl, no catalogs.
    other = created(cs.create(daemon, {"team": "ml", "environment": "ci"},
                              prefix=cs.ALIAS_PREFIX))
    assert_cluster_id(other, "ml", "ci", "local")
    assert other["endpoint"] == "sc://ml-ci-local.example.team:15002"
    assert other["ttl"] == "2h" and other["catalogs"] == [] and other["size"] == "small"
    assert abs(cs.seconds_until(other["expires_at"]) - 2 * 3600) < 120, other
    # persistent where max_ttl allows it: no expiry.
    forever = created(cs.create(daemon, body_with(environment="prod", ttl="persistent")))
    assert forever["ttl"] == "persistent" and forever["expires_at"] is None
    # The sim backend was asked to start each one (and answered).
    helpers.wait_until(lambda: sim_clusters_running(daemon) == 3, 10,
                       what="three simulated clusters started")


def test_endpoint_pattern_and_domain_are_configurable(sim_daemon):
    daemon = sim_daemon(endpoint_pattern="sc://{team}.{env}.spark.{domain}:443",
                        domain="corp.example")
    cluster = created(cs.create(daemon, body_with(region="eu-west-1")))
    assert cluster["endpoint"] == "sc://analytics.dev.spark.corp.example:443"
    assert cluster["namespace"] == "sjns-analytics-dev-eu-west-1"
    assert_cluster_id(cluster, "analytics", "dev", "eu-west-1")


def test_lists_filter_and_other_teams_are_invisible(sim_daemon):
    daemon = sim_daemon()
    dev = created(cs.create(daemon, BASE))
    ci = created(cs.create(daemon, body_with(environment="ci", region="eu-west-1")))
    ml = created(cs.create(daemon, body_with(team="ml")))
    platform = created(cs.create(daemon, body_with(team="platform"), who="bob"))

    def ids(who="alice", prefix=cs.PREFIX, **filters):
        response = cs.list_clusters(daemon, who=who, prefix=prefix, **filters)
        assert response.status_code == 200, response.text
        return sorted(c["cluster_id"] for c in response.json()["clusters"])

    mine = sorted([dev["cluster_id"], ci["cluster_id"], ml["cluster_id"]])
    assert ids() == mine
    assert ids(prefix=cs.ALIAS_PREFIX) == mine
    assert ids(team="analytics") == sorted([dev["cluster_id"], ci["cluster_id"]])
    assert ids(environment="ci") == [ci["cluster_id"]]
    assert ids(region="eu-west-1") == [ci["cluster_id"]]
    assert ids(team="ml", environment="dev", region="local") == [ml["cluster_id"]]
    assert ids(status="PROVISIONING") == mine
    assert ids(status="running") == []
    assert ids(status="TERMINATED") == []
    assert ids(who="carl") == [ml["cluster_id"]]
    assert ids(who="vera") == sorted([dev["cluster_id"], ci["cluster_id"]])
    assert ids(who="bob") == [platform["cluster_id"]]
    assert ids(who="root") == sorted(mine + [platform["cluster_id"]])

    # Another team's cluster is answered exactly like one that does not exist.
    for cluster_id in (platform["cluster_id"], "sc-nope-dev-local-abcdef"):
        for method, suffix, body in (("GET", "", None), ("DELETE", "", None),
                                     ("GET", "/events", None), ("POST", "/ttl", {"ttl": "1h"}),
                                     ("POST", "/scale", {"executors": 2})):
            response = cs.call(daemon, method, f"{cs.PREFIX}/{cluster_id}{suffix}", body=body)
            error = cs.error_of(response, 404, "not_found")
            assert cluster_id in error["message"]
    assert cs.get(daemon, platform["cluster_id"], who="bob").status_code == 200

    cs.error_of(cs.list_clusters(daemon, team="platform"), 403, "forbidden", "team")
    cs.error_of(cs.list_clusters(daemon, status="BOGUS"), 400, "invalid_request", "status")
    cs.error_of(cs.list_clusters(daemon, colour="red"), 400)
    cs.error_of(cs.list_clusters(daemon, team=""), 400, field="team")
    cs.error_of(cs.list_clusters(daemon, region="r" * 200), 400, field="region")
    cs.error_of(cs.get(daemon, "sc-" + "x" * 300), 404, "not_found")


# ---- delete, events, ttl, scale -------------------------------------------------------------

def test_delete_terminates_and_every_change_is_an_event(sim_daemon):
    daemon = sim_daemon()
    cluster = created(cs.create(daemon, BASE))
    cluster_id = cluster["cluster_id"]
    helpers.wait_until(lambda: sim_clusters_running(daemon) == 1, 10,
                       what="the simulated start")
    cs.error_of(cs.delete(daemon, cluster_id, who="vera"), 403, "forbidden")
    assert cs.get(daemon, cluster_id).json()["status"] == "PROVISIONING"

    response = cs.delete(daemon, cluster_id, prefix=cs.ALIAS_PREFIX)
    assert response.status_code == 202, response.text
    assert response.json()["status"] in ("TERMINATING", "TERMINATED")
    ended = cs.wait_status(daemon, cluster_id, "TERMINATED", timeout=10)
    assert ended["cluster_id"] == cluster_id
    helpers.wait_until(lambda: sim_clusters_running(daemon) == 0, 10,
                       what="the simulated cluster stopped")

    history = cs.events(daemon, cluster_id)
    assert [(e["from_state"], e["to_state"]) for e in history] == [
        (None, "PROVISIONING"), ("PROVISIONING", "TERMINATING"), ("TERMINATING", "TERMINATED")]
    assert "alice" in history[0]["reason"]
    assert history[1]["reason"] == "deleted by alice"
    assert history[2]["reason"] == "stopped"
    assert all(e["at"] for e in history)
    assert cs.events(daemon, cluster_id, who="vera", prefix=cs.ALIAS_PREFIX) == history

    # Deleting again answers the cluster as it is; it is still listed, by status too.
    again = cs.delete(daemon, cluster_id)
    assert again.status_code == 202 and again.json()["status"] == "TERMINATED"
    listed = cs.list_clusters(daemon, status="TERMINATED").json()["clusters"]
    assert [c["cluster_id"] for c in listed] == [cluster_id]
    # The placement is free again.
    fresh = created(cs.create(daemon, BASE))
    assert fresh["cluster_id"] != cluster_id


def test_ttl_extends_within_the_bound(sim_daemon):
    daemon = sim_daemon()
    cluster = created(cs.create(daemon, body_with(ttl="1h")))
    cluster_id = cluster["cluster_id"]

    response = cs.set_ttl(daemon, cluster_id, "3d")
    assert response.status_code == 200, response.text
    extended = response.json()
    assert extended["ttl"] == "3d"
    assert abs(cs.seconds_until(extended["expires_at"]) - 3 * 86400) < 120, extended
    assert cs.get(daemon, cluster_id).json()["expires_at"] == extended["expires_at"]
    notes = [e for e in cs.events(daemon, cluster_id) if "ttl" in (e["reason"] or "")]
    assert len(notes) == 1 and "3d" in notes[0]["reason"], notes

    for ttl, text in (("8d", "max_ttl 7d"), ("persistent", "not allowed"), ("soon", "got 'soon'"),
                      ("0s", "got '0s'")):
        error = cs.error_of(cs.set_ttl(daemon, cluster_id, ttl), 400, "invalid_request", "ttl")
        assert text in error["message"], error
    path = f"{cs.PREFIX}/{cluster_id}/ttl"
    cs.error_of(cs.call(daemon, "POST", path, body={}), 400, "invalid_request", "ttl")
    cs.error_of(cs.call(daemon, "POST", path, body={"ttl": 7}), 400, "invalid_request", "ttl")
    cs.error_of(cs.call(daemon, "POST", path, body={"ttl": "1h", "x": 1}), 400,
                "invalid_request", "x")
    cs.error_of(cs.call(daemon, "POST", path, data="[1]"), 400, "invalid_request")
    cs.error_of(cs.call(daemon, "POST", path, data="{"), 400, "invalid_json")
    cs.error_of(cs.set_ttl(daemon, cluster_id, "2d", who="vera"), 403, "forbidden")
    # Every refusal left the expiry as it was.
    assert cs.get(daemon, cluster_id).json()["expires_at"] == extended["expires_at"]

    # Shortening is extending within the bound too; the alias serves it.
    response = cs.set_ttl(daemon, cluster_id, "30m", prefix=cs.ALIAS_PREFIX)
    assert response.status_code == 200, response.text
    assert abs(cs.seconds_until(response.json()["expires_at"]) - 1800) < 120

    assert cs.delete(daemon, cluster_id).status_code == 202
    cs.wait_status(daemon, cluster_id, "TERMINATED", timeout=10)
    cs.error_of(cs.set_ttl(daemon, cluster_id, "2h"), 409, "conflict")


def test_scale_is_checked_and_needs_a_running_cluster(sim_daemon):
    daemon = sim_daemon()
    cluster_id = created(cs.create(daemon, BASE))["cluster_id"]
    for body, field in (({"size": "huge"}, "size"), ({"executors": 0}, "executors"),
                        ({"executors": 257}, "executors"), ({"executors": "2"}, "executors"),
                        ({"size": "medium", "executors": 2}, "executors"), ({}, "size"),
                        ({"colour": 1}, "colour")):
        cs.error_of(cs.scale(daemon, cluster_id, body), 400, "invalid_request", field)
    cs.error_of(cs.scale(daemon, cluster_id, {"executors": 2}, who="vera"), 403, "forbidden")
    error = cs.error_of(cs.scale(daemon, cluster_id, {"executors": 2}), 409, "conflict")
    assert "PROVISIONING" in error["message"]
    after = cs.get(daemon, cluster_id).json()
    assert after["status"] == "PROVISIONING" and after["executors"] == 1


# ---- discovery ------------------------------------------------------------------------------

def test_discovery_names_the_placement_when_nothing_runs(sim_daemon):
    daemon = sim_daemon()
    error = cs.error_of(cs.discovery(daemon, team="analytics", environment="dev", region="local"),
                        404, "not_found")
    assert "analytics" in error["message"] and "dev/local" in error["message"], error
    error = cs.error_of(cs.discovery(daemon, team="analytics", environment="dev",
                                     region="eu-west-1"), 404, "not_found")
    assert "dev/eu-west-1" in error["message"] and "fallback region local" in error["message"]

    # A PROVISIONING cluster is not something a client can use yet.
    created(cs.create(daemon, BASE))
    cs.error_of(cs.discovery(daemon, team="analytics", environment="dev", region="local"), 404,
                "not_found")
    cs.error_of(cs.discovery(daemon, who="vera", team="analytics", environment="dev"), 404,
                "not_found")

    cs.error_of(cs.discovery(daemon, environment="dev"), 400, "invalid_request", "team")
    cs.error_of(cs.discovery(daemon, team="analytics", environment="qa"), 400,
                "invalid_request", "environment")
    cs.error_of(cs.discovery(daemon, team="analytics"), 400, "invalid_request", "environment")
    cs.error_of(cs.discovery(daemon, team="analytics", environment="dev", region="mars"), 400,
                "invalid_request", "region")
    cs.error_of(cs.discovery(daemon, team="platform", environment="dev"), 403, "forbidden",
                "team")
    cs.error_of(cs.discovery(daemon, team="analytics", environment="dev", colour="red"), 400)


# ---- restart --------------------------------------------------------------------------------

def test_restart_keeps_the_clusters_and_ends_what_the_backend_forgot(sim_daemon):
    daemon = sim_daemon()
    started = created(cs.create(daemon, BASE, key="restart-1"))
    ended = created(cs.create(daemon, body_with(environment="ci")))
    helpers.wait_until(lambda: sim_clusters_running(daemon) == 2, 10,
                       what="both simulated starts answered")
    assert cs.delete(daemon, ended["cluster_id"]).status_code == 202
    cs.wait_status(daemon, ended["cluster_id"], "TERMINATED", timeout=10)

    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    daemon.start()

    # The new sim instance runs nothing: the started cluster is FAILED with the reason.
    failed = cs.wait_status(daemon, started["cluster_id"], ("FAILED", "RUNNING"), timeout=15)
    assert failed["status"] == "FAILED", failed
    assert failed["reason"] == "its processes were gone when sparkplaned restarted", failed
    history = cs.events(daemon, started["cluster_id"])
    assert [e["to_state"] for e in history] == ["PROVISIONING", "FAILED"]
    assert cs.get(daemon, ended["cluster_id"]).json()["status"] == "TERMINATED"
    listed = cs.list_clusters(daemon).json()["clusters"]
    assert sorted(c["cluster_id"] for c in listed) == sorted(
        [started["cluster_id"], ended["cluster_id"]])
    assert sim_clusters_running(daemon) == 0

    # The idempotency key survived too; the placement is free for a new cluster.
    replay = cs.create(daemon, BASE, key="restart-1")
    assert replay.status_code == 200 and replay.json()["cluster_id"] == started["cluster_id"]
    fresh = created(cs.create(daemon, BASE))
    assert fresh["cluster_id"] not in (started["cluster_id"], ended["cluster_id"])


# ---- hot pools ---------------------------------------------------------------------------------

def reload_and_wait(daemon):
    before = cs.metric(daemon, "sparkplane_config_reloads_total")
    daemon.send_signal(signal.SIGHUP)
    helpers.wait_until(lambda: cs.metric(daemon, "sparkplane_config_reloads_total") > before, 10,
                       what="the reload")


def warm_clusters(daemon):
    """Live warm clusters, read from the daemon's store (the API never shows them)."""
    path = os.path.join(daemon.config["state"]["directory"], "sparkplane.db")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        return db.execute("SELECT count(*) FROM clusters WHERE pool IS NOT NULL AND state NOT IN "
                          "('TERMINATED', 'FAILED')").fetchone()[0]


def test_warm_clusters_stay_within_the_budget_are_invisible_and_follow_a_reload(sim_daemon):
    # Two regions; small = 1 driver core + 1 executor core.  The environments ask for 1 (dev)
    # and 3 (prod) warm clusters per region, but a budget of 4 cores holds two in all.
    environments = {
        "dev": {"default_ttl": "8h", "max_ttl": "7d", "warm": {"small": 1}},
        "prod": {"default_ttl": "7d", "max_ttl": "persistent", "warm": {"small": 3}},
    }
    daemon = sim_daemon(environments=environments, pool_budget={"cores": 4})
    helpers.wait_until(lambda: sim_clusters_running(daemon) == 2, 15,
                       what="two warm clusters started by the simulator")
    time.sleep(2.5)                         # two more ticks: still two (the budget holds)
    assert sim_clusters_running(daemon) == 2 and warm_clusters(daemon) == 2
    for prefix in (cs.PREFIX, cs.ALIAS_PREFIX):
        assert cs.list_clusters(daemon, who="root", prefix=prefix).json() == {"clusters": []}
    assert cs.metric(daemon, "sparkplane_clusters_created_total") == 0

    # A smaller budget, then none, on reload.  (A reload makes a new simulator instance,
    # which forgets its clusters: the daemon drops those warm rows and fills the pools again
    # within the new budget.  backend_local's warm clusters are adopted instead, and the
    # newest over the budget are stopped.)
    for cores, left in ((2, 1), (0, 0)):
        daemon.config["provisioning"]["pool_budget"] = {"cores": cores}
        daemon.write_config()
        reload_and_wait(daemon)
        helpers.wait_until(lambda: warm_clusters(daemon) == left, 15,
                           what=f"{left} warm cluster(s) within {cores} cores")
        time.sleep(2.5)
        assert warm_clusters(daemon) == left
    assert "reload refused" not in daemon.log()
