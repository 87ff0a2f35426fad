"""RBAC: Kubernetes' semantics of bindings, subjects and rules, pure."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.authz.attributes import Attributes, UserInfo
from services.apiserver.authz.bootstrap import (
    default_cluster_role_bindings,
    default_cluster_roles,
    rule,
)
from services.apiserver.authz.rbac import (
    DictSource,
    RbacAuthorizer,
    resource_matches,
    url_matches,
)

ALICE = UserInfo("alice", ("devs", "system:authenticated"))
BOB = UserInfo("bob", ("system:authenticated",))


def _subject(kind: str, name: str, namespace: str = "") -> rbac.Subject:
    return rbac.Subject(kind=kind, name=name, namespace=namespace)


def _role(name: str, namespace: str, *rules: rbac.PolicyRule) -> rbac.Role:
    role = rbac.Role(rules=list(rules))
    role.metadata.name, role.metadata.namespace = name, namespace
    return role


def _cluster_role(name: str, *rules: rbac.PolicyRule) -> rbac.ClusterRole:
    role = rbac.ClusterRole(rules=list(rules))
    role.metadata.name = name
    return role


def _binding(name: str, namespace: str, kind: str, role: str,
             *subjects: rbac.Subject) -> rbac.RoleBinding:
    b = rbac.RoleBinding(subjects=list(subjects),
                         role_ref=rbac.RoleRef(kind=kind, name=role,
                                               api_group="rbac.authorization.k8s.io"))
    b.metadata.name, b.metadata.namespace = name, namespace
    return b


def _cluster_binding(name: str, role: str, *subjects: rbac.Subject) -> rbac.ClusterRoleBinding:
    b = rbac.ClusterRoleBinding(subjects=list(subjects),
                                role_ref=rbac.RoleRef(kind="ClusterRole", name=role,
                                                      api_group="rbac.authorization.k8s.io"))
    b.metadata.name = name
    return b


def _defaults(*bindings: rbac.RoleBinding | rbac.ClusterRoleBinding,
              roles: tuple[rbac.Role, ...] = ()) -> RbacAuthorizer:
    return RbacAuthorizer(DictSource(
        roles=roles, cluster_roles=default_cluster_roles(),
        role_bindings=[b for b in bindings if isinstance(b, rbac.RoleBinding)],
        cluster_role_bindings=[*default_cluster_role_bindings(),
                               *(b for b in bindings if isinstance(b, rbac.ClusterRoleBinding))]))


def _req(user: UserInfo, verb: str, resource: str = "", namespace: str = "", name: str = "",
         group: str = "", subresource: str = "", path: str = "") -> Attributes:
    return Attributes(user=user, verb=verb, group=group, resource=resource,
                      subresource=subresource, namespace=namespace, name=name, path=path)


# --- the cases ---------------------------------------------------------------------------


def test_rbac_view_can_list_but_not_create():
    authz = _defaults(_cluster_binding("view-all", "view", _subject("User", "alice")))
    listed = authz.authorize(_req(ALICE, "list", "pods", "default"))
    assert listed.allowed
    assert listed.reason == ('RBAC: allowed by ClusterRoleBinding "view-all" of ClusterRole '
                             '"view" to User "alice"')
    created = authz.authorize(_req(ALICE, "create", "pods", "default"))
    assert not created.allowed
    assert created.reason == ('User "alice" cannot create resource "pods" in API group "" in '
                              'the namespace "default"')


def test_rbac_rolebinding_in_namespace_a_grants_nothing_in_b():
    authz = _defaults(_binding("edit-a", "a", "ClusterRole", "edit", _subject("User", "alice")))
    assert authz.authorize(_req(ALICE, "create", "pods", "a")).allowed
    denied = authz.authorize(_req(ALICE, "create", "pods", "b"))
    assert not denied.allowed
    assert denied.reason == ('User "alice" cannot create resource "pods" in API group "" in '
                             'the namespace "b"')
    # Nor across all namespaces.
    assert not authz.authorize(_req(ALICE, "list", "pods")).allowed


def test_rbac_rolebinding_to_clusterrole_never_grants_cluster_scoped_resources():
    authz = _defaults(_binding("admin-a", "a", "ClusterRole", "cluster-admin",
                               _subject("User", "alice")))
    assert authz.authorize(_req(ALICE, "delete", "deployments", "a", "web",
                                group="apps")).allowed
    assert not authz.authorize(_req(ALICE, "list", "nodes")).allowed
    # Even if a namespace were (wrongly) given for a cluster-scoped kind.
    assert not authz.authorize(_req(ALICE, "get", "nodes", "a", "n1")).allowed
    assert not authz.authorize(_req(ALICE, "get", path="/metrics")).allowed


def test_rbac_rolebinding_to_role_uses_the_role_of_its_own_namespace():
    reader = rule(["get"], "", ["pods"])
    authz = _defaults(_binding("r", "a", "Role", "reader", _subject("User", "alice")),
                      _binding("r", "b", "Role", "reader", _subject("User", "alice")),
                      roles=(_role("reader", "a", reader),))
    allowed = authz.authorize(_req(ALICE, "get", "pods", "a", "x"))
    assert allowed.reason == 'RBAC: allowed by RoleBinding "r/a" of Role "reader" to User "alice"'
    # b's binding names a Role "reader" that does not exist in b: grants nothing.
    assert not authz.authorize(_req(ALICE, "get", "pods", "b", "x")).allowed


def test_rbac_binding_to_a_missing_role_grants_nothing():
    authz = _defaults(_cluster_binding("ghost", "no-such-role", _subject("User", "alice")))
    assert not authz.authorize(_req(ALICE, "get", "pods", "default", "x")).allowed


def test_rbac_cluster_role_binding_to_a_role_is_ignored():
    b = _cluster_binding("odd", "reader", _subject("User", "alice"))
    b.role_ref.kind = "Role"
    authz = _defaults(b, roles=(_role("reader", "", rule(["get"], "", ["pods"])),))
    assert not authz.authorize(_req(ALICE, "get", "pods", "default", "x")).allowed


# --- subjects ------------------------------------------------------------------------------------


def test_rbac_subjects_match_user_group_and_service_account():
    authz = _defaults(
        _cluster_binding("devs-view", "view", _subject("Group", "devs")),
        _binding("sa-edit", "ci", "ClusterRole", "edit", _subject("ServiceAccount", "builder")),
        _binding("sa-other", "ci", "ClusterRole", "admin",
                 _subject("ServiceAccount", "deployer", "tools")))
    group_read = authz.authorize(_req(ALICE, "get", "services", "x", "s"))
    assert group_read.reason == ('RBAC: allowed by ClusterRoleBinding "devs-view" of ClusterRole '
                                 '"view" to Group "devs"')
    assert not authz.authorize(_req(BOB, "get", "services", "x", "s")).allowed

    builder = UserInfo("system:serviceaccount:ci:builder")
    allowed = authz.authorize(_req(builder, "create", "pods", "ci"))
    assert allowed.reason == ('RBAC: allowed by RoleBinding "sa-edit/ci" of ClusterRole "edit" '
                              'to ServiceAccount "ci/builder"')
    assert not authz.authorize(_req(UserInfo("builder"), "create", "pods", "ci")).allowed
    deployer = UserInfo("system:serviceaccount:tools:deployer")
    assert authz.authorize(_req(deployer, "create", "roles", "ci",
                                group="rbac.authorization.k8s.io")).allowed


def test_rbac_unknown_subject_kind_matches_nobody():
    authz = _defaults(_cluster_binding("x", "view", _subject("Robot", "alice")))
    assert not authz.authorize(_req(ALICE, "get", "pods", "a", "p")).allowed


# --- rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule_resources, resource, subresource, expected", [
    (["*"], "pods", "", True),
    (["*"], "pods", "status", True),
    (["pods"], "pods", "", True),
    (["pods"], "pods", "status", False),
    (["pods/status"], "pods", "status", True),
    (["pods/status"], "pods", "", False),
    (["*/status"], "nodes", "status", True),
    (["*/status"], "pods", "log", False),
    (["*/status"], "pods", "", False),
    (["pods/*"], "pods", "log", True),
    (["pods/*"], "pods", "", False),
    (["pods/*"], "nodes", "status", False),
])
def test_rbac_resource_matching(rule_resources, resource, subresource, expected):
    assert resource_matches(frozenset(rule_resources), resource, subresource) is expected


@pytest.mark.parametrize("urls, path, expected", [
    (["*"], "/anything", True),
    (["/metrics"], "/metrics", True),
    (["/metrics"], "/metrics/slis", False),
    (["/healthz/*"], "/healthz/etcd", True),
    (["/healthz/*"], "/healthz", False),
    (["/foo*"], "/foobar", True),
])
def test_rbac_non_resource_url_matching(urls, path, expected):
    assert url_matches(urls, path) is expected


def _one_rule(*rules: rbac.PolicyRule) -> RbacAuthorizer:
    return RbacAuthorizer(DictSource(
        cluster_roles=[_cluster_role("r", *rules)],
        cluster_role_bindings=[_cluster_binding("b", "r", _subject("User", "alice"))]))


def test_rbac_verbs_and_groups_match_exactly_or_by_star():
    authz = _one_rule(rule(["get", "list"], "apps", ["deployments"]))
    assert authz.authorize(_req(ALICE, "get", "deployments", "a", "d", group="apps")).allowed
    assert not authz.authorize(_req(ALICE, "delete", "deployments", "a", "d",
                                    group="apps")).allowed
    assert not authz.authorize(_req(ALICE, "get", "deployments", "a", "d")).allowed
    star = _one_rule(rule(["*"], "*", ["deployments"]))
    assert star.authorize(_req(ALICE, "delete", "deployments", "a", "d", group="apps")).allowed


def test_rbac_resource_names_need_a_named_request():
    authz = _one_rule(rule(["get", "list", "watch", "create", "update"], "coordination.k8s.io",
                           ["leases"], names=["kube-scheduler"]))
    lease = dict(group="coordination.k8s.io")
    assert authz.authorize(_req(ALICE, "get", "leases", "kube-system", "kube-scheduler",
                                **lease)).allowed
    assert not authz.authorize(_req(ALICE, "get", "leases", "kube-system", "other",
                                    **lease)).allowed
    assert not authz.authorize(_req(ALICE, "list", "leases", "kube-system", **lease)).allowed
    assert not authz.authorize(_req(ALICE, "watch", "leases", "kube-system", **lease)).allowed
    assert not authz.authorize(_req(ALICE, "create", "leases", "kube-system", **lease)).allowed


def test_rbac_non_resource_rules_and_requests_do_not_mix():
    authz = _one_rule(rule(["get"], urls=["/metrics"]), rule(["get"], "", ["pods"]))
    assert authz.authorize(_req(ALICE, "get", path="/metrics")).allowed
    assert not authz.authorize(_req(ALICE, "get", path="/debug")).allowed
    denied = authz.authorize(_req(ALICE, "create", path="/metrics"))
    assert denied.reason == 'User "alice" cannot create path "/metrics"'
    assert authz.authorize(_req(ALICE, "get", "pods", "a", "p")).allowed
    assert not authz.authorize(_req(ALICE, "get", "nodes", name="n")).allowed


def test_rbac_denial_at_the_cluster_scope_names_it():
    authz = _defaults()
    denied = authz.authorize(_req(BOB, "update", "nodes", name="n1", subresource="status"))
    assert denied.reason == ('User "bob" cannot update resource "nodes/status" in API group "" '
                             "at the cluster scope")


def test_rbac_masters_are_cluster_admin_everywhere():
    authz = _defaults()
    admin = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
    for attrs in (_req(admin, "delete", "nodes", name="n1"),
                  _req(admin, "create", "pods", "kube-system", subresource="exec", name="p"),
                  _req(admin, "get", path="/metrics"),
                  _req(admin, "create", "clusterrolebindings",
                       group="rbac.authorization.k8s.io")):
        decision = authz.authorize(attrs)
        assert decision.allowed
        assert decision.reason == ('RBAC: allowed by ClusterRoleBinding "cluster-admin" of '
                                   'ClusterRole "cluster-admin" to Group "system:masters"')


# --- the cache ----------------------------------------------------------------------------------


def test_rbac_index_is_rebuilt_on_invalidate():
    source = DictSource(cluster_roles=default_cluster_roles())
    authz = RbacAuthorizer(source)
    request = _req(ALICE, "get", "pods", "a", "p")
    assert not authz.authorize(request).allowed
    source.bindings["a"] = [_binding("v", "a", "ClusterRole", "view", _subject("User", "alice"))]
    # The namespace had no bindings, so nothing was cached for it.
    assert authz.authorize(request).allowed
    source.bindings["a"] = []
    assert authz.authorize(request).allowed  # cached until told
    authz.invalidate()
    assert not authz.authorize(request).allowed

    source.cluster_bindings.append(_cluster_binding("v", "view", _subject("User", "alice")))
    assert not authz.authorize(request).allowed
    authz.invalidate()
    assert authz.authorize(request).allowed


def test_rbac_without_cache_reads_the_source_every_time():
    source = DictSource(cluster_roles=default_cluster_roles())
    authz = RbacAuthorizer(source, cache=False)
    request = _req(ALICE, "get", "pods", "a", "p")
    assert not authz.authorize(request).allowed
    source.cluster_bindings.append(_cluster_binding("v", "view", _subject("User", "alice")))
    assert authz.authorize(request).allowed


def test_rbac_empty_namespaces_are_not_cached():
    authz = _defaults(_binding("v", "a", "ClusterRole", "view", _subject("User", "alice")))
    for i in range(100):
        authz.authorize(_req(ALICE, "get", "pods", f"ns-{i}", "p"))
    authz.authorize(_req(ALICE, "get", "pods", "a", "p"))
    assert set(authz._namespaced) == {"a"}


def test_rbac_rules_for_lists_what_applies():
    authz = _defaults(_binding("v", "a", "ClusterRole", "view", _subject("User", "alice")))
    in_a = authz.rules_for(ALICE, "a")
    assert in_a and all("RoleBinding \"v/a\"" in where for where, _ in in_a)
    assert authz.rules_for(ALICE, "b") == []
