"""Each container's credentials: what goes in its bundle (pure), and the
PKI and bundles written for real into a temporary state directory."""

from __future__ import annotations

import base64
import pathlib

import pytest
import yaml

from services.cluster import credentials
from services.cluster.config import Options
from services.cluster.topology import plan
from services.machinery import config, pki


def _topo(tmp_path: pathlib.Path, **changes):
    return plan(Options(**changes), state_dir=str(tmp_path / "state"))


def _names(bundle: credentials.Bundle) -> set[str]:
    return {target for _, target in bundle.files} | {k.name for k in bundle.kubeconfigs}


def test_credentials_no_bundle_holds_the_ca_key(tmp_path):
    for b in credentials.bundles(_topo(tmp_path, etcd=3, apiservers=2, nodes=3)):
        assert "ca.key" not in {source for source, _ in b.files}, b.container
        assert ("ca.crt", "ca.crt") in b.files


def test_credentials_each_role_gets_only_what_it_uses(tmp_path):
    by_name = {b.container: b for b in credentials.bundles(_topo(tmp_path))}
    assert _names(by_name["kyb-etcd-0"]) == {"ca.crt", "etcd-server.crt", "etcd-server.key"}
    assert _names(by_name["kyb-apiserver-0"]) == {
        "ca.crt", "apiserver.crt", "apiserver.key", "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key", "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key", "tokens.csv"}
    assert _names(by_name["kyb-scheduler"]) == {
        "ca.crt", "client.crt", "client.key", "serving.crt", "serving.key", "kubeconfig.conf"}
    assert ("scheduler.crt", "client.crt") in by_name["kyb-scheduler"].files
    assert ("controller-manager.crt", "client.crt") in by_name["kyb-controller-manager"].files
    node = by_name["kyb-node-2"]
    assert _names(node) == {
        "ca.crt", "kubelet-client.crt", "kubelet-client.key", "kubelet.crt", "kubelet.key",
        "kube-proxy.crt", "kube-proxy.key", "kube-proxy-serving.crt", "kube-proxy-serving.key",
        "kubelet.conf", "kube-proxy.conf"}
    # Node 2 gets node 2's identity, never node 1's.
    assert ("node-kyb-node-2.crt", "kubelet-client.crt") in node.files
    assert not any("kyb-node-1" in source for source, _ in node.files)


def test_credentials_serving_specs_name_each_daemons_address(tmp_path):
    specs = {s.name: s for s in credentials.serving_specs(_topo(tmp_path, nodes=2))}
    assert set(specs) == {"scheduler-serving", "controller-manager-serving",
                          "kube-proxy-serving-kyb-node-1", "kube-proxy-serving-kyb-node-2"}
    assert specs["scheduler-serving"].ip_addresses == ("172.30.0.30", "127.0.0.1")
    assert "kyb-controller-manager" in specs["controller-manager-serving"].dns_names
    assert specs["kube-proxy-serving-kyb-node-2"].ip_addresses[0] == "172.30.0.41"
    assert all(s.server and not s.client for s in specs.values())


def test_credentials_write_pki_issues_every_identity(tmp_path):
    topo = _topo(tmp_path, nodes=2)
    issued, tokens = credentials.write_pki(topo.pki_dir, topo)
    d = pathlib.Path(topo.pki_dir)
    assert (d / "ca.key").stat().st_mode & 0o777 == 0o600
    assert d.stat().st_mode & 0o777 == 0o700

    def subject(name):
        cert = pki.load_cert(d / f"{name}.crt")
        return pki.common_name(cert), pki.organizations(cert)
    assert subject("admin") == ("kubernetes-admin", ("system:masters",))
    assert subject("scheduler") == ("system:kube-scheduler", ())
    assert subject("controller-manager") == ("system:kube-controller-manager", ())
    assert subject("kube-proxy") == ("system:kube-proxy", ())
    assert subject("node-kyb-node-1") == ("system:node:kyb-node-1", ("system:nodes",))
    assert subject("apiserver-kubelet-client") == ("kube-apiserver-kubelet-client",
                                                   ("system:masters",))
    assert subject("prometheus") == ("system:prometheus", ("system:monitoring",))
    dns, ips = pki.sans(pki.load_cert(d / "apiserver.crt"))
    assert {"172.30.0.20", "127.0.0.1", "10.96.0.1"} <= ips
    assert {"kyb-apiserver-0", "localhost", "kubernetes.default.svc"} <= dns
    assert pki.sans(pki.load_cert(d / "etcd-server.crt"))[1] >= {"172.30.0.10"}
    assert pki.sans(pki.load_cert(d / "kubelet-kyb-node-2.crt"))[1] == {"172.30.0.41"}
    assert set(tokens) == {"kyb-admin", "kyb-viewer"}
    rows = (d / "tokens.csv").read_text().splitlines()
    assert f'{tokens["kyb-admin"]},kyb-admin,kyb-admin,system:masters' in rows
    assert "scheduler-serving" in issued and "admin" in issued


