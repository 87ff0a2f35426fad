"""Expectations: what a controller has asked for and not yet seen.

A ReplicaSet controller that creates 10 pods will be woken by each of them
arriving through the watch, long before the 10th arrives; counting the pods
in its cache at that moment would make it create more. So before it writes
it records "expect 10 creations" for the ReplicaSet's key, every observed
create of a pod it controls lowers the count, and ``sync`` only manages
replicas again once the count is down to zero (Kubernetes'
ControllerExpectations in pkg/controller/controller_utils.go).

Deletions are tracked by pod key (UIDTrackingControllerExpectations): a
pod's deletion is counted once, whether it is seen as a deletionTimestamp
update or as the final delete. Expectations expire after ``ttl`` (5 minutes)
so a lost watch event cannot wedge a controller forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from services.machinery.clock import Clock, RealClock

log = logging.getLogger(__name__)

EXPECTATIONS_TIMEOUT = 300.0


@dataclasses.dataclass
class _Expectation:
    add: int
    delete: int
    timestamp: float
    pending_deletes: set[str] = dataclasses.field(default_factory=set)

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Per-controller-key counts of creations and deletions still expected."""

    def __init__(self, clock: Clock | None = None, ttl: float = EXPECTATIONS_TIMEOUT):
        self.clock = clock or RealClock()
        self.ttl = ttl
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """Whether the controller may act on its cache for ``key``: nothing
        expected is outstanding, the expectations expired, or there never
        were any (a new controller, or one that just restarted)."""
        exp = self._items.get(key)
        if exp is None or exp.fulfilled():
            return True
        if self.clock.now() - exp.timestamp > self.ttl:
            log.info("expectations for %s expired with %d adds and %d deletes outstanding",
                     key, exp.add, exp.delete)
            return True
        return False

    def expect_creations(self, key: str, count: int) -> None:
        """Replace ``key``'s expectations with ``count`` creations."""
        self._items[key] = _Expectation(add=count, delete=0, timestamp=self.clock.now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Replace ``key``'s expectations with the deletion of these pods."""
        pending = set(pod_keys)
        self._items[key] = _Expectation(add=0, delete=len(pending), timestamp=self.clock.now(),
                                        pending_deletes=pending)

    def creation_observed(self, key: str) -> None:
        """One expected pod has appeared (or a create will never happen)."""
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """``pod_key`` is being (or has been) deleted; counted once per pod,
        and only if its deletion was expected."""
        exp = self._items.get(key)
        if exp is not None and pod_key in exp.pending_deletes:
            exp.pending_deletes.discard(pod_key)
            exp.delete -= 1

    def delete(self, key: str) -> None:
        """Forget ``key`` (its controller object is gone)."""
        self._items.pop(key, None)

    def get(self, key: str) -> tuple[int, int] | None:
        """Outstanding ``(adds, deletes)`` for ``key``, if any are recorded."""
        exp = self._items.get(key)
        return None if exp is None else (exp.add, exp.delete)


__all__ = ["EXPECTATIONS_TIMEOUT", "ControllerExpectations"]
