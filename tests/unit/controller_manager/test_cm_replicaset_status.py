"""The ReplicaSet controller's pure parts: status from pods, when to look
again for minReadySeconds, and selector parsing."""

from __future__ import annotations

import datetime

import pytest

from services.api import selectors
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.replicaset import (
    calculate_status, next_availability_check, selector_of,
)

NOW = datetime.datetime(2024, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def replicaset(replicas: int = 3, min_ready: int = 0) -> apps.ReplicaSet:
    rs = apps.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.generation = "web", "ns", 4
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = min_ready
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels.update({"app": "web", "tier": "front"})
    return rs


def pod(name: str, *, labels: dict[str, str] | None = None, ready_for: float | None = None
        ) -> core.Pod:
    p = core.Pod()
    p.metadata.name = name
    p.metadata.labels.update(labels if labels is not None else {"app": "web", "tier": "front"})
    if ready_for is not None:
        cond = p.status.conditions.add(type="Ready", status="True")
        cond.last_transition_time.FromDatetime(NOW - datetime.timedelta(seconds=ready_for))
    return p


def test_calculate_status_counts_labeled_ready_and_available_pods():
    pods = [pod("a", ready_for=100), pod("b", ready_for=1), pod("c"),
            pod("d", labels={"app": "web"})]
    status = calculate_status(replicaset(min_ready=10), pods, None, NOW)
    assert (status.replicas, status.fully_labeled_replicas, status.ready_replicas,
            status.available_replicas) == (4, 3, 2, 1)


def test_calculate_status_without_min_ready_counts_ready_as_available():
    status = calculate_status(replicaset(), [pod("a", ready_for=0)], None, NOW)
    assert status.available_replicas == 1


def test_calculate_status_adds_and_clears_the_replica_failure_condition():
    rs = replicaset(replicas=3)
    failing = calculate_status(rs, [pod("a")], RuntimeError("quota exceeded"), NOW)
    [cond] = failing.conditions
    assert (cond.type, cond.status, cond.reason, cond.message) == \
        ("ReplicaFailure", "True", "FailedCreate", "quota exceeded")
    rs.status.CopyFrom(failing)
    assert list(calculate_status(rs, [pod("a")], None, NOW).conditions) == []


def test_calculate_status_keeps_the_observed_generation_for_the_writer():
    rs = replicaset()
    rs.status.observed_generation = 2
    assert calculate_status(rs, [], None, NOW).observed_generation == 2


def test_next_availability_check_is_when_the_next_pod_becomes_available():
    rs = replicaset(min_ready=10)
    pods = [pod("a", ready_for=4), pod("b", ready_for=7), pod("c", ready_for=30), pod("d")]
    delay = next_availability_check(rs, pods, NOW)
    assert delay == pytest.approx(3.0, abs=0.05)


def test_next_availability_check_is_none_without_waiting_pods():
    assert next_availability_check(replicaset(min_ready=0), [pod("a", ready_for=1)], NOW) is None
    assert next_availability_check(replicaset(min_ready=5), [pod("a", ready_for=9)], NOW) is None


def test_selector_of_parses_and_rejects():
    rs = replicaset()
    assert selector_of(rs).matches({"app": "web"})
    rs.spec.selector.match_expressions.add(key="tier", operator="Bogus", values=["x"])
    with pytest.raises(selectors.SelectorError):
        selector_of(rs)
