"""The pure parts of transport security: loading files with clear errors,
the bearer header, reading a peer's identity, the daemons' TLS flags, and
recognising handshake failures."""

from __future__ import annotations

import argparse
import ssl

import grpc
import pytest

from services.machinery import flags, peer, pki, tlsconfig
from services.machinery.config import ClientConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca()
    pki.save(ca, d, "ca")
    pki.save(pki.issue(ca, pki.CertSpec("srv", "srv", dns_names=("localhost",), server=True)),
             d, "srv")
    pki.save(pki.issue(ca, pki.CertSpec("cli", "system:node:n1", ("system:nodes", "x"),
                                        client=True)), d, "cli")
    return d


class _Context:
    def __init__(self, auth=None, metadata=()):
        self.auth, self.metadata = auth or {}, metadata

    def auth_context(self):
        return self.auth

    def invocation_metadata(self):
        return self.metadata


def test_tlsconfig_serving_cert_checks_its_files(files):
    serving = tlsconfig.ServingCert.load(files / "srv.crt", files / "srv.key", files / "ca.crt")
    assert serving.client_ca == (files / "ca.crt").read_bytes()
    assert isinstance(serving.grpc_credentials(), grpc.ServerCredentials)
    assert serving.ssl_context().verify_mode == ssl.CERT_OPTIONAL
    with pytest.raises(ValueError, match=r"private key .*cli.key is not the private key of "
                                         r"certificate .*srv.crt"):
        tlsconfig.ServingCert.load(files / "srv.crt", files / "cli.key")
    with pytest.raises(ValueError, match=r"cannot read certificate .*nope.crt: No such file"):
        tlsconfig.ServingCert.load(files / "nope.crt", files / "srv.key")
    with pytest.raises(ValueError, match="needs a client CA"):
        tlsconfig.ServingCert.load(files / "srv.crt", files / "srv.key").grpc_credentials()


def test_tlsconfig_channel_credentials_need_both_cert_and_key(files):
    ca = (files / "ca.crt").read_bytes()
    assert tlsconfig.channel_credentials(ca, token="t")
    with pytest.raises(ValueError, match="go together|needs its key"):
        tlsconfig.channel_credentials(ca, cert=(files / "cli.crt").read_bytes())
    with pytest.raises(ValueError, match="needs its key"):
        tlsconfig.ClientTLS.load(files / "ca.crt", files / "cli.crt")
    tls = tlsconfig.ClientTLS.load(files / "ca.crt", files / "cli.crt", files / "cli.key", "n")
    assert tls.server_name == "n" and tls.cert == (files / "cli.crt").read_bytes()


def test_tlsconfig_failures_are_recognised():
    assert "not valid for the name" in tlsconfig.tls_failure(
        "last error: UNKNOWN: ipv4:1.2.3.4:1: Custom verification check failed with error: "
        "UNAUTHENTICATED: Hostname Verification Check failed.")
    assert "not signed" in tlsconfig.tls_failure(
        "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
        "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer")
    assert "does not speak TLS" in tlsconfig.tls_failure(
        "Tls handshake failed: ... WRONG_VERSION_NUMBER: ...")
    assert tlsconfig.tls_failure("failed to connect to all addresses; Socket closed") == ""


def test_peer_identity_from_the_certificate(files):
    pem = (files / "cli.crt").read_bytes()
    ctx = _Context({"x509_common_name": [b"system:node:n1"], "x509_pem_cert": [pem]})
    assert peer.peer_cert(ctx) == peer.PeerCert("system:node:n1", ("system:nodes", "x"))
    assert peer.identity(ctx) == ("system:node:n1", ("system:nodes", "x"))
    assert peer.peer_cert(_Context({"x509_pem_cert": [pem.decode()]})).common_name == \
        "system:node:n1"
    assert peer.peer_cert(_Context({"x509_common_name": [b"only-cn"]})) == \
        peer.PeerCert("only-cn")
    assert peer.peer_cert(_Context({"transport_security_type": [b"insecure"]})) is None


def test_peer_bearer_token_header():
    assert peer.bearer_token(_Context(metadata=[("authorization", "Bearer abc")])) == "abc"
    assert peer.bearer_token(_Context(metadata=[("authorization", "bearer  abc ")])) == "abc"
    assert peer.bearer_token(_Context(metadata=[("authorization", "Basic abc")])) is None
    assert peer.bearer_token(_Context(metadata=[("user-agent", "x")])) is None


def test_token_call_credentials_send_the_bearer_header():
    assert isinstance(tlsconfig.token_call_credentials("t"), grpc.CallCredentials)


def _serving_opts(argv):
    p = argparse.ArgumentParser()
    flags.add_client_flags(p)
    flags.add_serving_flags(p)
    return p.parse_args(argv)


def test_flags_serving_cert_defaults_its_client_ca_to_the_kubeconfigs(files):
    assert flags.serving_cert(_serving_opts([])) is None
    argv = ["--tls-cert-file", str(files / "srv.crt"),
            "--tls-private-key-file", str(files / "srv.key")]
    with pytest.raises(ValueError, match="needs --client-ca-file"):
        flags.serving_cert(_serving_opts(argv))
    cfg = ClientConfig(ca=(files / "ca.crt").read_bytes())
    assert flags.serving_cert(_serving_opts(argv), cfg).client_ca == cfg.ca
    explicit = flags.serving_cert(_serving_opts([*argv, "--client-ca-file",
                                                 str(files / "ca.crt")]))
    assert explicit is not None and explicit.client_ca
    with pytest.raises(ValueError, match="go together"):
        flags.serving_cert(_serving_opts(argv[:2]))
    with pytest.raises(ValueError, match="--client-ca-file needs"):
        flags.serving_cert(_serving_opts(["--client-ca-file", str(files / "ca.crt")]))
