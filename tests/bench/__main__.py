"""``python -m tests.bench [api|fanout] [--quick] ...``: run the benchmarks.

Without a name it runs every benchmark in turn, each with its defaults
(``--quick`` shortens them). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc

from services.machinery import ApiError
from tests.bench import api, fanout

BENCHMARKS = {
    "api": (api, "API request throughput: pod creates vs raw etcd and a no-op gRPC server"),
    "fanout": (fanout, "watch fan-out latency and the highest create rate watchers keep up with"),
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
