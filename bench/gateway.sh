#!/usr/bin/env bash
# bench/gateway.sh - the Spark Connect gateway of sparkplaned as a gRPC proxy, against the
# same upstream reached directly and through nghttpx (a plain HTTP/2 proxy), in one run.
#
#   bench/gateway.sh [--quick] [--build DIR]
#
#   --quick      1 round of 3 s per measurement (scripts/test.sh runs this); otherwise
#                3 alternating rounds of 10 s, medians kept
#   --build DIR  a build directory (DIR/core/sparkplaned) or an install prefix
#                (DIR/sbin/sparkplaned); default ./build.  sparkplaned is not built here;
#                the upstream (bench/gateway_echo.c) is compiled into a temporary directory.
#
# The upstream, bench/gateway_echo.c, is a one-thread nghttp2 server answering like gRPC
# (HEADERS, one DATA message, trailers grpc-status 0): unary requests get their message echoed,
# requests with `x-bench-stream: N` get N messages of 4 MiB.  The same client load (h2load,
# one thread) goes to three targets: the upstream directly, sparkplaned's gateway (auth chain
# with auth_token, routing by x-sparkplane-cluster-id to a static cluster, first-message
# prefix read), and nghttpx with one worker (sparkplaned serves from one event loop).
#   (1) unary peak: requests/s with 8 connections x 16 streams;
#   (2) unary latency: p50/p99 at a fixed rate, half of sparkplaned's peak, same for all;
#   (3) server streaming: MiB/s of 4 MiB messages on one stream (direct, gateway, nghttpx);
#   (4) idle memory: VmRSS before and after 10,000 idle HTTP/2 connections (preface +
#       SETTINGS sent, server's SETTINGS received), sparkplaned vs nghttpx (master + worker).
# All processes share the machine's cores; CPU time per request of each server is reported
# so it shows who spent the time.  Nothing is asserted: the script fails only when something
# is broken - a target answers anything but grpc-status 0, h2load counts failed/errored
# requests, or fewer requests reached the upstream than h2load saw succeed.
# shellcheck disable=SC2046,SC2154 # pid lists split on purpose; per-target variables come from eval
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build"
DURATION=10
ROUNDS=3
CLIENTS=8
STREAMS=16
STREAM_MESSAGES=16      # x-bench-stream: messages of 4 MiB per streaming request
STREAM_REQUESTS=8
IDLE_CONNECTIONS=10000
MESSAGE_BYTES=$((4 * 1024 * 1024 + 5))
UNARY_PATH=/spark.connect.SparkConnectService/Config
STREAM_PATH=/spark.connect.SparkConnectService/ExecutePlan
TARGETS="direct sparkplaned nghttpx"

while [ "$#" -gt 0 ]; do
    case "$1" in
    --quick)
        DURATION=3
        ROUNDS=1
        STREAM_REQUESTS=2
        ;;
    --build)
        BUILD=$(cd "${2:?--build needs a directory}" && pwd)
        shift
        ;;
    *)
        echo "bench: unknown argument '$1' (usage: bench/gateway.sh [--quick] [--build DIR])" >&2
        exit 2
        ;;
    esac
    shift
done

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sparkplane-bench-gateway.XXXXXX")
upstream_pid=""
daemon_pid=""
nghttpx_pid=""
idle_pid=""
cleanup() {
    bench_stop "$idle_pid" "$daemon_pid" "$nghttpx_pid" "$upstream_pid"
    rm -rf "$WORK"
}
trap cleanup EXIT

find_tools() {
    bench_find_daemon auth_token
    PLUGIN_DIR=$(dirname "$(bench_plugin auth_token)")
    local tool
    for tool in h2load nghttp cc pkg-config python3 curl openssl; do
        command -v "$tool" >/dev/null ||
            die "$tool is missing (scripts/install-deps.sh --test: nghttp2-client, libnghttp2-dev)"
    done
    NGHTTPX=$(command -v nghttpx || echo /usr/sbin/nghttpx)
    [ -x "$NGHTTPX" ] || die "nghttpx is missing (apt-get install nghttp2-proxy)"
    CLK_TCK=$(getconf CLK_TCK)
}

