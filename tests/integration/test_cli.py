"""test_cli.py - sparkplaned --check-config, --list-plugins, --version and usage errors.

Each bad config below is a small YAML text with the problem on a known
line (marked "# <-" in the text); --check-config must exit 1 and print a
"file:line:column: key: message" line naming that line and the key.
"""
import os
import re
import shutil

import pytest

import helpers

BASE = """\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
auth:
  chain: [auth_token]
"""


@pytest.fixture
def cli_env(builddir, tmp_path):
    """A working directory with a tokens file, and a function that writes a config."""
    helpers.write_tokens(tmp_path / "tokens", helpers.make_tokens())
    values = {"port": helpers.free_port(), "workdir": str(tmp_path),
              "plugin_dir": helpers.plugin_directory(builddir)}

    def write(text, name="sparkplane.yaml"):
        path = tmp_path / name
        path.write_text(text.format(**values))
        return str(path)
    write.values = values
    write.tmp = tmp_path
    return write


def check(builddir, path):
    return helpers.run_cli(builddir, "--config", path, "--check-config")


def marked_lines(text):
    """The 1-based lines marked '# <-' (where a problem may be reported)."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert lines, "test config without a '# <-' marker"
    return lines


def marked_line(text):
    return marked_lines(text)[0]


def assert_problem(result, path, lines, key):
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "configuration OK" not in result.stdout
    pattern = re.compile(rf"^{re.escape(path)}:(\d+):(\d+): (.*)$", re.M)
    problems = [(int(m.group(1)), m.group(3)) for m in pattern.finditer(result.stderr)]
    assert problems, f"no 'file:line:column:' problem line in:\n{result.stderr}"
    assert any(number in lines and key in message for number, message in problems), \
        f"no problem at line(s) {lines} naming {key!r}; got:\n{result.stderr}"
    assert helpers.sanitizer_report(result.stderr) is None, result.stderr


def test_good_config_is_ok(builddir, cli_env):
    path = cli_env(BASE)
    result = check(builddir, path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout
    assert helpers.sanitizer_report(result.stderr) is None, result.stderr


BAD_CONFIGS = {
    "unknown-key": ("""\
server:
  listen: ["127.0.0.1:{port}"]
  max_bodysize: 1MiB   # <-
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
auth:
  chain: [auth_token]
""", "max_bodysize"),
    "unknown-top-level-key": (BASE + "logging:   # <-\n  level: debug\n", "logging"),
    "wrong-type": ("""\
server:
  listen: ["127.0.0.1:{port}"]
  max_body_size: [1, 2]   # <-
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
auth:
  chain: [auth_token]
""", "server.max_body_size"),
    "listen-not-a-list": (BASE.replace('  listen: ["127.0.0.1:{port}"]',
                                       '  listen: {{a: 1}}   # <-'), "server.listen"),
    "bad-duration": ("""\
server:
  listen: ["127.0.0.1:{port}"]
  request_timeout: 5 fortnights   # <-
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
auth:
  chain: [auth_token]
""", "server.request_timeout"),
    "bad-log-level": (BASE + "log:\n  level: loud   # <-\n", "log.level"),
    "missing-required-plugin-option": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:   # <- the plugin's entry, or
    options:   # <- its options map
      reload_interval: 5s
auth:
  chain: [auth_token]
""", "tokens_file"),
    "unknown-plugin-option": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
      token_file: "{workdir}/tokens"   # <-
auth:
  chain: [auth_token]
""", "token_file"),
    "bad-plugin-option-type": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
      reload_interval: often   # <-
auth:
  chain: [auth_token]
""", "reload_interval"),
    "missing-plugin-so": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
  no_such_plugin:   # <-
    enabled: true
auth:
  chain: [auth_token]
