"""The default RBAC policy the API server creates at start, as
kube-apiserver's bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).

User-facing roles: cluster-admin, admin, edit, view, system:monitoring. And
one least-privilege role per component, each granting exactly the calls that
component's code makes (read from services/<component>; keep in step when a
component starts using something new):

- system:kube-scheduler: pods and nodes through informers, pods/binding,
  pods/status (the PodScheduled condition), events (written and count-bumped),
  its leader-election Lease.
- system:kube-controller-manager: the union of one rule list per controller
  in ``CONTROLLER_RULES`` (endpoints, nodeipam, nodelifecycle,
  garbagecollector, namespace, replicaset, deployment) and its Lease.
- system:node-proxier (bound to user system:kube-proxy, as Kubernetes names
  it): services and endpoints through informers.

Each of the three may also create subjectaccessreviews, as Kubernetes'
system:auth-delegator grants: they authorize scrapes of their /metrics by
asking the API server (services/machinery/delegated.py).

Kubelets need no role: the Node authorizer covers them, subjectaccessreviews
included (routes.py's node agent runs as the node too).

Every object carries kubernetes.io/bootstrapping=rbac-defaults and
rbac.authorization.kubernetes.io/autoupdate=true; the pure ``reconcile_*``
functions say what to write so an existing object is brought up to date
without removing anything an administrator added, and never touch one
annotated autoupdate=false (Kubernetes' rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.api import kinds
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac

API_VERSION = "rbac.authorization.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
BOOTSTRAPPING_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAPPING_VALUE = "rbac-defaults"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"

CORE, APPS, COORDINATION = "", "apps", "coordination.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
READ = ("get", "list", "watch")
WATCH = ("list", "watch")  # what an informer does
WRITE = ("create", "update", "delete")

CLUSTER_ADMIN = "cluster-admin"
ADMIN = "admin"
EDIT = "edit"
VIEW = "view"
MONITORING = "system:monitoring"
SCHEDULER = "system:kube-scheduler"
CONTROLLER_MANAGER = "system:kube-controller-manager"
PROXIER = "system:node-proxier"

MASTERS_GROUP = "system:masters"
MONITORING_GROUP = "system:monitoring"
SCHEDULER_USER = "system:kube-scheduler"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
PROXY_USER = "system:kube-proxy"

SCHEDULER_LEASE = "kube-scheduler"
CONTROLLER_MANAGER_LEASE = "kube-controller-manager"


def rule(verbs: Sequence[str], group: str | Sequence[str] = (),
         resources: Sequence[str] = (), *, names: Sequence[str] = (),
         urls: Sequence[str] = ()) -> rbac.PolicyRule:
    """One PolicyRule; ``group`` is one API group or several."""
    groups = [group] if isinstance(group, str) else list(group)
    return rbac.PolicyRule(verbs=list(verbs), api_groups=groups, resources=list(resources),
                           resource_names=list(names), non_resource_urls=list(urls))


def _per_group(verbs: Sequence[str], *, namespaced_only: bool) -> list[rbac.PolicyRule]:
    """``verbs`` on every kind of the registry, one rule per API group."""
    by_group: dict[str, list[str]] = {}
    for kind in kinds.KINDS:
        if kind.namespaced or not namespaced_only:
            by_group.setdefault(kind.group, []).append(kind.resource)
    return [rule(verbs, group, resources) for group, resources in by_group.items()]


def _leader_election(lease: str) -> list[rbac.PolicyRule]:
    """A leader's Lease: created once (the name is not known at
    authorization time), then read and renewed by name only."""
    return [rule(["create"], COORDINATION, ["leases"]),
            rule(["get", "update"], COORDINATION, ["leases"], names=[lease])]


def _auth_delegator() -> list[rbac.PolicyRule]:
    """Asking the API server whether someone may do something (Kubernetes'
    system:auth-delegator, less the tokenreviews this API has no use for):
    what a component needs to authorize requests to its own /metrics."""
    return [rule(["create"], AUTHORIZATION, ["subjectaccessreviews"])]


# --- user-facing roles -----------------------------------------------------------------------

# What view reads (namespaced kinds, except the RBAC ones, and namespaces).
_VIEW_CORE = ["pods", "pods/status", "pods/log", "services", "services/status", "endpoints",
              "events", "resourcequotas", "resourcequotas/status", "namespaces",
              "namespaces/status"]
_VIEW_APPS = ["deployments", "deployments/status", "replicasets", "replicasets/status"]


def _view_rules() -> list[rbac.PolicyRule]:
    return [rule(READ, CORE, _VIEW_CORE), rule(READ, APPS, _VIEW_APPS)]


def _edit_rules() -> list[rbac.PolicyRule]:
    """view, plus writing workloads and exec. Events, namespaces and
    resource quotas stay read-only (Kubernetes' edit: a namespace's users
    must not raise their own quota)."""
    return [*_view_rules(),
            rule(WRITE, CORE, ["pods", "services", "endpoints"]),
            rule(["create", "get"], CORE, ["pods/exec"]),
            rule(WRITE, APPS, ["deployments", "replicasets"])]


def _admin_rules() -> list[rbac.PolicyRule]:
    """edit, plus the namespace's own Roles and RoleBindings."""
    return [*_edit_rules(), rule([*READ, *WRITE], RBAC_GROUP, ["roles", "rolebindings"])]