# 10,000 idle connections need 10,000 descriptors in the server and in the client; both
# inherit this shell's limit.  Without the room, fewer connections are opened (and said so).
raise_fd_limit() {
    local want=$((2 * IDLE_CONNECTIONS + 1024)) hard
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] && hard=$want
    [ "$hard" -lt "$want" ] || hard=$want
    ulimit -n "$hard" 2>/dev/null || true
    local room=$(($(ulimit -n) - 256))
    if [ "$room" -lt "$IDLE_CONNECTIONS" ]; then
        log "warning: ulimit -n allows $(ulimit -n) descriptors: $room idle connections, not" \
            "$IDLE_CONNECTIONS"
        IDLE_CONNECTIONS=$room
    fi
}

# Waits until something accepts TCP on 127.0.0.1:PORT while PID lives (10 s at most).
wait_for_port() {
    local port=$1 pid=$2 deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$port" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_upstream() {
    cc -O2 -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L -o "$WORK/gateway_echo" \
        "$ROOT/bench/gateway_echo.c" $(pkg-config --cflags --libs libnghttp2 libevent) ||
        die "could not compile bench/gateway_echo.c (needs libnghttp2-dev and libevent-dev)"
    UPSTREAM_PORT=$(bench_free_port)
    "$WORK/gateway_echo" "$UPSTREAM_PORT" 2>"$WORK/upstream.log" &
    upstream_pid=$!
    wait_for_port "$UPSTREAM_PORT" "$upstream_pid" ||
        die "gateway_echo did not listen: $(cat "$WORK/upstream.log")"
}

# One small gRPC message as Spark Connect's ConfigRequest starts: session_id (field 1),
# user_context (field 2) with user_id = the token's subject (so nothing is rewritten), then
# 300 bytes standing for the operation (field 3).
write_request_body() {
    python3 - "$WORK/request.bin" <<'EOF'
import struct, sys
def field(number, payload):
    assert len(payload) < 16384
    length = bytes([len(payload)]) if len(payload) < 128 else bytes([len(payload) & 0x7f | 0x80, len(payload) >> 7])
    return bytes([number << 3 | 2]) + length + payload
message = field(1, b"bench-session") + field(2, field(1, b"bench")) + field(3, b"x" * 300)
with open(sys.argv[1], "wb") as out:
    out.write(b"\0" + struct.pack(">I", len(message)) + message)
EOF
    REQUEST_BYTES=$(wc -c <"$WORK/request.bin")
}

start_daemon() {
    local api_port
    api_port=$(bench_free_port)
    DAEMON_PORT=$(bench_free_port)
    TOKEN=$(openssl rand -hex 24)
    mkdir -p "$WORK/state"
    printf '%s bench member bench\n' "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" \
        >"$WORK/tokens"
    chmod 600 "$WORK/tokens"
    # Warnings only, so the daemon writes no per-stream log lines (nghttpx: no access log).
    cat >"$WORK/sparkplane.yaml" <<EOF
server:
  listen: ["127.0.0.1:$api_port"]
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
gateway:
  listen: ["127.0.0.1:$DAEMON_PORT"]
  domain: bench.invalid
clusters:
  - id: bench-dev
    team: bench
    environment: dev
    endpoints: ["127.0.0.1:$UPSTREAM_PORT"]
EOF
    "$DAEMON" --config "$WORK/sparkplane.yaml" 2>"$WORK/sparkplaned.log" &
    daemon_pid=$!
    wait_for_port "$DAEMON_PORT" "$daemon_pid" ||
        die "sparkplaned's gateway did not listen: $(tail -n 20 "$WORK/sparkplaned.log")"
}

# One worker: like-for-like with sparkplaned's single event loop.  No TLS, no access log, no
# Via header; the backend is the upstream over h2c.
start_nghttpx() {
    NGHTTPX_PORT=$(bench_free_port)
    "$NGHTTPX" --conf=/dev/null --workers=1 --no-via --errorlog-file="$WORK/nghttpx.log" \
        --frontend="127.0.0.1,$NGHTTPX_PORT;no-tls" \
        --backend="127.0.0.1,$UPSTREAM_PORT;;proto=h2" &
    nghttpx_pid=$!
    wait_for_port "$NGHTTPX_PORT" "$nghttpx_pid" ||
        die "nghttpx did not listen: $(tail -n 5 "$WORK/nghttpx.log")"
}

