"""The sync schedule, the health rule, and the proxier's bookkeeping of
Services and Endpoints (its syncs against real iptables are in
tests/integration/kube_proxy)."""

from __future__ import annotations

import pytest

from services.kube_proxy.iptables import Iptables
from services.kube_proxy.model import TRIGGER_TIME_ANNOTATION, Endpoint
from services.kube_proxy.proxier import Proxier, SyncSchedule, healthy
from services.kube_proxy.rules import (
    LARGE_CLUSTER_ENDPOINTS, NAT, ProxyConfig, build_ruleset, endpoints_for, svc_chain,
)
from services.machinery import Client, FakeClock
from services.machinery.store import DeletedFinalStateUnknown
from tests.support import objects


def test_kube_proxy_schedule_first_sync_is_full_and_immediate():
    s = SyncSchedule(min_period=1.0, period=30.0)
    assert s.next_run() <= 0 and s.full_due(0.0)


def test_kube_proxy_schedule_changes_coalesce_within_min_period():
    s = SyncSchedule(min_period=1.0, period=30.0)
    s.begin(100.0)
    s.end(100.2, ok=True, full=True)
    assert s.next_run() == 130.0  # nothing changed: only the periodic resync
    s.request()
    s.request()
    assert s.next_run() == 101.0  # one sync for both, a min period after the last
    s.begin(101.0)
    s.end(101.1, ok=True, full=s.full_due(101.0))
    assert not s.full_due(101.0)
    s.request()  # long after the last sync: at once
    assert s.next_run() == 102.0
    assert s.next_run() <= 150.0


def test_kube_proxy_schedule_full_resync_every_period_without_changes():
    s = SyncSchedule(min_period=1.0, period=30.0)
    s.begin(0.0)
    s.end(0.5, ok=True, full=True)
    assert s.next_run() == 30.0 and not s.full_due(29.9) and s.full_due(30.0)
    s.begin(30.0)
    s.end(30.4, ok=True, full=True)
    assert s.next_run() == 60.0


def test_kube_proxy_schedule_failure_retries_full_with_backoff():
    s = SyncSchedule(min_period=1.0, period=30.0)
    s.begin(0.0)
    s.end(0.5, ok=True, full=True)
    s.request()
    s.begin(5.0)
    s.end(5.1, ok=False, full=False)
    assert s.full_due(5.2) and s.next_run() == pytest.approx(6.1)
    s.begin(6.1)
    s.end(6.2, ok=False, full=True)
    assert s.next_run() == pytest.approx(8.2)  # doubled
    for _ in range(10):
        s.begin(s.next_run())
        s.end(s.last_start, ok=False, full=True)
    assert s.next_run() - s.last_start <= 30.0  # capped by the sync period
    s.begin(s.next_run())
    s.end(s.last_start + 0.1, ok=True, full=True)
    assert not s.full_due(s.last_start + 1) and s.failures == 0


def test_kube_proxy_schedule_rejects_bad_periods():
    with pytest.raises(ValueError):
        SyncSchedule(1.0, 0.0)


def test_kube_proxy_healthz_is_unhealthy_after_two_periods_without_sync():
    assert healthy(now=50.0, started=0.0, last_success=None, period=30.0)
    assert not healthy(now=61.0, started=0.0, last_success=None, period=30.0)
    assert healthy(now=100.0, started=0.0, last_success=45.0, period=30.0)
    assert not healthy(now=105.0, started=0.0, last_success=45.0, period=30.0)


@pytest.fixture
def proxier():
    # A Client makes no connection until it is used; nothing here calls the
    # API server or iptables.
    return Proxier(Client(["127.0.0.1:1"]), Iptables("unused"),
                   ProxyConfig(cluster_cidr="10.244.0.0/16"), clock=FakeClock())


def service(name: str, ip: str, rv: str = "1"):
    svc = objects.service(name, "ns1", port=80)
    svc.spec.cluster_ip = ip
    svc.metadata.resource_version = rv
    return svc


def endpoints(name: str, ips: tuple[str, ...], rv: str = "1"):
    ep = objects.endpoints(name, "ns1", ips)
    ep.metadata.resource_version = rv
    return ep


