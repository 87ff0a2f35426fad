"""kyb-controller-manager: runs the cluster's reconciling controllers.

Replicas race for the Lease kube-system/kube-controller-manager; only the
holder runs controllers. A leader that loses the Lease stops its
controllers and exits non-zero, as kube-controller-manager does, so its
supervisor restarts it as a fresh standby; nothing keeps working on a stale
belief that it leads.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from services.controller_manager import manager as cm
from services.controller_manager.nodeipam import (
    DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_CIDR_MASK_SIZE, CidrAllocator,
)
from services.machinery import Client, LeaderElector
from services.machinery import delegated, flags
from services.machinery.config import ClientConfig
from services.machinery.httpserver import HttpServer
from services.machinery.logs import setup_logging

log = logging.getLogger("kyb-controller-manager")

LEASE_NAME = "kube-controller-manager"
LEASE_NAMESPACE = "kube-system"
EXIT_LEADERSHIP_LOST = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kyb-controller-manager", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flags.add_client_flags(p)
    p.add_argument("--bind-address", default="0.0.0.0", help="address for the metrics port")
    p.add_argument("--metrics-port", type=int, default=10257,
                   help="HTTP port for /metrics and /healthz (0: any free port)")
    flags.add_serving_flags(p)
    flags.add_leader_election(p, "running controllers", LEASE_NAME, LEASE_NAMESPACE)
    p.add_argument("--controllers", default="*",
                   help="controllers to run: '*' for every default one, 'foo' to enable, "
                        "'-foo' to disable; known: " + ", ".join(cm.CONTROLLERS))
    p.add_argument("--concurrent-syncs", type=int, default=5,
                   help="workers per controller (keys reconciled at once)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                   help="CIDR range node pod CIDRs are allocated from")
    p.add_argument("--node-cidr-mask-size", type=int, default=DEFAULT_NODE_CIDR_MASK_SIZE,
                   help="prefix length of each node's pod CIDR")
    p.add_argument("--node-monitor-grace-period", type=flags.duration, default=50.0,
                   help="how long a node may go without a heartbeat before it is marked "
                        "Unknown (Pods are then evicted after their NoExecute "
                        "tolerationSeconds, 300s unless they say otherwise)")
    p.add_argument("--node-monitor-period", type=flags.duration, default=5.0,
                   help="how often every node's health is checked")
    p.add_argument("--node-startup-grace-period", type=flags.duration, default=60.0,
                   help="grace for a node that has never posted its Ready condition")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    return p.parse_args(argv)


def validate(opts: argparse.Namespace) -> list[str]:
    """Check the flags before anything starts; returns the enabled
    controllers. Raises ValueError with a one-line message."""
    names = cm.parse_controllers(opts.controllers)
    CidrAllocator(opts.cluster_cidr, opts.node_cidr_mask_size)  # raises on a bad range
    if opts.concurrent_syncs < 1:
        raise ValueError("--concurrent-syncs must be at least 1")
    for flag in ("node_monitor_grace_period", "node_monitor_period"):
        if getattr(opts, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive")
    flags.check_leader_election(opts)
    for name in names:  # a controller whose module is missing fails now, clearly
        cm.load_controller(name)
    return names


def controller_options(opts: argparse.Namespace) -> dict[str, Any]:
    return {
        "cluster_cidr": opts.cluster_cidr,
        "node_cidr_mask_size": opts.node_cidr_mask_size,
        "node_monitor_grace_period": opts.node_monitor_grace_period,
        "node_monitor_period": opts.node_monitor_period,
        "node_startup_grace_period": opts.node_startup_grace_period,
    }


async def run(opts: argparse.Namespace, names: list[str], client_config: ClientConfig) -> int:
    client = Client(config=client_config)
    servers = client.servers
    tls = flags.serving_cert(opts, client_config)
    http = HttpServer(opts.bind_address, opts.metrics_port,
                      ssl_context=tls.ssl_context() if tls is not None else None,
                      authorize=delegated.for_serving(tls, client))
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)

    failed = False

    async def run_controllers(stop: asyncio.Event | None = None) -> None:
        nonlocal failed
        manager = cm.ControllerManager(client, names, workers=opts.concurrent_syncs,
                                       options=controller_options(opts))
        try:
            await manager.run()
        except Exception:  # noqa: BLE001 - a crashed controller must not leave a leader idle
            log.exception("a controller failed; exiting")
            failed = True
            main_task.cancel()

    code = 0
    try:
        await http.start()
        log.info("serving metrics", extra={"port": http.port, "server": ",".join(servers)})
        if opts.leader_elect:
            elector = LeaderElector(
                client, opts.leader_elect_resource_name, opts.leader_elect_resource_namespace,
                lease_duration=opts.leader_elect_lease_duration,
                renew_deadline=opts.leader_elect_renew_deadline,
                retry_period=opts.leader_elect_retry_period,
                on_started_leading=run_controllers)
            log.info("waiting for leadership", extra={
                "lease": f"{opts.leader_elect_resource_namespace}/"
                         f"{opts.leader_elect_resource_name}", "identity": elector.identity})
            await elector.run()
            log.error("leaderelection lost")
            code = EXIT_LEADERSHIP_LOST
        else:
            await run_controllers()
    except asyncio.CancelledError:
        log.info("shutting down")
        code = 1 if failed else 0
    finally:
        await http.stop()
        await client.close()
    return code


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        client_config = flags.client_config(opts)
        flags.serving_cert(opts, client_config)  # checked now, before anything starts
        names = validate(opts)
    except ValueError as err:
        print(f"kyb-controller-manager: {err}", file=sys.stderr)
        return 2
    setup_logging(opts.log_level)
    try:
        return asyncio.run(run(opts, names, client_config))
    except (OSError, ValueError) as err:
        log.error("%s", err)
        print(f"kyb-controller-manager: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
