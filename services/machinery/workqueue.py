"""The controllers' work queue: client-go's contract, in asyncio.

* FIFO: keys are handed out in the order they were first added.
* Never the same key twice at once: a key being processed is not handed to
  another worker until :meth:`WorkQueue.done`.
* Repeated adds are merged: adding a key already waiting does nothing; adding
  a key being processed marks it dirty, and it is queued again at ``done``.
* Clean shutdown: no more adds are accepted, keys already queued are still
  handed out, and getters waiting on an empty queue get :class:`ShutDown`.

On top of that, :meth:`WorkQueue.add_after` delays a key on the injected
clock (client-go's delaying queue) and :meth:`WorkQueue.add_rate_limited`
delays it as the rate limiter says (the rate-limiting queue). Handlers only
enqueue keys; the work happens in :func:`run_workers`, which calls one
``sync(key)`` that reads the current cached state.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

from prometheus_client import Counter, Gauge, Histogram

from services.machinery.clock import Clock, RealClock
from services.machinery.errors import ApiError
from services.machinery.ratelimit import RateLimiter, default_controller_rate_limiter

log = logging.getLogger(__name__)

# Kubernetes' workqueue metrics (k8s.io/component-base/metrics/prometheus/
# workqueue), created once per process and labelled by queue name so any
# number of queues share them in the default registry.
_BUCKETS = tuple(1e-8 * 10 ** i for i in range(10))
DEPTH = Gauge("workqueue_depth", "Current depth of workqueue", ["name"])
ADDS = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", ["name"])
RETRIES = Counter("workqueue_retries_total", "Total number of retries handled by workqueue",
                  ["name"])
QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.",
    ["name"], buckets=_BUCKETS)
WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.",
    ["name"], buckets=_BUCKETS)


class ShutDown(Exception):
    """The queue is shut down and empty: the worker should exit."""


class _Metrics:
    """Per-queue metric children and timing; a no-op for unnamed queues."""

    def __init__(self, name: str, clock: Clock):
        self.enabled = bool(name)
        self.clock = clock
        self._added_at: dict[Hashable, float] = {}
        self._started_at: dict[Hashable, float] = {}
        if self.enabled:
            self.depth = DEPTH.labels(name=name)
            self.adds = ADDS.labels(name=name)
            self.retries = RETRIES.labels(name=name)
            self.queue_duration = QUEUE_DURATION.labels(name=name)
            self.work_duration = WORK_DURATION.labels(name=name)

    def add(self, key: Hashable) -> None:
        if self.enabled:
            self.adds.inc()
            self.depth.inc()
            self._added_at.setdefault(key, self.clock.now())

    def get(self, key: Hashable) -> None:
        if self.enabled:
            now = self.clock.now()
            self.depth.dec()
            added = self._added_at.pop(key, None)
            if added is not None:
                self.queue_duration.observe(max(0.0, now - added))
            self._started_at[key] = now

    def done(self, key: Hashable) -> None:
        if self.enabled:
            started = self._started_at.pop(key, None)
            if started is not None:
                self.work_duration.observe(max(0.0, self.clock.now() - started))

    def retry(self) -> None:
        if self.enabled:
            self.retries.inc()


class WorkQueue:
    """A deduplicating FIFO of keys with delayed and rate-limited adds.

    ``name`` labels the Prometheus metrics (an empty name records none).
    ``rate_limiter`` decides :meth:`add_rate_limited` delays; it defaults to
    client-go's controller limiter. Not thread-safe: one event loop only.
    """

    def __init__(self, name: str = "", *, clock: Clock | None = None,
                 rate_limiter: RateLimiter | None = None):
        self.name = name
        self.clock = clock or RealClock()
        self.rate_limiter = rate_limiter or default_controller_rate_limiter(self.clock)
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False
        self._drained: asyncio.Event | None = None
        self._metrics = _Metrics(name, self.clock)
        # The delaying part: key -> when it is due, and a heap of (due, seq, key)
        # with stale entries skipped lazily.
        self._waiting: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._waiting_changed: asyncio.Event | None = None
        self._waiter_task: asyncio.Task[None] | None = None

    # -- the basic queue -------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """Queue ``key`` unless it is already waiting (merged) or the queue is
        shut down; a key being processed is queued again at :meth:`done`."""
        if self._shutting_down or key in self._dirty:
            return
        self._metrics.add(key)
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> Hashable:
        """The next key, waiting for one; raises :class:`ShutDown` once the
        queue is shut down and empty. The caller must call :meth:`done`."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name or "work queue")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the wake-up on to another getter
                else:
                    try:
                        self._getters.remove(waiter)
                    except ValueError:
                        pass
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        self._metrics.get(key)
        return key

    def done(self, key: Hashable) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again."""
        self._metrics.done(key)
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()
        elif not self._processing and self._drained is not None:
            self._drained.set()

    def len(self) -> int:
        """Keys waiting to be handed out (not delayed, not in processing)."""
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def processing(self) -> frozenset[Hashable]:
        """Keys handed out and not yet done."""
        return frozenset(self._processing)

    def shutdown(self) -> None:
        """Stop accepting adds, drop delayed keys and wake every waiting
        getter; keys already queued are still handed out."""
        self._shutting_down = True
        self._waiting.clear()
        self._heap.clear()
        if self._waiter_task is not None:
            self._waiter_task.cancel()
            self._waiter_task = None
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every key handed out is done."""
        self.shutdown()
        if not self._processing:
            return
        self._drained = asyncio.Event()
        await self._drained.wait()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- delays ------------------------------------------------------------------

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds of the clock have passed. If the
        key is already waiting, the earlier time wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self.clock.now() + delay
        current = self._waiting.get(key)
        if current is not None and current <= due:
            return
        self._waiting[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if self._waiter_task is None:
            self._waiting_changed = asyncio.Event()
            self._waiter_task = asyncio.get_running_loop().create_task(
                self._wait_loop(), name=f"workqueue-delay-{self.name}")
        elif self._waiting_changed is not None:
            self._waiting_changed.set()

    def delayed(self) -> int:
        """Keys waiting for their delay to pass."""
        return len(self._waiting)

    def _add_due(self) -> float | None:
        """Add every key that is due; return when the next one is."""
        now = self.clock.now()
        while self._heap:
            due, _, key = self._heap[0]
            if self._waiting.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier time
                continue
            if due > now:
                return due
            heapq.heappop(self._heap)
            del self._waiting[key]
            self.add(key)
        return None

    async def _wait_loop(self) -> None:
        assert self._waiting_changed is not None
        changed = self._waiting_changed
        while not self._shutting_down:
            next_due = self._add_due()
            changed.clear()
            if next_due is None:
                await changed.wait()
                continue
            sleep = asyncio.ensure_future(self.clock.sleep(next_due - self.clock.now()))
            poke = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({sleep, poke}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                poke.cancel()

    # -- rate limiting -------------------------------------------------------------

    def add_rate_limited(self, key: Hashable) -> None:
        """Add ``key`` after the rate limiter's delay (a retry)."""
        if self._shutting_down:
            return
        self._metrics.retry()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        """Clear ``key``'s retry history (it succeeded)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return self.rate_limiter.num_requeues(key)


async def run_workers(queue: WorkQueue, sync: Callable[[Hashable], Awaitable[None]],
                      workers: int = 1) -> None:
    """Run ``workers`` loops of get → ``sync(key)`` → forget on success or
    requeue with backoff on error → done, until the queue shuts down.

    Cancelling this cancels the workers. A failing sync is logged with its key
    (a traceback only when the error is not an API error, i.e. likely a bug).
    """
    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - every failure is retried
                log.error("%s: syncing %s failed (requeue %d): %s",
                          queue.name or "workqueue", key, queue.num_requeues(key) + 1,
                          err or type(err).__name__, exc_info=not isinstance(err, ApiError))
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    async with asyncio.TaskGroup() as group:
        for i in range(max(1, workers)):
            group.create_task(worker(), name=f"{queue.name or 'workqueue'}-worker-{i}")


__all__ = ["ShutDown", "WorkQueue", "run_workers"]