def test_kube_proxy_proxier_handlers_track_state_and_ignore_noops(proxier):
    proxier.schedule.dirty = False
    proxier._service_added(service("web", "10.96.0.10"))
    proxier._endpoints_added(endpoints("web", ("10.244.1.2",)))
    assert proxier.schedule.dirty and len(proxier._pending_triggers) == 1
    proxier.schedule.dirty = False
    # An informer resync (same object) and a change that does not matter
    # to the rules (not-ready address) ask for nothing.
    old = endpoints("web", ("10.244.1.2",))
    proxier._endpoints_updated(old, old)
    new = endpoints("web", ("10.244.1.2",), rv="2")
    new.subsets[0].not_ready_addresses.add(ip="10.244.9.9")
    proxier._endpoints_updated(old, new)
    assert not proxier.schedule.dirty and len(proxier._pending_triggers) == 1
    nat = proxier.desired().chains(NAT)
    assert any("10.244.1.2:8080" in r for rules in nat.values() for r in rules)


def test_kube_proxy_proxier_records_trigger_time_annotation(proxier):
    ep = endpoints("web", ("10.244.1.2",))
    ep.metadata.annotations[TRIGGER_TIME_ANNOTATION] = "2024-01-01T00:00:00Z"
    proxier._endpoints_added(ep)
    assert proxier._pending_triggers[0].isoformat() == "2024-01-01T00:00:00+00:00"


def test_kube_proxy_proxier_reuses_rules_of_unchanged_services(proxier):
    proxier._service_added(service("web", "10.96.0.10"))
    proxier._service_added(service("api", "10.96.0.11"))
    proxier._endpoints_added(endpoints("web", ("10.244.1.2",)))
    proxier._endpoints_added(endpoints("api", ("10.244.1.3",)))
    first = proxier.desired()
    api_rules = proxier._rules["ns1/api"][0]
    proxier._endpoints_updated(endpoints("web", ("10.244.1.2",)),
                               endpoints("web", ("10.244.1.4",), rv="2"))
    second = proxier.desired()
    assert proxier._rules["ns1/api"][0] is api_rules
    web = svc_chain(proxier._services["ns1/web"][0])
    assert first.chains(NAT)[web] != second.chains(NAT)[web]


def test_kube_proxy_proxier_deletes_on_tombstones(proxier):
    proxier._service_added(service("web", "10.96.0.10"))
    proxier._endpoints_added(endpoints("web", ("10.244.1.2",)))
    proxier._service_deleted(DeletedFinalStateUnknown("ns1/web", service("web", "10.96.0.10")))
    proxier._endpoints_deleted(DeletedFinalStateUnknown("ns1/web", None))
    assert proxier._services == {} and proxier._endpoints == {}
    assert list(proxier.desired().chains(NAT)) == ["KUBE-SERVICES", "KUBE-NODEPORTS",
                                                   "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]


def test_kube_proxy_proxier_endpoint_dataclass_is_hashable_value():
    assert Endpoint("10.0.0.1", 80) == Endpoint("10.0.0.1", 80)
    assert str(Endpoint("10.0.0.1", 80)) == "10.0.0.1:80"


def fresh_build(proxier):
    pairs = [(sp, endpoints_for(sp, proxier._endpoints.get(key)))
             for key, ports in proxier._services.items() for sp in ports]
    return build_ruleset(pairs, proxier.config)


def test_kube_proxy_proxier_incremental_rules_equal_a_fresh_build(proxier):
    for i in range(5):
        proxier._service_added(service(f"s{i}", f"10.96.0.{i + 1}"))
        proxier._endpoints_added(endpoints(f"s{i}", (f"10.244.1.{i + 1}",)))
    assert proxier.desired().tables == fresh_build(proxier).tables
    proxier._endpoints_updated(endpoints("s2", ("10.244.1.3",)),
                               endpoints("s2", ("10.244.2.1", "10.244.2.2"), rv="2"))
    proxier._service_deleted(service("s4", "10.96.0.5"))
    proxier._service_added(service("a0", "10.96.0.9"))
    assert proxier.desired().tables == fresh_build(proxier).tables
    # Crossing the large-cluster threshold changes every service's rules.
    many = tuple(f"10.244.{i // 250 + 3}.{i % 250 + 1}" for i in range(LARGE_CLUSTER_ENDPOINTS))
    proxier._endpoints_updated(endpoints("s0", ("10.244.1.1",)),
                               endpoints("s0", many, rv="2"))
    large = proxier.desired()
    assert large.tables == fresh_build(proxier).tables
    assert not any("->" in rule for rules in large.chains(NAT).values() for rule in rules)
