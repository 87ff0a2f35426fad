"""``python -m tests.bench [NAME] [--quick] ...``: run the benchmarks.

Without a name it runs every benchmark in turn, each with its defaults
(``--quick`` shortens them). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time

import grpc

from services.machinery import ApiError
from tests.bench import api, fanout



class QuickOnly:
    """Adapts a benchmark module whose only entry is ``async run(quick)`` to
    the runner's add_arguments/config_from/run protocol."""

    def __init__(self, module_name: str):
        self.module = importlib.import_module(module_name)
        self.__doc__ = self.module.__doc__

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def config_from(self, opts: argparse.Namespace) -> bool:
        return bool(getattr(opts, "quick", False))

    def run(self, quick: bool) -> None:
        asyncio.run(self.module.run(quick))


BENCHMARKS = {
    "api": (api, "API request throughput: pod creates vs raw etcd and a no-op gRPC server"),
    "fanout": (fanout, "watch fan-out latency and the highest create rate watchers keep up with"),
    "scheduler": (QuickOnly("tests.bench.scheduler"),
                  "scheduling throughput and latency with hollow nodes (100/1000/5000 nodes)"),
    "kubelet": (QuickOnly("tests.bench.kubelet"),
                "pod startup latency with real containers vs plain docker run"),
    "cluster": (QuickOnly("tests.bench.cluster"),
                "make cluster: bring-up time, 30-pod Deployment vs docker run, control-plane memory"),
    "kube-proxy": (QuickOnly("tests.bench.kube_proxy"),
                   "iptables rule programming at 1000/5000 services vs bare iptables-restore"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="shorter runs (fewer operations and steps)")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK",
                           help="one benchmark to run (default: all)")
    for name, (module, summary) in BENCHMARKS.items():
        sp = sub.add_parser(name, help=summary, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--quick", action="store_true", default=argparse.SUPPRESS,
                        help="shorter run")
        module.add_arguments(sp)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    names = [opts.benchmark] if opts.benchmark else list(BENCHMARKS)
    try:
        for i, name in enumerate(names):
            module = BENCHMARKS[name][0]
            if opts.benchmark:
                config = module.config_from(opts)
            else:  # every benchmark with its defaults
                config = module.config_from(parse_args(
                    [*(["--quick"] if opts.quick else []), name]))
            if i:
                print()
            started = time.monotonic()
            print(f"== {name}: {BENCHMARKS[name][1]}", flush=True)
            module.run(config)
            print(f"({name} took {time.monotonic() - started:.0f}s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ApiError, grpc.RpcError, RuntimeError, TimeoutError, ValueError, OSError) as err:
        print(f"bench: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
