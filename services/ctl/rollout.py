"""``kyb rollout status|history|undo|pause|resume|restart``: follow and steer
a deployment's rollout, as kubectl does.

The revision rules (which ReplicaSets are a deployment's history, which
template an undo restores) are the Deployment controller's own, imported
from :mod:`services.controller_manager.rollout` so the CLI and the
controller cannot disagree. What is the CLI's alone — the status message of
kubectl's DeploymentStatusViewer, the history table, the pause/resume/restart
edits — is pure here and unit-tested; the ``run_*`` shells only read,
write and watch.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from services.api import kinds
from services.controller_manager import rollout as revisions
from services.ctl import describers, resources, tabwriter
from services.ctl.context import CommandError, Context
from services.machinery import Conflict, Expired, Unavailable

CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# Deployment condition reason the controller sets when progressDeadlineSeconds passes.
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
RETRIES = 5


class RolloutError(Exception):
    """A rollout that cannot (or will not) finish: the command fails with it."""


# --- pure: what kubectl prints -----------------------------------------------------------------


def status_message(deployment: Any, revision: int = 0) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: the line to print and whether the
    rollout is complete. Raises RolloutError when the progress deadline has
    passed or the deployment is not at ``revision`` (0: any)."""
    name = deployment.metadata.name
    if revision > 0:
        current = revisions.revision_of(deployment) or 0
        if current != revision:
            raise RolloutError(f"desired revision ({revision}) is different from the running "
                               f"revision ({current})")
    status = deployment.status
    if deployment.metadata.generation > status.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    progressing = next((c for c in status.conditions if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == TIMED_OUT_REASON:
        raise RolloutError(f'deployment "{name}" exceeded its progress deadline')
    desired = revisions.replicas_of(deployment)
    if status.updated_replicas < desired:
        return (f'Waiting for deployment "{name}" rollout to finish: {status.updated_replicas} '
                f"out of {desired} new replicas have been updated..."), False
    if status.replicas > status.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.replicas - status.updated_replicas} old replicas are pending "
                f"termination..."), False
    if status.available_replicas < status.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.available_replicas} of {status.updated_replicas} updated replicas "
                f"are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def history_lines(history: Sequence[tuple[int, Any]]) -> list[str]:
    """The REVISION / CHANGE-CAUSE table of ``(revision, replicaset)`` pairs."""
    if not history:
        return ["No rollout history found."]
    rows = ["REVISION\tCHANGE-CAUSE"]
    rows += [f"{rev}\t{rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION) or '<none>'}"
             for rev, rs in history]
    return tabwriter.tabwrite(rows, padding=2)


def revision_detail(history: Sequence[tuple[int, Any]], revision: int) -> str:
    """``--revision N``: that revision's pod template, as kubectl prints it."""
    for rev, rs in history:
        if rev == revision:
            w = describers.Writer()
            template = _copy(rs.spec.template)
            if rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION):
                template.metadata.annotations[CHANGE_CAUSE_ANNOTATION] = \
                    rs.metadata.annotations[CHANGE_CAUSE_ANNOTATION]
            describers._pod_template(w, template)  # noqa: SLF001 - describe's own layout
            return w.text()
    raise RolloutError(f"unable to find the specified revision {revision}")


def paused(deployment: Any, pause: bool) -> Any:
    """A copy with spec.paused set; RolloutError if it already is so
    (kubectl's "is already paused" / "is not paused")."""
    if deployment.spec.paused == pause:
        raise RolloutError("is already paused" if pause else "is not paused")
    new = _copy(deployment)
    new.spec.paused = pause
    return new


def restarted(deployment: Any, now: float) -> Any:
    """A copy whose pod template carries kubectl's restartedAt annotation,
    which makes a new template and so a new rollout."""
    if deployment.spec.paused:
        raise RolloutError("can't restart paused deployment (run rollout resume first)")
    new = _copy(deployment)
    when = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc).astimezone()
    new.spec.template.metadata.annotations[RESTARTED_AT_ANNOTATION] = \
        when.isoformat(timespec="seconds")
    return new


