"""Rules for ResourceQuota (Kubernetes' ValidateResourceQuota): only the
resources the API server can count, each a valid non-negative quantity,
object counts whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.apiserver.validation_common import Errors, invalid, quantity_value, unsupported

QUOTA_RESOURCES = ("cpu", "memory", "pods", "requests.cpu", "requests.memory")
"""What the quota admission can count: the pod count and the sum of the
pods' container requests ("cpu" is Kubernetes' synonym of "requests.cpu")."""

INTEGER_RESOURCES = frozenset({"pods"})


def validate_resource_quota(quota: Any, old: Any | None) -> Errors:
    return resource_list(quota.spec.hard, "spec.hard")


def validate_resource_quota_status(quota: Any, old: Any) -> Errors:
    return (resource_list(quota.status.hard, "status.hard")
            + resource_list(quota.status.used, "status.used"))


def resource_list(values: Mapping[str, str], path: str) -> Errors:
    errs: Errors = []
    for name in sorted(values):
        p = f"{path}[{name}]"
        if name not in QUOTA_RESOURCES:
            errs.append(unsupported(p, name, QUOTA_RESOURCES))
            continue
        problems, value = _quantity(p, values[name])
        errs += problems
        if value is not None and name in INTEGER_RESOURCES and value.denominator != 1:
            errs.append(invalid(p, values[name], "must be an integer"))
    return errs


def _quantity(path: str, text: str) -> tuple[Errors, Any]:
    try:
        return quantity_value(path, text)
    except ValueError:  # e.g. more digits than int() converts
        return [invalid(path, text, "must be a valid quantity")], None
