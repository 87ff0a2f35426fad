"""The Node authorizer: what a kubelet may read and write, pure."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.authz.attributes import Attributes, UserInfo
from services.apiserver.authz.node import NodeAuthorizer

N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
LEASES = dict(group="coordination.k8s.io", resource="leases", namespace="kube-node-lease")


def _pod(name: str, node: str, namespace: str = "default") -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, namespace
    pod.spec.node_name = node
    return pod


PODS = {("default", p.metadata.name): p
        for p in (_pod("mine", "n1"), _pod("theirs", "n2"), _pod("pending", ""))}
AUTHZ = NodeAuthorizer(lambda namespace, name: PODS.get((namespace, name)))


def _req(verb: str, resource: str = "", *, user: UserInfo = N1, **kw) -> Attributes:
    return Attributes(user=user, verb=verb, resource=resource, **kw)


def test_node_authorizer_has_no_opinion_on_other_users():
    for user in (UserInfo("alice"), UserInfo("system:node:n1"),  # no system:nodes group
                 UserInfo("bob", ("system:nodes",))):
        decision = AUTHZ.authorize(_req("get", "pods", user=user, namespace="d", name="p"))
        assert decision.allowed is False
        assert decision.reason == "not a node"


@pytest.mark.parametrize("resource", ["nodes", "pods", "services", "endpoints", "namespaces"])
@pytest.mark.parametrize("verb", ["get", "list", "watch"])
def test_node_may_read_what_it_needs(resource, verb):
    assert AUTHZ.authorize(_req(verb, resource)).allowed


@pytest.mark.parametrize("attrs", [
    dict(verb="list", resource="events"),
    dict(verb="get", resource="resourcequotas", namespace="d", name="q"),
    dict(verb="list", resource="replicasets", group="apps"),
    dict(verb="list", resource="roles", group="rbac.authorization.k8s.io"),
    dict(verb="create", resource="services", namespace="d"),
    dict(verb="update", resource="endpoints", namespace="d", name="e"),
    dict(verb="delete", resource="namespaces", name="d"),
    dict(verb="get", resource="pods", subresource="log", namespace="default", name="mine"),
    dict(verb="create", resource="pods", subresource="exec", namespace="default", name="mine"),
    dict(verb="create", resource="pods", subresource="binding", namespace="default",
         name="pending"),
    dict(verb="update", resource="pods", namespace="default", name="mine"),
    dict(verb="get", path="/metrics"),
])
def test_node_may_not_do_anything_else(attrs):
    decision = AUTHZ.authorize(_req(**attrs))
    assert not decision.allowed
    assert decision.reason.startswith('node "n1" cannot ')


def test_node_may_create_events_only():
    assert AUTHZ.authorize(_req("create", "events", namespace="default")).allowed
    denied = AUTHZ.authorize(_req("delete", "events", namespace="default", name="e"))
    assert denied.reason == ('node "n1" cannot delete events "e" in namespace "default": '
                             "nodes may only create events")


def test_node_may_create_subjectaccessreviews_only():
    """A kubelet asks the API server who may scrape its /metrics (Kubernetes'
    system:node role has this rule)."""
    sar = dict(group="authorization.k8s.io", resource="subjectaccessreviews")
    assert AUTHZ.authorize(_req("create", **sar)).allowed
    for verb in ("get", "list", "delete"):
        denied = AUTHZ.authorize(_req(verb, **sar))
        assert denied.reason.endswith("nodes may only create subjectaccessreviews")
    assert not AUTHZ.authorize(_req("create", "tokenreviews",
                                    group="authentication.k8s.io")).allowed


# --- its Node ------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb, sub", [("create", ""), ("get", ""), ("update", ""),
                                       ("delete", ""), ("update", "status")])
def test_node_may_write_its_own_node(verb, sub):
    assert AUTHZ.authorize(_req(verb, "nodes", name="n1", subresource=sub)).allowed


def test_node_may_create_a_node_whose_name_admission_checks():
    assert AUTHZ.authorize(_req("create", "nodes")).allowed


@pytest.mark.parametrize("verb, sub", [("create", ""), ("update", ""), ("delete", ""),
                                       ("update", "status")])
def test_node_1_may_not_write_node_2(verb, sub):
    decision = AUTHZ.authorize(_req(verb, "nodes", name="n2", subresource=sub))
    assert not decision.allowed
    assert "a node may only modify its own Node" in decision.reason
    assert '"n2"' in decision.reason


def test_node_status_is_written_by_update_only():
    assert not AUTHZ.authorize(_req("get", "nodes", name="n1", subresource="status")).allowed


# --- its Lease -----------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["create", "get", "update", "delete", "watch"])
def test_node_may_use_its_own_lease(verb):
    assert AUTHZ.authorize(_req(verb, name="n1", **LEASES)).allowed


def test_node_may_create_a_lease_whose_name_admission_checks():
    assert AUTHZ.authorize(_req("create", **LEASES)).allowed


@pytest.mark.parametrize("verb", ["get", "update", "delete", "watch", "create"])
def test_node_1_may_not_touch_node_2s_lease(verb):
    decision = AUTHZ.authorize(_req(verb, name="n2", **LEASES))
    assert not decision.allowed
    assert decision.reason.endswith("a node may only access the Lease named after it")


def test_node_may_not_list_leases_or_use_other_namespaces():
    assert not AUTHZ.authorize(_req("list", **LEASES)).allowed
    assert not AUTHZ.authorize(_req("watch", **LEASES)).allowed  # every lease
    elsewhere = dict(LEASES, namespace="kube-system")
    denied = AUTHZ.authorize(_req("update", name="n1", **elsewhere))
    assert 'only access leases in the "kube-node-lease" namespace' in denied.reason


# --- pods ----------------------------------------------------------------------------------------


def test_node_may_update_status_of_and_delete_pods_bound_to_it():
    for verb, sub in (("update", "status"), ("delete", "")):
        assert AUTHZ.authorize(_req(verb, "pods", namespace="default", name="mine",
                                    subresource=sub)).allowed


def test_node_1_may_not_update_status_of_a_pod_on_node_2():
    decision = AUTHZ.authorize(_req("update", "pods", namespace="default", name="theirs",
                                    subresource="status"))
    assert not decision.allowed
    assert decision.reason == ('node "n1" can only update the status of pods bound to it; '
                               'pod default/theirs is bound to "n2"')
    denied = AUTHZ.authorize(_req("delete", "pods", namespace="default", name="pending"))
    assert denied.reason == ('node "n1" can only delete pods bound to it; pod default/pending '
                             "is not bound to any node")


def test_node_pod_writes_name_a_single_pod():
    denied = AUTHZ.authorize(_req("delete", "pods", namespace="default"))
    assert not denied.allowed


def test_node_write_of_a_pod_that_is_not_stored_falls_through_to_not_found():
    # Allowed here so the request fails NotFound, as the kubelet expects;
    # admission checks the stored pod the write is based on.
    assert AUTHZ.authorize(_req("update", "pods", namespace="default", name="gone",
                                subresource="status")).allowed


def test_node_may_create_pods_which_admission_then_restricts():
    assert AUTHZ.authorize(_req("create", "pods", namespace="default")).allowed
