#!/usr/bin/env bash
# bench/jobs.sh - the jobs API of sparkplaned, measured against the same daemon's /healthz,
# and its read latency with 1,000 and with 1,000,000 jobs in the store, in one run.
#
#   bench/jobs.sh [--quick] [--build DIR]
#
#   --quick      3 s of load per throughput measurement (2 s per latency round) and
#                100,000 jobs instead of 1,000,000
#   --build DIR  a build directory (DIR/core/sparkplaned) or an install prefix
#                (DIR/sbin/sparkplaned); default ./build.  Nothing is built here.
#
# Jobs run on backend_sim, the SIMULATED backend (no Spark), so the daemon's API, runner
# and store are what is measured.  The daemon and wrk share the machine (wrk: one thread).
#   (a) durable submits/s: POST /api/v1/jobs with a new Idempotency-Key per request (each
#       answer means the job is committed) vs GET /healthz, 32 connections;
#   (b) GET /api/v1/jobs/{id} (random ids of the jobs from (a)) vs GET /healthz, 32 connections;
#   (c) p50/p99 of GET /api/v1/jobs/{id} and of GET /api/v1/jobs?team=bench&limit=100 following
#       page tokens, one connection (latency without queueing), on a store of 1,000 and one of
#       1,000,000 jobs bulk-inserted into the SQLite file while no daemon runs
#       (bench/jobs_bulk.py); 3 alternating rounds (small, big, ...) of 5 s, medians kept.
# Nothing is asserted: the script fails only when something does not run (the daemon does
# not start, an answer is not 2xx, wrk fails).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LUA="$ROOT/bench/jobs.lua"
BUILD="$ROOT/build"
DURATION=10s
BIG=1000000
SMALL=1000
CONNECTIONS=32
PAGES=5
DRAIN_TIMEOUT=180
LATENCY_DURATION=5s
ROUNDS=3

while [ "$#" -gt 0 ]; do
    case "$1" in
    --quick)
        DURATION=3s
        LATENCY_DURATION=2s
        BIG=100000
        ;;
    --build)
        BUILD=$(cd "${2:?--build needs a directory}" && pwd)
        shift
        ;;
    *)
        echo "bench: unknown argument '$1' (usage: bench/jobs.sh [--quick] [--build DIR])" >&2
        exit 2
        ;;
    esac
    shift
done

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sparkplane-bench-jobs.XXXXXX")
daemon_pid=""
cleanup() {
    bench_stop "$daemon_pid"
    rm -rf "$WORK"
}
trap cleanup EXIT

find_daemon() {
    bench_find_daemon auth_token backend_sim
    AUTH_SO=$(bench_plugin auth_token)
    SIM_SO=$(bench_plugin backend_sim)
    command -v wrk >/dev/null || die "wrk is missing (scripts/install-deps.sh --test)"
    command -v sqlite3 >/dev/null || die "sqlite3 is missing (apt-get install sqlite3)"
}

# An admin token for every team: the bench reads jobs of two teams.
make_token() {
    TOKEN=$(openssl rand -hex 24)
    printf '%s bench admin *\n' "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" \
        >"$WORK/tokens"
    chmod 600 "$WORK/tokens"
}

# write_config STATE_DIR: a config for that state directory on a fresh loopback port.
write_config() {
    PORT=$(bench_free_port)
    URL="http://127.0.0.1:$PORT"
    mkdir -p "$1"
    # Limits high enough that admission never holds the bench's jobs back; warnings only,
    # so the daemon writes no per-request or per-job log lines.
    cat >"$WORK/sparkplane.yaml" <<EOF
server:
  listen: ["127.0.0.1:$PORT"]
log:
  level: warn
state:
  directory: $1
plugin_directory: $(dirname "$AUTH_SO")
plugins:
  auth_token:
    path: $AUTH_SO
    options:
      tokens_file: $WORK/tokens
  backend_sim:
    path: $SIM_SO
    options:
      run_duration: 1s
      max_concurrent_jobs: 100000
auth:
  chain: [auth_token]
runner:
  default_backend: sim
  max_starting_per_backend: 1000
  max_running_per_backend: 100000
  max_running_per_team: 100000
spark_versions:
  "4.0":
    spark_home: /nonexistent/spark-not-used-by-backend-sim
EOF
    DB="$1/sparkplane.db"
}

