"""Transport and identity: mutual TLS on the API server's port, bearer
tokens on the token port, and every wrong credential refused."""

from __future__ import annotations

import datetime

import grpc
import pytest

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz_pb2
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2_grpc as authz_grpc
from services.machinery import Client, pki
from services.machinery.config import ClientConfig
from services.machinery.errors import ApiError
from tests.support.pki import TestPki

pytestmark = pytest.mark.asyncio


async def whoami(client: Client) -> authz_pb2.UserInfo:
    stub = authz_grpc.AuthorizationStub(await client.ready_channel())
    return await stub.WhoAmI(authz_pb2.SelfSubjectReview(), timeout=10)


async def refused(client: Client) -> ApiError:
    with pytest.raises(ApiError) as err:
        async with client:
            await client.resource("namespaces").list()
    return err.value


async def test_certificate_identity_is_cn_and_o(secure):
    async with secure.client("alice", ("dev", "ops")) as c:
        me = await whoami(c)
    assert (me.username, list(me.groups), me.authenticated_by) == (
        "alice", ["dev", "ops", "system:authenticated"], "x509")


async def test_plaintext_client_is_refused(secure):
    err = await refused(Client([secure.address], retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAVAILABLE


async def test_client_without_certificate_is_refused_at_the_handshake(secure):
    cfg = ClientConfig.from_files(secure.address, ca_file=secure.pki.ca_file)
    err = await refused(Client(config=cfg, retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_is_refused(secure, tmp_path):
    other = TestPki(tmp_path / "other", name="someone-elses-ca")
    cert, key = other.user("kubernetes-admin", ("system:masters",))
    cfg = ClientConfig.from_files(secure.address, ca_file=secure.pki.ca_file,
                                  cert_file=cert, key_file=key)
    err = await refused(Client(config=cfg, retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAVAILABLE


async def test_expired_certificate_is_refused(secure):
    now = datetime.datetime.now(datetime.timezone.utc)
    cert, key = secure.pki.user("kubernetes-admin", ("system:masters",),
                                not_before=now - datetime.timedelta(days=30),
                                not_after=now - datetime.timedelta(days=1))
    cfg = ClientConfig.from_files(secure.address, ca_file=secure.pki.ca_file,
                                  cert_file=cert, key_file=key)
    err = await refused(Client(config=cfg, retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAVAILABLE


def _certificate_without_common_name(ca: pki.CertKey, directory) -> tuple:
    """A client certificate naming only an Organization (pki.issue always sets a CN)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = pki.new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                        "system:masters")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca.key, hashes.SHA256()))
    return pki.save(pki.CertKey(cert, key), directory, "no-cn")


async def test_certificate_without_common_name_is_unauthenticated(secure, tmp_path):
    cert, key = _certificate_without_common_name(secure.pki.ca, tmp_path)
    cfg = ClientConfig.from_files(secure.address, ca_file=secure.pki.ca_file,
                                  cert_file=cert, key_file=key)
    err = await refused(Client(config=cfg, retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAUTHENTICATED
    assert "Common Name" in str(err)


async def test_unknown_common_name_is_authenticated_but_may_do_nothing(secure):
    err = await refused(secure.client("mallory"))
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert 'User "mallory" cannot list resource "namespaces"' in str(err)


async def test_server_certificate_for_another_name_is_refused_by_the_client(secure):
    cert, key = secure.pki.user("kubernetes-admin", ("system:masters",))
    cfg = ClientConfig.from_files(secure.address, ca_file=secure.pki.ca_file, cert_file=cert,
                                  key_file=key, tls_server_name="not-the-apiserver.example")
    err = await refused(Client(config=cfg, retry_for=1.0, timeout=5.0))
    assert err.code == grpc.StatusCode.UNAVAILABLE


async def test_bearer_tokens_on_the_token_port(secure):
    async with secure.token_client("tok-admin") as c:
        me = await whoami(c)
        assert (me.username, me.authenticated_by) == ("script-admin", "token")
        await c.resource("namespaces").list()
    for token in (None, "not-a-token"):
        err = await refused(secure.token_client(token))
        assert err.code == grpc.StatusCode.UNAUTHENTICATED, token
    viewer = await refused(secure.token_client("tok-viewer"))
    assert viewer.code == grpc.StatusCode.PERMISSION_DENIED


async def test_health_is_open_without_credentials(secure):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    creds = grpc.ssl_channel_credentials(root_certificates=secure.pki.ca_file.read_bytes())
    async with grpc.aio.secure_channel(secure.token_address, creds) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
