"""test_isolation_matrix.py - who may do what: every REST route and the gateway, per identity.

The REST matrix is generated from the daemon's own route table (GET
/api/v1/routes), so a route added to the daemon cannot be forgotten here:
each (method, path pattern) needs a recipe in RECIPES below - how to fill
{id}, the query and the body - and a route without one fails the test by
name, as does a recipe whose route is gone.  The route table and the
OpenAPI document must list the same method+path pairs too.

Six identities call every route:

    none        no credential
    other       member of team `other` (static token)
    viewer      viewer of team `analytics` (static token)
    member      member of team `analytics` (static token)
    admin       admin of every team `*` (static token)
    jwt-member  a JWT minted by PyJWT whose group maps to analytics:member
                (auth_jwt with a jwks_file; the chain is [auth_jwt, auth_token])

The objects belong to `analytics` (and one job and cluster to `other`)
and are made by a seventh caller, `setup` (admin of `*`), which is not a
column: so the audit log holds exactly one record per matrix request of a
column's principal.  The
backend is the simulator (plugins/backend_sim): jobs "run" for ten
minutes, clusters stay PROVISIONING, nothing needs Spark.  Destructive
writes (DELETE, create) get a fresh object or a fresh region per cell, so
one identity's success does not change the next cell.

The expected cell follows from the recipe's access (which must equal the
route table's) and the object's owner:

    open                    200 for everybody
    none                    401
    other                   404 on an analytics object ({id}), 403 on creating for analytics
                            or naming team=analytics, 200 on a plain list that must hold its
                            own team's object and none of analytics', elsewhere the answer of
                            a permitted caller
    viewer                  reads as a member, writes 403
    member, admin, jwt      the recipe's answer (201 create, 202 delete, 200 read ...; scale
                            409 "only a RUNNING cluster", which the simulator never has)

Refusals are also checked for what they did not do: a refused create made
nothing, a refused DELETE left the job running or the cluster up, a
refused scale or ttl left the cluster and its events as they were.  The
matrix is printed (rows routes, columns identities; "!" marks an
unexpected cell) and every unexpected cell is listed in one failure.
Then the audit log must hold one record per matrix request with the
expected decision (deny for 401, 403 and another team's 404s).

The gateway matrix runs real pyspark sessions, one per identity, in one
client process (spark.range(10).count()) against a static cluster of
analytics on the module's one Spark Connect server; `other` has its own
cluster on the same server.  none -> UNAUTHENTICATED, other -> NOT_FOUND
with the very message an unknown cluster id gets, viewer ->
PERMISSION_DENIED, the rest -> 10; the audit log holds each one's
decisions.  It skips where the other Spark tests skip
(spark_connect.spark_home).
"""
import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest

import clusters_support as cs
import helpers
import spark_connect

IDENTITIES = ("none", "other", "viewer", "member", "admin", "jwt-member")
PRINCIPALS = {"none": None, "other": "otto", "viewer": "vera", "member": "alice",
              "admin": "root", "jwt-member": "jwt-member"}
JWT_ISSUER = "https://idp.example.test/matrix"
JWT_AUDIENCE = "sparkplane"
JWT_GROUP = "matrix-analysts"
TEAM = "analytics"
CLUSTER_PREFIXES = (cs.PREFIX, cs.ALIAS_PREFIX)
FRESH_REGIONS = [f"r{i:02d}" for i in range(48)]
JOB = {"team": TEAM, "spark_version": "4.0", "application": {"file": "/jobs/count.py"}}
CLUSTER = {"team": TEAM, "environment": "ci", "size": "small", "ttl": "2h"}
STATIC_CLUSTER = "analytics-static"   # discovery's answer: team analytics, dev/local
CLIENT_TIMEOUT = 300.0
AUDIT_WAIT = 10.0


def need_jwt():
    """PyJWT and cryptography mint the jwt-member's token; skip (or fail in CI) without them."""
    try:
        import cryptography  # noqa: F401
        import jwt  # noqa: F401
    except ImportError as error:
        spark_connect.skip_or_fail(f"the jwt-member identity needs {error.name}")


# ---- identities ---------------------------------------------------------------------------------

