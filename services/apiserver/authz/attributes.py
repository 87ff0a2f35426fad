"""The vocabulary every authorizer and admission check shares: who is
asking (UserInfo), what they ask to do (Attributes), and the answer
(Decision). Pure data, so the policy code is pure functions over it."""

from __future__ import annotations

import dataclasses

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
NODES = "system:nodes"
NODE_PREFIX = "system:node:"


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """An authenticated caller: a client certificate's CN and O, or a
    token file row. ``authenticated_by`` is "x509", "token" or "insecure"."""

    name: str
    groups: tuple[str, ...] = ()
    authenticated_by: str = ""

    @property
    def node_name(self) -> str | None:
        """The node this is a kubelet of (user system:node:<name> in group
        system:nodes), else None."""
        if NODES in self.groups and self.name.startswith(NODE_PREFIX):
            return self.name[len(NODE_PREFIX):] or None
        return None


@dataclasses.dataclass(frozen=True)
class Attributes:
    """One request in authorization terms.

    verb: get, list, watch, create, update, delete.
    group: "" (core), "apps", "coordination.k8s.io", "rbac.authorization.k8s.io".
    resource: the plural ("pods"); subresource: "", "status", "binding", "log", "exec".
    namespace: "" for cluster-scoped kinds and for all-namespace list/watch.
    name: the object's name, "" for list/watch/create-without-name.
    path: set instead of resource for non-resource requests ("/metrics").
    """

    user: UserInfo
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_path(self) -> str:
        """"pods/status" style, as RBAC rules name subresources."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def describe(self) -> str:
        """The request as one phrase for errors and the audit log."""
        if self.path:
            return f"{self.verb} {self.path}"
        what = self.resource_path
        if self.group:
            what = f"{what}.{self.group}"
        where = f' in namespace "{self.namespace}"' if self.namespace else ""
        named = f' "{self.name}"' if self.name else ""
        return f"{self.verb} {what}{named}{where}"


@dataclasses.dataclass(frozen=True)
class Decision:
    """allowed, and why: the rule that allowed it, or what was missing."""

    allowed: bool
    reason: str = ""


ALLOW_NOTHING = Decision(False, "no rule allows it")
