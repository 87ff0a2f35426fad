"""``kyb exec POD -- CMD ARGS...``: run a command in a pod's container
through the API server and the pod's kubelet; its output becomes ours and
its exit code our exit status, as with kubectl.

There is no terminal: stdin (``-i``) is read to its end and sent with the
request, and the output arrives when the command has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from services.ctl import logs
from services.ctl.context import CommandError, Context

DEFAULT_TIMEOUT = 3600.0


def register(subparsers: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    from services.ctl.main import duration  # main is loaded by the time it registers us
    parser = subparsers.add_parser(
        "exec", parents=[parent], help="run a command in a container",
        description="Run CMD in a container of POD (or of one pod of TYPE/NAME): "
                    "kyb exec POD [-c CONTAINER] [-i] -- CMD [ARGS...]. Exits with the "
                    "command's exit code.")
    parser.add_argument("pod", metavar="POD | TYPE/NAME")
    parser.add_argument("command", nargs="*", metavar="-- CMD [ARGS...]",
                        help="the command and its arguments, after --")
    parser.add_argument("-c", "--container", default="", metavar="NAME",
                        help="the container (default: the pod's only or first one)")
    parser.add_argument("-i", "--stdin", action="store_true",
                        help="send our standard input (read to its end) to the command")
    parser.add_argument("-t", "--tty", action="store_true",
                        help="not supported: there is no terminal; ignored with a warning")
    parser.add_argument("--timeout", type=duration, default=DEFAULT_TIMEOUT, metavar="DURATION",
                        help=f"how long the command may run (default {DEFAULT_TIMEOUT:g}s)")
    parser.set_defaults(run=run_exec)
    _split_at_dash(parser)


def _split_at_dash(parser: argparse.ArgumentParser) -> None:
    """Everything after the first ``--`` is the command, verbatim.

    argparse alone cannot say this: a ``*`` positional is filled (empty) at
    POD, so ``exec POD -n NS -- CMD`` would leave CMD unrecognised. kubectl
    (cobra) splits at the dash; so does this parser's parse_known_args,
    which is what the parent's subcommand action calls."""
    parse_known = parser.parse_known_args

    def parse_known_args(args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        if "--" not in argv:
            return parse_known(argv, namespace)
        dash = argv.index("--")
        parsed, extras = parse_known(argv[:dash], namespace)
        if parsed.command:
            extras = [*parsed.command, *extras]  # `exec POD CMD -- x`: not ours to guess
            parsed.command = []
        if extras:
            return parsed, extras
        parsed.command = argv[dash + 1:]
        return parsed, []

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


async def run_exec(ctx: Context, args: argparse.Namespace) -> int:
    if not args.command:
        raise CommandError("you must specify at least one command for the container "
                           "(kyb exec POD -- CMD [ARGS...])")
    if args.tty:
        ctx.warn("Unable to use a TTY - kyb exec has no terminal; running without one")
    pod = await logs.resolve_pod(ctx, args.pod)
    container, notice = logs.default_container(pod, args.container)
    if notice:
        ctx.warn(notice)
    stdin = await asyncio.to_thread(_read_stdin) if args.stdin else b""
    code, out, err = await ctx.client.resource("pods").exec(
        pod.metadata.name, pod.metadata.namespace, args.command, container=container,
        stdin=stdin, timeout_seconds=max(1, int(args.timeout)))
    logs.write_bytes(ctx.out, out)
    logs.write_bytes(ctx.err, err)
    return exit_status(ctx, code)


def exit_status(ctx: Context, code: int) -> int:
    """kubectl's rule: the remote exit code is ours, with a note on stderr
    when it is not 0. No code at all means the command's end was not seen."""
    if code < 0:
        raise CommandError("the command ended without an exit code")
    if code:
        ctx.warn(f"command terminated with exit code {code}")
    return min(code, 255)  # a process status is one byte; 256 must not read as success


def _read_stdin() -> bytes:
    stream: Any = sys.stdin
    if stream is None:
        return b""
    buffer = getattr(stream, "buffer", None)
    data = (buffer or stream).read()
    return data.encode() if isinstance(data, str) else data
