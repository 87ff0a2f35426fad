"""Restore text: full and partial syncs, stale chains, jumps, the
iptables-nft bulk workaround, iptables-save parsing and --cleanup."""

from __future__ import annotations

import textwrap

from services.kube_proxy.model import Endpoint, ServicePort
from services.kube_proxy.restore import (
    BULK_CHAINS, missing_jumps, owned_chains, parse_save, render, render_cleanup,
)
from services.kube_proxy.rules import (
    FILTER, JUMPS, NAT, ProxyConfig, build_ruleset, sep_chain, svc_chain,
)

CFG = ProxyConfig(cluster_cidr="10.244.0.0/16")
WEB = ServicePort("ns1", "web", "http", "TCP", "10.96.0.10", 80)
API = ServicePort("ns1", "api", "http", "TCP", "10.96.0.11", 80)
E1, E2, E3 = (Endpoint(f"10.244.1.{i}", 8080) for i in (2, 3, 4))


def declared(text: str) -> list[str]:
    return [line[1:].split()[0] for line in text.splitlines() if line.startswith(":")]


def test_kube_proxy_restore_partial_writes_only_changed_chains_and_deletes_stale():
    before = build_ruleset([(WEB, (E1, E2)), (API, (E3,))], CFG)
    after = build_ruleset([(WEB, (E1, E3)), (API, (E3,))], CFG)
    plan = render(after, previous=before, existing={t: before.chains(t) for t in (FILTER, NAT)})
    stale = sep_chain(WEB, E2)
    # Only the service whose endpoints changed: its SVC chain and the new
    # SEP; the filter table is untouched; the old SEP is flushed and deleted.
    assert plan.text.splitlines() == [
        "*nat",
        f":{svc_chain(WEB)} - [0:0]",
        f":{sep_chain(WEB, E3)} - [0:0]",
        f":{stale} - [0:0]",
        *after.chains(NAT)[svc_chain(WEB)],
        *after.chains(NAT)[sep_chain(WEB, E3)],
        f"-X {stale}",
        "COMMIT"]
    assert plan.written == {NAT: 2} and plan.deleted == {NAT: (stale,)}


def test_kube_proxy_restore_partial_with_no_change_is_empty():
    rs = build_ruleset([(WEB, (E1,))], CFG)
    plan = render(rs, previous=rs, existing={t: rs.chains(t) for t in (FILTER, NAT)})
    assert plan.empty and plan.text == ""


def test_kube_proxy_restore_deleted_service_removes_its_chains():
    before = build_ruleset([(WEB, (E1,)), (API, (E3,))], CFG)
    after = build_ruleset([(API, (E3,))], CFG)
    plan = render(after, previous=before, existing={t: before.chains(t) for t in (FILTER, NAT)})
    lines = plan.text.splitlines()
    assert f"-X {svc_chain(WEB)}" in lines and f"-X {sep_chain(WEB, E1)}" in lines
    assert ":KUBE-SERVICES - [0:0]" in lines  # rewritten without the jump to it
    assert not any(svc_chain(WEB) in line for line in after.chains(NAT)["KUBE-SERVICES"])


def test_kube_proxy_restore_full_declares_everything_and_deletes_leftovers():
    rs = build_ruleset([(WEB, (E1,))], CFG)
    leftovers = {NAT: ["KUBE-SVC-OLDOLDOLDOLDOLD1", "KUBE-SERVICES", "DOCKER"],
                 FILTER: ["KUBE-FORWARD", "f2b-sshd"]}
    full = render(rs, existing=leftovers)
    assert declared(full.text) == [*rs.chains(FILTER), *rs.chains(NAT),
                                   "KUBE-SVC-OLDOLDOLDOLDOLD1"]
    assert full.deleted == {NAT: ("KUBE-SVC-OLDOLDOLDOLDOLD1",)}  # never others' chains
    assert "DOCKER" not in full.text and "f2b" not in full.text


