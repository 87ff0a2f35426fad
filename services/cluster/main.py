"""kyb-cluster: a Kybernetes cluster in Docker containers on this machine.

  kyb-cluster up [--nodes 2] [--etcd 1|3] [--apiservers 1|2] [--name kyb]
  kyb-cluster down | status
  kyb-cluster load IMAGE...              docker save here, docker load in every node
  kyb-cluster stop-node NAME | start-node NAME
  kyb-cluster partition NAME | heal NAME cut a node off the control plane, and back
  kyb-cluster user NAME [--group G]...  a client certificate and config for a new user

On a private Docker network: etcd, the API server(s), the scheduler and the
controller manager each in their own container (restart policy on), and
worker-node containers that run their own dockerd, kubelet and kube-proxy.
The host gets routes to every pod CIDR and to the service CIDR, and a
client config that points ``kyb`` at the API servers as the cluster's admin.
Everything made carries the label org.kybernetes.cluster=NAME, which is how
``down`` finds it all. ``up`` converges: run again, it changes only what
differs.

Secure by default: ``up`` makes a cluster CA and a certificate per
component (kept in STATE/pki, see :mod:`credentials`), every connection is
mutual TLS, and each container gets only its own credentials. STATE is
~/.kyb/clusters/NAME (beside $KYB_CONFIG when set).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import pathlib
import shutil
import ssl
import sys
import time
from collections.abc import Sequence

from services.cluster import cluster_api, credentials, docker_ops, network
from services.cluster.config import (
    CLUSTER_LABEL, OPTIONS_LABEL, ROLE_LABEL, SPEC_LABEL, Options, validate,
)
from services.cluster.docker_ops import DockerError
from services.cluster.network import NetworkError
from services.cluster.topology import (
    KUBELET_METRICS_PORT, NODE_STOP_TIMEOUT, Container, Topology, plan, run_args, spec_hash,
)
from services.machinery import ApiError, pki, tlsconfig
from services.machinery import config as client_config

PROG = "kyb-cluster"
DEFAULT_WAIT = 240.0


class Progress:
    """Prints each step with the time since the command started."""

    def __init__(self, quiet: bool = False):
        self.t0 = time.monotonic()
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{PROG} {self.elapsed():6.1f}s] {message}", flush=True)


class UsageError(Exception):
    pass


# -- where things are kept ------------------------------------------------------------------


def state_dir(name: str) -> pathlib.Path:
    """Per-cluster files (the options, the preload tarballs), beside the
    client config: ~/.kyb/clusters/NAME (follows $KYB_CONFIG)."""
    return client_config.config_path().parent / "clusters" / name


def topology(opts: Options, **kwargs) -> Topology:
    """The plan of cluster ``opts`` with its files in its state directory."""
    return plan(opts, state_dir=str(state_dir(opts.name)), **kwargs)


ADMIN_CONF = "admin.conf"
TOKEN_CONFS = {credentials.ADMIN_TOKEN_USER.name: "admin-token.conf",
               credentials.VIEWER_TOKEN_USER.name: "viewer-token.conf"}


def admin_config(topo: Topology) -> client_config.ClientConfig:
    """How kyb-cluster itself reaches the cluster: as its admin, with the
    config ``up`` wrote in the state directory (plaintext to the API
    servers' addresses when there is none: a cluster made before TLS)."""
    path = pathlib.Path(topo.state_dir) / ADMIN_CONF
    if path.is_file():
        return client_config.load(kubeconfig=path).with_servers(topo.api_addresses)
    return client_config.ClientConfig(topo.api_addresses)


def write_admin_configs(topo: Topology, tokens: dict[str, str]) -> client_config.ClientConfig:
    """STATE/admin.conf (the admin certificate, CN=kubernetes-admin in
    system:masters) and one config per token user on the token port; the
    admin's ClientConfig."""
    directory = pathlib.Path(topo.state_dir)
    pki_dir = pathlib.Path(topo.pki_dir)
    ca = pki_dir / f"{pki.CA_NAME}.crt"
    path = client_config.write_config(
        topo.api_addresses, directory / ADMIN_CONF, certificate_authority=ca,
        client_certificate=pki_dir / "admin.crt", client_key=pki_dir / "admin.key")
    for user, conf in TOKEN_CONFS.items():
        client_config.write_config(topo.token_addresses, directory / conf,
                                   certificate_authority=ca, token=tokens[user])
    return client_config.load(kubeconfig=path)


def health_tls(topo: Topology) -> ssl.SSLContext | None:
    """HTTPS trusting the cluster CA, for the kubelets' /healthz."""
    ca = pathlib.Path(topo.pki_dir) / f"{pki.CA_NAME}.crt"
    return tlsconfig.http_client_context(ca) if ca.is_file() else None


def stored_options(name: str) -> Options | None:
    """The options the cluster was last brought up with: the state file,
    else the label of its network; None when there is no such cluster."""
    path = state_dir(name) / "options.json"
    with contextlib.suppress(FileNotFoundError):
        return Options.from_json(path.read_text())
    labels = docker_ops.network_labels(f"{name}-net")
    if labels and labels.get(OPTIONS_LABEL):
        return Options.from_json(labels[OPTIONS_LABEL])
    return None


FLAG_FIELDS = ("nodes", "etcd", "apiservers", "subnet", "cluster_cidr", "service_cidr",
               "node_cidr_mask", "log_level", "pod_eviction_timeout")
# Changing these under a running cluster would strand its state (etcd
# membership, addresses, routes, allocated IPs): they need a `down` first.
FIXED_FIELDS = ("etcd", "subnet", "cluster_cidr", "service_cidr", "node_cidr_mask")


def merge_options(args: argparse.Namespace, stored: Options | None) -> Options:
    """Flags given now, else what the running cluster was made with, else
    the defaults."""
    base = stored or Options(name=args.name)
    changes = {f: getattr(args, f) for f in FLAG_FIELDS if getattr(args, f, None) is not None}
    opts = validate(base.replace(name=args.name, **changes))
    if stored is not None:
        for f in FIXED_FIELDS:
            if getattr(opts, f) != getattr(stored, f):
                raise UsageError(
                    f"cluster {opts.name} runs with --{f.replace('_', '-')} "
                    f"{getattr(stored, f)}; changing it needs `{PROG} down` first")
    return opts


# -- up -------------------------------------------------------------------------------------


def ensure_container(topo: Topology, c: Container, image_ids: dict[str, str],
                     state: docker_ops.ContainerState | None, bundle: str = "") -> str:
    """Create, recreate (spec or credentials changed), start (stopped) or
    leave ``c``; what was done, in a word. ``bundle``: the digest of its
    credentials bundle."""
    spec = spec_hash(topo, c, image_ids[c.image], bundle)
    if state is not None and state.labels.get(SPEC_LABEL) == spec:
        if state.running:
            return "running"
        docker_ops.start(c.name)
        return "started"
    verb = "created"
    if state is not None:
        docker_ops.remove(c.name)
        verb = "recreated (its image, flags or credentials changed)"
    for source, _ in c.mounts:
        if not source.startswith("/") and not docker_ops.volume_exists(source):
            docker_ops.create_volume(source, topo.labels("volume"))
    docker_ops.run(run_args(topo, c, spec))
    return verb


def ensure_network(topo: Topology, say: Progress) -> None:
    labels = docker_ops.network_labels(topo.network)
    if labels is not None:
        if labels.get(CLUSTER_LABEL) != topo.options.name:
            raise UsageError(f"Docker network {topo.network} exists but was not made by "
                             f"{PROG}; remove it or choose another --name")
        say(f"network {topo.network} {topo.subnet}: exists")
        return
    mine = ipaddress.ip_network(topo.subnet)
    for other, subnets in docker_ops.network_subnets().items():
        for s in subnets:
            if ipaddress.ip_network(s, strict=False).overlaps(mine):
                raise UsageError(f"--subnet {topo.subnet} overlaps Docker network {other} ({s}); "
                                 "choose another --subnet")
    docker_ops.create_network(topo.network, topo.subnet, topo.gateway, topo.network_labels())
    say(f"network {topo.network} {topo.subnet}: created")


def ensure_preload(topo: Topology, image_ids: dict[str, str], say: Progress) -> bool:
    """The tarball every node loads into its dockerd at start, refreshed
    when a preloaded image changed; whether it was."""
    directory = pathlib.Path(topo.preload_dir)
    directory.mkdir(parents=True, exist_ok=True)
    ids = "\n".join(f"{i} {image_ids[i]}" for i in topo.options.preload) + "\n"
    stamp = directory / "images.ids"
    tarball = directory / "images.tar"
    if tarball.exists() and stamp.exists() and stamp.read_text() == ids:
        say(f"node preload images ({', '.join(topo.options.preload)}): up to date")
        return False
    tmp = directory / "images.tar.tmp"
    docker_ops.save(list(topo.options.preload), str(tmp))
    tmp.replace(tarball)
    stamp.write_text(ids)
    say(f"node preload images saved ({tarball.stat().st_size // 1000} kB)")
    return True


def check_images(opts: Options) -> dict[str, str]:
    images = [opts.python_image, opts.etcd_image, opts.node_image, *opts.preload]
    ids = {image: docker_ops.image_id(image) for image in images}
    missing = [i for i, v in ids.items() if v is None]
    if missing:
        raise UsageError(f"image {', '.join(missing)} not found; build the images with "
                         "`make images` (deploy/images/build.sh)")
    return {k: v for k, v in ids.items() if v}


def ensure_credentials(topo: Topology, say: Progress) -> tuple[dict[str, str],
                                                                 client_config.ClientConfig]:
    """The PKI, every container's bundle, the admin's and token users'
    configs; (container name -> bundle digest, the admin's ClientConfig)."""
    issued, tokens = credentials.write_pki(topo.pki_dir, topo)
    if issued:
        reasons = sorted(set(issued.values()))
        say(f"certificates: {len(issued)} issued ({', '.join(reasons)}) in {topo.pki_dir}")
    else:
        say(f"certificates: up to date in {topo.pki_dir}")
    digests = credentials.write_bundles(topo.pki_dir, topo)
    for c in topo.apiservers:
        pathlib.Path(topo.audit_log(c.name)).parent.mkdir(parents=True, exist_ok=True)
    return digests, write_admin_configs(topo, tokens)


def cmd_up(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    docker_ops.check_engine()
    stored = stored_options(args.name)
    opts = merge_options(args, stored)
    image_ids = check_images(opts)
    say(f"cluster {opts.name}: {opts.etcd} etcd, {opts.apiservers} API server(s), "
        f"{opts.nodes} node(s)")
    directory = state_dir(opts.name)
    topo = topology(opts)
    ensure_network(topo, say)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # the PKI, tokens and audit logs are inside
    (directory / "options.json").write_text(opts.to_json() + "\n")
    preload_changed = ensure_preload(topo, image_ids, say)
    digests, admin = ensure_credentials(topo, say)

    states = docker_ops.inspect(c.name for c in topo.containers)
    for c in topo.control_plane:
        verb = ensure_container(topo, c, image_ids, states.get(c.name), digests[c.name])
        say(f"{c.role} {c.name} {c.ip}: {verb}")
        if c.role == "apiserver" and c is topo.apiservers[-1]:
            asyncio.run(cluster_api.wait_for_api(admin, max(args.wait, 60.0)))
            say(f"API answering at {','.join(topo.api_addresses)} (mutual TLS)")

    cidrs = asyncio.run(cluster_api.ensure_nodes(
        admin, {n.name: n.pod_cidr for n in topo.nodes}))
    if asyncio.run(cluster_api.ensure_group_binding(
            admin, credentials.VIEWER_BINDING, "view",
            credentials.VIEWER_TOKEN_USER.groups[0])):
        say(f"ClusterRoleBinding {credentials.VIEWER_BINDING}: created (view for "
            f"{credentials.VIEWER_TOKEN_USER.groups[0]})")
    topo = topology(opts, pod_cidrs=cidrs)
    for n in topo.nodes:
        verb = ensure_container(topo, n.container, image_ids, states.get(n.name),
                                digests[n.name])
        if verb == "running" and preload_changed:
            # A running node loaded the old tarball at start: give it the new images.
            docker_ops.load_into(n.name, list(opts.preload))
            verb = "running; preloaded images updated"
        say(f"node {n.name} {n.ip} pod CIDR {n.pod_cidr}: {verb}")

    removed = remove_extra(topo, say)
    if removed:
        asyncio.run(cluster_api.delete_nodes(admin, removed))
    cmds = network.sync_host_routes(topo.subnet, topo.host_routes)
    say(f"host routes: {len(cmds)} changed" if cmds else "host routes: in place")
    if args.wait > 0:
        asyncio.run(cluster_api.wait_nodes_ready(
            admin, {n.name: n.ip for n in topo.nodes}, args.wait, KUBELET_METRICS_PORT,
            health_tls(topo), on_ready=lambda n: say(f"node {n} Ready")))
    pki_dir = pathlib.Path(topo.pki_dir)
    path = client_config.write_config(
        topo.api_addresses, certificate_authority=pki_dir / f"{pki.CA_NAME}.crt",
        client_certificate=pki_dir / "admin.crt", client_key=pki_dir / "admin.key")
    say(f"ready; client config {path} (user kubernetes-admin, group system:masters)")
    if not args.quiet:
        print(usage_text(topo, path))
    return 0


def remove_extra(topo: Topology, say: Progress) -> list[str]:
    """Containers of this cluster that the plan no longer has (fewer nodes or
    API servers than before); the removed nodes' names."""
    wanted = {c.name for c in topo.containers}
    removed_nodes = []
    for name in docker_ops.containers({CLUSTER_LABEL: topo.options.name}):
        if name in wanted:
            continue
        state = docker_ops.inspect([name]).get(name)
        role = state.labels.get(ROLE_LABEL, "") if state else ""
        docker_ops.remove(name)
        shutil.rmtree(topo.bundle_dir(name), ignore_errors=True)
        if role == "node":
            removed_nodes.append(name)
            with contextlib.suppress(DockerError):
                docker_ops.remove_volume(f"{name}-docker")
            remove_cgroups(name)
        say(f"{role or 'container'} {name}: removed (no longer in the plan)")
    return removed_nodes


def usage_text(topo: Topology, config_path: pathlib.Path) -> str:
    state = pathlib.Path(topo.state_dir)
    name = '' if topo.options.name == 'kyb' else f' --name {topo.options.name}'
    audit = topo.audit_log(topo.apiservers[0].name)
    viewer = state / TOKEN_CONFS[credentials.VIEWER_TOKEN_USER.name]
    first = topo.nodes[0].name if topo.nodes else 'NODE'
    return f"""
Kybernetes cluster {topo.options.name!r}: API {','.join(topo.api_addresses)} \
(client config {config_path})
Nodes: {', '.join(f'{n.name} ({n.ip}, pods {n.pod_cidr})' for n in topo.nodes)}
Security: mutual TLS everywhere; the CA and every certificate in {topo.pki_dir}
  a bearer token (read-only): KYB_CONFIG={viewer} kyb get pods
  audit log: {audit}
  a new user: {PROG} user NAME --group GROUP{name}
Try:
  .venv/bin/kyb get nodes
  .venv/bin/kyb apply -f deploy/examples/web.yaml
  {PROG} load IMAGE...        make a host image available on every node
  {PROG} partition {first}   (and heal) to watch a node go NotReady
Remove it with: {PROG} down{name}
"""


# -- down -----------------------------------------------------------------------------------


def remove_cgroups(node_name: str) -> None:
    """The node's pods' cgroups (its dockerd's --cgroup-parent /NAME) are
    left behind when a node container is killed; remove the empty tree."""
    root = pathlib.Path("/sys/fs/cgroup")
    if not node_name or "/" in node_name:
        return
    for parent in root.glob(f"*/{node_name}"):
        for dirpath, _, _ in sorted(os.walk(parent), key=lambda x: -x[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def cmd_down(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    docker_ops.check_engine()
    labels = {CLUSTER_LABEL: args.name}
    names = docker_ops.containers(labels)
    states = docker_ops.inspect(names)
    api = sorted(_api_addresses(args.name))
    nets = docker_ops.networks(labels)
    subnets = docker_ops.network_subnets()
    found = bool(names or nets or docker_ops.volumes(labels) or state_dir(args.name).exists())
    if not found:
        say(f"no cluster {args.name}")
        return 0
    for net in nets:
        for subnet in subnets.get(net, []):
            cmds = network.sync_host_routes(subnet, [])
            say(f"host routes via {subnet}: {len(cmds)} removed")
    nodes = [n for n in names if states.get(n) and states[n].labels.get(ROLE_LABEL) == "node"]
    # Nodes first: their dockerd may take a moment; the control plane after.
    for name in sorted(names, key=lambda n: n not in nodes):
        docker_ops.remove(name)
        say(f"container {name}: removed")
    for name in nodes:
        remove_cgroups(name)
    for net in nets:
        docker_ops.remove_network(net)
        say(f"network {net}: removed")
    for volume in docker_ops.volumes(labels):
        docker_ops.remove_volume(volume)
        say(f"volume {volume}: removed")
    shutil.rmtree(state_dir(args.name), ignore_errors=True)
    with contextlib.suppress(OSError):
        state_dir(args.name).parent.rmdir()  # only if no other cluster is kept there
    path = client_config.config_path()
    with contextlib.suppress(ValueError):
        current = str(client_config.read_config(path).get("server", ""))
        if api and sorted(current.split(",")) == api:
            path.unlink()
            say(f"client config {path}: removed")
    say(f"cluster {args.name} removed")
    return 0


def _api_addresses(name: str) -> list[str]:
    """host:port of the cluster's API servers, from the stored options."""
    opts = stored_options(name)
    if opts is None:
        return []
    return topology(opts).api_addresses


# -- status, load, nodes ----------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    docker_ops.check_engine()
    opts = stored_options(args.name)
    names = docker_ops.containers({CLUSTER_LABEL: args.name})
    if opts is None and not names:
        print(f"no cluster {args.name}")
        return 1
    states = docker_ops.inspect(names)
    memory = docker_ops.memory_usage([n for n, s in states.items() if s.running])
    ips = {}
    if opts is not None:
        topo = topology(opts)
        ips = {c.name: c.ip for c in topo.containers}
    ready: dict[str, bool] = {}
    api_line = "no API server address known"
    if opts is not None:
        try:
            ready = asyncio.run(cluster_api.node_ready(admin_config(topo)))
            api_line = f"API {','.join(topo.api_addresses)}: answering"
        except ApiError as err:
            api_line = f"API {','.join(topo.api_addresses)}: {err}"
    rows = [("CONTAINER", "ROLE", "STATE", "IP", "MEMORY", "NODE")]
    for name in sorted(names, key=lambda n: (n.rpartition("-node-")[1] != "", n)):
        s = states.get(name)
        role = s.labels.get(ROLE_LABEL, "") if s else ""
        node = ("Ready" if ready.get(name) else "NotReady") if role == "node" else ""
        rows.append((name, role, s.status if s else "?", ips.get(name, ""),
                     memory.get(name, "-"), node))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(api_line)
    return 0


def _node_containers(cluster: str) -> list[str]:
    return docker_ops.containers({CLUSTER_LABEL: cluster, ROLE_LABEL: "node"})


def _resolve_node(cluster: str, name: str) -> str:
    nodes = _node_containers(cluster)
    for candidate in (name, f"{cluster}-{name}", f"{cluster}-node-{name}"):
        if candidate in nodes:
            return candidate
    raise UsageError(f"no node {name!r} in cluster {cluster} "
                     f"(nodes: {', '.join(sorted(nodes)) or 'none'})")


def cmd_load(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    docker_ops.check_engine()
    for image in args.images:
        if docker_ops.image_id(image) is None:
            raise UsageError(f"image {image} not found on this host")
    nodes = [_resolve_node(args.name, n) for n in args.nodes.split(",")] if args.nodes \
        else sorted(_node_containers(args.name))
    if not nodes:
        raise UsageError(f"cluster {args.name} has no nodes")
    running = docker_ops.inspect(nodes)
    for node in nodes:
        if not running.get(node) or not running[node].running:
            say(f"{node}: not running, skipped")
            continue
        docker_ops.load_into(node, args.images)
        say(f"{node}: loaded {', '.join(args.images)}")
    return 0


def cmd_stop_node(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    node = _resolve_node(args.name, args.node)
    docker_ops.stop(node, NODE_STOP_TIMEOUT)
    say(f"node {node}: stopped")
    return 0


def cmd_start_node(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    node = _resolve_node(args.name, args.node)
    docker_ops.start(node)
    say(f"node {node}: started")
    opts = stored_options(args.name)
    if args.wait > 0 and opts is not None:
        topo = topology(opts)
        asyncio.run(cluster_api.wait_nodes_ready(
            admin_config(topo), {node: topo.node(node).ip}, args.wait, KUBELET_METRICS_PORT,
            health_tls(topo)))
        say(f"node {node}: Ready")
    return 0


def _api_ips(cluster: str) -> list[str]:
    return [a.rpartition(":")[0] for a in _api_addresses(cluster)]


def cmd_partition(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    node = _resolve_node(args.name, args.node)
    ips = _api_ips(args.name)
    if not ips:
        raise UsageError(f"cluster {args.name}: no API server address known")
    docker_ops.exec_(node, "sh", "-c", network.partition_script(ips))
    say(f"node {node}: cut off from the API servers ({', '.join(ips)}); its pods keep running")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    say = Progress(args.quiet)
    node = _resolve_node(args.name, args.node)
    docker_ops.exec_(node, "sh", "-c", network.heal_script())
    say(f"node {node}: reconnected to the API servers")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """A client certificate for a new user, signed by the cluster CA, in a
    self-contained client config (kubeadm's ``kubeconfig user``)."""
    say = Progress(args.quiet)
    opts = stored_options(args.name)
    if opts is None:
        raise UsageError(f"no cluster {args.name}")
    if not args.user.strip() or args.user != args.user.strip():
        raise UsageError(f"user name {args.user!r}: not empty, no surrounding spaces")
    topo = topology(opts)
    ca_pem, pair = credentials.issue_user(topo.pki_dir, args.user, args.group)
    path = pathlib.Path(args.output) if args.output else \
        state_dir(args.name) / "users" / f"{args.user.replace(':', '_').replace('/', '_')}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = credentials.user_config_text(topo.api_addresses, ca_pem, pair)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    groups = f" (groups {', '.join(args.group)})" if args.group else ""
    say(f"user {args.user}{groups}: certificate valid until "
        f"{pair.cert.not_valid_after_utc:%Y-%m-%d}; client config {path}")
    if not args.quiet:
        print(f"""
  KYB_CONFIG={path} kyb auth whoami
The user may do nothing until a role is bound to it, e.g. (as the admin):
  kyb apply -f - <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {args.user.replace(':', '-').lower()}-view}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: User, name: "{args.user}", apiGroup: rbac.authorization.k8s.io}}]
EOF""")
    return 0


# -- the command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, func, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_, description=help_)
        c.set_defaults(func=func)
        c.add_argument("--name", default=os.environ.get("KYB_CLUSTER", "kyb"),
                       help="the cluster's name: prefix of everything it makes "
                            "(default: $KYB_CLUSTER, else kyb)")
        c.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
        return c

    up = command("up", cmd_up, "create or converge the cluster")
    up.add_argument("--nodes", type=int, help="worker nodes (default 2, or as before)")
    up.add_argument("--etcd", type=int, help="etcd members: 1 or 3 (default 1)")
    up.add_argument("--apiservers", type=int, help="API server replicas (default 1)")
    up.add_argument("--subnet", help="the private Docker network (default 172.30.0.0/24)")
    up.add_argument("--cluster-cidr", help="pod addresses (default 10.244.0.0/16)")
    up.add_argument("--service-cidr", help="ClusterIP range (default 10.96.0.0/12)")
    up.add_argument("--node-cidr-mask", type=int, help="prefix of each node's pod CIDR (24)")
    up.add_argument("--log-level", help="log level of every component (info)")
    up.add_argument("--pod-eviction-timeout", type=int,
                    help="seconds pods stay on a NotReady/unreachable node before they are "
                         "evicted (default 60; Kubernetes: 300)")
    up.add_argument("--wait", type=float, default=DEFAULT_WAIT,
                    help="seconds to wait for the API and for every node to be Ready "
                         "(0: do not wait for nodes)")
    command("down", cmd_down, "remove every container, network, route and volume of the cluster")
    user = command("user", cmd_user, "issue a client certificate for a user and write a client "
                                     "config for it (certificates inline)")
    user.add_argument("user", metavar="USER", help="the user name (the certificate's CN)")
    user.add_argument("--group", action="append", default=[],
                      help="a group of the user (the certificate's O); repeat for more")
    user.add_argument("--output", "-o", default="",
                      help="where to write the client config (default: "
                           "STATE/users/USER.conf)")
    command("status", cmd_status, "show the cluster's containers and nodes")
    load = command("load", cmd_load, "load host images into every node's container runtime")
    load.add_argument("images", nargs="+", metavar="IMAGE")
    load.add_argument("--nodes", default="", help="only these nodes (comma-separated)")
    for name, func, help_ in (
            ("stop-node", cmd_stop_node, "stop a node's container (a node failure)"),
            ("start-node", cmd_start_node, "start a stopped node's container again"),
            ("partition", cmd_partition,
             "cut a node off the API servers while its pods keep running"),
            ("heal", cmd_heal, "undo partition")):
        c = command(name, func, help_)
        c.add_argument("node", metavar="NAME", help="node name (kyb-node-1, node-1 or 1)")
        if name == "start-node":
            c.add_argument("--wait", type=float, default=0.0,
                           help="seconds to wait for the node to be Ready (0: do not wait)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.func(args)
    except (UsageError, DockerError, NetworkError, ValueError, TimeoutError, ApiError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
