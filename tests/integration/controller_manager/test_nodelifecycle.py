"""Node lifecycle against a real API server, with shortened periods: a node
whose kubelet stops renewing goes Unknown, is tainted unreachable, and its
pods are evicted per their tolerations (and force-deleted, since no kubelet
will confirm); when it comes back the taints go and the pods that stayed
are left alone. The test plays the kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid

import pytest
from google.protobuf import timestamp_pb2
from prometheus_client import REGISTRY

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.nodelifecycle import (
    NODE_LEASE_NAMESPACE, UNREACHABLE, NodeLifecycleController,
)
from services.machinery import AlreadyExists, Conflict, NotFound
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)

FAST = dict(node_monitor_grace_period=2.0, node_monitor_period=0.3,
            node_startup_grace_period=2.0)


def now_stamp() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.datetime.now(datetime.timezone.utc))
    return stamp


class FakeKubelet:
    """Renews the node's Lease and posts Ready=True with a fresh heartbeat."""

    def __init__(self, client, node: str, every: float = 0.3):
        self.client, self.node, self.every = client, node, every
        self.task: asyncio.Task | None = None

    async def beat(self) -> None:
        leases = self.client.resource("leases")
        try:
            lease = await leases.get(self.node, NODE_LEASE_NAMESPACE)
            lease.spec.renew_time.CopyFrom(now_stamp())
            await leases.update(lease)
        except NotFound:
            lease = coordination.Lease()
            lease.metadata.name, lease.metadata.namespace = self.node, NODE_LEASE_NAMESPACE
            lease.spec.holder_identity = self.node
            lease.spec.lease_duration_seconds = 40
            lease.spec.renew_time.CopyFrom(now_stamp())
            with contextlib.suppress(AlreadyExists):
                await leases.create(lease)
        except Conflict:
            pass
        for _ in range(5):
            node = await self.client.resource("nodes").get(self.node)
            del node.status.conditions[:]
            cond = node.status.conditions.add(type="Ready", status="True", reason="KubeletReady",
                                              message="kubelet is posting ready status")
            cond.last_heartbeat_time.CopyFrom(now_stamp())
            cond.last_transition_time.CopyFrom(now_stamp())
            try:
                await self.client.resource("nodes").update_status(node)
                return
            except Conflict:
                continue

    async def _loop(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


@pytest.fixture
async def node_name(client):
    name = f"lc-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(NotFound):
        await client.resource("nodes").delete(name)


def tolerating(pod: core.Pod, seconds: int | None) -> core.Pod:
    """Tolerate unreachable and not-ready NoExecute for ``seconds`` (None: forever)."""
    for key in (UNREACHABLE, "node.kubernetes.io/not-ready"):
        tol = pod.spec.tolerations.add(key=key, operator="Exists", effect="NoExecute")
        if seconds is not None:
            tol.toleration_seconds = seconds
    return pod


async def pod_state(client, namespace: str, name: str) -> str:
    try:
        pod = await client.resource("pods").get(name, namespace)
    except NotFound:
        return "gone"
    return "terminating" if pod.metadata.HasField("deletion_timestamp") else "live"


def evictions() -> float:
    return REGISTRY.get_sample_value("node_collector_evictions_total", {"zone": ""}) or 0.0


def managed_taints(node: core.Node) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in node.spec.taints if t.key.startswith("node.kubernetes.io/")}