""", "no_such_plugin"),
    "not-a-plugin-so": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
  fake:   # <-
    path: "{workdir}/fake.so"
auth:
  chain: [auth_token]
""", "fake"),
    "auth-chain-unknown-provider": ("""\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
plugin_directory: "{plugin_dir}"
plugins:
  auth_token:
    options:
      tokens_file: "{workdir}/tokens"
auth:
  chain: [auth_token, ldap]   # <-
""", "auth.chain"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_check_config_reports_file_line_and_key(builddir, cli_env, name):
    text, key = BAD_CONFIGS[name]
    (cli_env.tmp / "fake.so").write_text("this is a text file, not a shared object\n")
    path = cli_env(text)
    assert_problem(check(builddir, path), path, marked_lines(text), key)


def test_malformed_yaml_names_file_and_line(builddir, cli_env):
    text = """\
server:
  listen: ["127.0.0.1:{port}"]
state:
  directory: "{workdir}/state"
  database: [unclosed   # <-
plugin_directory: "{plugin_dir}"
"""
    path = cli_env(text)
    result = check(builddir, path)
    assert result.returncode == 1, result.stdout + result.stderr
    match = re.search(rf"^{re.escape(path)}:(\d+):(\d+): ", result.stderr, re.M)
    assert match, f"no file:line:column in:\n{result.stderr}"
    # libyaml notices the unclosed flow sequence at the following token; allow that.
    assert marked_line(text) <= int(match.group(1)) <= len(text.splitlines()) + 1, result.stderr


def test_tab_indentation_is_a_yaml_error(builddir, cli_env):
    path = cli_env("server:\n\tlisten: x\n")
    result = check(builddir, path)
    assert result.returncode == 1
    assert re.search(rf"^{re.escape(path)}:2:\d+: ", result.stderr, re.M), result.stderr


def test_every_problem_is_reported_at_once(builddir, cli_env):
    text = """\
server:
  listen: ["127.0.0.1:{port}"]
  request_timeout: never   # <- line 3
  colour: blue             # line 4
state:
  directory: "{workdir}/state"
log:
  format: xml              # line 8
plugin_directory: "{plugin_dir}"
"""
    path = cli_env(text)
    result = check(builddir, path)
    assert result.returncode == 1
    for line, key in ((3, "server.request_timeout"), (4, "colour"), (8, "log.format")):
        assert re.search(rf"^{re.escape(path)}:{line}:\d+: .*{re.escape(key)}", result.stderr,
                         re.M), f"line {line} ({key}) not reported:\n{result.stderr}"


def test_problem_in_a_drop_in_names_the_drop_in(builddir, cli_env):
    path = cli_env(BASE)
    conf_d = cli_env.tmp / "conf.d"
    conf_d.mkdir()
    drop_in = conf_d / "50-local.yaml"
    drop_in.write_text("log:\n  level: debug\n  colour: red\n")
    (conf_d / "README").write_text("not yaml: [ ignored because it is not *.yaml\n")
    result = check(builddir, path)
    assert result.returncode == 1, result.stdout
    assert re.search(rf"^{re.escape(str(drop_in))}:3:\d+: .*colour", result.stderr, re.M), \
        result.stderr


def test_missing_config_file(builddir, tmp_path):
    path = str(tmp_path / "absent.yaml")
    result = helpers.run_cli(builddir, "--config", path, "--check-config")
    assert result.returncode == 1
    assert path in result.stderr


def test_list_plugins_shows_auth_token_and_its_options(builddir, cli_env):
    result = helpers.run_cli(builddir, "--config", cli_env(BASE), "--list-plugins")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^auth_token \(auth\) \S+, ABI \d+\.\d+", out, re.M), out
    option_lines = {m.group(1): m.group(0) for m in re.finditer(r"^\s+option\s+(\S+).*$", out, re.M)}
    assert set(option_lines) == {"tokens_file", "reload_interval"}, out
    assert "required" in option_lines["tokens_file"]
    assert "duration" in option_lines["reload_interval"]
    assert "5s" in option_lines["reload_interval"]


def test_list_plugins_says_why_a_file_is_refused(builddir, cli_env):
    plugin_dir = cli_env.tmp / "plugins"
    plugin_dir.mkdir()
    shutil.copy(os.path.join(helpers.plugin_directory(builddir), "auth_token.so"), plugin_dir)
    (plugin_dir / "notes.so").write_text("just text\n")
    text = BASE.replace('plugin_directory: "{plugin_dir}"', f'plugin_directory: "{plugin_dir}"')
    result = helpers.run_cli(builddir, "--config", cli_env(text), "--list-plugins")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^auth_token \(auth\)", result.stdout, re.M), result.stdout
    assert re.search(r"notes\.so.*refused", result.stdout), result.stdout


def test_version(builddir):
    result = helpers.run_cli(builddir, "--version")
    assert result.returncode == 0
    assert re.fullmatch(r"sparkplaned \d+\.\d+\.\d+\S* \(plugin ABI 1\.\d+\)\n", result.stdout), \
        result.stdout


@pytest.mark.parametrize("args", [["--no-such-option"], ["extra-argument"]])
def test_usage_errors_exit_2(builddir, args):
    result = helpers.run_cli(builddir, *args)
    assert result.returncode == 2
    assert "usage" in result.stderr
