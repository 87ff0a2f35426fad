"""kube-proxy end to end: Services and Endpoints written through the real API
server, rules applied by the in-process proxier to a node namespace's real
iptables, and real TCP connections from a client namespace (outside the
cluster CIDR) and from pods.

See netlab.py for the topology. Nothing here asserts on speed; waits are
polls with deadlines.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client import REGISTRY

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kube_proxy.iptables import Iptables, IptablesError
from services.kube_proxy.model import ServicePort
from services.kube_proxy.proxier import Proxier, cleanup
from services.kube_proxy.rules import ProxyConfig, svc_chain
from services.machinery import NotFound
from services.machinery.httpserver import HttpServer
from tests.integration.kube_proxy.netlab import NODE_IP
from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.timeout(180)


async def make_service(client, ns: str, name: str, *, type_: str = "ClusterIP",
                       target_port: int | str = 8080, affinity: int = 0) -> core.Service:
    svc = core.Service()
    svc.metadata.name, svc.metadata.namespace = name, ns
    svc.spec.type = type_
    svc.spec.selector["app"] = name
    port = svc.spec.ports.add(name="http", port=80, protocol="TCP")
    if isinstance(target_port, str):
        port.target_port.str_value = target_port
    else:
        port.target_port.int_value = target_port
    if affinity:
        svc.spec.session_affinity = "ClientIP"
        svc.spec.session_affinity_config.client_ip.timeout_seconds = affinity
    return await client.resource("services").create(svc)


async def set_endpoints(client, ns: str, name: str,
                        backends: list[tuple[str, int]]) -> core.Endpoints:
    """Create or replace the Endpoints of ``name``: one subset per port."""
    api = client.resource("endpoints")
    by_port: dict[int, list[str]] = collections.defaultdict(list)
    for ip, port in backends:
        by_port[port].append(ip)
    try:
        ep = await api.get(name, ns)
    except NotFound:
        ep = None
    fresh = core.Endpoints()
    fresh.metadata.name, fresh.metadata.namespace = name, ns
    for port, ips in sorted(by_port.items()):
        subset = fresh.subsets.add()
        for ip in ips:
            subset.addresses.add(ip=ip)
        subset.ports.add(name="http", port=port, protocol="TCP")
    if ep is None:
        return await api.create(fresh)
    del ep.subsets[:]
    ep.subsets.extend(fresh.subsets)
    return await api.update(ep)


async def answers(lab, host: str, port: int, *, ns: str | None = None,
                  timeout: float = 20.0) -> dict:
    """Poll until one request to host:port gets an answer; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = (await lab.requests(host, port, 1, timeout=1.0, ns=ns))[0]
        if "error" not in last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{host}:{port} never answered (last: {last})")


def programming_count() -> float:
    return REGISTRY.get_sample_value("kubeproxy_network_programming_duration_seconds_count") or 0


def shares(results: list[dict]) -> collections.Counter:
    return collections.Counter(r.get("ip", r.get("error")) for r in results)


async def test_kube_proxy_clusterip_spreads_over_every_endpoint(start_proxier, client,
                                                                namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "spread")
    await set_endpoints(client, namespace, "spread", [(ip, 8080) for ip in lab.pod_ips])
    cip = svc.spec.cluster_ip
    await answers(lab, cip, 80)
    results = await lab.requests(cip, 80, 150)
    seen = shares(results)
    assert set(seen) == set(lab.pod_ips), seen
    for ip in lab.pod_ips:  # 1/3 each; 15%..55% is > 3 standard deviations either way
        assert 0.15 <= seen[ip] / len(results) <= 0.55, seen
    # The client is outside the cluster CIDR: masqueraded to the node's
    # address on the pod's link, or the replies would not come back.
    for r in results:
        assert r["peer"] == lab.gateways[lab.pod_ips.index(r["ip"])], r


async def test_kube_proxy_nodeport_reachable_on_node_address(start_proxier, client,
                                                            namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "np", type_="NodePort")
    node_port = svc.spec.ports[0].node_port
    assert node_port
    await set_endpoints(client, namespace, "np", [(lab.pod_ips[1], 8080)])
    got = await answers(lab, NODE_IP, node_port)
    assert got["ip"] == lab.pod_ips[1]
    assert got["peer"] == lab.gateways[1]  # NodePort traffic is masqueraded
    # The ClusterIP works too.
    assert (await answers(lab, svc.spec.cluster_ip, 80))["ip"] == lab.pod_ips[1]


