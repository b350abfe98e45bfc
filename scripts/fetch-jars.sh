#!/usr/bin/env bash
# scripts/fetch-jars.sh - download the jars the Spark servers of a hot pool
# put on their classpath (spark.jars) into a cache directory, and print their
# paths, one a line.
#
#   scripts/fetch-jars.sh        download what is missing; prints the paths
#   scripts/fetch-jars.sh --path print where they go, download nothing
#
# Today one jar: the Iceberg runtime for Spark 4.0 / Scala 2.13, from Maven
# Central.  A hot server starts with it but without catalog settings; the
# gateway sets a team's spark.sql.catalog.* per session (Config RPC).
#
# Where: $SPARKPLANE_CACHE/jars, else $SPARKPLANE_CACHE_DIR/jars (the name
# install-h2spec.sh reads), else $XDG_CACHE_HOME/sparkplane/jars, else
# ~/.cache/sparkplane/jars, and $ROOT/.cache/sparkplane/jars without a HOME.
#
# Idempotent: a jar whose SHA-1 matches Maven's .sha1 file is kept (that
# check needs the network; offline, a present jar is kept as it is).  A
# download goes to a temporary name in the same folder, is checked against
# the .sha1, then renamed, so a cut download never looks like a jar.
# Never reads stdin; logs go to stderr, the paths alone to stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MAVEN_REPO=${SPARKPLANE_MAVEN_REPO:-https://repo1.maven.org/maven2}
# group:artifact:version, one a line.
JARS="org.apache.iceberg:iceberg-spark-runtime-4.0_2.13:1.10.0"

CACHE_DIR=${SPARKPLANE_CACHE:-${SPARKPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-$ROOT}/.cache}/sparkplane}}
JAR_DIR="$CACHE_DIR/jars"

log() { printf 'fetch-jars: %s\n' "$*" >&2; }

jar_name() {
    local artifact version
    IFS=: read -r _ artifact version <<<"$1"
    printf '%s-%s.jar\n' "$artifact" "$version"
}

jar_url() {
    local group artifact version
    IFS=: read -r group artifact version <<<"$1"
    printf '%s/%s/%s/%s/%s-%s.jar\n' "$MAVEN_REPO" "${group//.//}" "$artifact" "$version" \
        "$artifact" "$version"
}

case "${1:-}" in
"") ;;
--path)
    for coordinate in $JARS; do
        printf '%s/%s\n' "$JAR_DIR" "$(jar_name "$coordinate")"
    done
    exit 0
    ;;
-h | --help)
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    log "unknown argument '$1' (try --help)"
    exit 2
    ;;
esac

if ! command -v curl >/dev/null 2>&1; then
    log "curl is not installed"
    exit 1
fi

# Prints the 40 hex digits of Maven's .sha1 file (some hold "sum  name").
maven_sha1() {
    local url=$1 body
    if ! body=$(curl -fsSL --retry 2 --connect-timeout 15 --max-time 60 "$url.sha1" </dev/null); then
        return 1
    fi
    body=${body%%[[:space:]]*}
    if ! [[ $body =~ ^[0-9a-fA-F]{40}$ ]]; then
        log "$url.sha1 does not hold a SHA-1: '${body:0:60}'"
        return 1
    fi
    printf '%s\n' "${body,,}"
}

file_sha1() {
    sha1sum "$1" | cut -d' ' -f1
}

# Downloads one jar unless a verified copy is there; prints its path.
fetch_jar() {
    local coordinate=$1 name url jar expected temporary
    name=$(jar_name "$coordinate")
    url=$(jar_url "$coordinate")
    jar="$JAR_DIR/$name"
    if ! expected=$(maven_sha1 "$url"); then
        if [ -s "$jar" ]; then
            log "cannot reach $url.sha1 (offline?); keeping $jar unchecked"
            printf '%s\n' "$jar"
            return 0
        fi
        log "cannot download $url.sha1: offline, or $MAVEN_REPO is unreachable" \
            "(set SPARKPLANE_MAVEN_REPO to a mirror)"
        return 1
    fi
    if [ -f "$jar" ] && [ "$(file_sha1 "$jar")" = "$expected" ]; then
        log "$name present, SHA-1 matches"
        printf '%s\n' "$jar"
        return 0
    fi
    mkdir -p "$JAR_DIR"
    temporary=$(mktemp "$JAR_DIR/.$name.XXXXXX")
    # shellcheck disable=SC2064  # expand $temporary now: it is local
    trap "rm -f '$temporary'" EXIT
    log "downloading $url"
    if ! curl -fsSL --retry 2 --connect-timeout 15 -o "$temporary" "$url" </dev/null; then
        log "cannot download $url: offline, or $MAVEN_REPO is unreachable"
        return 1
    fi
    if [ "$(file_sha1 "$temporary")" != "$expected" ]; then
        log "$url: SHA-1 $(file_sha1 "$temporary") is not Maven's $expected"
        return 1
    fi
    chmod 0644 "$temporary"
    mv -f "$temporary" "$jar"
    trap - EXIT
    printf '%s\n' "$jar"
}

for coordinate in $JARS; do
    fetch_jar "$coordinate"
done