def test_kube_proxy_restore_inserts_missing_jumps():
    rs = build_ruleset([], CFG)
    nat_jumps = [j for j in JUMPS if j.table == NAT]
    plan = render(rs, missing_jumps=nat_jumps)
    nat = plan.text.split("*nat\n", 1)[1]
    assert nat.splitlines()[-4:] == [
        '-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "COMMIT"]


def test_kube_proxy_restore_missing_jumps_reads_iptables_output():
    listed = {
        (NAT, "PREROUTING"): [
            '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"],
        (FILTER, "FORWARD"): [
            '-A FORWARD -m conntrack --ctstate NEW -m comment --comment '
            '"kubernetes service portals" -j KUBE-SERVICES'],
    }
    missing = missing_jumps(listed, JUMPS)
    assert (NAT, "PREROUTING", "KUBE-SERVICES") not in {(j.table, j.chain, j.target)
                                                        for j in missing}
    assert (FILTER, "FORWARD", "KUBE-SERVICES") not in {(j.table, j.chain, j.target)
                                                        for j in missing}
    assert len(missing) == len(JUMPS) - 2


def test_kube_proxy_restore_bulk_workaround_only_for_big_sections():
    small = build_ruleset([(WEB, (E1,))], CFG)
    assert "-Z" not in render(small, bulk_workaround=True).text.splitlines()
    big = build_ruleset([(ServicePort("ns", f"s{i}", "", "TCP", f"10.96.{i // 250}.{i % 250 + 1}",
                                      80), (E1,)) for i in range(BULK_CHAINS // 2)], CFG)
    text = render(big, bulk_workaround=True).text.splitlines()
    assert text[text.index("*nat") + 1] == "-Z"
    assert text[text.index("*filter") + 1] != "-Z"
    assert "-Z" not in render(big).text.splitlines()


SAVE = textwrap.dedent("""\
    # Generated by iptables-save v1.8.9 (nf_tables)
    *filter
    :INPUT ACCEPT [0:0]
    :FORWARD DROP [0:0]
    :OUTPUT ACCEPT [0:0]
    :DOCKER-USER - [0:0]
    :KUBE-FORWARD - [0:0]
    :KUBE-SERVICES - [0:0]
    -A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
    -A FORWARD -j DOCKER-USER
    -A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
    COMMIT
    *nat
    :PREROUTING ACCEPT [0:0]
    :POSTROUTING ACCEPT [0:0]
    :KUBE-MARK-MASQ - [0:0]
    :KUBE-SERVICES - [0:0]
    :KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
    :KUBELET-HOSTPORTS - [0:0]
    -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
    -A PREROUTING -j KUBELET-HOSTPORTS
    -A KUBELET-HOSTPORTS -s 10.0.0.1/32 -j KUBE-MARK-MASQ
    -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-AAAAAAAAAAAAAAAA
    COMMIT
    """)


def test_kube_proxy_restore_parse_save_finds_our_chains():
    dump = parse_save(SAVE)
    assert owned_chains(dump) == {
        FILTER: ["KUBE-FORWARD", "KUBE-SERVICES"],
        NAT: ["KUBE-MARK-MASQ", "KUBE-SERVICES", "KUBE-SVC-AAAAAAAAAAAAAAAA"]}
    assert dump[NAT].rules_in("PREROUTING")[0].endswith("-j KUBE-SERVICES")


def test_kube_proxy_restore_cleanup_unlinks_and_deletes_what_is_ours():
    assert render_cleanup(parse_save(SAVE)) == textwrap.dedent("""\
        *filter
        :KUBE-FORWARD - [0:0]
        :KUBE-SERVICES - [0:0]
        -D FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
        -X KUBE-FORWARD
        -X KUBE-SERVICES
        COMMIT
        *nat
        :KUBE-MARK-MASQ - [0:0]
        :KUBE-SERVICES - [0:0]
        :KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
        -D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
        -X KUBE-SERVICES
        -X KUBE-SVC-AAAAAAAAAAAAAAAA
        COMMIT
        """)
    # KUBE-MARK-MASQ is still used by someone else's chain: emptied, kept.


def test_kube_proxy_restore_cleanup_of_clean_tables_is_nothing():
    assert render_cleanup(parse_save("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")) == ""
