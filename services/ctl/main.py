"""``kyb``: the Kybernetes command line, shaped like kubectl.

Thin wiring: parse the command line, find the API server as every component
does, run the command in one ``asyncio.run``, and turn every failure into
one ``error: ...`` line and exit status 1 (130 on Ctrl-C). A traceback is a
bug, so the last resort prints one line too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from services.api import convert, kinds
from services.machinery.flags import duration  # noqa: F401 (commands import it from here)
from services.ctl import (
    apply, auth, create, delete, describe, get, logs, node, resources, rollout, scale,
)
from services.ctl import exec as exec_
from services.ctl import errors as ctl_errors
from services.ctl.context import CommandError, Context
from services.machinery import ApiError, Client, Unavailable, config

PROG = "kyb"
DEFAULT_TIMEOUT = 10.0
# How long an unreachable server is retried (round the replicas) before the
# command gives up: long enough to try each replica, short enough to feel
# like kubectl's immediate "connection refused".
RETRY_FOR = 2.0


class UsageError(Exception):
    """A bad command line (argparse's complaint)."""


class _Parser(argparse.ArgumentParser):
    """argparse with kubectl's single-line ``error:`` instead of usage + exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Flags accepted before and after the command; the copy on each command
    leaves the value alone unless given there (SUPPRESS)."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value
    parser.add_argument("--server", "-s", default=default(None), metavar="HOST:PORT[,...]",
                        help="API server address(es); else $KYB_SERVER, else the client config "
                             f"file, else {config.DEFAULT_SERVER}")
    parser.add_argument("--kubeconfig", default=default(None), metavar="PATH",
                        help="client config file (server, certificates or token); else "
                             "$KYB_CONFIG, else ~/.kyb/config when it exists")
    parser.add_argument("--request-timeout", type=duration, default=default(None),
                        metavar="SECONDS",
                        help=f"deadline of each request (default {DEFAULT_TIMEOUT:g}s; 0: none); "
                             "also ends a watch")
    parser.add_argument("-n", "--namespace", default=default(None), metavar="NS",
                        help="namespace for namespaced kinds (default: default)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Control a Kybernetes cluster, like kubectl.")
    _global_flags(parser, suppress=False)
    parent = _Parser(add_help=False)
    _global_flags(parent, suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module in (apply, get, describe, delete, create, logs, exec_, scale, rollout, node, auth):
        module.register(subparsers, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kyb`` with ``argv`` (default: sys.argv[1:]); the exit status."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kyb get pods | head`
        return 0


def _prepare(argv: list[str]) -> tuple[argparse.Namespace, config.ClientConfig] | int:
    """The parsed command line and client config, or the exit status when
    there is nothing to run (--help, a usage or config error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        return _fail(str(err))
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    try:
        return args, config.load(args.server, args.kubeconfig)
    except ValueError as err:
        return _fail(str(err))


def _main(argv: list[str]) -> int:
    prepared = _prepare(argv)
    if isinstance(prepared, int):
        return prepared
    args, cfg = prepared
    try:
        return asyncio.run(_run(args, cfg))
    except KeyboardInterrupt:
        raise
    except BrokenPipeError:
        # The reader went away (`kyb logs POD | head`): stop quietly, as a
        # process killed by SIGPIPE would, and keep Python from complaining
        # again when it flushes stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a real file
            pass
        return 141
    except Exception as err:  # noqa: BLE001 - the promise is: never a traceback
        return _report(err, cfg.servers)


async def main_async(argv: Sequence[str]) -> int:
    """:func:`main` for a caller already inside an event loop (tests that
    serve a fake API in that same loop)."""
    prepared = _prepare(list(argv))
    if isinstance(prepared, int):
        return prepared
    args, cfg = prepared
    try:
        return await _run(args, cfg)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as err:  # noqa: BLE001 - the promise is: never a traceback
        return _report(err, cfg.servers)


def _report(err: Exception, servers: Sequence[str]) -> int:
    """One line on stderr for a failed command; the exit status."""
    if isinstance(err, (CommandError, resources.ArgumentError, kinds.UnknownKindError,
                        convert.ConversionError, convert.ManifestError)):
        return _fail(str(err))
    if isinstance(err, Unavailable):
        return _fail(f"cannot reach the API server at {','.join(servers)}: "
                     f"{_one_line(str(err))}")
    if isinstance(err, ApiError):
        print(ctl_errors.from_server(err), file=sys.stderr)
        return 1
    return _fail(f"{type(err).__name__}: {_one_line(str(err))}")


async def _run(args: argparse.Namespace, cfg: config.ClientConfig) -> int:
    timeout = args.request_timeout
    client = Client(config=cfg, timeout=(timeout or 24 * 3600.0) if timeout is not None
                    else DEFAULT_TIMEOUT, retry_for=RETRY_FOR)
    if timeout:
        args.watch_timeout = max(1, int(timeout))
    ctx = Context(client=client, namespace=args.namespace)
    try:
        return await args.run(ctx, args)
    finally:
        await client.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str) -> int:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
