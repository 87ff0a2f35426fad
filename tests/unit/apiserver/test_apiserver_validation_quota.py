"""Validation of ResourceQuota: only countable resources, valid non-negative
quantities, whole pod counts; the same rules for its status."""

from __future__ import annotations

import pytest

from services.apiserver.validation import validate, validate_status
from tests.support import objects


def _errors(hard):
    return [(e.path, e.message) for e in validate(objects.resource_quota("q", hard=hard))]


def test_validation_quota_accepts_every_supported_resource():
    assert _errors({"pods": "10", "cpu": "2", "memory": "1Gi", "requests.cpu": "500m",
                    "requests.memory": "128974848"}) == []
    assert _errors({}) == []
    assert _errors({"pods": "0"}) == []


def test_validation_quota_refuses_other_resources_with_the_allowed_list():
    assert _errors({"limits.cpu": "1"}) == [(
        "spec.hard[limits.cpu]",
        'Unsupported value: "limits.cpu": supported values: "cpu", "memory", "pods", '
        '"requests.cpu", "requests.memory"')]


@pytest.mark.parametrize(("hard", "path", "fragment"), [
    ({"cpu": "-1"}, "spec.hard[cpu]", 'Invalid value: "-1": must be greater than or equal to 0'),
    ({"memory": "lots"}, "spec.hard[memory]", 'Invalid value: "lots": must match the regex'),
    ({"requests.cpu": ""}, "spec.hard[requests.cpu]", 'Invalid value: ""'),
    ({"pods": "1.5"}, "spec.hard[pods]", 'Invalid value: "1.5": must be an integer'),
    ({"pods": "500m"}, "spec.hard[pods]", "must be an integer"),
    ({"pods": "9" * 5000}, "spec.hard[pods]", "Invalid value"),
])
def test_validation_quota_values(hard, path, fragment):
    errs = _errors(hard)
    assert len(errs) == 1 and errs[0][0] == path and fragment in errs[0][1], errs


def test_validation_quota_whole_pods_in_other_notations():
    assert _errors({"pods": "1k"}) == []
    assert _errors({"pods": "1e3"}) == []


def test_validation_quota_status_checked_too():
    old = objects.resource_quota("q", hard={"pods": "2"})
    new = objects.resource_quota("q", hard={"pods": "2"})
    new.status.hard["pods"] = "2"
    new.status.used["pods"] = "1"
    assert validate_status(new, old) == []
    new.status.used["pods"] = "-1"
    new.status.used["gpus"] = "1"
    messages = [(e.path, e.message) for e in validate_status(new, old)]
    assert [p for p, _ in messages] == ["status.used[gpus]", "status.used[pods]"], messages
