"""``kyb get``: list or fetch objects and print them as a table, JSON, YAML
or names; ``-w`` keeps printing rows as the objects change."""

from __future__ import annotations

import argparse
from typing import Any

from services.ctl import errors as ctl_errors
from services.ctl import printers, resources
from services.ctl.context import CommandError, Context
from services.machinery import Invalid, NotFound, Unavailable

OUTPUTS = ("wide", "yaml", "json", "name")


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "get", parents=[parent], help="show objects",
        description="Show one or more objects: KIND [NAME...], KIND/NAME..., or KIND,KIND. "
                    "KIND is any kubectl name (po, svc, deploy, rs, ep, no, ns, ev, lease, quota, "
                    "roles, clusterroles, rolebindings, clusterrolebindings).")
    parser.add_argument("resources", nargs="+", metavar="KIND [NAME...]")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="objects in every namespace (adds a NAMESPACE column)")
    parser.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                        help="label selector, e.g. app=web,tier!=db")
    parser.add_argument("--field-selector", default="", metavar="SELECTOR",
                        help="field selector, e.g. spec.nodeName=node1")
    parser.add_argument("-o", "--output", choices=OUTPUTS, metavar="FORMAT",
                        help="wide, yaml, json or name (default: a table)")
    parser.add_argument("--show-labels", action="store_true",
                        help="add a LABELS column to the table")
    parser.add_argument("-w", "--watch", action="store_true",
                        help="after the list, print a row for every change")
    parser.add_argument("--watch-only", action="store_true",
                        help="print only changes, not the current list")
    parser.set_defaults(run=run_get)


async def run_get(ctx: Context, args: argparse.Namespace) -> int:
    targets = resources.parse(args.resources)
    named = any(t.names for t in targets)
    if named and (args.selector or args.field_selector or args.all_namespaces):
        raise CommandError("selectors and the all namespaces flag cannot be used when passing "
                           "resource/name arguments")
    watching = args.watch or args.watch_only
    if watching and len(targets) > 1:
        raise CommandError("you may only specify a single resource type when watching")
    options = printers.TableOptions(
        wide=args.output == "wide", all_namespaces=args.all_namespaces,
        show_kind=len(targets) > 1, show_labels=args.show_labels)

    found: list[tuple[resources.Target, list[Any], str]] = []
    for target in targets:
        objects, resource_version = await _fetch(ctx, target, args)
        found.append((target, objects, resource_version))

    if not args.watch_only:
        _print(ctx, found, args, options, single=len(targets) == 1 and len(
            targets[0].names) == 1)
    if watching:
        target, objects, resource_version = found[0]
        await _watch(ctx, target, args, options, objects, resource_version)
    return 1 if ctx.failed else 0


async def _fetch(ctx: Context, target: resources.Target,
                 args: argparse.Namespace) -> tuple[list[Any], str]:
    """The objects asked for and the resourceVersion to watch from."""
    api = ctx.client.resource(target.kind)
    namespace = ctx.namespace_for(target.kind, args.all_namespaces)
    if target.names:
        objects = []
        for name in target.names:
            try:
                objects.append(await api.get(name, namespace))
            except Unavailable:
                raise
            except NotFound as err:
                ctx.failed = True
                ctx.warn(ctl_errors.from_server(err))
        return objects, ""
    try:
        listing = await api.list_all(namespace, label_selector=args.selector,
                                     field_selector=args.field_selector)
    except Invalid as err:
        if args.selector or args.field_selector:
            raise CommandError(str(err)) from None
        raise
    return list(listing.items), listing.metadata.resource_version


def _print(ctx: Context, found: list[tuple[resources.Target, list[Any], str]],
           args: argparse.Namespace, options: printers.TableOptions, *, single: bool) -> None:
    everything = [obj for _, objects, _ in found for obj in objects]
    if args.output in ("json", "yaml"):
        if everything or not ctx.failed:
            ctx.out.write(printers.structured(everything, args.output, single=single))
            ctx.out.flush()
        return
    if not everything:
        if not ctx.failed:
            ctx.warn(_nothing_found(ctx, found[0][0], args))
        return
    if args.output == "name":
        for target, objects, _ in found:
            for obj in objects:
                ctx.print(printers.object_name(target.kind, obj))
        return
    blocks = [(t, objs) for t, objs, _ in found if objs]
    for index, (target, objects) in enumerate(blocks):
        if index:
            ctx.print()
        now = ctx.clock()
        for line in printers.table(target.kind, objects, now, options):
            ctx.print(line)


def _nothing_found(ctx: Context, target: resources.Target, args: argparse.Namespace) -> str:
    if target.kind.namespaced and not args.all_namespaces:
        return f"No resources found in {ctx.namespace_for(target.kind)} namespace."
    return "No resources found"


async def _watch(ctx: Context, target: resources.Target, args: argparse.Namespace,
                 options: printers.TableOptions, listed: list[Any],
                 resource_version: str) -> None:
    """Rows (or objects) for every change after the list, until the server
    ends the stream or the user presses Ctrl-C."""
    api = ctx.client.resource(target.kind)
    namespace = ctx.namespace_for(target.kind, args.all_namespaces)
    headers = printers.table_headers(target.kind, options)
    now = ctx.clock()
    rows = [printers.table_row(target.kind, obj, now, options) for obj in listed]
    table = printers.WatchTable(headers, [] if args.watch_only else rows)
    header_printed = not args.watch_only and bool(listed)
    names = set(target.names)
    field_selector = args.field_selector
    if len(names) == 1:
        field_selector = f"metadata.name={next(iter(names))}"
    async for event in api.watch(namespace, label_selector=args.selector,
                                 field_selector=field_selector,
                                 resource_version=resource_version or "",
                                 allow_bookmarks=False,
                                 timeout_seconds=int(getattr(args, "watch_timeout", 0) or 0)):
        if event.type == "BOOKMARK" or not event.HasField("object"):
            continue
        obj = event.object
        if names and obj.metadata.name not in names:
            continue
        if not resource_version and not args.watch_only and event.type == "ADDED" \
                and any(o.metadata.uid == obj.metadata.uid and o.metadata.resource_version ==
                        obj.metadata.resource_version for o in listed):
            continue  # already printed from the get
        _print_event(ctx, target, args, options, table, obj, header_printed)
        header_printed = True


def _print_event(ctx: Context, target: resources.Target, args: argparse.Namespace,
                 options: printers.TableOptions, table: printers.WatchTable, obj: Any,
                 header_printed: bool) -> None:
    if args.output in ("json", "yaml"):
        text = printers.structured([obj], args.output, single=True)
        ctx.out.write(text if args.output == "json" else "---\n" + text)
        ctx.out.flush()
    elif args.output == "name":
        ctx.print(printers.object_name(target.kind, obj))
    else:
        row = printers.table_row(target.kind, obj, ctx.clock(), options)
        if not header_printed:
            table.fit(row)
            ctx.print(table.line(table.headers))
        ctx.print(table.line(row))
