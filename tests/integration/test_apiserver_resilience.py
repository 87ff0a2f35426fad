"""The API server under failures: etcd restarted, the API server restarted,
health and metrics served, two replicas sharing one etcd."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from services.machinery import Client, errors
from tests.support import objects
from tests.support.processes import ApiServerProcess, EtcdCluster, EtcdProcess, wait_until


@pytest.fixture
def private_cluster(tmp_path):
    """An etcd and API server of this test's own, free to be killed."""
    etcd = EtcdProcess(tmp_path)
    etcd.start()
    api = ApiServerProcess(tmp_path, etcd.endpoint)
    api.start()
    yield etcd, api
    api.stop()
    etcd.stop()


async def test_etcd_restart_under_running_apiserver(private_cluster):
    etcd, api = private_cluster
    async with Client([api.address], retry_for=30) as client:
        res = client.resource("pods")
        await res.create(objects.pod("before", "default"))
        rv = (await res.list("default")).metadata.resource_version
        stream = res.watch("default", resource_version=rv)
        await asyncio.to_thread(etcd.stop)
        with pytest.raises(errors.ApiError):
            await client.resource("pods").get("before", "default")
        await asyncio.to_thread(etcd.start)
        await res.create(objects.pod("after", "default"))

        async def next_added():
            async for ev in stream:
                if ev.type == "ADDED":
                    return ev.object.metadata.name
        assert await asyncio.wait_for(next_added(), 30) == "after"
        names = sorted(p.metadata.name for p in (await res.list("default")).items)
        assert names == ["after", "before"]


async def test_apiserver_restart_is_transparent_to_clients(private_cluster):
    _, api = private_cluster
    async with Client([api.address], retry_for=30) as client:
        await client.resource("svc").create(objects.service("s", "default"))
        await asyncio.to_thread(api.restart)
        got = await client.resource("svc").get("s", "default")
        assert got.metadata.name == "s"


async def test_two_replicas_share_one_etcd(private_cluster, tmp_path):
    etcd, api = private_cluster
    (tmp_path / "second").mkdir()
    second = ApiServerProcess(tmp_path / "second", etcd.endpoint)
    await asyncio.to_thread(second.start)
    try:
        async with Client([api.address]) as a, Client([second.address]) as b:
            made = await asyncio.gather(*(
                (a if i % 2 else b).resource("svc").create(
                    objects.service(f"r{i}", "default", type_="NodePort"))
                for i in range(30)))
            assert len({s.spec.cluster_ip for s in made}) == 30
            assert len({s.spec.ports[0].node_port for s in made}) == 30
            lease = await a.resource("leases").create(objects.lease("shared", "default"))
            via_b = await b.resource("leases").get("shared", "default")
            via_b.spec.holder_identity = "b"
            await b.resource("leases").update(via_b)
            lease.spec.holder_identity = "a"
            with pytest.raises(errors.Conflict):
                await a.resource("leases").update(lease)
            # A watch on one replica sees writes made through the other.
            rv = (await b.resource("leases").list("default")).metadata.resource_version
            stream = b.resource("leases").watch("default", resource_version=rv)
            await a.resource("leases").create(objects.lease("cross", "default"))

            async def first_added():
                async for ev in stream:
                    if ev.type == "ADDED":
                        return ev.object.metadata.name
            assert await asyncio.wait_for(first_added(), 10) == "cross"
    finally:
        await asyncio.to_thread(second.stop)


async def test_two_clients_fail_over_between_replicas(private_cluster, tmp_path):
    etcd, api = private_cluster
    (tmp_path / "third").mkdir()
    other = ApiServerProcess(tmp_path / "third", etcd.endpoint)
    await asyncio.to_thread(other.start)
    try:
        async with Client([api.address, other.address], retry_for=20) as client:
            await client.resource("ns").get("default")
            await asyncio.to_thread(api.stop)
            got = await client.resource("ns").get("default")
            assert got.metadata.name == "default"
    finally:
        await asyncio.to_thread(other.stop)
        await asyncio.to_thread(api.start)


async def test_health_and_metrics(apiserver, client, namespace):
    await client.resource("pods").create(objects.pod("m", namespace))
    with pytest.raises(errors.NotFound):
        await client.resource("pods").get("missing", namespace)
    text = await asyncio.to_thread(apiserver.metrics)
    for name in ("apiserver_request_total", "apiserver_request_duration_seconds",
                 "apiserver_registered_watchers", "apiserver_watch_events_total",
                 "apiserver_storage_objects", "etcd_request_duration_seconds"):
        assert name in text, name
    assert 'apiserver_request_total{code="NOT_FOUND",resource="pods",verb="get"}' in text
    health = apiserver.metrics_url.replace("/metrics", "/healthz")
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(health, timeout=5).read())
    assert body.strip() == b"ok"


async def test_grpc_health_and_reflection(apiserver):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    async with grpc.aio.insecure_channel(apiserver.address) as channel:
        resp = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="kybernetes.core.v1.Pods"), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(requests(), timeout=5):
            names = {s.name for s in answer.list_services_response.service}
            assert {"kybernetes.core.v1.Pods", "kybernetes.apps.v1.Deployments"} <= names
            break


async def wait_ready(address: str) -> None:
    async with Client([address], retry_for=30) as client:
        await wait_until(lambda: client.resource("ns").get("default"), timeout=30)


async def test_apiserver_fails_over_between_etcd_members(tmp_path):
    """With several --etcd-servers, losing the member in use is survived."""
    cluster = EtcdCluster(tmp_path, members=3)
    await asyncio.to_thread(cluster.start)
    api = ApiServerProcess(tmp_path, ",".join(cluster.endpoints))
    try:
        await asyncio.to_thread(api.start)
        async with Client([api.address], retry_for=30) as client:
            res = client.resource("pods")
            await res.create(objects.pod("one", "default"))
            rv = (await res.list("default")).metadata.resource_version
            stream = res.watch("default", resource_version=rv)
            await asyncio.to_thread(cluster.stop_member, 0)  # the first endpoint, in use
            await res.create(objects.pod("two", "default"))

            async def next_added():
                async for ev in stream:
                    if ev.type == "ADDED":
                        return ev.object.metadata.name
            assert await asyncio.wait_for(next_added(), 30) == "two"
            names = sorted(p.metadata.name for p in (await res.list("default")).items)
            assert names == ["one", "two"]
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(cluster.stop)