def test_credentials_second_run_changes_nothing(tmp_path):
    topo = _topo(tmp_path, nodes=2)
    _, tokens = credentials.write_pki(topo.pki_dir, topo)
    digests = credentials.write_bundles(topo.pki_dir, topo)

    def mtimes():  # every certificate, key and bundle file
        state = pathlib.Path(topo.state_dir)
        return {p: p.stat().st_mtime_ns for p in [*state.glob("pki/*.crt"),
                                                  *state.glob("pki/*.key"),
                                                  *state.rglob("bundles/*/*")]}
    before = mtimes()
    issued, again = credentials.write_pki(topo.pki_dir, topo)
    assert issued == {} and again == tokens
    assert credentials.write_bundles(topo.pki_dir, topo) == digests
    assert mtimes() == before


def test_credentials_a_new_node_changes_no_other_bundle(tmp_path):
    topo = _topo(tmp_path, nodes=1)
    credentials.write_pki(topo.pki_dir, topo)
    before = credentials.write_bundles(topo.pki_dir, topo)
    bigger = _topo(tmp_path, nodes=2)
    issued, _ = credentials.write_pki(bigger.pki_dir, bigger)
    assert set(issued) == {"node-kyb-node-2", "kubelet-kyb-node-2",
                           "kube-proxy-serving-kyb-node-2"}
    after = credentials.write_bundles(bigger.pki_dir, bigger)
    assert {k: v for k, v in after.items() if k in before} == before


def test_credentials_bundle_kubeconfigs_load_as_client_configs(tmp_path):
    topo = _topo(tmp_path, apiservers=2)
    credentials.write_pki(topo.pki_dir, topo)
    credentials.write_bundles(topo.pki_dir, topo)
    bundle = pathlib.Path(topo.bundle_dir("kyb-node-1"))
    cfg = config.load(kubeconfig=bundle / "kubelet.conf")
    assert cfg.servers == ["172.30.0.20:6443", "172.30.0.21:6443"]
    assert cfg.secure and cfg.cert and cfg.key
    cert = pki.load_cert(bundle / "kubelet-client.crt")
    assert pki.common_name(cert) == "system:node:kyb-node-1"
    assert yaml.safe_load((bundle / "kube-proxy.conf").read_text())["client-certificate"] == \
        "kube-proxy.crt"
    assert (bundle / "kubelet.key").stat().st_mode & 0o777 == 0o600
    assert bundle.stat().st_mode & 0o777 == 0o700
    apiserver = pathlib.Path(topo.bundle_dir("kyb-apiserver-0"))
    assert (apiserver / "tokens.csv").stat().st_mode & 0o777 == 0o600


def test_credentials_write_bundle_removes_what_is_no_longer_in_it(tmp_path):
    d = tmp_path / "b"
    credentials.write_bundle(d, {"a.crt": b"1", "b.key": b"2"})
    credentials.write_bundle(d, {"a.crt": b"3"})
    assert sorted(p.name for p in d.iterdir()) == ["a.crt"]
    assert (d / "a.crt").read_bytes() == b"3"


def test_credentials_digest_follows_content_and_names():
    assert credentials.digest({"a": b"1"}) == credentials.digest({"a": b"1"})
    assert credentials.digest({"a": b"1"}) != credentials.digest({"a": b"2"})
    assert credentials.digest({"a": b"1"}) != credentials.digest({"b": b"1"})


def test_credentials_user_config_is_self_contained(tmp_path):
    topo = _topo(tmp_path)
    credentials.write_pki(topo.pki_dir, topo)
    ca_pem, pair = credentials.issue_user(topo.pki_dir, "alice", ["dev", "ops"])
    path = tmp_path / "elsewhere" / "alice.conf"
    path.parent.mkdir()
    path.write_text(credentials.user_config_text(topo.api_addresses, ca_pem, pair))
    cfg = config.load(kubeconfig=path)
    assert cfg.servers == ["172.30.0.20:6443"] and cfg.secure
    cert = pki.load_cert(tmp_path / "state" / "pki" / "ca.crt")
    assert cfg.ca == cert.public_bytes(pki.serialization.Encoding.PEM)
    data = yaml.safe_load(path.read_text())
    user = pki.x509.load_pem_x509_certificate(base64.b64decode(data["client-certificate-data"]))
    assert (pki.common_name(user), pki.organizations(user)) == ("alice", ("dev", "ops"))
    assert pki.signed_by(user, cert)


def test_credentials_issue_user_needs_the_cluster_ca(tmp_path):
    with pytest.raises(ValueError, match="no cluster CA"):
        credentials.issue_user(tmp_path, "bob", [])
