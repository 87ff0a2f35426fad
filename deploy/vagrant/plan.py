"""What runs on each Vagrant VM, derived from the container cluster's own plan.

The VM cluster runs the same images with the same flags as ``kyb-cluster``:
this module takes :func:`services.cluster.topology.plan` — the exact
containers, commands and environment of the local cluster — and changes
only where they live:

- control plane (the first VM): etcd, the API server, the scheduler and the
  controller manager, each a container with host networking, every address
  in their flags replaced by the VM's own address;
- worker *i*: the kyb/node container with host networking, so kube-proxy
  programs the VM's iptables and the routes agent the VM's routes; the VM's
  own dockerd (socket mounted) is the runtime the kubelet drives, set up by
  :func:`daemon_json` with the bridge on the node's pod CIDR, as the node
  container's inner dockerd is (deploy/images/node-entrypoint.sh, started
  with ``KYB_DOCKERD=host``).

Commands (run by deploy/vagrant/provision/*.sh inside the kyb/python or
kyb/node image, which hold this project; and by deploy/vagrant/up.sh on the
host):

  plan.py containers control-plane --ip IP
  plan.py containers worker --index I --ip IP --api IP:PORT
      one line per container: NAME TAB SPEC TAB IMAGE TAB docker-run-arguments (quoted)
  plan.py daemon-json --index I [--current -]
      /etc/docker/daemon.json of worker I (keeping the other settings of the current one)
  plan.py register-nodes --api IP:PORT --workers N
      the Node objects with their pod CIDRs, before the workers start (as kyb-cluster up)
  plan.py wait-ready --api IP:PORT --workers N [--timeout S]

The cluster's layout (name, CIDRs) comes from settings.yaml beside this file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import ipaddress
import json
import pathlib
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
if (ROOT / "services").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from services.cluster.config import CLUSTER_LABEL, ROLE_LABEL, SPEC_LABEL, Options, validate  # noqa: E402,E501
from services.cluster.topology import (  # noqa: E402
    API_PORT, KUBELET_PORT, PRELOAD_MOUNT, Container, node_name, plan, pod_cidr,
)

SETTINGS = pathlib.Path(__file__).with_name("settings.yaml")
# Where things live on a VM.
KUBELET_ROOT = "/var/lib/kyb-kubelet"
PRELOAD_DIR = "/var/lib/kyb/preload"
DOCKER_SOCKET = "/var/run/docker.sock"
# A VM can grant what a node container gets here (topology.NODE_PRIVILEGES
# drops only CAP_SYS_RESOURCE, which this machine's Docker cannot grant);
# the node container needs the network, mounts and the host's devices.
WORKER_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "--tmpfs", "/tmp",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The parts of settings.yaml that decide what runs (the VM sizes and
    the box are the Vagrantfile's business)."""

    name: str = "kyb"
    network: str = "192.168.56.0/21"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    node_cidr_mask: int = 24
    workers: int = 2
    log_level: str = "info"

    def options(self, workers: int | None = None) -> Options:
        """The container cluster's options for this VM cluster. Its --subnet
        is irrelevant on VMs (nothing runs on a Docker network) and left at
        its default."""
        return validate(Options(
            name=self.name, nodes=workers if workers is not None else self.workers,
            cluster_cidr=self.cluster_cidr, service_cidr=self.service_cidr,
            node_cidr_mask=self.node_cidr_mask, log_level=self.log_level))


