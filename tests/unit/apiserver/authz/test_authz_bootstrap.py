"""The default policy: user-facing roles, and one role per component that
allows exactly the calls the component's code makes."""

from __future__ import annotations

import pytest

from services.api import kinds
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.authz import bootstrap
from services.apiserver.authz.attributes import Attributes, UserInfo
from services.apiserver.authz.rbac import DictSource, RbacAuthorizer
from services.controller_manager import manager

RBAC_GROUP = "rbac.authorization.k8s.io"
COORD = "coordination.k8s.io"
AUTHZ_GROUP = "authorization.k8s.io"

SCHEDULER = UserInfo("system:kube-scheduler", ("system:authenticated",))
CONTROLLER_MANAGER = UserInfo("system:kube-controller-manager", ("system:authenticated",))
PROXY = UserInfo("system:kube-proxy", ("system:authenticated",))
PROMETHEUS = UserInfo("system:prometheus", ("system:monitoring", "system:authenticated"))


def _authz(*bindings: rbac.RoleBinding) -> RbacAuthorizer:
    return RbacAuthorizer(DictSource(
        cluster_roles=bootstrap.default_cluster_roles(), role_bindings=bindings,
        cluster_role_bindings=bootstrap.default_cluster_role_bindings()))


def _bound(user: str, role: str, namespace: str = "a") -> rbac.RoleBinding:
    b = rbac.RoleBinding(subjects=[rbac.Subject(kind="User", name=user)],
                         role_ref=rbac.RoleRef(kind="ClusterRole", name=role,
                                               api_group=RBAC_GROUP))
    b.metadata.name, b.metadata.namespace = f"{user}-{role}", namespace
    return b


AUTHZ = _authz(_bound("viewer", "view"), _bound("editor", "edit"), _bound("owner", "admin"))


def _r(verb: str, resource: str, namespace: str = "", name: str = "", *, group: str = "",
       sub: str = "") -> tuple:
    return (verb, group, resource, sub, namespace, name)


def _allowed(user: UserInfo, request: tuple) -> bool:
    verb, group, resource, sub, namespace, name = request
    return AUTHZ.authorize(Attributes(user, verb, group, resource, sub, namespace, name)).allowed


def _informer(resource: str, group: str = "", namespace: str = "") -> list[tuple]:
    return [_r("list", resource, namespace, group=group),
            _r("watch", resource, namespace, group=group)]


def _leader(lease: str) -> list[tuple]:
    return [_r("get", "leases", "kube-system", lease, group=COORD),
            _r("create", "leases", "kube-system", group=COORD),
            _r("update", "leases", "kube-system", lease, group=COORD)]


# Delegated authorization of /metrics: "may this user get /metrics?"
REVIEW = ("create", AUTHZ_GROUP, "subjectaccessreviews", "", "", "")


# --- the components ------------------------------------------------------------------------------

SCHEDULER_CALLS = [
    *_informer("pods"), *_informer("nodes"),
    _r("get", "pods", "d", "p"),
    _r("create", "pods", "d", "p", sub="binding"),
    _r("update", "pods", "d", "p", sub="status"),
    _r("create", "events", "d"), _r("update", "events", "d", "p.1"),
    *_leader("kube-scheduler"),
    REVIEW,
]
SCHEDULER_REFUSED = [
    _r("create", "pods", "d"), _r("delete", "pods", "d", "p"), _r("update", "pods", "d", "p"),
    _r("update", "nodes", "", "n1"), _r("get", "pods", "d", "p", sub="log"),
    _r("update", "leases", "kube-system", "kube-controller-manager", group=COORD),
    _r("update", "leases", "kube-node-lease", "n1", group=COORD),
    _r("list", "roles", group=RBAC_GROUP), _r("create", "deployments", "d", group="apps"),
]

PROXY_CALLS = [*_informer("services"), *_informer("endpoints"), REVIEW]
PROXY_REFUSED = [_r("list", "pods"), _r("update", "endpoints", "d", "e"),
                 _r("create", "services", "d"), _r("create", "events", "d"),
                 _r("get", "subjectaccessreviews", "", "x", group=AUTHZ_GROUP)]


