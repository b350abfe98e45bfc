#!/usr/bin/env bash
# bench/auth.sh - what authentication costs per request: a static token (auth_token) against
# JWTs (auth_jwt) with the verified-token cache warm and cold, per signature algorithm, in one
# run, as requests/s of the same authenticated read.
#
#   bench/auth.sh [--quick] [--build DIR]
#
#   --quick      3 s of load per measurement (scripts/test.sh runs this); otherwise 10 s
#   --build DIR  a build directory (DIR/core/sparkplaned) or an install prefix
#                (DIR/sbin/sparkplaned); default ./build.  Nothing is built here.
#
# Every measurement is `wrk -t1 -c32` (keep-alive) on GET /api/v1/jobs/{id}, the same id every
# time (one job submitted first; backend_sim, the SIMULATED backend, runs it).  The chain is
# [auth_jwt, auth_token], as the auth_jwt README suggests, so a static token first passes
# auth_jwt's "is this a JWS?" check and defers.  Keys and tokens are made by
# bench/auth_tokens.py (PyJWT from .venv when there, else python3 + cryptography); the JWKS
# is a jwks_file.
#   daemon 1, cache_size 1024 (the default):
#     (a) static token - the baseline (measured before and after (b), the mean kept; the
#         same for every baseline below);
#     (b) one RS256 JWT on every request: the cache is warm after the first request
#         (the run checks that /metrics counted the hits);
#   daemon 2, same store, cache_size 0 - every request verifies a signature (the simplest
#   honest "cold" case: no cache at all, rather than cycling through many tokens):
#     (a2) static token again - the baseline of this daemon;
#     (c/d) RS256, ES256 and EdDSA JWTs.
#   daemons 4 and 3, same store, a TLS listener (server.tls, client_certificates: request)
#   and auth_mtls first in the chain, its verified-chain cache off (cache_size 0: every request
#   verifies the chain) and then on (1024; the run checks the hits); wrk cannot present a
#   client certificate, so wrk talks plain
#   HTTP to nginx (one worker), which keeps TLS connections to that listener open:
#     (e1) static token over TLS: nginx forwards the request as it came;
#     (e2) client certificate over TLS: nginx presents the client certificate
#          (proxy_ssl_certificate) and drops the Authorization header, so auth_mtls decides.
#   Both go through the same proxy, to the same listener, with the same wrk request, so the
#   proxy's cost is on both sides.  Skipped (and said so) when the build has no auth_mtls
#   or nginx is missing.
# Ratios are JWT requests/s / static requests/s of the same daemon.  Nothing is asserted:
# the script fails only when something does not run (the daemon does not start, an answer is
# not 2xx, wrk fails, auth_jwt did not decide the JWT requests).
# shellcheck disable=SC2154 # COLD_RPS_<alg> are set with eval
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LUA="$ROOT/bench/jobs.lua"
BUILD="$ROOT/build"
DURATION=10s
CONNECTIONS=32
ISSUER=https://idp.bench.invalid/oauth2/default
AUDIENCE=sparkplane
GROUP=bench-admins

while [ "$#" -gt 0 ]; do
    case "$1" in
    --quick) DURATION=3s ;;
    --build)
        BUILD=$(cd "${2:?--build needs a directory}" && pwd)
        shift
        ;;
    *)
        echo "bench: unknown argument '$1' (usage: bench/auth.sh [--quick] [--build DIR])" >&2
        exit 2
        ;;
    esac
    shift
done

# shellcheck source=bench/common.sh
. "$ROOT/bench/common.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sparkplane-bench-auth.XXXXXX")
daemon_pid=""
nginx_pid=""
cleanup() {
    bench_stop "$nginx_pid" "$daemon_pid"
    rm -rf "$WORK"
}
trap cleanup EXIT

# The Python that mints tokens: $SPARKPLANE_PYTHON, the repository's .venv (PyJWT), else
# python3; it needs `cryptography` either way.
find_python() {
    local candidate
    for candidate in "${SPARKPLANE_PYTHON:-}" "$ROOT/.venv/bin/python" \
        "$ROOT/tests/integration/.venv/bin/python" "$(command -v python3 || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] &&
            "$candidate" -c 'import cryptography' 2>/dev/null; then
            PYTHON=$candidate
            return 0
        fi
    done
    die "no python with the cryptography module (scripts/install-deps.sh --test)"
}

