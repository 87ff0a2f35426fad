"""``kyb apply -f`` and ``kyb create -f``: make the cluster match manifests.

Apply is get, then create if absent, else update with the stored
resourceVersion (re-read and retry on Conflict). Status is never sent: it
belongs to the controllers and kubelets.
"""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from services.api import convert
from services.ctl import errors as ctl_errors
from services.ctl import manifests, merge, resources
from services.ctl.context import CommandError, Context
from services.machinery import AlreadyExists, ApiError, Conflict, NotFound, Unavailable

MAX_ATTEMPTS = 5
VALIDATE_MODES = {"strict": "strict", "true": "strict", "warn": "warn",
                  "false": "ignore", "ignore": "ignore"}


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    apply_parser = subparsers.add_parser(
        "apply", parents=[parent], help="create or update objects from manifests",
        description="Create objects that do not exist and update those that do, from "
                    "YAML or JSON manifests (multi-document; kind: List expanded).")
    _add_file_flags(apply_parser)
    apply_parser.set_defaults(run=run_apply)


def _add_file_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                        help="a manifest file, a directory of *.yaml/*.yml/*.json files, "
                             "or - for standard input (repeatable)")
    parser.add_argument("--validate", nargs="?", const="strict", default="warn",
                        choices=sorted(VALIDATE_MODES), metavar="MODE",
                        help="unknown fields: strict (an error, nothing is sent), warn "
                             "(a warning; the default) or false (ignored)")


def register_create_files(parser: argparse.ArgumentParser) -> None:
    """``kyb create -f``: the file flags on the create command."""
    _add_file_flags(parser)


def load(ctx: Context, args: argparse.Namespace) -> list[manifests.Manifest]:
    """The manifests, validated; warnings printed (or errors raised) as
    ``--validate`` says, and namespaces settled, before anything is sent."""
    mode = VALIDATE_MODES[args.validate]
    loaded = manifests.load(args.filename, strict=mode == "strict")
    for manifest in loaded:
        if mode == "warn":
            for warning in manifest.warnings:
                ctx.warn(f"Warning: {warning}")
        set_namespace(ctx, manifest)
    return loaded


def set_namespace(ctx: Context, manifest: manifests.Manifest) -> None:
    """Object's namespace, else -n, else default; -n must not contradict it."""
    meta = manifest.message.metadata
    if not manifest.kind.namespaced:
        meta.namespace = ""
        return
    if meta.namespace and ctx.namespace and meta.namespace != ctx.namespace:
        raise CommandError(
            f'the namespace from the provided object "{meta.namespace}" does not match the '
            f'namespace "{ctx.namespace}". You must pass \'--namespace={meta.namespace}\' to '
            f"perform this operation.")
    meta.namespace = meta.namespace or ctx.namespace_for(manifest.kind)


async def run_apply(ctx: Context, args: argparse.Namespace) -> int:
    for manifest in load(ctx, args):
        try:
            outcome = await apply_one(ctx, manifest)
        except Unavailable:
            raise
        except ApiError as err:
            ctx.failed = True
            doing = getattr(err, "doing", "applying")
            ctx.warn(ctl_errors.from_server(err, f'error when {doing} "{manifest.source}"'))
            continue
        ctx.print(f"{resources.qualified(manifest.kind)}/{manifest.name} {outcome}")
    return 1 if ctx.failed else 0


def _for_create(manifest: manifests.Manifest) -> Message:
    message = type(manifest.message)()
    message.CopyFrom(manifest.message)
    if manifest.kind.has_status:
        message.ClearField("status")
    for field in ("resource_version", "uid", "creation_timestamp", "deletion_timestamp",
                  "generation"):
        message.metadata.ClearField(field)
    return message


async def apply_one(ctx: Context, manifest: manifests.Manifest) -> str:
    """Create or update one object: "created", "configured" or "unchanged"."""
    api = ctx.client.resource(manifest.kind)
    meta = manifest.message.metadata
    wanted = convert.to_dict(manifest.message)
    for attempt in range(MAX_ATTEMPTS):
        try:
            stored = await api.get(meta.name, meta.namespace)
        except NotFound:
            try:
                await api.create(_for_create(manifest))
                return "created"
            except AlreadyExists:
                continue  # created meanwhile: update it instead
            except ApiError as err:
                err.doing = "creating"  # type: ignore[attr-defined]
                raise
        current = convert.to_dict(stored)
        merged = merge.overlay(current, wanted)
        if merged == current:
            return "unchanged"
        update, _ = convert.from_dict(merged)
        update.metadata.resource_version = stored.metadata.resource_version
        try:
            await api.update(update)
            return "configured"
        except Conflict:
            if attempt == MAX_ATTEMPTS - 1:
                raise
        except Unavailable:
            raise
        except ApiError as err:
            err.doing = "updating"  # type: ignore[attr-defined]
            raise
    raise Conflict(f'{resources.plural(manifest.kind)} "{meta.name}": the object kept '
                   f"changing; giving up after {MAX_ATTEMPTS} attempts")


async def run_create_files(ctx: Context, args: argparse.Namespace) -> int:
    """``kyb create -f``: create each object; AlreadyExists is an error."""
    for manifest in load(ctx, args):
        api = ctx.client.resource(manifest.kind)
        try:
            await api.create(_for_create(manifest))
        except Unavailable:
            raise
        except ApiError as err:
            ctx.failed = True
            ctx.warn(ctl_errors.from_server(err, f'error when creating "{manifest.source}"'))
            continue
        ctx.print(f"{resources.qualified(manifest.kind)}/{manifest.name} created")
    return 1 if ctx.failed else 0
