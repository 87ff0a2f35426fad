"""Scaling a deployment mid-rollout spreads the change over its
ReplicaSets in proportion to their size (sync.go ``scale``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.controller_manager.rollout import (
    Fenceposts, RSView, find_active_or_latest, is_saturated, proportional_scale,
    replicas_annotations,
)


def test_proportional_scale_gives_the_whole_size_to_the_only_active_set():
    new = RSView("new", replicas=5, created=2)
    old = RSView("old", replicas=0, created=1)
    assert proportional_scale(Fenceposts(replicas=8, max_surge=2), new, [old]) == {"new": 8}


def test_proportional_scale_picks_the_newest_when_none_is_active():
    olds = [RSView("a", 0, created=1), RSView("b", 0, created=2)]
    assert proportional_scale(Fenceposts(replicas=3), None, olds) == {"b": 3}


def test_proportional_scale_spreads_a_scale_up_by_size():
    # Mid-rollout at 10 replicas + 3 surge: old 8, new 5 (annotated max 13).
    old = RSView("old", 8, created=1, max_replicas=13)
    new = RSView("new", 5, created=2, max_replicas=13)
    # Scaled to 20 (+5 surge = 25): 12 more pods, old:new = 8:5.
    sizes = proportional_scale(Fenceposts(replicas=20, max_surge=5), new, [old])
    assert sizes == {"old": 15, "new": 10}
    assert sum(sizes.values()) == 25


def test_proportional_scale_spreads_a_scale_down_by_size():
    old = RSView("old", 8, created=1, max_replicas=13)
    new = RSView("new", 5, created=2, max_replicas=13)
    sizes = proportional_scale(Fenceposts(replicas=5, max_surge=2), new, [old])
    assert sum(sizes.values()) == 7
    assert sizes["old"] > sizes["new"]


def test_proportional_scale_gives_the_rounding_leftover_to_the_largest():
    a = RSView("a", 3, created=1, max_replicas=9)
    b = RSView("b", 3, created=2, max_replicas=9)
    c = RSView("c", 3, created=3, max_replicas=9)
    # 9 -> 10: each would get 3.33 -> 3; the extra one goes to the first
    # in order: largest, and among equals the newest when scaling up.
    sizes = proportional_scale(Fenceposts(replicas=10), c, [a, b])
    assert sizes == {"a": 3, "b": 3, "c": 4}


def test_proportional_scale_removes_from_the_oldest_among_equals():
    a = RSView("a", 3, created=1, max_replicas=9)
    b = RSView("b", 3, created=2, max_replicas=9)
    c = RSView("c", 3, created=3, max_replicas=9)
    sizes = proportional_scale(Fenceposts(replicas=8), c, [a, b])
    assert sizes == {"a": 2, "b": 3, "c": 3}


def test_proportional_scale_to_zero_empties_everything():
    old = RSView("old", 4, created=1, max_replicas=6)
    new = RSView("new", 2, created=2, max_replicas=6)
    assert proportional_scale(Fenceposts(replicas=0, max_surge=0), new, [old]) == \
        {"old": 0, "new": 0}


def test_proportional_scale_falls_back_to_status_replicas_without_annotation():
    old = RSView("old", 4, created=1)
    new = RSView("new", 2, created=2)
    sizes = proportional_scale(Fenceposts(replicas=12, status_replicas=6), new, [old])
    assert sizes == {"old": 8, "new": 4}


def test_proportional_scale_does_not_add_pods_while_old_ones_linger():
    # Old set scaled to 4 but its 8 pods are still there: no room to add.
    old = RSView("old", 4, size=8, created=1, max_replicas=8)
    new = RSView("new", 4, size=4, created=2, max_replicas=8)
    sizes = proportional_scale(Fenceposts(replicas=10, max_surge=0), new, [old])
    assert sizes == {"old": 4, "new": 4}


def test_proportional_scale_leaves_old_sets_at_zero_when_new_is_saturated():
    new = RSView("new", 5, available=5, created=2, desired=5)
    old = RSView("old", 2, created=1)
    assert proportional_scale(Fenceposts(replicas=5, max_surge=1), new, [old]) == {"old": 0}


def test_proportional_scale_does_nothing_for_recreate_with_several_active_sets():
    new, old = RSView("new", 2, created=2), RSView("old", 2, created=1)
    assert proportional_scale(Fenceposts(replicas=6, rolling=False), new, [old]) == {}


def test_find_active_or_latest_returns_none_for_several_active():
    assert find_active_or_latest(RSView("n", 1), [RSView("o", 1)]) is None
    assert find_active_or_latest(None, []) is None


def test_is_saturated_needs_size_annotation_and_availability():
    fp = Fenceposts(replicas=3)
    assert is_saturated(fp, RSView("n", 3, available=3, desired=3))
    assert not is_saturated(fp, RSView("n", 3, available=2, desired=3))
    assert not is_saturated(fp, RSView("n", 3, available=3, desired=2))
    assert not is_saturated(fp, None)


def test_replicas_annotations_only_reports_changes():
    assert replicas_annotations({"x": "1"}, 3, 4) == {
        "x": "1", "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4"}
    same = {"deployment.kubernetes.io/desired-replicas": "3",
            "deployment.kubernetes.io/max-replicas": "4"}
    assert replicas_annotations(same, 3, 4) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=5), st.integers(0, 60),
       st.integers(0, 5))
def test_proportional_scale_moves_towards_the_allowed_total(sizes, replicas, surge):
    """Scaling up lands exactly on replicas + maxSurge. Scaling down never
    goes below it nor below zero; like Kubernetes, a rounding leftover that
    would take the largest set below zero is left for the rollout to remove."""
    views = [RSView(f"rs{i}", n, size=n, created=i, max_replicas=sum(sizes))
             for i, n in enumerate(sizes)]
    fp = Fenceposts(replicas=replicas, max_surge=surge)
    result = proportional_scale(fp, views[-1], views[:-1])
    allowed = replicas + surge if replicas > 0 else 0
    assert all(v >= 0 for v in result.values())
    if allowed >= sum(sizes):
        assert sum(result.values()) == allowed
        assert all(result[v.name] >= v.replicas for v in views)
    else:
        assert allowed <= sum(result.values()) <= sum(sizes)
        assert all(result[v.name] <= v.replicas for v in views)
