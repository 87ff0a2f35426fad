"""kyb-cluster's command line: options merging and one-line errors."""

from __future__ import annotations

import pytest

from services.cluster import main as cli
from services.cluster.config import Options


def _args(*argv):
    return cli.parser().parse_args(["up", *argv])


def test_main_merge_options_flags_win_then_stored_then_defaults():
    stored = Options(name="kyb", nodes=3, apiservers=2)
    opts = cli.merge_options(_args("--apiservers", "1"), stored)
    assert (opts.nodes, opts.apiservers, opts.etcd) == (3, 1, 1)
    assert cli.merge_options(_args(), None) == Options()


def test_main_merge_options_refuses_to_change_fixed_fields_of_a_running_cluster():
    with pytest.raises(cli.UsageError, match="--etcd 1; changing it needs `kyb-cluster down`"):
        cli.merge_options(_args("--etcd", "3"), Options())
    with pytest.raises(cli.UsageError, match="--subnet"):
        cli.merge_options(_args("--subnet", "172.31.0.0/24"), Options())


def test_main_merge_options_validates():
    with pytest.raises(ValueError, match="--nodes"):
        cli.merge_options(_args("--nodes", "0"), None)


def test_main_bad_command_line_is_one_line(capsys):
    assert cli.main(["frobnicate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kyb-cluster: ") and err.count("\n") == 1


def test_main_state_dir_follows_the_client_config(monkeypatch, tmp_path):
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "cfg" / "config"))
    assert cli.state_dir("demo") == tmp_path / "cfg" / "clusters" / "demo"
