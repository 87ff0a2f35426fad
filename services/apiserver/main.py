"""kyb-apiserver: serves the Kybernetes API over gRPC, storing objects in etcd."""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import signal
import sys

from services.apiserver import allocator
from services.apiserver.etcd_process import EtcdProcess
from services.apiserver.server import ApiServer
from services.apiserver.storage import Storage
from services.machinery.httpserver import HttpServer
from services.machinery.logs import install_task_dump, setup_logging

log = logging.getLogger("kyb-apiserver")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kyb-apiserver", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bind-address", default="0.0.0.0", help="address to serve gRPC on")
    p.add_argument("--port", type=int, default=6443, help="gRPC port")
    p.add_argument("--metrics-port", type=int, default=8081,
                   help="HTTP port for /metrics, /healthz, /readyz (0: any free port)")
    p.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("/var/lib/kyb-apiserver"),
                   help="state directory (the embedded etcd's data lives here)")
    p.add_argument("--etcd-servers", default="",
                   help="comma-separated etcd HOST:PORT endpoints; empty: start and supervise "
                        "a local etcd in --data-dir")
    p.add_argument("--embedded-etcd-port", type=int, default=2379,
                   help="client port of the embedded etcd (peer port is this + 1)")
    p.add_argument("--service-cluster-ip-range", default=allocator.DEFAULT_SERVICE_CIDR,
                   help="CIDR that Service ClusterIPs are allocated from")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="range that NodePorts are allocated from")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute "
                        "toleration added to every pod that has none")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute "
                        "toleration added to every pod that has none")
    p.add_argument("--watch-cache-size", type=int, default=1024,
                   help="events of history kept per kind for resuming watches")
    p.add_argument("--watch-batch-window", type=float, default=0.02,
                   help="seconds WatchBatched waits after an event for more to send in the same "
                        "message (0: only what is already queued)")
    p.add_argument("--bookmark-interval", type=float, default=1.0,
                   help="seconds between etcd progress notifications, which become BOOKMARK "
                        "events, for the embedded etcd (with --etcd-servers, set etcd's "
                        "--experimental-watch-progress-notify-interval instead)")
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0,
                   help="seconds between etcd compactions (0: never)")
    p.add_argument("--etcd-timeout", type=float, default=5.0, help="deadline of each etcd call")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return p.parse_args(argv)


async def serve(opts: argparse.Namespace) -> int:
    etcd = None
    if opts.etcd_servers:
        endpoints = [e.strip() for e in opts.etcd_servers.split(",") if e.strip()]
    else:
        etcd = EtcdProcess(opts.data_dir / "etcd", opts.embedded_etcd_port,
                           opts.embedded_etcd_port + 1, progress_interval=opts.bookmark_interval)
        await etcd.start()
        endpoints = [etcd.endpoint]
    storage = Storage(endpoints, timeout=opts.etcd_timeout, retry_for=60.0)
    server = ApiServer(storage, service_cidr=opts.service_cluster_ip_range,
                       node_ports=allocator.parse_port_range(opts.service_node_port_range),
                       watch_cache_size=opts.watch_cache_size,
                       watch_batch_window=opts.watch_batch_window,
                       default_toleration_seconds=(opts.default_not_ready_toleration_seconds,
                                                   opts.default_unreachable_toleration_seconds),
                       compaction_interval=opts.etcd_compaction_interval)
    http = HttpServer(opts.bind_address, opts.metrics_port, health=server.healthy)
    # A signal cancels whatever is under way, start-up included.
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    install_task_dump(loop)
    try:
        await http.start()
        await server.start(opts.bind_address, opts.port)
        log.info("serving", extra={"port": server.port, "metrics_port": http.port,
                                   "etcd": ",".join(endpoints)})
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        log.info("shutting down")
        await server.stop()
        await http.stop()
        if etcd is not None:
            await etcd.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    setup_logging(opts.log_level)
    try:
        return asyncio.run(serve(opts))
    except (OSError, ValueError) as err:
        log.error("%s", err)
        print(f"kyb-apiserver: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