def static_tokens():
    """The token file's callers: the five static columns and `setup`."""
    return {
        "otto-" + secrets.token_hex(16): ("otto", "member", ["other"]),
        "vera-" + secrets.token_hex(16): ("vera", "viewer", [TEAM]),
        "alice-" + secrets.token_hex(16): ("alice", "member", [TEAM]),
        "root-" + secrets.token_hex(16): ("root", "admin", ["*"]),
        "setup-" + secrets.token_hex(16): ("setup", "admin", ["*"]),
    }


class JwtIssuer:
    """An EC P-256 key, its JWKS file, and tokens for the jwt-member."""

    def __init__(self, directory):
        need_jwt()
        from cryptography.hazmat.primitives.asymmetric import ec
        from jwt.algorithms import ECAlgorithm
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": "matrix-1", "use": "sig", "alg": "ES256"})
        self.jwks_path = os.path.join(str(directory), "jwks.json")
        with open(self.jwks_path, "w") as out:
            json.dump({"keys": [jwk]}, out)

    def plugin_config(self, builddir):
        return {"path": cs.plugin_path(builddir, "auth_jwt"),
                "options": {"issuer": JWT_ISSUER, "audience": JWT_AUDIENCE,
                            "jwks_file": self.jwks_path,
                            "group_map": [f"{JWT_GROUP}={TEAM}:member"]}}

    def mint(self):
        import jwt
        now = int(time.time())
        claims = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": PRINCIPALS["jwt-member"],
                  "groups": [JWT_GROUP], "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "matrix-1"})


def credentials(daemon, issuer):
    """identity -> the bearer token it sends (None: no Authorization header)."""
    tokens = {identity: daemon.token_for(principal) for identity, principal in PRINCIPALS.items()
              if principal is not None and identity != "jwt-member"}
    tokens["jwt-member"] = issuer.mint()
    tokens["none"] = None
    tokens["setup"] = daemon.token_for("setup")
    return tokens


def add_jwt_chain(cfg, builddir, issuer):
    cfg["plugins"]["auth_jwt"] = issuer.plugin_config(builddir)
    cfg["auth"]["chain"] = ["auth_jwt", "auth_token"]


def clusters_dropin(cfg, clusters):
    """conf.d/clusters.yaml beside the config: static clusters with an explicit region."""
    lines = ["clusters:"]
    for cluster in clusters:
        lines += [f"  - id: {cluster['id']}", f"    team: {cluster['team']}",
                  f"    environment: {cluster['environment']}",
                  f"    region: {cluster.get('region', 'local')}",
                  f"    endpoints: {json.dumps(list(cluster['endpoints']))}"]
        if cluster.get("token"):
            lines.append(f"    token: {json.dumps(cluster['token'])}")
    workdir = os.path.dirname(cfg["state"]["directory"])
    os.makedirs(os.path.join(workdir, "conf.d"), exist_ok=True)
    with open(os.path.join(workdir, "conf.d", "clusters.yaml"), "w") as out:
        out.write("\n".join(lines) + "\n")


def audit_records(daemon):
    """The audit log's records (state.directory/audit.log, the default file)."""
    path = os.path.join(daemon.config["state"]["directory"], "audit.log")
    try:
        with open(path) as audit:
            return [json.loads(line) for line in audit if line.strip()]
    except FileNotFoundError:
        return []


# ---- the REST world: the daemon, its callers and analytics' objects ------------------------------

