"""ResourceQuota, objects per namespace and metadata size limits against a
real etcd and a real API server: a quota is never exceeded however many
creates race, usage follows creates, terminations and deletions, and a
quota made after its pods counts them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client, errors
from tests.support import objects
from tests.support.processes import ApiServerProcess, wait_until


def _pod(name: str, namespace: str, cpu: str = "", memory: str = "", node: str = "") -> core.Pod:
    pod = objects.pod(name, namespace, node=node)
    if cpu:
        pod.spec.containers[0].resources.requests["cpu"] = cpu
    if memory:
        pod.spec.containers[0].resources.requests["memory"] = memory
    return pod


async def _used(client, namespace: str, name: str) -> dict[str, str]:
    return dict((await client.resource("resourcequotas").get(name, namespace)).status.used)


async def test_fifty_concurrent_creates_never_exceed_a_pods_quota(client, namespace):
    await client.resource("resourcequotas").create(
        objects.resource_quota("q1", namespace, {"pods": "10"}))
    pods = client.resource("pods")
    results = await asyncio.gather(
        *(pods.create(_pod(f"p{i}", namespace)) for i in range(50)), return_exceptions=True)
    created = [r for r in results if isinstance(r, core.Pod)]
    refused = [r for r in results if not isinstance(r, core.Pod)]
    assert len(created) == 10
    assert all(isinstance(r, errors.Forbidden) for r in refused), refused[:3]
    assert "exceeded quota: q1, requested: pods=1, used: pods=10, limited: pods=10" in str(
        refused[0])
    assert str(refused[0]).startswith('pods "p')
    assert await _used(client, namespace, "q1") == {"pods": "10"}
    assert len((await pods.list(namespace)).items) == 10


@pytest.fixture(scope="module")
def second_apiserver(etcd, tmp_path_factory):
    """Another replica on the same etcd: its writes race ours only through
    etcd's compares (no shared lock)."""
    proc = ApiServerProcess(tmp_path_factory.mktemp("apiserver-replica"), etcd.endpoint)
    proc.start()
    yield proc
    proc.stop()


async def test_creates_racing_through_two_replicas_never_exceed_a_quota(
        client, namespace, second_apiserver):
    await client.resource("resourcequotas").create(
        objects.resource_quota("q", namespace, {"pods": "10", "requests.cpu": "2"}))
    async with Client([second_apiserver.address], timeout=10.0, retry_for=30.0) as other:
        # The other replica must know the namespace before it accepts pods in it.
        await wait_until(lambda: other.resource("namespaces").get(namespace), timeout=10)
        results = await asyncio.gather(
            *((client if i % 2 else other).resource("pods").create(
                _pod(f"p{i}", namespace, cpu="100m")) for i in range(40)),
            return_exceptions=True)
    created = [r for r in results if isinstance(r, core.Pod)]
    assert len(created) == 10, [r for r in results if not isinstance(r, core.Pod)][:3]
    assert all(isinstance(r, errors.Forbidden) for r in results if r not in created)
    assert await _used(client, namespace, "q") == {"pods": "10", "requests.cpu": "1"}


async def test_cpu_and_memory_requests_are_charged_and_required(client, namespace):
    quotas = client.resource("resourcequotas")
    quota = await quotas.create(objects.resource_quota(
        "compute", namespace, {"requests.cpu": "1", "memory": "1Gi", "pods": "10"}))
    assert dict(quota.status.hard) == {"requests.cpu": "1", "memory": "1Gi", "pods": "10"}
    assert dict(quota.status.used) == {"requests.cpu": "0", "memory": "0", "pods": "0"}
    pods = client.resource("pods")
    with pytest.raises(errors.Forbidden, match="failed quota: compute: must specify "
                                               "memory,requests.cpu"):
        await pods.create(_pod("bare", namespace))
    with pytest.raises(errors.Forbidden, match="must specify memory$"):
        await pods.create(_pod("cpuonly", namespace, cpu="100m"))
    await pods.create(_pod("a", namespace, cpu="600m", memory="256Mi"))
    assert await _used(client, namespace, "compute") == {
        "requests.cpu": "600m", "memory": "256Mi", "pods": "1"}
    with pytest.raises(errors.Forbidden) as err:
        await pods.create(_pod("b", namespace, cpu="600m", memory="256Mi"))
    assert str(err.value) == (
        'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: '
        "requests.cpu=600m, limited: requests.cpu=1")
    await pods.create(_pod("c", namespace, cpu="400m", memory="768Mi"))
    assert await _used(client, namespace, "compute") == {
        "requests.cpu": "1", "memory": "1Gi", "pods": "2"}


async def test_removal_and_termination_free_usage(client, namespace):
    await client.resource("resourcequotas").create(
        objects.resource_quota("q", namespace, {"pods": "2"}))
    pods = client.resource("pods")
    await pods.create(_pod("unscheduled", namespace))
    await pods.create(_pod("bound", namespace, node="node-1"))
    with pytest.raises(errors.Forbidden):
        await pods.create(_pod("third", namespace))
    # A pod on no node is removed at once: its usage goes with it.
    await pods.delete("unscheduled", namespace)
    assert await _used(client, namespace, "q") == {"pods": "1"}
    await pods.create(_pod("third", namespace))
    # A pod on a node is only marked: it counts until its kubelet confirms.
    await pods.delete("bound", namespace)
    assert await _used(client, namespace, "q") == {"pods": "2"}
    await pods.delete("bound", namespace, grace_period_seconds=0)
    assert await _used(client, namespace, "q") == {"pods": "1"}
    # A pod that has finished counts no more (as in Kubernetes).
    third = await pods.get("third", namespace)
    third.status.phase = "Succeeded"
    await pods.update_status(third)
    assert await _used(client, namespace, "q") == {"pods": "0"}
    await pods.delete("third", namespace)
    assert await _used(client, namespace, "q") == {"pods": "0"}


