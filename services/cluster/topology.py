"""What a local cluster is, computed from its options alone (no I/O).

:func:`plan` turns :class:`~services.cluster.config.Options` into the Docker
network, volumes and containers to create (with their exact ``docker run``
arguments), each node's pod CIDR and the routes the host needs. Everything
here is deterministic, so a second ``up`` computes the same plan and finds
nothing to change.

Pod CIDRs are assigned here, up front — node *i* gets the *i*-th
``/node_cidr_mask`` of the cluster CIDR (``kyb-node-1`` → ``10.244.1.0/24``)
— rather than waited for from the controller manager's node IPAM. ``up``
writes each CIDR into the Node object before the node starts (IPAM then
counts it as taken and never hands it out), and the node container gets it
in ``KYB_POD_CIDR``, so its dockerd starts at once with the right bridge
instead of waiting for registration and restarting. A Node object that
already has a pod CIDR keeps it (``pod_cidrs`` overrides).

Everything talks mutual TLS (the files are each container's credentials
bundle, see :mod:`credentials`): etcd serves only TLS, on the cluster
network, asks every client and peer for a certificate, and its entrypoint
firewalls the client port to the API servers' addresses; the API servers
ask every client for a certificate on :data:`API_PORT` and take bearer
tokens on :data:`API_TOKEN_PORT`; every other daemon reaches them with a
client config of its own identity (``--kubeconfig``), and serves its
metrics over HTTPS with a serving certificate. Nothing is published on the
host's ports.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Mapping

from services.cluster import credentials as creds
from services.cluster.config import (
    APISERVER_HOST, CLUSTER_LABEL, CONTROLLER_MANAGER_HOST, ETCD_HOST, FIRST_NODE_HOST,
    OPTIONS_LABEL, ROLE_LABEL, SCHEDULER_HOST, SPEC_LABEL, Options,
)

API_PORT = 6443
API_TOKEN_PORT = 6444          # TLS without client certificates: bearer tokens
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_METRICS_PORT = 2381       # /metrics and /health only (mutual TLS too)
APISERVER_METRICS_PORT = 8081
SCHEDULER_METRICS_PORT = 10259
CONTROLLER_MANAGER_METRICS_PORT = 10257
KUBELET_PORT = 10250
KUBELET_METRICS_PORT = 10248
PROXY_METRICS_PORT = 10249
PRELOAD_MOUNT = "/preload"
NODE_STOP_TIMEOUT = 15
# Under the cluster's state directory: each container's credentials (see
# credentials.py) and the API servers' audit logs.
BUNDLES = "bundles"
AUDIT = "audit"
AUDIT_MOUNT = "/var/log/kyb-apiserver"
AUDIT_LOG = "audit.log"
CA_FILE = creds.in_bundle(creds.CA)
# etcd's entrypoint sets a firewall in its own network namespace (only the
# API servers reach the client port): that takes CAP_NET_ADMIN, nothing more.
ETCD_PRIVILEGES = ("--cap-add", "NET_ADMIN")

# What a node container needs to run its own dockerd here: --privileged
# fails on these machines (CAP_SYS_RESOURCE is outside the bounding set), so
# every other capability, no seccomp/AppArmor confinement, all devices, and
# the host's cgroup tree writable (the inner containers' cgroups live under
# /<node name>). See shared/ENVIRONMENT.md.
NODE_PRIVILEGES = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "--tmpfs", "/run", "--tmpfs", "/tmp",
)


@dataclasses.dataclass(frozen=True)
class Container:
    """One container of the cluster, as ``docker run`` will be told."""

    name: str
    role: str                     # etcd, apiserver, scheduler, controller-manager, node
    image: str
    ip: str
    args: tuple[str, ...] = ()    # after the image: the command or the entrypoint's arguments
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()   # (volume name or host path, target[:ro])
    flags: tuple[str, ...] = ()   # further docker run flags
    restart: str = "unless-stopped"


@dataclasses.dataclass(frozen=True)
class Node:
    """A worker node: its container, the Node object's name and pod CIDR."""

    index: int
    container: Container
    pod_cidr: str

    @property
    def name(self) -> str:
        return self.container.name

    @property
    def ip(self) -> str:
        return self.container.ip


@dataclasses.dataclass(frozen=True)
class Route:
    destination: str
    via: str


