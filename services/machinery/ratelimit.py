"""Rate limiters for work queues, and a backoff helper for retry loops.

A rate limiter is client-go's small object (util/workqueue): ``when(item)``
says how long to wait before the item may be processed again and counts the
attempt, ``forget(item)`` clears its history once it succeeded, and
``num_requeues(item)`` says how many failures are on record. Controllers
compose them: per-item exponential backoff so one broken object does not
spin, and an overall token bucket so a storm of failures cannot flood the API
server.

:class:`Backoff` is the plain exponential-with-jitter delay every
reconnecting loop needs (the reflector, leader election, the kubelet).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Hashable
from typing import Protocol

from services.machinery.clock import Clock, RealClock


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """Seconds to wait before ``item`` is processed again (counts a requeue)."""

    def forget(self, item: Hashable) -> None:
        """Clear ``item``'s failure history."""

    def num_requeues(self, item: Hashable) -> int:
        """Failures on record for ``item``."""


class ExponentialFailureRateLimiter:
    """``base * 2**failures``, capped at ``max``: client-go's
    ItemExponentialFailureRateLimiter."""

    def __init__(self, base: float = 0.005, max: float = 1000.0):  # noqa: A002 - client-go's name
        self.base = base
        self.max = max
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if exp >= 1024:  # 2**exp would overflow a float long before this
            return self.max
        return min(self.base * (2 ** exp), self.max)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """A token bucket shared by all items (client-go's BucketRateLimiter over
    golang.org/x/time/rate): ``burst`` tokens, refilled at ``qps``; each
    ``when`` takes a token, and once the bucket is empty the wait grows with
    the debt."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None):
        if qps <= 0:
            raise ValueError("qps must be positive")
        self.qps = qps
        self.burst = burst
        self.clock = clock or RealClock()
        self._tokens = float(burst)
        self._last = self.clock.now()

    def when(self, item: Hashable) -> float:
        now = self.clock.now()
        elapsed = max(0.0, now - self._last)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._last = now
        self._tokens -= 1
        return -self._tokens / self.qps if self._tokens < 0 else 0.0

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait any of ``limiters`` asks for; every limiter counts
    every attempt."""

    def __init__(self, *limiters: RateLimiter):
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: per-item 5 ms doubling to
    1000 s, and overall 10 qps with a burst of 100."""
    return MaxOfRateLimiter(
        ExponentialFailureRateLimiter(0.005, 1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )


class Backoff:
    """Exponential backoff with jitter for reconnect and retry loops.

    Each :meth:`next` returns ``d * (1 + jitter * random())`` where ``d``
    starts at ``initial`` and is multiplied by ``factor`` after every call,
    never above ``cap``. :meth:`reset` starts over after a success; and if
    ``reset_after`` seconds pass between two calls (the failures were far
    apart, so the thing mostly works), ``next`` starts over by itself, like
    client-go's exponential backoff manager.
    """

    def __init__(self, initial: float = 0.8, factor: float = 2.0, cap: float = 30.0,
                 jitter: float = 1.0, reset_after: float | None = 120.0,
                 clock: Clock | None = None,
                 random: Callable[[], float] = _random.random):
        if initial <= 0 or factor < 1 or cap < initial or jitter < 0:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, jitter >= 0")
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        self.reset_after = reset_after
        self.clock = clock or RealClock()
        self._random = random
        self._current = initial
        self._last: float | None = None
        self.attempts = 0

    def next(self) -> float:
        """The next delay, in seconds."""
        now = self.clock.now()
        if (self.reset_after is not None and self._last is not None
                and now - self._last > self.reset_after):
            self.reset()
        self._last = now
        delay = self._current
        self._current = min(self._current * self.factor, self.cap)
        self.attempts += 1
        if self.jitter:
            delay += delay * self.jitter * self._random()
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self._current = self.initial
        self.attempts = 0

    async def sleep(self) -> float:
        """Wait the next delay on the clock; returns it."""
        delay = self.next()
        await self.clock.sleep(delay)
        return delay


__all__ = [
    "Backoff", "BucketRateLimiter", "ExponentialFailureRateLimiter", "MaxOfRateLimiter",
    "RateLimiter", "default_controller_rate_limiter",
]
