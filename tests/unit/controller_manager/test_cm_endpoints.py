"""desired_endpoints: which pods become addresses, which ports they serve,
and how they are grouped into subsets, as Kubernetes' endpoints controller."""

from __future__ import annotations

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.endpoints import (
    HEADLESS_LABEL, desired_endpoints, endpoints_equal, find_port, repack_subsets,
)


def service(name="web", namespace="ns", selector=None, ports=(("http", 80, 8080),),
            cluster_ip="10.96.0.10"):
    svc = core.Service()
    svc.metadata.name, svc.metadata.namespace = name, namespace
    svc.metadata.labels["team"] = "a"
    svc.spec.cluster_ip = cluster_ip
    svc.spec.selector.update({"app": "web"} if selector is None else selector)
    for pname, port, target in ports:
        p = svc.spec.ports.add(name=pname, port=port, protocol="TCP")
        if isinstance(target, str):
            p.target_port.str_value = target
        else:
            p.target_port.int_value = target
    return svc


def pod(name, ip="10.244.1.2", ready=True, labels=None, namespace="ns", node="n1",
        ports=(), terminating=False, phase="Running"):
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, namespace, f"uid-{name}"
    p.metadata.labels.update({"app": "web"} if labels is None else labels)
    ctr = p.spec.containers.add(name="main", image="img")
    for pname, number in ports:
        ctr.ports.add(name=pname, container_port=number, protocol="TCP")
    p.spec.node_name = node
    p.status.phase = phase
    p.status.pod_ip = ip
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if terminating:
        p.metadata.deletion_timestamp.FromSeconds(1000)
    return p


def ips(addresses):
    return [a.ip for a in addresses]


def test_endpoints_ready_and_not_ready_pods_split():
    ep = desired_endpoints(service(), [pod("a", "10.244.1.3"), pod("b", "10.244.1.2", ready=False)])
    assert len(ep.subsets) == 1
    subset = ep.subsets[0]
    assert ips(subset.addresses) == ["10.244.1.3"]
    assert ips(subset.not_ready_addresses) == ["10.244.1.2"]
    assert [(p.name, p.port, p.protocol) for p in subset.ports] == [("http", 8080, "TCP")]


def test_endpoints_address_has_target_ref_and_node_name():
    ep = desired_endpoints(service(), [pod("a", node="n7")])
    addr = ep.subsets[0].addresses[0]
    assert addr.node_name == "n7"
    assert (addr.target_ref.kind, addr.target_ref.namespace, addr.target_ref.name,
            addr.target_ref.uid) == ("Pod", "ns", "a", "uid-a")


def test_endpoints_leave_out_terminating_finished_ipless_and_unmatched_pods():
    pods = [pod("ok", "10.244.0.9"),
            pod("term", "10.244.0.2", terminating=True),
            pod("done", "10.244.0.3", phase="Succeeded"),
            pod("failed", "10.244.0.4", phase="Failed"),
            pod("noip", ""),
            pod("other", "10.244.0.5", labels={"app": "db"}),
            pod("elsewhere", "10.244.0.6", namespace="other")]
    ep = desired_endpoints(service(), pods)
    assert [ips(s.addresses) for s in ep.subsets] == [["10.244.0.9"]]


def test_endpoints_named_target_port_resolved_per_pod_and_grouped():
    svc = service(ports=(("http", 80, "web"),))
    pods = [pod("a", "10.244.1.1", ports=[("web", 8080)]),
            pod("b", "10.244.1.2", ports=[("web", 9090)]),
            pod("c", "10.244.1.3", ports=[("web", 8080)]),
            pod("d", "10.244.1.4", ports=[("other", 8080)])]  # no such port: left out
    ep = desired_endpoints(svc, pods)
    groups = {tuple(p.port for p in s.ports): ips(s.addresses) for s in ep.subsets}
    assert groups == {(8080,): ["10.244.1.1", "10.244.1.3"], (9090,): ["10.244.1.2"]}


