"""Kubernetes' RBAC authorizer, over Role, ClusterRole, RoleBinding and
ClusterRoleBinding objects.

Semantics are Kubernetes' (plugin/pkg/auth/authorizer/rbac): rules only add
permissions; a ClusterRoleBinding grants its ClusterRole everywhere; a
RoleBinding grants its Role, or a ClusterRole's rules, in its own namespace
only, so it can never grant a cluster-scoped resource, an all-namespace
list/watch or a non-resource URL. A binding whose role does not exist grants
nothing.

Evaluation is an index lookup: bindings are compiled once, per subject
(user name or group), into their rules as frozensets, and a request reads
only the grants of its own user and groups. The index is built lazily (per
namespace for RoleBindings) and dropped by :meth:`RbacAuthorizer.invalidate`,
which whoever owns the RBAC objects calls when any of them changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Protocol

from services.api import kinds
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.authz.attributes import Attributes, Decision, UserInfo

ALL = "*"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class RbacSource(Protocol):
    """Where the authorizer reads RBAC objects (the API server's watch
    caches; :class:`DictSource` in tests)."""

    def role(self, namespace: str, name: str) -> rbac.Role | None: ...

    def cluster_role(self, name: str) -> rbac.ClusterRole | None: ...

    def role_bindings(self, namespace: str) -> Iterable[rbac.RoleBinding]: ...

    def cluster_role_bindings(self) -> Iterable[rbac.ClusterRoleBinding]: ...


class DictSource:
    """An in-memory :class:`RbacSource`: lists of objects, indexed by name."""

    def __init__(self, roles: Iterable[rbac.Role] = (),
                 cluster_roles: Iterable[rbac.ClusterRole] = (),
                 role_bindings: Iterable[rbac.RoleBinding] = (),
                 cluster_role_bindings: Iterable[rbac.ClusterRoleBinding] = ()):
        self.roles = {(r.metadata.namespace, r.metadata.name): r for r in roles}
        self.cluster_roles = {r.metadata.name: r for r in cluster_roles}
        self.bindings: dict[str, list[rbac.RoleBinding]] = {}
        for b in role_bindings:
            self.bindings.setdefault(b.metadata.namespace, []).append(b)
        self.cluster_bindings = list(cluster_role_bindings)

    def role(self, namespace: str, name: str) -> rbac.Role | None:
        return self.roles.get((namespace, name))

    def cluster_role(self, name: str) -> rbac.ClusterRole | None:
        return self.cluster_roles.get(name)

    def role_bindings(self, namespace: str) -> Iterable[rbac.RoleBinding]:
        return self.bindings.get(namespace, ())

    def cluster_role_bindings(self) -> Iterable[rbac.ClusterRoleBinding]:
        return self.cluster_bindings


# --- rules ------------------------------------------------------------------------------------


def service_account_user(namespace: str, name: str) -> str:
    """The user name a service account authenticates as."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


