"""The metrics server's guard: health is open; /metrics needs an identity
(a verified client certificate's CN/O, or a token the server knows) and the
``authorize`` hook's yes: 401 without an identity, 403 naming the user when
the hook says no or cannot decide, 200 otherwise. Without a hook any
verified certificate will do (the old behaviour), and plaintext is open.

A real HTTPS server on 127.0.0.1 with a throwaway CA; the hook is a small
RBAC stand-in recording what it was asked."""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from services.machinery import pki, tlsconfig
from services.machinery.httpserver import CannotAuthorize, HttpServer
from tests.support.https import https_get

IDENTITIES = {
    "prometheus": ("system:prometheus", ("system:monitoring",)),
    "admin": ("kubernetes-admin", ("system:masters",)),
    "node": ("system:node:n1", ("system:nodes",)),
}


@dataclasses.dataclass
class Certs:
    dir: pathlib.Path

    def path(self, name: str, ext: str) -> str:
        return str(self.dir / f"{name}.{ext}")

    def context(self, name: str | None = None) -> ssl.SSLContext:
        if name is None:
            return tlsconfig.http_client_context(self.path("ca", "crt"))
        return tlsconfig.http_client_context(self.path("ca", "crt"), self.path(name, "crt"),
                                             self.path(name, "key"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca("test-ca")
    pki.save(ca, d, "ca")
    pki.save(pki.issue(ca, pki.CertSpec("server", "server", ip_addresses=("127.0.0.1",),
                                        server=True)), d, "server")
    for name, (cn, orgs) in IDENTITIES.items():
        pki.save(pki.issue(ca, pki.CertSpec(name, cn, orgs, client=True)), d, name)
    pki.save(_nameless(ca), d, "nameless")
    return Certs(d)


def _nameless(ca: pki.CertKey) -> pki.CertKey:
    """A client certificate with an O but no CN (pki refuses to issue one)."""
    good = pki.issue(ca, pki.CertSpec("x", "x", ("system:monitoring",), client=True))
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                           "system:monitoring")]))
               .issuer_name(good.cert.issuer).public_key(good.key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(good.cert.not_valid_before_utc)
               .not_valid_after(good.cert.not_valid_after_utc))
    for ext in good.cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return pki.CertKey(builder.sign(ca.key, hashes.SHA256()), good.key)


class Rbac:
    """authorize(user, groups, path): system:monitoring and system:masters
    may get /metrics (what the bootstrap roles grant). ``broken`` makes it
    unable to decide; ``asynchronous`` answers through a coroutine."""

    def __init__(self, *, broken: bool = False, asynchronous: bool = False):
        self.asked: list[tuple[str, tuple[str, ...], str]] = []
        self.broken, self.asynchronous = broken, asynchronous

    def decide(self, user: str, groups: tuple[str, ...], path: str) -> bool:
        self.asked.append((user, groups, path))
        if self.broken:
            raise CannotAuthorize("the API server did not answer (UNAVAILABLE: down)")
        return path == "/metrics" and bool({"system:monitoring", "system:masters"} & set(groups))

    def __call__(self, user: str, groups: tuple[str, ...], path: str):
        if not self.asynchronous:
            return self.decide(user, groups, path)

        async def later() -> bool:
            await asyncio.sleep(0)
            return self.decide(user, groups, path)
        return later()


TOKENS = {"tok-admin": ("script-admin", ("system:masters",)),
          "tok-viewer": ("script-viewer", ("viewers",))}


@pytest.fixture
async def serve(certs):
    servers: list[HttpServer] = []

    async def start(**kw) -> HttpServer:
        serving = tlsconfig.ServingCert.load(certs.path("server", "crt"),
                                             certs.path("server", "key"), certs.path("ca", "crt"))
        kw.setdefault("ssl_context", serving.ssl_context())
        http = HttpServer("127.0.0.1", 0, **kw)
        await http.start()
        servers.append(http)
        return http

    yield start
    for http in servers:
        await http.stop()


