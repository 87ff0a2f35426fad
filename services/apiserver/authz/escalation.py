"""RBAC privilege-escalation prevention: whoever may write Roles or
bindings can still grant only what they already hold.

Kubernetes' rules (pkg/registry/rbac/*/policybased, rbac/validation):

- A Role in namespace N, or a ClusterRole, may be created or updated if the
  requesting user already holds every permission it lists (in N; cluster-wide
  for a ClusterRole), or may ``escalate`` roles (clusterroles).
- A RoleBinding in N, or a ClusterRoleBinding, may be created or updated if
  the user already holds every permission of the role it references (in N;
  cluster-wide), or may ``bind`` that role (verb "bind" on roles or
  clusterroles, optionally only for its name). A binding to a role that does
  not exist is refused unless the user may bind it.
- Members of system:masters are exempt.

"Holds" is Kubernetes' ``Covers``: the new rules are broken down into atomic
rules (one verb, one API group, one resource, one resource name or none;
or one verb and one non-resource URL) and each must be allowed by a single
rule the user has. A "*" in a new rule is covered only by a "*" in the
user's rule, never by the union of the explicit values it stands for today.

Beyond Kubernetes (which exempts only updates that touch nothing but
garbage-collection fields): an update that grants nothing the stored object
did not already grant — a Role whose new rules its old rules cover, a
binding whose subjects were all there before — is admitted, so that the
garbage collector and namespace controller can edit finalizers and owner
references, and anyone with update rights can narrow a role, without holding
its permissions.

The core (:func:`breakdown`, :func:`uncovered`, :func:`escalation_message`)
is pure; :class:`EscalationAdmission` is the admission check over an
:class:`~services.apiserver.authz.rbac.RbacSource` and the user's compiled
rules (the very ones the RBAC authorizer decides with).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from services.apiserver.authz.attributes import MASTERS, Attributes, Decision, UserInfo
from services.apiserver.authz.rbac import ALL, CompiledRule, RbacSource, url_matches

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_RESOURCES = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_RESOURCES = {"rolebindings": "RoleBinding", "clusterrolebindings": "ClusterRoleBinding"}
ROLE_RESOURCE_OF_KIND = {kind: resource for resource, kind in ROLE_RESOURCES.items()}
MAX_LISTED = 5
"""How many missing (compacted) rules a refusal names before "..."."""

RulesFor = Callable[[UserInfo, str], Sequence[CompiledRule]]
Authorize = Callable[[Attributes], Decision]


# --- Covers -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AtomicRule:
    """One permission: a verb on one resource (of one group, maybe one
    object by name), or a verb on one non-resource URL."""

    verb: str
    group: str = ""
    resource: str = ""
    name: str = ""
    url: str = ""


def breakdown(rule: Any) -> list[AtomicRule]:
    """Kubernetes' BreakdownRule: a PolicyRule as its atomic rules."""
    names = list(rule.resource_names) or [""]
    atoms = [AtomicRule(verb, group, resource, name)
             for group in rule.api_groups for resource in rule.resources
             for verb in rule.verbs for name in names]
    atoms += [AtomicRule(verb, url=url) for url in rule.non_resource_urls for verb in rule.verbs]
    return atoms


def resource_covers(owned: frozenset[str], resource: str) -> bool:
    """Kubernetes' resourceCoversAll for one resource: "*", the exact
    resource, or for "pods/status" also "*/status" (and, as the authorizer
    here allows it, "pods/*")."""
    if ALL in owned or resource in owned:
        return True
    parent, slash, sub = resource.partition("/")
    if not slash:
        return False
    return ((sub != ALL and f"*/{sub}" in owned)
            or (parent != ALL and f"{parent}/*" in owned))


def rule_covers(owner: CompiledRule, atom: AtomicRule) -> bool:
    """Kubernetes' ruleCovers: does ``owner`` allow everything ``atom`` does?"""
    if ALL not in owner.verbs and atom.verb not in owner.verbs:
        return False
    if atom.url:
        # A rule naming objects covers no URL; groups and resources do not matter.
        return not owner.names and url_matches(owner.urls, atom.url)
    return ((ALL in owner.groups or atom.group in owner.groups)
            and resource_covers(owner.resources, atom.resource)
            # A rule limited to names covers only those names, never "any object".
            and (not owner.names or (bool(atom.name) and atom.name in owner.names)))


def uncovered(owner_rules: Sequence[CompiledRule], rules: Iterable[Any]) -> list[AtomicRule]:
    """The atomic rules of ``rules`` (PolicyRules) that no owner rule
    covers, each once, in order: empty when the owner holds them all."""
    atoms = dict.fromkeys(atom for rule in rules for atom in breakdown(rule))
    return [atom for atom in atoms if not any(rule_covers(o, atom) for o in owner_rules)]


def covers(owner_rules: Sequence[CompiledRule], rules: Iterable[Any]) -> bool:
    return not uncovered(owner_rules, rules)


# --- messages -----------------------------------------------------------------------------------


