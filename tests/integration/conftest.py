"""Fixtures for integration tests: one real etcd and one real API server per
session (reused by every test for speed), a fresh client and namespace per
test for isolation."""

from __future__ import annotations

import uuid

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client
from tests.support.processes import ApiServerProcess, EtcdProcess

WATCH_CACHE_SIZE = 200


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    proc = EtcdProcess(tmp_path_factory.mktemp("etcd"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    proc = ApiServerProcess(tmp_path_factory.mktemp("apiserver"), etcd.endpoint,
                            watch_cache_size=WATCH_CACHE_SIZE)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def client(apiserver):
    async with Client([apiserver.address], timeout=10.0, retry_for=30.0) as c:
        yield c


@pytest.fixture
async def namespace(client):
    name = f"t-{uuid.uuid4().hex[:10]}"
    ns = core.Namespace()
    ns.metadata.name = name
    await client.resource("namespaces").create(ns)
    return name