async def test_kube_proxy_service_without_endpoints_refuses_at_once(start_proxier, client,
                                                                   namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "empty", type_="NodePort")
    await set_endpoints(client, namespace, "empty", [])
    node_port = svc.spec.ports[0].node_port

    async def rejected() -> bool:
        text = await lab.iptables_save("filter")
        return text.count(f"{namespace}/empty:http has no endpoints") == 2
    deadline = time.monotonic() + 20
    while not await rejected():
        assert time.monotonic() < deadline, await lab.iptables_save("filter")
        await asyncio.sleep(0.1)
    # Refused (ICMP port unreachable turned into ECONNREFUSED), not a hang
    # into the 10 s connect timeout.
    for host, port in ((svc.spec.cluster_ip, 80), (NODE_IP, node_port)):
        (result,) = await lab.requests(host, port, 1, timeout=10.0)
        assert result["error"] == "refused", (host, port, result)


async def test_kube_proxy_client_ip_affinity_sticks(start_proxier, client, namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "sticky", affinity=600)
    await set_endpoints(client, namespace, "sticky", [(ip, 8080) for ip in lab.pod_ips])
    await answers(lab, svc.spec.cluster_ip, 80)
    results = await lab.requests(svc.spec.cluster_ip, 80, 40)
    assert len(shares(results)) == 1, shares(results)
    assert "error" not in results[0]


async def test_kube_proxy_removed_endpoint_stops_getting_traffic(start_proxier, client,
                                                                namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "shrink")
    await set_endpoints(client, namespace, "shrink", [(ip, 8080) for ip in lab.pod_ips])
    cip = svc.spec.cluster_ip
    await answers(lab, cip, 80)
    assert lab.pod_ips[2] in shares(await lab.requests(cip, 80, 60))
    await set_endpoints(client, namespace, "shrink", [(ip, 8080) for ip in lab.pod_ips[:2]])
    written = time.monotonic()
    while True:
        seen = shares(await lab.requests(cip, 80, 30))
        if set(seen) == set(lab.pod_ips[:2]):
            break
        assert time.monotonic() - written < 10, seen
    # And it stays that way.
    assert set(shares(await lab.requests(cip, 80, 60))) == set(lab.pod_ips[:2])


async def test_kube_proxy_rules_flushed_by_hand_come_back(start_proxier, client, namespace,
                                                         lab):
    proxier = await start_proxier(sync_period=1.5)
    svc = await make_service(client, namespace, "flushed")
    await set_endpoints(client, namespace, "flushed", [(lab.pod_ips[0], 8080)])
    cip = svc.spec.cluster_ip
    await answers(lab, cip, 80)
    syncs = proxier.syncs
    await lab.iptables("-t", "nat", "-F", "KUBE-SERVICES")
    nat = await lab.iptables_save("nat")
    # Gone, unless a resync already ran in between.
    assert f"-A KUBE-SERVICES -d {cip}/32" not in nat or proxier.syncs > syncs
    got = await answers(lab, cip, 80, timeout=20)  # the next full resync restores it
    assert got["ip"] == lab.pod_ips[0]
    assert proxier.syncs > syncs and proxier.last_sync.full


async def test_kube_proxy_named_target_port_resolved_per_endpoint(start_proxier, client,
                                                                 namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "named", target_port="web")
    # The two pods serve the "web" container port on different numbers.
    await set_endpoints(client, namespace, "named",
                        [(lab.pod_ips[0], 8081), (lab.pod_ips[1], 9090)])
    await answers(lab, svc.spec.cluster_ip, 80)
    results = await lab.requests(svc.spec.cluster_ip, 80, 40)
    assert {(r["ip"], r["port"]) for r in results} == {(lab.pod_ips[0], 8081),
                                                      (lab.pod_ips[1], 9090)}