def load_settings(data: Mapping[str, Any]) -> Settings:
    """settings.yaml's content → Settings; ValueError naming a bad key."""
    cluster = data.get("cluster") or {}
    workers = data.get("workers") or {}
    try:
        s = Settings(
            name=str(cluster.get("name", Settings.name)),
            network=str(data.get("network", Settings.network)),
            cluster_cidr=str(cluster.get("cluster_cidr", Settings.cluster_cidr)),
            service_cidr=str(cluster.get("service_cidr", Settings.service_cidr)),
            node_cidr_mask=int(cluster.get("node_cidr_mask", Settings.node_cidr_mask)),
            workers=int(workers.get("count", Settings.workers)),
            log_level=str(cluster.get("log_level", Settings.log_level)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"settings.yaml: {err}") from None
    net = ipaddress.ip_network(s.network)
    for key, cidr in (("cluster.cluster_cidr", s.cluster_cidr),
                      ("cluster.service_cidr", s.service_cidr)):
        if ipaddress.ip_network(cidr).overlaps(net):
            raise ValueError(f"settings.yaml: {key} {cidr} overlaps the VM network {net}")
    s.options()  # every other check, as kyb-cluster makes them
    return s


def _replace_ips(text: str, ips: Mapping[str, str]) -> str:
    for old, new in ips.items():
        text = re.sub(rf"(?<![\d.]){re.escape(old)}(?![\d])", new, text)
    return text


def control_plane(settings: Settings, ip: str) -> list[Container]:
    """The local cluster's control-plane containers, on one VM at ``ip``
    with host networking. One etcd member and one API server: more would
    need ports of their own on the same VM."""
    topo = plan(settings.options(), preload_dir="")
    moved = {c.ip: ip for c in topo.control_plane}
    return [dataclasses.replace(
                c, ip=ip,
                args=tuple(_replace_ips(a, moved) for a in c.args),
                env=tuple((k, _replace_ips(v, moved)) for k, v in c.env))
            for c in topo.control_plane]


def worker(settings: Settings, index: int, ip: str, api: Sequence[str]) -> Container:
    """Worker ``index``'s node container: the local cluster's node container
    (image, environment, kubelet and kube-proxy flags) with host networking
    and the VM's own dockerd as its runtime."""
    topo = plan(settings.options(max(index, 1)), preload_dir=PRELOAD_DIR)
    node = topo.nodes[index - 1].container
    env = dict(node.env)
    env.update(KYB_NODE_IP=ip, KYB_SERVER=",".join(api), KYB_DOCKERD="host")
    return dataclasses.replace(
        node, ip=ip, env=tuple(env.items()),
        mounts=((DOCKER_SOCKET, "/run/docker.sock"),
                (KUBELET_ROOT, KUBELET_ROOT),  # pod volumes: the same path for the VM's dockerd
                ("/lib/modules", "/lib/modules:ro"),
                (PRELOAD_DIR, f"{PRELOAD_MOUNT}:ro")),
        flags=WORKER_FLAGS)


def daemon_json(settings: Settings, index: int,
                current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The VM's dockerd settings on worker ``index``: what node-entrypoint.sh
    gives the node container's own dockerd (bridge on the pod CIDR, no
    masquerade of its own; the entrypoint masquerades only what leaves the
    cluster CIDR), over the ``current`` daemon.json's other settings."""
    cidr = ipaddress.ip_network(pod_cidr(settings.options(max(index, 1)), index))
    return {**(current or {}), "bip": f"{next(cidr.hosts())}/{cidr.prefixlen}",
            "ip-masq": False, "iptables": True}


def run_args(cluster: str, c: Container) -> list[str]:
    """``docker run`` arguments (after ``run``) for ``c`` on a VM: host
    networking, the container's labels, environment, mounts and flags."""
    args = ["-d", "--name", c.name, "--network", "host", "--restart", c.restart,
            "--label", f"{CLUSTER_LABEL}={cluster}", "--label", f"{ROLE_LABEL}={c.role}"]
    for key, value in c.env:
        args += ["-e", f"{key}={value}"]
    for source, target in c.mounts:
        args += ["-v", f"{source}:{target}"]
    return [*args, *c.flags, c.image, *c.args]


def spec(args: Sequence[str]) -> str:
    """What decides a container: its arguments (the provisioning script
    adds the image's ID). A container whose label differs is recreated."""
    return hashlib.sha256("\0".join(args).encode()).hexdigest()[:16]


def container_lines(cluster: str, containers: Sequence[Container]) -> list[str]:
    """NAME TAB SPEC TAB IMAGE TAB shell-quoted run arguments (with the
    spec label), one line per container, for provision/lib.sh."""
    lines = []
    for c in containers:
        args = run_args(cluster, c)
        digest = spec(args)
        quoted = shlex.join(["--label", f"{SPEC_LABEL}={digest}", *args])
        lines.append(f"{c.name}\t{digest}\t{c.image}\t{quoted}")
    return lines


# -- the shells: the API (only where this project's dependencies are installed) --------------


async def register_nodes(settings: Settings, api: Sequence[str], workers: int) -> dict[str, str]:
    from services.cluster import cluster_api
    opts = settings.options(workers)
    await cluster_api.wait_for_api(api, 120)
    return await cluster_api.ensure_nodes(
        api, {node_name(opts, i): pod_cidr(opts, i) for i in range(1, workers + 1)})


async def wait_ready(settings: Settings, api: Sequence[str], workers: int,
                     timeout: float) -> None:
    from services.cluster import cluster_api
    from services.machinery import ApiError
    opts = settings.options(workers)
    names = [node_name(opts, i) for i in range(1, workers + 1)]
    deadline = time.monotonic() + timeout
    await cluster_api.wait_for_api(api, timeout)
    while True:
        try:
            ready = await cluster_api.node_ready(api)
        except ApiError:
            ready = {}
        pending = [n for n in names if not ready.get(n)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not Ready after {timeout:g}s: {', '.join(pending)}")
        await asyncio.sleep(1)


def _api_errors() -> tuple[type[Exception], ...]:
    try:
        from services.machinery import ApiError
    except ImportError:  # somewhere without grpc: only the pure commands work there
        return ()
    return (ApiError,)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="plan.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=str(SETTINGS), help="settings.yaml to read")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("containers", help="docker run arguments of a VM's containers")
    c.add_argument("role", choices=("control-plane", "worker"))
    c.add_argument("--ip", required=True, help="the VM's address on the private network")
    c.add_argument("--index", type=int, default=0, help="worker number, from 1")
    c.add_argument("--api", default="", help="API server HOST:PORT (workers)")
    d = sub.add_parser("daemon-json", help="the VM's /etc/docker/daemon.json (workers)")
    d.add_argument("--index", type=int, required=True)
    d.add_argument("--current", default="",
                   help="the daemon.json in place, kept but for the keys set here (- : stdin)")
    for name in ("register-nodes", "wait-ready"):
        r = sub.add_parser(name)
        r.add_argument("--api", required=True)
        r.add_argument("--workers", type=int, default=None)
        r.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    try:
        settings = load_settings(yaml.safe_load(pathlib.Path(args.settings).read_text()) or {})
        if args.command == "containers":
            if args.role == "control-plane":
                containers = control_plane(settings, args.ip)
            else:
                if args.index < 1 or not args.api:
                    raise ValueError("a worker needs --index (from 1) and --api")
                containers = [worker(settings, args.index, args.ip, args.api.split(","))]
            print("\n".join(container_lines(settings.name, containers)))
        elif args.command == "daemon-json":
            text = ""
            if args.current == "-":
                text = sys.stdin.read()
            elif args.current:
                text = pathlib.Path(args.current).read_text()
            current = json.loads(text) if text.strip() else {}
            if not isinstance(current, dict):
                raise ValueError("the current daemon.json is not a JSON object")
            print(json.dumps(daemon_json(settings, args.index, current), indent=2,
                             sort_keys=True))
        elif args.command == "register-nodes":
            workers = settings.workers if args.workers is None else args.workers
            for name, cidr in asyncio.run(register_nodes(settings, args.api.split(","),
                                                         workers)).items():
                print(f"node {name}: pod CIDR {cidr}")
        else:
            workers = settings.workers if args.workers is None else args.workers
            asyncio.run(wait_ready(settings, args.api.split(","), workers, args.timeout))
    except (OSError, ValueError, TimeoutError, yaml.YAMLError, *_api_errors()) as err:
        print(f"plan.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
