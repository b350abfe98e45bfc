"""conftest.py - pytest fixtures that run the real sparkplaned from the build tree.

  builddir        the build directory (SPARKPLANE_BUILDDIR, else abs_top_builddir, else found)
  daemon_factory  start(configure=fn, env={}, wait=True) -> helpers.Daemon in its own temp dir;
                  fn(cfg) edits the default config dict before the daemon starts
  daemon          one daemon with the default config, already answering /healthz

At teardown every daemon still running must answer /healthz (so each test
proves the daemon survived what it sent), then stop on SIGTERM with exit
status 0; and no daemon's log may hold a sanitizer report, even if the
test stopped it itself.
"""
import pytest

import helpers


@pytest.fixture(scope="session")
def builddir():
    return helpers.find_builddir()


@pytest.fixture
def daemon_factory(builddir, tmp_path):
    started = []

    def start(configure=None, env=None, wait=True, tokens=None):
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = helpers.Daemon(builddir, workdir, tokens=tokens, env=env)
        if configure is not None:
            configure(daemon.config)
        started.append(daemon)
        return daemon.start(wait=wait)

    yield start

    problems = []
    for daemon in started:
        if daemon.process is None:
            continue
        try:
            if daemon.alive():
                response = daemon.get("/healthz")
                assert response.status_code == 200, f"final /healthz: {response.status_code}"
                status = daemon.stop()
                assert status == 0, f"sparkplaned exited {status} after SIGTERM"
            daemon.assert_clean_log()
        except Exception as error:  # collect, so every daemon is stopped
            problems.append(f"{daemon.workdir}: {error}\n--- log tail:\n{daemon.log_tail(40)}")
        finally:
            daemon.kill()
    if problems:
        pytest.fail("daemon teardown:\n" + "\n\n".join(problems), pytrace=False)


@pytest.fixture
def daemon(daemon_factory):
    return daemon_factory()