@dataclasses.dataclass(frozen=True)
class Topology:
    options: Options
    network: str
    subnet: str
    gateway: str
    volumes: tuple[str, ...]
    etcd: tuple[Container, ...]
    apiservers: tuple[Container, ...]
    scheduler: Container
    controller_manager: Container
    nodes: tuple[Node, ...]
    preload_dir: str
    state_dir: str = ""

    @property
    def control_plane(self) -> tuple[Container, ...]:
        return (*self.etcd, *self.apiservers, self.scheduler, self.controller_manager)

    @property
    def containers(self) -> tuple[Container, ...]:
        """Every container, in the order they are started."""
        return (*self.control_plane, *(n.container for n in self.nodes))

    @property
    def api_addresses(self) -> list[str]:
        """Where the API servers answer, from the host and from every container."""
        return [f"{c.ip}:{API_PORT}" for c in self.apiservers]

    @property
    def token_addresses(self) -> list[str]:
        """The API servers' bearer-token port (TLS, no client certificate)."""
        return [f"{c.ip}:{API_TOKEN_PORT}" for c in self.apiservers]

    @property
    def etcd_endpoints(self) -> list[str]:
        return [f"{c.ip}:{ETCD_CLIENT_PORT}" for c in self.etcd]

    @property
    def pki_dir(self) -> str:
        """The cluster's private PKI directory (the CA's key; no container
        mounts it)."""
        return f"{self.state_dir}/pki"

    def bundle_dir(self, container: str) -> str:
        """The host directory mounted read-only at credentials.MOUNT in ``container``."""
        return f"{self.state_dir}/{BUNDLES}/{container}"

    def audit_log(self, apiserver: str) -> str:
        """Where the host finds an API server's audit log."""
        return f"{self.state_dir}/{AUDIT}/{apiserver}/{AUDIT_LOG}"

    @property
    def host_routes(self) -> tuple[Route, ...]:
        """The host reaches pod IPs through their node, and ClusterIPs
        through the first node (whose kube-proxy rules translate them)."""
        routes = [Route(n.pod_cidr, n.ip) for n in self.nodes]
        if self.nodes:
            routes.append(Route(self.options.service_cidr, self.nodes[0].ip))
        return tuple(routes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name or n.name == f"{self.options.name}-{name}":
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise ValueError(f"no node {name!r} in cluster {self.options.name} (nodes: {known})")

    def labels(self, role: str) -> dict[str, str]:
        return {CLUSTER_LABEL: self.options.name, ROLE_LABEL: role}

    def network_labels(self) -> dict[str, str]:
        return {**self.labels("network"), OPTIONS_LABEL: self.options.to_json()}


def host(subnet: str, number: int) -> str:
    """The ``number``-th address of ``subnet`` (1 is the gateway)."""
    net = ipaddress.ip_network(subnet)
    if not 0 < number < net.num_addresses - 1:
        raise ValueError(f"address #{number} is outside {subnet}")
    return str(net.network_address + number)


def pod_cidr(opts: Options, index: int) -> str:
    """The pod CIDR of node ``index`` (1-based): the index-th subnet."""
    cluster = ipaddress.ip_network(opts.cluster_cidr)
    size = 2 ** (32 - opts.node_cidr_mask)
    if not 0 <= index < 2 ** (opts.node_cidr_mask - cluster.prefixlen):
        raise ValueError(f"node #{index} has no /{opts.node_cidr_mask} left in {cluster}")
    return f"{cluster.network_address + index * size}/{opts.node_cidr_mask}"


def node_name(opts: Options, index: int) -> str:
    return f"{opts.name}-node-{index}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def plan(opts: Options, *, preload_dir: str = "", state_dir: str = "",
         pod_cidrs: Mapping[str, str] | None = None) -> Topology:
    """The cluster ``opts`` describes. ``pod_cidrs``: node name → the pod CIDR
    its Node object already has (kept); ``state_dir``: the host directory of
    the cluster's files (each container's credentials bundle, the API
    servers' audit logs); ``preload_dir``: the host directory holding the
    ``docker save`` tarballs every node loads at start (default
    ``STATE_DIR/preload``)."""
    pod_cidrs = pod_cidrs or {}
    state_dir = state_dir.rstrip("/")
    preload_dir = preload_dir or f"{state_dir}/preload"
    name, subnet = opts.name, opts.subnet

    def bundle(container: str) -> tuple[str, str]:
        return (f"{state_dir}/{BUNDLES}/{container}", f"{creds.MOUNT}:ro")

    etcd_ips = [host(subnet, ETCD_HOST + i) for i in range(opts.etcd)]
    api_ips = [host(subnet, APISERVER_HOST + i) for i in range(opts.apiservers)]
    initial = ",".join(f"etcd-{i}=https://{ip}:{ETCD_PEER_PORT}" for i, ip in enumerate(etcd_ips))
    etcd_cert, etcd_key = _cert_flags(creds.ETCD_SERVER)
    etcd = tuple(
        Container(
            name=f"{name}-etcd-{i}", role="etcd", image=opts.etcd_image, ip=ip,
            args=("--name", f"etcd-{i}", "--data-dir", "/var/lib/etcd",
                  # Only on the cluster network (and loopback), never 0.0.0.0.
                  "--listen-client-urls",
                  f"https://{ip}:{ETCD_CLIENT_PORT},https://127.0.0.1:{ETCD_CLIENT_PORT}",
                  "--advertise-client-urls", f"https://{ip}:{ETCD_CLIENT_PORT}",
                  "--listen-peer-urls", f"https://{ip}:{ETCD_PEER_PORT}",
                  "--initial-advertise-peer-urls", f"https://{ip}:{ETCD_PEER_PORT}",
                  "--listen-metrics-urls", f"https://{ip}:{ETCD_METRICS_PORT}",
                  "--initial-cluster", initial, "--initial-cluster-state", "new",
                  "--initial-cluster-token", f"{name}-etcd",
                  # Progress notifications every second, as the API server's
                  # watch caches expect (its --bookmark-interval): an idle
                  # cache then still knows it is current, which the writes
                  # that wait for a fresh cache (a node registering) need.
                  "--experimental-watch-progress-notify-interval", "1s",
                  "--cert-file", etcd_cert, "--key-file", etcd_key,
                  "--client-cert-auth", "--trusted-ca-file", CA_FILE,
                  "--peer-cert-file", etcd_cert, "--peer-key-file", etcd_key,
                  "--peer-client-cert-auth", "--peer-trusted-ca-file", CA_FILE),
            # The entrypoint's firewall: the client port answers the API
            # servers only, the peer port the other members only.
            env=(("KYB_ETCD_CLIENTS", ",".join(api_ips)),
                 ("KYB_ETCD_PEERS", ",".join(etcd_ips))),
            mounts=((f"{name}-etcd-{i}-data", "/var/lib/etcd"), bundle(f"{name}-etcd-{i}")),
            flags=ETCD_PRIVILEGES)
        for i, ip in enumerate(etcd_ips))
    etcd_servers = ",".join(f"{ip}:{ETCD_CLIENT_PORT}" for ip in etcd_ips)
    api_cert, api_key = _cert_flags(creds.APISERVER)
    etcd_client_cert, etcd_client_key = _cert_flags(creds.APISERVER_ETCD_CLIENT)
    kubelet_client_cert, kubelet_client_key = _cert_flags(creds.APISERVER_KUBELET_CLIENT)
    apiservers = tuple(
        Container(
            name=f"{name}-apiserver-{i}", role="apiserver", image=opts.python_image, ip=ip,
            args=("kyb-apiserver", "--bind-address", "0.0.0.0", "--port", str(API_PORT),
                  "--token-port", str(API_TOKEN_PORT),
                  "--metrics-port", str(APISERVER_METRICS_PORT),
                  "--tls-cert-file", api_cert, "--tls-private-key-file", api_key,
                  "--client-ca-file", CA_FILE,
                  "--token-auth-file", creds.in_bundle(creds.TOKENS),
                  "--authorization-mode", "Node,RBAC",
                  "--audit-log-path", f"{AUDIT_MOUNT}/{AUDIT_LOG}",
                  "--etcd-servers", etcd_servers, "--etcd-cafile", CA_FILE,
                  "--etcd-certfile", etcd_client_cert, "--etcd-keyfile", etcd_client_key,
                  "--kubelet-client-certificate", kubelet_client_cert,
                  "--kubelet-client-key", kubelet_client_key,
                  "--kubelet-certificate-authority", CA_FILE,
                  "--service-cluster-ip-range", opts.service_cidr,
                  "--default-not-ready-toleration-seconds", str(opts.pod_eviction_timeout),
                  "--default-unreachable-toleration-seconds", str(opts.pod_eviction_timeout),
                  "--log-level", opts.log_level),
            mounts=(bundle(f"{name}-apiserver-{i}"),
                    (f"{state_dir}/{AUDIT}/{name}-apiserver-{i}", AUDIT_MOUNT)))
        for i, ip in enumerate(api_ips))
    serving = _serving_flags(creds.SERVING)
    kubeconfig = ("--kubeconfig", creds.in_bundle(creds.COMPONENT_CONF))
    scheduler = Container(
        name=f"{name}-scheduler", role="scheduler", image=opts.python_image,
        ip=host(subnet, SCHEDULER_HOST),
        args=("kyb-scheduler", *kubeconfig, "--metrics-port", str(SCHEDULER_METRICS_PORT),
              *serving, "--log-level", opts.log_level),
        mounts=(bundle(f"{name}-scheduler"),))
    controller_manager = Container(
        name=f"{name}-controller-manager", role="controller-manager", image=opts.python_image,
        ip=host(subnet, CONTROLLER_MANAGER_HOST),
        args=("kyb-controller-manager", *kubeconfig,
              "--metrics-port", str(CONTROLLER_MANAGER_METRICS_PORT), *serving,
              "--cluster-cidr", opts.cluster_cidr,
              "--node-cidr-mask-size", str(opts.node_cidr_mask),
              "--node-monitor-grace-period", _seconds(opts.node_monitor_grace_period),
              "--node-monitor-period", _seconds(opts.node_monitor_period),
              "--node-startup-grace-period", _seconds(opts.node_startup_grace_period),
              "--log-level", opts.log_level),
        mounts=(bundle(f"{name}-controller-manager"),))
    kubelet_args = ("--kubeconfig", creds.in_bundle(creds.KUBELET_CONF),
                    *_serving_flags(creds.KUBELET),
                    "--node-lease-renew-interval", f"{opts.node_lease_renew_interval:g}",
                    "--metrics-port", str(KUBELET_METRICS_PORT), "--log-level", opts.log_level)
    proxy_args = ("--kubeconfig", creds.in_bundle(creds.PROXY_CONF),
                  *_serving_flags(creds.PROXY_SERVING),
                  "--metrics-port", str(PROXY_METRICS_PORT), "--log-level", opts.log_level)
    # The route agent only reads Node objects: the node's own identity does.
    routes_args = ("--kubeconfig", creds.in_bundle(creds.KUBELET_CONF))
    nodes = []
    for index in range(1, opts.nodes + 1):
        nname = node_name(opts, index)
        ip = host(subnet, FIRST_NODE_HOST + index - 1)
        cidr = pod_cidrs.get(nname) or pod_cidr(opts, index)
        container = Container(
            name=nname, role="node", image=opts.node_image, ip=ip,
            env=(("KYB_NODE_NAME", nname), ("KYB_NODE_IP", ip), ("KYB_POD_CIDR", cidr),
                 ("KYB_CLUSTER_CIDR", opts.cluster_cidr), ("KYB_PRELOAD", PRELOAD_MOUNT),
                 ("KYB_KUBELET_ARGS", " ".join(kubelet_args)),
                 ("KYB_PROXY_ARGS", " ".join(proxy_args)),
                 ("KYB_ROUTES_ARGS", " ".join(routes_args))),
            mounts=((f"{nname}-docker", "/var/lib/docker"),
                    ("/sys/fs/cgroup", "/sys/fs/cgroup:rw"),
                    ("/lib/modules", "/lib/modules:ro"),
                    (preload_dir, f"{PRELOAD_MOUNT}:ro"),
                    bundle(nname)),
            flags=(*NODE_PRIVILEGES, "--stop-timeout", str(NODE_STOP_TIMEOUT)))
        nodes.append(Node(index=index, container=container, pod_cidr=cidr))
    volumes = (*(f"{c.name}-data" for c in etcd), *(f"{n.name}-docker" for n in nodes))
    net = ipaddress.ip_network(subnet)
    return Topology(options=opts, network=f"{name}-net", subnet=subnet,
                    gateway=str(net.network_address + 1), volumes=volumes, etcd=etcd,
                    apiservers=apiservers, scheduler=scheduler,
                    controller_manager=controller_manager, nodes=tuple(nodes),
                    preload_dir=preload_dir, state_dir=state_dir)


