"""test_reload.py - SIGHUP: a good config is applied, a bad one is refused and the old one kept."""
import copy
import json
import os
import signal

import pytest

import helpers


def reloads(daemon, result, port=None):
    return helpers.metric_value(daemon.metrics(port=port), "sparkplane_config_reloads_total",
                                result=result)


def hup_and_wait(daemon, result, port=None):
    """Sends SIGHUP and waits until reloads_total{result} went up by one."""
    before = reloads(daemon, result, port)
    daemon.send_signal(signal.SIGHUP)
    helpers.wait_until(lambda: reloads(daemon, result, port) == before + 1, 10,
                       what=f'sparkplane_config_reloads_total{{result="{result}"}} to reach '
                            f'{before + 1}')


def test_reload_moves_the_listener(daemon):
    old_port = daemon.port
    new_port = helpers.free_port()
    cfg = copy.deepcopy(daemon.config)
    cfg["server"]["listen"] = [f"127.0.0.1:{new_port}"]
    daemon.write_config(cfg)
    before_ok = reloads(daemon, "ok")
    daemon.send_signal(signal.SIGHUP)

    helpers.wait_until(lambda: daemon.get("/healthz", port=new_port, timeout=1).status_code == 200,
                       10, what=f"the new listener on port {new_port}")
    helpers.wait_until(lambda: not helpers.port_accepts(old_port), 10,
                       what=f"the old listener on port {old_port} to close")
    daemon.port = new_port
    assert reloads(daemon, "ok") == before_ok + 1
    assert daemon.get("/api/v1/whoami", token=daemon.token).status_code == 200


def test_reload_adds_a_second_listener(daemon):
    second = helpers.free_port()
    cfg = copy.deepcopy(daemon.config)
    cfg["server"]["listen"].append(f"127.0.0.1:{second}")
    daemon.write_config(cfg)
    hup_and_wait(daemon, "ok")
    assert daemon.get("/healthz").status_code == 200
    assert daemon.get("/healthz", port=second).status_code == 200


def test_reload_switches_log_format_to_json(daemon):
    cfg = copy.deepcopy(daemon.config)
    cfg["log"]["format"] = "json"
    daemon.write_config(cfg)
    offset = len(daemon.log())
    hup_and_wait(daemon, "ok")
    # Make the daemon log something after the switch: a refused token is logged.
    daemon.get("/api/v1/whoami", token="wrong-token-for-a-log-line")
    line = daemon.wait_log(r"authentication failed", offset=offset)
    event = json.loads(line)
    assert event.get("level") == "info", event
    assert "authentication failed" in json.dumps(event)
    # Every line after the switch is JSON (the line announcing the reload may be kv
    # or json, depending on when the switch happened).
    lines = daemon.log_lines_after(offset)
    after = lines[[i for i, text in enumerate(lines) if text == line][0]:]
    for text in after:
        json.loads(text)


def test_reload_with_a_different_tokens_file(daemon):
    carol = "carol-" + helpers.secrets.token_hex(16)
    new_tokens = os.path.join(daemon.workdir, "tokens-v2")
    helpers.write_tokens(new_tokens, {carol: ("carol", "viewer", ["finance"])})
    cfg = copy.deepcopy(daemon.config)
    cfg["plugins"]["auth_token"]["options"]["tokens_file"] = new_tokens
    daemon.write_config(cfg)
    hup_and_wait(daemon, "ok")

    response = daemon.get("/api/v1/whoami", token=carol)
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "carol", "role": "viewer", "teams": ["finance"]}
    assert daemon.get("/api/v1/whoami", token=daemon.token).status_code == 401


def test_tokens_file_edit_is_picked_up_without_reload(daemon):
    """auth_token's reload_interval (1s in these configs) notices a changed file by itself."""
    dave = "dave-" + helpers.secrets.token_hex(16)
    tokens = dict(daemon.tokens)
    tokens[dave] = ("dave", "member", ["analytics"])
    helpers.write_tokens(daemon.tokens_path + ".new", tokens)
    os.replace(daemon.tokens_path + ".new", daemon.tokens_path)
    helpers.wait_until(lambda: daemon.get("/api/v1/whoami", token=dave).status_code == 200, 10,
                       what="the new token to be accepted")
    assert daemon.get("/api/v1/whoami", token=daemon.token).status_code == 200


def _malformed_yaml(daemon):
    return None, "server:\n  listen: [\"127.0.0.1:1\"\n  bad: {\n"


def _unknown_key(daemon):
    cfg = copy.deepcopy(daemon.config)
    cfg["server"]["listne"] = ["127.0.0.1:1"]
    return cfg, None


def _missing_plugin(daemon):
    cfg = copy.deepcopy(daemon.config)
    cfg["plugins"]["auth_token"]["path"] = os.path.join(daemon.workdir, "no-such-plugin.so")
    return cfg, None


def _bad_plugin_option(daemon):
    cfg = copy.deepcopy(daemon.config)
    cfg["plugins"]["auth_token"]["options"]["reload_interval"] = "soon"
    return cfg, None


def _listen_port_taken(daemon):
    cfg = copy.deepcopy(daemon.config)
    busy = helpers.socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    daemon._busy_socket = busy      # keep it bound until the test ends
    cfg["server"]["listen"] = [f"127.0.0.1:{busy.getsockname()[1]}"]
    return cfg, None


@pytest.mark.parametrize("make_bad,expect_in_log", [
    (_malformed_yaml, "sparkplane.yaml"),
    (_unknown_key, "listne"),
    (_missing_plugin, "no-such-plugin.so"),
    (_bad_plugin_option, "reload_interval"),
    (_listen_port_taken, "server.listen"),
], ids=["malformed-yaml", "unknown-key", "missing-plugin-so", "bad-plugin-option",
        "listen-port-taken"])
def test_bad_reload_is_refused_and_the_old_config_keeps_serving(daemon, make_bad, expect_in_log):
    old_config = copy.deepcopy(daemon.config)
    cfg, text = make_bad(daemon)
    daemon.write_config(text=text if text is not None else helpers.to_yaml(cfg) + "\n")
    offset = len(daemon.log())
    hup_and_wait(daemon, "refused")

    lines = daemon.log_lines_after(offset)
    assert any(expect_in_log in line for line in lines), \
        f"no log line names {expect_in_log!r}:\n" + "\n".join(lines)
    assert daemon.get("/readyz").status_code == 200
    response = daemon.get("/api/v1/whoami", token=daemon.token)
    assert response.status_code == 200, "the old plugin set must keep authenticating"
    assert reloads(daemon, "ok") == 0

    # The daemon is not stuck: fixing the file makes the next reload work.
    daemon.write_config(old_config)
    hup_and_wait(daemon, "ok")
    assert daemon.get("/api/v1/whoami", token=daemon.token).status_code == 200
