"""Rules for the core kinds other than Pod: Namespace, Node, Service,
Endpoints, Event, and coordination's Lease."""

from __future__ import annotations

from typing import Any

from services.apiserver.validation_common import (
    Errors,
    check,
    conditions,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    duplicate,
    forbidden,
    immutable,
    invalid,
    is_cidr,
    is_ip,
    is_ipv4,
    label_value_errors,
    labels,
    non_negative,
    one_of,
    port_name_errors,
    port_number_errors,
    qualified_name_errors,
    quantity_value,
    required,
    unsupported,
)
from services.apiserver.validation_pod import PROTOCOLS, TAINT_EFFECTS

SERVICE_TYPES = ("ClusterIP", "NodePort")
SESSION_AFFINITIES = ("None", "ClientIP")
TRAFFIC_POLICIES = ("Cluster", "Local")
NAMESPACE_PHASES = ("Active", "Terminating")
NODE_ADDRESS_TYPES = ("Hostname", "InternalIP", "ExternalIP", "InternalDNS", "ExternalDNS")
EVENT_TYPES = ("Normal", "Warning")
MAX_CLIENT_IP_TIMEOUT = 86400
DEFAULT_NODE_PORT_RANGE = (30000, 32767)


# --- Namespace ----------------------------------------------------------------------------


def validate_namespace(ns: Any, old: Any | None) -> Errors:
    errs: Errors = []
    for i, fin in enumerate(ns.spec.finalizers):
        errs += check(f"spec.finalizers[{i}]", fin, qualified_name_errors(fin))
    return errs


def validate_namespace_status(ns: Any, old: Any) -> Errors:
    if not ns.status.phase:
        return []
    return one_of("status.phase", ns.status.phase, NAMESPACE_PHASES)


# --- Node ---------------------------------------------------------------------------------


def validate_node(node: Any, old: Any | None) -> Errors:
    spec = node.spec
    errs: Errors = []
    if spec.pod_cidr and not is_cidr(spec.pod_cidr):
        errs.append(_bad_cidr("spec.podCIDR", spec.pod_cidr))
    for i, cidr in enumerate(spec.pod_cidrs):
        if not is_cidr(cidr):
            errs.append(_bad_cidr(f"spec.podCIDRs[{i}]", cidr))
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidrs[0] != spec.pod_cidr:
        errs.append(invalid("spec.podCIDRs[0]", spec.pod_cidrs[0], "must match spec.podCIDR"))
    errs += taints(spec.taints, "spec.taints")
    if old is not None:
        errs += _node_update(spec, old.spec)
    return errs


def _bad_cidr(path: str, value: str) -> Any:
    return invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")


def _node_update(new: Any, old: Any) -> Errors:
    """podCIDR(s) and providerID may be set once, never changed."""
    errs: Errors = []
    if old.pod_cidr and new.pod_cidr != old.pod_cidr:
        errs.append(forbidden("spec.podCIDR",
                              'node updates may not change podCIDR except from "" to valid'))
    if old.pod_cidrs and list(new.pod_cidrs) != list(old.pod_cidrs):
        errs.append(forbidden("spec.podCIDRs",
                              'node updates may not change podCIDR except from "" to valid'))
    if old.provider_id and new.provider_id != old.provider_id:
        errs.append(forbidden("spec.providerID",
                              'node updates may not change providerID except from "" to valid'))
    return errs


def taints(items: Any, path: str) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(items):
        p = f"{path}[{i}]"
        if not taint.key:
            errs.append(required(f"{p}.key"))
        else:
            errs += check(f"{p}.key", taint.key, qualified_name_errors(taint.key))
        errs += check(f"{p}.value", taint.value, label_value_errors(taint.value))
        errs += one_of(f"{p}.effect", taint.effect, TAINT_EFFECTS)
        pair = (taint.key, taint.effect)
        if pair in seen:
            errs.append(duplicate(p, f"{taint.key}:{taint.effect}"))
        seen.add(pair)
    return errs