def test_endpoints_multiple_ports_pod_serving_only_one_lands_in_its_own_subset():
    svc = service(ports=(("http", 80, "web"), ("metrics", 9100, 9100)))
    pods = [pod("a", "10.244.1.1", ports=[("web", 8080)]),
            pod("b", "10.244.1.2", ports=[])]  # only the numeric port
    ep = desired_endpoints(svc, pods)
    groups = {tuple((p.name, p.port) for p in s.ports): ips(s.addresses) for s in ep.subsets}
    assert groups == {(("http", 8080), ("metrics", 9100)): ["10.244.1.1"],
                      (("metrics", 9100),): ["10.244.1.2"]}


def test_endpoints_addresses_sorted_numerically():
    pods = [pod(f"p{i}", ip) for i, ip in enumerate(["10.244.1.10", "10.244.1.9", "10.244.0.200"])]
    ep = desired_endpoints(service(), pods)
    assert ips(ep.subsets[0].addresses) == ["10.244.0.200", "10.244.1.9", "10.244.1.10"]


def test_endpoints_same_result_whatever_the_pod_order():
    pods = [pod("a", "10.244.1.1"), pod("b", "10.244.1.2", ready=False), pod("c", "10.244.1.3")]
    assert desired_endpoints(service(), pods) == desired_endpoints(service(), pods[::-1])


def test_endpoints_no_matching_pods_gives_empty_subsets_and_service_labels():
    ep = desired_endpoints(service(), [])
    assert (ep.metadata.name, ep.metadata.namespace) == ("web", "ns")
    assert list(ep.subsets) == []
    assert dict(ep.metadata.labels) == {"team": "a"}


def test_endpoints_headless_without_ports_lists_addresses_without_ports():
    svc = service(ports=(), cluster_ip="None")
    ep = desired_endpoints(svc, [pod("a", "10.244.1.1")])
    assert ips(ep.subsets[0].addresses) == ["10.244.1.1"]
    assert list(ep.subsets[0].ports) == []
    assert ep.metadata.labels[HEADLESS_LABEL] == ""


def test_endpoints_hostname_set_when_subdomain_is_the_service():
    p = pod("a")
    p.spec.hostname, p.spec.subdomain = "host-a", "web"
    ep = desired_endpoints(service(), [p])
    assert ep.subsets[0].addresses[0].hostname == "host-a"


def test_endpoints_selectorless_service_selects_nothing():
    ep = desired_endpoints(service(selector={}), [pod("a")])
    assert list(ep.subsets) == []


def test_find_port_named_needs_matching_protocol():
    p = pod("a", ports=[("dns", 53)])
    p.spec.containers[0].ports[0].protocol = "UDP"
    svc_port = core.ServicePort(name="dns", port=53, protocol="TCP")
    svc_port.target_port.str_value = "dns"
    assert find_port(p, svc_port) is None
    svc_port.protocol = "UDP"
    assert find_port(p, svc_port) == 53


def test_find_port_unset_target_is_the_service_port():
    assert find_port(pod("a"), core.ServicePort(name="x", port=81, protocol="TCP")) == 81


def test_repack_subsets_merges_ports_of_the_same_address():
    addr = core.EndpointAddress(ip="10.0.0.1")
    entries = [(addr, True, (core.EndpointPort(name="a", port=1, protocol="TCP"),)),
               (addr, True, (core.EndpointPort(name="b", port=2, protocol="TCP"),))]
    subsets = repack_subsets(entries)
    assert len(subsets) == 1 and [p.name for p in subsets[0].ports] == ["a", "b"]


def test_endpoints_equal_ignores_metadata_other_than_labels():
    desired = desired_endpoints(service(), [pod("a")])
    current = core.Endpoints()
    current.CopyFrom(desired)
    current.metadata.resource_version = "42"
    current.metadata.uid = "u"
    assert endpoints_equal(current, desired)
    current.metadata.labels["extra"] = "x"
    assert not endpoints_equal(current, desired)
