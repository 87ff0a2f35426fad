"""Resource arguments as kubectl reads them: ``pods``, ``po,svc``,
``pod/web``, ``deploy web api``; and the names kubectl prints for a kind
(``pod``, ``deployment.apps``)."""

from __future__ import annotations

import dataclasses

from services.api import kinds


class ArgumentError(ValueError):
    """A command line that names no resource, or names it wrongly."""


def group(kind: kinds.Kind) -> str:
    """The API group: "" for the core group, "apps", "coordination.k8s.io"."""
    return kind.api_version.rpartition("/")[0]


def qualified(kind: kinds.Kind) -> str:
    """The name kubectl prints: ``pod``, ``deployment.apps``."""
    singular = kind.singular or kind.kind.lower()
    return f"{singular}.{group(kind)}" if group(kind) else singular


def plural(kind: kinds.Kind) -> str:
    """``pods``, ``deployments.apps``: as in kubectl's server messages."""
    return f"{kind.resource}.{group(kind)}" if group(kind) else kind.resource


@dataclasses.dataclass
class Target:
    """One kind and the names asked for (empty: every object)."""

    kind: kinds.Kind
    names: list[str] = dataclasses.field(default_factory=list)


# What ``kyb get all`` shows: kubectl's "all" category, as far as it exists here.
ALL = ("pods", "services", "deployments", "replicasets")


def lookup(name: str) -> kinds.Kind:
    try:
        return kinds.lookup(name)
    except kinds.UnknownKindError as err:
        raise ArgumentError(str(err)) from None


def parse(args: list[str]) -> list[Target]:
    """``["po,svc"]``, ``["pod", "a", "b"]`` or ``["pod/a", "svc/b"]`` as
    targets in the order given (names of one kind merged)."""
    if not args:
        raise ArgumentError("you must specify the type of resource to get")
    if "/" in args[0]:
        targets: dict[str, Target] = {}
        for arg in args:
            kind_name, sep, name = arg.partition("/")
            if not sep or not kind_name or not name:
                raise ArgumentError(f"there is no need to specify a resource type as a separate "
                                    f"argument when passing arguments in resource/name form "
                                    f"(got {arg!r})")
            kind = lookup(kind_name)
            targets.setdefault(kind.kind, Target(kind)).names.append(name)
        return list(targets.values())
    kind_names = [k for part in args[0].split(",") if part
                  for k in (ALL if part.lower() == "all" else (part,))]
    if not kind_names:
        raise ArgumentError(f"no resource type in {args[0]!r}")
    names = args[1:]
    for name in names:
        if "/" in name:
            raise ArgumentError(f"arguments in resource/name form must have a single resource "
                                f"and name (got {name!r} after a resource type)")
    seen: dict[str, Target] = {}
    for kind_name in kind_names:
        kind = lookup(kind_name)
        seen.setdefault(kind.kind, Target(kind, list(names)))
    return list(seen.values())
