"""The options of a local cluster, their defaults and their checks.

An :class:`Options` value is everything that decides what ``kyb-cluster up``
builds; it is stored (as JSON) in a label of the cluster's Docker network,
so that ``down``, ``status``, ``load`` and the failure-injection commands
work on the cluster as it was made, whatever flags they are given.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from typing import Any

LABEL_PREFIX = "org.kybernetes"
CLUSTER_LABEL = f"{LABEL_PREFIX}.cluster"
ROLE_LABEL = f"{LABEL_PREFIX}.role"
SPEC_LABEL = f"{LABEL_PREFIX}.spec"
OPTIONS_LABEL = f"{LABEL_PREFIX}.options"

_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 20          # leaves room for "-controller-manager" in a 63-character DNS label
MAX_ETCD = 7
MAX_APISERVERS = 5

# Where each container sits in --subnet (host numbers: .1 is the gateway,
# i.e. the host itself). Fixed addresses let a restarted container keep its
# IP, so routes, etcd peer URLs and the client config stay valid.
ETCD_HOST = 10
APISERVER_HOST = 20
SCHEDULER_HOST = 30
CONTROLLER_MANAGER_HOST = 31
FIRST_NODE_HOST = 40


@dataclasses.dataclass(frozen=True)
class Options:
    """What a local cluster is made of. Durations are seconds."""

    name: str = "kyb"
    nodes: int = 2
    etcd: int = 1
    apiservers: int = 1
    subnet: str = "172.30.0.0/24"            # the private Docker network
    cluster_cidr: str = "10.244.0.0/16"      # pod IPs; a /node_cidr_mask per node
    node_cidr_mask: int = 24
    service_cidr: str = "10.96.0.0/12"       # ClusterIPs
    python_image: str = "kyb/python:latest"
    etcd_image: str = "kyb/etcd:latest"
    node_image: str = "kyb/node:latest"
    preload: tuple[str, ...] = ("kyb/pause:latest", "kyb/busybox:latest")
    # Node lifecycle, shortened from Kubernetes' defaults (40-50 s grace,
    # 10 s lease renewal) so failures show within seconds, not minutes.
    node_monitor_grace_period: float = 20.0
    node_monitor_period: float = 2.0
    node_startup_grace_period: float = 30.0
    node_lease_renew_interval: float = 4.0
    # How long pods stay on a NotReady/unreachable node before eviction (the
    # API server's default tolerationSeconds; Kubernetes: 300).
    pod_eviction_timeout: int = 60
    log_level: str = "info"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Options:
        """Options stored by an earlier (maybe older) kyb-cluster: unknown
        keys are ignored, missing ones take today's defaults."""
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ValueError(f"stored cluster options are not JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError("stored cluster options are not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        if "preload" in values:
            values["preload"] = tuple(values["preload"])
        return cls(**values)

    def replace(self, **changes: Any) -> Options:
        return dataclasses.replace(self, **changes)


def validate(opts: Options) -> Options:
    """Check every option; raises ValueError with one line naming the flag."""
    if not _NAME.match(opts.name) or len(opts.name) > MAX_NAME:
        raise ValueError(f"--name {opts.name!r}: lower-case letters, digits and '-', "
                         f"starting with a letter, at most {MAX_NAME} characters")
    if not 1 <= opts.nodes <= 100:
        raise ValueError(f"--nodes {opts.nodes}: between 1 and 100")
    if not (1 <= opts.etcd <= MAX_ETCD and opts.etcd % 2 == 1):
        raise ValueError(f"--etcd {opts.etcd}: an odd number of members, 1 to {MAX_ETCD}")
    if not 1 <= opts.apiservers <= MAX_APISERVERS:
        raise ValueError(f"--apiservers {opts.apiservers}: between 1 and {MAX_APISERVERS}")
    subnet = _network("--subnet", opts.subnet)
    cluster = _network("--cluster-cidr", opts.cluster_cidr)
    service = _network("--service-cidr", opts.service_cidr)
    if not cluster.prefixlen <= opts.node_cidr_mask <= 30:
        raise ValueError(f"--node-cidr-mask /{opts.node_cidr_mask} must lie between the "
                         f"cluster CIDR's /{cluster.prefixlen} and /30")
    if 2 ** (opts.node_cidr_mask - cluster.prefixlen) <= opts.nodes:
        raise ValueError(f"--cluster-cidr {opts.cluster_cidr} has too few "
                         f"/{opts.node_cidr_mask} subnets for {opts.nodes} nodes")
    if subnet.num_addresses - 2 < FIRST_NODE_HOST + opts.nodes:
        raise ValueError(f"--subnet {opts.subnet} is too small for {opts.nodes} nodes")
    for (a_flag, a), (b_flag, b) in (
            (("--subnet", subnet), ("--cluster-cidr", cluster)),
            (("--subnet", subnet), ("--service-cidr", service)),
            (("--cluster-cidr", cluster), ("--service-cidr", service))):
        if a.overlaps(b):
            raise ValueError(f"{a_flag} {a} overlaps {b_flag} {b}")
    for flag in ("node_monitor_grace_period", "node_monitor_period",
                 "node_startup_grace_period", "node_lease_renew_interval"):
        if getattr(opts, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive")
    if opts.node_lease_renew_interval >= opts.node_monitor_grace_period:
        raise ValueError("--node-lease-renew-interval must be shorter than "
                         "--node-monitor-grace-period")
    return opts


def _network(flag: str, text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        raise ValueError(f"{flag} {text!r}: {err}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"{flag} {text!r}: only IPv4 is supported")
    return net
