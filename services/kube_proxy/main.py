"""kyb-proxy: programs this node's iptables so that Service ClusterIPs and
NodePorts reach their ready endpoints (kube-proxy in iptables mode).

One runs on every node; there is no leader election. ``--cleanup`` removes
every chain and rule it owns and exits (no API server needed).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys

from services.kube_proxy.iptables import Iptables, IptablesError
from services.kube_proxy.proxier import Proxier, cleanup
from services.kube_proxy.rules import ProxyConfig
from services.machinery import Client, delegated, flags
from services.machinery.httpserver import HttpServer
from services.machinery.logs import setup_logging

log = logging.getLogger("kyb-proxy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="kyb-proxy", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flags.add_client_flags(p)
    p.add_argument("--bind-address", default="0.0.0.0",
                   help="address to serve /metrics and /healthz on")
    p.add_argument("--metrics-port", type=int, default=10249,
                   help="HTTP port for /metrics and /healthz (0: any free port)")
    flags.add_serving_flags(p)
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="pod network; traffic to a ClusterIP from outside it is masqueraded "
                        "(empty: never, unless --masquerade-all)")
    p.add_argument("--masquerade-all", action="store_true",
                   help="masquerade all traffic sent to ClusterIPs")
    p.add_argument("--masquerade-bit", type=int, default=14,
                   help="bit of the packet mark (fwmark) that asks for masquerading (0-31)")
    p.add_argument("--hostname-override", default="",
                   help="this node's name, to find its local endpoints for "
                        "externalTrafficPolicy: Local")
    p.add_argument("--sync-period", type=float, default=30.0,
                   help="seconds between full resyncs of every rule")
    p.add_argument("--min-sync-period", type=float, default=1.0,
                   help="minimum seconds between the starts of two syncs (changes in between "
                        "are applied together)")
    p.add_argument("--iptables-backend", choices=("", "nft", "legacy"), default="",
                   help="iptables-nft or iptables-legacy; empty: the system's iptables")
    p.add_argument("--iptables-timeout", type=float, default=60.0,
                   help="seconds an iptables-restore / iptables-save may take")
    p.add_argument("--netns", default="",
                   help="program the iptables of this network namespace (a name from "
                        "`ip netns add`, or a file such as /proc/PID/ns/net) instead of "
                        "this process's")
    p.add_argument("--cleanup", action="store_true",
                   help="remove every rule and chain kyb-proxy owns, then exit")
    opts = p.parse_args(argv)
    if not 0 <= opts.masquerade_bit <= 31:
        p.error("--masquerade-bit must be between 0 and 31")
    if opts.cluster_cidr:
        try:
            ipaddress.IPv4Network(opts.cluster_cidr)
        except ValueError as err:
            p.error(f"--cluster-cidr: {err}")
    if opts.sync_period <= 0 or opts.min_sync_period < 0:
        p.error("--sync-period must be > 0 and --min-sync-period >= 0")
    return opts


async def serve(opts: argparse.Namespace) -> int:
    iptables = Iptables(opts.netns, backend=opts.iptables_backend, timeout=opts.iptables_timeout)
    if opts.cleanup:
        removed = await cleanup(iptables)
        log.info("removed kube-proxy rules", extra={"chains": removed})
        return 0
    config = ProxyConfig(cluster_cidr=opts.cluster_cidr, masquerade_all=opts.masquerade_all,
                         masquerade_bit=opts.masquerade_bit, node_name=opts.hostname_override)
    client_config = flags.client_config(opts)
    tls = flags.serving_cert(opts, client_config)
    servers = client_config.servers
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    async with Client(config=client_config) as client:
        proxier = Proxier(client, iptables, config, min_sync_period=opts.min_sync_period,
                          sync_period=opts.sync_period)
        http = HttpServer(opts.bind_address, opts.metrics_port, health=proxier.healthz,
                          ssl_context=tls.ssl_context() if tls is not None else None,
                          authorize=delegated.for_serving(tls, client))
        try:
            await http.start()
            log.info("starting", extra={"servers": ",".join(servers), "metrics_port": http.port,
                                        "netns": opts.netns or "-",
                                        "backend": await iptables.mode()})
            await proxier.run()
        except asyncio.CancelledError:
            pass
        finally:
            log.info("shutting down")
            await proxier.factory.stop()
            await http.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    setup_logging(opts.log_level)
    try:
        return asyncio.run(serve(opts))
    except (IptablesError, OSError, ValueError) as err:
        print(f"kyb-proxy: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
