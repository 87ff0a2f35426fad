"""What the proxy needs to know about a Service port and its endpoints.

The API objects are converted once, when the informer delivers them, into
small frozen values; the rule generator then works on those alone, and two
syncs that see the same values produce the same rules (which is what lets
the proxier skip chains that did not change).

Endpoints are matched to service ports as kube-proxy does: by the port's
*name* (and protocol), not by number. The endpoints controller has already
resolved each service port's targetPort — a number, or the name of a
container port that may differ from pod to pod — into the EndpointPort of
the same name, so a named targetPort ends up as a per-endpoint port number
here.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
from collections.abc import Mapping

from services.api.gen.kybernetes.core.v1 import types_pb2 as core

log = logging.getLogger(__name__)

# Kubernetes' default stickiness for sessionAffinity: ClientIP (3 hours).
DEFAULT_AFFINITY_SECONDS = 10800

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

# Service types the proxy programs; ExternalName services have no proxy rules.
PROXIED_TYPES = ("", "ClusterIP", "NodePort", "LoadBalancer")


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One ready backend of one service port."""

    ip: str
    port: int
    node_name: str = ""

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, with everything the rules depend on."""

    namespace: str
    name: str
    port_name: str
    protocol: str          # "TCP", "UDP" or "SCTP"
    cluster_ip: str
    port: int
    node_port: int = 0     # 0: none
    external_ips: tuple[str, ...] = ()
    affinity_seconds: int = 0  # 0: no session affinity
    external_local: bool = False  # externalTrafficPolicy: Local

    @property
    def key(self) -> str:
        """kube-proxy's ServicePortName string: ``namespace/name:port``
        (just ``namespace/name`` for an unnamed port). Chain hashes and rule
        comments are built from it."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def endpoints_key(self) -> tuple[str, str]:
        """Which EndpointPort serves this port: same name, same protocol."""
        return (self.port_name, self.protocol)


EndpointsByPort = Mapping[tuple[str, str], tuple[Endpoint, ...]]


def _valid_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def service_ports(svc: core.Service) -> tuple[ServicePort, ...]:
    """The proxied ports of ``svc``; none for headless (clusterIP None or
    empty), ExternalName, or a clusterIP this IPv4 proxy cannot program.

    An invalid address must never reach the restore text: one bad line
    fails the whole restore, and with it every other service's rules.
    """
    spec = svc.spec
    name = f"{svc.metadata.namespace}/{svc.metadata.name}"
    if spec.type not in PROXIED_TYPES or not spec.cluster_ip or spec.cluster_ip == "None":
        return ()
    if not _valid_ipv4(spec.cluster_ip):
        log.warning("skipping service with a clusterIP that is not IPv4: %s", spec.cluster_ip,
                    extra={"object": name})
        return ()
    affinity = 0
    if spec.session_affinity == "ClientIP":
        cfg = spec.session_affinity_config.client_ip
        affinity = cfg.timeout_seconds if cfg.HasField("timeout_seconds") and \
            cfg.timeout_seconds > 0 else DEFAULT_AFFINITY_SECONDS
    external_ips = tuple(ip for ip in spec.external_ips if _valid_ipv4(ip))
    local = spec.external_traffic_policy == "Local"
    ports = []
    for p in spec.ports:
        if p.port <= 0:
            continue
        ports.append(ServicePort(
            namespace=svc.metadata.namespace, name=svc.metadata.name, port_name=p.name,
            protocol=(p.protocol or "TCP").upper(), cluster_ip=spec.cluster_ip, port=p.port,
            node_port=p.node_port if spec.type in ("NodePort", "LoadBalancer") else 0,
            external_ips=external_ips, affinity_seconds=affinity, external_local=local))
    return tuple(ports)


def endpoints_by_port(ep: core.Endpoints) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
    """Ready endpoints of an Endpoints object, keyed by (port name, protocol).

    Not-ready addresses are left out; each list is de-duplicated and sorted
    (by address, then port) so the order in the object does not matter.
    """
    found: dict[tuple[str, str], set[Endpoint]] = {}
    for subset in ep.subsets:
        for port in subset.ports:
            if port.port <= 0:
                continue
            key = (port.name, (port.protocol or "TCP").upper())
            bucket = found.setdefault(key, set())
            for addr in subset.addresses:
                if _valid_ipv4(addr.ip):
                    bucket.add(Endpoint(addr.ip, port.port,
                                        addr.node_name if addr.HasField("node_name") else ""))
    return {key: tuple(sorted(eps, key=_endpoint_order)) for key, eps in found.items()}


def _endpoint_order(ep: Endpoint) -> tuple[int, int]:
    return (int(ipaddress.IPv4Address(ep.ip)), ep.port)


def trigger_time(ep: core.Endpoints) -> datetime.datetime | None:
    """The endpoints change's own time, from the annotation the endpoints
    controller may set (RFC 3339); None when absent or unreadable."""
    text = ep.metadata.annotations.get(TRIGGER_TIME_ANNOTATION, "")
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when


__all__ = [
    "DEFAULT_AFFINITY_SECONDS", "Endpoint", "EndpointsByPort", "ServicePort",
    "TRIGGER_TIME_ANNOTATION", "endpoints_by_port", "service_ports", "trigger_time",
]
