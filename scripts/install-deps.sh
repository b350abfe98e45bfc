#!/usr/bin/env bash
# scripts/install-deps.sh - install what building, running (and with --test,
# testing) sparkplane needs, from Debian's packages and, for .venv, PyPI.
#
#   scripts/install-deps.sh          build dependencies, Java 17 and a Python
#                                    venv at .venv with pyspark 4.0 (the local
#                                    backend runs real Spark from it)
#   scripts/install-deps.sh --test   also clang (fuzzers), wrk and nginx-light
#                                    (benchmark baseline), systemd-analyze,
#                                    h2load/nghttpx (gateway bench), Go and
#                                    h2spec (scripts/install-h2spec.sh), and
#                                    pytest, requests, grpcio, h2 in .venv
#
# SPARK_HOME for the local backend is the installed pyspark package:
#   .venv/bin/python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))'
# and .venv/bin/python is the interpreter its .py jobs need (it imports pyspark).
#
# Idempotent and fast on reruns: packages are checked with dpkg-query and apt
# runs (update once, then install) only when something is missing.  Never
# asks anything (DEBIAN_FRONTEND=noninteractive).  Runs as root (CI is root);
# otherwise uses sudo when it is there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BUILD_PACKAGES=(
    build-essential autoconf automake libtool pkg-config
    libevent-dev libnghttp2-dev libcurl4-openssl-dev libjansson-dev libyaml-dev
    libssl-dev libsqlite3-dev libprotobuf-c-dev protobuf-c-compiler libcunit1-dev
    python3-venv curl ca-certificates openssl
)
# The local backend (the default) runs spark-submit, which needs a JVM.
RUN_PACKAGES=(openjdk-17-jre-headless)
# nghttp2-client (h2load) and nghttp2-proxy (nghttpx) drive and baseline the gateway
# bench; golang-go builds h2spec (the HTTP/2 conformance suite) from the Go module proxy.
TEST_PACKAGES=(clang wrk sqlite3 nghttp2-client nghttp2-proxy golang-go)
# pip requirement and the module that proves it is there.
PYSPARK_REQUIREMENT='pyspark==4.0.*'
# pytest/requests drive the integration tests; the rest is what a real pyspark
# Spark Connect client needs (the gateway tests).
# h2 writes hostile HTTP/2 by hand (the gateway's bad-input tests).
# pyjwt and cryptography mint the JWTs and keys of the auth_jwt tests.
PYTHON_TEST_PACKAGES=(pytest requests grpcio grpcio-status pyarrow pandas googleapis-common-protos h2
    pyjwt cryptography)

want_test=0
for arg in "$@"; do
    case "$arg" in
    --test) want_test=1 ;;
    -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

log() { printf 'install-deps: %s\n' "$*" >&2; }

package_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Prints the packages of "$@" that are not installed.
missing_packages() {
    local package
    for package in "$@"; do
        package_installed "$package" || printf '%s\n' "$package"
    done
}

# Root runs apt itself; anyone else needs sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $* (and sudo is not installed)"
        return 1
    fi
}

# Package scripts must not start services (nginx would grab port 80): a
# temporary policy-rc.d says no, unless the machine already has one.
policy_file=/usr/sbin/policy-rc.d
policy_added=0
remove_policy() {
    if [ "$policy_added" -eq 1 ]; then
        as_root rm -f "$policy_file" || true
    fi
}
trap remove_policy EXIT

apt_install() {
    [ "$#" -gt 0 ] || return 0
    log "installing: $*"
    if [ ! -e "$policy_file" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy_file" >/dev/null
        as_root chmod 755 "$policy_file"
        policy_added=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@"
}

# The venv uses Debian's python3 (the one python3-venv belongs to), not
# whichever python3 comes first on PATH.  A working venv is kept (pyspark
# is large); only what is missing is installed into it.
setup_venv() {
    local venv="$ROOT/.venv" python=/usr/bin/python3
    local -a wanted=()
    [ -x "$python" ] || python=$(command -v python3)
    if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
        log "creating $venv"
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -c 'import pyspark, sys; sys.exit(not pyspark.__version__.startswith("4.0."))' \
        2>/dev/null || wanted+=("$PYSPARK_REQUIREMENT")
    if [ "$want_test" -eq 1 ]; then
        "$venv/bin/python" -c 'import pytest, requests, grpc, grpc_status, pyarrow, pandas, google.rpc, h2, jwt, cryptography' \
            2>/dev/null || wanted+=("${PYTHON_TEST_PACKAGES[@]}")
    fi
    if [ "${#wanted[@]}" -eq 0 ]; then
        return 0
    fi
    log "installing into $venv: ${wanted[*]}"
    "$venv/bin/pip" install -q --disable-pip-version-check "${wanted[@]}"
}

main() {
    local -a missing
    mapfile -t missing < <(missing_packages "${BUILD_PACKAGES[@]}" "${RUN_PACKAGES[@]}")
    if [ "$want_test" -eq 1 ]; then
        mapfile -t -O "${#missing[@]}" missing < <(missing_packages "${TEST_PACKAGES[@]}")
        # Any nginx flavour will do as the baseline; nginx-light is the smallest.
        command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
        command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    else
        log "all packages present"
    fi
    setup_venv
    if [ "$want_test" -eq 1 ]; then
        bash "$ROOT/scripts/install-h2spec.sh" >/dev/null
        # the Iceberg runtime the provisioned-cluster tests put on their clusters' classpath
        bash "$ROOT/scripts/fetch-jars.sh" >/dev/null
    fi
}

main
