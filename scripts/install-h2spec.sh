#!/usr/bin/env bash
# scripts/install-h2spec.sh - build h2spec (the HTTP/2 conformance suite) at a
# pinned version into a cache directory, and print the binary's path.
#
#   scripts/install-h2spec.sh        build it unless it is there; prints its path
#   scripts/install-h2spec.sh --path print where it goes, build nothing
#
# h2spec comes from the Go module proxy, built with Debian's Go
# (/usr/bin/go from golang-go, 1.19; scripts/install-deps.sh --test installs
# it; $GO picks another).  The proxy serves h2spec only as
# v2.2.1+incompatible: later tags have a go.mod without the /v2 suffix Go
# requires for v2 modules, so it refuses them.  v2.2.1 has no go.mod, so the
# build module below pins its dependencies to the revisions h2spec's own
# Gopkg.lock names, with their go.sum lines, so nothing floats and Go 1.19
# builds it (GOTOOLCHAIN is not needed, and set to local for newer Gos).
#
# Where: $SPARKPLANE_CACHE_DIR, else $XDG_CACHE_HOME/sparkplane, else
# ~/.cache/sparkplane (outside the work tree, so every clone on the machine
# shares one build), and $ROOT/.cache/sparkplane without a HOME.  The module
# downloads stay in that directory too (go-mod/, writable so `rm -rf`
# removes them); Go's build cache is a temporary one, gone after the build.
#
# Idempotent: an existing binary that reports the pinned version is kept.
# Never reads stdin; logs go to stderr, the path alone to stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

H2SPEC_MODULE=github.com/summerwind/h2spec
H2SPEC_VERSION=2.2.1
H2SPEC_MODULE_VERSION=v2.2.1+incompatible
# What the built binary says to --version (the ldflags below set both parts).
H2SPEC_VERSION_LINE="Version: $H2SPEC_VERSION ($H2SPEC_MODULE_VERSION)"

CACHE_DIR=${SPARKPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-$ROOT}/.cache}/sparkplane}
H2SPEC_DIR="$CACHE_DIR/h2spec-$H2SPEC_VERSION"
H2SPEC_BIN="$H2SPEC_DIR/bin/h2spec"

log() { printf 'install-h2spec: %s\n' "$*" >&2; }

case "${1:-}" in
"") ;;
--path)
    printf '%s\n' "$H2SPEC_BIN"
    exit 0
    ;;
-h | --help)
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    log "unknown argument '$1' (try --help)"
    exit 2
    ;;
esac

installed() {
    [ -x "$H2SPEC_BIN" ] && [ "$("$H2SPEC_BIN" --version 2>/dev/null)" = "$H2SPEC_VERSION_LINE" ]
}

# Debian's Go first: it is the one a fresh machine has.
find_go() {
    if [ -n "${GO:-}" ]; then
        printf '%s\n' "$GO"
    elif [ -x /usr/bin/go ]; then
        printf '%s\n' /usr/bin/go
    else
        command -v go || true
    fi
}

