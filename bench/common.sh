# bench/common.sh - what the bench scripts share, sourced by run.sh, jobs.sh and gateway.sh:
# logging, stopping what a run started, and finding the daemon and its plugins in a build
# tree (BUILD/core/sparkplaned) or an install prefix (BUILD/sbin/sparkplaned).
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