async def test_lifecycle_dead_node_tainted_pods_evicted_then_recovers(
        client, namespace, node_name, start_controllers):
    nodes = client.resource("nodes")
    await nodes.create(objects.node(node_name))
    kubelet = FakeKubelet(client, node_name)
    kubelet.start()
    try:
        pods = client.resource("pods")
        await pods.create(tolerating(objects.pod("now", namespace, node=node_name), 0))
        await pods.create(tolerating(objects.pod("soon", namespace, node=node_name), 2))
        await pods.create(tolerating(objects.pod("stays", namespace, node=node_name), None))
        stays = await pods.get("stays", namespace)
        stays.status.phase = "Running"
        stays.status.conditions.add(type="Ready", status="True")
        await pods.update_status(stays)
        before = evictions()

        await start_controllers(NodeLifecycleController, **FAST)

        async def healthy():
            node = await nodes.get(node_name)
            ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
            return ready is not None and ready.status == "True" and not managed_taints(node)
        await wait_until(healthy, timeout=10, message="a healthy node")
        for name in ("now", "soon", "stays"):
            assert await pod_state(client, namespace, name) == "live"

        await kubelet.stop()  # the kubelet dies

        async def unknown_and_tainted():
            node = await nodes.get(node_name)
            ready = next(c for c in node.status.conditions if c.type == "Ready")
            return (ready.status == "Unknown" and ready.reason == "NodeStatusUnknown"
                    and managed_taints(node) == {(UNREACHABLE, "NoExecute"),
                                                 (UNREACHABLE, "NoSchedule")}) and node
        node = await wait_until(unknown_and_tainted, timeout=20, message="node Unknown + tainted")
        assert next(c for c in node.status.conditions if c.type == "Ready").message == \
            "Kubelet stopped posting node status."

        # Not tolerated beyond 0 s: evicted, then force-deleted (no kubelet will confirm).
        await wait_until(lambda: _is(client, namespace, "now", "gone"), timeout=20,
                         message="pod 'now' evicted and force-deleted")
        await wait_until(lambda: _is(client, namespace, "soon", "gone"), timeout=20,
                         message="pod 'soon' evicted after its 2 s")
        assert await pod_state(client, namespace, "stays") == "live"
        assert evictions() - before == 2

        async def marked_not_ready():
            pod = await pods.get("stays", namespace)
            return any(c.type == "Ready" and c.status == "False" for c in pod.status.conditions)
        await wait_until(marked_not_ready, timeout=10, message="pod 'stays' marked not ready")

        kubelet.start()  # the node comes back
        await wait_until(healthy, timeout=20, message="taints removed after recovery")
        assert await pod_state(client, namespace, "stays") == "live"
    finally:
        await kubelet.stop()


async def _is(client, namespace: str, name: str, state: str) -> bool:
    return await pod_state(client, namespace, name) == state


async def test_lifecycle_not_ready_node_force_deletes_terminating_pods(
        client, namespace, node_name, start_controllers):
    node = objects.node(node_name)
    cond = node.status.conditions.add(type="Ready", status="False", reason="KubeletNotReady")
    cond.last_heartbeat_time.CopyFrom(now_stamp())
    await client.resource("nodes").create(node)
    pods = client.resource("pods")
    await pods.create(tolerating(objects.pod("leaving", namespace, node=node_name), None))
    await start_controllers(NodeLifecycleController, **FAST)

    async def not_ready_tainted():
        current = await client.resource("nodes").get(node_name)
        return ("node.kubernetes.io/not-ready", "NoExecute") in managed_taints(current)
    await wait_until(not_ready_tainted, timeout=10, message="not-ready taint")
    assert await pod_state(client, namespace, "leaving") == "live"  # tolerated forever

    await pods.delete("leaving", namespace)  # graceful: waits for a kubelet that cannot answer
    await wait_until(lambda: _is(client, namespace, "leaving", "gone"), timeout=20,
                     message="terminating pod force-deleted on a not-ready node")


async def test_lifecycle_pods_of_a_deleted_node_are_removed(client, namespace, node_name,
                                                            start_controllers):
    node = objects.node(node_name)
    node.spec.unschedulable = True
    await client.resource("nodes").create(node)
    await client.resource("pods").create(objects.pod("orphan", namespace, node=node_name))
    await start_controllers(NodeLifecycleController, **FAST)

    async def seen():  # the unschedulable taint shows the controller has synced the node
        current = await client.resource("nodes").get(node_name)
        return ("node.kubernetes.io/unschedulable", "NoSchedule") in managed_taints(current)
    await wait_until(seen, timeout=10, message="node synced")

    await client.resource("nodes").delete(node_name)
    await wait_until(lambda: _is(client, namespace, "orphan", "gone"), timeout=20,
                     message="pod of a deleted node removed")