def validate_node_status(node: Any, old: Any) -> Errors:
    status = node.status
    errs = conditions(status.conditions, "status.conditions")
    for i, addr in enumerate(status.addresses):
        p = f"status.addresses[{i}]"
        errs += one_of(f"{p}.type", addr.type, NODE_ADDRESS_TYPES)
        if not addr.address:
            errs.append(required(f"{p}.address"))
    for json_name in ("capacity", "allocatable"):
        values = getattr(status, json_name)
        for name in sorted(values):
            errs += quantity_value(f"status.{json_name}[{name}]", values[name])[0]
    port = status.daemon_endpoints.kubelet_endpoint.port
    if port:
        errs += check("status.daemonEndpoints.kubeletEndpoint.Port", port,
                      port_number_errors(port))
    return errs


# --- Service ------------------------------------------------------------------------------


def validate_service(svc: Any, old: Any | None,
                     node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE) -> Errors:
    spec = svc.spec
    errs: Errors = []
    if spec.type not in SERVICE_TYPES:
        errs.append(unsupported("spec.type", spec.type, SERVICE_TYPES))
    headless = spec.cluster_ip == "None"
    if not spec.ports and not headless:
        errs.append(required("spec.ports"))
    errs += _service_ports(spec, node_port_range)
    errs += _cluster_ips(spec)
    errs += _session_affinity(spec)
    errs += labels(spec.selector, "spec.selector")
    for i, ip in enumerate(spec.external_ips):
        if not is_ip(ip):
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, "must be a valid IP address, "
                                                             "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if spec.external_traffic_policy:
        errs += one_of("spec.externalTrafficPolicy", spec.external_traffic_policy,
                       TRAFFIC_POLICIES)
    if old is not None and old.spec.cluster_ip and spec.cluster_ip != old.spec.cluster_ip:
        errs.append(immutable("spec.clusterIP", spec.cluster_ip))
    return errs


def _service_ports(spec: Any, node_port_range: tuple[int, int]) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    lo, hi = node_port_range
    for i, port in enumerate(spec.ports):
        p = f"spec.ports[{i}]"
        if not port.name:
            if len(spec.ports) > 1:
                errs.append(required(f"{p}.name"))
        else:
            errs += check(f"{p}.name", port.name, dns1123_label_errors(port.name))
            if port.name in names:
                errs.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
        errs += check(f"{p}.port", port.port, port_number_errors(port.port))
        errs += one_of(f"{p}.protocol", port.protocol, PROTOCOLS)
        errs += _target_port(port.target_port, f"{p}.targetPort")
        if (port.port, port.protocol) in pairs:
            errs.append(duplicate(p, f"{port.port}/{port.protocol}"))
        pairs.add((port.port, port.protocol))
        if not port.node_port:
            continue
        if spec.type != "NodePort":
            errs.append(forbidden(f"{p}.nodePort",
                                  f"may not be used when `type` is '{spec.type or 'ClusterIP'}'"))
        elif not lo <= port.node_port <= hi:
            errs.append(invalid(f"{p}.nodePort", port.node_port,
                                "provided port is not in the valid range. The range of valid "
                                f"ports is {lo}-{hi}"))
        elif (port.node_port, port.protocol) in node_ports:
            errs.append(duplicate(f"{p}.nodePort", port.node_port))
        node_ports.add((port.node_port, port.protocol))
    return errs


def _target_port(ios: Any, path: str) -> Errors:
    which = ios.WhichOneof("value")
    if which is None:
        return [required(path)]
    if which == "int_value":
        return check(path, ios.int_value, port_number_errors(ios.int_value))
    return check(path, ios.str_value, port_name_errors(ios.str_value))


def _cluster_ips(spec: Any) -> Errors:
    errs: Errors = []
    ip = spec.cluster_ip
    if ip not in ("", "None") and not is_ipv4(ip):
        errs.append(invalid("spec.clusterIP", ip,
                            "must be empty, 'None', or a valid IPv4 address"))
    if ip == "None" and spec.type == "NodePort":
        errs.append(invalid("spec.clusterIP", ip, "may not be set to 'None' for NodePort services"))
    for i, value in enumerate(spec.cluster_ips):
        if value != "None" and not is_ipv4(value):
            errs.append(invalid(f"spec.clusterIPs[{i}]", value,
                                "must be 'None' or a valid IPv4 address"))
    if ip and spec.cluster_ips and spec.cluster_ips[0] != ip:
        errs.append(invalid("spec.clusterIPs[0]", spec.cluster_ips[0],
                            "must be the same as spec.clusterIP"))
    return errs