def _copy(obj: Any) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


# --- the command ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    from services.ctl.main import duration  # main is loaded by the time it registers us
    rollout = subparsers.add_parser(
        "rollout", help="manage the rollout of a deployment",
        description="Follow, inspect, undo, pause, resume or restart a deployment's rollout: "
                    "kyb rollout SUBCOMMAND deployment/NAME.")
    commands = rollout.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND")
    commands.required = True

    def sub(name: str, help_: str, run: Callable) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[parent], help=help_, description=help_ + ".")
        parser.add_argument("resources", nargs="+", metavar="deployment/NAME")
        parser.set_defaults(run=run)
        return parser

    status = sub("status", "watch a rollout until it completes", run_status)
    status.add_argument("--revision", type=int, default=0, metavar="N",
                        help="fail unless the deployment is at this revision (default: any)")
    status.add_argument("--timeout", type=duration, default=0.0, metavar="DURATION",
                        help="give up after this long (default 0: wait for ever)")
    status.add_argument("-w", "--watch", type=_bool, nargs="?", const=True, default=True,
                        metavar="BOOL", help="follow until done (default true); false: "
                                             "print the status once")
    history = sub("history", "list a deployment's revisions", run_history)
    history.add_argument("--revision", type=int, default=0, metavar="N",
                         help="show the pod template of this revision")
    undo = sub("undo", "roll back to a previous revision", run_undo)
    undo.add_argument("--to-revision", type=int, default=0, metavar="N",
                      help="the revision to roll back to (default 0: the previous one)")
    sub("pause", "stop a deployment from rolling out template changes", run_pause)
    sub("resume", "let a paused deployment roll out again", run_resume)
    sub("restart", "roll out the same template again (new pods)", run_restart)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _deployments(ctx: Context, args: argparse.Namespace) -> list[tuple[kinds.Kind, str, str]]:
    """(kind, name, namespace) of every deployment named; other kinds are refused."""
    found = []
    for target in resources.parse(args.resources):
        if target.kind.kind != "Deployment":
            raise CommandError(f"no {args.rollout_command} support for "
                               f"{resources.plural(target.kind)}: only deployments roll out")
        if not target.names:
            raise CommandError("you must specify a deployment name, e.g. deployment/web")
        found.extend((target.kind, name, ctx.namespace_for(target.kind))
                     for name in target.names)
    return found


async def run_status(ctx: Context, args: argparse.Namespace) -> int:
    targets = _deployments(ctx, args)
    if len(targets) != 1:
        raise CommandError("rollout status is only supported on one deployment at a time")
    kind, name, namespace = targets[0]
    follow = follow_status(ctx, kind, name, namespace, args.revision, args.watch)
    try:
        if args.timeout > 0:
            await asyncio.wait_for(follow, args.timeout)
        else:
            await follow
    except asyncio.TimeoutError:
        raise CommandError("timed out waiting for the condition") from None
    except RolloutError as err:
        raise CommandError(str(err)) from None
    return 0


async def follow_status(ctx: Context, kind: kinds.Kind, name: str, namespace: str,
                        revision: int = 0, watch: bool = True) -> None:
    """Print the status line whenever it changes until the rollout is done
    (or once, without ``watch``). Each pass watches from the last version
    read; a closed, expired or broken stream means read again and watch on."""
    api = ctx.client.resource(kind)
    last = ""

    def show(deployment: Any) -> bool:
        nonlocal last
        message, done = status_message(deployment, revision)
        if message != last:
            ctx.print(message)
            last = message
        return done

    deployment = await api.get(name, namespace)
    if show(deployment) or not watch:
        return
    version = deployment.metadata.resource_version
    while True:
        try:
            async for event in api.watch(namespace, field_selector=f"metadata.name={name}",
                                         resource_version=version):
                obj = event.object
                version = obj.metadata.resource_version or version
                if event.type == "DELETED":
                    raise CommandError(f'{resources.plural(kind)} "{name}" not found')
                if event.type in ("ADDED", "MODIFIED") and show(obj):
                    return
        except (Expired, Unavailable):
            pass  # too old, or the server went away: the get below retries and re-reads
        deployment = await api.get(name, namespace)
        if show(deployment):
            return
        version = deployment.metadata.resource_version