class World:
    """The REST daemon, every caller's token, and the objects the recipes point at."""

    def __init__(self, daemon, tokens):
        self.daemon = daemon
        self.tokens = tokens
        self.regions = list(FRESH_REGIONS)
        self.job_id = self.new_job("matrix-main")
        self.cluster_id = self.new_cluster()
        # The other team's own objects: its lists must show these, and only these.
        self.other_team_objects = {
            "jobs": self.new_job("matrix-other", team="other"),
            "clusters": self.new_cluster(team="other"),
        }

    def call(self, identity, method, path, body=None):
        headers = {}
        if self.tokens[identity] is not None:
            headers["Authorization"] = f"Bearer {self.tokens[identity]}"
        data = json.dumps(body) if body is not None else None
        return helpers.http(method, self.daemon.url + path, data=data, headers=headers)

    def setup(self, method, path, body=None, status=200):
        """A request as `setup` (not a column); asserts its status and returns the JSON."""
        response = self.call("setup", method, path, body)
        assert response.status_code == status, f"setup {method} {path}: {response.text}"
        return response.json()

    def fresh_region(self):
        assert self.regions, "FRESH_REGIONS ran out: add regions for the new routes"
        return self.regions.pop(0)

    def new_job(self, name="matrix-victim", team=TEAM):
        body = dict(JOB, name=name, team=team)
        return self.setup("POST", "/api/v1/jobs", body, status=201)["id"]

    def new_cluster(self, team=TEAM):
        body = dict(CLUSTER, team=team, region=self.fresh_region())
        return self.setup("POST", cs.PREFIX, body, status=201)["cluster_id"]

    def job(self, job_id):
        return self.setup("GET", f"/api/v1/jobs/{job_id}")

    def cluster_state(self, cluster_id):
        """The cluster as setup sees it, without the estimate that changes with the clock."""
        cluster = self.setup("GET", f"{cs.PREFIX}/{cluster_id}")
        cluster.pop("estimated_ready_seconds", None)
        events = self.setup("GET", f"{cs.PREFIX}/{cluster_id}/events")["events"]
        return {"cluster": cluster, "events": events}

    def team_jobs(self):
        return self.setup("GET", f"/api/v1/jobs?team={TEAM}&limit=1000")["jobs"]

    def team_clusters(self):
        return self.setup("GET", f"{cs.PREFIX}?team={TEAM}")["clusters"]


@dataclasses.dataclass
class Request:
    """One cell's request, and what must hold when it was refused or allowed."""
    path: str
    body: object = None
    refused_changed_nothing: object = None    # () -> problem text or None
    allowed_answer_ok: object = None          # (response) -> problem text or None


@dataclasses.dataclass
class Recipe:
    """How to call one route.

    access: what the route must be ("open", "read", "write"); the route
    table must say the same.  scope: what the request touches -
    "global" (nothing of a team), "object" (analytics' object by {id}),
    "team" (names team analytics: a create, ?team=, discovery) or "list"
    (a plain list whose items must be the caller's teams' only).
    ok: the status of a caller who may (scale answers 409 on the
    simulator: nothing ever becomes RUNNING there, and that answer comes
    after the access checks).
    """
    access: str
    scope: str
    build: object                 # (world, identity) -> Request
    ok: int = 200
    label: str = ""               # tells two recipes of one route apart in the matrix
    items: str = None             # "list": the key of the items in the body


def unchanged(before_fn, what):
    """A refused_changed_nothing check: before_fn() now equals what it was when built."""
    before = before_fn()

    def check():
        after = before_fn()
        return None if after == before else f"{what} changed: {before} -> {after}"
    return check


def job_not_cancelled(world, job_id):
    def check():
        state = world.job(job_id)["state"]
        return f"job {job_id} is {state} after a refused DELETE" if state == "CANCELLED" else None
    return check


def cluster_still_up(world, cluster_id):
    def check():
        status = world.cluster_state(cluster_id)["cluster"]["status"]
        return (f"cluster {cluster_id} is {status} after a refused DELETE"
                if status in ("TERMINATING", "TERMINATED") else None)
    return check


def lists_main_object(world, key, id_key):
    """allowed_answer_ok of a list: analytics' main object is among the items."""
    def check(response):
        wanted = world.job_id if key == "jobs" else world.cluster_id
        ids = [item[id_key] for item in response.json()[key]]
        return None if wanted in ids else f"{wanted} missing from the list"
    return check


def whoami_is(identity):
    def check(response):
        subject = response.json().get("subject")
        return None if subject == PRINCIPALS[identity] else f"whoami says {subject}"
    return check


def conflict_not_running(response):
    message = response.json()["error"]["message"]
    return None if "RUNNING" in message else f"409 for another reason: {message}"


