"""The authorizer chain: first allow wins, the most telling refusal."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.authz.attributes import ALLOW_NOTHING, Attributes, Decision, UserInfo
from services.apiserver.authz.bootstrap import default_cluster_role_bindings, default_cluster_roles
from services.apiserver.authz.chain import (
    AlwaysAllow,
    AuthorizerChain,
    PrivilegedGroups,
    from_modes,
)
from services.apiserver.authz.node import NodeAuthorizer
from services.apiserver.authz.rbac import DictSource, RbacAuthorizer

N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
ALICE = UserInfo("alice", ("system:authenticated",))
ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))


def _pod(node: str) -> core.Pod:
    pod = core.Pod()
    pod.spec.node_name = node
    return pod


def _chain() -> AuthorizerChain:
    node = NodeAuthorizer(lambda ns, name: _pod("n2") if name == "theirs" else None)
    rbac = RbacAuthorizer(DictSource(cluster_roles=default_cluster_roles(),
                                     cluster_role_bindings=default_cluster_role_bindings()))
    return from_modes("Node,RBAC", node=node, rbac=rbac)


def test_chain_first_allow_wins():
    chain = _chain()
    decision = chain.authorize(Attributes(N1, "get", resource="pods", namespace="d", name="p"))
    assert decision.allowed and decision.reason.startswith("Node:")
    admin = chain.authorize(Attributes(ADMIN, "delete", resource="nodes", name="n1"))
    assert admin.allowed and "system:masters" in admin.reason


def test_chain_refusal_of_a_node_names_the_node_rule():
    decision = _chain().authorize(Attributes(N1, "update", resource="pods", subresource="status",
                                             namespace="default", name="theirs"))
    assert not decision.allowed
    assert decision.reason == ('node "n1" can only update the status of pods bound to it; '
                               'pod default/theirs is bound to "n2"')


def test_chain_refusal_of_a_user_is_rbacs():
    decision = _chain().authorize(Attributes(ALICE, "create", resource="pods", namespace="b"))
    assert decision == Decision(False, 'User "alice" cannot create resource "pods" in API '
                                       'group "" in the namespace "b"')


def test_chain_rbac_may_allow_what_the_node_authorizer_does_not():
    node = NodeAuthorizer(lambda ns, name: None)
    rbac = RbacAuthorizer(DictSource(cluster_roles=default_cluster_roles(),
                                     cluster_role_bindings=default_cluster_role_bindings()))
    # A node that is also a monitoring client, bound by group.
    monitored = UserInfo("system:node:n1", ("system:nodes", "system:monitoring"))
    chain = AuthorizerChain([node, rbac])
    assert chain.authorize(Attributes(monitored, "get", path="/metrics")).allowed


def test_chain_of_nothing_allows_nothing():
    assert AuthorizerChain([]).authorize(Attributes(ALICE, "get", path="/")) == ALLOW_NOTHING


def test_always_allow_and_privileged_groups():
    assert AlwaysAllow().authorize(Attributes(ALICE, "delete", resource="nodes")).allowed
    privileged = PrivilegedGroups()
    assert privileged.authorize(Attributes(ADMIN, "delete", resource="nodes")).allowed
    assert not privileged.authorize(Attributes(ALICE, "delete", resource="nodes")).allowed


def test_from_modes():
    chain = from_modes("AlwaysAllow")
    assert [a.name for a in chain.authorizers] == ["AlwaysAllow"]
    assert [a.name for a in _chain().authorizers] == ["PrivilegedGroups", "Node", "RBAC"]
    with pytest.raises(ValueError, match='unknown mode "ABAC"'):
        from_modes("Node,ABAC", node=NodeAuthorizer(lambda ns, n: None))
    with pytest.raises(ValueError, match="needs the RBAC authorizer"):
        from_modes("RBAC")
    with pytest.raises(ValueError, match="no mode"):
        from_modes(" , ")
