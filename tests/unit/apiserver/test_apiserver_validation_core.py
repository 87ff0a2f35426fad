"""Validation of Service, Endpoints, Event, Node, Namespace and Lease."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.defaulting import apply_defaults
from services.apiserver.validation import validate, validate_status


def _errors(obj, old=None, **kw):
    return [(e.path, e.message) for e in validate(obj, old, **kw)]


def _expect(errs, *expected):
    assert len(errs) == len(expected), errs
    for (path, fragment), (got_path, message) in zip(expected, errs, strict=True):
        assert got_path == path and fragment in message, errs


def _copy(obj, change=None):
    new = type(obj)()
    new.CopyFrom(obj)
    if change:
        change(new)
    return new


# --- Service ------------------------------------------------------------------------------


def _service(**spec) -> core.Service:
    svc = core.Service(spec=core.ServiceSpec(**spec))
    svc.metadata.name, svc.metadata.namespace = "web", "default"
    if "ports" not in spec:
        svc.spec.ports.add(port=80)
    svc.spec.selector["app"] = "web"
    apply_defaults(svc)
    return svc


def _port(svc, i=0):
    return svc.spec.ports[i]


def _two_ports(s):
    s.spec.ports.add(name="b", port=443, protocol="TCP").target_port.int_value = 443
    _port(s).name = ""


SERVICE_CASES = [
    ("valid", lambda s: None, []),
    ("type unsupported", lambda s: setattr(s.spec, "type", "LoadBalancer"),
     [("spec.type",
       'Unsupported value: "LoadBalancer": supported values: "ClusterIP", "NodePort"')]),
    ("external name unsupported", lambda s: setattr(s.spec, "type", "ExternalName"),
     [("spec.type", 'Unsupported value: "ExternalName"')]),
    ("ports required", lambda s: s.spec.ClearField("ports"), [("spec.ports", "Required value")]),
    ("headless needs no ports", lambda s: (s.spec.ClearField("ports"),
                                           setattr(s.spec, "cluster_ip", "None")), []),
    ("port range", lambda s: setattr(_port(s), "port", 0),
     [("spec.ports[0].port", "must be between 1 and 65535")]),
    ("protocol", lambda s: setattr(_port(s), "protocol", "ICMP"),
     [("spec.ports[0].protocol", 'Unsupported value: "ICMP"')]),
    ("names required with two ports", _two_ports, [("spec.ports[0].name", "Required value")]),
    ("port names unique", lambda s: (setattr(_port(s), "name", "a"),
                                     s.spec.ports.add(name="a", port=81, protocol="TCP",
                                                      target_port={"int_value": 81})),
     [("spec.ports[1].name", 'Duplicate value: "a"')]),
    ("port and protocol unique", lambda s: (setattr(_port(s), "name", "a"),
                                            s.spec.ports.add(name="b", port=80, protocol="TCP",
                                                             target_port={"int_value": 80})),
     [("spec.ports[1]", 'Duplicate value: "80/TCP"')]),
    ("target port number", lambda s: setattr(_port(s).target_port, "int_value", 70000),
     [("spec.ports[0].targetPort", "must be between 1 and 65535")]),
    ("target port name ok", lambda s: setattr(_port(s).target_port, "str_value", "http"), []),
    ("target port name", lambda s: setattr(_port(s).target_port, "str_value", "Http_1"),
     [("spec.ports[0].targetPort", "must contain only alpha-numeric characters")]),
    ("node port on ClusterIP", lambda s: setattr(_port(s), "node_port", 30001),
     [("spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'")]),
    ("node port in range", lambda s: (setattr(s.spec, "type", "NodePort"),
                                      setattr(_port(s), "node_port", 30001)), []),
    ("node port out of range", lambda s: (setattr(s.spec, "type", "NodePort"),
                                          setattr(_port(s), "node_port", 8080)),
     [("spec.ports[0].nodePort", "The range of valid ports is 30000-32767")]),
    ("cluster ip", lambda s: setattr(s.spec, "cluster_ip", "10.0.0.300"),
     [("spec.clusterIP", "must be empty, 'None', or a valid IPv4 address")]),
    ("cluster ip ok", lambda s: setattr(s.spec, "cluster_ip", "10.96.0.10"), []),
    ("headless NodePort", lambda s: (setattr(s.spec, "type", "NodePort"),
                                     setattr(s.spec, "cluster_ip", "None")),
     [("spec.clusterIP", "may not be set to 'None' for NodePort services")]),
    ("session affinity", lambda s: setattr(s.spec, "session_affinity", "Sticky"),
     [("spec.sessionAffinity",
       'Unsupported value: "Sticky": supported values: "ClientIP", "None"')]),
    ("client ip timeout", lambda s: (setattr(s.spec, "session_affinity", "ClientIP"),
                                     setattr(s.spec.session_affinity_config.client_ip,
                                             "timeout_seconds", 86401)),
     [("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
       "must be greater than 0 and less than 86400")]),
    ("affinity config with None", lambda s: setattr(s.spec.session_affinity_config.client_ip,
                                                     "timeout_seconds", 10),
     [("spec.sessionAffinityConfig", "must not be set when session affinity is None")]),
    ("selector labels", lambda s: s.spec.selector.__setitem__("app", "web server"),
     [("spec.selector", "a valid label must be")]),
    ("external ips", lambda s: s.spec.external_ips.append("nope"),
     [("spec.externalIPs[0]", "must be a valid IP address")]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in SERVICE_CASES],
                         ids=[c[0] for c in SERVICE_CASES])
def test_service_rules(mutate, expected):
    svc = _service()
    mutate(svc)
    _expect(_errors(svc), *expected)


def test_service_node_port_range_is_a_parameter():
    svc = _service(type="NodePort")
    _port(svc).node_port = 8080
    assert _errors(svc, node_port_range=(8000, 9000)) == []
    _expect(_errors(svc), ("spec.ports[0].nodePort", "provided port is not in the valid range"))


def test_service_update_cluster_ip_immutable_once_set():
    old = _service(cluster_ip="10.96.0.10")
    assert validate(_copy(old, lambda s: _port(s).__setattr__("port", 81)), old) == []
    moved = _copy(old, lambda s: setattr(s.spec, "cluster_ip", "10.96.0.11"))
    _expect(_errors(moved, old), ("spec.clusterIP", "field is immutable"))
    unset = _service()
    assert validate(_copy(unset, lambda s: setattr(s.spec, "cluster_ip", "10.96.0.12")),
                    unset) == []


def test_service_status_load_balancer_ips():
    old = _service()
    new = _copy(old, lambda s: s.status.load_balancer.ingress.add(ip="bad"))
    _expect([(e.path, e.message) for e in validate_status(new, old)],
            ("status.loadBalancer.ingress[0].ip", "must be a valid IP address"))


# --- Endpoints ----------------------------------------------------------------------------


def _endpoints():
    ep = core.Endpoints()
    ep.metadata.name, ep.metadata.namespace = "web", "default"
    subset = ep.subsets.add()
    subset.addresses.add(ip="10.0.0.5", node_name="n1")
    subset.not_ready_addresses.add(ip="10.0.0.6")
    subset.ports.add(port=8080, protocol="TCP")
    return ep


ENDPOINTS_CASES = [
    ("valid", lambda e: None, []),
    ("address ip", lambda e: setattr(e.subsets[0].addresses[0], "ip", "10.0.0.256"),
     [("subsets[0].addresses[0].ip", "must be a valid IPv4 address")]),
    ("not ready ip", lambda e: setattr(e.subsets[0].not_ready_addresses[0], "ip", ""),
     [("subsets[0].notReadyAddresses[0].ip", "Required value")]),
    ("addresses required", lambda e: (e.subsets[0].ClearField("addresses"),
                                      e.subsets[0].ClearField("not_ready_addresses")),
     [("subsets[0]", "must specify `addresses` or `notReadyAddresses`")]),
    ("port range", lambda e: setattr(e.subsets[0].ports[0], "port", 65536),
     [("subsets[0].ports[0].port", "must be between 1 and 65535")]),
    ("port protocol", lambda e: setattr(e.subsets[0].ports[0], "protocol", "tcp"),
     [("subsets[0].ports[0].protocol", 'Unsupported value: "tcp"')]),
    ("port names with two ports", lambda e: e.subsets[0].ports.add(port=1, protocol="UDP"),
     [("subsets[0].ports[0].name", "Required value"),
      ("subsets[0].ports[1].name", "Required value")]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in ENDPOINTS_CASES],
                         ids=[c[0] for c in ENDPOINTS_CASES])
def test_endpoints_rules(mutate, expected):
    ep = _endpoints()
    mutate(ep)
    _expect(_errors(ep), *expected)


# --- Event --------------------------------------------------------------------------------


def _event():
    ev = core.Event(reason="Scheduled", message="ok", type="Normal", count=1)
    ev.metadata.name, ev.metadata.namespace = "web.17a", "default"
    ev.involved_object.kind, ev.involved_object.name = "Pod", "web"
    ev.involved_object.namespace = "default"
    return ev


EVENT_CASES = [
    ("valid", lambda e: None, []),
    ("involved kind", lambda e: setattr(e.involved_object, "kind", ""),
     [("involvedObject.kind", "Required value")]),
    ("involved name", lambda e: setattr(e.involved_object, "name", ""),
     [("involvedObject.name", "Required value")]),
    ("involved object required", lambda e: e.ClearField("involved_object"),
     [("involvedObject.kind", "Required value"), ("involvedObject.name", "Required value")]),
    ("namespace mismatch", lambda e: setattr(e.involved_object, "namespace", "other"),
     [("involvedObject.namespace", "does not match event.namespace")]),
    ("cluster-scoped object", lambda e: setattr(e.involved_object, "namespace", ""), []),
    ("type", lambda e: setattr(e, "type", "Info"), [("type", 'Unsupported value: "Info"')]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in EVENT_CASES],
                         ids=[c[0] for c in EVENT_CASES])
def test_event_rules(mutate, expected):
    ev = _event()
    mutate(ev)
    _expect(_errors(ev), *expected)


# --- Node ---------------------------------------------------------------------------------


def _node():
    node = core.Node()
    node.metadata.name = "node-1.example"
    node.spec.pod_cidr = "10.244.1.0/24"
    node.spec.taints.add(key="dedicated", value="gpu", effect="NoSchedule")
    return node


NODE_CASES = [
    ("valid", lambda n: None, []),
    ("pod cidr", lambda n: setattr(n.spec, "pod_cidr", "10.244.1.0"),
     [("spec.podCIDR", "must be a valid CIDR value")]),
    ("taint key", lambda n: setattr(n.spec.taints[0], "key", ""),
     [("spec.taints[0].key", "Required value")]),
    ("taint key format", lambda n: setattr(n.spec.taints[0], "key", "a/b/c"),
     [("spec.taints[0].key", "qualified name")]),
    ("taint effect required", lambda n: setattr(n.spec.taints[0], "effect", ""),
     [("spec.taints[0].effect", "Required value")]),
    ("taint effect", lambda n: setattr(n.spec.taints[0], "effect", "Evict"),
     [("spec.taints[0].effect", 'Unsupported value: "Evict"')]),
    ("taint unique key and effect", lambda n: n.spec.taints.add(key="dedicated", value="x",
                                                                 effect="NoSchedule"),
     [("spec.taints[1]", 'Duplicate value: "dedicated:NoSchedule"')]),
    ("same key other effect", lambda n: n.spec.taints.add(key="dedicated", effect="NoExecute"),
     []),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in NODE_CASES],
                         ids=[c[0] for c in NODE_CASES])
def test_node_rules(mutate, expected):
    node = _node()
    mutate(node)
    _expect(_errors(node), *expected)


def test_node_update_pod_cidr_set_once():
    old = _node()
    old.spec.pod_cidr = ""
    set_once = _copy(old, lambda n: setattr(n.spec, "pod_cidr", "10.244.2.0/24"))
    assert validate(set_once, old) == []
    changed = _copy(set_once, lambda n: setattr(n.spec, "pod_cidr", "10.244.3.0/24"))
    _expect(_errors(changed, set_once),
            ("spec.podCIDR", 'node updates may not change podCIDR except from "" to valid'))


def test_node_status_rules():
    old = _node()

    def status(s):
        s.conditions.add(type="Ready", status="Maybe")
        s.addresses.add(type="Public", address="1.2.3.4")
        s.capacity["cpu"] = "four"
        s.allocatable["memory"] = "1Gi"
    new = _copy(old, lambda n: status(n.status))
    _expect([(e.path, e.message) for e in validate_status(new, old)],
            ("status.conditions[0].status", 'Unsupported value: "Maybe"'),
            ("status.addresses[0].type", 'Unsupported value: "Public"'),
            ("status.capacity[cpu]", "must match the regex"))


# --- Namespace, Lease ---------------------------------------------------------------------


def test_namespace_finalizers_are_qualified_names():
    ns = core.Namespace()
    ns.metadata.name = "team-a"
    apply_defaults(ns)
    assert validate(ns) == []
    ns.spec.finalizers.append("not valid!")
    _expect(_errors(ns), ("spec.finalizers[1]", "name part must consist"))


def test_namespace_status_phase():
    old = core.Namespace()
    old.metadata.name = "team-a"
    new = _copy(old, lambda n: setattr(n.status, "phase", "Gone"))
    _expect([(e.path, e.message) for e in validate_status(new, old)],
            ("status.phase", 'Unsupported value: "Gone": supported values: "Active", '
                             '"Terminating"'))


@pytest.mark.parametrize("holder, duration, transitions, expected", [
    ("", 0, 0, []),
    ("me", 15, 3, []),
    ("me", 0, 0, [("spec.leaseDurationSeconds", "must be greater than 0")]),
    ("", -1, 0, [("spec.leaseDurationSeconds", "must be greater than or equal to 0")]),
    ("", 0, -1, [("spec.leaseTransitions", "must be greater than or equal to 0")]),
])
def test_lease_rules(holder, duration, transitions, expected):
    lease = coordination.Lease()
    lease.metadata.name, lease.metadata.namespace = "kube-scheduler", "kube-system"
    lease.spec.holder_identity = holder
    lease.spec.lease_duration_seconds = duration
    lease.spec.lease_transitions = transitions
    _expect(_errors(lease), *expected)
