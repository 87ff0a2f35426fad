"""The kyb entry point: exit codes and one-line errors, without a server
(an unused local port stands in for an unreachable one)."""

from __future__ import annotations

import socket

import pytest

from services.ctl import main as ctl


@pytest.fixture
def dead_server() -> str:
    """An address nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_main_help_exits_zero(capsys):
    assert ctl.main(["--help"]) == 0
    assert "apply" in capsys.readouterr().out
    for command in ("apply", "get", "describe", "delete", "create", "auth"):
        assert ctl.main([command, "--help"]) == 0
    assert ctl.main(["create", "namespace", "--help"]) == 0


def test_main_usage_error_is_one_line(capsys):
    assert ctl.main(["get"]) == 1
    assert _one_error_line(capsys).startswith("error: the following arguments are required")
    assert ctl.main(["frobnicate"]) == 1
    assert _one_error_line(capsys).startswith("error: argument COMMAND: invalid choice")


def test_main_unknown_kind_is_one_line(capsys, dead_server):
    assert ctl.main(["--server", dead_server, "get", "foo"]) == 1
    assert _one_error_line(capsys) == 'error: the server doesn\'t have a resource type "foo"'


def test_main_unreachable_server_is_one_line(capsys, dead_server):
    assert ctl.main(["--server", dead_server, "get", "pods"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: cannot reach the API server at {dead_server}: ")


def test_main_bad_server_address_is_one_line(capsys):
    assert ctl.main(["--server", "nonsense", "get", "pods"]) == 1
    assert _one_error_line(capsys) == "error: API server address 'nonsense' is not HOST:PORT"


def test_main_strict_validation_fails_before_anything_is_sent(capsys, tmp_path, dead_server):
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
                    "spec:\n  containers: [{name: c, image: x, securityContext: {}}]\n")
    assert ctl.main(["--server", dead_server, "apply", "-f", str(path),
                     "--validate=strict"]) == 1
    assert _one_error_line(capsys) == (
        f'error: error validating "{path}": strict decoding error: unknown field '
        f'"spec.containers[0].securityContext"')


def test_main_bad_yaml_is_one_line(capsys, tmp_path, dead_server):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n   x: y\n")
    assert ctl.main(["-s", dead_server, "apply", "-f", str(path)]) == 1
    assert _one_error_line(capsys) == \
        f"error: error parsing {path}:5:5: mapping values are not allowed here"


def test_main_global_flags_work_after_the_command(capsys, dead_server):
    assert ctl.main(["get", "pods", "-n", "x", "--server", dead_server,
                     "--request-timeout", "2s"]) == 1
    assert dead_server in _one_error_line(capsys)


@pytest.mark.parametrize(("text", "seconds"), [("5", 5.0), ("1.5", 1.5), ("30s", 30.0),
                                               ("2m", 120.0), ("1h", 3600.0), ("500ms", 0.5)])
def test_main_duration_parses_go_style(text, seconds):
    assert ctl.duration(text) == seconds


def test_main_delete_needs_names_or_selector(capsys, dead_server):
    assert ctl.main(["-s", dead_server, "delete", "pods"]) == 1
    assert "no name was specified" in _one_error_line(capsys)


def test_main_closed_stdout_exits_quietly_like_sigpipe(monkeypatch, capfd):
    """`kyb logs POD | head`: the reader leaves; no traceback, status 141."""
    import os
    from services.ctl import main as ctl_main

    async def broken(*_args):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(ctl_main, "_run", broken)
    saved = os.dup(1)
    try:
        assert ctl_main.main(["--server", "127.0.0.1:1", "get", "pods"]) == 141
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    assert capfd.readouterr().err == ""


def test_main_kubeconfig_flag_is_read(capsys, tmp_path, dead_server):
    missing = tmp_path / "nope"
    assert ctl.main(["--kubeconfig", str(missing), "get", "pods"]) == 1
    assert _one_error_line(capsys) == f"error: client config {missing} does not exist"
    config = tmp_path / "config"
    config.write_text(f"server: {dead_server}\n")
    assert ctl.main(["get", "pods", "--kubeconfig", str(config)]) == 1
    assert _one_error_line(capsys).startswith(f"error: cannot reach the API server at "
                                              f"{dead_server}: ")
