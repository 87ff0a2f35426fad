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


def _stored_cluster(monkeypatch, tmp_path, name="demo"):
    """A cluster's state directory as `up` leaves it (options, PKI), no Docker."""
    from services.cluster import credentials
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "config"))
    opts = Options(name=name, nodes=1)
    state = cli.state_dir(name)
    state.mkdir(parents=True)
    (state / "options.json").write_text(opts.to_json())
    topo = cli.topology(opts)
    _, tokens = credentials.write_pki(topo.pki_dir, topo)
    return topo, tokens


def test_main_admin_configs_use_the_admin_certificate_and_the_token_port(monkeypatch, tmp_path):
    from services.machinery import config
    topo, tokens = _stored_cluster(monkeypatch, tmp_path)
    admin = cli.write_admin_configs(topo, tokens)
    assert admin.servers == ["172.30.0.20:6443"] and admin.secure and admin.cert
    assert cli.admin_config(topo).cert == admin.cert
    viewer = config.load(kubeconfig=tmp_path / "clusters" / "demo" / "viewer-token.conf")
    assert viewer.servers == ["172.30.0.20:6444"] and viewer.token == tokens["kyb-viewer"]
    assert viewer.cert is None
    mode = (tmp_path / "clusters" / "demo" / "admin-token.conf").stat().st_mode & 0o777
    assert mode == 0o600


def test_main_admin_config_without_one_is_plaintext_to_the_api_servers(monkeypatch, tmp_path):
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "config"))
    cfg = cli.admin_config(cli.topology(Options(name="old")))
    assert cfg.servers == ["172.30.0.20:6443"] and not cfg.secure


def test_main_user_writes_a_self_contained_config(monkeypatch, tmp_path, capsys):
    from services.machinery import config, pki
    _stored_cluster(monkeypatch, tmp_path)
    out = tmp_path / "alice.conf"
    assert cli.main(["user", "alice", "--group", "dev", "--name", "demo", "-o", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    cfg = config.load(kubeconfig=out)
    cert = pki.x509.load_pem_x509_certificate(cfg.cert)
    assert (pki.common_name(cert), pki.organizations(cert)) == ("alice", ("dev",))
    printed = capsys.readouterr().out
    assert "kind: ClusterRoleBinding" in printed and 'name: "alice"' in printed
    # Default place: the cluster's state directory.
    assert cli.main(["user", "system:bob", "--name", "demo", "-q"]) == 0
    assert (tmp_path / "clusters" / "demo" / "users" / "system_bob.conf").exists()


def test_main_user_of_an_unknown_cluster_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "config"))
    monkeypatch.setattr(cli.docker_ops, "network_labels", lambda name: None)
    assert cli.main(["user", "alice", "--name", "nosuch"]) == 1
    assert capsys.readouterr().err == "kyb-cluster: no cluster nosuch\n"
