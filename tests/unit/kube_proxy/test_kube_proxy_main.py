"""kyb-proxy's command line."""

from __future__ import annotations

import pytest

from services.kube_proxy.iptables import Iptables
from services.kube_proxy.main import parse_args


def test_kube_proxy_main_defaults_work():
    opts = parse_args([])
    assert (opts.sync_period, opts.min_sync_period, opts.cluster_cidr, opts.metrics_port) == \
        (30.0, 1.0, "10.244.0.0/16", 10249)
    assert not opts.cleanup and opts.netns == ""


@pytest.mark.parametrize("argv", [["--cluster-cidr", "10.244.0.0/33"],
                                  ["--masquerade-bit", "32"], ["--sync-period", "0"],
                                  ["--iptables-backend", "ipvs"]])
def test_kube_proxy_main_rejects_bad_flags(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    assert "kyb-proxy: error:" in capsys.readouterr().err


def test_kube_proxy_main_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    for flag in ("--server", "--cleanup", "--netns", "--sync-period", "--min-sync-period",
                 "--cluster-cidr", "--metrics-port", "--log-level"):
        assert flag in out


def test_kube_proxy_iptables_commands_in_a_namespace():
    assert Iptables()._cmd("iptables-restore") == ["iptables-restore"]
    assert Iptables("node1")._cmd("iptables-save") == ["nsenter", "--net=/run/netns/node1",
                                                       "--", "iptables-save"]
    assert Iptables("/proc/42/ns/net", backend="legacy")._cmd("iptables-restore") == [
        "nsenter", "--net=/proc/42/ns/net", "--", "iptables-legacy-restore"]
    assert Iptables(backend="nft")._cmd("iptables") == ["iptables-nft"]
    with pytest.raises(ValueError):
        Iptables(backend="ipvs")