async def _history(ctx: Context, deployment: Any) -> list[tuple[int, Any]]:
    listing = await ctx.client.resource("replicasets").list_all(deployment.metadata.namespace)
    return revisions.revision_history(revisions.owned_by(deployment, listing.items))


async def run_history(ctx: Context, args: argparse.Namespace) -> int:
    for index, (kind, name, namespace) in enumerate(_deployments(ctx, args)):
        deployment = await ctx.client.resource(kind).get(name, namespace)
        history = await _history(ctx, deployment)
        if index:
            ctx.print()
        if args.revision > 0:
            try:
                detail = revision_detail(history, args.revision)
            except RolloutError as err:
                raise CommandError(str(err)) from None
            ctx.print(f"{resources.qualified(kind)}/{name} with revision #{args.revision}")
            ctx.out.write(detail)
            ctx.out.flush()
            continue
        ctx.print(f"{resources.qualified(kind)}/{name}")
        for line in history_lines(history):
            ctx.print(line)
    return 0


async def run_undo(ctx: Context, args: argparse.Namespace) -> int:
    for kind, name, namespace in _deployments(ctx, args):
        qualified = f"{resources.qualified(kind)}/{name}"
        api = ctx.client.resource(kind)
        for attempt in range(RETRIES):
            deployment = await api.get(name, namespace)
            if deployment.spec.paused:
                raise CommandError(f"you cannot rollback a paused deployment; resume it first "
                                   f"with 'kyb rollout resume {qualified}' and try again")
            listing = await ctx.client.resource("replicasets").list_all(namespace)
            try:
                source = revisions.rollback_source(deployment, listing.items, args.to_revision)
                updated = revisions.rolled_back(deployment, listing.items, args.to_revision)
            except revisions.RevisionNotFound as err:
                raise CommandError(str(err)) from None
            if updated is None:
                ctx.print(f"{qualified} skipped rollback (current template already matches "
                          f"revision {revisions.revision_of(source)})")
                break
            try:
                await api.update(updated)
            except Conflict:
                if attempt == RETRIES - 1:
                    raise
                continue
            ctx.print(f"{qualified} rolled back")
            break
    return 0


async def _edit(ctx: Context, args: argparse.Namespace, change: Callable[[Any], Any],
                done: str) -> int:
    """Read-modify-write each deployment with ``change``, retrying on
    Conflict; a RolloutError from ``change`` fails that deployment alone."""
    for kind, name, namespace in _deployments(ctx, args):
        api = ctx.client.resource(kind)
        for attempt in range(RETRIES):
            deployment = await api.get(name, namespace)
            try:
                updated = change(deployment)
            except RolloutError as err:
                ctx.failed = True
                ctx.warn(f'error: {resources.plural(kind)} "{name}" {err}'
                         if str(err).startswith("is ") else f"error: {err}")
                break
            try:
                await api.update(updated)
            except Conflict:
                if attempt == RETRIES - 1:
                    raise
                continue
            ctx.print(f"{resources.qualified(kind)}/{name} {done}")
            break
    return 1 if ctx.failed else 0


async def run_pause(ctx: Context, args: argparse.Namespace) -> int:
    return await _edit(ctx, args, lambda d: paused(d, True), "paused")


async def run_resume(ctx: Context, args: argparse.Namespace) -> int:
    return await _edit(ctx, args, lambda d: paused(d, False), "resumed")


async def run_restart(ctx: Context, args: argparse.Namespace) -> int:
    return await _edit(ctx, args, lambda d: restarted(d, ctx.clock()), "restarted")