@dataclasses.dataclass(frozen=True)
class CompiledRule:
    """A PolicyRule as sets, so matching is a few membership tests."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]

    @classmethod
    def of(cls, rule: rbac.PolicyRule) -> CompiledRule:
        return cls(frozenset(rule.verbs), frozenset(rule.api_groups), frozenset(rule.resources),
                   frozenset(rule.resource_names), tuple(rule.non_resource_urls))

    def allows(self, attrs: Attributes) -> bool:
        if ALL not in self.verbs and attrs.verb not in self.verbs:
            return False
        if attrs.path:
            return url_matches(self.urls, attrs.path)
        return (
            (ALL in self.groups or attrs.group in self.groups)
            and resource_matches(self.resources, attrs.resource, attrs.subresource)
            # A rule naming objects never matches a request without a name:
            # list/watch of everything, or a create whose name is not known.
            and (not self.names or (bool(attrs.name) and attrs.name in self.names))
        )


def resource_matches(rule_resources: frozenset[str], resource: str, subresource: str) -> bool:
    """Kubernetes' ResourceMatches: "*" (everything, subresources too), the
    exact "pods" or "pods/status", "*/status" for that subresource of any
    resource; and, beyond Kubernetes, "pods/*" for every subresource of pods."""
    if ALL in rule_resources:
        return True
    if not subresource:
        return resource in rule_resources
    return (f"{resource}/{subresource}" in rule_resources
            or f"*/{subresource}" in rule_resources
            or f"{resource}/*" in rule_resources)


def url_matches(rule_urls: Iterable[str], path: str) -> bool:
    """Kubernetes' NonResourceURLMatches: "*", the exact path, or a prefix
    ending in "*" ("/healthz/*")."""
    for url in rule_urls:
        if url == ALL or url == path:
            return True
        if url.endswith(ALL) and path.startswith(url.rstrip(ALL)):
            return True
    return False


# --- the index --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grant:
    """The rules one binding grants one subject, and how to say so."""

    describes: str  # 'ClusterRoleBinding "x" of ClusterRole "y" to User "alice"'
    rules: tuple[CompiledRule, ...]


# Subject keys: ("user", name) and ("group", name); service accounts are users.
Key = tuple[str, str]
Index = Mapping[Key, tuple[Grant, ...]]


def _subject_key(subject: rbac.Subject, binding_namespace: str) -> tuple[Key, str] | None:
    """The index key a subject answers to, and its name in messages."""
    if subject.kind == "User":
        return ("user", subject.name), f'User "{subject.name}"'
    if subject.kind == "Group":
        return ("group", subject.name), f'Group "{subject.name}"'
    if subject.kind == "ServiceAccount":
        # Kubernetes: an unqualified service account is the binding's namespace's.
        namespace = subject.namespace or binding_namespace
        if not namespace or not subject.name:
            return None
        return (("user", service_account_user(namespace, subject.name)),
                f'ServiceAccount "{namespace}/{subject.name}"')
    return None


def _index(bindings: Iterable[tuple[str, Iterable[rbac.Subject], tuple[CompiledRule, ...]]],
           binding_namespace: str) -> dict[Key, tuple[Grant, ...]]:
    index: dict[Key, list[Grant]] = {}
    for describes, subjects, rules in bindings:
        if not rules:
            continue  # missing or empty role: grants nothing
        for subject in subjects:
            found = _subject_key(subject, binding_namespace)
            if found is not None:
                key, who = found
                index.setdefault(key, []).append(Grant(f"{describes} to {who}", rules))
    return {key: tuple(grants) for key, grants in index.items()}


def _compile(rules: Iterable[rbac.PolicyRule]) -> tuple[CompiledRule, ...]:
    return tuple(CompiledRule.of(r) for r in rules)


class RbacAuthorizer:
    """``authorize(attrs) -> Decision`` by RBAC over ``source``.

    The compiled index is cached; call :meth:`invalidate` whenever a Role,
    ClusterRole, RoleBinding or ClusterRoleBinding is created, changed or
    deleted (``cache=False`` rebuilds it on every request instead).
    """

    name = "RBAC"

    def __init__(self, source: RbacSource, *, cache: bool = True):
        self.source = source
        self.cache = cache
        self._cluster: Index | None = None
        self._namespaced: dict[str, Index] = {}

    def invalidate(self) -> None:
        """Forget the compiled bindings: the next request rebuilds them."""
        self._cluster = None
        self._namespaced = {}

    # -- building ------------------------------------------------------------------------

    def _cluster_index(self) -> Index:
        if self._cluster is None or not self.cache:
            self._cluster = _index(self._cluster_grants(), "")
        return self._cluster

    def _cluster_grants(self) -> Iterable[tuple[str, Iterable[rbac.Subject],
                                                tuple[CompiledRule, ...]]]:
        for binding in self.source.cluster_role_bindings():
            ref = binding.role_ref
            if ref.kind != "ClusterRole":
                continue  # a ClusterRoleBinding can only name a ClusterRole
            role = self.source.cluster_role(ref.name)
            rules = _compile(role.rules) if role is not None else ()
            yield (f'ClusterRoleBinding "{binding.metadata.name}" of ClusterRole "{ref.name}"',
                   binding.subjects, rules)

    def _namespace_index(self, namespace: str) -> Index:
        found = self._namespaced.get(namespace) if self.cache else None
        if found is None:
            found = _index(self._role_grants(namespace), namespace)
            if found and self.cache:
                # Only namespaces with bindings are kept: requests naming any
                # number of empty namespaces must not grow the cache.
                self._namespaced[namespace] = found
        return found

    def _role_grants(self, namespace: str) -> Iterable[tuple[str, Iterable[rbac.Subject],
                                                           tuple[CompiledRule, ...]]]:
        for binding in self.source.role_bindings(namespace):
            if binding.metadata.namespace and binding.metadata.namespace != namespace:
                continue
            ref = binding.role_ref
            role: rbac.Role | rbac.ClusterRole | None
            if ref.kind == "Role":
                role = self.source.role(namespace, ref.name)
            elif ref.kind == "ClusterRole":
                role = self.source.cluster_role(ref.name)
            else:
                continue
            rules = _compile(role.rules) if role is not None else ()
            yield (f'RoleBinding "{binding.metadata.name}/{namespace}" of {ref.kind} '
                   f'"{ref.name}"', binding.subjects, rules)

    # -- deciding ------------------------------------------------------------------------

    def authorize(self, attrs: Attributes) -> Decision:
        keys = subject_keys(attrs.user)
        indexes = [self._cluster_index()]
        if attrs.namespace and not attrs.path and not _cluster_scoped(attrs.resource):
            indexes.append(self._namespace_index(attrs.namespace))
        for index in indexes:
            for key in keys:
                for grant in index.get(key, ()):
                    for rule in grant.rules:
                        if rule.allows(attrs):
                            return Decision(True, f"RBAC: allowed by {grant.describes}")
        return Decision(False, forbidden_message(attrs))

    def rules_for(self, user: UserInfo, namespace: str = "") -> list[tuple[str, CompiledRule]]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide
        ones too), with the binding granting it: for ``can-i --list`` and
        debugging."""
        keys = subject_keys(user)
        indexes = [self._cluster_index()]
        if namespace:
            indexes.append(self._namespace_index(namespace))
        return [(grant.describes, rule) for index in indexes for key in keys
                for grant in index.get(key, ()) for rule in grant.rules]


def subject_keys(user: UserInfo) -> list[Key]:
    return [("user", user.name), *(("group", g) for g in user.groups)]


def _cluster_scoped(resource: str) -> bool:
    kind = kinds.BY_RESOURCE.get(resource)
    return kind is not None and not kind.namespaced


def forbidden_message(attrs: Attributes) -> str:
    """Kubernetes' forbidden message for a request RBAC does not allow."""
    user = attrs.user.name
    if attrs.path:
        return f'User "{user}" cannot {attrs.verb} path "{attrs.path}"'
    where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace
             else "at the cluster scope")
    return (f'User "{user}" cannot {attrs.verb} resource "{attrs.resource_path}" '
            f'in API group "{attrs.group}" {where}')


__all__ = [
    "CompiledRule", "DictSource", "Grant", "RbacAuthorizer", "RbacSource",
    "forbidden_message", "resource_matches", "service_account_user", "url_matches",
]
