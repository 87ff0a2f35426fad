"""Kubernetes' Node authorizer, for the kinds this API has.

A kubelet (user ``system:node:<name>`` in group ``system:nodes``) may read
what it needs to run pods — nodes, pods, services, endpoints, namespaces —
and write only what is its own: its Node (and its status), its Lease in
kube-node-lease, the status of pods bound to it, the deletion of pods bound
to it (confirming a graceful delete), new pods (admission then requires
them bound to itself, as Kubernetes' mirror pods) and events. Whether a pod
is bound to it is read from the stored pod, never from the request. It may
also create subjectaccessreviews (Kubernetes' system:node role has that
rule): a kubelet asks the API server who may scrape its /metrics.

Where a check needs the request's object (the name of a Node or Lease being
created, the node a new pod is bound to) this authorizer allows and
:mod:`services.apiserver.admission.noderestriction` decides, as Kubernetes
splits the two.

Anything else gets no opinion: a denial whose reason names what a node may
do, so the chain can fall through to RBAC.
"""

from __future__ import annotations

from collections.abc import Callable

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.authz.attributes import Attributes, Decision

NODE_LEASE_NAMESPACE = "kube-node-lease"
COORDINATION = "coordination.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
READ = frozenset({"get", "list", "watch"})
# Core-group kinds a kubelet may read everywhere.
READABLE = frozenset({"nodes", "pods", "services", "endpoints", "namespaces"})
NODE_WRITES = frozenset({"create", "get", "update", "delete"})
LEASE_VERBS = frozenset({"create", "get", "update", "delete", "watch"})

PodLookup = Callable[[str, str], "core.Pod | None"]
NOT_A_NODE = Decision(False, "not a node")


class NodeAuthorizer:
    """``authorize(attrs) -> Decision`` for kubelets; ``pods(namespace,
    name)`` returns the stored pod (None if there is none)."""

    name = "Node"

    def __init__(self, pods: PodLookup):
        self.pods = pods

    def authorize(self, attrs: Attributes) -> Decision:
        node = attrs.user.node_name
        if node is None:
            return NOT_A_NODE
        if attrs.path:
            return _no(node, attrs, "nodes have no non-resource permissions")
        if attrs.group == COORDINATION and attrs.resource == "leases":
            return self._lease(node, attrs)
        if attrs.group == AUTHORIZATION and attrs.resource == "subjectaccessreviews":
            if attrs.verb == "create" and not attrs.subresource:
                return _yes(node, "may create subjectaccessreviews (to authorize scrapes of "
                                  "its metrics)")
            return _no(node, attrs, "nodes may only create subjectaccessreviews")
        if attrs.group != "":
            return _no(node, attrs, f'nodes have no access to API group "{attrs.group}"')
        if attrs.resource == "nodes":
            return self._node(node, attrs)
        if attrs.resource == "pods":
            return self._pod(node, attrs)
        if attrs.resource == "events" and not attrs.subresource:
            if attrs.verb == "create":
                return _yes(node, "may create events")
            return _no(node, attrs, "nodes may only create events")
        if attrs.resource in READABLE and not attrs.subresource:
            if attrs.verb in READ:
                return _yes(node, f"may read {attrs.resource}")
            return _no(node, attrs, f"nodes may only read {attrs.resource}")
        return _no(node, attrs, "not among what a node may access")

    # -- per resource ----------------------------------------------------------------------

    def _node(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource == "" and attrs.verb in READ:
            return _yes(node, "may read nodes")
        if attrs.subresource == "status":
            if attrs.verb != "update":
                return _no(node, attrs, "nodes may only update the status of their own Node")
        elif attrs.subresource or attrs.verb not in NODE_WRITES:
            return _no(node, attrs, "nodes may only create, get, update or delete their own "
                                    "Node and update its status")
        if attrs.name == node or (attrs.verb == "create" and not attrs.name):
            # A create's name may not be known here: admission checks the object.
            return _yes(node, "may write its own Node")
        return _no(node, attrs, "a node may only modify its own Node")

    def _lease(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource or attrs.verb not in LEASE_VERBS:
            return _no(node, attrs, "nodes may only create, get, update, delete or watch "
                                    "their own Lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _no(node, attrs, f'nodes may only access leases in the '
                                    f'"{NODE_LEASE_NAMESPACE}" namespace')
        if attrs.name == node or (attrs.verb == "create" and not attrs.name):
            return _yes(node, "may access its own Lease")
        return _no(node, attrs, "a node may only access the Lease named after it")

    def _pod(self, node: str, attrs: Attributes) -> Decision:
        sub, verb = attrs.subresource, attrs.verb
        if sub == "" and verb in READ:
            return _yes(node, "may read pods")
        if sub == "" and verb == "create":
            # Admission requires spec.nodeName == this node.
            return _yes(node, "may create pods bound to itself")
        if sub == "status" and verb == "update":
            return self._bound(node, attrs, "update the status of")
        if sub == "" and verb == "delete":
            return self._bound(node, attrs, "delete")
        return _no(node, attrs, "nodes may read pods, create pods bound to themselves, and "
                                "update the status of or delete pods bound to them")

    def _bound(self, node: str, attrs: Attributes, action: str) -> Decision:
        """Allowed only for a stored pod whose spec.nodeName is this node. A
        pod that is not stored is allowed through, so the request fails
        NotFound as it does for anyone (the kubelet expects that); admission
        checks the stored object the write is based on again."""
        rule = f'node "{node}" can only {action} pods bound to it'
        if not attrs.name or not attrs.namespace:
            return Decision(False, f"{rule}; the request names no single pod")
        pod = self.pods(attrs.namespace, attrs.name)
        if pod is None:
            return _yes(node, f"may {action} pods bound to it (pod not found)")
        bound = pod.spec.node_name
        if bound == node:
            return _yes(node, f"may {action} pods bound to it")
        where = f'is bound to "{bound}"' if bound else "is not bound to any node"
        return Decision(False, f"{rule}; pod {attrs.namespace}/{attrs.name} {where}")


def _yes(node: str, what: str) -> Decision:
    return Decision(True, f'Node: node "{node}" {what}')


def _no(node: str, attrs: Attributes, why: str) -> Decision:
    """A denial naming the request and the rule it falls outside."""
    return Decision(False, f'node "{node}" cannot {attrs.describe()}: {why}')


__all__ = ["NODE_LEASE_NAMESPACE", "NOT_A_NODE", "NodeAuthorizer", "PodLookup"]
