"""``kyb cordon|uncordon|drain NODE``: take a node out of scheduling and
empty it, as kubectl does.

Drain cordons the node, decides which of its pods to evict with kubectl's
filters (:func:`plan_drain`, pure), deletes them — there is no eviction
subresource or PodDisruptionBudget here, so eviction is a delete with the
pod's grace period — and waits until they are gone: a pod on a node goes
only when its kubelet has stopped it and confirmed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from services.ctl import errors as ctl_errors
from services.ctl import resources
from services.ctl.context import CommandError, Context
from services.machinery import (
    ApiError, Conflict, Expired, Invalid, NotFound, PreconditionFailed, Unavailable,
)

RETRIES = 5
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

# kubectl's words (k8s.io/kubectl/pkg/drain/filters.go), so scripts and
# eyes trained on kubectl recognise them.
DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


# --- pure: what drain does with each pod ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DrainOptions:
    force: bool = False
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False


@dataclasses.dataclass
class DrainPlan:
    """Pods to evict, and by message the ``ns/name`` of pods refused (errors)
    or evicted/skipped with a warning, in the order met."""

    evict: list[Any] = dataclasses.field(default_factory=list)
    errors: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    warnings: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def error_text(self) -> str:
        """``cannot delete <why>: ns/a, ns/b`` per reason, joined by "; "."""
        return "; ".join(f"cannot delete {why}: {', '.join(pods)}"
                         for why, pods in self.errors.items())

    def warning_text(self) -> str:
        """``<what>: ns/a, ns/b`` per warning, joined by "; " (kubectl's form)."""
        return "; ".join(f"{what}: {', '.join(pods)}" for what, pods in self.warnings.items())


def _finished(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def _controller(pod: Any) -> Any | None:
    return next((ref for ref in pod.metadata.owner_references if ref.controller), None)


def _has_local_storage(pod: Any) -> bool:
    return any(v.HasField("empty_dir") for v in pod.spec.volumes)


def plan_drain(pods: Iterable[Any], options: DrainOptions) -> DrainPlan:
    """kubectl's drain filters, in its order, stopping at the first that
    keeps a pod: DaemonSet pods (refused, or skipped with
    --ignore-daemonsets), mirror pods (skipped), pods with emptyDir (refused
    unless --delete-emptydir-data), pods no controller will recreate
    (refused unless --force). Finished pods are always evicted. Unlike
    kubectl, every warning a pod earned is kept, not only the last."""
    plan = DrainPlan()
    for pod in pods:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        verdict, warnings = _judge(pod, options)
        for warning in warnings:
            plan.warnings.setdefault(warning, []).append(key)
        if verdict == "evict":
            plan.evict.append(pod)
        elif verdict != "skip":
            plan.errors.setdefault(verdict, []).append(key)
    return plan


def _judge(pod: Any, options: DrainOptions) -> tuple[str, list[str]]:
    """("evict" | "skip" | <fatal reason>, warnings) for one pod."""
    warnings: list[str] = []
    finished = _finished(pod)
    controller = _controller(pod)
    if controller is not None and controller.kind == "DaemonSet" and not finished:
        if not options.ignore_daemonsets:
            return DAEMONSET_FATAL, warnings
        return "skip", [DAEMONSET_WARNING]
    if MIRROR_ANNOTATION in pod.metadata.annotations:
        return "skip", warnings
    if _has_local_storage(pod) and not finished:
        if not options.delete_emptydir_data:
            return LOCAL_STORAGE_FATAL, warnings
        warnings.append(LOCAL_STORAGE_WARNING)
    if controller is None and not finished:
        if not options.force:
            return UNMANAGED_FATAL, warnings
        warnings.append(UNMANAGED_WARNING)
    return "evict", warnings


def cordoned(node: Any, unschedulable: bool) -> Any | None:
    """A copy of ``node`` with spec.unschedulable set, or None if it already is."""
    if node.spec.unschedulable == unschedulable:
        return None
    new = type(node)()
    new.CopyFrom(node)
    new.spec.unschedulable = unschedulable
    return new


def remaining(pods: Iterable[Any], waiting: dict[str, str]) -> dict[str, str]:
    """Of ``waiting`` (uid → ns/name), the pods still present in ``pods``."""
    present = {p.metadata.uid for p in pods}
    return {uid: key for uid, key in waiting.items() if uid in present}


# --- commands --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    from services.ctl.main import duration  # main is loaded by the time it registers us
    for name, help_, run in (
            ("cordon", "mark nodes unschedulable", run_cordon),
            ("uncordon", "mark nodes schedulable again", run_uncordon)):
        parser = subparsers.add_parser(name, parents=[parent], help=help_,
                                       description=f"{help_[0].upper()}{help_[1:]}: NODE... "
                                                   "or -l SELECTOR.")
        _node_args(parser)
        parser.set_defaults(run=run)
    drain = subparsers.add_parser(
        "drain", parents=[parent], help="cordon nodes and evict their pods",
        description="Cordon NODE, then evict its pods and wait until they are gone. Pods no "
                    "controller would recreate need --force, pods with emptyDir volumes "
                    "--delete-emptydir-data, DaemonSet pods --ignore-daemonsets.")
    _node_args(drain)
    drain.add_argument("--force", action="store_true",
                       help="also evict pods that declare no controller (they are not recreated)")
    drain.add_argument("--ignore-daemonsets", action="store_true",
                       help="leave DaemonSet-managed pods alone instead of refusing")
    drain.add_argument("--delete-emptydir-data", action="store_true",
                       help="evict pods with emptyDir volumes (their data is lost)")
    drain.add_argument("--grace-period", type=int, default=-1, metavar="SECONDS",
                       help="seconds each pod gets to stop (default -1: the pod's own; "
                            "0: at once)")
    drain.add_argument("--timeout", type=duration, default=0.0, metavar="DURATION",
                       help="give up waiting for the pods after this long (default 0: "
                            "wait for ever)")
    drain.set_defaults(run=run_drain)


def _node_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("nodes", nargs="*", metavar="NODE")
    parser.add_argument("-l", "--selector", default="", metavar="SELECTOR",
                        help="the nodes matching this label selector")


async def _node_names(ctx: Context, args: argparse.Namespace) -> list[str]:
    names = []
    for arg in args.nodes:
        kind_name, sep, name = arg.rpartition("/")
        if (sep and resources.lookup(kind_name).kind != "Node") or not name:
            raise CommandError(f"{arg!r} is not a node: give NODE or node/NODE")
        names.append(name)
    if names and args.selector:
        raise CommandError("cannot specify both a node name and a selector")
    if args.selector:
        try:
            listing = await ctx.client.resource("nodes").list_all(label_selector=args.selector)
        except Invalid as err:
            raise CommandError(str(err)) from None
        names = [n.metadata.name for n in listing.items]
        if not names:
            ctx.warn("No resources found")
    elif not names:
        raise CommandError(f"USAGE: {args.command} NODE [flags] (give a node name or "
                           f"-l SELECTOR)")
    return names


async def set_unschedulable(ctx: Context, name: str, unschedulable: bool) -> bool:
    """Write spec.unschedulable, retrying on Conflict; False if it already was."""
    api = ctx.client.resource("nodes")
    for attempt in range(RETRIES):
        changed = cordoned(await api.get(name), unschedulable)
        if changed is None:
            return False
        try:
            await api.update(changed)
            return True
        except Conflict:
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def _cordon_each(ctx: Context, args: argparse.Namespace, unschedulable: bool) -> int:
    word = "cordoned" if unschedulable else "uncordoned"
    for name in await _node_names(ctx, args):
        try:
            changed = await set_unschedulable(ctx, name, unschedulable)
        except Unavailable:
            raise
        except ApiError as err:
            ctx.failed = True
            ctx.warn(ctl_errors.from_server(err))
            continue
        ctx.print(f"node/{name} {word}" if changed else f"node/{name} already {word}")
    return 1 if ctx.failed else 0


async def run_cordon(ctx: Context, args: argparse.Namespace) -> int:
    return await _cordon_each(ctx, args, True)


async def run_uncordon(ctx: Context, args: argparse.Namespace) -> int:
    return await _cordon_each(ctx, args, False)


async def run_drain(ctx: Context, args: argparse.Namespace) -> int:
    options = DrainOptions(force=args.force, ignore_daemonsets=args.ignore_daemonsets,
                           delete_emptydir_data=args.delete_emptydir_data)
    for name in await _node_names(ctx, args):
        changed = await set_unschedulable(ctx, name, True)
        ctx.print(f"node/{name} cordoned" if changed else f"node/{name} already cordoned")
        try:
            await drain(ctx, name, options, grace_period=args.grace_period,
                        timeout=args.timeout)
        except DrainError as err:
            raise CommandError(f'unable to drain node "{name}": {err}') from None
        ctx.print(f"node/{name} drained")
    return 0


class DrainError(Exception):
    """Drain refused some pods, or they did not go in time."""


async def drain(ctx: Context, node: str, options: DrainOptions, *, grace_period: int = -1,
                timeout: float = 0.0) -> None:
    """Evict the node's pods as :func:`plan_drain` says and wait until they
    are gone (``timeout`` 0: for ever)."""
    pods = ctx.client.resource("pods")
    listing = await pods.list_all("", field_selector=f"spec.nodeName={node}")
    plan = plan_drain(listing.items, options)
    if plan.errors:
        raise DrainError(plan.error_text())
    if plan.warnings:
        ctx.warn(f"Warning: {plan.warning_text()}")
    waiting: dict[str, str] = {}
    names: dict[str, str] = {}
    for pod in plan.evict:
        meta = pod.metadata
        ctx.print(f"evicting pod {meta.namespace}/{meta.name}")
        try:
            await pods.delete(meta.name, meta.namespace, uid=meta.uid,
                              grace_period_seconds=grace_period if grace_period >= 0 else None)
        except (NotFound, PreconditionFailed):
            # gone already, or replaced by a namesake: nothing of ours to wait for
            ctx.print(f"pod/{meta.name} evicted")
            continue
        waiting[meta.uid] = f"{meta.namespace}/{meta.name}"
        names[meta.uid] = meta.name
    try:
        if timeout > 0:
            await asyncio.wait_for(_wait_gone(ctx, node, waiting, names), timeout)
        else:
            await _wait_gone(ctx, node, waiting, names)
    except asyncio.TimeoutError:
        raise DrainError(f"global timeout reached: {timeout:g}s; pods still terminating: "
                         f"{', '.join(sorted(waiting.values()))}") from None


async def _wait_gone(ctx: Context, node: str, waiting: dict[str, str],
                     names: dict[str, str]) -> None:
    """Until no pod of ``waiting`` (uid → ns/name, shrunk in place) is left:
    list the node's pods, then watch from that list for deletions; when the
    stream closes, expires or breaks, list again."""
    pods = ctx.client.resource("pods")
    selector = f"spec.nodeName={node}"

    def gone(uids: Sequence[str]) -> None:
        for uid in uids:
            if waiting.pop(uid, None) is not None:
                ctx.print(f"pod/{names[uid]} evicted")

    while waiting:
        listing = await pods.list_all("", field_selector=selector)
        still = remaining(listing.items, waiting)
        gone([uid for uid in list(waiting) if uid not in still])
        if not waiting:
            return
        try:
            async for event in pods.watch("", field_selector=selector,
                                          resource_version=listing.metadata.resource_version,
                                          allow_bookmarks=False):
                if event.type == "DELETED":
                    gone([event.object.metadata.uid])
                    if not waiting:
                        return
        except (Expired, Unavailable):
            continue  # too old, or the server went away: list again (the list retries)