async def test_httpserver_metrics_are_for_whom_the_hook_allows(certs, serve):
    rbac = Rbac()
    http = await serve(authorize=rbac)
    for name in ("prometheus", "admin"):
        status, body = await https_get(http.port, "/metrics", certs.context(name))
        assert status == 200 and b"# HELP" in body, name
    status, body = await https_get(http.port, "/metrics", certs.context("node"))
    assert (status, body) == (403, b'Forbidden: User "system:node:n1" cannot get path '
                                   b'"/metrics"\n')
    assert rbac.asked == [("system:prometheus", ("system:monitoring",), "/metrics"),
                          ("kubernetes-admin", ("system:masters",), "/metrics"),
                          ("system:node:n1", ("system:nodes",), "/metrics")]


async def test_httpserver_no_identity_is_401_and_health_stays_open(certs, serve):
    rbac = Rbac()
    http = await serve(authorize=rbac)
    anonymous = certs.context()
    for path in ("/healthz", "/livez", "/readyz"):
        assert await https_get(http.port, path, anonymous) == (200, b"ok\n")
        assert await https_get(http.port, path, certs.context("node")) == (200, b"ok\n")
    status, body = await https_get(http.port, "/metrics", anonymous)
    assert status == 401 and body.count(b"\n") == 1
    assert b"client certificate" in body and b"takes no bearer tokens" in body
    status, body = await https_get(http.port, "/metrics", anonymous,
                                   {"Authorization": "Bearer tok-admin"})
    assert status == 401 and b"takes no bearer tokens" in body
    status, body = await https_get(http.port, "/metrics", certs.context("nameless"))
    assert status == 401 and b"no Common Name" in body
    assert rbac.asked == []


async def test_httpserver_other_paths_are_authorized_before_they_are_found(certs, serve):
    http = await serve(authorize=Rbac())
    status, body = await https_get(http.port, "/debug/pprof", certs.context("prometheus"))
    assert status == 403 and b'cannot get path "/debug/pprof"' in body
    assert (await https_get(http.port, "/metrics?x=1", certs.context("prometheus")))[0] == 200


async def test_httpserver_tokens_name_a_user_the_hook_decides_on(certs, serve):
    rbac = Rbac(asynchronous=True)
    http = await serve(authorize=rbac, token_user=TOKENS.get)
    anonymous = certs.context()
    status, _ = await https_get(http.port, "/metrics", anonymous,
                                {"Authorization": "Bearer tok-admin"})
    assert status == 200
    status, body = await https_get(http.port, "/metrics", anonymous,
                                   {"Authorization": "Bearer tok-viewer"})
    assert (status, body) == (403, b'Forbidden: User "script-viewer" cannot get path '
                                   b'"/metrics"\n')
    status, body = await https_get(http.port, "/metrics", anonymous,
                                   {"Authorization": "Bearer nope"})
    assert status == 401 and b"or a bearer token" in body
    # A certificate wins over a token, as in the API server.
    status, _ = await https_get(http.port, "/metrics", certs.context("node"),
                                {"Authorization": "Bearer tok-admin"})
    assert status == 403


async def test_httpserver_a_hook_that_cannot_decide_refuses(certs, serve):
    http = await serve(authorize=Rbac(broken=True))
    status, body = await https_get(http.port, "/metrics", certs.context("prometheus"))
    assert status == 403 and body.count(b"\n") == 1
    assert body.startswith(b'Forbidden: cannot check whether User "system:prometheus" may get')
    assert b"did not answer" in body

    def crashes(user, groups, path):
        raise RuntimeError("bug")
    http = await serve(authorize=crashes)
    status, body = await https_get(http.port, "/metrics", certs.context("admin"))
    assert status == 403 and b"cannot check" in body


async def test_httpserver_without_a_hook_any_verified_certificate_will_do(certs, serve):
    http = await serve(token_user=lambda token: ("scraper", ()) if token == "scrape" else None)
    for name in ("prometheus", "node", "nameless"):
        assert (await https_get(http.port, "/metrics", certs.context(name)))[0] == 200, name
    assert (await https_get(http.port, "/metrics", certs.context(),
                            {"Authorization": "Bearer scrape"}))[0] == 200
    status, body = await https_get(http.port, "/metrics", certs.context())
    assert status == 401 and b"or a bearer token" in body


async def test_httpserver_plaintext_is_open_whatever_the_hook():
    rbac = Rbac()
    http = HttpServer("127.0.0.1", 0, authorize=rbac)
    await http.start()
    try:
        status, body = await https_get(http.port, "/metrics", None)
        assert status == 200 and b"# HELP" in body and rbac.asked == []
    finally:
        await http.stop()
