#!/usr/bin/env bash
# scripts/test.sh - the README's TEST command, and exactly what CI runs.
#
#   scripts/test.sh
#
# Steps (each one passes or fails; a failure does not stop the others unless
# they depend on it):
#   deps            scripts/install-deps.sh --test (apt packages, .venv)
#   asan-build      configure --enable-asan --enable-ubsan in ./build-asan, make
#   make check      unit, plugin, fuzz-corpus and integration tests under the
#                   sanitizers; integration tests may not skip
#                   (SPARKPLANE_REQUIRE_INTEGRATION=1); each automake test counts
#   fuzz            clang + libFuzzer build in ./build-fuzz; each fuzz target
#                   runs FUZZ_SECONDS (default 30) from its seed corpus
#   plain-build     ./build-plain (--prefix=/usr --sysconfdir=/etc), make,
#                   make install DESTDIR=<tmp>
#   sdk-example     sdk/examples/hello copied out of the tree and built against
#                   the DESTDIR alone (pkg-config sees nothing else)
#   installed-daemon  the installed sparkplaned loads that plugin: --check-config,
#                   --list-plugins shows it, it starts, /healthz answers, the
#                   installed auth_token admits a token and refuses none, SIGTERM
#                   stops it cleanly
#   systemd-unit    systemd-analyze verify on the installed unit (pointed at the
#                   DESTDIR binary), where systemd-analyze exists
#   bench           bench/run.sh --quick on the plain build (prints ratios only)
#   bench-jobs      bench/jobs.sh --quick (the jobs API, ratios only)
#   bench-auth      bench/auth.sh --quick (static token vs JWT, cache warm and cold, per
#                   algorithm, and mTLS; ratios only)
#   bench-gateway   bench/gateway.sh --quick (the Spark Connect gateway vs direct and nghttpx)
#   bench-clusters  bench/clusters.sh --quick (real Spark clusters: POST to first query, cold
#                   vs hot, and a first query through the gateway vs direct)
#   distcheck       make distcheck: the tarball builds, checks, installs, cleans
#
# Ends with one line "N passed, N failed" and exits non-zero on any failure.
# Environment: JOBS (make parallelism, default: number of CPUs), FUZZ_SECONDS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASAN_BUILD="$ROOT/build-asan"
PLAIN_BUILD="$ROOT/build-plain"
FUZZ_BUILD="$ROOT/build-fuzz"
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sparkplane-test.XXXXXX")
STAGE="$WORK/stage"

passed=0
failed=0
skipped=0
failed_steps=()

trap 'rm -rf "$WORK"' EXIT

log() { printf 'test: %s\n' "$*" >&2; }

# ---- step bookkeeping ------------------------------------------------------

# Runs "$@" in a subshell with errexit on (an `if` around it would switch
# errexit off inside, so the status is read afterwards instead).
step() {
    local name=$1 rc started=$SECONDS
    shift
    printf '\n=== %s\n' "$name"
    set +e
    (
        set -euo pipefail
        "$@"
    )
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf '=== %s: PASS (%ss)\n' "$name" "$((SECONDS - started))"
    else
        failed=$((failed + 1))
        failed_steps+=("$name")
        printf '=== %s: FAIL (exit %s, %ss)\n' "$name" "$rc" "$((SECONDS - started))"
    fi
    return 0
}

step_failed() {
    local name
    for name in "${failed_steps[@]}"; do
        [ "$name" = "$1" ] && return 0
    done
    return 1
}

# A step that cannot run because an earlier one failed counts as failed.
blocked() {
    failed=$((failed + 1))
    failed_steps+=("$1")
    printf '\n=== %s: FAIL (not run: %s failed)\n' "$1" "$2"
}

# ---- steps -------------------------------------------------------------------

bootstrap() {
    bash "$ROOT/scripts/install-deps.sh" --test
    [ -x "$ROOT/configure" ] || (cd "$ROOT" && ./autogen.sh)
}

configure_in() {
    local dir=$1
    shift
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ]; then
        (cd "$dir" && "$ROOT/configure" -q "$@")
    fi
}

asan_build() {
    configure_in "$ASAN_BUILD" --enable-asan --enable-ubsan
    make -C "$ASAN_BUILD" -j"$JOBS"
}

# Prints the failing tests' logs so CI output says why.
show_failed_tests() {
    local trs
    while IFS= read -r trs; do
        if grep -qE '^:test-result: (FAIL|XPASS|ERROR)' "$trs"; then
            printf '\n--- %s\n' "${trs%.trs}.log"
            tail -n 80 "${trs%.trs}.log" 2>/dev/null || true
        fi
    done < <(find "$ASAN_BUILD" -name '*.trs' | sort)
}