async def test_quota_created_after_its_pods_counts_them(client, namespace):
    pods = client.resource("pods")
    for i in range(3):
        await pods.create(_pod(f"p{i}", namespace, cpu="250m"))
    failed = await pods.get("p2", namespace)
    failed.status.phase = "Failed"
    await pods.update_status(failed)
    quotas = client.resource("resourcequotas")
    quota = await quotas.create(objects.resource_quota(
        "late", namespace, {"pods": "3", "cpu": "1"}))
    assert dict(quota.status.used) == {"pods": "2", "cpu": "500m"}
    await pods.create(_pod("p3", namespace, cpu="250m"))
    with pytest.raises(errors.Forbidden, match="limited: pods=3"):
        await pods.create(_pod("p4", namespace, cpu="250m"))
    # Raising the limit takes effect at once, and usage is recounted.
    quota = await quotas.get("late", namespace)
    quota.spec.hard["pods"] = "4"
    quota = await quotas.update(quota)
    assert dict(quota.status.hard) == {"pods": "4", "cpu": "1"}
    assert dict(quota.status.used) == {"pods": "3", "cpu": "750m"}
    await pods.create(_pod("p4", namespace, cpu="250m"))
    # A client cannot write a quota's usage: the server recounts it.
    quota = await quotas.get("late", namespace)
    quota.status.used["pods"] = "0"
    quota = await quotas.update_status(quota)
    assert dict(quota.status.used) == {"pods": "4", "cpu": "1"}


async def test_every_quota_of_the_namespace_is_charged(client, namespace):
    quotas = client.resource("resourcequotas")
    await quotas.create(objects.resource_quota("wide", namespace, {"pods": "100"}))
    await quotas.create(objects.resource_quota("narrow", namespace, {"pods": "1"}))
    pods = client.resource("pods")
    await pods.create(_pod("a", namespace))
    with pytest.raises(errors.Forbidden, match="exceeded quota: narrow"):
        await pods.create(_pod("b", namespace))
    assert await _used(client, namespace, "wide") == {"pods": "1"}
    await quotas.delete("narrow", namespace)
    await pods.create(_pod("b", namespace))
    assert await _used(client, namespace, "wide") == {"pods": "2"}


async def test_annotations_over_256_kib_and_long_label_values_are_refused(client, namespace):
    pods = client.resource("pods")
    at_limit = _pod("at-limit", namespace)
    at_limit.metadata.annotations["a"] = "x" * (256 * 1024 - 1)
    await pods.create(at_limit)
    over = _pod("over", namespace)
    over.metadata.annotations["a"] = "x" * (256 * 1024)
    with pytest.raises(errors.Invalid,
                       match="metadata.annotations: Too long: must have at most 262144 bytes"):
        await pods.create(over)
    long_label = _pod("label", namespace)
    long_label.metadata.labels["app"] = "v" * 64
    with pytest.raises(errors.Invalid, match="metadata.labels.*must be no more than 63"):
        await pods.create(long_label)


# --- objects per namespace: an API server started with the limit --------------------------

LIMIT = 6


@pytest.fixture(scope="module")
def limited_apiserver(etcd, tmp_path_factory):
    proc = ApiServerProcess(tmp_path_factory.mktemp("apiserver-limited"), etcd.endpoint,
                            extra_args=["--max-objects-per-namespace", str(LIMIT)])
    proc.start()
    yield proc
    proc.stop()


async def test_objects_per_namespace_limit(limited_apiserver):
    async with Client([limited_apiserver.address], timeout=10.0, retry_for=30.0) as client:
        namespace = f"t-{uuid.uuid4().hex[:10]}"
        await client.resource("namespaces").create(objects.namespace(namespace))
        kinds = ["Pod", "Service", "Endpoints", "Event", "Lease", "ResourceQuota"]
        for i, kind in enumerate(kinds[:LIMIT]):
            await client.resource(kind).create(objects.sample(kind, f"o{i}", namespace))

        async def refused() -> bool:
            try:
                await client.resource("pods").create(_pod("extra", namespace))
            except errors.TooLarge as err:
                assert f'namespace "{namespace}" has reached its limit of {LIMIT} objects' in str(
                    err)
                return True
            raise AssertionError("created past the limit")
        assert await refused()
        # Other namespaces are not affected; deleting makes room again.
        await client.resource("pods").create(_pod("elsewhere", "default"))
        await client.resource("pods").delete("elsewhere", "default")
        await client.resource("events").delete("o3", namespace)

        async def admitted() -> bool:
            try:
                await client.resource("pods").create(_pod("extra", namespace))
            except errors.TooLarge:
                return False  # the cache has not seen the delete yet
            return True
        await wait_until(admitted, timeout=10, message="room after a delete")
