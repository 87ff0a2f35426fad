"""ClusterIP and NodePort allocation: unique under concurrency, released on
delete, requested values honoured or refused clearly."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from services.machinery import errors
from tests.support import objects


async def test_fifty_concurrent_creates_get_distinct_ips_and_ports(client, namespace):
    res = client.resource("services")
    created = await asyncio.gather(*(
        res.create(objects.service(f"svc{i}", namespace, type_="NodePort")) for i in range(50)))
    ips = [s.spec.cluster_ip for s in created]
    ports = [s.spec.ports[0].node_port for s in created]
    assert len(set(ips)) == 50 and len(set(ports)) == 50
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12") for ip in ips)
    assert all(30000 <= p <= 32767 for p in ports)
    assert all(list(s.spec.cluster_ips) == [s.spec.cluster_ip] for s in created)


async def test_requested_ip_and_port_taken_give_clear_errors(client, namespace):
    res = client.resource("services")
    first = objects.service("first", namespace, type_="NodePort")
    first.spec.cluster_ip = "10.96.200.7"
    first.spec.ports[0].node_port = 31777
    first = await res.create(first)
    assert first.spec.cluster_ip == "10.96.200.7" and first.spec.ports[0].node_port == 31777
    dup_ip = objects.service("dupip", namespace)
    dup_ip.spec.cluster_ip = "10.96.200.7"
    with pytest.raises(errors.Invalid, match="already allocated"):
        await res.create(dup_ip)
    dup_port = objects.service("dupport", namespace, type_="NodePort")
    dup_port.spec.ports[0].node_port = 31777
    with pytest.raises(errors.Invalid, match="already allocated"):
        await res.create(dup_port)
    outside = objects.service("outside", namespace)
    outside.spec.cluster_ip = "192.168.1.1"
    with pytest.raises(errors.Invalid, match="valid range"):
        await res.create(outside)
    # Released on delete: the same values can be taken again.
    await res.delete("first", namespace)
    again = await res.create(dup_ip)
    assert again.spec.cluster_ip == "10.96.200.7"
    again_port = await res.create(dup_port)
    assert again_port.spec.ports[0].node_port == 31777


async def test_type_change_allocates_and_releases_node_ports(client, namespace):
    res = client.resource("services")
    svc = await res.create(objects.service("flip", namespace))
    assert svc.spec.ports[0].node_port == 0
    svc.spec.type = "NodePort"
    svc = await res.update(svc)
    port = svc.spec.ports[0].node_port
    assert 30000 <= port <= 32767
    svc.spec.type = "ClusterIP"
    svc.spec.ports[0].node_port = 0
    svc = await res.update(svc)
    assert svc.spec.ports[0].node_port == 0
    other = objects.service("taker", namespace, type_="NodePort")
    other.spec.ports[0].node_port = port
    assert (await res.create(other)).spec.ports[0].node_port == port


async def test_cluster_ip_is_immutable(client, namespace):
    res = client.resource("services")
    svc = await res.create(objects.service("imm", namespace))
    svc.spec.cluster_ip = "10.96.0.99"
    with pytest.raises(errors.Invalid, match="clusterIP"):
        await res.update(svc)


async def test_headless_service_gets_no_ip(client, namespace):
    svc = objects.service("headless", namespace)
    svc.spec.cluster_ip = "None"
    created = await client.resource("services").create(svc)
    assert created.spec.cluster_ip == "None"
