"""The iptables rules for a set of service ports: pure, no I/O.

This follows Kubernetes' iptables proxier (pkg/proxy/iptables/proxier.go)
chain for chain and argument for argument, so its rules read the same in
``iptables-save`` output:

nat table::

    PREROUTING, OUTPUT -> KUBE-SERVICES
        -d clusterIP --dport port          -> KUBE-SVC-<hash>  (has endpoints)
        -d externalIP --dport port         -> KUBE-EXT-<hash>
        (last) --dst-type LOCAL            -> KUBE-NODEPORTS
    KUBE-NODEPORTS: --dport nodePort       -> KUBE-EXT-<hash>
    KUBE-EXT-<hash>: mark for masquerade, -> KUBE-SVC-<hash> (or the Local
        policy's KUBE-SVL-<hash> with its source-preserving special cases)
    KUBE-SVC-<hash>: ! -s clusterCIDR -> KUBE-MARK-MASQ; affinity checks;
        one rule per endpoint with probability 1/(endpoints left)  -> KUBE-SEP-<hash>
    KUBE-SEP-<hash>: -s itself -> KUBE-MARK-MASQ (hairpin); [recent --set]; DNAT
    KUBE-MARK-MASQ: set mark 0x4000;  POSTROUTING -> KUBE-POSTROUTING:
        masquerade marked packets (and clear the mark)

filter table::

    KUBE-SERVICES (OUTPUT, FORWARD; new connections): REJECT for a
        clusterIP:port with no endpoints
    KUBE-EXTERNAL-SERVICES (INPUT, FORWARD; new): REJECT nodePorts and
        external IPs with no endpoints (DROP: Local policy, none local)
    KUBE-FORWARD (FORWARD): accept marked and established service traffic

Each service port's rules are computed on their own
(:func:`service_rules`), so a caller can keep them between syncs and
recompute only what changed; :func:`assemble` puts them together.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence

from services.kube_proxy.model import Endpoint, ServicePort

NAT = "nat"
FILTER = "filter"
TABLES = (FILTER, NAT)  # kube-proxy's restore order

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"

# Chains whose names the proxier owns outright, by table, and the prefixes
# of per-service chains (kube-proxy's isServiceChainName).
FIXED_CHAINS = {
    FILTER: (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD),
    NAT: (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ),
}
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")

# Above this many endpoints in all, kube-proxy drops the per-endpoint
# comments to keep the restore input small ("large cluster mode").
LARGE_CLUSTER_ENDPOINTS = 1000

BUILTIN_CHAINS = {
    FILTER: ("INPUT", "FORWARD", "OUTPUT"),
    NAT: ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}


def owns_chain(table: str, chain: str) -> bool:
    """Whether ``chain`` in ``table`` is one the proxier creates (and so may
    flush and delete)."""
    return chain in FIXED_CHAINS.get(table, ()) or chain.startswith(SERVICE_CHAIN_PREFIXES)


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Node-wide settings that shape every rule."""

    cluster_cidr: str = "10.244.0.0/16"  # "" : no local-traffic detection
    masquerade_all: bool = False
    masquerade_bit: int = 14
    random_fully: bool = True
    node_name: str = ""  # this node, for externalTrafficPolicy: Local

    @property
    def mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"


# -- chain names -----------------------------------------------------------------------


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


