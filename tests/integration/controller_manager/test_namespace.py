"""Namespace deletion against a real API server with the namespace
controller running (the API server's own finalizing loop runs too: both
are idempotent, and these tests show they coexist): everything in the
namespace goes, a pod on a node waits for its kubelet, then the namespace
goes."""

from __future__ import annotations

import uuid

import pytest

from services.controller_manager.namespace import NamespaceController
from services.machinery import NotFound
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(90)


async def make_namespace(client) -> str:
    name = f"nsdel-{uuid.uuid4().hex[:8]}"
    await client.resource("namespaces").create(objects.namespace(name))
    return name


async def ns_state(client, name: str) -> str:
    try:
        ns = await client.resource("namespaces").get(name)
    except NotFound:
        return "gone"
    return ns.status.phase


async def test_namespace_deletion_removes_content_then_namespace(client, start_controllers):
    await start_controllers(NamespaceController, namespace_sync_period=0.2)
    name = await make_namespace(client)
    await client.resource("pods").create(objects.pod("p", name))
    await client.resource("services").create(objects.service("s", name))
    await client.resource("replicasets").create(objects.replicaset("rs", name))
    await client.resource("leases").create(objects.lease("l", name))
    await client.resource("events").create(objects.event("e", name))

    await client.resource("namespaces").delete(name)

    async def done():
        return await ns_state(client, name) == "gone"
    await wait_until(done, timeout=30, message="namespace gone")
    for resource in ("pods", "services", "replicasets", "leases", "events"):
        assert not (await client.resource(resource).list_all(name)).items, resource


async def test_namespace_waits_for_a_pod_on_a_node(client, start_controllers):
    running = await start_controllers(NamespaceController, namespace_sync_period=0.2)
    name = await make_namespace(client)
    await client.resource("pods").create(objects.pod("bound", name, node="some-node"))
    await client.resource("namespaces").delete(name)

    async def pod_terminating():
        pod = await client.resource("pods").get("bound", name)
        return pod.metadata.HasField("deletion_timestamp")
    await wait_until(pod_terminating, timeout=20, message="pod deleted gracefully")
    assert await ns_state(client, name) == "Terminating"
    # The controller says there is content left; the namespace keeps its finalizer.
    controller = running[0]
    assert await controller.delete_content(name) == 1
    assert "kubernetes" in (await client.resource("namespaces").get(name)).spec.finalizers

    await client.resource("pods").delete("bound", name, grace_period_seconds=0)  # the kubelet

    async def done():
        return await ns_state(client, name) == "gone"
    await wait_until(done, timeout=30, message="namespace gone once the pod is")


async def test_namespace_sync_is_idempotent_on_a_gone_namespace(client, start_controllers):
    running = await start_controllers(NamespaceController)
    name = await make_namespace(client)
    await client.resource("namespaces").delete(name)

    async def done():
        return await ns_state(client, name) == "gone"
    await wait_until(done, timeout=30, message="namespace gone")
    await running[0].sync(name)  # nothing cached, nothing to do, no error
    await running[0].finalize(name)  # NotFound tolerated
