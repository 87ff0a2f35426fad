"""The decision core: the sampling formula, the rotating search, scoring
with weights, tie-breaking, and the FitError message users read."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from services.scheduler import config
from services.scheduler.algorithm import (
    Algorithm, FitError, fit_error_message, num_feasible_nodes_to_find, select_host,
)
from services.scheduler.framework import Profile, unresolvable, unschedulable
from tests.unit.scheduler.builders import node_info, pod, pod_info


def default_profile() -> Profile:
    return config.build_profile(config.default_profile())


@pytest.mark.parametrize("nodes, percentage, expected", [
    (0, 0, 0),
    (50, 0, 50),          # small clusters: every node
    (99, 0, 99),
    (100, 0, 100),        # 49% of 100 is below the 100-node floor
    (200, 0, 100),
    (250, 0, 120),        # 48%
    (1000, 0, 420),       # 50 - 1000/125 = 42%
    (5000, 0, 500),       # 50 - 40 = 10%
    (6000, 0, 300),       # 50 - 48 = 2% -> floor 5%
    (10000, 0, 500),      # 5%
    (1000, 10, 100),      # explicit 10%
    (5000, 10, 500),
    (1000, 100, 1000),
    (1000, 1, 100),       # never under 100 nodes
])
def test_num_feasible_nodes_to_find_follows_kube_scheduler(nodes, percentage, expected):
    assert num_feasible_nodes_to_find(nodes, percentage) == expected


def test_fit_error_message_matches_kube_scheduler_wording():
    statuses = {
        "n1": unschedulable("NodeResourcesFit", "Insufficient cpu"),
        "n2": unschedulable("NodeResourcesFit", "Insufficient cpu"),
        "n3": unresolvable("TaintToleration", "node(s) had untolerated taint {dedicated: gpu}"),
    }
    assert fit_error_message(3, statuses) == (
        "0/3 nodes are available: 2 Insufficient cpu, "
        "1 node(s) had untolerated taint {dedicated: gpu}.")


def test_fit_error_message_counts_every_reason_of_a_node():
    statuses = {"a": unschedulable("NodeResourcesFit", "Insufficient cpu", "Insufficient memory"),
                "b": unschedulable("NodeResourcesFit", "Insufficient memory")}
    assert fit_error_message(2, statuses) == \
        "0/2 nodes are available: 2 Insufficient memory, 1 Insufficient cpu."
    assert fit_error_message(0, {}) == "no nodes available to schedule pods"


def test_algorithm_schedule_reports_why_each_node_was_rejected():
    nodes = [node_info("small-1", cpu="1"), node_info("small-2", cpu="1"),
             node_info("gpu", cpu="8", taints=[("dedicated", "gpu", "NoSchedule")])]
    with pytest.raises(FitError) as caught:
        Algorithm().schedule(default_profile(), pod_info(cpu="2"), nodes)
    assert str(caught.value) == ("0/3 nodes are available: 2 Insufficient cpu, "
                                 "1 node(s) had untolerated taint {dedicated: gpu}.")


def test_algorithm_schedule_with_no_nodes_is_a_fit_error():
    with pytest.raises(FitError, match="^no nodes available to schedule pods$"):
        Algorithm().schedule(default_profile(), pod_info(), [])


def test_algorithm_schedule_picks_the_least_allocated_node():
    busy = node_info("busy", pods_on_node=[pod("x", cpu="3", memory="6Gi")])
    nodes = [busy, node_info("idle"), node_info("half", pods_on_node=[pod("y", cpu="2",
                                                                          memory="4Gi")])]
    result = Algorithm(rng=random.Random(1)).schedule(default_profile(),
                                                       pod_info(cpu="100m", memory="128Mi"),
                                                       nodes)
    assert result.node == "idle"
    assert result.feasible_nodes == 3


def test_algorithm_schedule_with_one_feasible_node_skips_scoring():
    nodes = [node_info("a", labels={"disk": "hdd"}), node_info("b", labels={"disk": "ssd"})]
    result = Algorithm().schedule(default_profile(), pod_info(node_selector={"disk": "ssd"}),
                                  nodes)
    assert (result.node, result.feasible_nodes, result.evaluated_nodes) == ("b", 1, 2)


def test_algorithm_search_stops_after_enough_feasible_nodes_and_rotates_its_start():
    nodes = [node_info(f"n{i:03}") for i in range(1000)]
    algorithm = Algorithm(rng=random.Random(0))
    first = algorithm.schedule(default_profile(), pod_info("a"), nodes)
    assert first.evaluated_nodes == first.feasible_nodes == 420
    assert algorithm.next_start_node_index == 420
    algorithm.schedule(default_profile(), pod_info("b"), nodes)
    assert algorithm.next_start_node_index == 840
    algorithm.schedule(default_profile(), pod_info("c"), nodes)
    assert algorithm.next_start_node_index == (840 + 420) % 1000


def test_algorithm_search_counts_infeasible_nodes_as_processed():
    nodes = [node_info(f"n{i}", cpu="1" if i % 2 else "8") for i in range(400)]
    algorithm = Algorithm()
    result = algorithm.schedule(default_profile(), pod_info(cpu="2"), nodes)
    assert result.feasible_nodes == 188  # 47% of 400
    assert result.evaluated_nodes == 375  # 188 fitting, 187 not, in alternation
    assert algorithm.next_start_node_index == 375


def test_select_host_breaks_ties_at_random_among_the_best():
    nodes = [node_info(name) for name in "abcd"]
    rng = random.Random(42)
    picks = Counter(select_host(nodes, [5, 9, 9, 1], rng).name for _ in range(400))
    assert set(picks) == {"b", "c"}
    assert min(picks.values()) > 120


def test_profile_score_weights_decide_between_plugins():
    # "soft" has an untolerated PreferNoSchedule taint but is emptier; with
    # TaintToleration weighted 3 against 1 + 1 for resources, the taint wins.
    soft = node_info("soft", taints=[("slow", "", "PreferNoSchedule")])
    used = node_info("used", pods_on_node=[pod("x", cpu="1", memory="2Gi")])
    profile = default_profile()
    assert Algorithm().schedule(profile, pod_info(), [soft, used]).node == "used"
    only_resources = Profile("resources", profile.filters,
                             [(p, w) for p, w in profile.scores if p.name != "TaintToleration"])
    assert Algorithm().schedule(only_resources, pod_info(), [soft, used]).node == "soft"


def test_profile_pre_filter_skip_leaves_out_the_plugins_filter():
    profile = default_profile()
    _, filters = profile.run_pre_filter({}, pod_info())
    names = {f.__self__.name for f in filters}
    assert "NodeAffinity" not in names and "NodePorts" not in names
    _, filters = profile.run_pre_filter({}, pod_info(node_selector={"a": "b"},
                                                     host_ports=[80]))
    names = {f.__self__.name for f in filters}
    assert {"NodeAffinity", "NodePorts"} <= names
