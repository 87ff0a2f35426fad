"""Cascading deletion against a real API server, with a deployment →
replicaset → pods chain built by hand (ownerReferences; no workload
controllers running): background, foreground and orphan propagation, and
dangling references."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.garbagecollector import FOREGROUND, GarbageCollector
from services.machinery import NotFound
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(90)


def owner_ref(owner, kind: str, api_version: str = "apps/v1") -> meta_pb2.OwnerReference:
    return meta_pb2.OwnerReference(api_version=api_version, kind=kind, name=owner.metadata.name,
                                   uid=owner.metadata.uid, controller=True,
                                   block_owner_deletion=True)


async def chain(client, namespace: str, *, hold_pod: bool = False):
    """deployment web → replicaset web-1 → pods web-1-a, web-1-b; with
    ``hold_pod`` the first pod carries a finalizer that keeps it terminating."""
    dep = await client.resource("deployments").create(objects.deployment("web", namespace))
    rs = objects.replicaset("web-1", namespace)
    rs.metadata.owner_references.append(owner_ref(dep, "Deployment"))
    rs = await client.resource("replicasets").create(rs)
    pods = []
    for suffix in ("a", "b"):
        pod = objects.pod(f"web-1-{suffix}", namespace, labels={"app": "web-1"})
        pod.metadata.owner_references.append(owner_ref(rs, "ReplicaSet"))
        if hold_pod and suffix == "a":
            pod.metadata.finalizers.append("example.com/hold")
        pods.append(await client.resource("pods").create(pod))
    return dep, rs, pods


async def get(client, resource: str, name: str, namespace: str):
    try:
        return await client.resource(resource).get(name, namespace)
    except NotFound:
        return None


async def gone(client, namespace: str, *items: tuple[str, str]) -> bool:
    for resource, name in items:
        if await get(client, resource, name, namespace) is not None:
            return False
    return True


ALL = (("deployments", "web"), ("replicasets", "web-1"), ("pods", "web-1-a"),
       ("pods", "web-1-b"))


async def test_gc_background_deletes_the_whole_chain(client, namespace, start_controllers):
    await start_controllers(GarbageCollector)
    await chain(client, namespace)
    await client.resource("deployments").delete("web", namespace)
    await wait_until(lambda: gone(client, namespace, *ALL), timeout=20,
                     message="replicaset and pods collected")


async def test_gc_foreground_deletes_dependents_first(client, namespace, start_controllers):
    await start_controllers(GarbageCollector)
    await chain(client, namespace, hold_pod=True)
    await client.resource("deployments").delete("web", namespace, propagation_policy="Foreground")

    # The unheld pod goes; the held one is terminating, and it holds up the
    # replicaset, which holds up the deployment.
    await wait_until(lambda: gone(client, namespace, ("pods", "web-1-b")), timeout=20,
                     message="unheld pod deleted")

    async def waiting():
        held = await get(client, "pods", "web-1-a", namespace)
        rs = await get(client, "replicasets", "web-1", namespace)
        dep = await get(client, "deployments", "web", namespace)
        return (held is not None and held.metadata.HasField("deletion_timestamp")
                and rs is not None and rs.metadata.HasField("deletion_timestamp")
                and FOREGROUND in rs.metadata.finalizers
                and dep is not None and FOREGROUND in dep.metadata.finalizers)
    await wait_until(waiting, timeout=20, message="owners waiting for the held pod")

    held = await client.resource("pods").get("web-1-a", namespace)
    held.metadata.finalizers.remove("example.com/hold")
    await client.resource("pods").update(held)
    await wait_until(lambda: gone(client, namespace, *ALL), timeout=20,
                     message="the chain deleted bottom-up")


async def test_gc_orphan_keeps_dependents_without_the_reference(client, namespace,
                                                                start_controllers):
    await start_controllers(GarbageCollector)
    _, rs, _ = await chain(client, namespace)
    await client.resource("deployments").delete("web", namespace, propagation_policy="Orphan")
    await wait_until(lambda: gone(client, namespace, ("deployments", "web")), timeout=20,
                     message="deployment deleted once orphaning is done")
    rs_now = await client.resource("replicasets").get("web-1", namespace)
    assert list(rs_now.metadata.owner_references) == []
    assert rs_now.metadata.uid == rs.metadata.uid
    for name in ("web-1-a", "web-1-b"):
        pod = await client.resource("pods").get(name, namespace)
        assert [r.uid for r in pod.metadata.owner_references] == [rs.metadata.uid]


async def test_gc_dangling_reference_collected_and_partial_one_dropped(client, namespace,
                                                                       start_controllers):
    rs = await client.resource("replicasets").create(objects.replicaset("live", namespace))
    ghost = meta_pb2.OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="ghost",
                                    uid="00000000-0000-0000-0000-000000000000")
    lonely = objects.pod("lonely", namespace)
    lonely.metadata.owner_references.append(ghost)
    await client.resource("pods").create(lonely)
    shared = objects.pod("shared", namespace)
    shared.metadata.owner_references.extend([owner_ref(rs, "ReplicaSet"), ghost])
    shared.metadata.owner_references[0].controller = False
    await client.resource("pods").create(shared)

    await start_controllers(GarbageCollector)
    await wait_until(lambda: gone(client, namespace, ("pods", "lonely")), timeout=20,
                     message="pod owned only by a ghost collected")

    async def ghost_dropped():
        pod = await client.resource("pods").get("shared", namespace)
        return [r.uid for r in pod.metadata.owner_references] == [rs.metadata.uid]
    await wait_until(ghost_dropped, timeout=20, message="ghost reference removed, pod kept")


async def test_gc_owner_recreated_under_same_name_does_not_save_dependents(
        client, namespace, start_controllers):
    rs = await client.resource("replicasets").create(objects.replicaset("again", namespace))
    pod = objects.pod("child", namespace)
    pod.metadata.owner_references.append(owner_ref(rs, "ReplicaSet"))
    await client.resource("pods").create(pod)
    # The owner goes and a new one takes its name while no collector runs.
    await client.resource("replicasets").delete("again", namespace)
    await client.resource("replicasets").create(objects.replicaset("again", namespace))

    await start_controllers(GarbageCollector)
    await wait_until(lambda: gone(client, namespace, ("pods", "child")), timeout=20,
                     message="child of the old incarnation collected")
    assert await get(client, "replicasets", "again", namespace) is not None