json_field() {
    python3 -c 'import json, sys
value = json.load(sys.stdin).get(sys.argv[1])
print(value if value is not None else "")' "$1"
}

# wrk_run NAME CONNECTIONS DURATION SCRIPT URL ARGS...: prints the WRK_STATS fields.
# Dies when wrk fails, an answer was not 2xx, or nothing was served.
wrk_run() {
    local name=$1 connections=$2 duration=$3 script=$4 url=$5 out stats
    shift 5
    out=$(wrk -t1 -c"$connections" -d"$duration" --timeout 5s -s "$script" "$url" -- "$@") ||
        die "wrk failed for $name: $out"
    printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
    stats=$(printf '%s\n' "$out" | sed -n 's/^WRK_STATS //p')
    [ -n "$stats" ] || die "no WRK_STATS from wrk for $name"
    [ "$(bench_field non2xx "$stats")" = 0 ] || die "$name: $(bench_field non2xx "$stats") answers were not 2xx"
    awk -v r="$(bench_field requests "$stats")" 'BEGIN { exit !(r >= 1) }' || die "$name served nothing"
    printf '%s\n' "$stats"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'
}

sql() {
    sqlite3 -cmd '.timeout 5000' "file:$DB?mode=ro" "$1"
}

# Waits until no job is in flight, so the next measurement has the daemon to itself.
wait_drained() {
    local deadline=$((SECONDS + DRAIN_TIMEOUT)) left
    while :; do
        left=$(sql "SELECT count(*) FROM jobs
                    WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')")
        [ "$left" = 0 ] && break
        [ "$SECONDS" -ge "$deadline" ] && break
        sleep 0.5
    done
    IN_FLIGHT=$left
}

# Walks the team's pages once with curl and prints how many page tokens were followed.
walk_pages() {
    local path token="" followed=0 page
    for ((page = 1; page <= PAGES; page++)); do
        path="/api/v1/jobs?team=bench&limit=100${token:+&page_token=$token}"
        token=$(bench_api "$TOKEN" GET "$path" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print(doc.get("next_page_token") or doc.get("page_token") or "")')
        [ -n "$token" ] || break
        [ "$page" -lt "$PAGES" ] && followed=$((followed + 1))
    done
    printf '%s\n' "$followed"
}

# Phase 1: throughput of submits and of reads, each against /healthz right before it.
measure_throughput() {
    local body job_id stats
    write_config "$WORK/state-throughput"
    bench_start_daemon 60
    body='{"name":"bench-smoke","team":"bench","spark_version":"4.0",
           "application":{"file":"local:///bench/job.py"}}'
    job_id=$(bench_api "$TOKEN" POST /api/v1/jobs "$body" | json_field id)
    [ -n "$job_id" ] || die "POST /api/v1/jobs answered no id"
    bench_api "$TOKEN" GET "/api/v1/jobs/$job_id" >/dev/null

    log "(a) /healthz, then POST /api/v1/jobs, $CONNECTIONS connections, $DURATION each"
    stats=$(wrk_run healthz-a "$CONNECTIONS" "$DURATION" "$LUA" "$URL" healthz "$TOKEN")
    HEALTHZ_A=$(bench_field rps "$stats")
    stats=$(wrk_run submit "$CONNECTIONS" "$DURATION" "$LUA" "$URL" submit "$TOKEN" "run$$")
    SUBMIT_RPS=$(bench_field rps "$stats")
    SUBMIT_REQUESTS=$(bench_field requests "$stats")
    SUBMIT_P99=$(bench_field p99_ms "$stats")
    # Durable: every acknowledged submit is in the store (requests still in flight when wrk
    # stopped may add a few more).
    JOBS_STORED=$(sql "SELECT count(*) FROM jobs WHERE name = 'bench-submit'")
    [ "$JOBS_STORED" -ge "$SUBMIT_REQUESTS" ] ||
        die "only $JOBS_STORED of $SUBMIT_REQUESTS acknowledged submits are in the store"

    log "waiting (up to ${DRAIN_TIMEOUT}s) for the $JOBS_STORED jobs to finish on backend sim"
    local began=$SECONDS
    wait_drained
    DRAIN_SECONDS=$((SECONDS - began))
    JOBS_STORED=$(sql "SELECT count(*) FROM jobs WHERE name = 'bench-submit'")
    FINISHED=$(sql "SELECT count(*) FROM jobs
                    WHERE name = 'bench-submit' AND state IN ('SUCCEEDED', 'FAILED')")
    sql "SELECT id FROM jobs" >"$WORK/ids"

    log "(b) /healthz, then GET /api/v1/jobs/{id} over $(wc -l <"$WORK/ids") ids"
    stats=$(wrk_run healthz-b "$CONNECTIONS" "$DURATION" "$LUA" "$URL" healthz "$TOKEN")
    HEALTHZ_B=$(bench_field rps "$stats")
    stats=$(wrk_run get "$CONNECTIONS" "$DURATION" "$LUA" "$URL" get "$TOKEN" "$WORK/ids")
    GET_RPS=$(bench_field rps "$stats")
    bench_stop_daemon
    SPEC_DB=$DB
}

# measure_latency LABEL JOBS STATE_DIR: one round of p50/p99 of one job and of the list, on
# one connection; each value is appended to the LABEL's list (medians are taken at the end).
measure_latency() {
    local label=$1 jobs=$2 stats pages
    write_config "$3"
    bench_start_daemon 60
    pages=$(walk_pages)
    eval "PAGES_$label=$pages"
    bench_api "$TOKEN" GET "/api/v1/jobs/job-$(printf '%026d' $((jobs - 2)))" >/dev/null
    stats=$(wrk_run "get-$label" 1 "$LATENCY_DURATION" "$LUA" "$URL" get "$TOKEN" "seq:$jobs")
    eval "GET_P50_$label+=' $(bench_field p50_ms "$stats")' GET_P99_$label+=' $(bench_field p99_ms "$stats")'"
    stats=$(wrk_run "list-$label" 1 "$LATENCY_DURATION" "$ROOT/bench/jobs_list.lua" "$URL" \
        "$TOKEN" bench "$PAGES")
    eval "LIST_P50_$label+=' $(bench_field p50_ms "$stats")' LIST_P99_$label+=' $(bench_field p99_ms "$stats")'"
    bench_stop_daemon
}

median() {
    printf '%s\n' $1 | sort -g |
        awk '{ v[NR] = $1 }
             END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bulk_insert() {
    local out
    out=$(python3 "$ROOT/bench/jobs_bulk.py" "$1" "$2" --spec-from "$SPEC_DB") ||
        die "bulk insert of $2 jobs failed"
    log "bulk insert: $out"
    BULK_SECONDS=$(bench_field seconds "$out")
}

# Phase 2: the same reads on a small and on a big table, filled while no daemon runs.  The
# two stores are measured in alternating rounds (small, big, small, big, ...) and the medians
# kept, so load from elsewhere on the machine hits both sides alike.
measure_scaling() {
    local small_dir=$WORK/state-small big_dir=$WORK/state-big round
    write_config "$small_dir"
    bench_start_daemon 60 # creates the schema
    bench_stop_daemon
    bulk_insert "$small_dir/sparkplane.db" "$SMALL"
    cp -a "$small_dir" "$big_dir"
    bulk_insert "$big_dir/sparkplane.db" "$BIG"
    BIG_INSERT_SECONDS=$BULK_SECONDS
    DB_MIB=$(($(stat -c %s "$big_dir/sparkplane.db") / 1048576))
    GET_P50_small="" GET_P99_small="" LIST_P50_small="" LIST_P99_small=""
    GET_P50_big="" GET_P99_big="" LIST_P50_big="" LIST_P99_big=""
    for ((round = 1; round <= ROUNDS; round++)); do
        log "(c) round $round/$ROUNDS: $SMALL then $BIG jobs, GET /api/v1/jobs/{id} and the" \
            "list, 1 connection, $LATENCY_DURATION each"
        measure_latency small "$SMALL" "$small_dir"
        measure_latency big "$BIG" "$big_dir"
    done
    for name in GET_P50 GET_P99 LIST_P50 LIST_P99; do
        for label in small big; do
            eval "${name}_$label=\$(median \"\$${name}_$label\")"
        done
    done
}

main() {
    find_daemon
    make_token
    measure_throughput
    measure_scaling

    local submit_ratio get_ratio
    submit_ratio=$(ratio "$SUBMIT_RPS" "$HEALTHZ_A")
    get_ratio=$(ratio "$GET_RPS" "$HEALTHZ_B")
    log "(a) durable submits $SUBMIT_RPS/s vs /healthz $HEALTHZ_A/s: ratio $submit_ratio" \
        "($JOBS_STORED stored, $FINISHED finished on sim ${DRAIN_SECONDS}s later)"
    log "(b) GET /jobs/{id} $GET_RPS/s vs /healthz $HEALTHZ_B/s: ratio $get_ratio"
    log "(c) GET /jobs/{id} p50 ${GET_P50_small}ms -> ${GET_P50_big}ms," \
        "p99 ${GET_P99_small}ms -> ${GET_P99_big}ms ($SMALL -> $BIG jobs)"
    log "(c) list p50 ${LIST_P50_small}ms -> ${LIST_P50_big}ms," \
        "p99 ${LIST_P99_small}ms -> ${LIST_P99_big}ms (pages followed: $PAGES_small, $PAGES_big)"
    cat <<EOF
BENCH BEGIN
duration=$DURATION
connections=$CONNECTIONS
healthz_rps_a=$HEALTHZ_A
submit_rps=$SUBMIT_RPS
submit_p99_ms=$SUBMIT_P99
submit_ratio=$submit_ratio
jobs_stored=$JOBS_STORED
jobs_finished=$FINISHED
jobs_in_flight_after_drain=$IN_FLIGHT
drain_seconds=$DRAIN_SECONDS
healthz_rps_b=$HEALTHZ_B
get_rps=$GET_RPS
get_ratio=$get_ratio
small_jobs=$SMALL
big_jobs=$BIG
big_insert_seconds=$BIG_INSERT_SECONDS
big_db_mib=$DB_MIB
get_p50_ms_small=$GET_P50_small
get_p99_ms_small=$GET_P99_small
get_p50_ms_big=$GET_P50_big
get_p99_ms_big=$GET_P99_big
get_p50_ratio=$(ratio "$GET_P50_big" "$GET_P50_small")
get_p99_ratio=$(ratio "$GET_P99_big" "$GET_P99_small")
list_pages_followed_small=$PAGES_small
list_pages_followed_big=$PAGES_big
list_p50_ms_small=$LIST_P50_small
list_p99_ms_small=$LIST_P99_small
list_p50_ms_big=$LIST_P50_big
list_p99_ms_big=$LIST_P99_big
list_p50_ratio=$(ratio "$LIST_P50_big" "$LIST_P50_small")
list_p99_ratio=$(ratio "$LIST_P99_big" "$LIST_P99_small")
BENCH END
EOF
}

main
