"""Expectations: a controller acts again only once it has seen its own writes."""

from __future__ import annotations

from services.controller_manager.expectations import ControllerExpectations
from services.machinery.clock import FakeClock


def test_expectations_are_satisfied_when_none_are_recorded():
    assert ControllerExpectations(FakeClock()).satisfied("ns/rs")


def test_expectations_wait_for_every_creation():
    exp = ControllerExpectations(FakeClock())
    exp.expect_creations("ns/rs", 3)
    for _ in range(2):
        exp.creation_observed("ns/rs")
        assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")


def test_expectations_count_each_deleted_pod_once():
    exp = ControllerExpectations(FakeClock())
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # terminating, then gone: one deletion
    exp.deletion_observed("ns/rs", "ns/other")  # not one we deleted
    assert not exp.satisfied("ns/rs")
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")


def test_expectations_expire_after_five_minutes():
    clock = FakeClock()
    exp = ControllerExpectations(clock)
    exp.expect_creations("ns/rs", 1)
    clock.advance(299)
    assert not exp.satisfied("ns/rs")
    clock.advance(2)
    assert exp.satisfied("ns/rs")


def test_expectations_are_replaced_and_deleted():
    exp = ControllerExpectations(FakeClock())
    exp.expect_creations("ns/rs", 2)
    exp.expect_deletions("ns/rs", ["ns/a"])
    assert exp.get("ns/rs") == (0, 1)
    exp.delete("ns/rs")
    assert exp.get("ns/rs") is None and exp.satisfied("ns/rs")


def test_expectations_ignore_observations_without_expectations():
    exp = ControllerExpectations(FakeClock())
    exp.creation_observed("ns/rs")
    exp.deletion_observed("ns/rs", "ns/a")
    assert exp.get("ns/rs") is None
