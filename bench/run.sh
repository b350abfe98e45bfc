#!/usr/bin/env bash
# bench/run.sh - sparkplaned's /healthz against nginx serving the same bytes,
# measured in the same run on the same machine, reported as ratios.
#
#   bench/run.sh [--quick] [--build DIR]
#
#   --quick      3 s of load per server instead of 10 s
#   --build DIR  a build directory (DIR/core/sparkplaned) or an install prefix
#                (DIR/sbin/sparkplaned); default ./build.  Nothing is built here.
#
# Each server runs alone on 127.0.0.1 (sparkplaned, then nginx), so they never
# share the two cores; wrk uses one thread and 32 keep-alive connections.
# nginx runs one worker process because sparkplaned serves from one event
# loop: that is the like-for-like baseline.  Idle memory is VmRSS after start
# and before load (nginx: master + worker).  Numbers are printed, never
# asserted: the script fails only when a server or wrk does not work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=10s
BUILD="$ROOT/build"
CONNECTIONS=32

while [ "$#" -gt 0 ]; do
    case "$1" in
    --quick) DURATION=3s ;;
    --build)
        BUILD=$(cd "${2:?--build needs a directory}" && pwd)
        shift
        ;;
    *)
        echo "bench: unknown argument '$1' (usage: bench/run.sh [--quick] [--build DIR])" >&2
        exit 2
        ;;
    esac
    shift
done

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sparkplane-bench.XXXXXX")
daemon_pid=""
nginx_pid=""
cleanup() {
    bench_stop "$daemon_pid" "$nginx_pid"
    rm -rf "$WORK"
}
trap cleanup EXIT

find_daemon() {
    bench_find_daemon auth_token
    PLUGIN_DIR=$(dirname "$(bench_plugin auth_token)")
    command -v wrk >/dev/null || die "wrk is missing (scripts/install-deps.sh --test)"
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$NGINX" ] || die "nginx is missing (scripts/install-deps.sh --test)"
}

# Polls until `curl URL` succeeds or the process is gone (10 s at most).
wait_for_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Runs wrk and prints "requests/s socket-errors".  Fails when the server
# answered non-2xx or served (almost) nothing; socket errors are reported.
load() {
    local url=$1 name=$2 out rps errors
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 2s "$url")
    printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
    if printf '%s\n' "$out" | grep -q 'Non-2xx or 3xx responses'; then
        die "$name answered errors under load"
    fi
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
    [ -n "$rps" ] || die "no Requests/sec from wrk for $name"
    awk -v r="$rps" 'BEGIN { exit !(r >= 1) }' || die "$name served $rps requests/s"
    # "Socket errors: connect 0, read 3, write 0, timeout 12"
    errors=$(printf '%s\n' "$out" | awk -F'[ ,]+' '/Socket errors:/ { print $4 + $6 + $8 + $10 }')
    printf '%s %s\n' "$rps" "${errors:-0}"
}

start_daemon() {
    local token
    DAEMON_PORT=$(bench_free_port)
    token=$(openssl rand -hex 24)
    mkdir -p "$WORK/state"
    printf '%s bench admin bench\n' "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" >"$WORK/tokens"
    # Warnings only, like nginx with access_log off: no per-request logging.
    cat >"$WORK/sparkplane.yaml" <<EOF
server:
  listen: ["127.0.0.1:$DAEMON_PORT"]
log:
  level: warn
state:
  directory: $WORK/state
plugin_directory: $PLUGIN_DIR
plugins:
  auth_token:
    options:
      tokens_file: $WORK/tokens
auth:
  chain: [auth_token]
EOF
    "$DAEMON" --config "$WORK/sparkplane.yaml" 2>"$WORK/sparkplaned.log" &
    daemon_pid=$!
    wait_for_http "http://127.0.0.1:$DAEMON_PORT/healthz" "$daemon_pid" ||
        die "sparkplaned did not answer /healthz: $(tail -n 20 "$WORK/sparkplaned.log")"
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# nginx with its own prefix, so nothing under /etc/nginx or /var/log is used.
start_nginx() {
    NGINX_PORT=$(bench_free_port)
    mkdir -p "$WORK/nginx/html" "$WORK/nginx/tmp"
    cp "$WORK/healthz.body" "$WORK/nginx/html/healthz"
    # Started as root, nginx's worker runs as an unprivileged user: let it
    # through the (0700) work directory to the one file it serves.
    chmod 711 "$WORK" "$WORK/nginx"
    chmod 755 "$WORK/nginx/html"
    chmod 644 "$WORK/nginx/html/healthz"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/nginx/html;
        location = /healthz { default_type application/json; }
    }
}
EOF
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
    nginx_pid=$!
    wait_for_http "http://127.0.0.1:$NGINX_PORT/healthz" "$nginx_pid" ||
        die "nginx did not serve /healthz: $(tail -n 5 "$WORK/nginx/error.log" 2>/dev/null)"
}

nginx_rss_kib() {
    local total worker
    total=$(rss_kib "$nginx_pid")
    for worker in $(pgrep -P "$nginx_pid"); do
        total=$((total + $(rss_kib "$worker")))
    done
    printf '%s\n' "$total"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'
}

main() {
    find_daemon
    log "sparkplaned: $DAEMON; nginx: $NGINX; wrk -t1 -c$CONNECTIONS -d$DURATION"

    start_daemon
    sleep 0.5
    daemon_rss=$(rss_kib "$daemon_pid")
    curl -fsS --max-time 10 -o "$WORK/healthz.body" "http://127.0.0.1:$DAEMON_PORT/healthz"
    body_bytes=$(wc -c <"$WORK/healthz.body")
    read -r daemon_rps daemon_errors < <(load "http://127.0.0.1:$DAEMON_PORT/healthz" sparkplaned)
    stop_pid "$daemon_pid"
    daemon_pid=""

    start_nginx
    sleep 0.5
    nginx_rss=$(nginx_rss_kib)
    read -r nginx_rps nginx_errors < <(load "http://127.0.0.1:$NGINX_PORT/healthz" nginx)
    stop_pid "$nginx_pid"
    nginx_pid=""

    cat <<EOF

  /healthz (${body_bytes}-byte body), wrk -t1 -c$CONNECTIONS -d$DURATION, keep-alive
    sparkplaned  $daemon_rps req/s    idle RSS $daemon_rss KiB    socket errors $daemon_errors
    nginx        $nginx_rps req/s    idle RSS $nginx_rss KiB    socket errors $nginx_errors (master + 1 worker)
    throughput ratio sparkplaned/nginx  $(ratio "$daemon_rps" "$nginx_rps")
    memory ratio     sparkplaned/nginx  $(ratio "$daemon_rss" "$nginx_rss")

BENCH BEGIN
duration=$DURATION
connections=$CONNECTIONS
body_bytes=$body_bytes
sparkplaned_rps=$daemon_rps
nginx_rps=$nginx_rps
sparkplaned_socket_errors=$daemon_errors
nginx_socket_errors=$nginx_errors
rps_ratio=$(ratio "$daemon_rps" "$nginx_rps")
sparkplaned_idle_rss_kib=$daemon_rss
nginx_idle_rss_kib=$nginx_rss
rss_ratio=$(ratio "$daemon_rss" "$nginx_rss")
BENCH END
EOF
}

main
