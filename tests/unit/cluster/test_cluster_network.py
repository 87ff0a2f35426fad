"""Route and partition planning (pure)."""

from __future__ import annotations

from types import SimpleNamespace as NS

from services.cluster.network import (
    PARTITION_CHAIN, heal_script, is_partitioned, owned, parse_routes, partition_script,
    route_changes,
)
from services.cluster.routes import cluster_routes, desired_routes
from services.cluster.topology import Route

IP_ROUTE = """\
default via 10.0.0.1 dev eth0
10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5
10.244.1.0/24 via 172.30.0.40 dev br-1234 
10.244.2.0/24 via 172.30.0.41 dev br-1234
10.96.0.0/12 via 172.30.0.40 dev br-1234
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
192.168.9.9 via 10.0.0.1 dev eth0
"""


def test_network_parse_routes_keeps_those_with_a_gateway():
    assert parse_routes(IP_ROUTE) == [
        Route("0.0.0.0/0", "10.0.0.1"), Route("10.244.1.0/24", "172.30.0.40"),
        Route("10.244.2.0/24", "172.30.0.41"), Route("10.96.0.0/12", "172.30.0.40"),
        Route("192.168.9.9/32", "10.0.0.1")]


def test_network_owned_routes_go_through_the_cluster_subnet():
    assert [r.destination for r in owned(parse_routes(IP_ROUTE), "172.30.0.0/24")] == [
        "10.244.1.0/24", "10.244.2.0/24", "10.96.0.0/12"]


def test_network_route_changes_replace_missing_and_delete_stale():
    current = [Route("10.244.1.0/24", "172.30.0.40"), Route("10.244.2.0/24", "172.30.0.41"),
               Route("10.244.3.0/24", "172.30.0.42")]
    desired = [Route("10.244.1.0/24", "172.30.0.40"), Route("10.244.2.0/24", "172.30.0.50"),
               Route("10.244.4.0/24", "172.30.0.43")]
    assert route_changes(current, desired) == [
        ["route", "replace", "10.244.2.0/24", "via", "172.30.0.50"],
        ["route", "replace", "10.244.4.0/24", "via", "172.30.0.43"],
        ["route", "del", "10.244.3.0/24", "via", "172.30.0.42"]]


def test_network_route_changes_are_empty_when_in_step():
    routes = [Route("10.244.1.0/24", "172.30.0.40")]
    assert route_changes(routes, list(routes)) == []


def test_network_partition_script_drops_both_directions_in_its_own_chain():
    script = partition_script(["172.30.0.20", "172.30.0.21"])
    for ip in ("172.30.0.20", "172.30.0.21"):
        assert f"-A {PARTITION_CHAIN} -d {ip} -j DROP" in script
        assert f"-A {PARTITION_CHAIN} -s {ip} -j DROP" in script
    assert f"-C OUTPUT -j {PARTITION_CHAIN} 2>/dev/null || iptables -w -I OUTPUT 1" in script
    assert "FORWARD" not in script  # the pods' own traffic is left alone


def test_network_partition_script_refuses_anything_but_addresses():
    import pytest
    with pytest.raises(ValueError):
        partition_script(["172.30.0.20; rm -rf /"])


def test_network_heal_script_removes_the_chain():
    script = heal_script()
    assert f"-D OUTPUT -j {PARTITION_CHAIN}" in script and f"-X {PARTITION_CHAIN}" in script


def test_network_is_partitioned_reads_iptables_rules():
    assert is_partitioned(f"-P INPUT ACCEPT\n-N {PARTITION_CHAIN}\n-A OUTPUT -j {PARTITION_CHAIN}\n")
    assert not is_partitioned(f"-P INPUT ACCEPT\n-N {PARTITION_CHAIN}\n")


def _node(name, cidr, ip):
    addresses = [NS(type="InternalIP", address=ip)] if ip else []
    return NS(metadata=NS(name=name), spec=NS(pod_cidr=cidr), status=NS(addresses=addresses))


def test_routes_desired_routes_skip_self_and_incomplete_nodes():
    nodes = [_node("a", "10.244.1.0/24", "172.30.0.40"), _node("b", "10.244.2.0/24", "172.30.0.41"),
             _node("c", "", "172.30.0.42"), _node("d", "10.244.4.0/24", ""),
             _node("e", "10.99.0.0/24", "172.30.0.44"), _node("f", "bogus", "172.30.0.45")]
    assert desired_routes(nodes, "a", "10.244.0.0/16") == [Route("10.244.2.0/24", "172.30.0.41")]


def test_routes_cluster_routes_are_only_those_into_the_cluster_cidr():
    assert cluster_routes(parse_routes(IP_ROUTE), "10.244.0.0/16") == [
        Route("10.244.1.0/24", "172.30.0.40"), Route("10.244.2.0/24", "172.30.0.41")]
