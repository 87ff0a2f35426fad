"""Every score plugin, table-driven: raw scores per node, then normalised."""

from __future__ import annotations

import pytest

from services.scheduler.framework import Code, CycleState, default_normalize_score
from services.scheduler.plugins import (
    node_affinity, node_resources_balanced_allocation, node_resources_least_allocated,
    selector_spread, taint_toleration,
)
from tests.unit.scheduler.builders import node_info, pod, pod_info


def run_score(plugin, pod_, nodes):
    """PreScore, Score on each node, NormalizeScore: the final 0..100 list
    (None when the plugin skips the pod)."""
    state = CycleState()
    if hasattr(plugin, "pre_score"):
        status = plugin.pre_score(state, pod_, nodes)
        if status is not None and status.code is Code.SKIP:
            return None
    scores = [plugin.score(state, pod_, n) for n in nodes]
    plugin.normalize_score(state, pod_, scores)
    return scores


@pytest.mark.parametrize("scores, reverse, expected", [
    ([0, 0], False, [0, 0]),
    ([0, 0], True, [100, 100]),
    ([1, 2, 4], False, [25, 50, 100]),
    ([1, 2, 4], True, [75, 50, 0]),
    ([], False, []),
])
def test_framework_default_normalize_score(scores, reverse, expected):
    default_normalize_score(scores, reverse)
    assert scores == expected


# -- TaintToleration (PreferNoSchedule) -----------------------------------------------------


@pytest.mark.parametrize("node_taints, tolerations, expected", [
    ([[], []], [], None),  # no node has taints: the plugin sits this pod out
    ([[], [("a", "1", "PreferNoSchedule")]], [], [100, 0]),
    ([[("a", "1", "PreferNoSchedule")], [("a", "1", "PreferNoSchedule"),
                                          ("b", "1", "PreferNoSchedule")]], [], [50, 0]),
    ([[], [("a", "1", "PreferNoSchedule")]], [("a", "Exists", "", "PreferNoSchedule")],
     [100, 100]),
    ([[], [("a", "1", "PreferNoSchedule")]], [("a", "Exists", "", "NoSchedule")], [100, 0]),
    ([[], [("a", "1", "NoSchedule")]], [], [100, 100]),  # hard taints are the filter's job
])
def test_taint_toleration_score_prefers_fewer_untolerated_soft_taints(node_taints, tolerations,
                                                                       expected):
    nodes = [node_info(f"n{i}", taints=t) for i, t in enumerate(node_taints)]
    assert run_score(taint_toleration.TaintToleration(), pod_info(tolerations=tolerations),
                     nodes) == expected


# -- NodeAffinity (preferred terms) ---------------------------------------------------------


@pytest.mark.parametrize("labels, preferred, expected", [
    ([{}, {"zone": "a"}], [(5, [("zone", "In", ["a"])])], [0, 100]),
    ([{"zone": "a"}, {"zone": "a", "disk": "ssd"}, {}],
     [(2, [("zone", "In", ["a"])]), (6, [("disk", "In", ["ssd"])])], [25, 100, 0]),
    ([{}, {}], [(5, [("zone", "In", ["a"])])], [0, 0]),
])
def test_node_affinity_score_sums_weights_of_matching_preferred_terms(labels, preferred,
                                                                      expected):
    nodes = [node_info(f"n{i}", labels=lab) for i, lab in enumerate(labels)]
    assert run_score(node_affinity.NodeAffinity(), pod_info(preferred=preferred), nodes) \
        == expected


def test_node_affinity_score_skips_pods_without_preferences():
    assert run_score(node_affinity.NodeAffinity(), pod_info(), [node_info()]) is None


# -- NodeResourcesLeastAllocated ------------------------------------------------------------


@pytest.mark.parametrize("existing, wanted, expected", [
    # node: 4 cpu, 8Gi; empty node, pod of 1 cpu / 2Gi -> 75% free of each
    ([], {"cpu": "1", "memory": "2Gi"}, 75),
    ([{"cpu": "2", "memory": "2Gi"}], {"cpu": "1", "memory": "2Gi"}, (25 + 50) // 2),
    ([{"cpu": "4", "memory": "8Gi"}], {"cpu": "1", "memory": "1Gi"}, 0),  # over: 0, not negative
    # no requests count as 100m / 200Mi
    ([], {}, ((4000 - 100) * 100 // 4000 + (8 * 2**30 - 200 * 2**20) * 100 // (8 * 2**30)) // 2),
])
def test_least_allocated_score(existing, wanted, expected):
    node = node_info(cpu="4", memory="8Gi",
                     pods_on_node=[pod(f"e{i}", **kw) for i, kw in enumerate(existing)])
    assert run_score(node_resources_least_allocated.NodeResourcesLeastAllocated(),
                     pod_info(**wanted), [node]) == [expected]


def test_least_allocated_prefers_the_emptier_node():
    busy = node_info("busy", pods_on_node=[pod("x", cpu="3", memory="6Gi")])
    idle = node_info("idle")
    scores = run_score(node_resources_least_allocated.NodeResourcesLeastAllocated(),
                       pod_info(cpu="500m", memory="1Gi"), [busy, idle])
    assert scores[1] > scores[0]


# -- NodeResourcesBalancedAllocation --------------------------------------------------------


@pytest.mark.parametrize("wanted, expected", [
    ({"cpu": "2", "memory": "4Gi"}, 100),  # 50% and 50%
    ({"cpu": "4", "memory": "0"}, 50),     # 100% cpu, 0% memory: std 0.5
    ({"cpu": "1", "memory": "4Gi"}, 87),   # 25% vs 50%: std 0.125
])
def test_balanced_allocation_score(wanted, expected):
    node = node_info(cpu="4", memory="8Gi")
    assert run_score(node_resources_balanced_allocation.NodeResourcesBalancedAllocation(),
                     pod_info(**wanted), [node]) == [expected]


def test_balanced_allocation_prefers_the_node_it_balances():
    cpu_heavy = node_info("cpu-heavy", pods_on_node=[pod("x", cpu="3", memory="1Gi")])
    mem_heavy = node_info("mem-heavy", pods_on_node=[pod("y", cpu="500m", memory="6Gi")])
    wanted = pod_info(cpu="2", memory="256Mi")  # a cpu-hungry pod balances mem-heavy
    scores = run_score(node_resources_balanced_allocation.NodeResourcesBalancedAllocation(),
                       wanted, [cpu_heavy, mem_heavy])
    assert scores[1] > scores[0]


# -- SelectorSpread ---------------------------------------------------------------------------


@pytest.mark.parametrize("counts, expected", [
    ([0, 0, 0], [100, 100, 100]),
    ([2, 1, 0], [0, 50, 100]),
    ([1, 1, 3], [67, 67, 0]),
])
def test_selector_spread_prefers_nodes_with_fewer_pods_of_the_owner(counts, expected):
    nodes = [node_info(f"n{i}", pods_on_node=[pod(f"p{i}-{j}", owner_uid="rs-1")
                                              for j in range(c)])
             for i, c in enumerate(counts)]
    # pods of another owner do not count
    nodes[0].add_pod(pod_info("other", owner_uid="rs-2"))
    assert run_score(selector_spread.SelectorSpread(), pod_info(owner_uid="rs-1"), nodes) \
        == expected


def test_selector_spread_skips_pods_without_an_owner():
    assert run_score(selector_spread.SelectorSpread(), pod_info(), [node_info()]) is None
