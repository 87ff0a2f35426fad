"""``kyb logs``: a container's log, relayed by the API server from the pod's
kubelet, written to stdout byte for byte as it arrives.

Also home of what ``kyb exec`` shares with it: finding the pod a command
means (``NAME``, ``pod/NAME``, or ``deploy/NAME``/``rs/NAME`` for one of
their pods, as kubectl does) and the container when none is named.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any, TextIO

from services.api import selectors
from services.ctl import resources
from services.ctl.context import CommandError, Context

# kubectl's annotation naming the container logs/exec use when none is given.
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    from services.ctl.main import duration  # main is loaded by the time it registers us
    parser = subparsers.add_parser(
        "logs", parents=[parent], help="print the logs of a container in a pod",
        description="Print a container's log: POD, pod/POD, or TYPE/NAME (deploy, rs) for one "
                    "of its pods. With several containers, -c chooses (else the first).")
    parser.add_argument("pod", metavar="POD | TYPE/NAME")
    parser.add_argument("container_arg", nargs="?", metavar="CONTAINER",
                        help="the container (same as -c)")
    parser.add_argument("-c", "--container", default="", metavar="NAME",
                        help="the container whose log to print")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep streaming new output until Ctrl-C or the container ends")
    parser.add_argument("--tail", type=int, default=-1, metavar="LINES",
                        help="only the last LINES lines (default -1: all)")
    parser.add_argument("-p", "--previous", action="store_true",
                        help="the log of the previous, terminated instance of the container")
    parser.add_argument("--timestamps", action="store_true",
                        help="prefix each line with its RFC3339 timestamp")
    parser.add_argument("--since", type=duration, default=None, metavar="DURATION",
                        help="only lines newer than this (e.g. 10s, 5m, 1h)")
    parser.set_defaults(run=run_logs)


async def run_logs(ctx: Context, args: argparse.Namespace) -> int:
    if args.container and args.container_arg and args.container != args.container_arg:
        raise CommandError("only one of -c or an inline [CONTAINER] arg is allowed")
    pod = await resolve_pod(ctx, args.pod)
    container, notice = default_container(pod, args.container or args.container_arg or "")
    if notice:
        ctx.warn(notice)
    stream = ctx.client.resource("pods").logs(
        pod.metadata.name, pod.metadata.namespace, container=container, follow=args.follow,
        tail_lines=args.tail if args.tail >= 0 else None, previous=args.previous,
        timestamps=args.timestamps,
        since_seconds=max(1, math.ceil(args.since)) if args.since else None)
    async for chunk in stream:
        write_bytes(ctx.out, chunk)
    return 0


# --- shared with exec ---------------------------------------------------------------------


async def resolve_pod(ctx: Context, ref: str) -> Any:
    """The pod ``ref`` means: ``NAME`` or ``pod/NAME``; for ``TYPE/NAME`` of a
    workload, the pod of its selector kubectl would pick (noting the choice
    on stderr when there were several)."""
    kind_name, sep, name = ref.rpartition("/")
    if not sep:
        kind_name, name = "pods", ref
    if not name:
        raise CommandError(f"invalid resource name {ref!r}")
    kind = resources.lookup(kind_name)
    namespace = ctx.namespace_for(kind)
    owner = await ctx.client.resource(kind).get(name, namespace)
    if kind.kind == "Pod":
        return owner
    spec = getattr(owner, "spec", None)
    if spec is None or not _has_field(spec, "selector"):
        raise CommandError(f"cannot find the pods of {resources.qualified(kind)}/{name}: "
                           f"it has no pod selector")
    selector = selectors.to_text(spec.selector)
    listing = await ctx.client.resource("pods").list_all(namespace, label_selector=selector)
    pods = list(listing.items)
    if not pods:
        raise CommandError(f"no pods found for {resources.qualified(kind)}/{name}")
    chosen = pick_pod(pods)
    if len(pods) > 1:
        ctx.warn(f"Found {len(pods)} pods, using pod/{chosen.metadata.name}")
    return chosen


def _has_field(message: Any, field: str) -> bool:
    return field in message.DESCRIPTOR.fields_by_name


_PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}


def pick_pod(pods: Sequence[Any]) -> Any:
    """The pod whose log says most, as kubectl's ByLogging orders them:
    scheduled before not, Running before Unknown before Pending, ready before
    not, more restarts first, then the oldest."""
    def key(pod: Any) -> tuple:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)
        restarts = sum(s.restart_count for s in pod.status.container_statuses)
        created = pod.metadata.creation_timestamp
        return (not pod.spec.node_name, _PHASE_RANK.get(pod.status.phase, 3), not ready,
                -restarts, created.seconds, created.nanos, pod.metadata.name)
    return min(pods, key=key)


def default_container(pod: Any, requested: str) -> tuple[str, str | None]:
    """The container to use and, when kubectl would note its choice, the
    note: ``Defaulted container "a" out of: a, b``. ``requested`` wins; with
    several containers the default-container annotation, else the first."""
    if requested:
        return requested, None
    names = [c.name for c in pod.spec.containers]
    if len(names) <= 1:
        return (names[0] if names else ""), None
    annotated = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if annotated in names:
        return annotated, None
    others = ", ".join(names)
    init = [c.name for c in pod.spec.init_containers]
    if init:
        others += f" (init: {', '.join(init)})"
    return names[0], f'Defaulted container "{names[0]}" out of: {others}'


def write_bytes(stream: TextIO, data: bytes) -> None:
    """Raw bytes to a text stream: straight to its byte buffer when it has
    one (after flushing any text written before), else decoded."""
    if not data:
        return
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()
        return
    stream.flush()
    buffer.write(data)
    buffer.flush()

