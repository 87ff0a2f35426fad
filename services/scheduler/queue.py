"""The scheduling queue: kube-scheduler's PriorityQueue in three parts.

* activeQ: pods ready to be tried, a heap ordered by priority (highest
  first) then by when they entered the queue (oldest first).
* backoffQ: pods that failed recently and wait out their backoff — 1 s
  after the first attempt, doubling per attempt, capped at 10 s — before
  going back to activeQ (:meth:`SchedulingQueue.flush_backoff_completed`).
* unschedulable pool: pods that fit nowhere. Nothing will change for them
  until the cluster does, so they stay parked until an event that could
  make them fit (a node added or changed, a pod deleted:
  :meth:`SchedulingQueue.move_all_to_active_or_backoff`) or until they
  have waited :attr:`max_unschedulable_duration` (60 s), in case an event
  was missed.

A move request that arrives while a pod is being tried must not be lost:
the queue counts scheduling cycles, remembers the cycle of the last move
request, and a pod that fails in a cycle that started before a move
request goes to backoffQ instead of the unschedulable pool.

Everything is keyed by ``namespace/name``; a pod is in at most one part.
Time comes from an injected clock, so tests drive backoff without sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
from typing import Any

from services.machinery.clock import Clock, RealClock
from services.scheduler.nodeinfo import PodInfo

log = logging.getLogger(__name__)

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_UNSCHEDULABLE_DURATION = 60.0
BACKOFF_FLUSH_PERIOD = 1.0
UNSCHEDULABLE_FLUSH_PERIOD = 30.0

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"

# Cluster events that may make an unschedulable pod schedulable.
NODE_ADD = "NodeAdd"
NODE_UPDATE = "NodeUpdate"
ASSIGNED_POD_DELETE = "AssignedPodDelete"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"


@dataclasses.dataclass(eq=False, slots=True)
class QueuedPodInfo:
    """A pod in the queue with its scheduling history."""

    pod_info: PodInfo
    timestamp: float  # when it last entered the queue
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    seq: int = 0  # the heap entry that is current (older entries are stale)

    @property
    def key(self) -> str:
        return self.pod_info.key


def pod_updated(old: Any, new: Any) -> bool:
    """Whether a pod changed in a way that could change where it fits:
    anything but status, resourceVersion, generation and finalizers
    (kube-scheduler's isPodUpdated). Status writes, such as our own
    PodScheduled condition, do not count."""
    if old.spec != new.spec:
        return True
    a, b = old.metadata, new.metadata
    return (a.labels != b.labels or a.annotations != b.annotations
            or list(a.owner_references) != list(b.owner_references)
            or a.HasField("deletion_timestamp") != b.HasField("deletion_timestamp"))


class SchedulingQueue:
    def __init__(self, clock: Clock | None = None, *,
                 initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
                 max_backoff: float = DEFAULT_MAX_BACKOFF,
                 max_unschedulable_duration: float = DEFAULT_MAX_UNSCHEDULABLE_DURATION):
        self.clock = clock or RealClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_duration = max_unschedulable_duration
        self._active: list[tuple[int, float, int, QueuedPodInfo]] = []  # (-prio, ts, seq, info)
        self._active_items: dict[str, QueuedPodInfo] = {}
        self._backoff: list[tuple[float, int, QueuedPodInfo]] = []  # (expiry, seq, info)
        self._backoff_items: dict[str, QueuedPodInfo] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._seq = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._closed = False
        self.scheduling_cycle = 0
        self.move_request_cycle = -1

    # -- inspection ---------------------------------------------------------------

    def lengths(self) -> dict[str, int]:
        return {ACTIVE: len(self._active_items), BACKOFF: len(self._backoff_items),
                UNSCHEDULABLE: len(self._unschedulable)}

    def where(self, key: str) -> str | None:
        """Which part of the queue holds ``key`` (None: none of them)."""
        if key in self._active_items:
            return ACTIVE
        if key in self._backoff_items:
            return BACKOFF
        if key in self._unschedulable:
            return UNSCHEDULABLE
        return None

    def get(self, key: str) -> QueuedPodInfo | None:
        return (self._active_items.get(key) or self._backoff_items.get(key)
                or self._unschedulable.get(key))

    def __len__(self) -> int:
        return len(self._active_items) + len(self._backoff_items) + len(self._unschedulable)

    def __contains__(self, key: str) -> bool:
        return self.where(key) is not None

    # -- the parts ------------------------------------------------------------------

    def _push_active(self, info: QueuedPodInfo) -> None:
        info.seq = next(self._seq)
        self._active_items[info.key] = info
        heapq.heappush(self._active, (-info.pod_info.priority, info.timestamp, info.seq, info))
        self._wakeup.set()

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        info.seq = next(self._seq)
        self._backoff_items[info.key] = info
        heapq.heappush(self._backoff, (self.backoff_expiry(info), info.seq, info))

    def _remove(self, key: str) -> QueuedPodInfo | None:
        """Take ``key`` out of whichever part holds it (heap entries go
        stale and are skipped when they surface)."""
        return (self._active_items.pop(key, None) or self._backoff_items.pop(key, None)
                or self._unschedulable.pop(key, None))

    def backoff_duration(self, info: QueuedPodInfo) -> float:
        """1 s for the first attempt, doubling per attempt, capped at 10 s."""
        if info.attempts <= 0:
            return 0.0
        duration = self.initial_backoff * 2 ** min(info.attempts - 1, 30)
        return min(duration, self.max_backoff)

    def backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + self.backoff_duration(info)

    def is_backing_off(self, info: QueuedPodInfo) -> bool:
        return self.backoff_expiry(info) > self.clock.now()

    # -- informer-driven changes ---------------------------------------------------------

    def add(self, pod_info: PodInfo) -> None:
        """A new pending pod: straight to activeQ (replacing any entry)."""
        old = self._remove(pod_info.key)
        info = QueuedPodInfo(pod_info, self.clock.now())
        if old is not None:
            info.attempts = old.attempts
            info.initial_attempt_timestamp = old.initial_attempt_timestamp
        self._push_active(info)

    def update(self, old_pod: Any | None, pod_info: PodInfo) -> None:
        """A pending pod changed. In activeQ or backoffQ it is updated in
        place; in the unschedulable pool a change that could matter moves it
        out (to backoffQ if still backing off); a pod in no queue (being
        tried, or binding) is added to activeQ, and the cycle that pops it
        will skip it if it is assumed by then."""
        key = pod_info.key
        if key in self._active_items:
            info = self._active_items.pop(key)
            info.pod_info = pod_info
            self._push_active(info)
            return
        if key in self._backoff_items:
            info = self._backoff_items.pop(key)
            info.pod_info = pod_info
            self._push_backoff(info)
            return
        info = self._unschedulable.get(key)
        if info is not None:
            info.pod_info = pod_info
            if old_pod is None or pod_updated(old_pod, pod_info.pod):
                del self._unschedulable[key]
                if self.is_backing_off(info):
                    self._push_backoff(info)
                else:
                    self._push_active(info)
            return
        self._push_active(QueuedPodInfo(pod_info, self.clock.now()))

    def delete(self, key: str) -> None:
        self._remove(key)

    # -- the scheduling loop's side ---------------------------------------------------------

    async def pop(self) -> QueuedPodInfo:
        """The next pod to try, waiting for one; raises asyncio.CancelledError
        when closed. Each pop starts a scheduling cycle and counts an attempt."""
        while True:
            if self._closed:
                raise asyncio.CancelledError("scheduling queue closed")
            info = self._pop_active()
            if info is not None:
                self.scheduling_cycle += 1
                info.attempts += 1
                if info.initial_attempt_timestamp is None:
                    info.initial_attempt_timestamp = self.clock.now()
                return info
            self._wakeup.clear()
            await self._wakeup.wait()

    def pop_nowait(self) -> QueuedPodInfo | None:
        """Like :meth:`pop` but None when activeQ is empty (for tests)."""
        info = self._pop_active()
        if info is not None:
            self.scheduling_cycle += 1
            info.attempts += 1
            if info.initial_attempt_timestamp is None:
                info.initial_attempt_timestamp = self.clock.now()
        return info

    def _pop_active(self) -> QueuedPodInfo | None:
        while self._active:
            _, _, seq, info = heapq.heappop(self._active)
            current = self._active_items.get(info.key)
            if current is info and info.seq == seq:
                del self._active_items[info.key]
                return info
        return None

    def add_unschedulable_if_not_present(self, info: QueuedPodInfo, pod_cycle: int) -> None:
        """Park a pod that fit nowhere, unless it is queued again already.

        If a move request came in since the pod's cycle began, the event it
        stood for may be exactly what the pod needed: back it off instead.
        """
        if info.key in self:
            return
        info.timestamp = self.clock.now()
        if self.move_request_cycle >= pod_cycle:
            self._push_backoff(info)
        else:
            self._unschedulable[info.key] = info

    def add_backoff_if_not_present(self, info: QueuedPodInfo) -> None:
        """Retry after the backoff: for errors (a failed binding), where the
        pod may well fit and only the attempt went wrong."""
        if info.key in self:
            return
        info.timestamp = self.clock.now()
        self._push_backoff(info)

    # -- cluster events and the periodic flushes ----------------------------------------------

    def move_all_to_active_or_backoff(self, event: str) -> int:
        """Every unschedulable pod gets another chance (backoffQ while its
        backoff lasts); returns how many moved."""
        moved = list(self._unschedulable.values())
        self._unschedulable.clear()
        for info in moved:
            if self.is_backing_off(info):
                self._push_backoff(info)
            else:
                self._push_active(info)
        self.move_request_cycle = self.scheduling_cycle
        if moved:
            log.debug("moved %d unschedulable pods on %s", len(moved), event)
        return len(moved)

    def flush_backoff_completed(self) -> int:
        """Move pods whose backoff has expired to activeQ; returns how many."""
        now = self.clock.now()
        moved = 0
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, info = heapq.heappop(self._backoff)
            if self._backoff_items.get(info.key) is info and info.seq == seq:
                del self._backoff_items[info.key]
                self._push_active(info)
                moved += 1
        return moved

    def flush_unschedulable_left_over(self) -> int:
        """Pods parked longer than max_unschedulable_duration go back in
        play, in case the event that would have freed them was missed."""
        now = self.clock.now()
        stale = [info for info in self._unschedulable.values()
                 if now - info.timestamp >= self.max_unschedulable_duration]
        for info in stale:
            del self._unschedulable[info.key]
            if self.is_backing_off(info):
                self._push_backoff(info)
            else:
                self._push_active(info)
        return len(stale)

    async def run(self) -> None:
        """The periodic flushes, until cancelled: backoffQ every second,
        the unschedulable pool every 30 s."""
        async def every(period: float, flush) -> None:
            while True:
                await self.clock.sleep(period)
                flush()
        await asyncio.gather(every(BACKOFF_FLUSH_PERIOD, self.flush_backoff_completed),
                             every(UNSCHEDULABLE_FLUSH_PERIOD, self.flush_unschedulable_left_over))

    def close(self) -> None:
        """Wake and stop every pop."""
        self._closed = True
        self._wakeup.set()


__all__ = [
    "ACTIVE", "ASSIGNED_POD_DELETE", "BACKOFF", "NODE_ADD", "NODE_UPDATE", "QueuedPodInfo",
    "SchedulingQueue", "UNSCHEDULABLE", "pod_updated",
]
