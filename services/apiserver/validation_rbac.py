"""Rules for rbac.authorization.k8s.io: Role, ClusterRole, RoleBinding and
ClusterRoleBinding (Kubernetes' pkg/apis/rbac/validation).

RBAC names are path segments, not DNS names, so the system roles can be
called ``system:node`` or ``system:kube-scheduler`` as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from services.apiserver.validation_common import (
    Errors,
    check,
    dns1123_subdomain_errors,
    invalid,
    required,
    unsupported,
)

GROUP = "rbac.authorization.k8s.io"

ENFORCED_VERBS = ("get", "list", "watch", "create", "update", "delete")
"""The verbs Kybernetes' authorizers check: every API request is one of these."""

VERBS = (*ENFORCED_VERBS, "*", "patch", "deletecollection", "impersonate", "bind", "escalate",
         "use", "proxy", "approve", "sign")
"""The verbs a rule may name. Requests are made with ENFORCED_VERBS only;
"bind" and "escalate" on roles/clusterroles are honoured by the
escalation check (authz/escalation.py), as in Kubernetes. The others
(patch, deletecollection, impersonate, ...) are accepted so that roles
copied from a Kubernetes cluster load unchanged, and grant nothing here."""

SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def path_segment_errors(name: str) -> list[str]:
    """Kubernetes' ValidatePathSegmentName: the RBAC name rule."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


# --- roles --------------------------------------------------------------------------------


def validate_role(role: Any, old: Any | None) -> Errors:
    return _rules(role.rules, namespaced=True)


def validate_cluster_role(role: Any, old: Any | None) -> Errors:
    return _rules(role.rules, namespaced=False)


def _rules(rules: Any, *, namespaced: bool) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(rules):
        errs += policy_rule(rule, namespaced=namespaced, path=f"rules[{i}]")
    return errs


def policy_rule(rule: Any, *, namespaced: bool, path: str) -> Errors:
    """ValidatePolicyRule: verbs always; then either non-resource URLs
    (ClusterRoles only, alone) or API groups and resources."""
    errs: Errors = []
    if not rule.verbs:
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    for j, verb in enumerate(rule.verbs):
        if verb not in VERBS:
            errs.append(unsupported(f"{path}.verbs[{j}]", verb, VERBS))
    if rule.non_resource_urls:
        urls = list(rule.non_resource_urls)
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.api_groups or rule.resources or rule.resource_names:
            errs.append(invalid(f"{path}.nonResourceURLs", urls, "rules cannot apply to both "
                                "regular resources and non-resource URLs"))
        return errs
    if not rule.api_groups:
        errs.append(required(f"{path}.apiGroups",
                             "resource rules must supply at least one api group"))
    if not rule.resources:
        errs.append(required(f"{path}.resources",
                             "resource rules must supply at least one resource"))
    for j, resource in enumerate(rule.resources):
        if not resource:
            errs.append(required(f"{path}.resources[{j}]"))
    return errs


# --- bindings -----------------------------------------------------------------------------


def validate_role_binding(binding: Any, old: Any | None) -> Errors:
    return _binding(binding, old, kinds=("Role", "ClusterRole"))


def validate_cluster_role_binding(binding: Any, old: Any | None) -> Errors:
    return _binding(binding, old, kinds=("ClusterRole",))


def _binding(binding: Any, old: Any | None, *, kinds: tuple[str, ...]) -> Errors:
    ref = binding.role_ref
    errs: Errors = []
    if ref.api_group != GROUP:
        errs.append(unsupported("roleRef.apiGroup", ref.api_group, (GROUP,)))
    if ref.kind not in kinds:
        errs.append(unsupported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        errs.append(required("roleRef.name"))
    else:
        errs += check("roleRef.name", ref.name, path_segment_errors(ref.name))
    for i, subject in enumerate(binding.subjects):
        errs += _subject(subject, f"subjects[{i}]")
    if old is not None and binding.role_ref != old.role_ref:
        errs.append(invalid("roleRef", {"apiGroup": ref.api_group, "kind": ref.kind,
                                        "name": ref.name}, "cannot change roleRef"))
    return errs


def _subject(subject: Any, path: str) -> Errors:
    """ValidateRoleBindingSubject. A ServiceAccount needs a namespace (a
    RoleBinding's defaults to its own, see defaulting)."""
    errs: Errors = []
    if not subject.name:
        errs.append(required(f"{path}.name"))
    if subject.kind == "ServiceAccount":
        if subject.name:
            errs += check(f"{path}.name", subject.name, dns1123_subdomain_errors(subject.name))
        if subject.api_group:
            errs.append(unsupported(f"{path}.apiGroup", subject.api_group, ("",)))
        if not subject.namespace:
            errs.append(required(f"{path}.namespace"))
    elif subject.kind in ("User", "Group"):
        if subject.api_group != GROUP:
            errs.append(unsupported(f"{path}.apiGroup", subject.api_group, (GROUP,)))
    else:
        errs.append(unsupported(f"{path}.kind", subject.kind, SUBJECT_KINDS))
    return errs
