"""Per-user request limits: a token bucket of requests per second and a
cap on open watches, so that one user — a runaway script, a compromised
node — cannot starve everyone else. Kubernetes does this with API
Priority and Fairness; like its ``exempt`` priority level, members of
system:masters are not limited.

Pure bookkeeping over an injected clock; the server turns a refusal into
RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.apiserver.authz.attributes import MASTERS, UserInfo

_IDLE_BUCKETS_KEPT = 10_000


class RequestRateLimiter:
    """``qps`` requests per second per user, with bursts up to ``burst``.
    qps <= 0 turns it off."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.qps, self.burst, self.clock = qps, max(1, burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # user -> (tokens, last)

    def allow(self, user: UserInfo) -> bool:
        if self.qps <= 0 or MASTERS in user.groups:
            return True
        now = self.clock()
        tokens, last = self._buckets.get(user.name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.qps)
        if tokens < 1.0:
            self._buckets[user.name] = (tokens, now)
            return False
        self._buckets[user.name] = (tokens - 1.0, now)
        if len(self._buckets) > _IDLE_BUCKETS_KEPT:
            self._forget_full(now)
        return True

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing."""
        for name, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.qps >= self.burst:
                del self._buckets[name]


class WatchCounter:
    """Open watches per user, at most ``limit`` each (0: no limit)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, user: UserInfo) -> bool:
        if self.limit <= 0 or MASTERS in user.groups:
            return True
        count = self.open.get(user.name, 0)
        if count >= self.limit:
            return False
        self.open[user.name] = count + 1
        return True

    def release(self, user: UserInfo) -> None:
        count = self.open.get(user.name, 0)
        if count <= 1:
            self.open.pop(user.name, None)
        else:
            self.open[user.name] = count - 1