def _go_quoted(values: Iterable[str]) -> str:
    """A string list as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def compact_strings(missing: Iterable[AtomicRule]) -> list[str]:
    """Kubernetes' CompactRules + CompactString: atomic rules differing only
    in their verb merged into one, each as {APIGroups:[""], Resources:[...],
    Verbs:[...]}; sorted, as Kubernetes lists them."""
    verbs: dict[tuple[str, str, str, str], list[str]] = {}
    for atom in missing:
        merged = verbs.setdefault((atom.group, atom.resource, atom.name, atom.url), [])
        if atom.verb not in merged:
            merged.append(atom.verb)
    out = []
    for (group, resource, name, url), vs in verbs.items():
        parts = ([f"APIGroups:{_go_quoted([group])}", f"Resources:{_go_quoted([resource])}"]
                 if not url else [f"NonResourceURLs:{_go_quoted([url])}"])
        if name:
            parts.append(f"ResourceNames:{_go_quoted([name])}")
        parts.append(f"Verbs:{_go_quoted(vs)}")
        out.append("{" + ", ".join(parts) + "}")
    return sorted(out)


def escalation_message(user: UserInfo, missing: Sequence[AtomicRule]) -> str:
    """Kubernetes' refusal, on one line, naming the first few missing rules."""
    described = compact_strings(missing)
    listed = ", ".join(described[:MAX_LISTED])
    if len(described) > MAX_LISTED:
        listed += ", ..."
    return (f"user {json.dumps(user.name, ensure_ascii=False)} "
            f"(groups={_go_quoted(user.groups)}) is attempting to grant RBAC permissions "
            f"not currently held: {listed}")


# --- admission ----------------------------------------------------------------------------------


def role_ref_rules(source: RbacSource, kind: str, namespace: str, name: str) -> list[Any] | None:
    """The rules of the role a binding in ``namespace`` references, or None
    if it does not exist (or the kind is not a role kind)."""
    if kind == "Role":
        role = source.role(namespace, name) if namespace else None
    elif kind == "ClusterRole":
        role = source.cluster_role(name)
    else:
        return None
    return None if role is None else list(role.rules)


class EscalationAdmission:
    """``admit(attrs, obj, old) -> refusal | None`` for writes of the four
    RBAC kinds; every other request passes untouched.

    ``rules_for(user, namespace)``: the user's RBAC rules there (cluster-wide
    ones included; namespace "" for cluster-wide only). ``authorize``: the
    API server's authorizer, asked whether the user may ``escalate`` or
    ``bind``.
    """

    def __init__(self, source: RbacSource, rules_for: RulesFor, authorize: Authorize):
        self.source = source
        self.rules_for = rules_for
        self.authorize = authorize

    def admit(self, attrs: Attributes, obj: Any, old: Any) -> str | None:
        if (attrs.group != RBAC_GROUP or attrs.verb not in ("create", "update")
                or attrs.subresource or obj is None or attrs.path):
            return None
        if MASTERS in attrs.user.groups:
            return None
        if attrs.resource in ROLE_RESOURCES:
            return self._admit_role(attrs, obj, old)
        if attrs.resource in BINDING_RESOURCES:
            return self._admit_binding(attrs, obj, old)
        return None

    __call__ = admit

    def _may(self, attrs: Attributes) -> bool:
        """Kubernetes asks its authorizer. The RBAC authorizer here never
        lets a RoleBinding grant anything on a cluster-scoped resource, but
        Kubernetes lets one grant ``bind`` on ClusterRoles in its namespace
        (to delegate binding them there), so the user's rules in the
        namespace are consulted too."""
        if self.authorize(attrs).allowed:
            return True
        return any(rule.allows(attrs) for rule in self.rules_for(attrs.user, attrs.namespace))

    def _scope(self, attrs: Attributes) -> str:
        """Where the permissions must be held: the namespace of a Role or
        RoleBinding, cluster-wide for the cluster kinds."""
        return attrs.namespace if attrs.resource in ("roles", "rolebindings") else ""

    def _admit_role(self, attrs: Attributes, obj: Any, old: Any) -> str | None:
        if old is not None and covers([CompiledRule.of(r) for r in old.rules], obj.rules):
            return None  # grants nothing the stored role did not
        namespace = self._scope(attrs)
        if self._may(dataclasses.replace(attrs, verb="escalate", group=RBAC_GROUP,
                                         namespace=namespace)):
            return None
        missing = uncovered(self.rules_for(attrs.user, namespace), obj.rules)
        return escalation_message(attrs.user, missing) if missing else None

    def _admit_binding(self, attrs: Attributes, obj: Any, old: Any) -> str | None:
        ref = obj.role_ref
        if (old is not None and old.role_ref == ref
                and all(subject in old.subjects for subject in obj.subjects)):
            return None  # no new subject: grants nothing the stored binding did not
        namespace = self._scope(attrs)
        resource = ROLE_RESOURCE_OF_KIND.get(ref.kind)
        if resource is not None and self._may(Attributes(
                user=attrs.user, verb="bind", group=RBAC_GROUP, resource=resource,
                namespace=namespace, name=ref.name)):
            return None
        rules = role_ref_rules(self.source, ref.kind, namespace, ref.name)
        if rules is None:
            if resource is None:
                return f'unsupported role reference kind: "{ref.kind}"'
            return f'{resource}.{RBAC_GROUP} "{ref.name}" not found'
        missing = uncovered(self.rules_for(attrs.user, namespace), rules)
        return escalation_message(attrs.user, missing) if missing else None


__all__ = [
    "AtomicRule", "EscalationAdmission", "breakdown", "compact_strings", "covers",
    "escalation_message", "resource_covers", "role_ref_rules", "rule_covers", "uncovered",
]
