# bench/common.sh - what the bench scripts share, sourced by every bench/*.sh: logging,
# stopping what a run started, free ports, finding the daemon and its plugins in a build
# tree (BUILD/core/sparkplaned) or an install prefix (BUILD/sbin/sparkplaned), starting and
# stopping it, and calling its API.
# shellcheck shell=bash

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

# bench_stop PID...: SIGTERM each one still running and reap it ("" is skipped).
bench_stop() {
    local pid
    for pid in "$@"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}

# bench_plugin NAME: the path of plugin NAME's .so under BUILD (it may not exist).
bench_plugin() {
    if [ -x "$BUILD/core/sparkplaned" ]; then
        printf '%s\n' "$BUILD/plugins/$1/.libs/$1.so"
    else
        printf '%s\n' "$BUILD/lib/sparkplane/plugins/$1.so"
    fi
}

# bench_find_daemon PLUGIN...: sets DAEMON, and dies unless it and every named plugin are
# there.  Warns when the daemon is built with sanitizers (its numbers mean little then).
bench_find_daemon() {
    local plugin
    if [ -x "$BUILD/core/sparkplaned" ]; then
        DAEMON="$BUILD/core/sparkplaned"
    elif [ -x "$BUILD/sbin/sparkplaned" ]; then
        DAEMON="$BUILD/sbin/sparkplaned"
    else
        die "no sparkplaned in $BUILD (build first, e.g. scripts/run.sh, or pass --build DIR)"
    fi
    for plugin in "$@"; do
        [ -f "$(bench_plugin "$plugin")" ] || die "no $(bench_plugin "$plugin") (build the plugin)"
    done
    if ldd "$DAEMON" 2>/dev/null | grep -q 'libasan\|libubsan'; then
        log "warning: $DAEMON is built with sanitizers; its numbers are not meaningful"
    fi
}

# bench_free_port: a TCP port free on 127.0.0.1 right now.
bench_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# bench_field NAME "k=v k=v ...": the value of NAME.
bench_field() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# bench_start_daemon [SECONDS]: starts $DAEMON with $WORK/sparkplane.yaml (log in
# $WORK/sparkplaned.log), sets daemon_pid, and waits up to SECONDS (60) for $URL/healthz.
bench_start_daemon() {
    local deadline=$((SECONDS + ${1:-60}))
    "$DAEMON" --config "$WORK/sparkplane.yaml" 2>>"$WORK/sparkplaned.log" &
    daemon_pid=$!
    while [ "$SECONDS" -lt "$deadline" ]; do
        curl -fsS --max-time 2 -o /dev/null "$URL/healthz" 2>/dev/null && return 0
        kill -0 "$daemon_pid" 2>/dev/null || break
        sleep 0.1
    done
    die "sparkplaned did not answer /healthz: $(tail -n 20 "$WORK/sparkplaned.log")"
}

# bench_stop_daemon: stops it; a sanitizer report in its log (a sanitizer build) is a failure.
bench_stop_daemon() {
    local report
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
    report=$(grep -m1 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' \
        "$WORK/sparkplaned.log" || true)
    [ -z "$report" ] || die "sparkplaned: $report"
}

# bench_api TOKEN METHOD PATH [BODY]: prints the body; dies unless the answer is 2xx.
bench_api() {
    local out code
    out=$(curl -sS --max-time 10 -w '\n%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' ${4:+--data "$4"} "$URL$3") ||
        die "$2 $3: curl failed"
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    case "$code" in
    2??) printf '%s\n' "$out" ;;
    *) die "$2 $3 answered $code: $out" ;;
    esac
}
