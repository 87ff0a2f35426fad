"""A secured API server for the security tests: its own etcd, mutual TLS
with a throwaway CA, a token file, RBAC and Node authorization, an audit
log, and low per-user limits so that the limits can be seen working.

``secure`` gives the running server and ``connect(user, groups)`` clients
for any identity."""

from __future__ import annotations

import dataclasses
import pathlib
import uuid

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client
from tests.support.pki import TestPki
from tests.support.processes import ApiServerProcess, EtcdProcess

ADMIN = ("kubernetes-admin", ("system:masters",))
RATE_QPS, RATE_BURST, MAX_WATCHES = 50, 100, 8
TOKENS = {"tok-admin": ("script-admin", ("system:masters",)),
          "tok-viewer": ("script-viewer", ("viewers",))}


@dataclasses.dataclass
class Secure:
    pki: TestPki
    api: ApiServerProcess
    audit_log: pathlib.Path

    @property
    def address(self) -> str:
        return self.api.address

    @property
    def token_address(self) -> str:
        return f"127.0.0.1:{self.api.token_port}"

    def client(self, user: str | None, groups: tuple[str, ...] = (), **kw) -> Client:
        kw.setdefault("timeout", 10.0)
        kw.setdefault("retry_for", 2.0)
        return Client(config=self.pki.config(self.address, user, groups), **kw)

    def token_client(self, token: str | None, **kw) -> Client:
        kw.setdefault("timeout", 10.0)
        kw.setdefault("retry_for", 2.0)
        return Client(config=self.pki.config(self.token_address, token=token), **kw)


@pytest.fixture(scope="session")
def secure(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure")
    pki = TestPki(root / "pki")
    for token, (name, groups) in TOKENS.items():
        pki.add_token(token, name, groups)
    etcd_dir = root / "etcd"
    etcd_dir.mkdir()
    etcd = EtcdProcess(etcd_dir)
    etcd.start()
    api_dir = root / "apiserver"
    api_dir.mkdir()
    audit_log = api_dir / "audit.log"
    api = ApiServerProcess(api_dir, etcd.endpoint, extra_args=[
        *pki.apiserver_args(), "--audit-log-path", str(audit_log),
        "--max-requests-per-second-per-user", str(RATE_QPS),
        "--max-requests-burst-per-user", str(RATE_BURST),
        "--max-watches-per-user", str(MAX_WATCHES)])
    api.start()
    yield Secure(pki, api, audit_log)
    api.stop()
    etcd.stop()


@pytest.fixture
async def admin(secure):
    async with secure.client(*ADMIN) as c:
        yield c


@pytest.fixture
async def namespace(admin):
    name = f"s-{uuid.uuid4().hex[:10]}"
    ns = core.Namespace()
    ns.metadata.name = name
    await admin.resource("namespaces").create(ns)
    return name
