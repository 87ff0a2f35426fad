"""NodeRestriction: what a kubelet may put in the objects it writes."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.admission.noderestriction import admit, forbidden_labels
from services.apiserver.authz.attributes import Attributes, UserInfo
from services.kubelet.node import NodeConfig, NodeManager, node_labels

N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
ALICE = UserInfo("alice", ("system:authenticated",))


def _attrs(verb: str, resource: str, *, user: UserInfo = N1, group: str = "",
           sub: str = "", namespace: str = "", name: str = "") -> Attributes:
    return Attributes(user, verb, group, resource, sub, namespace, name)


def _pod(node: str, name: str = "p") -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.spec.node_name = node
    return pod


def _node(name: str = "n1", **labels: str) -> core.Node:
    node = core.Node()
    node.metadata.name = name
    node.metadata.labels.update(labels)
    return node


def _copy(msg):
    new = type(msg)()
    new.CopyFrom(msg)
    return new


def test_noderestriction_ignores_other_users():
    assert admit(ALICE, _attrs("create", "pods", user=ALICE), _pod("n2"), None) is None
    node = _node("n2", **{"node-role.kubernetes.io/master": ""})
    assert admit(ALICE, _attrs("create", "nodes", user=ALICE), node, None) is None


# --- pods ----------------------------------------------------------------------------------------


def test_noderestriction_node_creates_only_pods_bound_to_itself():
    create = _attrs("create", "pods", namespace="default")
    assert admit(N1, create, _pod("n1"), None) is None
    assert admit(N1, create, _pod("n2"), None) == (
        'node "n1" can only create pods with spec.nodeName set to itself ("n2")')
    assert admit(N1, create, _pod(""), None) == (
        'node "n1" can only create pods with spec.nodeName set to itself (unset)')


def test_noderestriction_pod_owner_must_be_the_node_itself():
    create = _attrs("create", "pods", namespace="default")
    pod = _pod("n1")
    pod.metadata.owner_references.add(api_version="v1", kind="Node", name="n1", controller=True)
    assert admit(N1, create, pod, None) is None
    pod.metadata.owner_references[0].block_owner_deletion = True
    assert "blockOwnerDeletion" in admit(N1, create, pod, None)
    pod.metadata.owner_references[0].block_owner_deletion = False
    pod.metadata.owner_references[0].controller = False
    assert "controller owner reference" in admit(N1, create, pod, None)
    rs = _pod("n1")
    rs.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name="web",
                                     controller=True)
    assert admit(N1, create, rs, None) == (
        'node "n1" can only create pods with an owner reference set to itself')
    rs.metadata.owner_references.add(api_version="v1", kind="Node", name="n1", controller=True)
    assert "single owner reference" in admit(N1, create, rs, None)


@pytest.mark.parametrize("verb, sub, action", [("update", "status", "update the status of"),
                                               ("delete", "", "delete")])
def test_noderestriction_pod_writes_check_the_stored_pod(verb, sub, action):
    attrs = _attrs(verb, "pods", sub=sub, namespace="default", name="p")
    new = _pod("n1") if verb == "update" else None
    assert admit(N1, attrs, new, _pod("n1")) is None
    # The node named in the request does not count: the stored pod's does.
    assert admit(N1, attrs, new, _pod("n2")) == (
        f'node "n1" can only {action} pods bound to it; pod default/p is bound to "n2"')


# --- its Node ------------------------------------------------------------------------------------


def test_noderestriction_node_writes_only_its_own_node():
    assert admit(N1, _attrs("create", "nodes"), _node("n2"), None) == (
        'node "n1" is not allowed to modify node "n2"')
    assert admit(N1, _attrs("update", "nodes", name="n2"), _node("n2"), _node("n2")) == (
        'node "n1" is not allowed to modify node "n2"')


def test_noderestriction_node_registers_with_kubelet_labels_only():
    create = _attrs("create", "nodes")
    fine = _node(**{"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": "z1", "node.kubernetes.io/anything": "x",
                    "kubelet.kubernetes.io/y": "1", "disktype": "ssd", "example.com/team": "a"})
    assert admit(N1, create, fine, None) is None
    bad = _node(**{"node-role.kubernetes.io/master": "",
                   "node-restriction.kubernetes.io/pci": "true"})
    assert admit(N1, create, bad, None) == (
        'node "n1" is not allowed to set the following labels: '
        "node-restriction.kubernetes.io/pci, node-role.kubernetes.io/master")


def test_noderestriction_node_may_not_claim_a_pod_cidr_at_registration():
    node = _node()
    node.spec.pod_cidr = "10.244.9.0/24"
    assert "pod CIDR" in admit(N1, _attrs("create", "nodes"), node, None)


def test_noderestriction_node_may_register_with_taints():
    node = _node()
    node.spec.taints.add(key="dedicated", value="gpu", effect="NoSchedule")
    assert admit(N1, _attrs("create", "nodes"), node, None) is None


@pytest.mark.parametrize("label, allowed", [
    ("kubernetes.io/hostname", True),
    ("beta.kubernetes.io/arch", True),
    ("node.kubernetes.io/instance-type", True),
    ("topology.kubernetes.io/region", True),
    ("failure-domain.beta.kubernetes.io/zone", True),
    ("kubelet.kubernetes.io/anything", True),
    ("sub.node.kubernetes.io/x", True),
    ("kubemark", True),
    ("node-role.kubernetes.io/control-plane", False),
    ("kubernetes.io/role", False),
    ("k8s.io/anything", False),
    ("example.k8s.io/anything", False),
    ("node-restriction.kubernetes.io/secure", False),
    ("a.node-restriction.kubernetes.io/secure", False),
])
def test_noderestriction_label_policy(label, allowed):
    assert (forbidden_labels([label]) == []) is allowed


def test_noderestriction_node_update_may_not_change_restricted_labels():
    update = _attrs("update", "nodes", name="n1")
    old = _node(**{"kubernetes.io/hostname": "n1", "node-restriction.kubernetes.io/pci": "1"})
    kept = _copy(old)
    kept.metadata.labels["kubernetes.io/os"] = "linux"
    assert admit(N1, update, kept, old) is None
    removed = _copy(old)
    del removed.metadata.labels["node-restriction.kubernetes.io/pci"]
    assert admit(N1, update, removed, old) == (
        'node "n1" is not allowed to modify labels: node-restriction.kubernetes.io/pci')
    added = _copy(old)
    added.metadata.labels["node-role.kubernetes.io/master"] = ""
    assert "node-role.kubernetes.io/master" in admit(N1, update, added, old)


def test_noderestriction_node_update_may_not_change_taints_cidr_or_cordon():
    update = _attrs("update", "nodes", name="n1")
    old = _node()
    old.spec.taints.add(key="node.kubernetes.io/unreachable", effect="NoExecute")
    old.spec.pod_cidr = "10.244.1.0/24"
    old.spec.pod_cidrs.append("10.244.1.0/24")
    old.spec.unschedulable = True
    assert admit(N1, update, _copy(old), old) is None

    untainted = _copy(old)
    del untainted.spec.taints[:]
    assert admit(N1, update, untainted, old) == 'node "n1" is not allowed to modify taints'
    moved = _copy(old)
    moved.spec.pod_cidr = "10.244.2.0/24"
    assert admit(N1, update, moved, old) == 'node "n1" is not allowed to modify its pod CIDR'
    uncordoned = _copy(old)
    uncordoned.spec.unschedulable = False
    assert admit(N1, update, uncordoned, old) == (
        'node "n1" is not allowed to modify spec.unschedulable')


def test_noderestriction_status_update_stores_status_only():
    status = _attrs("update", "nodes", sub="status", name="n1")
    old = _node()
    old.spec.taints.add(key="x", effect="NoSchedule")
    stale = _node(**{"node-role.kubernetes.io/master": ""})  # spec and labels are ignored
    assert admit(N1, status, stale, old) is None


def test_noderestriction_admits_what_our_kubelet_writes():
    """The kubelet's registration, and its update of a Node that exists
    already (tainted, cordoned and with a CIDR by others)."""
    config = NodeConfig(name="n1", ip="10.0.0.1", labels={"kubemark": "true"})
    manager = NodeManager(client=_NoClient(), runtime=None, config=config, measure=False)
    registered = _node()
    registered.metadata.labels.update(node_labels(config))
    registered.status.CopyFrom(manager._status(None))
    assert admit(N1, _attrs("create", "nodes"), registered, None) is None

    existing = _node(**{"kubernetes.io/hostname": "old-name"})
    existing.spec.pod_cidr = "10.244.1.0/24"
    existing.spec.taints.add(key="node.kubernetes.io/not-ready", effect="NoSchedule")
    existing.spec.unschedulable = True
    relabelled = _copy(existing)
    relabelled.metadata.labels.update(node_labels(config))
    assert admit(N1, _attrs("update", "nodes", name="n1"), relabelled, existing) is None


class _NoClient:
    def resource(self, name: str) -> None:
        return None


# --- its Lease -----------------------------------------------------------------------------------


def _lease(name: str, namespace: str = "kube-node-lease") -> coordination.Lease:
    lease = coordination.Lease()
    lease.metadata.name, lease.metadata.namespace = name, namespace
    return lease


@pytest.mark.parametrize("verb", ["create", "update"])
def test_noderestriction_node_writes_only_its_own_lease(verb):
    attrs = _attrs(verb, "leases", group="coordination.k8s.io", namespace="kube-node-lease")
    assert admit(N1, attrs, _lease("n1"), _lease("n1")) is None
    assert admit(N1, attrs, _lease("n2"), _lease("n2")) == (
        'node "n1" can only access its own Lease kube-node-lease/n1, not kube-node-lease/n2')
    assert admit(N1, attrs, _lease("n1", "kube-system"), None) is not None