def job_recipes():
    def create(world, identity):
        jobs = unchanged(lambda: sorted(job["id"] for job in world.team_jobs()), "analytics' jobs")
        return Request("/api/v1/jobs", dict(JOB, name=f"matrix-create-{identity}"),
                       refused_changed_nothing=jobs)

    def delete(world, identity):
        job_id = world.new_job()
        return Request(f"/api/v1/jobs/{job_id}",
                       refused_changed_nothing=job_not_cancelled(world, job_id))

    def on_main(suffix=""):
        return lambda world, identity: Request(f"/api/v1/jobs/{world.job_id}{suffix}")

    return {
        ("POST", "/api/v1/jobs"): [Recipe("write", "team", create, ok=201)],
        ("GET", "/api/v1/jobs"): [
            Recipe("read", "list", lambda world, identity: Request(
                "/api/v1/jobs?limit=1000",
                allowed_answer_ok=lists_main_object(world, "jobs", "id")), items="jobs"),
            Recipe("read", "team", lambda world, identity: Request(
                f"/api/v1/jobs?team={TEAM}&limit=1000",
                allowed_answer_ok=lists_main_object(world, "jobs", "id")),
                label=f"?team={TEAM}"),
        ],
        ("GET", "/api/v1/jobs/{id}"): [Recipe("read", "object", on_main())],
        ("DELETE", "/api/v1/jobs/{id}"): [Recipe("write", "object", delete, ok=202)],
        ("GET", "/api/v1/jobs/{id}/events"): [Recipe("read", "object", on_main("/events"))],
        ("GET", "/api/v1/jobs/{id}/logs"): [Recipe("read", "object", on_main("/logs"))],
    }


def cluster_recipes(prefix):
    def create(world, identity):
        body = dict(CLUSTER, region=world.fresh_region())
        return Request(prefix, body, refused_changed_nothing=unchanged(
            lambda: sorted(c["cluster_id"] for c in world.team_clusters()), "analytics' clusters"))

    def delete(world, identity):
        cluster_id = world.new_cluster()
        return Request(f"{prefix}/{cluster_id}",
                       refused_changed_nothing=cluster_still_up(world, cluster_id))

    def change(suffix, body):
        def build(world, identity):
            cluster_id = world.cluster_id
            return Request(f"{prefix}/{cluster_id}{suffix}", body,
                           refused_changed_nothing=unchanged(
                               lambda: world.cluster_state(cluster_id), f"cluster {cluster_id}"))
        return build

    def on_main(suffix=""):
        return lambda world, identity: Request(f"{prefix}/{world.cluster_id}{suffix}")

    def scale(world, identity):
        request = change("/scale", {"executors": 2})(world, identity)
        request.allowed_answer_ok = conflict_not_running
        return request

    return {
        ("POST", prefix): [Recipe("write", "team", create, ok=201)],
        ("GET", prefix): [
            Recipe("read", "list", lambda world, identity: Request(
                prefix, allowed_answer_ok=lists_main_object(world, "clusters", "cluster_id")),
                items="clusters"),
            Recipe("read", "team", lambda world, identity: Request(
                f"{prefix}?team={TEAM}",
                allowed_answer_ok=lists_main_object(world, "clusters", "cluster_id")),
                label=f"?team={TEAM}"),
        ],
        ("GET", prefix + "/{id}"): [Recipe("read", "object", on_main())],
        ("DELETE", prefix + "/{id}"): [Recipe("write", "object", delete, ok=202)],
        ("POST", prefix + "/{id}/scale"): [Recipe("write", "object", scale, ok=409)],
        ("POST", prefix + "/{id}/ttl"): [Recipe("write", "object", change("/ttl", {"ttl": "3h"}))],
        ("GET", prefix + "/{id}/events"): [Recipe("read", "object", on_main("/events"))],
    }


def discovery(world, identity):
    def found_static(response):
        cluster_id = response.json().get("cluster_id")
        return None if cluster_id == STATIC_CLUSTER else f"discovery found {cluster_id}"
    return Request(f"/api/v1/discovery?team={TEAM}&environment=dev&region=local",
                   allowed_answer_ok=found_static)


def plain(path):
    return lambda world, identity: Request(path)


