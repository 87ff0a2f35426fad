"""The cluster PKI: a CA, leaf certificates that verify against it with
the right names, groups and usages, and an idempotent cluster directory."""

from __future__ import annotations

import csv
import datetime
import io
import ipaddress
import os
import stat

import pytest
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.machinery import pki

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return pki.create_ca("test-ca")


def _verify_server(ca: pki.CertKey, leaf: pki.CertKey, name: x509.GeneralName) -> None:
    store = verification.Store([ca.cert])
    verifier = verification.PolicyBuilder().store(store).build_server_verifier(name)
    verifier.verify(leaf.cert, [])


def _valid_client(ca: pki.CertKey, leaf: pki.CertKey) -> bool:
    """Signed by ``ca`` and valid now (cryptography's own client verifier
    wants a SAN, which Kubernetes' client certificates do not carry)."""
    now = datetime.datetime.now(UTC)
    return pki.signed_by(leaf.cert, ca.cert) and \
        leaf.cert.not_valid_before_utc <= now <= leaf.cert.not_valid_after_utc


def test_pki_ca_is_a_self_signed_ca(ca):
    basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert basic.ca and usage.key_cert_sign
    assert ca.cert.subject == ca.cert.issuer and pki.signed_by(ca.cert, ca.cert)
    assert pki.common_name(ca.cert) == "test-ca"


def test_pki_server_cert_verifies_for_its_names_only(ca):
    leaf = pki.issue(ca, pki.CertSpec("s", "kube-apiserver", dns_names=("api.example",),
                                      ip_addresses=("10.0.0.1",), server=True))
    _verify_server(ca, leaf, x509.DNSName("api.example"))
    _verify_server(ca, leaf, x509.IPAddress(ipaddress.ip_address("10.0.0.1")))
    with pytest.raises(verification.VerificationError):
        _verify_server(ca, leaf, x509.DNSName("other.example"))
    assert pki.sans(leaf.cert) == ({"api.example"}, {"10.0.0.1"})


def test_pki_client_cert_carries_user_and_groups(ca):
    leaf = pki.issue(ca, pki.CertSpec("n", "system:node:n1", ("system:nodes", "extra"),
                                      client=True))
    assert _valid_client(ca, leaf)
    assert pki.common_name(leaf.cert) == "system:node:n1"
    assert pki.organizations(leaf.cert) == ("system:nodes", "extra")
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_pki_another_ca_does_not_verify(ca):
    other = pki.create_ca("other")
    leaf = pki.issue(other, pki.CertSpec("c", "x", client=True))
    assert not pki.signed_by(leaf.cert, ca.cert) and not _valid_client(ca, leaf)


def test_pki_validity_window_can_be_set_for_expired_certs(ca):
    start, end = datetime.datetime(2020, 1, 1, tzinfo=UTC), datetime.datetime(2021, 1, 1,
                                                                             tzinfo=UTC)
    leaf = pki.issue(ca, pki.CertSpec("c", "old", client=True), not_before=start, not_after=end)
    assert (leaf.cert.not_valid_before_utc, leaf.cert.not_valid_after_utc) == (start, end)
    assert not _valid_client(ca, leaf)
    spec = pki.CertSpec("c", "old", client=True)
    assert pki.reissue_reason(leaf.cert, spec, ca.cert) == "expires soon"


def test_pki_reissue_reason_notices_every_change(ca):
    spec = pki.CertSpec("k", "system:node:a", ("system:nodes",), dns_names=("a",),
                        ip_addresses=("10.0.0.2",), server=True)
    cert = pki.issue(ca, spec).cert
    assert pki.reissue_reason(cert, spec, ca.cert) == ""
    assert pki.reissue_reason(None, spec, ca.cert) == "missing"
    changed = {
        "SANs changed": pki.CertSpec("k", "system:node:a", ("system:nodes",), ("a",),
                                     ("10.0.0.3",), server=True),
        "subject changed": pki.CertSpec("k", "system:node:b", ("system:nodes",), ("a",),
                                        ("10.0.0.2",), server=True),
        "usage changed": pki.CertSpec("k", "system:node:a", ("system:nodes",), ("a",),
                                      ("10.0.0.2",), server=True, client=True),
    }
    for reason, other in changed.items():
        assert pki.reissue_reason(cert, other, ca.cert) == reason
    assert pki.reissue_reason(cert, spec, pki.create_ca().cert) == "not signed by the current CA"
    soon = datetime.datetime.now(UTC) + datetime.timedelta(days=340)
    assert pki.reissue_reason(cert, spec, ca.cert, soon) == "expires soon"


def test_pki_spec_needs_a_usage_and_valid_ips():
    with pytest.raises(ValueError, match="client or server"):
        pki.CertSpec("x", "x")
    with pytest.raises(ValueError):
        pki.CertSpec("x", "x", ip_addresses=("not-an-ip",), server=True)