def _session_affinity(spec: Any) -> Errors:
    errs = one_of("spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    client_ip = spec.session_affinity_config.client_ip
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    if spec.session_affinity == "ClientIP":
        if not client_ip.HasField("timeout_seconds"):
            errs.append(required(path, "when session affinity type is ClientIP"))
        elif not 0 < client_ip.timeout_seconds <= MAX_CLIENT_IP_TIMEOUT:
            errs.append(invalid(path, client_ip.timeout_seconds,
                                f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"))
    elif spec.session_affinity_config.HasField("client_ip"):
        errs.append(invalid("spec.sessionAffinityConfig", "ClientIP",
                            "must not be set when session affinity is None"))
    return errs


def validate_service_status(svc: Any, old: Any) -> Errors:
    errs: Errors = []
    for i, ingress in enumerate(svc.status.load_balancer.ingress):
        p = f"status.loadBalancer.ingress[{i}]"
        if ingress.ip and not is_ip(ingress.ip):
            errs.append(invalid(f"{p}.ip", ingress.ip, "must be a valid IP address"))
        if ingress.hostname:
            errs += check(f"{p}.hostname", ingress.hostname,
                          dns1123_subdomain_errors(ingress.hostname))
    return errs


# --- Endpoints ----------------------------------------------------------------------------


def validate_endpoints(ep: Any, old: Any | None) -> Errors:
    errs: Errors = []
    for i, subset in enumerate(ep.subsets):
        p = f"subsets[{i}]"
        if not subset.addresses and not subset.not_ready_addresses:
            errs.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        for json_name, items in (("addresses", subset.addresses),
                                 ("notReadyAddresses", subset.not_ready_addresses)):
            for j, addr in enumerate(items):
                errs += _endpoint_address(addr, f"{p}.{json_name}[{j}]")
        errs += _endpoint_ports(subset.ports, f"{p}.ports")
    return errs


def _endpoint_address(addr: Any, path: str) -> Errors:
    errs: Errors = []
    if not addr.ip:
        errs.append(required(f"{path}.ip"))
    elif not is_ipv4(addr.ip):
        errs.append(invalid(f"{path}.ip", addr.ip, "must be a valid IPv4 address"))
    if addr.hostname:
        errs += check(f"{path}.hostname", addr.hostname, dns1123_label_errors(addr.hostname))
    if addr.HasField("node_name") and addr.node_name:
        errs += check(f"{path}.nodeName", addr.node_name, dns1123_subdomain_errors(addr.node_name))
    return errs


def _endpoint_ports(ports: Any, path: str) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if not port.name:
            if len(ports) > 1:
                errs.append(required(f"{p}.name"))
        else:
            errs += check(f"{p}.name", port.name, dns1123_label_errors(port.name))
            if port.name in names:
                errs.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
        errs += check(f"{p}.port", port.port, port_number_errors(port.port))
        errs += one_of(f"{p}.protocol", port.protocol, PROTOCOLS)
    return errs


# --- Event --------------------------------------------------------------------------------


def validate_event(ev: Any, old: Any | None) -> Errors:
    errs: Errors = []
    obj = ev.involved_object
    if not obj.kind:
        errs.append(required("involvedObject.kind"))
    if not obj.name:
        errs.append(required("involvedObject.name"))
    if obj.namespace and obj.namespace != ev.metadata.namespace:
        errs.append(invalid("involvedObject.namespace", obj.namespace,
                            "does not match event.namespace"))
    if ev.type:
        errs += one_of("type", ev.type, EVENT_TYPES)
    errs += non_negative("count", ev.count)
    return errs


# --- Lease --------------------------------------------------------------------------------


def validate_lease(lease: Any, old: Any | None) -> Errors:
    spec = lease.spec
    path = "spec.leaseDurationSeconds"
    errs = non_negative(path, spec.lease_duration_seconds)
    if spec.holder_identity and spec.lease_duration_seconds == 0:
        errs.append(invalid(path, 0, "must be greater than 0"))
    errs += non_negative("spec.leaseTransitions", spec.lease_transitions)
    return errs