RECIPES = {
    ("GET", "/healthz"): [Recipe("open", "global", plain("/healthz"))],
    ("GET", "/readyz"): [Recipe("open", "global", plain("/readyz"))],
    ("GET", "/metrics"): [Recipe("open", "global", plain("/metrics"))],
    ("GET", "/api/v1/openapi.json"): [Recipe("open", "global", plain("/api/v1/openapi.json"))],
    ("GET", "/api/v1/version"): [Recipe("read", "global", plain("/api/v1/version"))],
    ("GET", "/api/v1/whoami"): [Recipe("read", "global", lambda world, identity: Request(
        "/api/v1/whoami", allowed_answer_ok=whoami_is(identity)))],
    ("GET", "/api/v1/routes"): [Recipe("read", "global", plain("/api/v1/routes"))],
    **job_recipes(),
    **cluster_recipes(cs.PREFIX),
    **cluster_recipes(cs.ALIAS_PREFIX),
    ("GET", "/api/v1/discovery"): [Recipe("read", "team", discovery)],
}


# ---- what a cell should be -----------------------------------------------------------------------

def expected_status(recipe, identity):
    if recipe.access == "open":
        return 200
    if identity == "none":
        return 401
    if identity == "other":
        return {"global": recipe.ok, "object": 404, "team": 403, "list": 200}[recipe.scope]
    if identity == "viewer" and recipe.access == "write":
        return 403
    return recipe.ok


def expected_decision(recipe, identity):
    """The audit decision of a cell: deny for 401, 403 and another team's 404."""
    status = expected_status(recipe, identity)
    refused = status in (401, 403) or (identity == "other" and recipe.scope == "object")
    return "deny" if refused else "allow"


ERROR_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}


def cell_problems(world, recipe, identity, request, response):
    """What is wrong with one answered cell (empty: it is what it should be)."""
    want = expected_status(recipe, identity)
    problems = []
    if response.status_code != want:
        return [f"status {response.status_code}, expected {want}: {response.text[:200]}"]
    if want in ERROR_CODES and recipe.access != "open":
        code = response.json().get("error", {}).get("code")
        if code != ERROR_CODES[want]:
            problems.append(f"error code {code}, expected {ERROR_CODES[want]}")
    refused = expected_decision(recipe, identity) == "deny"
    if refused and request.refused_changed_nothing is not None:
        problem = request.refused_changed_nothing()
        if problem:
            problems.append(problem)
    if identity == "other" and recipe.scope == "list":
        items = response.json()[recipe.items]
        teams = sorted({item.get("team") for item in items})
        if teams != ["other"]:
            problems.append(f"the list shows objects of teams {teams}, expected only other's")
        own = world.other_team_objects[recipe.items]
        if own not in json.dumps(items):
            problems.append(f"the list lacks other's own {own}")
    elif not refused and recipe.access != "open" and request.allowed_answer_ok is not None:
        problem = request.allowed_answer_ok(response)
        if problem:
            problems.append(problem)
    return problems


def format_matrix(rows, title="route"):
    """rows: [(label, {identity: cell text})] -> an aligned text table."""
    first = max(len(title), *(len(label) for label, _ in rows))
    widths = {identity: max(len(identity), *(len(cells[identity]) for _, cells in rows))
              for identity in IDENTITIES}
    header = title.ljust(first) + "".join(f"  {identity:>{widths[identity]}}"
                                          for identity in IDENTITIES)
    lines = [header, "-" * len(header)]
    for label, cells in rows:
        lines.append(label.ljust(first) + "".join(f"  {cells[identity]:>{widths[identity]}}"
                                                  for identity in IDENTITIES))
    return "\n".join(lines)


# ---- the REST daemon ---------------------------------------------------------------------------

