"""Several authorizers asked in turn, as kube-apiserver's
--authorization-mode list: the first that allows wins; if none does, the
request is refused with the reason that says most about why.

Also the two trivial authorizers kube-apiserver has: AlwaysAllow (the
"AlwaysAllow" mode) and PrivilegedGroups (members of system:masters are
allowed everything before any other authorizer is asked, so deleting the
cluster-admin binding cannot lock the administrators out).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from services.apiserver.authz.attributes import ALLOW_NOTHING, MASTERS, Attributes, Decision


class Authorizer(Protocol):
    """Anything with ``authorize(attrs) -> Decision``; ``name`` ("Node",
    "RBAC", ...) lets the chain pick the most telling refusal."""

    name: str

    def authorize(self, attrs: Attributes) -> Decision: ...


class AlwaysAllow:
    name = "AlwaysAllow"

    def authorize(self, attrs: Attributes) -> Decision:
        return Decision(True, "AlwaysAllow")


class PrivilegedGroups:
    """Allows every request of a member of ``groups`` (system:masters)."""

    name = "PrivilegedGroups"

    def __init__(self, groups: Iterable[str] = (MASTERS,)):
        self.groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Decision:
        for group in attrs.user.groups:
            if group in self.groups:
                return Decision(True, f'allowed: member of privileged group "{group}"')
        return Decision(False, "not in a privileged group")


class AuthorizerChain:
    """Asks ``authorizers`` in order; the first allow wins.

    A refusal carries one reason: for a node's request the Node
    authorizer's (it names the node rule broken), otherwise RBAC's (it names
    user, verb, resource and namespace), otherwise the last one given.
    """

    name = "Chain"

    def __init__(self, authorizers: Sequence[Authorizer]):
        self.authorizers = list(authorizers)

    def authorize(self, attrs: Attributes) -> Decision:
        refusals: dict[str, Decision] = {}
        last: Decision | None = None
        for authorizer in self.authorizers:
            decision = authorizer.authorize(attrs)
            if decision.allowed:
                return decision
            refusals.setdefault(getattr(authorizer, "name", ""), decision)
            last = decision
        if attrs.user.node_name is not None and "Node" in refusals:
            return refusals["Node"]
        if "RBAC" in refusals:
            return refusals["RBAC"]
        return last or ALLOW_NOTHING


def from_modes(modes: str, *, node: Authorizer | None = None,
               rbac: Authorizer | None = None) -> AuthorizerChain:
    """The chain for an --authorization-mode value ("Node,RBAC",
    "AlwaysAllow"), with system:masters allowed first unless the mode is
    AlwaysAllow. A mode named without its authorizer is an error."""
    chain: list[Authorizer] = []
    for mode in (m.strip() for m in modes.split(",") if m.strip()):
        if mode == "AlwaysAllow":
            chain.append(AlwaysAllow())
        elif mode == "Node":
            if node is None:
                raise ValueError("--authorization-mode Node needs the Node authorizer")
            chain.append(node)
        elif mode == "RBAC":
            if rbac is None:
                raise ValueError("--authorization-mode RBAC needs the RBAC authorizer")
            chain.append(rbac)
        else:
            raise ValueError(f'--authorization-mode: unknown mode "{mode}"; '
                             "known: AlwaysAllow, Node, RBAC")
    if not chain:
        raise ValueError("--authorization-mode: no mode given")
    if not any(isinstance(a, AlwaysAllow) for a in chain):
        chain.insert(0, PrivilegedGroups())
    return AuthorizerChain(chain)


__all__ = ["AlwaysAllow", "Authorizer", "AuthorizerChain", "PrivilegedGroups", "from_modes"]