# --- component roles ---------------------------------------------------------------------------


def _scheduler_rules() -> list[rbac.PolicyRule]:
    return [
        rule(WATCH, CORE, ["nodes"]),
        rule(READ, CORE, ["pods"]),  # informer, and a fresh get on conflict
        rule(["create"], CORE, ["pods/binding"]),
        rule(["update"], CORE, ["pods/status"]),  # PodScheduled=False
        rule(["create", "update"], CORE, ["events"]),  # update: the count of a repeat
        *_leader_election(SCHEDULER_LEASE),
        *_auth_delegator(),
    ]


def controller_rules() -> dict[str, list[rbac.PolicyRule]]:
    """What each controller of the controller manager calls, by its
    --controllers name."""
    return {
        "endpoints": [
            rule(WATCH, CORE, ["services", "pods"]),
            rule([*WATCH, *WRITE], CORE, ["endpoints"]),
        ],
        "nodeipam": [
            rule([*READ, "update"], CORE, ["nodes"]),  # spec.podCIDR
            rule(["create"], CORE, ["events"]),  # CIDRNotAvailable
        ],
        "nodelifecycle": [
            rule([*WATCH, "update"], CORE, ["nodes"]),  # taints
            rule(["update"], CORE, ["nodes/status"]),  # Ready=Unknown
            rule([*WATCH, "delete"], CORE, ["pods"]),  # eviction, pod GC
            rule(["update"], CORE, ["pods/status"]),  # Ready=False on a lost node
            rule(WATCH, COORDINATION, ["leases"]),  # node heartbeats
        ],
        # Owner references may point at any kind, and dependents of any
        # kind are deleted or have finalizers removed.
        "garbagecollector": _per_group(["get", "list", "watch", "update", "delete"],
                                       namespaced_only=False),
        "namespace": [
            rule([*READ, "update"], CORE, ["namespaces"]),  # the finalizer
            rule(["update"], CORE, ["namespaces/status"]),  # Terminating
            *_per_group(["list", "delete"], namespaced_only=True),  # the content
        ],
        "replicaset": [
            rule(READ, APPS, ["replicasets"]),
            rule(["update"], APPS, ["replicasets/status"]),
            rule([*WATCH, *WRITE], CORE, ["pods"]),  # update: adopt and release
            rule(["create"], CORE, ["events"]),
        ],
        "deployment": [
            rule([*READ, "update"], APPS, ["deployments"]),  # revision, rollback
            rule(["update"], APPS, ["deployments/status"]),
            rule([*READ, *WRITE], APPS, ["replicasets"]),
            rule(WATCH, CORE, ["pods"]),
            rule(["create"], CORE, ["events"]),
        ],
    }


def _controller_manager_rules() -> list[rbac.PolicyRule]:
    rules: list[rbac.PolicyRule] = []
    for per_controller in controller_rules().values():
        for r in per_controller:
            if r not in rules:
                rules.append(r)
    return [*rules, *_leader_election(CONTROLLER_MANAGER_LEASE), *_auth_delegator()]


def _proxier_rules() -> list[rbac.PolicyRule]:
    return [rule(WATCH, CORE, ["services", "endpoints"]), *_auth_delegator()]


# --- the objects -------------------------------------------------------------------------------


def _meta(obj: rbac.ClusterRole | rbac.ClusterRoleBinding, name: str) -> None:
    obj.api_version = API_VERSION
    obj.metadata.name = name
    obj.metadata.labels[BOOTSTRAPPING_LABEL] = BOOTSTRAPPING_VALUE
    obj.metadata.annotations[AUTOUPDATE_ANNOTATION] = "true"


def cluster_role(name: str, rules: Iterable[rbac.PolicyRule]) -> rbac.ClusterRole:
    role = rbac.ClusterRole(kind="ClusterRole", rules=list(rules))
    _meta(role, name)
    return role


