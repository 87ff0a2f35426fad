"""Converting Services and Endpoints into what the rules need."""

from __future__ import annotations

import datetime

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kube_proxy.model import (
    DEFAULT_AFFINITY_SECONDS, TRIGGER_TIME_ANNOTATION, Endpoint, endpoints_by_port,
    service_ports, trigger_time,
)
from services.kube_proxy.rules import endpoints_for
from tests.support import objects


def test_kube_proxy_model_service_ports_of_a_clusterip_service():
    svc = objects.service("web", "ns1", port=80)
    svc.spec.cluster_ip = "10.96.0.10"
    (sp,) = service_ports(svc)
    assert (sp.key, sp.protocol, sp.cluster_ip, sp.port, sp.node_port, sp.affinity_seconds) == \
        ("ns1/web:http", "TCP", "10.96.0.10", 80, 0, 0)


def test_kube_proxy_model_unnamed_port_key_has_no_colon():
    svc = objects.service("web", "ns1")
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.ports[0].name = ""
    assert service_ports(svc)[0].key == "ns1/web"


def test_kube_proxy_model_headless_external_name_and_bad_ips_are_not_proxied():
    headless = objects.service("h")
    headless.spec.cluster_ip = "None"
    unallocated = objects.service("u")
    external = objects.service("e", type_="ExternalName")
    external.spec.cluster_ip = "10.96.0.3"
    v6 = objects.service("v6")
    v6.spec.cluster_ip = "fd00::1"
    garbage = objects.service("g")
    garbage.spec.cluster_ip = "10.96.0.1 -j ACCEPT"
    for svc in (headless, unallocated, external, v6, garbage):
        assert service_ports(svc) == (), svc.metadata.name


def test_kube_proxy_model_nodeport_and_affinity():
    svc = objects.service("np", type_="NodePort")
    svc.spec.cluster_ip = "10.96.0.4"
    svc.spec.ports[0].node_port = 30080
    svc.spec.session_affinity = "ClientIP"
    (sp,) = service_ports(svc)
    assert sp.node_port == 30080 and sp.affinity_seconds == DEFAULT_AFFINITY_SECONDS
    svc.spec.session_affinity_config.client_ip.timeout_seconds = 60
    svc.spec.type = "ClusterIP"  # a stale nodePort on a ClusterIP service is not opened
    (sp,) = service_ports(svc)
    assert sp.affinity_seconds == 60 and sp.node_port == 0


def test_kube_proxy_model_endpoints_matched_by_port_name_ready_only_sorted():
    ep = core.Endpoints()
    ep.metadata.name, ep.metadata.namespace = "web", "ns1"
    a = ep.subsets.add()
    a.addresses.add(ip="10.244.2.5", node_name="n2")
    a.addresses.add(ip="10.244.1.9")
    a.not_ready_addresses.add(ip="10.244.3.3")
    a.ports.add(name="http", port=8080, protocol="TCP")
    a.ports.add(name="metrics", port=9100)
    b = ep.subsets.add()
    b.addresses.add(ip="10.244.1.10")
    b.addresses.add(ip="not-an-ip")
    b.ports.add(name="http", port=9090, protocol="TCP")
    got = endpoints_by_port(ep)
    assert got[("http", "TCP")] == (Endpoint("10.244.1.9", 8080), Endpoint("10.244.1.10", 9090),
                                    Endpoint("10.244.2.5", 8080, "n2"))
    assert got[("metrics", "TCP")] == (Endpoint("10.244.1.9", 9100),
                                       Endpoint("10.244.2.5", 9100, "n2"))
    svc = objects.service("web", "ns1")
    svc.spec.cluster_ip = "10.96.0.10"
    (sp,) = service_ports(svc)
    assert endpoints_for(sp, got) == got[("http", "TCP")]
    assert endpoints_for(sp, None) == ()


def test_kube_proxy_model_trigger_time_from_annotation():
    ep = objects.endpoints("web")
    assert trigger_time(ep) is None
    ep.metadata.annotations[TRIGGER_TIME_ANNOTATION] = "2024-05-01T10:00:00.123456789Z"
    assert trigger_time(ep) == datetime.datetime(2024, 5, 1, 10, 0, 0, 123456,
                                                 tzinfo=datetime.timezone.utc)
    ep.metadata.annotations[TRIGGER_TIME_ANNOTATION] = "yesterday"
    assert trigger_time(ep) is None