async def test_kube_proxy_hairpin_pod_reaches_itself(start_proxier, client, namespace, lab):
    await start_proxier()
    svc = await make_service(client, namespace, "hairpin")
    await set_endpoints(client, namespace, "hairpin", [(lab.pod_ips[0], 8080)])
    got = await answers(lab, svc.spec.cluster_ip, 80, ns=lab.pods[0])
    assert got["ip"] == lab.pod_ips[0]
    # Without masquerading, the pod would answer itself directly and the
    # connection would never be established.
    assert got["peer"] == lab.gateways[0]
    # Another pod keeps its own source address (inside the cluster CIDR).
    other = await answers(lab, svc.spec.cluster_ip, 80, ns=lab.pods[1])
    assert other["peer"] == lab.pod_ips[1]


async def test_kube_proxy_start_removes_stale_chains_and_cleanup_removes_all(
        start_proxier, client, namespace, lab):
    # Left over by an earlier run: a service chain for a service long gone.
    await lab.iptables("-t", "nat", "-N", "KUBE-SVC-STALESTALESTALE1")
    await lab.iptables("-t", "nat", "-A", "KUBE-SVC-STALESTALESTALE1", "-j", "RETURN")
    proxier = await start_proxier()
    assert "KUBE-SVC-STALESTALESTALE1" not in await lab.iptables_save("nat")
    svc = await make_service(client, namespace, "gone")
    await set_endpoints(client, namespace, "gone", [(lab.pod_ips[0], 8080)])
    await answers(lab, svc.spec.cluster_ip, 80)
    chain = svc_chain(ServicePort(namespace, "gone", "http", "TCP", svc.spec.cluster_ip, 80))
    assert chain in await lab.iptables_save("nat")
    # A deleted service's chains go in the next sync.
    await client.resource("services").delete("gone", namespace)
    deadline = time.monotonic() + 20
    while chain in await lab.iptables_save("nat"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    proxier_syncs = proxier.syncs
    assert proxier_syncs >= 2

    # --cleanup, as a user runs it, while nothing else is programming.
    await start_proxier.stop(proxier)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.kube_proxy.main", "--cleanup", "--netns", lab.node,
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    for table in ("nat", "filter"):
        assert "KUBE-" not in await lab.iptables_save(table)
    # Cleaning up a clean node is fine too.
    assert await cleanup(Iptables(lab.node)) == 0


async def test_kube_proxy_health_and_metrics(start_proxier, client, namespace, lab):
    proxier = await start_proxier()
    http = HttpServer("127.0.0.1", free_port(), health=proxier.healthz)
    await http.start()
    try:
        count_before = programming_count()
        svc = await make_service(client, namespace, "observed")
        await set_endpoints(client, namespace, "observed", [(lab.pod_ips[0], 8080)])
        await answers(lab, svc.spec.cluster_ip, 80)

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{http.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        status, body = await asyncio.to_thread(get, "/healthz")
        assert status == 200 and '"lastUpdated": "20' in body
        _, text = await asyncio.to_thread(get, "/metrics")
        for name in ("kubeproxy_sync_proxy_rules_duration_seconds_count",
                     "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                     'kubeproxy_sync_proxy_rules_iptables_total{table="nat"}',
                     "kubeproxy_network_programming_duration_seconds_bucket",
                     "kubeproxy_iptables_restore_failures_total"):
            assert name in text, name
        assert programming_count() > count_before
    finally:
        await http.stop()


async def test_kube_proxy_iptables_errors_are_one_line_and_counted(lab):
    before = REGISTRY.get_sample_value("kubeproxy_iptables_restore_failures_total") or 0
    with pytest.raises(IptablesError) as info:
        await Iptables(lab.node).restore("*nat\n-A NO-SUCH-CHAIN -j RETURN\nCOMMIT\n")
    message = str(info.value)
    assert "\n" not in message and "iptables-restore failed" in message, message
    assert "line" in message  # iptables says where
    with pytest.raises(IptablesError, match="iptables-restore failed"):
        await Iptables(f"{lab.node}-missing").restore("*nat\nCOMMIT\n")
    assert REGISTRY.get_sample_value("kubeproxy_iptables_restore_failures_total") == before + 2


async def test_kube_proxy_failed_sync_is_retried_as_full(client, lab):
    proxier = Proxier(client, Iptables(f"{lab.node}-missing"), ProxyConfig())
    stats = await proxier.sync(full=False)
    assert not stats.ok and "failed" in stats.error
    assert proxier._previous is None  # the next sync rewrites everything
    proxier.iptables = Iptables(lab.node)
    assert (await proxier.sync(full=True)).ok
    assert (await proxier.healthz())[0]
