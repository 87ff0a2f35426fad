"""The route agent of a node container (``python -m services.cluster.routes``).

The "host gateway" pod network: every node routes every other node's pod
CIDR via that node's InternalIP. The agent watches Node objects and keeps
the node's kernel routes within the cluster CIDR exactly in step with them
— added when a node registers, changed when its address changes, removed
when it is deleted — and re-checks every ``--resync-period`` so a route
deleted by hand comes back. Like kindnet in kind. Routes already in place
stay when the API server is unreachable (a partitioned node keeps its pod
network).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from services.cluster.network import parse_routes, route_changes
from services.cluster.topology import Route
from services.machinery import Client, SharedInformerFactory, flags
from services.machinery.logs import setup_logging

log = logging.getLogger("kyb-routes")


def internal_ip(node: Any) -> str:
    for address in node.status.addresses:
        if address.type == "InternalIP" and address.address:
            return address.address
    return ""


def desired_routes(nodes: Iterable[Any], self_name: str, cluster_cidr: str) -> list[Route]:
    """A route to each other node's pod CIDR via its InternalIP; nodes
    without both, or with a CIDR outside the cluster CIDR, get none."""
    cluster = ipaddress.ip_network(cluster_cidr)
    routes = []
    for node in nodes:
        if node.metadata.name == self_name:
            continue
        cidr, ip = node.spec.pod_cidr, internal_ip(node)
        if not cidr or not ip:
            continue
        try:
            net = ipaddress.ip_network(cidr)
            ipaddress.ip_address(ip)
        except ValueError:
            log.warning("node %s has an invalid pod CIDR %r or address %r", node.metadata.name,
                        cidr, ip)
            continue
        if net.version == cluster.version and net.subnet_of(cluster):
            routes.append(Route(str(net), ip))
    return routes


def cluster_routes(routes: Iterable[Route], cluster_cidr: str) -> list[Route]:
    """The routes (with a gateway) to subnets of the cluster CIDR: the ones
    this agent owns."""
    cluster = ipaddress.ip_network(cluster_cidr)
    out = []
    for r in routes:
        try:
            net = ipaddress.ip_network(r.destination)
        except ValueError:
            continue
        if net.version == cluster.version and net.subnet_of(cluster):
            out.append(r)
    return out


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def sync(nodes: Iterable[Any], self_name: str, cluster_cidr: str) -> list[list[str]]:
    """Bring the kernel's routes in line with ``nodes``; the commands run."""
    current = cluster_routes(parse_routes(_ip("-4", "route", "show")), cluster_cidr)
    cmds = route_changes(current, desired_routes(nodes, self_name, cluster_cidr))
    for cmd in cmds:
        try:
            _ip(*cmd)
            log.info("ip %s", " ".join(cmd))
        except OSError as err:
            log.warning("%s", err)
    return cmds


async def run(opts: argparse.Namespace) -> int:
    client = Client(config=flags.client_config(opts), retry_for=3600.0)
    factory = SharedInformerFactory(client)
    nodes = factory.informer("nodes")
    changed = asyncio.Event()
    nodes.add_event_handler(lambda obj: changed.set(), lambda old, new: changed.set(),
                            lambda obj: changed.set())
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    factory.start()
    try:
        await nodes.wait_for_sync()
        log.info("watching nodes", extra={"node": opts.node_name, "cluster_cidr": opts.cluster_cidr})
        while True:
            changed.clear()
            await asyncio.to_thread(sync, nodes.store.list(), opts.node_name, opts.cluster_cidr)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), opts.resync_period)
    except asyncio.CancelledError:
        return 0
    finally:
        await factory.stop()
        await client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kyb-routes", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flags.add_client_flags(p)
    p.add_argument("--node-name", required=True, help="this node's name (no route to itself)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the routes this agent owns are those into this range")
    p.add_argument("--resync-period", type=float, default=30.0,
                   help="seconds between full checks of the routes")
    p.add_argument("--log-level", default="info")
    opts = p.parse_args(argv)
    setup_logging(opts.log_level)
    try:
        ipaddress.ip_network(opts.cluster_cidr)
        return asyncio.run(run(opts))
    except ValueError as err:
        print(f"kyb-routes: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