port_of() {
    case "$1" in
    direct) printf '%s\n' "$UPSTREAM_PORT" ;;
    sparkplaned) printf '%s\n' "$DAEMON_PORT" ;;
    nghttpx) printf '%s\n' "$NGHTTPX_PORT" ;;
    esac
}

# The processes that do a target's work (nghttpx: master + worker).
pids_of() {
    case "$1" in
    direct) printf '%s\n' "$upstream_pid" ;;
    sparkplaned) printf '%s\n' "$daemon_pid" ;;
    nghttpx) printf '%s %s\n' "$nghttpx_pid" "$(pgrep -P "$nghttpx_pid" | tr '\n' ' ')" ;;
    esac
}

cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    printf '%s\n' "$total"
}

rss_kib() {
    local pid total=0
    for pid in "$@"; do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")))
    done
    printf '%s\n' "$total"
}

served() {
    curl -fsS --max-time 5 --http2-prior-knowledge "http://127.0.0.1:$UPSTREAM_PORT/bench-stats" |
        awk '/^served/ { print $2 }'
}

# One request through TARGET with nghttp: the answer must be HTTP 200, grpc-status 0 in the
# trailers, and the echoed message.  This is what h2load cannot see (it counts HTTP status).
smoke() {
    local target=$1 out
    out=$(nghttp -nv -H "authorization: Bearer $TOKEN" -H 'x-sparkplane-cluster-id: bench-dev' \
        -d "$WORK/request.bin" "http://127.0.0.1:$(port_of "$target")$UNARY_PATH" 2>&1) ||
        die "$target: nghttp failed: $(printf '%s\n' "$out" | tail -n 5)"
    printf '%s\n' "$out" | grep -aq ':status: 200' || die "$target: no :status 200: $out"
    printf '%s\n' "$out" | grep -aq 'grpc-status: 0' ||
        die "$target: no grpc-status 0: $(printf '%s\n' "$out" | grep -a 'grpc-\|:status')"
    printf '%s\n' "$out" | grep -aq "recv DATA frame <length=$REQUEST_BYTES," ||
        die "$target: the echoed message did not come back"
}

# h2load_run NAME TARGET ARGS...: runs h2load against TARGET and prints
# "rps=... seconds=... succeeded=... data_bytes=... cpu_ms=... upstream_cpu_ms=... reached=...".
# Dies when h2load fails, counts a failed/errored/timed-out request, or fewer requests reached
# the upstream than succeeded (the proxy answered without asking the upstream).
h2load_run() {
    local name=$1 target=$2 out before_cpu before_up before_served rps seconds succeeded bad
    shift 2
    before_cpu=$(cpu_ticks $(pids_of "$target"))
    before_up=$(cpu_ticks "$upstream_pid")
    before_served=$(served)
    out=$(h2load -t1 "$@" -H "authorization: Bearer $TOKEN" \
        -H 'x-sparkplane-cluster-id: bench-dev' -d "$WORK/request.bin" \
        "http://127.0.0.1:$(port_of "$target")$PATH_OF_RUN" 2>&1) ||
        die "h2load failed for $name: $(printf '%s\n' "$out" | tail -n 5)"
    printf '%s\n' "$out" | grep -E '^(finished|requests|traffic):' | sed "s/^/  [$name] /" >&2
    # "finished in 2.48s, 20143.24 req/s, 6.95MB/s"
    rps=$(printf '%s\n' "$out" | awk '/^finished in/ { print $4 }')
    seconds=$(printf '%s\n' "$out" | awk '/^finished in/ {
        v = $3; sub(/,$/, "", v)
        if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 } else if (v ~ /us$/) { sub(/us$/, "", v); v /= 1e6 } else sub(/s$/, "", v)
        print v }')
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    succeeded=$(printf '%s\n' "$out" | awk '/^requests:/ { print $8 }')
    bad=$(printf '%s\n' "$out" | awk '/^requests:/ { print $10 + $12 + $14 }')
    [ -n "$rps" ] && [ -n "$succeeded" ] ||
        die "$name: no results from h2load: $out"
    [ "$bad" = 0 ] || die "$name: h2load counted $bad failed, errored or timed-out requests"
    [ "$succeeded" -ge 1 ] || die "$name: no request succeeded"
    local reached=$(($(served) - before_served))
    [ "$reached" -ge "$succeeded" ] ||
        die "$name: $succeeded answers, but only $reached requests reached the upstream"
    printf 'rps=%s seconds=%s succeeded=%s reached=%s data_bytes=%s cpu_ms=%s upstream_cpu_ms=%s\n' \
        "$rps" "$seconds" "$succeeded" "$reached" \
        "$(printf '%s\n' "$out" | awk '/^traffic:/ { v = $(NF - 1); gsub(/[()]/, "", v); print v }')" \
        "$((($(cpu_ticks $(pids_of "$target")) - before_cpu) * 1000 / CLK_TCK))" \
        "$((($(cpu_ticks "$upstream_pid") - before_up) * 1000 / CLK_TCK))"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'
}