find_tools() {
    bench_find_daemon auth_token auth_jwt backend_sim
    TOKEN_SO=$(bench_plugin auth_token)
    JWT_SO=$(bench_plugin auth_jwt)
    SIM_SO=$(bench_plugin backend_sim)
    command -v wrk >/dev/null || die "wrk is missing (scripts/install-deps.sh --test)"
    command -v openssl >/dev/null || die "openssl is missing"
    find_python
    SANITIZER_BUILD=no
    if ldd "$DAEMON" 2>/dev/null | grep -q 'libasan\|libubsan'; then
        SANITIZER_BUILD=yes
    fi
}

# A static admin token for every team, and the JWKS plus one JWT per algorithm whose group
# maps to admin of every team: both kinds of caller are the same principal shape.
make_credentials() {
    local out
    STATIC_TOKEN=$(openssl rand -hex 24)
    printf '%s bench admin *\n' "$(printf '%s' "$STATIC_TOKEN" | sha256sum | cut -d' ' -f1)" \
        >"$WORK/tokens"
    chmod 600 "$WORK/tokens"
    out=$("$PYTHON" "$ROOT/bench/auth_tokens.py" "$WORK" "$ISSUER" "$AUDIENCE" "$GROUP") ||
        die "bench/auth_tokens.py failed"
    MINTED_WITH=$(bench_field minted_with "$out")
    log "keys made, tokens minted with $MINTED_WITH ($PYTHON)"
}

# write_config CACHE_SIZE [tls]: the daemon's config on a fresh loopback port, the store in
# $WORK/state (kept between the daemons).  With "tls": a TLS listener on $TLS_PORT that asks
# for client certificates, and auth_mtls first in the chain.
write_config() {
    local tls="" mtls="" chain="auth_jwt, auth_token"
    PORT=$(bench_free_port)
    URL="http://127.0.0.1:$PORT"
    mkdir -p "$WORK/state"
    if [ "${2:-}" = tls ]; then
        TLS_PORT=$(bench_free_port)
        tls="  tls:
    listen: [\"127.0.0.1:$TLS_PORT\"]
    certificate: $WORK/pki/server.pem
    key: $WORK/pki/server.key
    client_certificates: request"
        mtls="  auth_mtls:
    path: $MTLS_SO
    options:
      ca_file: $WORK/pki/ca.pem
      cache_size: $1
      map: [\"bench-client=bench:admin\"]"
        chain="auth_mtls, $chain"
    fi
    cat >"$WORK/sparkplane.yaml" <<EOF
server:
  listen: ["127.0.0.1:$PORT"]
$tls
log:
  level: warn
state:
  directory: $WORK/state
plugin_directory: $(dirname "$TOKEN_SO")
plugins:
$mtls
  auth_jwt:
    path: $JWT_SO
    options:
      issuer: $ISSUER
      audience: $AUDIENCE
      jwks_file: $WORK/jwks.json
      group_map: ["$GROUP=*:admin"]
      cache_size: $1
  auth_token:
    path: $TOKEN_SO
    options:
      tokens_file: $WORK/tokens
  backend_sim:
    path: $SIM_SO
    options:
      run_duration: 1s
auth:
  chain: [$chain]
runner:
  default_backend: sim
spark_versions:
  "4.0":
    spark_home: /nonexistent/spark-not-used-by-backend-sim
EOF
}

# mean A B: the baselines are measured before and after the runs they are compared with, so
# a load change on the machine during a daemon's runs shows up on both sides.
mean() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", (a + b) / 2 }'
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'
}

# metric NAME_AND_LABELS: its value on /metrics (0 when absent).
metric() {
    curl -fsS --max-time 5 "$URL/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { printf "%d\n", v }'
}

# measure NAME TOKEN [URL]: requests/s of GET /api/v1/jobs/{id} with that bearer token (on
# the daemon, or URL); dies when wrk fails, an answer was not 2xx, or nothing was served.
measure() {
    local name=$1 out stats
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --timeout 5s -s "$LUA" "${3:-$URL}" -- \
        get "$2" "$WORK/ids") || die "wrk failed for $name: $out"
    printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
    stats=$(printf '%s\n' "$out" | sed -n 's/^WRK_STATS //p')
    [ -n "$stats" ] || die "no WRK_STATS from wrk for $name"
    [ "$(bench_field non2xx "$stats")" = 0 ] || die "$name: $(bench_field non2xx "$stats") answers were not 2xx"
    awk -v r="$(bench_field requests "$stats")" 'BEGIN { exit !(r >= 1) }' || die "$name served nothing"
    LAST_REQUESTS=$(bench_field requests "$stats")
    LAST_RPS=$(bench_field rps "$stats")
}

