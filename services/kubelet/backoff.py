"""Per-key exponential backoff for container restarts and image pulls.

Kubernetes' flowcontrol.Backoff, which both the restart (CrashLoopBackOff)
and the image-pull (ImagePullBackOff) logic use: the first failure of a key
is retried at once and sets a delay of ``initial``; every further failure
within the window doubles it up to ``cap``. A key whose last failure came
more than ``2 * cap`` after the previous backoff update is considered stable
and starts over — with the defaults (10 s doubling to 5 min), a container
that ran ten minutes before crashing is restarted at once again.

Times are wall-clock seconds (the runtime reports a container's finish time
as wall time), taken from an injected clock so tests need not sleep.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Hashable

from services.machinery.clock import Clock, RealClock

CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_CAP = 300.0


def wall_seconds(when: datetime.datetime | float) -> float:
    return when.timestamp() if isinstance(when, datetime.datetime) else float(when)


@dataclasses.dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    """Backoff state per key (e.g. ``(pod uid, container name)``)."""

    def __init__(self, initial: float = CRASH_BACKOFF_INITIAL, cap: float = CRASH_BACKOFF_CAP,
                 clock: Clock | None = None):
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.clock = clock or RealClock()
        self._entries: dict[Hashable, _Entry] = {}

    def _now(self) -> float:
        return self.clock.wall().timestamp()

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > 2 * self.cap

    def get(self, key: Hashable) -> float:
        """The key's current delay (0 if it has none)."""
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: Hashable, event_time: datetime.datetime | float) -> float:
        """Record a retry of ``key`` for a failure at ``event_time``: start at
        ``initial`` (new or stable key) or double; returns the new delay."""
        event = wall_seconds(event_time)
        entry = self._entries.get(key)
        if entry is None or self._expired(event, entry):
            entry = self._entries[key] = _Entry(self.initial, 0.0)
        else:
            entry.backoff = min(entry.backoff * 2, self.cap)
        entry.last_update = self._now()
        return entry.backoff

    def in_backoff_since(self, key: Hashable, event_time: datetime.datetime | float) -> bool:
        """Whether a retry of ``key`` must still wait, counting the delay from
        ``event_time`` (for restarts: when the container last exited)."""
        return self.remaining_since(key, event_time) > 0

    def remaining_since(self, key: Hashable, event_time: datetime.datetime | float) -> float:
        """Seconds left before ``key`` may be retried, counted from ``event_time``."""
        entry = self._entries.get(key)
        event = wall_seconds(event_time)
        if entry is None or self._expired(event, entry):
            return 0.0
        return max(0.0, entry.backoff - (self._now() - event))

    def in_backoff_since_update(self, key: Hashable) -> bool:
        """Whether ``key`` must still wait, counting from its last :meth:`next`
        (for image pulls, whose failures have no runtime timestamp)."""
        return self.remaining_since_update(key) > 0

    def remaining_since_update(self, key: Hashable) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.backoff - (self._now() - entry.last_update))

    def reset(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def forget_where(self, predicate) -> None:
        """Drop the keys ``predicate(key)`` accepts (a deleted pod's)."""
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]

    def gc(self) -> None:
        """Drop entries that have been stable for ``2 * cap``."""
        now = self._now()
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.cap]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["Backoff", "CRASH_BACKOFF_CAP", "CRASH_BACKOFF_INITIAL", "wall_seconds"]
