"""Transport security against real gRPC and HTTPS servers: a mutual-TLS
server refuses plaintext, certificate-less, foreign, and expired clients;
the client refuses a server whose certificate does not name it; a good
certificate gets through and the server reads the user and groups from
it; the token port takes a bearer token; the metrics server keeps its
health endpoints open and guards /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.machinery import Client, errors, peer, pki, tlsconfig
from services.machinery.config import ClientConfig
from services.machinery.httpserver import HttpServer
from tests.support.https import https_get

UTC = datetime.timezone.utc
SERVER_NAME = "kube-apiserver.test"


@dataclasses.dataclass
class Pki:
    dir: object
    ca: pki.CertKey

    def path(self, name: str, ext: str) -> str:
        return str(self.dir / f"{name}.{ext}")

    def client(self, servers, name: str | None = None, *, ca: str = "ca", token: str = "",
               server_name: str | None = None) -> ClientConfig:
        return ClientConfig.from_files(
            servers, ca_file=self.path(ca, "crt"),
            cert_file=self.path(name, "crt") if name else None,
            key_file=self.path(name, "key") if name else None,
            token=token or None, tls_server_name=server_name)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca("test-ca")
    pki.save(ca, d, "ca")
    other = pki.create_ca("other-ca")
    pki.save(other, d, "other-ca")
    issue = lambda ca_, name, spec, **kw: pki.save(pki.issue(ca_, spec, **kw), d, name)  # noqa
    issue(ca, "server", pki.CertSpec("server", "kube-apiserver", dns_names=("localhost",),
                                     ip_addresses=("127.0.0.1",), server=True))
    issue(ca, "named-server", pki.CertSpec("named-server", "kube-apiserver",
                                           dns_names=(SERVER_NAME,), server=True))
    issue(other, "foreign-server", pki.CertSpec("foreign-server", "kube-apiserver",
                                                ip_addresses=("127.0.0.1",), server=True))
    issue(ca, "admin", pki.CertSpec("admin", "kubernetes-admin", ("system:masters",),
                                    client=True))
    issue(other, "foreign", pki.CertSpec("foreign", "kubernetes-admin", ("system:masters",),
                                         client=True))
    issue(ca, "expired", pki.CertSpec("expired", "kubernetes-admin", ("system:masters",),
                                      client=True),
          not_before=datetime.datetime(2020, 1, 1, tzinfo=UTC),
          not_after=datetime.datetime(2021, 1, 1, tzinfo=UTC))
    return Pki(d, ca)


class WhoAmI:
    """Pods.Get answering with who called: the pod's name is
    ``CN|O,O|token`` (empty parts when absent)."""

    def __init__(self):
        self.calls = 0

    async def get(self, request, context):
        self.calls += 1
        cert = peer.peer_cert(context)
        who = f"{cert.common_name}|{','.join(cert.organizations)}" if cert else "|"
        pod = core.Pod()
        pod.metadata.name = f"{who}|{peer.bearer_token(context) or ''}"
        return pod

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("kybernetes.core.v1.Pods", {
            "Get": grpc.unary_unary_rpc_method_handler(
                self.get, request_deserializer=meta_pb2.GetRequest.FromString,
                response_serializer=core.Pod.SerializeToString)})


@pytest.fixture
async def serve():
    """``await serve(credentials or None)`` -> (address, WhoAmI)."""
    servers = []

    async def start(creds: grpc.ServerCredentials | None):
        service = WhoAmI()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((service.handler(),))
        port = server.add_secure_port("127.0.0.1:0", creds) if creds else \
            server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", service

    yield start
    for server in servers:
        await server.stop(0)


@pytest.fixture
async def mtls(certs, serve):
    creds = tlsconfig.server_credentials(certs.path("server", "crt"), certs.path("server", "key"),
                                         certs.path("ca", "crt"))
    return await serve(creds)


async def whoami(client: Client) -> str:
    async with client:
        return (await client.resource("pods").get("x", "default")).metadata.name


def quick(**kw):
    return dict(timeout=5.0, retry_for=0.5, **kw)


async def test_tls_good_certificate_is_accepted_and_its_identity_read(certs, mtls):
    address, _ = mtls
    assert await whoami(Client(config=certs.client([address], "admin"), **quick())) == \
        "kubernetes-admin|system:masters|"


@pytest.mark.parametrize("client_cert", ["plaintext", "no certificate", "foreign", "expired"])
async def test_tls_server_refuses_clients_without_a_good_certificate(certs, mtls, client_cert):
    address, service = mtls
    if client_cert == "plaintext":
        client = Client([address], **quick())
    else:
        name = {"no certificate": None, "foreign": "foreign", "expired": "expired"}[client_cert]
        client = Client(config=certs.client([address], name), **quick())
    with pytest.raises(errors.Unavailable):
        await whoami(client)
    assert service.calls == 0, "the handshake fails before any handler runs"


async def test_tls_client_refuses_a_server_not_named_in_its_certificate(certs, serve):
    address, _ = await serve(tlsconfig.server_credentials(
        certs.path("named-server", "crt"), certs.path("named-server", "key"),
        certs.path("ca", "crt")))
    loop = asyncio.get_running_loop()
    started = loop.time()
    slow = dict(timeout=5.0, retry_for=60.0)  # refused at once: nothing to retry
    with pytest.raises(errors.Unavailable, match="not valid for the name dialled"):
        await whoami(Client(config=certs.client([address], "admin"), **slow))
    assert loop.time() - started < 30
    named = certs.client([address], "admin", server_name=SERVER_NAME)
    assert (await whoami(Client(config=named, **quick()))).startswith("kubernetes-admin|")


async def test_tls_client_refuses_a_server_signed_by_another_ca(certs, serve):
    address, _ = await serve(tlsconfig.server_credentials(
        certs.path("foreign-server", "crt"), certs.path("foreign-server", "key"),
        certs.path("ca", "crt")))
    with pytest.raises(errors.Unavailable, match="not signed by the configured CA"):
        await whoami(Client(config=certs.client([address], "admin"), **quick()))


async def test_tls_client_refuses_a_plaintext_server(certs, serve):
    address, _ = await serve(None)
    with pytest.raises(errors.Unavailable, match="does not speak TLS"):
        await whoami(Client(config=certs.client([address], "admin"), **quick()))


async def test_tls_token_port_takes_a_bearer_token_without_a_certificate(certs, serve):
    address, _ = await serve(tlsconfig.server_credentials_without_client_auth(
        certs.path("server", "crt"), certs.path("server", "key")))
    assert await whoami(Client(config=certs.client([address], token="s3cret"), **quick())) == \
        "||s3cret"


# -- the metrics server ----------------------------------------------------------------------


@pytest.fixture
async def metrics_server(certs):
    serving = tlsconfig.ServingCert.load(certs.path("server", "crt"), certs.path("server", "key"),
                                         certs.path("ca", "crt"))
    http = HttpServer("127.0.0.1", 0, ssl_context=serving.ssl_context(),
                      token_user=lambda token: ("scraper", ()) if token == "scrape" else None)
    await http.start()
    yield http
    await http.stop()


async def test_tls_metrics_need_a_certificate_or_token_health_stays_open(certs, metrics_server):
    port = metrics_server.port
    anonymous = tlsconfig.http_client_context(certs.path("ca", "crt"))
    with_cert = tlsconfig.http_client_context(certs.path("ca", "crt"), certs.path("admin", "crt"),
                                              certs.path("admin", "key"))
    assert metrics_server.scheme == "https"
    for path in ("/healthz", "/livez", "/readyz"):
        assert await https_get(port, path, anonymous) == (200, b"ok\n")
    status, body = await https_get(port, "/metrics", anonymous)
    assert status == 401 and body.count(b"\n") == 1 and b"client certificate" in body
    status, body = await https_get(port, "/metrics", with_cert)
    assert status == 200 and b"# HELP" in body
    status, _ = await https_get(port, "/metrics", anonymous, {"Authorization": "Bearer scrape"})
    assert status == 200
    status, _ = await https_get(port, "/metrics", anonymous, {"Authorization": "Bearer nope"})
    assert status == 401


async def test_tls_metrics_server_refuses_foreign_certificates_and_plaintext(certs,
                                                                             metrics_server):
    foreign = tlsconfig.http_client_context(certs.path("ca", "crt"),
                                            certs.path("foreign", "crt"),
                                            certs.path("foreign", "key"))
    assert await https_get(metrics_server.port, "/metrics", foreign) == (0, b"")
    assert await https_get(metrics_server.port, "/healthz", None) == (0, b"")


async def test_tls_plaintext_metrics_server_stays_open():
    http = HttpServer("127.0.0.1", 0)
    await http.start()
    try:
        assert http.scheme == "http"
        status, body = await https_get(http.port, "/metrics", None)
        assert status == 200 and b"# HELP" in body
    finally:
        await http.stop()