@pytest.fixture
def static_endpoint():
    """A listening socket the static cluster points at (discovery wants a healthy driver)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def rest_world(daemon_factory, builddir, tmp_path, static_endpoint):
    issuer = JwtIssuer(tmp_path)
    gateway_port = helpers.free_port()

    def configure(cfg):
        cs.add_provisioning(
            cfg, builddir, backend="sim", plugin_options={"run_duration": "10m"},
            environments={"dev": {"default_ttl": "8h", "max_ttl": "7d"},
                          "ci": {"default_ttl": "2h", "max_ttl": "7d"}},
            regions={name: {} for name in ["local"] + FRESH_REGIONS},
            quotas={"default": {"clusters": 100, "cores": 1000}})
        cfg["runner"] = {"default_backend": "sim"}
        add_jwt_chain(cfg, builddir, issuer)
        cfg["gateway"] = {"listen": [f"127.0.0.1:{gateway_port}"], "domain": "example.team"}
        clusters_dropin(cfg, [{"id": STATIC_CLUSTER, "team": TEAM, "environment": "dev",
                               "region": "local", "endpoints": [static_endpoint]}])

    daemon = daemon_factory(configure=configure, tokens=static_tokens())
    world = World(daemon, credentials(daemon, issuer))
    # The main job's logs exist once the simulator runs it.
    helpers.wait_until(lambda: world.job(world.job_id)["state"] == "RUNNING", 20,
                       what=f"job {world.job_id} RUNNING on the simulator")
    return world


def route_table(world):
    response = world.call("setup", "GET", "/api/v1/routes")
    assert response.status_code == 200, f"GET /api/v1/routes: {response.text}"
    return [(route["method"], route["path"], route["access"])
            for route in response.json()["routes"]]


def openapi_operations(world):
    """{(METHOD, path)} of the OpenAPI document."""
    response = world.call("none", "GET", "/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(method.upper(), path) for path, item in response.json()["paths"].items()
            for method in item if method in methods}


def documented_path(path):
    """The OpenAPI path of a route: the alias prefix is documented once, under /clusters."""
    if path.startswith(cs.ALIAS_PREFIX):
        return cs.PREFIX + path[len(cs.ALIAS_PREFIX):]
    return path


def test_route_table_matches_recipes_and_openapi(rest_world):
    routes = route_table(rest_world)
    problems = []
    pairs = [(method, path) for method, path, _ in routes]
    if len(set(pairs)) != len(pairs):
        problems.append(f"routes listed twice: {sorted(p for p in pairs if pairs.count(p) > 1)}")
    for method, path, access in routes:
        if access not in ("open", "read", "write"):
            problems.append(f"{method} {path}: access {access!r} is not open/read/write")
        if (method, path) not in RECIPES:
            problems.append(f"{method} {path} ({access}): no recipe in RECIPES - add one so the "
                            "isolation matrix covers it")
    for method, path in sorted(set(RECIPES) - set(pairs)):
        problems.append(f"{method} {path}: a recipe for a route the daemon no longer has")
    documented = openapi_operations(rest_world)
    routed = {(method, documented_path(path)) for method, path in pairs}
    for method, path in sorted(routed - documented):
        problems.append(f"{method} {path}: routed but not in /api/v1/openapi.json")
    for method, path in sorted(documented - routed):
        problems.append(f"{method} {path}: in /api/v1/openapi.json but not routed")
    assert not problems, "route table:\n  " + "\n  ".join(problems)


def run_rest_matrix(world, routes):
    """Every recipe of every route for every identity; (matrix rows, problems, cells)."""
    rows, problems, cells = [], [], []
    for method, pattern, access in routes:
        recipes = RECIPES.get((method, pattern))
        if recipes is None:
            problems.append(f"{method} {pattern}: no recipe")
            continue
        for recipe in recipes:
            label = f"{method} {pattern}" + (f" {recipe.label}" if recipe.label else "")
            if recipe.access != access:
                problems.append(f"{label}: the route table says {access}, the recipe "
                                f"{recipe.access}")
            row = {}
            for identity in IDENTITIES:
                request = recipe.build(world, identity)
                response = world.call(identity, method, request.path, request.body)
                found = cell_problems(world, recipe, identity, request, response)
                row[identity] = f"{response.status_code}" + ("!" if found else "")
                problems += [f"{label} as {identity}: {problem}" for problem in found]
                cells.append((method, pattern, recipe, identity, request.path,
                              response.status_code))
            rows.append((label, row))
    return rows, problems, cells


def audit_problems(world, cells):
    """Each non-open cell has one audit record of its principal, action and path, with the
    observed status, the expected decision and, for a denial, a reason."""
    expected = {}
    for method, pattern, recipe, identity, path, status in cells:
        if recipe.access == "open":
            continue
        key = (PRINCIPALS[identity], f"{method} {pattern}", path.split("?")[0])
        decision = expected_decision(recipe, identity)
        expected.setdefault(key, []).append((status, decision, decision == "deny"))
    columns = set(PRINCIPALS.values())

    def collect():
        found = {}
        for record in audit_records(world.daemon):
            if record.get("transport") != "rest" or record.get("principal") not in columns:
                continue
            key = (record["principal"], record["action"], record["object"].split("?")[0])
            found.setdefault(key, []).append(
                (record["status"], record["decision"], bool(record.get("reason"))))
        return found

    try:
        found = helpers.wait_until(
            lambda: (lambda f: f if all(len(f.get(k, [])) >= len(v) for k, v in expected.items())
                     else None)(collect()), AUDIT_WAIT, what="the matrix's audit records")
    except AssertionError:
        found = collect()
    problems = []
    for key, wanted in sorted(expected.items(), key=str):
        got = found.get(key, [])
        if sorted(got) != sorted(wanted):
            problems.append(f"{key}: audit records {got}, expected {wanted}")
    for key in sorted(set(found) - set(expected), key=str):
        problems.append(f"{key}: audit records {found[key]} for no matrix request")
    return problems


def decisions_total(daemon, decision):
    samples = daemon.metrics()
    return helpers.metric_value(samples, "sparkplane_auth_decisions_total", transport="rest",
                                decision=decision)


def test_rest_isolation_matrix(rest_world):
    world = rest_world
    denies_before = decisions_total(world.daemon, "deny")
    rows, problems, cells = run_rest_matrix(world, route_table(world))
    print("\nREST isolation matrix (status; ! = unexpected)\n" + format_matrix(rows))
    assert not problems, f"{len(problems)} unexpected cell(s):\n  " + "\n  ".join(problems)

    problems = audit_problems(world, cells)
    assert not problems, "audit log:\n  " + "\n  ".join(problems)
    denies = sum(1 for _, _, recipe, identity, _, _ in cells
                 if recipe.access != "open" and expected_decision(recipe, identity) == "deny")
    assert decisions_total(world.daemon, "deny") - denies_before == denies


# ---- the gateway -------------------------------------------------------------------------------

# One pyspark process runs every URL in turn: spark.range(10).count(), or the refusal's gRPC
# status and status message (the gRPC error is in the chain of pyspark's exception).
CLIENT = r'''
import json, sys
from pyspark.sql import SparkSession

def grpc_error(error):
    cause = error
    while cause is not None:
        code, details = getattr(cause, "code", None), getattr(cause, "details", None)
        if callable(code) and callable(details):
            try:
                return code().name, details() or ""
            except Exception:
                pass
        cause = cause.__cause__ or cause.__context__
    return "UNKNOWN", str(error)[:500]

results = {}
for url in sys.argv[1:]:
    try:
        spark = SparkSession.builder.remote(url).create()
        try:
            results[url] = {"status": "OK", "count": spark.range(10).count()}
        finally:
            spark.stop()
    except Exception as error:
        status, message = grpc_error(error)
        results[url] = {"status": status, "message": message}
print(json.dumps(results))
'''

GATEWAY_EXPECTED = {"none": "UNAUTHENTICATED", "other": "NOT_FOUND",
                    "viewer": "PERMISSION_DENIED", "member": 10, "admin": 10, "jwt-member": 10}
GATEWAY_CLUSTER = "analytics-dev"
UNKNOWN_CLUSTER = "no-such-cluster"


@pytest.fixture(scope="module")
def spark_server(tmp_path_factory):
    with spark_connect.running_server(tmp_path_factory, name="spark-matrix") as server:
        yield server


@pytest.fixture
def gateway_world(daemon_factory, builddir, tmp_path, spark_server):
    issuer = JwtIssuer(tmp_path)
    port = helpers.free_port()

    def configure(cfg):
        add_jwt_chain(cfg, builddir, issuer)
        cfg["gateway"] = {"listen": [f"127.0.0.1:{port}"], "domain": "example.team"}
        clusters_dropin(cfg, [
            {"id": GATEWAY_CLUSTER, "team": TEAM, "environment": "dev",
             "endpoints": [spark_server.address], "token": spark_server.token},
            {"id": "other-dev", "team": "other", "environment": "dev",
             "endpoints": [spark_server.address], "token": spark_server.token}])

    daemon = daemon_factory(configure=configure, tokens=static_tokens())
    if not helpers.port_accepts(port):
        pytest.fail(f"the daemon does not listen on gateway port {port}\n" + daemon.log_tail(20))
    return daemon, port, credentials(daemon, issuer)


def gateway_url(port, token, cluster, user):
    text = f"sc://localhost:{port}/;user_id={user}"
    if token is not None:
        text += f";token={token}"
    return text + f";x-sparkplane-cluster-id={cluster}"


def run_clients(urls):
    result = subprocess.run([sys.executable, "-c", CLIENT, *urls], capture_output=True,
                            text=True, timeout=CLIENT_TIMEOUT)
    assert result.returncode == 0, f"client failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def gateway_cell(answer):
    return answer["count"] if answer["status"] == "OK" else answer["status"]


def test_gateway_isolation_matrix(gateway_world):
    daemon, port, tokens = gateway_world
    urls = {identity: gateway_url(port, tokens[identity], GATEWAY_CLUSTER,
                                  PRINCIPALS[identity] or "anonymous")
            for identity in IDENTITIES}
    unknown = gateway_url(port, tokens["other"], UNKNOWN_CLUSTER, PRINCIPALS["other"])
    answers = run_clients([*urls.values(), unknown])

    problems, row = [], {}
    for identity in IDENTITIES:
        got, want = gateway_cell(answers[urls[identity]]), GATEWAY_EXPECTED[identity]
        row[identity] = f"{got}" + ("" if got == want else "!")
        if got != want:
            problems.append(f"{identity}: {answers[urls[identity]]}, expected {want}")
    print("\ngateway isolation matrix (spark.range(10).count(); ! = unexpected)\n"
          + format_matrix([(f"{GATEWAY_CLUSTER} (team {TEAM})", row)], title="cluster"))
    # Another team's cluster must be indistinguishable from one that does not exist.
    foreign, missing = answers[urls["other"]], answers[unknown]
    print(f"other on {GATEWAY_CLUSTER}: {foreign.get('message')!r}\n"
          f"other on {UNKNOWN_CLUSTER}: {missing.get('message')!r}")
    if missing["status"] != "NOT_FOUND":
        problems.append(f"an unknown cluster id answers {missing}")
    elif (foreign.get("message", "").replace(GATEWAY_CLUSTER, "<id>")
          != missing.get("message", "").replace(UNKNOWN_CLUSTER, "<id>")):
        problems.append(f"another team's cluster says {foreign.get('message')!r}, an unknown "
                        f"one {missing.get('message')!r}")
    assert not problems, "unexpected gateway cells:\n  " + "\n  ".join(problems)

    problems = gateway_audit_problems(daemon)
    assert not problems, "gateway audit log:\n  " + "\n  ".join(problems)


def gateway_audit_problems(daemon):
    """Each identity's RPCs on analytics' cluster are in the audit log, decided as expected.

    The object names the cluster: "cluster:<id>" once the gateway resolved it for the caller,
    the id as the client sent it when the call was refused before that.
    """
    target = GATEWAY_CLUSTER
    expected = {PRINCIPALS[identity]:
                {("allow", "OK", target) if isinstance(want, int) else ("deny", want, target)}
                for identity, want in GATEWAY_EXPECTED.items()}

    def collect():
        found = {}
        for record in audit_records(daemon):
            if record.get("transport") == "gateway" and GATEWAY_CLUSTER in record.get("object", ""):
                found.setdefault(record.get("principal"), set()).add(
                    (record.get("decision"), record.get("status"),
                     record.get("object").removeprefix("cluster:")))
        return found

    try:
        found = helpers.wait_until(
            lambda: (lambda f: f if set(f) >= set(expected) else None)(collect()), AUDIT_WAIT,
            what="the gateway's audit records")
    except AssertionError:
        found = collect()
    problems = []
    for principal, decided in expected.items():
        if found.get(principal) != decided:
            problems.append(f"principal {principal}: records {sorted(found.get(principal, []))}, "
                            f"expected only {sorted(decided)}")
    return problems