def _controller_calls() -> list[tuple]:
    calls = [
        # endpoints
        *_informer("services"), *_informer("pods"), *_informer("endpoints"),
        _r("create", "endpoints", "d"), _r("update", "endpoints", "d", "s"),
        _r("delete", "endpoints", "d", "s"),
        # nodeipam
        *_informer("nodes"), _r("get", "nodes", "", "n1"), _r("update", "nodes", "", "n1"),
        _r("create", "events", "default"),
        # nodelifecycle
        _r("update", "nodes", "", "n1", sub="status"), _r("delete", "pods", "d", "p"),
        _r("update", "pods", "d", "p", sub="status"),
        *_informer("leases", COORD, "kube-node-lease"),
        # namespace
        *_informer("namespaces"), _r("get", "namespaces", "", "d"),
        _r("update", "namespaces", "", "d"), _r("update", "namespaces", "", "d", sub="status"),
        # replicaset
        *_informer("replicasets", "apps"), _r("get", "replicasets", "d", "rs", group="apps"),
        _r("update", "replicasets", "d", "rs", group="apps", sub="status"),
        _r("create", "pods", "d"), _r("update", "pods", "d", "p"),
        # deployment
        *_informer("deployments", "apps"), _r("get", "deployments", "d", "x", group="apps"),
        _r("update", "deployments", "d", "x", group="apps"),
        _r("update", "deployments", "d", "x", group="apps", sub="status"),
        _r("create", "replicasets", "d", group="apps"),
        _r("update", "replicasets", "d", "rs", group="apps"),
        _r("delete", "replicasets", "d", "rs", group="apps"),
        *_leader("kube-controller-manager"),
        REVIEW,
    ]
    for kind in kinds.KINDS:  # garbage collector: every kind
        calls += [*_informer(kind.resource, kind.group),
                  _r("get", kind.resource, "d" if kind.namespaced else "", "x", group=kind.group),
                  _r("update", kind.resource, "d" if kind.namespaced else "", "x",
                     group=kind.group),
                  _r("delete", kind.resource, "d" if kind.namespaced else "", "x",
                     group=kind.group)]
        if kind.namespaced:  # namespace controller: a namespace's content
            calls += [_r("list", kind.resource, "d", group=kind.group)]
    return calls


CONTROLLER_REFUSED = [
    _r("create", "pods", "d", "p", sub="exec"), _r("get", "pods", "d", "p", sub="log"),
    _r("create", "pods", "d", "p", sub="binding"),
    _r("create", "clusterrolebindings", group=RBAC_GROUP),
    _r("create", "roles", "d", group=RBAC_GROUP),
    _r("create", "nodes"), _r("create", "namespaces"), _r("create", "services", "d"),
    _r("update", "resourcequotas", "d", "q", sub="status"),
]


@pytest.mark.parametrize("user, calls", [
    (SCHEDULER, SCHEDULER_CALLS), (PROXY, PROXY_CALLS),
    (CONTROLLER_MANAGER, _controller_calls()),
], ids=["scheduler", "proxy", "controller-manager"])
def test_bootstrap_component_role_allows_what_the_component_does(user, calls):
    refused = [c for c in calls if not _allowed(user, c)]
    assert refused == []


@pytest.mark.parametrize("user, calls", [
    (SCHEDULER, SCHEDULER_REFUSED), (PROXY, PROXY_REFUSED),
    (CONTROLLER_MANAGER, CONTROLLER_REFUSED),
], ids=["scheduler", "proxy", "controller-manager"])
def test_bootstrap_component_role_allows_nothing_more(user, calls):
    allowed = [c for c in calls if _allowed(user, c)]
    assert allowed == []


def test_bootstrap_every_controller_has_its_rules():
    assert set(bootstrap.controller_rules()) == set(manager.CONTROLLERS)


def test_bootstrap_component_roles_grant_no_non_resource_urls_or_stars():
    for role in bootstrap.default_cluster_roles():
        if role.metadata.name in (bootstrap.SCHEDULER, bootstrap.CONTROLLER_MANAGER,
                                  bootstrap.PROXIER):
            for r in role.rules:
                assert not r.non_resource_urls
                assert "*" not in (*r.verbs, *r.api_groups, *r.resources)


def test_bootstrap_rules_use_only_known_verbs_and_resources():
    verbs = {"get", "list", "watch", "create", "update", "delete", "*"}
    resources = {k.resource for k in kinds.KINDS} | {
        "pods/status", "pods/binding", "pods/log", "pods/exec", "nodes/status",
        "services/status", "namespaces/status", "replicasets/status", "deployments/status",
        "resourcequotas/status", "subjectaccessreviews", "*"}
    groups = {k.group for k in kinds.KINDS} | {AUTHZ_GROUP, "*"}
    for role in bootstrap.default_cluster_roles():
        for r in role.rules:
            assert set(r.verbs) <= verbs, role.metadata.name
            assert set(r.resources) <= resources, role.metadata.name
            assert set(r.api_groups) <= groups, role.metadata.name


def test_bootstrap_status_subresources_exist():
    for role in bootstrap.default_cluster_roles():
        for r in role.rules:
            for res in r.resources:
                base, _, sub = res.partition("/")
                if sub == "status":
                    assert kinds.BY_RESOURCE[base].has_status, res


# --- user-facing roles ---------------------------------------------------------------------------

VIEWER, EDITOR, OWNER = UserInfo("viewer"), UserInfo("editor"), UserInfo("owner")


def test_bootstrap_view_reads_but_does_not_write_or_exec():
    for c in (_r("list", "pods", "a"), _r("get", "pods", "a", "p", sub="log"),
              _r("watch", "deployments", "a", group="apps"), _r("get", "events", "a", "e"),
              _r("get", "resourcequotas", "a", "q")):
        assert _allowed(VIEWER, c), c
    for c in (_r("create", "pods", "a"), _r("create", "pods", "a", "p", sub="exec"),
              _r("list", "roles", "a", group=RBAC_GROUP), _r("list", "pods", "b"),
              _r("list", "pods")):
        assert not _allowed(VIEWER, c), c


