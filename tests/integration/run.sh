#!/bin/sh
# tests/integration/run.sh - the automake TESTS entry for the integration suite.
#
# Runs pytest on this directory against the daemon and plugins of the build
# tree.  Python: $SPARKPLANE_PYTHON, else $abs_top_srcdir/.venv/bin/python
# (scripts/install-deps.sh makes it), else python3.  Without pytest and
# requests the suite is skipped (exit 77), unless
# SPARKPLANE_REQUIRE_INTEGRATION=1 (CI, scripts/test.sh), where that is a
# failure.  The build directory comes from $abs_top_builddir (exported by
# AM_TESTS_ENVIRONMENT in local.mk, so make check always tests its own
# tree), else $SPARKPLANE_BUILDDIR (by hand), else the current directory.  Extra arguments go to pytest (e.g. -k reload).

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
builddir=${abs_top_builddir:-${SPARKPLANE_BUILDDIR:-$(pwd)}}

fail_or_skip() {
    if [ "${SPARKPLANE_REQUIRE_INTEGRATION:-0}" = 1 ]; then
        echo "integration: $1 (SPARKPLANE_REQUIRE_INTEGRATION=1, so this fails)" >&2
        exit 1
    fi
    echo "integration: $1; skipped" >&2
    exit 77
}

if [ -n "${SPARKPLANE_PYTHON:-}" ]; then
    python=$SPARKPLANE_PYTHON
elif [ -x "$srcdir/.venv/bin/python" ]; then
    python=$srcdir/.venv/bin/python
else
    python=$(command -v python3 || true)
fi
[ -n "$python" ] || fail_or_skip "no python3 found"
if ! "$python" -c 'import pytest, requests' 2>/dev/null; then
    fail_or_skip "$python cannot import pytest and requests (scripts/install-deps.sh --test)"
fi

if [ ! -x "$builddir/core/sparkplaned" ]; then
    echo "integration: $builddir/core/sparkplaned is missing; build it first" >&2
    exit 1
fi

SPARKPLANE_BUILDDIR=$(cd "$builddir" && pwd)
export SPARKPLANE_BUILDDIR
# The source tree may be read-only (make distcheck): no bytecode, no cache there.
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
cd "$here" || exit 1
exec "$python" -m pytest -q -p no:cacheprovider -o console_output_style=classic \
    --rootdir="$here" "$here" "$@"
