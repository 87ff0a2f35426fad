"""The Node authorizer and NodeRestriction admission: with node-1's
credentials a kubelet can write its own Node, Lease and the status of the
pods bound to it — and nothing of node-2's."""

from __future__ import annotations

import uuid

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery.errors import ApiError
from tests.support import objects

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def two_nodes(admin, namespace):
    """node names (n1, n2), each with a Node, a Lease and a pod bound to it."""
    suffix = uuid.uuid4().hex[:6]
    names = (f"n1-{suffix}", f"n2-{suffix}")
    for name in names:
        await admin.resource("nodes").create(objects.node(name))
        await admin.resource("leases").create(objects.lease(name, "kube-node-lease", name))
        pod = objects.pod(f"pod-on-{name}", namespace)
        pod.spec.node_name = name
        await admin.resource("pods").create(pod)
    return names


async def denied(call, *phrases: str) -> None:
    with pytest.raises(ApiError) as err:
        await call
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED, err.value
    for phrase in phrases:
        assert phrase in str(err.value)


async def test_node_writes_only_its_own_pods_node_and_lease(secure, namespace, two_nodes):
    n1, n2 = two_nodes
    async with secure.client(f"system:node:{n1}", ("system:nodes",)) as kubelet:
        pods, nodes, leases = (kubelet.resource(k) for k in ("pods", "nodes", "leases"))

        own = await pods.get(f"pod-on-{n1}", namespace)
        own.status.phase = "Running"
        await pods.update_status(own)
        other = await pods.get(f"pod-on-{n2}", namespace)  # reading is allowed
        other.status.phase = "Failed"
        await denied(pods.update_status(other), f'pod {namespace}/pod-on-{n2}', n2)
        await denied(pods.delete(f"pod-on-{n2}", namespace))

        mine = await nodes.get(n1)
        mine.status.capacity["pods"] = "110"
        await nodes.update_status(mine)
        theirs = await nodes.get(n2)
        await denied(nodes.update(theirs), n2)
        await denied(nodes.update_status(theirs), n2)
        await denied(nodes.delete(n2), n2)

        lease = await leases.get(n1, "kube-node-lease")
        lease.spec.renew_time.GetCurrentTime()
        await leases.update(lease)
        await denied(leases.get(n2, "kube-node-lease"), n2)
        their_lease = objects.lease(n2, "kube-node-lease", n1)
        await denied(leases.update(their_lease), n2)
        await denied(leases.delete(n2, "kube-node-lease"), n2)


async def test_node_cannot_create_pods_for_other_nodes(secure, namespace, two_nodes):
    n1, n2 = two_nodes
    async with secure.client(f"system:node:{n1}", ("system:nodes",)) as kubelet:
        pod = objects.pod("sneaky", namespace)
        pod.spec.node_name = n2
        await denied(kubelet.resource("pods").create(pod), n2)
        pod.spec.node_name = ""
        await denied(kubelet.resource("pods").create(pod))


async def test_node_cannot_grant_itself_labels_or_drop_taints(secure, admin, two_nodes):
    n1, _ = two_nodes
    tainted = await admin.resource("nodes").get(n1)
    tainted.spec.taints.append(core.Taint(key="dedicated", value="db", effect="NoSchedule"))
    await admin.resource("nodes").update(tainted)
    async with secure.client(f"system:node:{n1}", ("system:nodes",)) as kubelet:
        nodes = kubelet.resource("nodes")
        node = await nodes.get(n1)
        node.metadata.labels["node-restriction.kubernetes.io/trusted"] = "true"
        await denied(nodes.update(node), "node-restriction.kubernetes.io/trusted")
        node = await nodes.get(n1)
        del node.spec.taints[:]
        await denied(nodes.update(node), "taints")
        node = await nodes.get(n1)
        node.metadata.labels["kubernetes.io/hostname"] = n1  # a label kubelets may set
        await nodes.update(node)


async def test_node_may_not_act_as_another_user(secure, namespace, two_nodes):
    n1, _ = two_nodes
    async with secure.client(f"system:node:{n1}", ("system:nodes",)) as kubelet:
        await denied(kubelet.resource("deployments").list(namespace))
        await denied(kubelet.resource("clusterrolebindings").list())
        await denied(kubelet.resource("pods").bind(core.Binding(
            metadata={"name": f"pod-on-{n1}", "namespace": namespace},
            target={"kind": "Node", "name": n1})))


async def test_node_writes_are_pinned_to_the_object_decided_on(secure, namespace, two_nodes):
    """A node's update without a resourceVersion is made conditional on the
    stored version it was judged against; a pod that is not stored is
    NOT_FOUND (never judged against nothing)."""
    n1, _ = two_nodes
    async with secure.client(f"system:node:{n1}", ("system:nodes",)) as kubelet:
        pods = kubelet.resource("pods")
        own = await pods.get(f"pod-on-{n1}", namespace)
        own.metadata.resource_version = ""
        own.status.phase = "Running"
        updated = await pods.update_status(own)
        assert updated.status.phase == "Running"
        with pytest.raises(ApiError) as err:
            await pods.delete("never-created", namespace)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