median() {
    printf '%s\n' $1 | sort -g |
        awk '{ v[NR] = $1 }
             END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# percentile P LOGFILE: the P-th percentile (ms) of h2load's per-request microseconds (column 3).
percentile() {
    cut -f3 "$2" | sort -n | awk -v p="$1" '{ v[NR] = $1 }
        END { i = int(NR * p / 100 + 0.999999); if (i < 1) i = 1; printf "%.3f\n", v[i] / 1000 }'
}

# CPU microseconds per request: ms * 1000 / requests.
per_request_us() {
    awk -v ms="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f\n", ms * 1000 / n; else print "nan" }'
}

# (1) requests/s at saturation, 3 targets per round, rounds alternating; medians kept.
measure_peak() {
    local round target stats
    PATH_OF_RUN=$UNARY_PATH
    for target in $TARGETS; do
        eval "PEAK_$target='' CPU_$target='' UPCPU_$target=''"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        log "(1) round $round/$ROUNDS: unary peak, $CLIENTS connections x $STREAMS streams," \
            "${DURATION}s per target"
        for target in $TARGETS; do
            stats=$(h2load_run "peak-$target" "$target" -c "$CLIENTS" -m "$STREAMS" \
                -D "$DURATION" --warm-up-time 1)
            eval "PEAK_$target+=' $(bench_field rps "$stats")'"
            eval "CPU_$target+=' $(per_request_us "$(bench_field cpu_ms "$stats")" "$(bench_field reached "$stats")")'"
            eval "UPCPU_$target+=' $(per_request_us "$(bench_field upstream_cpu_ms "$stats")" "$(bench_field reached "$stats")")'"
        done
    done
    for target in $TARGETS; do
        eval "PEAK_$target=\$(median \"\$PEAK_$target\")"
        eval "CPU_$target=\$(median \"\$CPU_$target\")"
        eval "UPCPU_$target=\$(median \"\$UPCPU_$target\")"
    done
}

# latency_round NAME TARGET H2LOAD-ARGS...: appends p50/p99 (ms) and the achieved rate of one
# run to the lists P50_NAME_TARGET, P99_NAME_TARGET, RATE_NAME_TARGET.
latency_round() {
    local name=$1 target=$2 stats
    shift 2
    rm -f "$WORK/latency.log" # h2load appends to its log file
    stats=$(h2load_run "$name-$target" "$target" -D "$DURATION" --log-file="$WORK/latency.log" "$@")
    eval "RATE_${name}_$target+=' $(bench_field rps "$stats")'"
    eval "P50_${name}_$target+=' $(percentile 50 "$WORK/latency.log")'"
    eval "P99_${name}_$target+=' $(percentile 99 "$WORK/latency.log")'"
}