def cluster_role_binding(name: str, role: str, *, users: Iterable[str] = (),
                         groups: Iterable[str] = ()) -> rbac.ClusterRoleBinding:
    binding = rbac.ClusterRoleBinding(
        kind="ClusterRoleBinding",
        role_ref=rbac.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=role),
        subjects=[*(rbac.Subject(kind="User", name=u, api_group=RBAC_GROUP) for u in users),
                  *(rbac.Subject(kind="Group", name=g, api_group=RBAC_GROUP) for g in groups)])
    _meta(binding, name)
    return binding


def default_cluster_roles() -> list[rbac.ClusterRole]:
    return [
        cluster_role(CLUSTER_ADMIN, [rule(["*"], "*", ["*"]), rule(["*"], urls=["*"])]),
        cluster_role(ADMIN, _admin_rules()),
        cluster_role(EDIT, _edit_rules()),
        cluster_role(VIEW, _view_rules()),
        cluster_role(MONITORING, [rule(["get"], urls=[
            "/metrics", "/metrics/slis", "/healthz", "/healthz/*", "/livez", "/livez/*",
            "/readyz", "/readyz/*"])]),
        cluster_role(SCHEDULER, _scheduler_rules()),
        cluster_role(CONTROLLER_MANAGER, _controller_manager_rules()),
        cluster_role(PROXIER, _proxier_rules()),
    ]


def default_cluster_role_bindings() -> list[rbac.ClusterRoleBinding]:
    return [
        cluster_role_binding(CLUSTER_ADMIN, CLUSTER_ADMIN, groups=[MASTERS_GROUP]),
        cluster_role_binding(MONITORING, MONITORING, groups=[MONITORING_GROUP]),
        cluster_role_binding(SCHEDULER, SCHEDULER, users=[SCHEDULER_USER]),
        cluster_role_binding(CONTROLLER_MANAGER, CONTROLLER_MANAGER,
                             users=[CONTROLLER_MANAGER_USER]),
        cluster_role_binding(PROXIER, PROXIER, users=[PROXY_USER]),
    ]


# --- keeping them current ----------------------------------------------------------------------


def _protected(obj: rbac.ClusterRole | rbac.ClusterRoleBinding) -> bool:
    return obj.metadata.annotations.get(AUTOUPDATE_ANNOTATION) == "false"


def _add_meta(updated: rbac.ClusterRole | rbac.ClusterRoleBinding,
              wanted: rbac.ClusterRole | rbac.ClusterRoleBinding) -> None:
    for key, value in wanted.metadata.labels.items():
        updated.metadata.labels.setdefault(key, value)
    for key, value in wanted.metadata.annotations.items():
        updated.metadata.annotations.setdefault(key, value)


def reconcile_cluster_role(existing: rbac.ClusterRole,
                           wanted: rbac.ClusterRole) -> rbac.ClusterRole | None:
    """The update that gives ``existing`` every rule of ``wanted`` (extra
    rules kept), or None when it has them or is annotated autoupdate=false."""
    if _protected(existing):
        return None
    updated = rbac.ClusterRole()
    updated.CopyFrom(existing)
    for r in wanted.rules:
        if r not in updated.rules:
            updated.rules.append(r)
    _add_meta(updated, wanted)
    return None if updated == existing else updated


def reconcile_cluster_role_binding(existing: rbac.ClusterRoleBinding,
                                   wanted: rbac.ClusterRoleBinding
                                   ) -> rbac.ClusterRoleBinding | None:
    """The binding to write so ``existing`` has every subject of ``wanted``
    (extra subjects kept), or None. If its roleRef differs, the result has
    the wanted roleRef and the caller must delete and re-create it
    (:func:`needs_recreate`): a roleRef cannot be changed in place."""
    if _protected(existing):
        return None
    updated = rbac.ClusterRoleBinding()
    updated.CopyFrom(existing)
    updated.role_ref.CopyFrom(wanted.role_ref)
    for subject in wanted.subjects:
        if subject not in updated.subjects:
            updated.subjects.append(subject)
    _add_meta(updated, wanted)
    return None if updated == existing else updated


def needs_recreate(existing: rbac.ClusterRoleBinding, updated: rbac.ClusterRoleBinding) -> bool:
    return existing.role_ref != updated.role_ref


__all__ = [
    "ADMIN", "AUTOUPDATE_ANNOTATION", "BOOTSTRAPPING_LABEL", "CLUSTER_ADMIN",
    "CONTROLLER_MANAGER", "EDIT", "MONITORING", "PROXIER", "SCHEDULER", "VIEW",
    "cluster_role", "cluster_role_binding", "controller_rules", "default_cluster_role_bindings",
    "default_cluster_roles", "needs_recreate", "reconcile_cluster_role",
    "reconcile_cluster_role_binding", "rule",
]