asan_check() {
    # Remove old results so only this run is counted.
    find "$ASAN_BUILD" -name '*.trs' -delete
    if ! make -C "$ASAN_BUILD" -j"$JOBS" check; then
        show_failed_tests
        return 1
    fi
}

# Adds the automake test results (PASS/XFAIL pass; FAIL/XPASS/ERROR fail).
count_automake_tests() {
    local results pass fail skip
    results=$(find "$ASAN_BUILD" -name '*.trs' -exec grep -h '^:test-result:' {} + 2>/dev/null || true)
    pass=$(printf '%s\n' "$results" | grep -cE ':test-result: (PASS|XFAIL)' || true)
    fail=$(printf '%s\n' "$results" | grep -cE ':test-result: (FAIL|XPASS|ERROR)' || true)
    skip=$(printf '%s\n' "$results" | grep -c ':test-result: SKIP' || true)
    log "automake tests: $pass passed, $fail failed, $skip skipped"
    passed=$((passed + pass))
    failed=$((failed + fail))
    skipped=$((skipped + skip))
    if [ $((pass + fail + skip)) -eq 0 ]; then
        log "make check ran no test"
        failed=$((failed + 1))
        return 1
    fi
    [ "$fail" -eq 0 ]
}

# Real libFuzzer runs (clang): every tests/fuzz/fuzz_<name>.c for
# FUZZ_SECONDS each, starting from its seed corpus.  Crash inputs are kept
# in build-fuzz/artifacts/.
fuzz_short() {
    local source name corpus
    configure_in "$FUZZ_BUILD" --enable-fuzz CC=clang
    mkdir -p "$FUZZ_BUILD/artifacts"
    for source in "$ROOT"/tests/fuzz/fuzz_*.c; do
        [ -e "$source" ] || continue
        name=$(basename "$source" .c)
        make -C "$FUZZ_BUILD" -j"$JOBS" "tests/fuzz/$name"
        corpus="$WORK/corpus-$name"
        mkdir -p "$corpus"
        log "$name: fuzzing for ${FUZZ_SECONDS}s"
        "$FUZZ_BUILD/tests/fuzz/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$FUZZ_BUILD/artifacts/$name-" \
            "$corpus" "$ROOT/tests/fuzz/corpus/${name#fuzz_}" 2>&1 | tail -n 15
    done
}

plain_build() {
    configure_in "$PLAIN_BUILD" --prefix=/usr --sysconfdir=/etc --localstatedir=/var
    make -C "$PLAIN_BUILD" -j"$JOBS"
    make -C "$PLAIN_BUILD" install DESTDIR="$STAGE"
}

