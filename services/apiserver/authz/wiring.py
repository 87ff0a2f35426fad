"""Connects the pure authorizers to the API server's watch caches: RBAC
reads Roles and bindings from them, the Node authorizer looks up stored
pods, and admission runs on every write: NodeRestriction, then RBAC
escalation prevention (which reads the same compiled rules the RBAC
authorizer decides with, so the two always agree on what a user holds).

The RBAC authorizer compiles bindings into an index; it is rebuilt
whenever one of the four RBAC caches has applied a new event (checked per
request by comparing the caches' last event revisions — four integer
reads), so a new binding takes effect as soon as the cache has it, as in
Kubernetes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.api import kinds
from services.apiserver.admission import noderestriction
from services.apiserver.authz import chain
from services.apiserver.authz.attributes import Attributes, Decision, UserInfo
from services.apiserver.authz.escalation import EscalationAdmission
from services.apiserver.authz.node import NodeAuthorizer
from services.apiserver.authz.rbac import CompiledRule, RbacAuthorizer
from services.apiserver.watchcache import WatchCache, object_key

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


class CacheRbacSource:
    """The RbacSource protocol over the API server's watch caches."""

    def __init__(self, caches: Mapping[str, WatchCache]):
        self.caches = caches

    def _get(self, kind: str, namespace: str, name: str) -> Any:
        return self.caches[kind].get(object_key(kinds.BY_KIND[kind], namespace, name))

    def role(self, namespace: str, name: str) -> Any:
        return self._get("Role", namespace, name)

    def cluster_role(self, name: str) -> Any:
        return self._get("ClusterRole", "", name)

    def role_bindings(self, namespace: str) -> Iterable[Any]:
        prefix = object_key(kinds.BY_KIND["RoleBinding"], namespace, "")
        return [obj for key, obj in self.caches["RoleBinding"].objects.items()
                if key.startswith(prefix)]

    def cluster_role_bindings(self) -> Iterable[Any]:
        return list(self.caches["ClusterRoleBinding"].objects.values())

    def version(self) -> tuple:
        """Changes whenever any RBAC object may have changed."""
        return tuple((c.last_event_revision, id(c.objects))
                     for c in (self.caches[k] for k in RBAC_KINDS))


class FreshRbacAuthorizer:
    """RbacAuthorizer whose index follows the caches."""

    name = "RBAC"

    def __init__(self, source: CacheRbacSource):
        self.source = source
        self.rbac = RbacAuthorizer(source)
        self._seen: tuple = ()

    def _refresh(self) -> RbacAuthorizer:
        version = self.source.version()
        if version != self._seen:
            self.rbac.invalidate()
            self._seen = version
        return self.rbac

    def authorize(self, attrs: Attributes) -> Decision:
        return self._refresh().authorize(attrs)

    def rules_for(self, user: UserInfo, namespace: str = "") -> list[CompiledRule]:
        """The user's rules in ``namespace`` (cluster-wide ones included)."""
        return [rule for _, rule in self._refresh().rules_for(user, namespace)]


def authorization(modes: str, caches: Mapping[str, WatchCache]
                  ) -> tuple[Callable[[Attributes], Decision],
                             Callable[[Attributes, Any, Any], str | None]]:
    """(authorize, admit) for an --authorization-mode value."""
    pods = caches["Pod"]
    pod_kind = kinds.BY_KIND["Pod"]

    def stored_pod(namespace: str, name: str) -> Any:
        return pods.get(object_key(pod_kind, namespace, name))

    source = CacheRbacSource(caches)
    rbac = FreshRbacAuthorizer(source)
    authorizers = chain.from_modes(modes, node=NodeAuthorizer(stored_pod), rbac=rbac)
    escalation = EscalationAdmission(source, rbac.rules_for, authorizers.authorize)

    def admit(attrs: Attributes, obj: Any, old: Any) -> str | None:
        return (noderestriction.admit(attrs.user, attrs, obj, old)
                or escalation.admit(attrs, obj, old))

    return authorizers.authorize, admit