token_of() { cat "$WORK/token-$1"; }

# The job every request reads, submitted with the static token; each JWT must read it too.
submit_job() {
    local body
    body='{"name":"bench-auth","team":"bench","spark_version":"4.0",
           "application":{"file":"local:///bench/job.py"}}'
    JOB_ID=$(bench_api "$STATIC_TOKEN" POST /api/v1/jobs "$body" | python3 -c '
import json, sys
print(json.load(sys.stdin).get("id") or "")')
    [ -n "$JOB_ID" ] || die "POST /api/v1/jobs answered no id"
    printf '%s\n' "$JOB_ID" >"$WORK/ids"
}

check_tokens_read_the_job() {
    local alg
    bench_api "$STATIC_TOKEN" GET "/api/v1/jobs/$JOB_ID" >/dev/null
    for alg in RS256 ES256 EdDSA; do
        bench_api "$(token_of "$alg")" GET "/api/v1/jobs/$JOB_ID" >/dev/null
    done
}

# Daemon 1: the cache on (default size); static, then one RS256 token on every request.
measure_warm() {
    local hits_before ok_before hits ok
    write_config 1024
    bench_start_daemon 30
    submit_job
    check_tokens_read_the_job
    log "daemon 1 (cache_size 1024): GET /api/v1/jobs/{id}, $CONNECTIONS connections," \
        "$DURATION each"
    measure static "$STATIC_TOKEN"
    STATIC_RPS=$LAST_RPS
    hits_before=$(metric 'sparkplane_auth_jwt_cache_lookups_total{result="hit"}')
    ok_before=$(metric 'sparkplane_auth_jwt_decisions_total{result="ok"}')
    measure jwt-warm-RS256 "$(token_of RS256)"
    WARM_RPS=$LAST_RPS
    hits=$(metric 'sparkplane_auth_jwt_cache_lookups_total{result="hit"}')
    ok=$(metric 'sparkplane_auth_jwt_decisions_total{result="ok"}')
    WARM_HITS=$((${hits%.*} - ${hits_before%.*}))
    # Every request wrk counted was admitted by auth_jwt, from the cache.
    [ $((${ok%.*} - ${ok_before%.*})) -ge "$LAST_REQUESTS" ] ||
        die "auth_jwt admitted fewer requests than wrk counted"
    [ "$WARM_HITS" -ge "$((LAST_REQUESTS - CONNECTIONS))" ] ||
        die "the warm run missed the cache: $WARM_HITS hits for $LAST_REQUESTS requests"
    measure static-after "$STATIC_TOKEN"
    STATIC_RPS=$(mean "$STATIC_RPS" "$LAST_RPS")
    bench_stop_daemon
}

# Daemon 2: cache_size 0, so every JWT request verifies its signature.
measure_cold() {
    local alg ok_before ok
    write_config 0
    bench_start_daemon 30
    check_tokens_read_the_job
    log "daemon 2 (cache_size 0): GET /api/v1/jobs/{id}, $CONNECTIONS connections," \
        "$DURATION each"
    measure static-2 "$STATIC_TOKEN"
    STATIC2_RPS=$LAST_RPS
    for alg in RS256 ES256 EdDSA; do
        ok_before=$(metric 'sparkplane_auth_jwt_decisions_total{result="ok"}')
        measure "jwt-cold-$alg" "$(token_of "$alg")"
        ok=$(metric 'sparkplane_auth_jwt_decisions_total{result="ok"}')
        [ $((${ok%.*} - ${ok_before%.*})) -ge "$LAST_REQUESTS" ] ||
            die "auth_jwt admitted fewer $alg requests than wrk counted"
        eval "COLD_RPS_$alg=\$LAST_RPS"
    done
    [ "$(metric 'sparkplane_auth_jwt_cache_lookups_total{result="hit"}')" = 0 ] ||
        die "cache_size 0, yet /metrics shows cache hits"
    measure static-2-after "$STATIC_TOKEN"
    STATIC2_RPS=$(mean "$STATIC2_RPS" "$LAST_RPS")
    bench_stop_daemon
}

# ---- (e) mTLS ---------------------------------------------------------------------------

# A CA, a server certificate for 127.0.0.1 and a client certificate (CN bench-client), P-256.
make_certificates() {
    mkdir -p "$WORK/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=sparkplane-bench-ca -keyout "$WORK/pki/ca.key" -out "$WORK/pki/ca.pem" \
        2>/dev/null || die "openssl could not make the CA"
    issue_certificate server /CN=127.0.0.1 \
        $'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'
    issue_certificate client /CN=bench-client 'extendedKeyUsage=clientAuth'
}