# Copies the example out of the tree and builds it with pkg-config pointed at
# the DESTDIR only: PKG_CONFIG_LIBDIR replaces the default search path, and
# PKG_CONFIG_SYSROOT_DIR maps the .pc's /usr paths into the DESTDIR.
sdk_example() {
    local pc_dir
    pc_dir=$(dirname "$(find "$STAGE" -name sparkplane-sdk.pc | head -n 1)")
    [ -f "$pc_dir/sparkplane-sdk.pc" ] || { log "no sparkplane-sdk.pc installed"; return 1; }
    rm -rf "$WORK/hello"
    cp -r "$ROOT/sdk/examples/hello" "$WORK/hello"
    export PKG_CONFIG_LIBDIR="$pc_dir" PKG_CONFIG_PATH="$pc_dir" PKG_CONFIG_SYSROOT_DIR="$STAGE"
    log "sparkplane-sdk cflags: $(pkg-config --cflags sparkplane-sdk)"
    make -C "$WORK/hello"
    HELLO_SO="$WORK/hello/hello.so"
    # Exactly one exported symbol, as the ABI requires.
    if [ "$(nm -D --defined-only "$HELLO_SO" | grep -c ' [TDRB] ')" -ne 1 ]; then
        nm -D --defined-only "$HELLO_SO"
        log "hello.so must export exactly one symbol"
        return 1
    fi
    nm -D --defined-only "$HELLO_SO" | grep -w sp_plugin_descriptor
    # Into the staged plugin directory, where the daemon looks by name.
    make -C "$WORK/hello" install PLUGINDIR="$STAGE/usr/lib/sparkplane/plugins"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_installed_config() {
    local port=$1 token_hash=$2
    mkdir -p "$WORK/daemon/state"
    printf '%s ci admin ci,analytics\n' "$token_hash" >"$WORK/daemon/tokens"
    cat >"$WORK/daemon/sparkplane.yaml" <<EOF
server:
  listen: ["127.0.0.1:$port"]
log:
  level: info
state:
  directory: $WORK/daemon/state
plugin_directory: $STAGE/usr/lib/sparkplane/plugins
plugins:
  auth_token:
    options:
      tokens_file: $WORK/daemon/tokens
  hello:
    options:
      secret: $HELLO_SECRET
      user: alice
      team: analytics
auth:
  chain: [hello, auth_token]
EOF
}

# GET with optional bearer token; prints the status code, body to $2.
http_get() {
    local url=$1 body=$2 token=${3:-}
    if [ -n "$token" ]; then
        curl -sS --max-time 10 -o "$body" -w '%{http_code}' -H "Authorization: Bearer $token" "$url"
    else
        curl -sS --max-time 10 -o "$body" -w '%{http_code}' "$url"
    fi
}

expect_status() {
    local want=$1 got=$2 what=$3
    if [ "$got" != "$want" ]; then
        log "$what: HTTP $got, expected $want"
        return 1
    fi
    log "$what: HTTP $got"
}

installed_daemon() {
    local daemon="$STAGE/usr/sbin/sparkplaned" config="$WORK/daemon/sparkplane.yaml"
    local port token hash base status rc daemon_pid
    port=$(free_port)
    token=$(openssl rand -hex 24)
    hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
    HELLO_SECRET=$(openssl rand -hex 8)
    write_installed_config "$port" "$hash"
    base="http://127.0.0.1:$port"

    "$daemon" --version
    "$daemon" --config "$config" --check-config
    "$daemon" --config "$config" --list-plugins | tee "$WORK/daemon/plugins.txt"
    grep -qw hello "$WORK/daemon/plugins.txt" || { log "--list-plugins does not show hello"; return 1; }

    "$daemon" --config "$config" 2>"$WORK/daemon/stderr.log" &
    daemon_pid=$!
    # Steps run in subshells, which do not inherit the script's traps.
    # shellcheck disable=SC2064 # the pid is meant to be expanded now
    trap "kill -KILL $daemon_pid 2>/dev/null || true" EXIT
    local deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        curl -fsS --max-time 2 -o /dev/null "$base/healthz" 2>/dev/null && break
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    status=$(http_get "$base/healthz" "$WORK/daemon/healthz.json" || true)
    if [ "$status" != 200 ]; then
        log "/healthz did not answer 200 (got '$status'); daemon log:"
        cat "$WORK/daemon/stderr.log" >&2
        return 1
    fi
    expect_status 200 "$status" /healthz
    expect_status 200 "$(http_get "$base/readyz" "$WORK/daemon/readyz.json")" /readyz
    # hello answers its own tokens and defers the rest to auth_token.
    expect_status 200 "$(http_get "$base/api/v1/version" "$WORK/daemon/version.json" \
        "hello-$HELLO_SECRET")" "/api/v1/version with hello's token"
    expect_status 200 "$(http_get "$base/api/v1/version" "$WORK/daemon/version.json" "$token")" \
        "/api/v1/version with auth_token's token"
    cat "$WORK/daemon/version.json"
    echo
    grep -q '"hello"' "$WORK/daemon/version.json" || { log "version lists no hello"; return 1; }
    expect_status 401 "$(http_get "$base/api/v1/version" "$WORK/daemon/denied.json")" \
        "/api/v1/version without a token"
    grep -q '"error"' "$WORK/daemon/denied.json" || { log "401 body lacks the error shape"; return 1; }
    expect_status 401 "$(http_get "$base/api/v1/version" "$WORK/daemon/denied.json" "hello-wrong")" \
        "/api/v1/version with a wrong hello token"
    expect_status 200 "$(http_get "$base/metrics" "$WORK/daemon/metrics.txt")" /metrics
    grep -q '^sparkplane_hello_decisions_total' "$WORK/daemon/metrics.txt" ||
        { log "/metrics lacks the plugin's sparkplane_hello_decisions_total"; return 1; }

    kill -TERM "$daemon_pid"
    rc=0
    wait "$daemon_pid" || rc=$?
    trap - EXIT
    cat "$WORK/daemon/stderr.log"
    if [ "$rc" -ne 0 ]; then
        log "sparkplaned exited $rc after SIGTERM"
        return 1
    fi
}

# The installed unit, pointed at the DESTDIR's binary so verify can check
# that ExecStart exists.  Warnings about the unit fail the step too.
systemd_unit() {
    local unit out
    unit=$(find "$STAGE" -name sparkplaned.service | head -n 1)
    [ -n "$unit" ] || { log "no sparkplaned.service installed"; return 1; }
    if grep -nE '@[a-z]+@|\$\{' "$unit"; then
        log "unexpanded variables in $unit"
        return 1
    fi
    mkdir -p "$WORK/unit"
    sed -e "s|/usr/sbin/sparkplaned|$STAGE/usr/sbin/sparkplaned|g" \
        -e "s|/etc/sparkplane/|$STAGE/etc/sparkplane/|g" "$unit" >"$WORK/unit/sparkplaned.service"
    out=$(systemd-analyze verify "$WORK/unit/sparkplaned.service" 2>&1)
    printf '%s\n' "$out"
    if printf '%s\n' "$out" | grep -q 'sparkplaned.service'; then
        log "systemd-analyze verify complained about the unit"
        return 1
    fi
}

bench_quick() {
    bash "$ROOT/bench/run.sh" --quick --build "$PLAIN_BUILD"
}

bench_jobs_quick() {
    bash "$ROOT/bench/jobs.sh" --quick --build "$PLAIN_BUILD"
}

bench_auth_quick() {
    bash "$ROOT/bench/auth.sh" --quick --build "$PLAIN_BUILD"
}

bench_gateway_quick() {
    bash "$ROOT/bench/gateway.sh" --quick --build "$PLAIN_BUILD"
}

bench_clusters_quick() {
    bash "$ROOT/bench/clusters.sh" --quick --build "$PLAIN_BUILD"
}

# The shipped etc/sparkplane.yaml, with this machine's paths, passes
# --check-config against the installed plugins (what run.sh does too).
default_config() {
    local dir="$WORK/default-config"
    mkdir -p "$dir/conf.d"
    : >"$dir/tokens"
    sed -e "s|/etc/sparkplane/tokens|$dir/tokens|" \
        -e "s|directory: /var/lib/sparkplane|directory: $dir/state|" \
        "$ROOT/etc/sparkplane.yaml" >"$dir/sparkplane.yaml"
    printf 'plugin_directory: %s\n' "$STAGE/usr/lib/sparkplane/plugins" >"$dir/conf.d/10-stage.yaml"
    "$STAGE/usr/sbin/sparkplaned" --config "$dir/sparkplane.yaml" --check-config
}

distcheck() {
    make -C "$PLAIN_BUILD" -j"$JOBS" distcheck
}

# ---- main ----------------------------------------------------------------------

main() {
    step deps bootstrap
    if step_failed deps; then
        printf '\n%s passed, %s failed\n' "$passed" "$failed"
        exit 1
    fi
    # The venv's pytest/requests for the integration tests; configure finds
    # its python3 first.
    export PATH="$ROOT/.venv/bin:$PATH"
    export SPARKPLANE_REQUIRE_INTEGRATION=1
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

    step asan-build asan_build
    if step_failed asan-build; then
        blocked "make check" asan-build
    else
        set +e
        (
            set -euo pipefail
            asan_check
        )
        local check_rc=$? counted_rc=0
        set -e
        count_automake_tests || counted_rc=1
        # make check's own failure counts once more only when no test result
        # says why (a build error in check_PROGRAMS, a crashing harness).
        if [ "$check_rc" -ne 0 ] && [ "$counted_rc" -eq 0 ]; then
            failed=$((failed + 1))
        fi
        if [ "$check_rc" -ne 0 ] || [ "$counted_rc" -ne 0 ]; then
            failed_steps+=("make check")
        fi
    fi

    step fuzz fuzz_short

    step plain-build plain_build
    if step_failed plain-build; then
        blocked sdk-example plain-build
        blocked installed-daemon plain-build
        blocked systemd-unit plain-build
        blocked default-config plain-build
        blocked bench plain-build
        blocked bench-jobs plain-build
        blocked bench-auth plain-build
        blocked bench-gateway plain-build
        blocked bench-clusters plain-build
        blocked distcheck plain-build
    else
        step sdk-example sdk_example
        if step_failed sdk-example; then
            blocked installed-daemon sdk-example
        else
            step installed-daemon installed_daemon
        fi
        if command -v systemd-analyze >/dev/null 2>&1; then
            step systemd-unit systemd_unit
        else
            log "systemd-analyze not found: systemd-unit skipped"
            skipped=$((skipped + 1))
        fi
        step default-config default_config
        step bench bench_quick
        step bench-jobs bench_jobs_quick
        step bench-auth bench_auth_quick
        step bench-gateway bench_gateway_quick
        step bench-clusters bench_clusters_quick
        step distcheck distcheck
    fi

    printf '\n'
    if [ "$failed" -gt 0 ]; then
        log "failed: ${failed_steps[*]}"
    fi
    if [ "$skipped" -gt 0 ]; then
        printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
    else
        printf '%s passed, %s failed\n' "$passed" "$failed"
    fi
    [ "$failed" -eq 0 ]
}

main "$@"
