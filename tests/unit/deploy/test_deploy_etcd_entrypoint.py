"""deploy/images/etcd-entrypoint.sh: the firewall it sets before etcd
starts, run with stand-ins for iptables and etcd that record their
arguments (the real rules are exercised by tests/integration/cluster)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.unit.deploy.conftest import ROOT

ENTRYPOINT = ROOT / "deploy" / "images" / "etcd-entrypoint.sh"


@pytest.fixture
def run(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name, body in (("iptables", 'echo "iptables $*" >>"$LOG"\n'
                                    '[ "$FAIL" = "$2" ] && exit 1\n'
                                    '[ "$2" = -C ] && exit 1\nexit 0\n'),
                       ("etcd", 'echo "etcd $*" >>"$LOG"\n')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}")
        (bin_dir / name).chmod(0o755)

    def run_(env: dict[str, str], *args: str) -> tuple[int, list[str], str]:
        log.write_text("")
        proc = subprocess.run(
            ["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=30,
            env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log), **env},
            check=False)
        return proc.returncode, log.read_text().splitlines(), proc.stderr
    return run_


def test_etcd_entrypoint_lets_only_the_api_servers_reach_the_client_port(run):
    code, calls, _ = run({"KYB_ETCD_CLIENTS": "172.30.0.20,172.30.0.21",
                          "KYB_ETCD_PEERS": "172.30.0.10"}, "--name", "etcd-0")
    assert code == 0
    rules = [c for c in calls if " -A KYB-ETCD " in c]
    assert rules == [
        "iptables -w -A KYB-ETCD -p tcp --dport 2379 -i lo -j ACCEPT",
        "iptables -w -A KYB-ETCD -p tcp --dport 2379 -s 172.30.0.20 -j ACCEPT",
        "iptables -w -A KYB-ETCD -p tcp --dport 2379 -s 172.30.0.21 -j ACCEPT",
        "iptables -w -A KYB-ETCD -p tcp --dport 2379 -j REJECT --reject-with tcp-reset",
        "iptables -w -A KYB-ETCD -p tcp --dport 2380 -i lo -j ACCEPT",
        "iptables -w -A KYB-ETCD -p tcp --dport 2380 -s 172.30.0.10 -j ACCEPT",
        "iptables -w -A KYB-ETCD -p tcp --dport 2380 -j REJECT --reject-with tcp-reset"]
    # The chain is flushed first (a restart converges) and jumped to from INPUT once.
    assert calls.index("iptables -w -F KYB-ETCD") < calls.index(rules[0])
    assert "iptables -w -I INPUT 1 -j KYB-ETCD" in calls
    assert calls[-1] == "etcd --name etcd-0"


def test_etcd_entrypoint_fails_closed_when_the_firewall_cannot_be_set(run):
    code, calls, err = run({"KYB_ETCD_CLIENTS": "172.30.0.20", "FAIL": "-F"})
    assert code != 0
    assert not any(c.startswith("etcd") for c in calls)
    assert "cannot set the firewall" in err


def test_etcd_entrypoint_refuses_anything_but_an_address(run):
    code, calls, err = run({"KYB_ETCD_CLIENTS": "172.30.0.20;reboot"})
    assert code == 2 and "not an IPv4 address" in err
    assert not any(c.startswith("etcd") for c in calls)


def test_etcd_entrypoint_without_addresses_is_plain_etcd(run):
    code, calls, _ = run({}, "--version")
    assert code == 0 and calls == ["etcd --version"]