def _cert_flags(stem: str) -> tuple[str, str]:
    return creds.in_bundle(f"{stem}.crt"), creds.in_bundle(f"{stem}.key")


def _serving_flags(stem: str) -> tuple[str, ...]:
    """--tls-cert-file/--tls-private-key-file/--client-ca-file (Kubernetes'
    names) for a daemon's serving certificate ``stem`` in its bundle."""
    cert, key = _cert_flags(stem)
    return ("--tls-cert-file", cert, "--tls-private-key-file", key, "--client-ca-file", CA_FILE)


def run_args(topo: Topology, c: Container, spec: str = "") -> list[str]:
    """The arguments of ``docker run`` (after ``run``) that create ``c``;
    ``spec`` is the hash recorded in its labels (see :func:`spec_hash`)."""
    args = ["-d", "--name", c.name, "--hostname", c.name,
            "--network", topo.network, "--ip", c.ip, "--restart", c.restart]
    labels = topo.labels(c.role)
    if spec:
        labels[SPEC_LABEL] = spec
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    for key, value in c.env:
        args += ["-e", f"{key}={value}"]
    for source, target in c.mounts:
        args += ["-v", f"{source}:{target}"]
    args += list(c.flags)
    args.append(c.image)
    args += list(c.args)
    return args


def spec_hash(topo: Topology, c: Container, image_id: str, bundle: str = "") -> str:
    """What decides a container: its run arguments, its image's ID and the
    digest of its credentials bundle. A container whose label differs is
    out of date and gets recreated."""
    digest = hashlib.sha256("\0".join([image_id, bundle, *run_args(topo, c)]).encode())
    return digest.hexdigest()[:16]
