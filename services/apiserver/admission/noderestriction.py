"""Kubernetes' NodeRestriction admission plugin: what a kubelet may put in
the objects it writes, checked against the objects themselves.

The Node authorizer decides which objects a node may touch from the
request's attributes; some rules need the object's content, so they live
here (plugin/pkg/admission/noderestriction):

- pods: a node may create only pods bound to itself (spec.nodeName), owned by
  nothing or by its own Node; it may update the status of, or delete, only
  pods the stored object binds to it.
- its Node: only its own; on create only labels a kubelet may set; on
  update it may not change labels outside that set, its taints, its pod
  CIDRs (the IPAM controller assigns them) or spec.unschedulable (an
  administrator's cordon). A status update (UpdateStatus) stores only the
  status, so there is nothing to check.
- its Lease: only the one named after it in kube-node-lease.

The labels a kubelet may set are Kubernetes': any label outside the
kubernetes.io and k8s.io domains, and within them only the well-known node
labels (hostname, os, arch, instance type, zone, region) and those under
kubelet.kubernetes.io/ and node.kubernetes.io/; never one under
node-restriction.kubernetes.io/, which exists so that administrators can
label nodes with what a node cannot claim for itself.

``admit(user, attrs, obj, old)``: ``obj`` is the object being written (None
for delete), ``old`` the stored one the write is based on (None for
create; required for update and delete). Returns None when admitted, else
the refusal naming the rule.
"""

from __future__ import annotations

from typing import Any

from services.apiserver.authz.attributes import Attributes, UserInfo

NODE_LEASE_NAMESPACE = "kube-node-lease"
COORDINATION = "coordination.k8s.io"

KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
NODE_RESTRICTION_NAMESPACE = "node-restriction.kubernetes.io"


def admit(user: UserInfo, attrs: Attributes, obj: Any | None, old: Any | None) -> str | None:
    node = user.node_name
    if node is None or attrs.path:
        return None
    if attrs.group == "" and attrs.resource == "pods":
        return _pod(node, attrs, obj, old)
    if attrs.group == "" and attrs.resource == "nodes":
        return _node(node, attrs, obj, old)
    if attrs.group == COORDINATION and attrs.resource == "leases":
        return _lease(node, attrs, obj)
    return None


# --- pods --------------------------------------------------------------------------------------


def _pod(node: str, attrs: Attributes, obj: Any | None, old: Any | None) -> str | None:
    if attrs.verb == "create" and not attrs.subresource and obj is not None:
        return _pod_create(node, obj)
    if (attrs.verb == "update" and attrs.subresource == "status") or \
            (attrs.verb == "delete" and not attrs.subresource):
        action = "update the status of" if attrs.verb == "update" else "delete"
        if old is not None and old.spec.node_name != node:
            bound = old.spec.node_name
            where = f'is bound to "{bound}"' if bound else "is not bound to any node"
            return (f'node "{node}" can only {action} pods bound to it; pod '
                    f"{old.metadata.namespace}/{old.metadata.name} {where}")
    return None


def _pod_create(node: str, pod: Any) -> str | None:
    if pod.spec.node_name != node:
        got = f'"{pod.spec.node_name}"' if pod.spec.node_name else "unset"
        return f'node "{node}" can only create pods with spec.nodeName set to itself ({got})'
    refs = pod.metadata.owner_references
    if len(refs) > 1:
        return f'node "{node}" can only create pods with a single owner reference set to itself'
    if refs:
        ref = refs[0]
        if ref.api_version != "v1" or ref.kind != "Node" or ref.name != node:
            return f'node "{node}" can only create pods with an owner reference set to itself'
        if not ref.controller:
            return (f'node "{node}" can only create pods with a controller owner reference set '
                    "to itself")
        if ref.block_owner_deletion:
            return f'node "{node}" must not set blockOwnerDeletion on an owner reference'
    return None


# --- its Node ----------------------------------------------------------------------------------


def _node(node: str, attrs: Attributes, obj: Any | None, old: Any | None) -> str | None:
    if obj is None or attrs.verb not in ("create", "update"):
        return None
    if obj.metadata.name != node:
        return f'node "{node}" is not allowed to modify node "{obj.metadata.name}"'
    if attrs.subresource == "status":
        return None  # UpdateStatus stores the status only
    if attrs.verb == "create":
        forbidden = forbidden_labels(obj.metadata.labels)
        if forbidden:
            return (f'node "{node}" is not allowed to set the following labels: '
                    f'{", ".join(forbidden)}')
        if obj.spec.pod_cidr or obj.spec.pod_cidrs:
            return f'node "{node}" is not allowed to set its pod CIDR: the node IPAM ' \
                   "controller assigns it"
        return None
    old_labels = dict(old.metadata.labels) if old is not None else {}
    new_labels = dict(obj.metadata.labels)
    changed = {k for k in old_labels.keys() | new_labels.keys()
               if old_labels.get(k) != new_labels.get(k)}
    forbidden = forbidden_labels(changed)
    if forbidden:
        return f'node "{node}" is not allowed to modify labels: {", ".join(forbidden)}'
    old_spec = old.spec if old is not None else type(obj.spec)()
    if list(obj.spec.taints) != list(old_spec.taints):
        return f'node "{node}" is not allowed to modify taints'
    if obj.spec.pod_cidr != old_spec.pod_cidr or \
            list(obj.spec.pod_cidrs) != list(old_spec.pod_cidrs):
        return f'node "{node}" is not allowed to modify its pod CIDR'
    if obj.spec.unschedulable != old_spec.unschedulable:
        return f'node "{node}" is not allowed to modify spec.unschedulable'
    return None


def label_namespace(key: str) -> str:
    """The prefix of "prefix/name", "" when there is none."""
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_domain(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith(f".{domain}")


def is_kubelet_label(key: str) -> bool:
    """A kubernetes.io label a kubelet may set on its own Node."""
    if key in KUBELET_LABELS:
        return True
    namespace = label_namespace(key)
    return any(_in_domain(namespace, ns) for ns in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(keys: Any) -> list[str]:
    """The keys a kubelet may not set or change, sorted."""
    forbidden = []
    for key in keys:
        namespace = label_namespace(key)
        if _in_domain(namespace, NODE_RESTRICTION_NAMESPACE):
            forbidden.append(key)
        elif (_in_domain(namespace, "kubernetes.io") or _in_domain(namespace, "k8s.io")) \
                and not is_kubelet_label(key):
            forbidden.append(key)
    return sorted(forbidden)


# --- its Lease ---------------------------------------------------------------------------------


def _lease(node: str, attrs: Attributes, obj: Any | None) -> str | None:
    if obj is None or attrs.verb not in ("create", "update"):
        return None
    meta = obj.metadata
    if meta.name != node or meta.namespace != NODE_LEASE_NAMESPACE:
        return (f'node "{node}" can only access its own Lease {NODE_LEASE_NAMESPACE}/{node}, '
                f"not {meta.namespace}/{meta.name}")
    return None


__all__ = ["KUBELET_LABELS", "admit", "forbidden_labels", "is_kubelet_label", "label_namespace"]