# The build module: h2spec's command plus its dependencies at Gopkg.lock's revisions.
write_build_module() {
    local dir=$1
    cat >"$dir/go.mod" <<EOF
module sparkplane.invalid/h2spec-build

go 1.19

require $H2SPEC_MODULE $H2SPEC_MODULE_VERSION

require (
	github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85 // indirect
	github.com/inconshreveable/mousetrap v1.0.0 // indirect
	github.com/mattn/go-colorable v0.1.0 // indirect
	github.com/mattn/go-isatty v0.0.4 // indirect
	github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7 // indirect
	github.com/spf13/pflag v1.0.3 // indirect
	golang.org/x/net v0.0.0-20161104230106-55a3084c9119 // indirect
	golang.org/x/sys v0.0.0-20190209173611-3b5209105503 // indirect
)
EOF
    cat >"$dir/go.sum" <<'EOF'
github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85 h1:g7ijd5QIEMWwZNVp/T/6kQ8RSh8rN+YNhghMcrET3qY=
github.com/fatih/color v0.0.0-20161025120501-bf82308e8c85/go.mod h1:Zm6kSWBoL9eyXnKyktHP6abPY2pDugNf5KwzbycvMj4=
github.com/inconshreveable/mousetrap v1.0.0 h1:Z8tu5sraLXCXIcARxBp/8cbvlwVa7Z1NHg9XEKhtSvM=
github.com/inconshreveable/mousetrap v1.0.0/go.mod h1:PxqpIevigyE2G7u3NXJIT2ANytuPF1OarO4DADm73n8=
github.com/mattn/go-colorable v0.1.0 h1:v2XXALHHh6zHfYTJ+cSkwtyffnaOyR1MXaA91mTrb8o=
github.com/mattn/go-colorable v0.1.0/go.mod h1:9vuHe8Xs5qXnSaW/c/ABM9alt+Vo+STaOChaDxuIBZU=
github.com/mattn/go-isatty v0.0.4 h1:bnP0vzxcAdeI1zdubAl5PjU6zsERjGZb7raWodagDYs=
github.com/mattn/go-isatty v0.0.4/go.mod h1:M+lRXTBqGeGNdLjl/ufCoiOlB5xdOkqRJdNxMWT7Zi4=
github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7 h1:/xfSxzUJXZPhOsBj5aCUvA3mOIc7ILcvvJpmvzhQk7w=
github.com/spf13/cobra v0.0.0-20170118185516-dc208f4211e7/go.mod h1:1l0Ry5zgKvJasoi3XT1TypsSe7PqH0Sj9dhYf7v3XqQ=
github.com/spf13/pflag v1.0.3 h1:zPAT6CGy6wXeQ7NtTnaTerfKOsV6V6F8agHXFiazDkg=
github.com/spf13/pflag v1.0.3/go.mod h1:DYY7MBk1bdzusC3SYhjObp+wFpr4gzcvqqNjLnInEg4=
github.com/summerwind/h2spec v2.2.1+incompatible h1:Ex8kpG4LjIeudEtfbM892Os2PawIZBsEvukHJcvZHho=
github.com/summerwind/h2spec v2.2.1+incompatible/go.mod h1:eP7IHGVDEe9cbCxRNtmGfII77lBvLgJLNfJjTaKa9sI=
golang.org/x/net v0.0.0-20161104230106-55a3084c9119 h1:T/FVHYSpR0pXqxZ6zNrRnmk4iHorxWyidE9VCMGJ5rQ=
golang.org/x/net v0.0.0-20161104230106-55a3084c9119/go.mod h1:mL1N/T3taQHkDXs73rZJwtUhF3w3ftmwwsq0BUmARs4=
golang.org/x/sys v0.0.0-20190209173611-3b5209105503 h1:5SvYFrOM3W8Mexn9/oA44Ji7vhXAZQ9hiP+1Q/DMrWg=
golang.org/x/sys v0.0.0-20190209173611-3b5209105503/go.mod h1:STP8DvDyc/dI5b8T5hshtkjS+E42TnysNCUPdjciGhY=
EOF
    # Makes the command a package of this module, so `go build` resolves it here.
    cat >"$dir/tools.go" <<EOF
//go:build tools

package tools

import _ "$H2SPEC_MODULE/cmd/h2spec"
EOF
}

build() {
    local go work
    go=$(find_go)
    if [ -z "$go" ] || ! "$go" version >/dev/null 2>&1; then
        log "no Go toolchain (install golang-go: scripts/install-deps.sh --test)"
        return 1
    fi
    mkdir -p "$H2SPEC_DIR/bin"
    work=$(mktemp -d "$H2SPEC_DIR/build.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now: it is local
    trap "rm -rf '$work'" EXIT
    write_build_module "$work"
    log "building h2spec $H2SPEC_VERSION with $("$go" version)"
    (
        cd "$work"
        env GO111MODULE=on GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0 \
            GOPATH="$H2SPEC_DIR/gopath" GOMODCACHE="$H2SPEC_DIR/go-mod" GOCACHE="$work/go-build" \
            "$go" build -trimpath \
            -ldflags "-X main.VERSION=$H2SPEC_VERSION -X main.COMMIT=$H2SPEC_MODULE_VERSION" \
            -o "$work/h2spec" "$H2SPEC_MODULE/cmd/h2spec" </dev/null
    )
    mv -f "$work/h2spec" "$H2SPEC_BIN"
    if ! installed; then
        log "$H2SPEC_BIN does not report '$H2SPEC_VERSION_LINE'"
        return 1
    fi
}

if ! installed; then
    build
fi
log "h2spec $H2SPEC_VERSION: $H2SPEC_BIN"
printf '%s\n' "$H2SPEC_BIN"