# (2) p50/p99 of every target (a) at a fixed rate, half of sparkplaned's peak, the same for
# all, and (b) with one request at a time on one connection: the time a hop adds without
# queueing.  Rounds alternate targets; medians kept.
measure_latency() {
    local round target name per_client
    PATH_OF_RUN=$UNARY_PATH
    per_client=$(awk -v r="$PEAK_sparkplaned" -v c="$CLIENTS" 'BEGIN { printf "%d\n", r / 2 / c }')
    [ "$per_client" -ge 1 ] || per_client=1
    HALF_RATE=$((per_client * CLIENTS))
    for round in $(seq 1 "$ROUNDS"); do
        log "(2) round $round/$ROUNDS: unary at $HALF_RATE requests/s ($CLIENTS connections x" \
            "$per_client/s), then one at a time, ${DURATION}s per target each"
        for target in $TARGETS; do
            latency_round half "$target" -c "$CLIENTS" -m "$STREAMS" --rps "$per_client"
        done
        for target in $TARGETS; do
            latency_round serial "$target" -c 1 -m 1
        done
    done
    for name in half serial; do
        for target in $TARGETS; do
            eval "P50_${name}_$target=\$(median \"\$P50_${name}_$target\")"
            eval "P99_${name}_$target=\$(median \"\$P99_${name}_$target\")"
            eval "RATE_${name}_$target=\$(median \"\$RATE_${name}_$target\")"
        done
    done
}

# (3) one stream at a time of STREAM_MESSAGES x 4 MiB; MiB/s from the DATA bytes h2load got.
measure_streaming() {
    local round target stats expected mibs
    PATH_OF_RUN=$STREAM_PATH
    expected=$((STREAM_REQUESTS * STREAM_MESSAGES * MESSAGE_BYTES))
    for target in $TARGETS; do
        eval "MIBS_$target='' SCPU_$target=''"
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        log "(3) round $round/$ROUNDS: $STREAM_REQUESTS server streams of $STREAM_MESSAGES x" \
            "4 MiB, one at a time, per target"
        for target in $TARGETS; do
            stats=$(h2load_run "stream-$target" "$target" -c 1 -m 1 -n "$STREAM_REQUESTS" \
                -H "x-bench-stream: $STREAM_MESSAGES")
            [ "$(bench_field data_bytes "$stats")" = "$expected" ] ||
                die "stream-$target: $(bench_field data_bytes "$stats") bytes of DATA, not $expected"
            mibs=$(awk -v b="$expected" -v s="$(bench_field seconds "$stats")" \
                'BEGIN { printf "%.1f\n", b / 1048576 / s }')
            eval "MIBS_$target+=' $mibs'"
            eval "SCPU_$target+=' $(awk -v ms="$(bench_field cpu_ms "$stats")" -v b="$expected" \
                'BEGIN { printf "%.2f\n", ms / (b / 1048576) }')'"
        done
    done
    for target in $TARGETS; do
        eval "MIBS_$target=\$(median \"\$MIBS_$target\")"
        eval "SCPU_$target=\$(median \"\$SCPU_$target\")"
    done
}

# idle_connections TARGET: VmRSS of TARGET's processes before and with IDLE_CONNECTIONS idle
# HTTP/2 connections; sets IDLE_BEFORE_x, IDLE_AFTER_x, IDLE_OPEN_x, IDLE_HELD_x.
idle_connections() {
    local target=$1 before after ready result
    before=$(rss_kib $(pids_of "$target"))
    coproc IDLE { exec python3 "$ROOT/bench/gateway_idle.py" 127.0.0.1 "$(port_of "$target")" \
        "$IDLE_CONNECTIONS" 2>>"$WORK/idle.log"; }
    idle_pid=$IDLE_PID
    read -r -t 300 -u "${IDLE[0]}" ready ||
        die "$target: the idle client did not get its connections up: $(tail -n 3 "$WORK/idle.log")"
    after=$(rss_kib $(pids_of "$target"))
    echo measured >&"${IDLE[1]}"
    read -r -t 60 -u "${IDLE[0]}" result || die "$target: the idle client did not report"
    wait "$idle_pid" || true
    idle_pid=""
    # "ready N" (set up), then "open N closed M" (still open when measured)
    eval "IDLE_BEFORE_$target=$before IDLE_AFTER_$target=$after"
    eval "IDLE_OPEN_$target=${ready#ready }"
    eval "IDLE_HELD_$target=$(printf '%s\n' "$result" | awk '{ print $2 }')"
    log "(4) $target: ${ready#ready } of $IDLE_CONNECTIONS connections set up," \
        "$(printf '%s\n' "$result" | awk '{ print $2 }') still open afterwards;" \
        "VmRSS $before -> $after KiB"
}