# issue_certificate NAME SUBJECT EXTENSIONS: $WORK/pki/NAME.pem and NAME.key, signed by the CA.
issue_certificate() {
    local dir=$WORK/pki
    printf '%s\n' "$3" >"$dir/$1.ext"
    if ! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
        -keyout "$dir/$1.key" -out "$dir/$1.csr" 2>/dev/null ||
        ! openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/$1.ext" -out "$dir/$1.pem" 2>/dev/null; then
        die "openssl could not issue the $1 certificate"
    fi
}

# nginx, one worker: two plain-HTTP ports in front of the daemon's TLS listener, each with
# its own pool of kept-alive upstream connections, so a connection made with the client
# certificate never serves the static-token run, nor the reverse.
start_nginx() {
    local proxy='proxy_http_version 1.1; proxy_set_header Connection ""; proxy_ssl_session_reuse off;'
    STATIC_PROXY_PORT=$(bench_free_port)
    MTLS_PROXY_PORT=$(bench_free_port)
    mkdir -p "$WORK/nginx/tmp"
    # Started as root, nginx's worker runs as an unprivileged user.
    chmod 711 "$WORK" "$WORK/nginx" "$WORK/pki"
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
    upstream daemon_static {
        server 127.0.0.1:$TLS_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    upstream daemon_mtls {
        server 127.0.0.1:$TLS_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$STATIC_PROXY_PORT;
        location / { proxy_pass https://daemon_static; $proxy }
    }
    server {
        listen 127.0.0.1:$MTLS_PROXY_PORT;
        location / {
            proxy_pass https://daemon_mtls; $proxy
            proxy_set_header Authorization "";
            proxy_ssl_certificate $WORK/pki/client.pem;
            proxy_ssl_certificate_key $WORK/pki/client.key;
        }
    }
}
EOF
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
    nginx_pid=$!
}

# status_via PORT: the HTTP status of the job read through that nginx port, static token.
status_via() {
    curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
        -H "Authorization: Bearer $STATIC_TOKEN" "http://127.0.0.1:$1/api/v1/jobs/$JOB_ID" \
        2>/dev/null || true
}

wait_for_proxy() {
    local deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(status_via "$STATIC_PROXY_PORT")" = 200 ] && return 0
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done
    die "nginx did not proxy to the TLS listener: $(tail -n 5 "$WORK/nginx/error.log" 2>&1)"
}

# (e) runs when the build has auth_mtls and nginx is installed; else MTLS_REASON says why not.
mtls_available() {
    MTLS_SO=$(bench_plugin auth_mtls)
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    if [ ! -f "$MTLS_SO" ]; then
        MTLS_REASON="no $MTLS_SO in this build (auth_mtls)"
    elif [ ! -x "$NGINX" ]; then
        MTLS_REASON="nginx is missing (scripts/install-deps.sh --test)"
    else
        return 0
    fi
    return 1
}

# measure_mtls CACHE_SIZE: daemon 3 (auth_mtls's cache on, 1024) or 4 (off, 0): a TLS
# listener; the static token and the client certificate, both through nginx.  Sets
# TLS_STATIC_RPS and MTLS_RPS.
measure_mtls() {
    local ok_before ok hits_before hits
    write_config "$1" tls
    bench_start_daemon 30
    start_nginx
    wait_for_proxy
    # The certificate alone (nginx drops the Authorization header) must be admitted.
    [ "$(status_via "$MTLS_PROXY_PORT")" = 200 ] ||
        die "the client certificate was not admitted: $(tail -n 5 "$WORK/sparkplaned.log")"
    log "TLS listener (client_certificates: request, auth_mtls cache_size $1) through nginx:" \
        "GET /api/v1/jobs/{id}, $CONNECTIONS connections, $DURATION each"
    measure tls-static "$STATIC_TOKEN" "http://127.0.0.1:$STATIC_PROXY_PORT"
    TLS_STATIC_RPS=$LAST_RPS
    ok_before=$(metric 'sparkplane_auth_mtls_decisions_total{result="ok"}')
    hits_before=$(metric 'sparkplane_auth_mtls_cache_lookups_total{result="hit"}')
    measure tls-mtls "$STATIC_TOKEN" "http://127.0.0.1:$MTLS_PROXY_PORT"
    MTLS_RPS=$LAST_RPS
    ok=$(metric 'sparkplane_auth_mtls_decisions_total{result="ok"}')
    hits=$(metric 'sparkplane_auth_mtls_cache_lookups_total{result="hit"}')
    [ $((${ok%.*} - ${ok_before%.*})) -ge "$LAST_REQUESTS" ] ||
        die "auth_mtls admitted fewer requests than wrk counted"
    # cache on: nearly every request a hit (the first of each connection may miss); off: none
    if [ "$1" -gt 0 ]; then
        [ $((hits - hits_before + CONNECTIONS)) -ge "$LAST_REQUESTS" ] ||
            die "auth_mtls's cache missed more than once per connection"
    else
        [ "$hits" = 0 ] || die "auth_mtls counted cache hits with cache_size 0"
    fi
    measure tls-static-after "$STATIC_TOKEN" "http://127.0.0.1:$STATIC_PROXY_PORT"
    TLS_STATIC_RPS=$(mean "$TLS_STATIC_RPS" "$LAST_RPS")
    bench_stop "$nginx_pid"
    nginx_pid=""
    bench_stop_daemon
}

MTLS_REASON=""

main() {
    find_tools
    make_credentials
    measure_warm
    measure_cold
    MTLS=skipped TLS_STATIC_RPS=nan MTLS_RPS=nan TLS_STATIC_COLD_RPS=nan MTLS_COLD_RPS=nan
    if mtls_available; then
        make_certificates
        measure_mtls 0
        TLS_STATIC_COLD_RPS=$TLS_STATIC_RPS MTLS_COLD_RPS=$MTLS_RPS
        measure_mtls 1024
        MTLS=measured
    fi

    local warm_ratio rs_ratio es_ratio ed_ratio
    warm_ratio=$(ratio "$WARM_RPS" "$STATIC_RPS")
    rs_ratio=$(ratio "$COLD_RPS_RS256" "$STATIC2_RPS")
    es_ratio=$(ratio "$COLD_RPS_ES256" "$STATIC2_RPS")
    ed_ratio=$(ratio "$COLD_RPS_EdDSA" "$STATIC2_RPS")
    log "(a) static token $STATIC_RPS/s (daemon 1), $STATIC2_RPS/s (daemon 2)"
    log "(b) JWT RS256, cache warm: $WARM_RPS/s, ratio $warm_ratio ($WARM_HITS cache hits)"
    log "(c) JWT, cache_size 0 (a signature check per request):"
    log "    RS256 $COLD_RPS_RS256/s ratio $rs_ratio, ES256 $COLD_RPS_ES256/s ratio $es_ratio," \
        "EdDSA $COLD_RPS_EdDSA/s ratio $ed_ratio"
    if [ "$MTLS" = measured ]; then
        log "(e) over TLS through nginx: static token $TLS_STATIC_RPS/s, client certificate" \
            "$MTLS_RPS/s, ratio $(ratio "$MTLS_RPS" "$TLS_STATIC_RPS") (auth_mtls cache on);" \
            "cache off: $MTLS_COLD_RPS/s vs $TLS_STATIC_COLD_RPS/s, ratio" \
            "$(ratio "$MTLS_COLD_RPS" "$TLS_STATIC_COLD_RPS")"
    else
        log "(e) mTLS: NOT measured: $MTLS_REASON"
    fi
    cat <<EOF
BENCH BEGIN
duration=$DURATION
connections=$CONNECTIONS
tokens_minted_with=$MINTED_WITH
static_rps=$STATIC_RPS
jwt_warm_rs256_rps=$WARM_RPS
jwt_warm_cache_hits=$WARM_HITS
jwt_warm_ratio=$warm_ratio
static_rps_cache_off_daemon=$STATIC2_RPS
jwt_cold_rs256_rps=$COLD_RPS_RS256
jwt_cold_rs256_ratio=$rs_ratio
jwt_cold_es256_rps=$COLD_RPS_ES256
jwt_cold_es256_ratio=$es_ratio
jwt_cold_eddsa_rps=$COLD_RPS_EdDSA
jwt_cold_eddsa_ratio=$ed_ratio
mtls=$MTLS
tls_static_rps=$TLS_STATIC_RPS
mtls_rps=$MTLS_RPS
mtls_ratio=$(ratio "$MTLS_RPS" "$TLS_STATIC_RPS")
tls_static_rps_cache_off_daemon=$TLS_STATIC_COLD_RPS
mtls_cold_rps=$MTLS_COLD_RPS
mtls_cold_ratio=$(ratio "$MTLS_COLD_RPS" "$TLS_STATIC_COLD_RPS")
sanitizer_build=$SANITIZER_BUILD
BENCH END
EOF
}

main