def test_pki_plan_names_every_component_as_kubernetes_does():
    specs = {s.name: s for s in pki.plan_cluster(
        apiserver_sans=["172.18.0.10", "api.local"], service_cidr="10.96.0.0/12",
        etcd_sans=["172.18.0.5"], nodes=[pki.NodeIdentity("n1", ("172.18.0.20",))])}
    api = specs["apiserver"]
    assert api.server and not api.client
    assert {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local", "localhost", "api.local"} == \
        set(api.dns_names)
    assert {"127.0.0.1", "10.96.0.1", "172.18.0.10"} == set(api.ip_addresses)
    subjects = {n: (s.common_name, s.organizations) for n, s in specs.items()}
    assert subjects["admin"] == ("kubernetes-admin", ("system:masters",))
    assert subjects["scheduler"] == ("system:kube-scheduler", ())
    assert subjects["controller-manager"] == ("system:kube-controller-manager", ())
    assert subjects["kube-proxy"] == ("system:kube-proxy", ())
    assert subjects["prometheus"] == ("system:prometheus", ("system:monitoring",))
    assert subjects["apiserver-kubelet-client"] == ("kube-apiserver-kubelet-client",
                                                    ("system:masters",))
    assert subjects["node-n1"] == ("system:node:n1", ("system:nodes",))
    serving = specs["kubelet-n1"]
    assert serving.server and serving.dns_names == ("n1",) and \
        serving.ip_addresses == ("172.18.0.20",)
    assert "172.18.0.5" in specs["etcd-server"].ip_addresses
    assert specs["apiserver-etcd-client"].client


def _mtimes(directory) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_pki_cluster_directory_is_written_once_and_kept(tmp_path):
    d = tmp_path / "pki"
    first = pki.write_cluster_pki(d, apiserver_sans=["172.18.0.10"],
                                  nodes={"n1": ["172.18.0.20"], "n2": ["172.18.0.21"]})
    assert set(first.issued.values()) == {"missing"}
    assert "kubelet-n2" in first.issued and "node-n1" in first.issued
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for key in d.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = pki.load(d, "ca")
    for crt in d.glob("*.crt"):
        assert pki.signed_by(pki.load_cert(crt), ca.cert), crt
    before = _mtimes(d)

    again = pki.write_cluster_pki(d, apiserver_sans=["172.18.0.10"],
                                  nodes={"n1": ["172.18.0.20"], "n2": ["172.18.0.21"]})
    assert again.issued == {} and _mtimes(d) == before

    # A node moved, another joined, a file went missing: only those change.
    (d / "scheduler.crt").unlink()
    third = pki.write_cluster_pki(d, apiserver_sans=["172.18.0.10"],
                                  nodes={"n1": ["172.18.0.20"], "n2": ["172.18.0.99"],
                                         "n3": ["172.18.0.22"]})
    assert third.issued == {"kubelet-n2": "SANs changed", "scheduler": "missing",
                            "node-n3": "missing", "kubelet-n3": "missing"}
    assert pki.load(d, "ca").cert == ca.cert, "the CA is kept"
    assert third.cert_file("kubelet-n2").exists() and third.ca_file == d / "ca.crt"


def test_pki_cluster_reissues_a_leaf_whose_key_was_replaced(tmp_path):
    d = tmp_path / "pki"
    pki.write_cluster_pki(d)
    (d / "admin.key").write_bytes(pki.key_to_pem(pki.new_key()))
    assert "admin" in pki.write_cluster_pki(d).issued
    leaf = pki.load(d, "admin")
    assert leaf.key.public_key() == leaf.cert.public_key()


def test_pki_broken_ca_is_an_error_not_replaced(tmp_path):
    d = tmp_path / "pki"
    pki.write_cluster_pki(d)
    (d / "ca.key").write_text("garbage")
    with pytest.raises(ValueError, match="ca.key"):
        pki.write_cluster_pki(d)


def test_pki_load_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read certificate .*nope.crt"):
        pki.load_cert(tmp_path / "nope.crt")
    (tmp_path / "bad.crt").write_text("hello")
    with pytest.raises(ValueError, match="bad.crt is not a PEM certificate"):
        pki.load_cert(tmp_path / "bad.crt")


def test_pki_token_file_is_kubernetes_csv_and_keeps_tokens(tmp_path):
    path = tmp_path / "tokens.csv"
    users = [pki.TokenUser("alice", "1001", ("dev", "ops")), pki.TokenUser("bot")]
    tokens = pki.write_token_file(path, users)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows == [[tokens["alice"], "alice", "1001", "dev,ops"], [tokens["bot"], "bot", "bot"]]
    assert len(tokens["alice"]) >= 32 and tokens["alice"] != tokens["bot"]
    again = pki.write_token_file(path, [*users, pki.TokenUser("carol")])
    assert again["alice"] == tokens["alice"] and again["bot"] == tokens["bot"]
    assert "carol" in again
