"""Which pods a ReplicaSet deletes first, and its slow-start batches."""

from __future__ import annotations

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.rollout import (
    POD_DELETION_COST_ANNOTATION, pods_to_delete, slow_start_batches,
)


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = True,
        created: int = 100, ready_at: int | None = 100, restarts: int = 0,
        cost: int | None = None) -> core.Pod:
    p = core.Pod()
    p.metadata.name = name
    p.metadata.creation_timestamp.FromSeconds(created)
    if cost is not None:
        p.metadata.annotations[POD_DELETION_COST_ANNOTATION] = str(cost)
    p.spec.node_name = node
    p.status.phase = phase
    cond = p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if ready_at is not None:
        cond.last_transition_time.FromSeconds(ready_at)
    p.status.container_statuses.add(name="main", restart_count=restarts)
    return p


def first(pods: list[core.Pod], count: int = 1) -> list[str]:
    return [p.metadata.name for p in pods_to_delete(pods, count)]


def test_slow_start_batches_double_up_to_the_count():
    assert slow_start_batches(100) == [1, 2, 4, 8, 16, 32, 37]
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(0) == []
    assert sum(slow_start_batches(500)) == 500


def test_pods_to_delete_prefers_unassigned_pods():
    assert first([pod("a"), pod("b", node="")]) == ["b"]


def test_pods_to_delete_prefers_pending_then_unknown_over_running():
    pods = [pod("run"), pod("unknown", phase="Unknown"), pod("pending", phase="Pending")]
    assert first(pods, 2) == ["pending", "unknown"]


def test_pods_to_delete_prefers_not_ready_pods():
    assert first([pod("ready"), pod("notready", ready=False)]) == ["notready"]


def test_pods_to_delete_prefers_lower_deletion_cost():
    assert first([pod("cheap", cost=-5), pod("dear", cost=10), pod("plain")]) == ["cheap"]


def test_pods_to_delete_prefers_doubled_up_nodes():
    pods = [pod("alone", node="n1"), pod("x", node="n2"), pod("y", node="n2")]
    assert first(pods) in (["x"], ["y"])


def test_pods_to_delete_prefers_the_most_recently_ready():
    assert first([pod("long", ready_at=10), pod("recent", ready_at=50)]) == ["recent"]


def test_pods_to_delete_prefers_more_restarts():
    assert first([pod("calm"), pod("crashy", restarts=4)]) == ["crashy"]


def test_pods_to_delete_prefers_newer_pods():
    assert first([pod("old", created=10), pod("new", created=20)]) == ["new"]


def test_pods_to_delete_returns_everything_when_asked_for_more():
    pods = [pod("a"), pod("b")]
    assert pods_to_delete(pods, 5) == pods
    assert pods_to_delete(pods, 0) == []
