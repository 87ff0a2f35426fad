"""CRUD, validation, concurrency and deletion semantics against a real API
server and etcd."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.api import kinds
from services.machinery import errors
from tests.support import objects


def _name(prefix: str = "o") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("kind", [k.kind for k in kinds.KINDS])
async def test_crud_every_kind(client, namespace, kind):
    info = kinds.BY_KIND[kind]
    res = client.resource(info)
    name = _name(kind.lower())
    ns = namespace if info.namespaced else ""
    obj = objects.sample(kind, name, namespace)
    created = await res.create(obj)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp.seconds > 0
    assert created.api_version == info.api_version and created.kind == info.kind
    with pytest.raises(errors.AlreadyExists):
        await res.create(obj)
    got = await res.get(name, ns)
    assert got == created
    listed = await res.list(ns)
    assert name in [o.metadata.name for o in listed.items]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    got.metadata.labels["touched"] = "yes"
    updated = await res.update(got)
    assert updated.metadata.labels["touched"] == "yes"
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    if kind == "Namespace":
        await res.delete(name, ns)  # namespaces go through Terminating
        return
    await res.delete(name, ns)
    with pytest.raises(errors.NotFound):
        await res.get(name, ns)
    with pytest.raises(errors.NotFound):
        await res.delete(name, ns)


async def test_create_refused_in_missing_namespace(client):
    with pytest.raises(errors.NotFound, match="namespaces"):
        await client.resource("pods").create(objects.pod("p", "no-such-namespace"))


async def test_validation_names_the_field(client, namespace):
    pod = objects.pod("bad", namespace)
    pod.spec.containers[0].image = ""
    with pytest.raises(errors.Invalid, match=r"spec\.containers\[0\]\.image"):
        await client.resource("pods").create(pod)
    svc = objects.service("Bad_Name", namespace)
    with pytest.raises(errors.Invalid, match="metadata.name"):
        await client.resource("services").create(svc)
    pod = objects.pod("badcpu", namespace)
    pod.spec.containers[0].resources.requests["cpu"] = "lots"
    with pytest.raises(errors.Invalid, match=r"resources\.requests"):
        await client.resource("pods").create(pod)
    listed = await client.resource("pods").list(namespace)
    assert listed.items == []  # nothing invalid was stored


async def test_defaults_are_applied(client, namespace):
    pod = await client.resource("pods").create(objects.pod("d", namespace))
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.containers[0].image_pull_policy == "Always"  # :latest
    assert pod.status.phase == "Pending"
    dep = await client.resource("deploy").create(objects.deployment("d", namespace))
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.strategy.rolling_update.max_surge.str_value == "25%"
    assert dep.spec.strategy.rolling_update.max_unavailable.str_value == "25%"


async def test_stale_update_is_refused_and_changes_nothing(client, namespace):
    res = client.resource("pods")
    first = await res.create(objects.pod("stale", namespace))
    fresh = await res.get("stale", namespace)
    fresh.metadata.labels["v"] = "1"
    await res.update(fresh)
    first.metadata.labels["v"] = "stale"
    with pytest.raises(errors.Conflict):
        await res.update(first)
    assert (await res.get("stale", namespace)).metadata.labels["v"] == "1"


async def test_update_changes_spec_but_not_status_and_bumps_generation(client, namespace):
    res = client.resource("deployments")
    dep = await res.create(objects.deployment("gen", namespace))
    assert dep.metadata.generation == 1
    dep.spec.replicas = 5
    dep.status.replicas = 99  # ignored by Update
    dep = await res.update(dep)
    assert dep.metadata.generation == 2 and dep.status.replicas == 0
    dep.metadata.labels["x"] = "y"  # metadata only: generation unchanged
    dep = await res.update(dep)
    assert dep.metadata.generation == 2
    dep.status.replicas = 5
    dep.spec.replicas = 1  # ignored by UpdateStatus
    dep = await res.update_status(dep)
    assert dep.status.replicas == 5 and dep.spec.replicas == 5


async def test_unchanged_update_writes_nothing(client, namespace):
    res = client.resource("services")
    svc = await res.create(objects.service("same", namespace))
    again = await res.update(svc)
    assert again.metadata.resource_version == svc.metadata.resource_version


async def test_pod_immutable_fields(client, namespace):
    res = client.resource("pods")
    pod = await res.create(objects.pod("imm", namespace))
    pod.spec.containers[0].image = "busybox:2"  # allowed
    pod = await res.update(pod)
    pod.spec.containers[0].command[:] = ["true"]
    with pytest.raises(errors.Invalid, match="spec"):
        await res.update(pod)


async def test_concurrent_read_modify_write_loses_nothing(client, namespace):
    """20 writers × 50 increments of one counter end at exactly 1000."""
    res = client.resource("leases")
    await res.create(objects.lease("counter", namespace))

    async def writer():
        for _ in range(50):
            while True:
                lease = await res.get("counter", namespace)
                lease.spec.lease_transitions += 1
                try:
                    await res.update(lease)
                    break
                except errors.Conflict:
                    continue

    await asyncio.gather(*(writer() for _ in range(20)))
    assert (await res.get("counter", namespace)).spec.lease_transitions == 1000


async def test_delete_preconditions(client, namespace):
    res = client.resource("services")
    svc = await res.create(objects.service("pre", namespace))
    with pytest.raises(errors.PreconditionFailed):
        await res.delete("pre", namespace, uid="not-the-uid")
    with pytest.raises(errors.Conflict):
        await res.delete("pre", namespace, resource_version="1")
    await res.delete("pre", namespace, uid=svc.metadata.uid,
                     resource_version=svc.metadata.resource_version)
    with pytest.raises(errors.NotFound):
        await res.get("pre", namespace)


async def test_pod_graceful_deletion_waits_for_kubelet(client, namespace):
    res = client.resource("pods")
    await res.create(objects.pod("unscheduled", namespace))
    await res.delete("unscheduled", namespace)  # never scheduled: gone at once
    with pytest.raises(errors.NotFound):
        await res.get("unscheduled", namespace)
    await res.create(objects.pod("running", namespace, node="node-1"))
    marked = await res.delete("running", namespace)
    assert marked.metadata.HasField("deletion_timestamp")
    assert marked.metadata.deletion_grace_period_seconds == 30
    still = await res.get("running", namespace)
    assert still.metadata.HasField("deletion_timestamp")
    await res.delete("running", namespace, grace_period_seconds=0, uid=still.metadata.uid)
    with pytest.raises(errors.NotFound):
        await res.get("running", namespace)


async def test_finalizers_hold_deletion(client, namespace):
    res = client.resource("replicasets")
    rs = objects.replicaset("fin", namespace)
    rs.metadata.finalizers.append("example.com/hold")
    await res.create(rs)
    marked = await res.delete("fin", namespace)
    assert marked.metadata.HasField("deletion_timestamp")
    held = await res.get("fin", namespace)
    held.metadata.finalizers.append("example.com/new")  # may not add while deleting
    held = await res.update(held)
    assert list(held.metadata.finalizers) == ["example.com/hold"]
    del held.metadata.finalizers[:]
    await res.update(held)
    with pytest.raises(errors.NotFound):
        await res.get("fin", namespace)


async def test_foreground_and_orphan_propagation_set_finalizers(client, namespace):
    res = client.resource("deployments")
    await res.create(objects.deployment("fg", namespace))
    marked = await res.delete("fg", namespace, propagation_policy="Foreground")
    assert "foregroundDeletion" in marked.metadata.finalizers
    await res.create(objects.deployment("or", namespace))
    marked = await res.delete("or", namespace, propagation_policy="Orphan")
    assert "orphan" in marked.metadata.finalizers
    with pytest.raises(errors.Invalid):
        await res.delete("or", namespace, propagation_policy="Sideways")


async def test_bind_sets_node_once(client, namespace):
    from services.api.gen.kybernetes.core.v1 import types_pb2 as core
    res = client.resource("pods")
    await res.create(objects.pod("b", namespace))
    binding = core.Binding()
    binding.metadata.name, binding.metadata.namespace = "b", namespace
    binding.target.kind, binding.target.name = "Node", "node-1"
    bound = await res.bind(binding)
    assert bound.spec.node_name == "node-1"
    assert any(c.type == "PodScheduled" and c.status == "True"
               for c in bound.status.conditions)
    binding.target.name = "node-2"
    with pytest.raises(errors.PreconditionFailed, match="already assigned"):
        await res.bind(binding)
    pod = await res.get("b", namespace)
    pod.spec.node_name = "node-3"
    with pytest.raises(errors.Invalid):
        await res.update(pod)


async def test_namespace_deletion_deletes_its_objects(client):
    from tests.support.processes import wait_until
    ns = _name("gone")
    await client.resource("ns").create(objects.namespace(ns))
    await client.resource("pods").create(objects.pod("p", ns))
    await client.resource("svc").create(objects.service("s", ns))
    marked = await client.resource("ns").delete(ns)
    assert marked.status.phase == "Terminating" and marked.metadata.HasField("deletion_timestamp")
    with pytest.raises(errors.PreconditionFailed, match="terminated"):
        await client.resource("pods").create(objects.pod("late", ns))

    async def gone():
        try:
            await client.resource("ns").get(ns)
            return False
        except errors.NotFound:
            return True
    await wait_until(gone, timeout=20, message=f"namespace {ns} to go")
    assert (await client.resource("pods").list(ns)).items == []
    assert (await client.resource("svc").list(ns)).items == []


async def test_default_namespaces_exist(client):
    names = {n.metadata.name for n in (await client.resource("ns").list()).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_generate_name(client, namespace):
    pod = objects.pod("", namespace)
    pod.metadata.generate_name = "web-"
    created = await client.resource("pods").create(pod)
    assert created.metadata.name.startswith("web-") and len(created.metadata.name) == 9


async def test_cluster_scoped_kind_refuses_namespace(client):
    node = objects.node(_name("n"))
    node.metadata.namespace = "default"
    with pytest.raises(errors.Invalid, match="cluster-scoped"):
        await client.resource("nodes").create(node)


async def test_oversized_request_is_refused(client, namespace):
    pod = objects.pod("huge", namespace)
    pod.metadata.annotations["blob"] = "x" * (3 * 1024 * 1024 + 10)
    with pytest.raises(errors.TooLarge):
        await client.resource("pods").create(pod)
    with pytest.raises(errors.NotFound):
        await client.resource("pods").get("huge", namespace)


async def test_default_toleration_seconds_are_configurable(tmp_path):
    """--default-not-ready/unreachable-toleration-seconds, as kube-apiserver's."""
    from services.machinery import Client
    from tests.support.processes import ApiServerProcess, EtcdProcess
    etcd = EtcdProcess(tmp_path)
    etcd.start()
    api = ApiServerProcess(tmp_path, etcd.endpoint, extra_args=[
        "--default-not-ready-toleration-seconds", "7",
        "--default-unreachable-toleration-seconds", "9"])
    try:
        await asyncio.to_thread(api.start)
        async with Client([api.address]) as client:
            pod = await client.resource("pods").create(objects.pod("t", "default"))
            seconds = {t.key: t.toleration_seconds for t in pod.spec.tolerations}
            assert seconds == {"node.kubernetes.io/not-ready": 7,
                               "node.kubernetes.io/unreachable": 9}
            pod.metadata.labels["x"] = "y"
            pod = await client.resource("pods").update(pod)
            assert len(pod.spec.tolerations) == 2
    finally:
        api.stop()
        etcd.stop()