def test_bootstrap_edit_writes_workloads_but_not_rbac_or_quota():
    for c in (_r("create", "pods", "a"), _r("create", "pods", "a", "p", sub="exec"),
              _r("delete", "services", "a", "s"),
              _r("update", "deployments", "a", "d", group="apps")):
        assert _allowed(EDITOR, c), c
    for c in (_r("create", "roles", "a", group=RBAC_GROUP),
              _r("create", "rolebindings", "a", group=RBAC_GROUP),
              _r("update", "resourcequotas", "a", "q"), _r("create", "events", "a"),
              _r("update", "pods", "a", "p", sub="status")):
        assert not _allowed(EDITOR, c), c


def test_bootstrap_admin_adds_roles_and_bindings_in_its_namespace():
    for c in (_r("create", "roles", "a", group=RBAC_GROUP),
              _r("delete", "rolebindings", "a", "x", group=RBAC_GROUP),
              _r("create", "pods", "a")):
        assert _allowed(OWNER, c), c
    for c in (_r("create", "clusterroles", group=RBAC_GROUP),
              _r("create", "clusterrolebindings", group=RBAC_GROUP),
              _r("create", "roles", "b", group=RBAC_GROUP),
              _r("update", "resourcequotas", "a", "q")):
        assert not _allowed(OWNER, c), c


def test_bootstrap_monitoring_reads_metrics_only():
    def path(p: str, verb: str = "get") -> bool:
        return AUTHZ.authorize(Attributes(PROMETHEUS, verb, path=p)).allowed
    assert path("/metrics") and path("/livez") and path("/readyz/etcd")
    assert not path("/debug/pprof") and not path("/metrics", "create")
    assert not _allowed(PROMETHEUS, _r("list", "pods"))


@pytest.mark.parametrize("user", [SCHEDULER, CONTROLLER_MANAGER, PROXY])
def test_bootstrap_components_may_ask_but_not_scrape_each_other(user):
    """They authorize their own /metrics by asking the API server, which
    needs create on subjectaccessreviews; reading metrics is Prometheus'."""
    assert _allowed(user, REVIEW)
    assert not AUTHZ.authorize(Attributes(user, "get", path="/metrics")).allowed
    assert not _allowed(UserInfo("alice", ("system:authenticated",)), REVIEW)


# --- the objects ---------------------------------------------------------------------------------


def test_bootstrap_objects_are_labelled_and_complete():
    roles = {r.metadata.name: r for r in bootstrap.default_cluster_roles()}
    bindings = bootstrap.default_cluster_role_bindings()
    for obj in [*roles.values(), *bindings]:
        assert obj.metadata.labels["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj.metadata.annotations["rbac.authorization.kubernetes.io/autoupdate"] == "true"
        assert obj.api_version == "rbac.authorization.k8s.io/v1"
    for b in bindings:
        assert b.kind == "ClusterRoleBinding"
        assert b.role_ref.name in roles
    subjects = {(b.metadata.name, s.kind, s.name) for b in bindings for s in b.subjects}
    assert subjects == {
        ("cluster-admin", "Group", "system:masters"),
        ("system:monitoring", "Group", "system:monitoring"),
        ("system:kube-scheduler", "User", "system:kube-scheduler"),
        ("system:kube-controller-manager", "User", "system:kube-controller-manager"),
        ("system:node-proxier", "User", "system:kube-proxy"),
    }


def test_bootstrap_reconcile_adds_missing_rules_and_keeps_extra_ones():
    wanted = bootstrap.cluster_role("r", [bootstrap.rule(["get"], "", ["pods"])])
    assert bootstrap.reconcile_cluster_role(wanted, wanted) is None
    existing = bootstrap.cluster_role("r", [bootstrap.rule(["list"], "", ["nodes"])])
    updated = bootstrap.reconcile_cluster_role(existing, wanted)
    assert updated is not None and list(updated.rules) == [*existing.rules, *wanted.rules]
    existing.metadata.annotations[bootstrap.AUTOUPDATE_ANNOTATION] = "false"
    assert bootstrap.reconcile_cluster_role(existing, wanted) is None


def test_bootstrap_reconcile_binding_adds_subjects_and_flags_a_new_role_ref():
    wanted = bootstrap.cluster_role_binding("b", "view", users=["alice"])
    assert bootstrap.reconcile_cluster_role_binding(wanted, wanted) is None
    existing = bootstrap.cluster_role_binding("b", "view", users=["bob"])
    updated = bootstrap.reconcile_cluster_role_binding(existing, wanted)
    assert updated is not None and [s.name for s in updated.subjects] == ["bob", "alice"]
    assert not bootstrap.needs_recreate(existing, updated)
    moved = bootstrap.cluster_role_binding("b", "edit", users=["alice"])
    updated = bootstrap.reconcile_cluster_role_binding(moved, wanted)
    assert updated is not None and bootstrap.needs_recreate(moved, updated)
