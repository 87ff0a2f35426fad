"""``kyb describe``: fetch an object and what relates to it (its events, a
service's endpoints, a deployment's replica sets, a node's pods, a
namespace's quotas) and print the kind's describer text."""

from __future__ import annotations

import argparse
from typing import Any

from services.api import kinds
from services.ctl import describers, resources
from services.ctl import errors as ctl_errors
from services.ctl.context import CommandError, Context
from services.machinery import ApiError, Invalid, NotFound, Unavailable


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "describe", parents=[parent], help="show details of objects and their events",
        description="Show an object in human terms, with the events that concern it. "
                    "KIND NAME..., KIND/NAME..., or KIND alone for every object of the kind.")
    parser.add_argument("resources", nargs="+", metavar="KIND [NAME...]")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="with no names: objects in every namespace")
    parser.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                        help="with no names: only objects matching this label selector")
    parser.add_argument("--show-events", default="true", choices=("true", "false"),
                        help="list the object's events at the end (default true)")
    parser.set_defaults(run=run_describe)


async def run_describe(ctx: Context, args: argparse.Namespace) -> int:
    targets = resources.parse(args.resources)
    first = True
    for target in targets:
        for obj in await _objects(ctx, target, args):
            related = await gather_related(ctx, target.kind, obj,
                                           events=args.show_events == "true")
            if not first:
                ctx.print("\n")
            first = False
            ctx.out.write(describers.describe(target.kind.kind, obj, related, ctx.clock()))
            ctx.out.flush()
    if first and not ctx.failed:
        target = targets[0]
        where = ctx.namespace_for(target.kind, args.all_namespaces)
        ctx.warn(f"No resources found in {where} namespace." if where else "No resources found")
    return 1 if ctx.failed else 0


async def _objects(ctx: Context, target: resources.Target, args: argparse.Namespace) -> list:
    api = ctx.client.resource(target.kind)
    namespace = ctx.namespace_for(target.kind, args.all_namespaces)
    if not target.names:
        try:
            listing = await api.list_all(namespace, label_selector=args.selector)
        except Invalid as err:
            raise CommandError(str(err)) from None
        return list(listing.items)
    found = []
    for name in target.names:
        try:
            found.append(await api.get(name, namespace))
        except NotFound as err:
            ctx.failed = True
            ctx.warn(ctl_errors.from_server(err))
    return found


async def gather_related(ctx: Context, kind: kinds.Kind, obj: Any, *,
                         events: bool = True) -> describers.Related:
    """Everything the describer shows besides the object; a failure to read
    a related object leaves its section empty rather than failing describe."""
    related = describers.Related()
    if events:
        related.events = await events_for(ctx, kind, obj)
    meta = obj.metadata
    try:
        if kind.kind == "Service":
            try:
                related.endpoints = await ctx.client.resource("endpoints").get(
                    meta.name, meta.namespace)
            except NotFound:
                related.endpoints = None
        elif kind.kind == "Deployment":
            listing = await ctx.client.resource("replicasets").list_all(meta.namespace)
            related.replica_sets = [rs for rs in listing.items if any(
                ref.uid == meta.uid and ref.controller for ref in rs.metadata.owner_references)]
        elif kind.kind == "Node":
            listing = await ctx.client.resource("pods").list_all(
                "", field_selector=f"spec.nodeName={meta.name}")
            related.pods = [p for p in listing.items if p.spec.node_name == meta.name]
        elif kind.kind == "Namespace":
            listing = await ctx.client.resource("resourcequotas").list_all(meta.name)
            related.quotas = list(listing.items)
    except Unavailable:
        raise
    except ApiError:
        pass
    return related


async def events_for(ctx: Context, kind: kinds.Kind, obj: Any) -> list[Any]:
    """Events whose involvedObject is ``obj``: asked of the server by field
    selector, and checked here too in case the server ignores a field."""
    api = ctx.client.resource("events")
    meta = obj.metadata
    selector = f"involvedObject.name={meta.name},involvedObject.kind={kind.kind}"
    try:
        listing = await api.list_all(meta.namespace, field_selector=selector)
    except Invalid:
        listing = await api.list_all(meta.namespace)
    return [ev for ev in listing.items
            if ev.involved_object.name == meta.name and ev.involved_object.kind == kind.kind
            and (not ev.involved_object.uid or not meta.uid
                 or ev.involved_object.uid == meta.uid)]