per_connection_kib() {
    awk -v a="$2" -v b="$1" -v n="$3" 'BEGIN { if (n > 0) printf "%.2f\n", (a - b) / n; else print "nan" }'
}

# value NAME: the value of the variable NAME (names are built from target names).
value() {
    eval "printf '%s\n' \"\${$1}\""
}

report() {
    local t
    printf '\n  unary %s-byte gRPC message, h2load -t1, %ss x %s rounds (medians)\n' \
        "$REQUEST_BYTES" "$DURATION" "$ROUNDS"
    printf '    %-12s %11s %14s %16s %16s\n' "" "peak req/s" "CPU us/req" \
        "p50/p99 ms at" "p50/p99 ms one"
    printf '    %-12s %11s %14s %16s %16s\n' "" "(${CLIENTS}x${STREAMS})" "(upstream's)" \
        "$HALF_RATE req/s" "at a time"
    for t in $TARGETS; do
        printf '    %-12s %11s %14s %16s %16s\n' "$t" "$(value "PEAK_$t")" \
            "$(value "CPU_$t") ($(value "UPCPU_$t"))" \
            "$(value "P50_half_$t")/$(value "P99_half_$t")" \
            "$(value "P50_serial_$t")/$(value "P99_serial_$t")"
    done
    printf '    achieved at the half-load rate: direct %s, sparkplaned %s, nghttpx %s req/s\n' \
        "$RATE_half_direct" "$RATE_half_sparkplaned" "$RATE_half_nghttpx"
    printf '    peak ratio sparkplaned/nghttpx %s, sparkplaned/direct %s\n' \
        "$(ratio "$PEAK_sparkplaned" "$PEAK_nghttpx")" "$(ratio "$PEAK_sparkplaned" "$PEAK_direct")"
    printf '    p99 added vs direct: at half load sparkplaned %s us, nghttpx %s us;' \
        "$(added_us "$P99_half_sparkplaned" "$P99_half_direct")" \
        "$(added_us "$P99_half_nghttpx" "$P99_half_direct")"
    printf ' one at a time sparkplaned %s us, nghttpx %s us\n' \
        "$(added_us "$P99_serial_sparkplaned" "$P99_serial_direct")" \
        "$(added_us "$P99_serial_nghttpx" "$P99_serial_direct")"
    printf '\n  server streaming, %s x %s messages of 4 MiB, one stream at a time\n' \
        "$STREAM_REQUESTS" "$STREAM_MESSAGES"
    for t in $TARGETS; do
        printf '    %-12s %8s MiB/s   CPU %s ms/MiB\n' "$t" "$(value "MIBS_$t")" "$(value "SCPU_$t")"
    done
    printf '    streaming ratio sparkplaned/direct %s, nghttpx/direct %s\n' \
        "$(ratio "$MIBS_sparkplaned" "$MIBS_direct")" "$(ratio "$MIBS_nghttpx" "$MIBS_direct")"
    printf '\n  %s idle HTTP/2 connections (preface + SETTINGS), VmRSS\n' "$IDLE_CONNECTIONS"
    for t in sparkplaned nghttpx; do
        printf '    %-12s %s -> %s KiB, %s KiB/connection, %s set up, %s still open\n' "$t" \
            "$(value "IDLE_BEFORE_$t")" "$(value "IDLE_AFTER_$t")" \
            "$(per_connection_kib "$(value "IDLE_BEFORE_$t")" "$(value "IDLE_AFTER_$t")" \
                "$(value "IDLE_OPEN_$t")")" "$(value "IDLE_OPEN_$t")" "$(value "IDLE_HELD_$t")"
    done
    printf '    (nghttpx: master + worker)\n\n'

    echo "BENCH BEGIN"
    printf 'duration=%ss\nrounds=%s\nclients=%s\nstreams_per_client=%s\nrequest_bytes=%s\n' \
        "$DURATION" "$ROUNDS" "$CLIENTS" "$STREAMS" "$REQUEST_BYTES"
    for t in $TARGETS; do
        printf '%s_peak_rps=%s\n' "$t" "$(value "PEAK_$t")"
        printf '%s_cpu_us_per_req=%s\n' "$t" "$(value "CPU_$t")"
    done
    printf 'peak_rps_ratio_sparkplaned_nghttpx=%s\n' "$(ratio "$PEAK_sparkplaned" "$PEAK_nghttpx")"
    printf 'peak_rps_ratio_sparkplaned_direct=%s\n' "$(ratio "$PEAK_sparkplaned" "$PEAK_direct")"
    printf 'half_load_rps=%s\n' "$HALF_RATE"
    for t in $TARGETS; do
        printf '%s_half_load_achieved_rps=%s\n' "$t" "$(value "RATE_half_$t")"
        printf '%s_half_load_p50_ms=%s\n' "$t" "$(value "P50_half_$t")"
        printf '%s_half_load_p99_ms=%s\n' "$t" "$(value "P99_half_$t")"
    done
    printf 'sparkplaned_half_load_p99_added_us=%s\n' \
        "$(added_us "$P99_half_sparkplaned" "$P99_half_direct")"
    printf 'nghttpx_half_load_p99_added_us=%s\n' "$(added_us "$P99_half_nghttpx" "$P99_half_direct")"
    for t in $TARGETS; do
        printf '%s_serial_p50_ms=%s\n' "$t" "$(value "P50_serial_$t")"
        printf '%s_serial_p99_ms=%s\n' "$t" "$(value "P99_serial_$t")"
    done
    printf 'sparkplaned_serial_p99_added_us=%s\n' \
        "$(added_us "$P99_serial_sparkplaned" "$P99_serial_direct")"
    printf 'nghttpx_serial_p99_added_us=%s\n' \
        "$(added_us "$P99_serial_nghttpx" "$P99_serial_direct")"
    printf 'stream_messages=%s\nstream_requests=%s\n' "$STREAM_MESSAGES" "$STREAM_REQUESTS"
    for t in $TARGETS; do
        printf '%s_stream_mibs=%s\n' "$t" "$(value "MIBS_$t")"
        printf '%s_stream_cpu_ms_per_mib=%s\n' "$t" "$(value "SCPU_$t")"
    done
    printf 'stream_ratio_sparkplaned_direct=%s\n' "$(ratio "$MIBS_sparkplaned" "$MIBS_direct")"
    printf 'stream_ratio_nghttpx_direct=%s\n' "$(ratio "$MIBS_nghttpx" "$MIBS_direct")"
    printf 'idle_connections=%s\n' "$IDLE_CONNECTIONS"
    for t in sparkplaned nghttpx; do
        printf '%s_idle_set_up=%s\n' "$t" "$(value "IDLE_OPEN_$t")"
        printf '%s_idle_still_open=%s\n' "$t" "$(value "IDLE_HELD_$t")"
        printf '%s_rss_before_kib=%s\n' "$t" "$(value "IDLE_BEFORE_$t")"
        printf '%s_rss_idle_kib=%s\n' "$t" "$(value "IDLE_AFTER_$t")"
        printf '%s_kib_per_idle_connection=%s\n' "$t" \
            "$(per_connection_kib "$(value "IDLE_BEFORE_$t")" "$(value "IDLE_AFTER_$t")" \
                "$(value "IDLE_OPEN_$t")")"
    done
    printf 'idle_rss_ratio_sparkplaned_nghttpx=%s\n' \
        "$(ratio "$IDLE_AFTER_sparkplaned" "$IDLE_AFTER_nghttpx")"
    echo "BENCH END"
}

added_us() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (a - b) * 1000 }'
}

main() {
    find_tools
    raise_fd_limit
    write_request_body
    start_upstream
    start_daemon
    start_nghttpx
    log "sparkplaned: $DAEMON; nghttpx: $NGHTTPX (1 worker); upstream: bench/gateway_echo.c;" \
        "h2load -t1; ulimit -n $(ulimit -n)"
    local target
    for target in $TARGETS; do
        smoke "$target"
    done
    measure_peak
    measure_latency
    measure_streaming
    # Idle memory last, on servers that have served load (allocators keep what they used).
    idle_connections sparkplaned
    idle_connections nghttpx
    report
}

main
