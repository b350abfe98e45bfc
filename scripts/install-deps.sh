#!/usr/bin/env bash
# scripts/install-deps.sh - install what building (and with --test, testing)
# sparkplane needs, from Debian's packages and, for the test venv, PyPI.
#
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh --test   also clang (fuzzers), wrk and nginx-light
#                                    (benchmark baseline), systemd-analyze, and
#                                    a Python venv at .venv with pytest + requests
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
TEST_PACKAGES=(clang wrk)
PYTHON_TEST_PACKAGES=(pytest requests)

want_test=0
for arg in "$@"; do
    case "$arg" in
    --test) want_test=1 ;;
    -h | --help)
        sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
# whichever python3 comes first on PATH.
setup_venv() {
    local venv="$ROOT/.venv" python=/usr/bin/python3
    [ -x "$python" ] || python=$(command -v python3)
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pytest, requests' 2>/dev/null; then
        return 0
    fi
    log "creating $venv with: ${PYTHON_TEST_PACKAGES[*]}"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "${PYTHON_TEST_PACKAGES[@]}"
}

main() {
    local -a missing
    mapfile -t missing < <(missing_packages "${BUILD_PACKAGES[@]}")
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
    if [ "$want_test" -eq 1 ]; then
        setup_venv
    fi
}

main
