"""RBAC escalation prevention, pure: Kubernetes' Covers, and the admission
check of Role, ClusterRole, RoleBinding and ClusterRoleBinding writes over
in-memory RBAC objects and the real authorizer chain."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.authz import chain
from services.apiserver.authz.attributes import Attributes, UserInfo
from services.apiserver.authz.bootstrap import (
    default_cluster_role_bindings,
    default_cluster_roles,
    rule,
)
from services.apiserver.authz.escalation import (
    AtomicRule,
    EscalationAdmission,
    breakdown,
    compact_strings,
    covers,
    escalation_message,
    uncovered,
)
from services.apiserver.authz.rbac import CompiledRule, DictSource, RbacAuthorizer

GROUP = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", ("devs", "system:authenticated"))
MASTER = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))


def _owner(*rules: rbac.PolicyRule) -> list[CompiledRule]:
    return [CompiledRule.of(r) for r in rules]


# --- breakdown and covers -------------------------------------------------------------------------


def test_breakdown_splits_into_atomic_rules():
    atoms = breakdown(rule(["get", "list"], ["", "apps"], ["pods"], names=["a", "b"]))
    assert len(atoms) == 8
    assert AtomicRule("list", "apps", "pods", "b") in atoms
    assert breakdown(rule(["get"], urls=["/metrics", "/healthz"])) == [
        AtomicRule("get", url="/metrics"), AtomicRule("get", url="/healthz")]


@pytest.mark.parametrize("owner, requested, covered", [
    # exact and subsets
    (rule(["get", "list"], "", ["pods"]), rule(["get"], "", ["pods"]), True),
    (rule(["get"], "", ["pods"]), rule(["get", "list"], "", ["pods"]), False),
    (rule(["get"], "", ["pods"]), rule(["get"], "apps", ["pods"]), False),
    (rule(["get"], "", ["pods"]), rule(["get"], "", ["secrets"]), False),
    # wildcards in the owner cover anything
    (rule(["*"], "*", ["*"]), rule(["get", "escalate"], ["", "apps"], ["x", "y/z"]), True),
    (rule(["*"], "", ["pods"]), rule(["bind"], "", ["pods"]), True),
    # a "*" requested is covered only by a "*" held, not by every explicit value
    (rule(["get", "list", "watch", "create", "update", "delete"], "", ["pods"]),
     rule(["*"], "", ["pods"]), False),
    (rule(["get"], ["", "apps"], ["pods"]), rule(["get"], "*", ["pods"]), False),
    (rule(["get"], "", ["pods", "services"]), rule(["get"], "", ["*"]), False),
    # resource names
    (rule(["get"], "", ["pods"]), rule(["get"], "", ["pods"], names=["a"]), True),
    (rule(["get"], "", ["pods"], names=["a", "b"]), rule(["get"], "", ["pods"], names=["a"]),
     True),
    (rule(["get"], "", ["pods"], names=["a"]), rule(["get"], "", ["pods"], names=["a", "c"]),
     False),
    (rule(["get"], "", ["pods"], names=["a"]), rule(["get"], "", ["pods"]), False),
    # subresources
    (rule(["get"], "", ["pods"]), rule(["get"], "", ["pods/log"]), False),
    (rule(["get"], "", ["pods/log"]), rule(["get"], "", ["pods"]), False),
    (rule(["update"], "", ["*/status"]), rule(["update"], "", ["pods/status"]), True),
    (rule(["update"], "", ["pods/*"]), rule(["update"], "", ["pods/status"]), True),
    (rule(["update"], "", ["pods/*"]), rule(["update"], "", ["pods/*"]), True),
    (rule(["update"], "", ["pods/status"]), rule(["update"], "", ["pods/*"]), False),
    (rule(["update"], "", ["pods/status"]), rule(["update"], "", ["*/status"]), False),
    (rule(["update"], "", ["*/status"]), rule(["update"], "", ["*/status"]), True),
    (rule(["update"], "", ["*/*"]), rule(["update"], "", ["*/status"]), False),
    # non-resource URLs
    (rule(["get"], urls=["/metrics"]), rule(["get"], urls=["/metrics"]), True),
    (rule(["get"], urls=["/healthz/*"]), rule(["get"], urls=["/healthz/etcd"]), True),
    (rule(["get"], urls=["/healthz/*"]), rule(["get"], urls=["/healthz/*"]), True),
    (rule(["get"], urls=["/healthz/*"]), rule(["get"], urls=["*"]), False),
    (rule(["get"], urls=["/healthz/*"]), rule(["get"], urls=["/healthz"]), False),
    (rule(["get"], urls=["*"]), rule(["get"], urls=["/anything/at/all"]), True),
    (rule(["get"], urls=["/metrics"]), rule(["create"], urls=["/metrics"]), False),
    # resources never cover URLs, nor URLs resources
    (rule(["*"], "*", ["*"]), rule(["get"], urls=["/metrics"]), False),
    (rule(["*"], urls=["*"]), rule(["get"], "", ["pods"]), False),
])
def test_covers(owner, requested, covered):
    assert covers(_owner(owner), [requested]) is covered


def test_covers_needs_one_owner_rule_per_atomic_rule_but_may_use_several():
    owner = _owner(rule(["get"], "", ["pods"]), rule(["list"], "", ["pods"]))
    assert covers(owner, [rule(["get", "list"], "", ["pods"])])
    assert covers(owner, [])
    assert uncovered(owner, [rule(["get", "delete"], "", ["pods", "secrets"])]) == [
        AtomicRule("delete", "", "pods"), AtomicRule("get", "", "secrets"),
        AtomicRule("delete", "", "secrets")]


def test_uncovered_lists_each_atomic_rule_once():
    missing = uncovered([], [rule(["get"], "", ["pods"]), rule(["get"], "", ["pods"])])
    assert missing == [AtomicRule("get", "", "pods")]


def test_the_message_is_kubernetes_compact_form():
    missing = uncovered([], [rule(["get", "list"], "", ["secrets"]),
                             rule(["get"], urls=["/metrics"]),
                             rule(["update"], "apps", ["deployments"], names=["web"])])
    assert compact_strings(missing) == [
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}',
        '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], '
        'Verbs:["update"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]
    message = escalation_message(ALICE, missing)
    assert message.startswith('user "alice" (groups=["devs" "system:authenticated"]) is '
                              "attempting to grant RBAC permissions not currently held: "
                              '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}')
    assert "\n" not in message


def test_the_message_names_a_few_then_dots():
    missing = uncovered([], [rule(["get"], "", [f"r{i}" for i in range(20)])])
    message = escalation_message(ALICE, missing)
    assert message.endswith(", ...")
    assert message.count("{APIGroups") == 5


# --- admission ------------------------------------------------------------------------------------


def _subject(name: str) -> rbac.Subject:
    return rbac.Subject(kind="User", name=name, api_group=GROUP)


def _role(name: str, namespace: str, *rules: rbac.PolicyRule) -> rbac.Role:
    role = rbac.Role(rules=list(rules))
    role.metadata.name, role.metadata.namespace = name, namespace
    return role


def _cluster_role(name: str, *rules: rbac.PolicyRule) -> rbac.ClusterRole:
    role = rbac.ClusterRole(rules=list(rules))
    role.metadata.name = name
    return role


def _binding(name: str, namespace: str, kind: str, role: str, *users: str) -> rbac.RoleBinding:
    b = rbac.RoleBinding(subjects=[_subject(u) for u in users],
                         role_ref=rbac.RoleRef(kind=kind, name=role, api_group=GROUP))
    b.metadata.name, b.metadata.namespace = name, namespace
    return b


def _cluster_binding(name: str, role: str, *users: str) -> rbac.ClusterRoleBinding:
    b = rbac.ClusterRoleBinding(subjects=[_subject(u) for u in users],
                                role_ref=rbac.RoleRef(kind="ClusterRole", name=role,
                                                      api_group=GROUP))
    b.metadata.name = name
    return b


def _admission(*objects, modes: str = "RBAC") -> EscalationAdmission:
    source = DictSource(
        roles=[o for o in objects if isinstance(o, rbac.Role)],
        cluster_roles=[*default_cluster_roles(),
                       *(o for o in objects if isinstance(o, rbac.ClusterRole))],
        role_bindings=[o for o in objects if isinstance(o, rbac.RoleBinding)],
        cluster_role_bindings=[*default_cluster_role_bindings(),
                               *(o for o in objects if isinstance(o, rbac.ClusterRoleBinding))])
    authorizer = RbacAuthorizer(source)
    authorizers = chain.from_modes(modes, rbac=authorizer)
    return EscalationAdmission(
        source, lambda user, ns: [r for _, r in authorizer.rules_for(user, ns)],
        authorizers.authorize)


def _write(admission: EscalationAdmission, obj, user: UserInfo = ALICE, old=None,
           verb: str = "") -> str | None:
    resource = {rbac.Role: "roles", rbac.ClusterRole: "clusterroles",
                rbac.RoleBinding: "rolebindings",
                rbac.ClusterRoleBinding: "clusterrolebindings"}[type(obj)]
    attrs = Attributes(user=user, verb=verb or ("update" if old is not None else "create"),
                       group=GROUP, resource=resource, namespace=obj.metadata.namespace,
                       name=obj.metadata.name)
    return admission.admit(attrs, obj, old)


ADMIN_IN_A = _binding("admins", "a", "ClusterRole", "admin", "alice")
POD_RULES = rule(["get", "list", "create", "delete"], "", ["pods"])


def test_a_namespace_admin_may_create_a_role_with_what_it_holds():
    admission = _admission(ADMIN_IN_A)
    assert _write(admission, _role("pods", "a", POD_RULES)) is None
    assert _write(admission, _role("pods", "a", rule(["get"], "", ["pods/log"],
                                                     names=["web"]))) is None


def test_a_namespace_admin_may_not_grant_what_it_lacks():
    admission = _admission(ADMIN_IN_A)
    refusal = _write(admission, _role("quota", "a", POD_RULES,
                                      rule(["update"], "", ["resourcequotas"])))
    assert refusal == (
        'user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC '
        'permissions not currently held: {APIGroups:[""], Resources:["resourcequotas"], '
        'Verbs:["update"]}')
    assert _write(admission, _role("n", "a", rule(["get"], "", ["nodes"]))) is not None
    assert _write(admission, _role("all", "a", rule(["*"], "", ["pods"]))) is not None
    # Its rights stop at its namespace.
    assert _write(admission, _role("pods", "b", POD_RULES)) is not None
    assert _write(admission, _cluster_role("pods", POD_RULES)) is not None


def test_bindings_need_the_referenced_role_held():
    admission = _admission(ADMIN_IN_A)
    assert _write(admission, _binding("v", "a", "ClusterRole", "view", "bob")) is None
    assert _write(admission, _binding("e", "a", "ClusterRole", "edit", "bob")) is None
    refusal = _write(admission, _binding("ca", "a", "ClusterRole", "cluster-admin", "bob"))
    assert refusal is not None and "not currently held" in refusal
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in refusal
    # Not in another namespace, nor cluster-wide.
    assert _write(admission, _binding("v", "b", "ClusterRole", "view", "bob")) is not None
    assert _write(admission, _cluster_binding("v", "view", "bob")) is not None


def test_a_binding_to_a_role_of_the_namespace_is_checked_against_that_role():
    admission = _admission(ADMIN_IN_A, _role("pods", "a", POD_RULES),
                           _role("quota", "a", rule(["update"], "", ["resourcequotas"])))
    assert _write(admission, _binding("p", "a", "Role", "pods", "bob")) is None
    assert _write(admission, _binding("q", "a", "Role", "quota", "bob")) is not None


def test_a_binding_to_a_missing_role_is_refused():
    admission = _admission(ADMIN_IN_A)
    assert (_write(admission, _binding("g", "a", "Role", "ghost", "bob"))
            == 'roles.rbac.authorization.k8s.io "ghost" not found')
    assert (_write(admission, _binding("g", "a", "ClusterRole", "ghost", "bob"))
            == 'clusterroles.rbac.authorization.k8s.io "ghost" not found')


def test_bind_permission_allows_binding_without_holding_the_role():
    binder = _cluster_role("edit-binder", rule(["bind"], GROUP, ["clusterroles"], names=["edit"]))
    admission = _admission(binder, _binding("b", "a", "ClusterRole", "edit-binder", "alice"))
    # Granted in namespace a by a RoleBinding: Kubernetes' delegation of bind.
    assert _write(admission, _binding("e", "a", "ClusterRole", "edit", "bob")) is None
    # Only edit, and only in a.
    assert _write(admission, _binding("v", "a", "ClusterRole", "view", "bob")) is not None
    assert _write(admission, _binding("e", "b", "ClusterRole", "edit", "bob")) is not None
    assert _write(admission, _cluster_binding("e", "edit", "bob")) is not None


def test_cluster_wide_bind_permission_allows_cluster_role_bindings():
    binder = _cluster_role("binder", rule(["bind"], GROUP, ["clusterroles"]))
    admission = _admission(binder, _cluster_binding("b", "binder", "alice"))
    assert _write(admission, _cluster_binding("ca", "cluster-admin", "alice")) is None
    assert _write(admission, _binding("ca", "x", "ClusterRole", "cluster-admin", "bob")) is None
    # bind may be granted even for a role that does not exist yet.
    assert _write(admission, _cluster_binding("g", "ghost", "bob")) is None
    # bind on clusterroles is not bind on roles.
    assert _write(admission, _binding("r", "x", "Role", "pods", "bob")) is not None


def test_escalate_permission_allows_any_role():
    escalator = _cluster_role("escalator", rule(["escalate"], GROUP, ["roles"]))
    admission = _admission(escalator, _binding("e", "a", "ClusterRole", "escalator", "alice"))
    assert _write(admission, _role("all", "a", rule(["*"], "*", ["*"]))) is None
    assert _write(admission, _role("all", "b", rule(["*"], "*", ["*"]))) is not None
    assert _write(admission, _cluster_role("all", rule(["*"], "*", ["*"]))) is not None
    # escalate does not let one bind.
    assert _write(admission, _binding("ca", "a", "ClusterRole", "cluster-admin", "bob")) \
        is not None


def test_masters_and_always_allow_are_exempt():
    admission = _admission()
    assert _write(admission, _cluster_role("all", rule(["*"], "*", ["*"])), MASTER) is None
    assert _write(admission, _cluster_binding("g", "ghost", "x"), MASTER) is None
    assert _write(_admission(modes="AlwaysAllow"),
                  _cluster_binding("ca", "cluster-admin", "alice")) is None


def test_a_compromised_controller_manager_cannot_grant_itself_more():
    admission = _admission()
    cm = UserInfo("system:kube-controller-manager", ("system:authenticated",))
    old = _cluster_binding("cluster-admin", "cluster-admin")
    old.subjects.append(rbac.Subject(kind="Group", name="system:masters", api_group=GROUP))
    new = rbac.ClusterRoleBinding()
    new.CopyFrom(old)
    new.subjects.append(_subject("system:kube-controller-manager"))
    assert _write(admission, new, cm, old=old) is not None
    widened = _cluster_role("system:kube-controller-manager", rule(["*"], "*", ["*"]))
    stored = next(r for r in default_cluster_roles()
                  if r.metadata.name == "system:kube-controller-manager")
    assert _write(admission, widened, cm, old=stored) is not None


def test_updates_that_grant_nothing_new_are_admitted():
    """Finalizers, owner references, labels, fewer rules or subjects: the
    garbage collector and namespace controller edit these."""
    admission = _admission()
    cm = UserInfo("system:kube-controller-manager", ("system:authenticated",))
    old = _cluster_binding("cluster-admin", "cluster-admin", "root", "toor")
    new = rbac.ClusterRoleBinding()
    new.CopyFrom(old)
    new.metadata.finalizers.append("example.com/x")
    del new.subjects[1]
    assert _write(admission, new, cm, old=old) is None
    old_role = _cluster_role("r", rule(["*"], "*", ["*"]))
    narrowed = _cluster_role("r", rule(["get"], "", ["pods"]))
    narrowed.metadata.labels["x"] = "y"
    assert _write(admission, narrowed, cm, old=old_role) is None
    # A changed roleRef is judged afresh (validation refuses it anyway).
    moved = rbac.ClusterRoleBinding()
    moved.CopyFrom(old)
    moved.role_ref.name = "view"
    assert _write(admission, moved, cm, old=old) is not None


def test_other_requests_pass_untouched():
    admission = _admission()
    role = _role("all", "a", rule(["*"], "*", ["*"]))
    assert _write(admission, role, verb="delete") is None
    pods = Attributes(user=ALICE, verb="create", resource="pods", namespace="a", name="p")
    assert admission.admit(pods, role, None) is None
