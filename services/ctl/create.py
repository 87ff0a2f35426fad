"""``kyb create namespace NAME``, ``kyb create -f FILE``, and the RBAC and
quota forms (see create_rbac)."""

from __future__ import annotations

import argparse

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.ctl import apply, create_rbac
from services.ctl.context import CommandError, Context


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "create", parents=[parent], help="create objects",
        description="Create objects from manifests (-f), or by kind: namespace, role, "
                    "clusterrole, rolebinding, clusterrolebinding, quota. An object that "
                    "exists already is an error (use apply to update).")
    apply.register_create_files(parser)
    kinds_parsers = parser.add_subparsers(dest="create_kind", metavar="KIND")
    ns_parser = kinds_parsers.add_parser(
        "namespace", aliases=["ns"], parents=[parent], help="create a namespace",
        description="Create a namespace with the given name.")
    ns_parser.add_argument("name", metavar="NAME")
    ns_parser.set_defaults(run=run_create_namespace)
    create_rbac.register(kinds_parsers, parent)
    parser.set_defaults(run=run_create)


async def run_create(ctx: Context, args: argparse.Namespace) -> int:
    if not args.filename:
        raise CommandError("must specify one of -f, or a kind to create (namespace, role, "
                           "clusterrole, rolebinding, clusterrolebinding, quota)")
    return await apply.run_create_files(ctx, args)


async def run_create_namespace(ctx: Context, args: argparse.Namespace) -> int:
    namespace = core.Namespace(api_version="v1", kind="Namespace")
    namespace.metadata.name = args.name
    await ctx.client.resource("namespaces").create(namespace)
    ctx.print(f"namespace/{args.name} created")
    return 0
