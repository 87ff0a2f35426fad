"""The cache: assume, forget, confirm, expire; nodes and the pods on them."""

from __future__ import annotations

import pytest

from services.machinery.clock import FakeClock
from services.scheduler.cache import Cache, CacheError
from services.scheduler.nodeinfo import PodInfo
from tests.unit.scheduler.builders import node, pod, pod_info


def cache_with_nodes(*names: str, clock: FakeClock | None = None) -> Cache:
    cache = Cache(clock or FakeClock(), ttl=30)
    for name in names:
        cache.add_node(node(name, cpu="4"))
    return cache


def test_cache_assumed_pod_counts_at_once():
    cache = cache_with_nodes("n1")
    cache.assume_pod(pod_info("a", cpu="1"), "n1")
    info = cache.node("n1")
    assert (info.requested_cpu, len(info.pods)) == (1000, 1)
    assert cache.is_assumed("default/a")


def test_cache_forget_frees_the_assumption():
    cache = cache_with_nodes("n1")
    cache.assume_pod(pod_info("a", cpu="1", host_ports=[80]), "n1")
    assert cache.forget_pod("default/a")
    info = cache.node("n1")
    assert (info.requested_cpu, len(info.pods), dict(info.used_ports)) == (0, 0, {})
    assert not cache.has_pod("default/a")


def test_cache_assuming_twice_is_an_error():
    cache = cache_with_nodes("n1")
    cache.assume_pod(pod_info("a"), "n1")
    with pytest.raises(CacheError):
        cache.assume_pod(pod_info("a"), "n1")


def test_cache_informer_add_confirms_the_assumption():
    cache = cache_with_nodes("n1")
    cache.assume_pod(pod_info("a", cpu="1"), "n1")
    cache.add_pod(pod_info("a", cpu="1", node_name="n1"), "n1")
    assert not cache.is_assumed("default/a")
    assert cache.node("n1").requested_cpu == 1000
    assert not cache.forget_pod("default/a")  # confirmed pods are not forgotten
    assert cache.node("n1").requested_cpu == 1000


def test_cache_confirmation_on_another_node_moves_the_pod():
    cache = cache_with_nodes("n1", "n2")
    cache.assume_pod(pod_info("a", cpu="1"), "n1")
    cache.add_pod(pod_info("a", cpu="1", node_name="n2"), "n2")
    assert cache.node("n1").requested_cpu == 0
    assert cache.node("n2").requested_cpu == 1000


def test_cache_assumption_expires_after_binding_if_never_confirmed():
    clock = FakeClock()
    cache = cache_with_nodes("n1", clock=clock)
    cache.assume_pod(pod_info("a", cpu="1"), "n1")
    clock.advance(100)
    assert cache.cleanup_expired_assumed_pods() == []  # binding still in flight: never expires
    cache.finish_binding("default/a")
    clock.advance(29)
    assert cache.cleanup_expired_assumed_pods() == []
    clock.advance(1)
    assert cache.cleanup_expired_assumed_pods() == ["default/a"]
    assert cache.node("n1").requested_cpu == 0


def test_cache_remove_pod_frees_its_resources():
    cache = cache_with_nodes("n1")
    cache.add_pod(pod_info("a", cpu="1", node_name="n1"), "n1")
    assert cache.remove_pod("default/a")
    assert cache.node("n1").requested_cpu == 0
    assert not cache.remove_pod("default/a")


def test_cache_update_pod_replaces_its_accounting():
    cache = cache_with_nodes("n1")
    cache.add_pod(pod_info("a", cpu="1", node_name="n1"), "n1")
    cache.update_pod(pod_info("a", cpu="2", node_name="n1"), "n1")
    assert cache.node("n1").requested_cpu == 2000
    assert len(cache.node("n1").pods) == 1


def test_cache_pods_on_an_unknown_node_are_kept_but_not_offered():
    cache = cache_with_nodes()
    cache.add_pod(pod_info("a", cpu="1", node_name="later"), "later")
    assert cache.snapshot() == []
    cache.add_node(node("later", cpu="4"))
    [info] = cache.snapshot()
    assert (info.name, info.requested_cpu) == ("later", 1000)


def test_cache_removed_node_leaves_the_snapshot_but_keeps_its_pods():
    cache = cache_with_nodes("n1", "n2")
    cache.add_pod(pod_info("a", cpu="1", node_name="n1"), "n1")
    cache.remove_node("n1")
    assert [n.name for n in cache.snapshot()] == ["n2"]
    cache.remove_pod("default/a")
    assert cache.node("n1") is None
    cache.remove_node("n2")
    assert cache.snapshot() == []


def test_cache_node_update_keeps_pod_accounting():
    cache = cache_with_nodes("n1")
    cache.add_pod(PodInfo(pod("a", cpu="1", node_name="n1")), "n1")
    cache.update_node(node("n1", cpu="8", labels={"new": "label"}))
    info = cache.node("n1")
    assert (info.allocatable_cpu, info.requested_cpu, info.labels) == (8000, 1000,
                                                                        {"new": "label"})
