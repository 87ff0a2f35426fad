"""kyb-kubelet: the node agent. Registers this node, runs the pods bound to
it as containers (Docker Engine by default), probes them, reports their
status, and serves their logs and exec over gRPC.

With --runtime fake it runs hollow nodes instead: --nodes N kubelets named
NODE-NAME-0 .. NODE-NAME-(N-1) in one process, each with an in-memory
runtime, for scale tests."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import Any

from services.kubelet import hollow
from services.kubelet.backoff import CRASH_BACKOFF_CAP, CRASH_BACKOFF_INITIAL
from services.kubelet.images import IMAGE_BACKOFF_CAP, IMAGE_BACKOFF_INITIAL
from services.kubelet.kubelet import Kubelet, KubeletConfig
from services.kubelet.node import parse_reserved
from services.kubelet.server import KubeletServer
from services.machinery import Client, delegated, flags
from services.machinery.config import ClientConfig
from services.machinery.httpserver import HttpServer
from services.machinery.tlsconfig import ServingCert
from services.machinery.logs import setup_logging

log = logging.getLogger("kyb-kubelet")

DEFAULT_PAUSE_IMAGE = "kyb/pause:latest"


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"node label {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _reserved(text: str) -> str:
    try:
        parse_reserved(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kyb-kubelet", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flags.add_client_flags(p)
    flags.add_serving_flags(p, "the kubelet gRPC service (mutual TLS) and /metrics")
    p.add_argument("--node-name", default=socket.gethostname().lower(),
                   help="this node's name (with --nodes: the prefix of the hollow nodes' names)")
    p.add_argument("--node-ip", default="",
                   help="the node's InternalIP (default: the host's primary IPv4 address)")
    p.add_argument("--address", default="0.0.0.0", help="address to serve gRPC and HTTP on")
    p.add_argument("--port", type=int, default=10250,
                   help="gRPC port of the kubelet service (logs, exec); 0: any free port")
    p.add_argument("--metrics-port", type=int, default=10248,
                   help="HTTP port for /metrics and /healthz (0: any free port)")
    p.add_argument("--root-dir", default="/var/lib/kyb-kubelet",
                   help="directory for pod volumes (emptyDir)")
    p.add_argument("--runtime", choices=("docker", "fake"), default="docker",
                   help="container runtime: the local Docker Engine, or in-memory hollow nodes")
    p.add_argument("--nodes", type=int, default=1,
                   help="number of hollow nodes to run (--runtime fake only)")
    p.add_argument("--docker-host", default="",
                   help="Docker Engine address (default: $DOCKER_HOST, else the local socket)")
    p.add_argument("--pod-infra-container-image", default=DEFAULT_PAUSE_IMAGE,
                   help="image of the pod sandbox container that holds each pod's network")
    p.add_argument("--max-pods", type=int, default=110, help="pods this node can run")
    p.add_argument("--kube-reserved", type=_reserved, default="",
                   help='resources reserved for Kybernetes daemons, e.g. "cpu=100m,memory=256Mi"')
    p.add_argument("--system-reserved", type=_reserved, default="",
                   help='resources reserved for the system, e.g. "cpu=100m,memory=256Mi"')
    p.add_argument("--node-labels", type=_labels, default={},
                   help="extra node labels, KEY=VALUE[,KEY=VALUE...]")
    p.add_argument("--node-lease-renew-interval", type=_positive, default=10.0,
                   help="seconds between renewals of the node's Lease")
    p.add_argument("--node-status-update-period", type=_positive, default=300.0,
                   help="seconds after which node status is written even if unchanged")
    p.add_argument("--sync-frequency", type=_positive, default=10.0,
                   help="seconds between full resyncs of every pod")
    p.add_argument("--relist-period", type=_positive, default=1.0,
                   help="seconds between relists of the runtime (how soon a crash is noticed)")
    p.add_argument("--container-restart-backoff", type=_positive, default=CRASH_BACKOFF_INITIAL,
                   help="first delay before restarting a crashed container (doubles each time)")
    p.add_argument("--container-restart-backoff-max", type=_positive, default=CRASH_BACKOFF_CAP,
                   help="longest delay before restarting a crashed container")
    p.add_argument("--image-pull-backoff", type=_positive, default=IMAGE_BACKOFF_INITIAL,
                   help="first delay before pulling an image that failed to pull")
    p.add_argument("--image-pull-backoff-max", type=_positive, default=IMAGE_BACKOFF_CAP,
                   help="longest delay between pulls of an image that keeps failing")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error")
    opts = p.parse_args(argv)
    if opts.nodes < 1:
        p.error("--nodes must be at least 1")
    if opts.nodes > 1 and opts.runtime != "fake":
        p.error("--nodes needs --runtime fake (hollow nodes)")
    if opts.container_restart_backoff > opts.container_restart_backoff_max:
        p.error("--container-restart-backoff must not exceed --container-restart-backoff-max")
    if opts.image_pull_backoff > opts.image_pull_backoff_max:
        p.error("--image-pull-backoff must not exceed --image-pull-backoff-max")
    return opts


def config_from(opts: argparse.Namespace) -> KubeletConfig:
    return KubeletConfig(
        node_name=opts.node_name, node_ip=opts.node_ip, port=opts.port, root_dir=opts.root_dir,
        max_pods=opts.max_pods, kube_reserved=opts.kube_reserved,
        system_reserved=opts.system_reserved, node_labels=opts.node_labels,
        lease_renew_interval=opts.node_lease_renew_interval,
        status_update_period=opts.node_status_update_period,
        status_check_interval=min(10.0, opts.node_status_update_period),
        sync_frequency=opts.sync_frequency, relist_period=opts.relist_period,
        crash_backoff_initial=opts.container_restart_backoff,
        crash_backoff_max=opts.container_restart_backoff_max,
        image_backoff_initial=opts.image_pull_backoff,
        image_backoff_max=opts.image_pull_backoff_max)


def docker_runtime(opts: argparse.Namespace) -> Any:
    from services.kubelet.runtime.docker import DockerRuntime
    return DockerRuntime(base_url=opts.docker_host or None, node_name=opts.node_name,
                         pod_infra_image=opts.pod_infra_container_image)


def fake_runtime(node_name: str) -> Any:
    from services.kubelet.runtime.fake import FakeRuntime
    return FakeRuntime(node_name=node_name)


async def serve(opts: argparse.Namespace, client_config: ClientConfig,
                tls: ServingCert | None = None) -> int:
    config = config_from(opts)
    client = Client(config=client_config)
    kubelets: list[Kubelet] = []
    server = KubeletServer(lambda: kubelets, tls=tls)
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)

    async def healthy() -> tuple[bool, str]:
        waiting = [k.node_name for k in kubelets if not k.ready.is_set()]
        if waiting:
            return False, f"starting: {', '.join(waiting[:5])}"
        return True, "ok"

    http = HttpServer(opts.address, opts.metrics_port, health=healthy,
                      ssl_context=tls.ssl_context() if tls is not None else None,
                      authorize=delegated.for_serving(tls, client))
    try:
        await http.start()
        config.port = await server.start(opts.address, opts.port)
        informer = None
        if opts.runtime == "fake":
            informer = hollow.shared_pod_informer(client)
            kubelets.extend(hollow.hollow_kubelets(client, config, opts.nodes, fake_runtime,
                                                   informer))
        else:
            kubelets.append(Kubelet(client, docker_runtime(opts), config))
        log.info("serving", extra={"node": config.node_name, "nodes": len(kubelets),
                                   "port": config.port, "metrics_port": http.port,
                                   "runtime": opts.runtime, "tls": tls is not None,
                                   "server": ",".join(client.servers)})
        await hollow.run_group(kubelets, informer)
    except asyncio.CancelledError:
        pass
    finally:
        log.info("shutting down")
        await server.stop()
        await http.stop()
        for kubelet in kubelets:
            close = getattr(kubelet.runtime.wrapped, "close", None)
            if close is not None:
                await close()
        await client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        client_config = flags.client_config(opts)
        tls = flags.serving_cert(opts, client_config)
    except ValueError as err:
        print(f"kyb-kubelet: {err}", file=sys.stderr)
        return 2
    setup_logging(opts.log_level)
    try:
        return asyncio.run(serve(opts, client_config, tls))
    except (OSError, ValueError, ImportError) as err:
        log.error("%s", err)
        print(f"kyb-kubelet: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
