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

The same PKI too (services/cluster/credentials.py): ``pki`` makes it on the
host (deploy/vagrant/up.sh), where the CA's key stays, and writes each VM's
share — one credentials bundle per container it runs, and on the control
plane the admin's, which registers the Node objects — into
``.pki/vms/<VM name>/``. The Vagrantfile uploads only that directory to its
VM (the repository is synced without ``.pki``), and the provisioning
installs it under /var/lib/kyb/bundles, from where each container mounts
its own bundle read-only at /etc/kybernetes, as in the container cluster.

Commands (run by deploy/vagrant/provision/*.sh inside the kyb/python or
kyb/node image, which hold this project; and by deploy/vagrant/up.sh on the
host):

  plan.py pki --out DIR [--workers N] [--cp-ip IP] [--worker-ips IP,IP...]
      the CA and certificates in DIR/pki, each VM's bundles in DIR/vms/VM, the
      host's admin config DIR/admin.conf (addresses: settings.yaml's unless given)
  plan.py containers control-plane --ip IP
  plan.py containers worker --index I --ip IP --api IP:PORT
      one line per container: NAME TAB SPEC TAB IMAGE TAB docker-run-arguments (quoted)
  plan.py daemon-json --index I [--current -]
      /etc/docker/daemon.json of worker I (keeping the other settings of the current one)
  plan.py register-nodes --api IP:PORT --workers N [--kubeconfig admin.conf]
      the Node objects with their pod CIDRs, before the workers start (as kyb-cluster up)
  plan.py wait-ready --api IP:PORT --workers N [--timeout S] [--kubeconfig admin.conf]

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
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
if (ROOT / "services").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from services.cluster import credentials  # noqa: E402
from services.cluster.config import CLUSTER_LABEL, ROLE_LABEL, SPEC_LABEL, Options, validate  # noqa: E402,E501
from services.cluster.topology import (  # noqa: E402
    API_PORT, KUBELET_PORT, PRELOAD_MOUNT, Container, Node, Topology, node_name, plan, pod_cidr,
)

SETTINGS = pathlib.Path(__file__).with_name("settings.yaml")
# Where things live on a VM.
KUBELET_ROOT = "/var/lib/kyb-kubelet"
STATE_DIR = "/var/lib/kyb"             # bundles/NAME (credentials), audit/NAME (API server)
PRELOAD_DIR = f"{STATE_DIR}/preload"
DOCKER_SOCKET = "/var/run/docker.sock"
ADMIN_BUNDLE = "admin"                 # the control plane's admin bundle (register-nodes)
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
    control_plane_ip: str = "192.168.56.10"
    first_worker_ip: str = "192.168.56.11"

    def worker_ip(self, index: int) -> str:
        """Worker ``index``'s address (from 1), as the Vagrantfile computes it."""
        return str(ipaddress.ip_address(self.first_worker_ip) + index - 1)

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
            log_level=str(cluster.get("log_level", Settings.log_level)),
            control_plane_ip=str((data.get("control_plane") or {}).get(
                "ip", Settings.control_plane_ip)),
            first_worker_ip=str(workers.get("first_ip", Settings.first_worker_ip)))
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


def vm_topology(settings: Settings, cp_ip: str, worker_ips: Sequence[str]) -> Topology:
    """The local cluster's plan with every container at its VM's address
    (the control plane's at ``cp_ip``, worker i's at ``worker_ips[i-1]``):
    what the certificates' addresses and the client configs' servers follow."""
    topo = plan(settings.options(len(worker_ips)), state_dir=STATE_DIR)

    def at(c: Container, ip: str) -> Container:
        return dataclasses.replace(c, ip=ip)
    return dataclasses.replace(
        topo, etcd=tuple(at(c, cp_ip) for c in topo.etcd),
        apiservers=tuple(at(c, cp_ip) for c in topo.apiservers),
        scheduler=at(topo.scheduler, cp_ip),
        controller_manager=at(topo.controller_manager, cp_ip),
        nodes=tuple(Node(n.index, at(n.container, ip), n.pod_cidr)
                    for n, ip in zip(topo.nodes, worker_ips)))


def write_pki(settings: Settings, out: pathlib.Path, cp_ip: str,
              worker_ips: Sequence[str]) -> dict[str, list[str]]:
    """The cluster's PKI in ``out/pki`` (kept across runs: the CA is never
    replaced), each VM's bundles in ``out/vms/<VM>/<container>`` and the
    host's admin config ``out/admin.conf``; VM name -> its bundles."""
    topo = vm_topology(settings, cp_ip, worker_ips)
    pki_dir = out / "pki"
    credentials.write_pki(pki_dir, topo)
    cp_vm = f"{settings.name}-control-plane"
    shares: dict[str, list[str]] = {cp_vm: []}
    admin = credentials.Bundle(ADMIN_BUNDLE, (("ca.crt", credentials.CA),
                                              ("admin.crt", "admin.crt"),
                                              ("admin.key", "admin.key")),
                               (credentials.Kubeconfig("admin.conf", "admin"),))
    for b in [*credentials.bundles(topo), admin]:
        vm = b.container if b.container in {n.name for n in topo.nodes} else cp_vm
        files = credentials.bundle_files(pki_dir, b, topo.api_addresses)
        credentials.write_bundle(out / "vms" / vm / b.container, files)
        shares.setdefault(vm, []).append(b.container)
    for vm_dir in (out / "vms").iterdir():  # VMs no longer in the plan
        if vm_dir.name not in shares:
            shutil.rmtree(vm_dir)
    from services.machinery import config
    config.write_config(topo.api_addresses, out / "admin.conf",
                        certificate_authority=(pki_dir / "ca.crt").resolve(),
                        client_certificate=(pki_dir / "admin.crt").resolve(),
                        client_key=(pki_dir / "admin.key").resolve())
    return shares


def control_plane(settings: Settings, ip: str) -> list[Container]:
    """The local cluster's control-plane containers, on one VM at ``ip``
    with host networking. One etcd member and one API server: more would
    need ports of their own on the same VM."""
    topo = plan(settings.options(), state_dir=STATE_DIR)
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
    topo = plan(settings.options(max(index, 1)), state_dir=STATE_DIR)
    node = topo.nodes[index - 1].container
    env = dict(node.env)
    env.update(KYB_NODE_IP=ip, KYB_SERVER=",".join(api), KYB_DOCKERD="host")
    return dataclasses.replace(
        node, ip=ip, env=tuple(env.items()),
        mounts=((DOCKER_SOCKET, "/run/docker.sock"),
                (KUBELET_ROOT, KUBELET_ROOT),  # pod volumes: the same path for the VM's dockerd
                ("/lib/modules", "/lib/modules:ro"),
                (PRELOAD_DIR, f"{PRELOAD_MOUNT}:ro"),
                (topo.bundle_dir(node.name), f"{credentials.MOUNT}:ro")),
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


def client_config(api: Sequence[str], kubeconfig: str = "") -> Any:
    """The admin's ClientConfig for ``api`` (plaintext without a kubeconfig)."""
    from services.machinery import config
    if kubeconfig:
        return config.load(kubeconfig=kubeconfig).with_servers(list(api))
    return config.ClientConfig(list(api))


async def register_nodes(settings: Settings, api: Sequence[str], workers: int,
                         kubeconfig: str = "") -> dict[str, str]:
    from services.cluster import cluster_api
    opts = settings.options(workers)
    cfg = client_config(api, kubeconfig)
    await cluster_api.wait_for_api(cfg, 120)
    return await cluster_api.ensure_nodes(
        cfg, {node_name(opts, i): pod_cidr(opts, i) for i in range(1, workers + 1)})


async def wait_ready(settings: Settings, api: Sequence[str], workers: int,
                     timeout: float, kubeconfig: str = "") -> None:
    from services.cluster import cluster_api
    from services.machinery import ApiError
    opts = settings.options(workers)
    cfg = client_config(api, kubeconfig)
    names = [node_name(opts, i) for i in range(1, workers + 1)]
    deadline = time.monotonic() + timeout
    await cluster_api.wait_for_api(cfg, timeout)
    while True:
        try:
            ready = await cluster_api.node_ready(cfg)
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
        r.add_argument("--kubeconfig", default="",
                       help="the admin's client config (default: plaintext)")
    k = sub.add_parser("pki", help="the cluster's certificates, and each VM's share of them")
    k.add_argument("--out", required=True, help="directory of the PKI (kept across runs)")
    k.add_argument("--workers", type=int, default=None)
    k.add_argument("--cp-ip", default="", help="the control plane's address "
                                               "(default: settings.yaml's)")
    k.add_argument("--worker-ips", default="",
                   help="the workers' addresses, comma-separated (default: settings.yaml's)")
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
        elif args.command == "pki":
            workers = settings.workers if args.workers is None else args.workers
            ips = [i for i in args.worker_ips.split(",") if i] or \
                [settings.worker_ip(i) for i in range(1, workers + 1)]
            shares = write_pki(settings, pathlib.Path(args.out),
                               args.cp_ip or settings.control_plane_ip, ips)
            for vm, names in shares.items():
                print(f"{vm}: {', '.join(names)}")
        elif args.command == "register-nodes":
            workers = settings.workers if args.workers is None else args.workers
            for name, cidr in asyncio.run(register_nodes(settings, args.api.split(","),
                                                         workers, args.kubeconfig)).items():
                print(f"node {name}: pod CIDR {cidr}")
        else:
            workers = settings.workers if args.workers is None else args.workers
            asyncio.run(wait_ready(settings, args.api.split(","), workers, args.timeout,
                                   args.kubeconfig))
    except (OSError, ValueError, TimeoutError, yaml.YAMLError, *_api_errors()) as err:
        print(f"plan.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
