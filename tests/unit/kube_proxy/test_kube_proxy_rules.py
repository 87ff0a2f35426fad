"""The rule generator, line for line against what Kubernetes' iptables
proxier writes (chain hashes checked against kube-proxy's own test data)."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from services.kube_proxy.model import Endpoint, ServicePort
from services.kube_proxy.restore import render
from services.kube_proxy.rules import (
    BUILTIN_CHAINS, LARGE_CLUSTER_ENDPOINTS, NAT, ProxyConfig, build_ruleset, ext_chain,
    owns_chain, probability, sep_chain, service_rules, svc_chain, svl_chain,
)

CFG = ProxyConfig(cluster_cidr="10.244.0.0/16")


def sp(ns: str = "ns1", name: str = "svc1", port_name: str = "p80", ip: str = "172.30.0.41",
       port: int = 80, **kw) -> ServicePort:
    return ServicePort(ns, name, port_name, kw.pop("protocol", "TCP"), ip, port, **kw)


def eps(*ips: str, port: int = 8080) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(ip, port) for ip in ips)


def lines(text: str) -> tuple[str, ...]:
    return tuple(textwrap.dedent(text).strip().splitlines())


def test_kube_proxy_rules_chain_names_match_kube_proxy():
    # From kube-proxy's proxier_test.go: ns1/svc1:p80 -> 10.180.0.1:80 and ns2/svc2:p80.
    assert svc_chain(sp()) == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert sep_chain(sp(), Endpoint("10.180.0.1", 80)) == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert ext_chain(sp("ns2", "svc2")) == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    assert svc_chain(sp("ns3", "svc3")) == "KUBE-SVC-X27LE4BHSL4DOUIK"
    # The protocol is part of the hash.
    assert svc_chain(sp(protocol="UDP")) != svc_chain(sp())


def test_kube_proxy_rules_probability_has_ten_decimals():
    assert [probability(n) for n in (4, 3, 2)] == ["0.2500000000", "0.3333333333",
                                                   "0.5000000000"]


def test_kube_proxy_rules_clusterip_one_endpoint_full_text():
    rs = build_ruleset([(sp(), (Endpoint("10.180.0.1", 80),))], CFG)
    assert render(rs).text == textwrap.dedent("""\
        *filter
        :KUBE-SERVICES - [0:0]
        :KUBE-EXTERNAL-SERVICES - [0:0]
        :KUBE-FORWARD - [0:0]
        -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
        -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
        -A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        COMMIT
        *nat
        :KUBE-SERVICES - [0:0]
        :KUBE-NODEPORTS - [0:0]
        :KUBE-POSTROUTING - [0:0]
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
        :KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
        -A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
        -A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
        -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
        -A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
        -A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
        -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
        -A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
        -A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
        COMMIT
        """)


def test_kube_proxy_rules_clusterip_three_endpoints_spread_by_remaining_count():
    rules = service_rules(sp("ns2", "svc2", ip="172.30.0.42"),
                          eps("10.244.1.2", "10.244.2.2", "10.244.3.2"), CFG)
    assert rules.nat_services == lines("""
        -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
        """)
    assert dict(rules.nat_chains) == {
        "KUBE-SVC-GNZBNJ2PO5MGZ6GT": lines("""
            -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
            -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.244.1.2:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-RVWZIYPHINLDVMTW
            -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.244.2.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-55IA4MTUNY54SDWX
            -A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.244.3.2:8080" -j KUBE-SEP-ZVSXQZRZTMYQSSPI
            """),
        "KUBE-SEP-RVWZIYPHINLDVMTW": lines("""
            -A KUBE-SEP-RVWZIYPHINLDVMTW -m comment --comment ns2/svc2:p80 -s 10.244.1.2 -j KUBE-MARK-MASQ
            -A KUBE-SEP-RVWZIYPHINLDVMTW -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080
            """),
        "KUBE-SEP-55IA4MTUNY54SDWX": lines("""
            -A KUBE-SEP-55IA4MTUNY54SDWX -m comment --comment ns2/svc2:p80 -s 10.244.2.2 -j KUBE-MARK-MASQ
            -A KUBE-SEP-55IA4MTUNY54SDWX -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.244.2.2:8080
            """),
        "KUBE-SEP-ZVSXQZRZTMYQSSPI": lines("""
            -A KUBE-SEP-ZVSXQZRZTMYQSSPI -m comment --comment ns2/svc2:p80 -s 10.244.3.2 -j KUBE-MARK-MASQ
            -A KUBE-SEP-ZVSXQZRZTMYQSSPI -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.244.3.2:8080
            """),
    }
    assert not rules.filter_services and not rules.filter_external


def test_kube_proxy_rules_nodeport_goes_through_ext_chain_and_is_masqueraded():
    rules = service_rules(sp("ns3", "svc3", ip="172.30.0.43", node_port=30003),
                          eps("10.244.1.2"), CFG)
    assert rules.nat_nodeports == lines("""
        -A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 30003 -j KUBE-EXT-X27LE4BHSL4DOUIK
        """)
    chains = dict(rules.nat_chains)
    assert list(chains)[0] == "KUBE-EXT-X27LE4BHSL4DOUIK"
    assert chains["KUBE-EXT-X27LE4BHSL4DOUIK"] == lines("""
        -A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
        -A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
        """)
    assert "KUBE-SVC-X27LE4BHSL4DOUIK" in chains


def test_kube_proxy_rules_client_ip_affinity_uses_recent_module():
    rules = service_rules(sp("ns4", "svc4", ip="172.30.0.44", affinity_seconds=600),
                          eps("10.244.1.2", "10.244.2.2"), CFG)
    chains = dict(rules.nat_chains)
    assert chains["KUBE-SVC-4SW47YFZTEDKD3PK"] == lines("""
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.244.1.2:8080" -m recent --name KUBE-SEP-E2ONTMR34T6FJM2G --rcheck --seconds 600 --reap -j KUBE-SEP-E2ONTMR34T6FJM2G
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.244.2.2:8080" -m recent --name KUBE-SEP-X7F454MTA7R7ZIP3 --rcheck --seconds 600 --reap -j KUBE-SEP-X7F454MTA7R7ZIP3
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.244.1.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-E2ONTMR34T6FJM2G
        -A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.244.2.2:8080" -j KUBE-SEP-X7F454MTA7R7ZIP3
        """)
    assert chains["KUBE-SEP-E2ONTMR34T6FJM2G"] == lines("""
        -A KUBE-SEP-E2ONTMR34T6FJM2G -m comment --comment ns4/svc4:p80 -s 10.244.1.2 -j KUBE-MARK-MASQ
        -A KUBE-SEP-E2ONTMR34T6FJM2G -m comment --comment ns4/svc4:p80 -m recent --name KUBE-SEP-E2ONTMR34T6FJM2G --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080
        """)


def test_kube_proxy_rules_no_endpoints_rejects_in_filter_and_writes_no_nat():
    rules = service_rules(sp("ns5", "svc5", ip="172.30.0.45", node_port=30005,
                             external_ips=("192.0.2.9",)), (), CFG)
    assert rules.nat_chains == () and rules.nat_services == () and rules.nat_nodeports == ()
    assert rules.filter_services == lines("""
        -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j REJECT
        """)
    assert rules.filter_external == lines("""
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns5/svc5:p80 has no endpoints" -m tcp -p tcp -d 192.0.2.9 --dport 80 -j REJECT
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns5/svc5:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30005 -j REJECT
        """)


def test_kube_proxy_rules_named_port_dnats_each_endpoint_to_its_own_port():
    # targetPort "web" is 8081 on one pod and 9090 on another: the
    # Endpoints carry the resolved numbers, and each SEP uses its own.
    service = sp("ns6", "svc6", port_name="http", ip="172.30.0.46")
    rules = service_rules(service, (Endpoint("10.244.1.2", 8081), Endpoint("10.244.2.2", 9090)),
                          CFG)
    dnat = [r for _, chain in rules.nat_chains for r in chain if "DNAT" in r]
    assert [r.split()[-1] for r in dnat] == ["10.244.1.2:8081", "10.244.2.2:9090"]
    assert sep_chain(service, Endpoint("10.244.1.2", 8081)) != \
        sep_chain(service, Endpoint("10.244.1.2", 9090))


def test_kube_proxy_rules_hairpin_traffic_is_marked_for_masquerade():
    rules = service_rules(sp(), eps("10.244.1.2"), CFG)
    sep = dict(rules.nat_chains)[sep_chain(sp(), Endpoint("10.244.1.2", 8080))]
    assert sep[0].endswith("-s 10.244.1.2 -j KUBE-MARK-MASQ")


def test_kube_proxy_rules_masquerade_all_and_no_cluster_cidr():
    everything = service_rules(sp(), eps("10.244.1.2"), ProxyConfig(masquerade_all=True))
    svc = dict(everything.nat_chains)[svc_chain(sp())]
    assert svc[0].endswith("--dport 80 -j KUBE-MARK-MASQ") and "! -s" not in svc[0]
    nothing = service_rules(sp(), eps("10.244.1.2"), ProxyConfig(cluster_cidr=""))
    assert "KUBE-MARK-MASQ" not in dict(nothing.nat_chains)[svc_chain(sp())][0]


def test_kube_proxy_rules_local_policy_keeps_source_and_drops_without_local_endpoints():
    service = sp("ns7", "svc7", node_port=30007, external_local=True)
    here = ProxyConfig(cluster_cidr="10.244.0.0/16", node_name="node-a")
    local = (Endpoint("10.244.1.2", 8080, "node-a"), Endpoint("10.244.2.2", 8080, "node-b"))
    rules = service_rules(service, local, here)
    ext = dict(rules.nat_chains)[ext_chain(service)]
    svl = svl_chain(service)
    assert ext[-1] == f"-A {ext_chain(service)} -j {svl}"
    assert not any("masquerade traffic" in r for r in ext)
    assert [r.split()[-1] for r in dict(rules.nat_chains)[svl]] == \
        [sep_chain(service, local[0])]
    remote_only = service_rules(service, local[1:], here)
    assert remote_only.filter_external == lines("""
        -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns7/svc7:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30007 -j DROP
        """)
    assert remote_only.nat_services  # the ClusterIP still reaches the remote endpoint


def test_kube_proxy_rules_large_cluster_drops_endpoint_comments():
    rules = service_rules(sp(), eps("10.244.1.2", "10.244.2.2"), CFG, large_cluster=True)
    chains = dict(rules.nat_chains)
    assert chains[svc_chain(sp())][1] == (
        f"-A {svc_chain(sp())} -m statistic --mode random --probability 0.5000000000 "
        f"-j {sep_chain(sp(), Endpoint('10.244.1.2', 8080))}")
    sep = sep_chain(sp(), Endpoint("10.244.1.2", 8080))
    assert chains[sep] == (f"-A {sep} -s 10.244.1.2 -j KUBE-MARK-MASQ",
                           f"-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080")


def test_kube_proxy_rules_build_switches_to_large_mode_above_threshold():
    many = [(sp(name=f"s{i}", ip=f"172.30.{i // 200}.{i % 200 + 1}"), eps("10.244.1.2"))
            for i in range(LARGE_CLUSTER_ENDPOINTS + 1)]
    rs = build_ruleset(many, CFG)
    assert not any("->" in r for c, rules in rs.chains(NAT).items() for r in rules
                   if c.startswith("KUBE-SVC-"))


def test_kube_proxy_rules_services_sorted_and_nodeports_jump_last():
    rs = build_ruleset([(sp(name="b", ip="172.30.0.2"), eps("10.244.1.2")),
                        (sp(name="a", ip="172.30.0.1"), eps("10.244.1.3"))], CFG)
    services = rs.chains(NAT)["KUBE-SERVICES"]
    assert '"ns1/a:p80 cluster IP"' in services[0] and '"ns1/b:p80 cluster IP"' in services[1]
    assert services[-1].endswith("-j KUBE-NODEPORTS")


_ip = st.integers(1, 250).map(lambda i: f"10.244.{i // 100}.{i % 100 + 1}")
_service = st.builds(
    lambda n, np, aff, local, ext: sp(name=f"s{n}", ip=f"172.30.0.{n + 1}",
                                      node_port=np, affinity_seconds=aff,
                                      external_local=local, external_ips=ext),
    st.integers(0, 50), st.sampled_from([0, 30001]), st.sampled_from([0, 60]), st.booleans(),
    st.sampled_from([(), ("192.0.2.1",)]))
_endpoint = st.builds(Endpoint, _ip, st.sampled_from([80, 8080]),
                      st.sampled_from(["", "node-a", "node-b"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_service, st.lists(_endpoint, max_size=4, unique=True)
                          .map(tuple)), max_size=6, unique_by=lambda p: p[0].key))
def test_kube_proxy_rules_every_jump_target_exists(pairs):
    """Whatever the services, every chain a rule jumps to is written in the
    same rule set (or is a built-in target): a restore can never fail on a
    dangling jump, and a partial restore never leaves one behind."""
    rs = build_ruleset(pairs, ProxyConfig(cluster_cidr="10.244.0.0/16", node_name="node-a"))
    builtin_targets = {"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "MARK", "MASQUERADE"}
    for table, chains in rs.tables.items():
        for chain, rules in chains.items():
            assert owns_chain(table, chain)
            assert chain not in BUILTIN_CHAINS[table]
            for rule in rules:
                words = rule.split()
                assert words[:2] == ["-A", chain]
                target = words[words.index("-j") + 1]
                assert target in builtin_targets or target in chains, (rule, table)
