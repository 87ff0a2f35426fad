"""``kyb scale``: set spec.replicas of deployments and replica sets.

A read-modify-write that re-reads and retries on Conflict, as every
writer here does; kubectl's preconditions (``--current-replicas``,
``--resource-version``) are checked against each fresh read.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.api import kinds
from services.ctl import errors as ctl_errors
from services.ctl import resources
from services.ctl.context import CommandError, Context
from services.machinery import ApiError, Conflict, Invalid, Unavailable

# How many times a conflicting write is re-read and retried before giving up.
RETRIES = 5


class PreconditionError(Exception):
    """kubectl's precondition failure: ``Expected replicas to be 3, was 2``."""

    def __init__(self, field: str, expected: object, actual: object):
        super().__init__(f"Expected {field} to be {expected}, was {actual}")


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "scale", parents=[parent], help="set the number of replicas",
        description="Set spec.replicas of deployments or replica sets: KIND NAME..., "
                    "KIND/NAME..., KIND -l SELECTOR or KIND --all.")
    parser.add_argument("resources", nargs="+", metavar="KIND [NAME...]")
    parser.add_argument("--replicas", type=int, default=None, metavar="COUNT",
                        help="the new number of replicas (required)")
    parser.add_argument("--current-replicas", type=int, default=-1, metavar="COUNT",
                        help="only scale if the current number of replicas is this "
                             "(default -1: no condition)")
    parser.add_argument("--resource-version", default="", metavar="VERSION",
                        help="only scale if the object's resourceVersion is this")
    parser.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                        help="scale the objects of KIND matching this label selector")
    parser.add_argument("--all", action="store_true", help="scale every object of KIND")
    parser.set_defaults(run=run_scale)


def scalable(kind: kinds.Kind) -> bool:
    """Whether objects of ``kind`` have a spec.replicas to set."""
    spec = kind.message.DESCRIPTOR.fields_by_name.get("spec")
    return spec is not None and "replicas" in spec.message_type.fields_by_name


def current_replicas(obj: Any) -> int:
    """spec.replicas, or 1 when unset (the API default)."""
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def scaled(obj: Any, replicas: int, *, current: int = -1, resource_version: str = "") -> Any:
    """A copy of ``obj`` with spec.replicas set, after checking kubectl's
    preconditions (-1 / "" meaning none); raises PreconditionError."""
    if current >= 0 and current_replicas(obj) != current:
        raise PreconditionError("replicas", current, current_replicas(obj))
    if resource_version and obj.metadata.resource_version != resource_version:
        raise PreconditionError("resource version", resource_version,
                                obj.metadata.resource_version)
    new = type(obj)()
    new.CopyFrom(obj)
    new.spec.replicas = replicas
    return new


async def run_scale(ctx: Context, args: argparse.Namespace) -> int:
    if args.replicas is None or args.replicas < 0:
        raise CommandError("The --replicas=COUNT flag is required, and COUNT must be greater "
                           "than or equal to 0")
    victims = await _targets(ctx, args)
    if not victims:
        raise CommandError("no objects passed to scale")
    for kind, name, namespace in victims:
        try:
            await scale(ctx, kind, name, namespace, args.replicas,
                        current=args.current_replicas, resource_version=args.resource_version)
        except Unavailable:
            raise
        except PreconditionError as err:
            ctx.failed = True
            ctx.warn(f"error: {err}")
            continue
        except ApiError as err:
            ctx.failed = True
            ctx.warn(ctl_errors.from_server(err))
            continue
        ctx.print(f"{resources.qualified(kind)}/{name} scaled")
    return 1 if ctx.failed else 0


async def _targets(ctx: Context, args: argparse.Namespace) -> list[tuple[kinds.Kind, str, str]]:
    targets = resources.parse(args.resources)
    named = any(t.names for t in targets)
    if named and (args.selector or args.all):
        raise CommandError("name cannot be provided when a selector or --all is specified")
    if not named and not (args.selector or args.all):
        raise CommandError("resource(s) were provided, but no name was specified "
                           "(use --all or -l SELECTOR to scale many)")
    found: list[tuple[kinds.Kind, str, str]] = []
    for target in targets:
        if not scalable(target.kind):
            raise CommandError(f"cannot scale {resources.plural(target.kind)}: "
                               f"only objects with spec.replicas (deployments, replica sets) "
                               f"can be scaled")
        namespace = ctx.namespace_for(target.kind)
        if named:
            found.extend((target.kind, name, namespace) for name in target.names)
            continue
        try:
            listing = await ctx.client.resource(target.kind).list_all(
                namespace, label_selector=args.selector)
        except Invalid as err:
            raise CommandError(str(err)) from None
        found.extend((target.kind, o.metadata.name, o.metadata.namespace)
                     for o in listing.items)
    return found


async def scale(ctx: Context, kind: kinds.Kind, name: str, namespace: str, replicas: int, *,
                current: int = -1, resource_version: str = "") -> Any:
    """Set spec.replicas, re-reading and retrying on Conflict (unless the
    caller pinned a resourceVersion: then a conflict is the answer)."""
    api = ctx.client.resource(kind)
    for attempt in range(RETRIES):
        obj = await api.get(name, namespace)
        try:
            return await api.update(scaled(obj, replicas, current=current,
                                           resource_version=resource_version))
        except Conflict:
            if resource_version or attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")
