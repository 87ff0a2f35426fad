"""``kyb delete``: by kind and name, by selector, or everything in files;
then, unless ``--wait=false``, wait until each object is really gone
(finalizers, graceful pod termination)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.api import kinds
from services.ctl import apply, resources
from services.ctl import errors as ctl_errors
from services.ctl.context import CommandError, Context
from services.machinery import ApiError, Invalid, NotFound, Unavailable
from services.machinery.flags import boolean


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "delete", parents=[parent], help="delete objects",
        description="Delete objects by KIND NAME..., KIND/NAME..., KIND -l SELECTOR, "
                    "KIND --all, or -f FILE.")
    parser.add_argument("resources", nargs="*", metavar="KIND [NAME...]")
    parser.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                        help="delete the objects in these manifests (file, directory or -)")
    parser.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                        help="delete the objects of KIND matching this label selector")
    parser.add_argument("--all", action="store_true", help="delete every object of KIND")
    parser.add_argument("--grace-period", type=int, default=-1, metavar="SECONDS",
                        help="seconds a pod gets to stop (0: at once; -1: the object's own)")
    parser.add_argument("--wait", type=boolean, nargs="?", const=True, default=True,
                        metavar="BOOL", help="wait until the objects are gone (default true)")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long --wait waits (default 60)")
    parser.add_argument("--ignore-not-found", action="store_true",
                        help="a missing object is not an error")
    parser.set_defaults(run=run_delete)


async def run_delete(ctx: Context, args: argparse.Namespace) -> int:
    victims = await _victims(ctx, args)
    deleted: list[tuple[kinds.Kind, str, str, Any]] = []
    for kind, name, namespace in victims:
        api = ctx.client.resource(kind)
        try:
            result = await api.delete(
                name, namespace,
                grace_period_seconds=args.grace_period if args.grace_period >= 0 else None)
        except Unavailable:
            raise
        except NotFound as err:
            if not args.ignore_not_found:
                ctx.failed = True
                ctx.warn(ctl_errors.from_server(err))
            continue
        except ApiError as err:
            ctx.failed = True
            ctx.warn(ctl_errors.from_server(err))
            continue
        ctx.print(f'{resources.qualified(kind)} "{name}" deleted')
        deleted.append((kind, name, namespace, result))
    if args.wait:
        for kind, name, namespace, result in deleted:
            await wait_gone(ctx, kind, name, namespace, result, args.timeout)
    if not victims and not ctx.failed:
        ctx.warn("No resources found")
    return 1 if ctx.failed else 0


async def _victims(ctx: Context, args: argparse.Namespace) -> list[tuple[kinds.Kind, str, str]]:
    """(kind, name, namespace) for every object the command line names."""
    if args.filename:
        if args.resources:
            raise CommandError("use either -f or KIND NAME, not both")
        args.validate = "false"
        return [(m.kind, m.name, m.message.metadata.namespace)
                for m in apply.load(ctx, args)]
    if not args.resources:
        raise CommandError("you must provide one or more resources by argument or filename")
    targets = resources.parse(args.resources)
    named = any(t.names for t in targets)
    if named and (args.selector or args.all):
        raise CommandError("name cannot be provided when a selector or --all is specified")
    if not named and not (args.selector or args.all):
        raise CommandError("resource(s) were provided, but no name was specified "
                           "(use --all or -l SELECTOR to delete many)")
    victims: list[tuple[kinds.Kind, str, str]] = []
    for target in targets:
        namespace = ctx.namespace_for(target.kind)
        if named:
            victims.extend((target.kind, name, namespace) for name in target.names)
            continue
        try:
            listing = await ctx.client.resource(target.kind).list_all(
                namespace, label_selector=args.selector)
        except Invalid as err:
            raise CommandError(str(err)) from None
        victims.extend((target.kind, obj.metadata.name, obj.metadata.namespace)
                       for obj in listing.items)
    return victims


async def wait_gone(ctx: Context, kind: kinds.Kind, name: str, namespace: str,
                    deleted: Any, timeout: float) -> None:
    """Watch until the object is deleted (it may linger for finalizers or a
    pod's grace period). A delete that already removed it returns at once."""
    api = ctx.client.resource(kind)
    try:
        current = await api.get(name, namespace)
    except NotFound:
        return
    uid = current.metadata.uid

    async def gone() -> None:
        version = current.metadata.resource_version
        while True:
            async for event in api.watch(namespace, resource_version=version,
                                         allow_bookmarks=False):
                obj = event.object
                if obj.metadata.name != name:
                    continue
                if event.type == "DELETED" and (not uid or obj.metadata.uid == uid):
                    return
                version = obj.metadata.resource_version or version
            try:  # the server closed the stream: look again, then watch on
                still = await api.get(name, namespace)
            except NotFound:
                return
            if uid and still.metadata.uid != uid:
                return
            version = still.metadata.resource_version

    try:
        await asyncio.wait_for(gone(), timeout)
    except asyncio.TimeoutError:
        raise CommandError(f"timed out waiting for the condition on "
                           f"{resources.plural(kind)}/{name}") from None