@functools.lru_cache(maxsize=65536)
def service_chain_hash(key: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: base32(sha256(servicePortName + protocol))[:16],
    protocol in lower case."""
    return _hash16(key + protocol.lower())


def svc_chain(sp: ServicePort) -> str:
    return "KUBE-SVC-" + service_chain_hash(sp.key, sp.protocol)


def svl_chain(sp: ServicePort) -> str:
    return "KUBE-SVL-" + service_chain_hash(sp.key, sp.protocol)


def ext_chain(sp: ServicePort) -> str:
    return "KUBE-EXT-" + service_chain_hash(sp.key, sp.protocol)


@functools.lru_cache(maxsize=262144)
def sep_chain_name(key: str, protocol: str, endpoint: str) -> str:
    """kube-proxy's servicePortEndpointChainName: the hash also covers
    ``ip:port``, so a changed endpoint gets a new chain."""
    return "KUBE-SEP-" + _hash16(key + protocol.lower() + endpoint)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return sep_chain_name(sp.key, sp.protocol, str(ep))


def probability(n: int) -> str:
    """The statistic match for picking one of ``n`` remaining endpoints,
    printed as kube-proxy does (10 decimals)."""
    return f"{1.0 / n:0.10f}"


def quote(comment: str) -> str:
    """A comment as kube-proxy writes it: quoted, since it holds spaces."""
    return f'"{comment}"'


# -- jumps from the built-in chains ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Jump:
    """A rule in a built-in chain that sends traffic into one of ours
    (kube-proxy's iptablesJumpChains, ensured by prepending)."""

    table: str
    chain: str
    target: str
    comment: str
    extra: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return " ".join((*self.extra, "-m", "comment", "--comment", quote(self.comment),
                         "-j", self.target))

    def matches(self, rule: str) -> bool:
        """Whether an ``iptables -S`` / ``iptables-save`` line is this jump
        (iptables reorders matches on output, so compare the essentials)."""
        words = rule.split()
        if len(words) < 4 or words[1] != self.chain or words[-2:] != ["-j", self.target]:
            return False
        return quote(self.comment) in rule or (" " not in self.comment and
                                               f"--comment {self.comment}" in rule)


_NEW = ("-m", "conntrack", "--ctstate", "NEW")

JUMPS: tuple[Jump, ...] = (
    Jump(FILTER, "INPUT", KUBE_EXTERNAL_SERVICES,
         "kubernetes externally-visible service portals", _NEW),
    Jump(FILTER, "FORWARD", KUBE_EXTERNAL_SERVICES,
         "kubernetes externally-visible service portals", _NEW),
    Jump(FILTER, "FORWARD", KUBE_SERVICES, "kubernetes service portals", _NEW),
    Jump(FILTER, "OUTPUT", KUBE_SERVICES, "kubernetes service portals", _NEW),
    Jump(FILTER, "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    Jump(NAT, "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    Jump(NAT, "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    Jump(NAT, "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
)


# -- per service port ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRules:
    """Everything one service port contributes: its own nat chains (in
    write order) and its lines in the shared top-level chains."""

    nat_chains: tuple[tuple[str, tuple[str, ...]], ...] = ()
    nat_services: tuple[str, ...] = ()
    nat_nodeports: tuple[str, ...] = ()
    filter_services: tuple[str, ...] = ()
    filter_external: tuple[str, ...] = ()


def service_rules(sp: ServicePort, endpoints: Sequence[Endpoint], config: ProxyConfig,
                  large_cluster: bool = False) -> ServiceRules:
    """The rules for one service port with its ready ``endpoints`` (in the
    order they should be listed), as syncProxyRules writes them."""
    name = sp.key
    proto = sp.protocol.lower()
    match = f"-m {proto} -p {proto}"
    svc = svc_chain(sp)
    ext = ext_chain(sp)
    svl = svl_chain(sp)
    local_eps = tuple(ep for ep in endpoints if config.node_name and
                      ep.node_name == config.node_name)
    has_endpoints = bool(endpoints)
    externally_accessible = bool(sp.node_port or sp.external_ips)
    uses_ext = has_endpoints and externally_accessible
    uses_svl = bool(local_eps) and sp.external_local and externally_accessible
    has_external_endpoints = has_endpoints and (not sp.external_local or bool(local_eps))

    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []
    if has_endpoints:
        external_target, external_comment = "", ""
        if not has_external_endpoints:
            external_target = "DROP"
            external_comment = quote(f"{name} has no local endpoints")
    else:
        external_target = "REJECT"
        external_comment = quote(f"{name} has no endpoints")

    cluster_ip_args = f"-m comment --comment {quote(name + ' cluster IP')} {match} " \
                      f"-d {sp.cluster_ip} --dport {sp.port}"
    if has_endpoints:
        nat_services.append(f"-A {KUBE_SERVICES} {cluster_ip_args} -j {svc}")
    else:
        filter_services.append(f"-A {KUBE_SERVICES} -m comment --comment {external_comment} "
                               f"{match} -d {sp.cluster_ip} --dport {sp.port} -j REJECT")

    for ip in sp.external_ips:
        if has_endpoints:
            nat_services.append(
                f"-A {KUBE_SERVICES} -m comment --comment {quote(name + ' external IP')} "
                f"{match} -d {ip} --dport {sp.port} -j {ext}")
        if not has_external_endpoints:
            filter_external.append(
                f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                f"{match} -d {ip} --dport {sp.port} -j {external_target}")

    if sp.node_port:
        if has_endpoints:
            nat_nodeports.append(f"-A {KUBE_NODEPORTS} -m comment --comment {name} "
                                 f"{match} --dport {sp.node_port} -j {ext}")
        if not has_external_endpoints:
            filter_external.append(
                f"-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {external_comment} "
                f"-m addrtype --dst-type LOCAL {match} --dport {sp.node_port} "
                f"-j {external_target}")

    chains: list[tuple[str, tuple[str, ...]]] = []
    if uses_ext:
        rules = []
        if not sp.external_local:
            rules.append(f"-A {ext} -m comment --comment "
                         f"{quote(f'masquerade traffic for {name} external destinations')} "
                         f"-j {KUBE_MARK_MASQ}")
        else:
            if config.cluster_cidr:
                rules.append(f"-A {ext} -m comment --comment "
                             f"{quote(f'pod traffic for {name} external destinations')} "
                             f"-s {config.cluster_cidr} -j {svc}")
            rules.append(f"-A {ext} -m comment --comment "
                         f"{quote(f'masquerade LOCAL traffic for {name} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}")
            rules.append(f"-A {ext} -m comment --comment "
                         f"{quote(f'route LOCAL traffic for {name} external destinations')} "
                         f"-m addrtype --src-type LOCAL -j {svc}")
        if has_external_endpoints:
            rules.append(f"-A {ext} -j {svl if sp.external_local else svc}")
        chains.append((ext, tuple(rules)))

    if has_endpoints:
        rules = []
        if config.masquerade_all:
            rules.append(f"-A {svc} {cluster_ip_args} -j {KUBE_MARK_MASQ}")
        elif config.cluster_cidr:
            rules.append(f"-A {svc} {cluster_ip_args} ! -s {config.cluster_cidr} "
                         f"-j {KUBE_MARK_MASQ}")
        rules.extend(_endpoint_jumps(sp, svc, endpoints, large_cluster))
        chains.append((svc, tuple(rules)))
    if uses_svl:
        chains.append((svl, tuple(_endpoint_jumps(sp, svl, local_eps, large_cluster))))

    comment = "" if large_cluster else f"-m comment --comment {name} "
    for ep in endpoints:
        sep = sep_chain(sp, ep)
        recent = f"-m recent --name {sep} --set " if sp.affinity_seconds else ""
        chains.append((sep, (
            f"-A {sep} {comment}-s {ep.ip} -j {KUBE_MARK_MASQ}",
            f"-A {sep} {comment}{recent}{match} -j DNAT --to-destination {ep}",
        )))

    return ServiceRules(tuple(chains), tuple(nat_services), tuple(nat_nodeports),
                        tuple(filter_services), tuple(filter_external))


def _endpoint_jumps(sp: ServicePort, chain: str, endpoints: Sequence[Endpoint],
                    large_cluster: bool) -> list[str]:
    """writeServiceToEndpointRules: affinity checks first, then the
    load-balancing rules with remaining-count probabilities."""
    out = []
    comments = [("" if large_cluster else f"-m comment --comment {quote(f'{sp.key} -> {ep}')} ")
                for ep in endpoints]
    if sp.affinity_seconds:
        for ep, comment in zip(endpoints, comments):
            sep = sep_chain(sp, ep)
            out.append(f"-A {chain} {comment}-m recent --name {sep} --rcheck "
                       f"--seconds {sp.affinity_seconds} --reap -j {sep}")
    n = len(endpoints)
    for i, (ep, comment) in enumerate(zip(endpoints, comments)):
        stat = f"-m statistic --mode random --probability {probability(n - i)} " \
            if i < n - 1 else ""
        out.append(f"-A {chain} {comment}{stat}-j {sep_chain(sp, ep)}")
    return out


# -- the whole rule set ------------------------------------------------------------------------


Chains = dict[str, tuple[str, ...]]


@dataclasses.dataclass(slots=True)
class Ruleset:
    """Every chain the proxier wants, per table, each with its full list of
    ``-A`` lines, in the order they are written."""

    tables: dict[str, Chains]

    def chains(self, table: str) -> Chains:
        return self.tables.get(table, {})

    def rule_count(self, table: str) -> int:
        return sum(len(rules) for rules in self.chains(table).values())


def fixed_rules(config: ProxyConfig) -> dict[str, Chains]:
    """The chains that do not depend on services, minus the service lines
    of KUBE-SERVICES / KUBE-NODEPORTS / KUBE-EXTERNAL-SERVICES."""
    mark = config.mark
    masquerade = "-j MASQUERADE --random-fully" if config.random_fully else "-j MASQUERADE"
    return {
        FILTER: {
            KUBE_FORWARD: (
                f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP",
                f"-A {KUBE_FORWARD} -m comment --comment "
                f"{quote('kubernetes forwarding rules')} -m mark --mark {mark}/{mark} -j ACCEPT",
                f"-A {KUBE_FORWARD} -m comment --comment "
                f"{quote('kubernetes forwarding conntrack rule')} "
                f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ),
        },
        NAT: {
            KUBE_POSTROUTING: (
                f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
                f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}",
                f"-A {KUBE_POSTROUTING} -m comment --comment "
                f"{quote('kubernetes service traffic requiring SNAT')} {masquerade}",
            ),
            KUBE_MARK_MASQ: (f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}",),
        },
    }


NODEPORTS_JUMP = (f"-A {KUBE_SERVICES} -m comment --comment "
                  f"{quote('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} "
                  f"-m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}")


def assemble(per_service: Iterable[ServiceRules], config: ProxyConfig) -> Ruleset:
    """Put service ports' rules together with the fixed chains.

    Top-level chains come first in each table, then each service's own
    chains in the order given (callers pass services sorted by name).
    """
    fixed = fixed_rules(config)
    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []
    service_chains: Chains = {}
    for sr in per_service:
        nat_services.extend(sr.nat_services)
        nat_nodeports.extend(sr.nat_nodeports)
        filter_services.extend(sr.filter_services)
        filter_external.extend(sr.filter_external)
        service_chains.update(sr.nat_chains)
    nat_services.append(NODEPORTS_JUMP)
    nat: Chains = {
        KUBE_SERVICES: tuple(nat_services),
        KUBE_NODEPORTS: tuple(nat_nodeports),
        **fixed[NAT],
    }
    nat.update(service_chains)
    filter_: Chains = {
        KUBE_SERVICES: tuple(filter_services),
        KUBE_EXTERNAL_SERVICES: tuple(filter_external),
        **fixed[FILTER],
    }
    return Ruleset({FILTER: filter_, NAT: nat})


def build_ruleset(services: Iterable[tuple[ServicePort, Sequence[Endpoint]]],
                  config: ProxyConfig) -> Ruleset:
    """The whole desired rule set for ``(service port, ready endpoints)``
    pairs: the pure core of a sync."""
    pairs = sorted(services, key=lambda pair: service_order(pair[0]))
    large = is_large_cluster(len(eps) for _, eps in pairs)
    return assemble((service_rules(sp, eps, config, large) for sp, eps in pairs), config)


def service_order(sp: ServicePort) -> tuple[str, str, str, str]:
    """The order service ports are written in: by namespace, name, port."""
    return (sp.namespace, sp.name, sp.port_name, sp.protocol)


def is_large_cluster(endpoint_counts: Iterable[int]) -> bool:
    return sum(endpoint_counts) > LARGE_CLUSTER_ENDPOINTS


def endpoints_for(sp: ServicePort,
                  endpoints: Mapping[tuple[str, str], tuple[Endpoint, ...]] | None
                  ) -> tuple[Endpoint, ...]:
    """The ready endpoints of ``sp`` out of its Endpoints object's ports."""
    if not endpoints:
        return ()
    return endpoints.get(sp.endpoints_key, ())


__all__ = [
    "BUILTIN_CHAINS", "FILTER", "FIXED_CHAINS", "JUMPS", "Jump", "KUBE_EXTERNAL_SERVICES",
    "KUBE_FORWARD", "KUBE_MARK_MASQ", "KUBE_NODEPORTS", "KUBE_POSTROUTING", "KUBE_SERVICES",
    "LARGE_CLUSTER_ENDPOINTS", "NAT", "ProxyConfig", "Ruleset", "ServiceRules", "TABLES",
    "assemble", "build_ruleset", "endpoints_for", "ext_chain", "fixed_rules",
    "is_large_cluster", "owns_chain", "probability", "sep_chain", "service_chain_hash",
    "sep_chain_name", "service_order", "service_rules", "svc_chain", "svl_chain",
]
