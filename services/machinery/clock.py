"""Clocks, injected so that time-driven code is tested without sleeping.

Everything in the machinery that waits (delayed requeues, backoff, resyncs,
lease renewals) asks a :class:`Clock` for the time and for sleeps. Production
code gets :class:`RealClock`; tests get :class:`FakeClock`, whose
:meth:`FakeClock.advance` moves time forward and wakes exactly the sleepers
that are due, in deadline order, so a test decides when time passes.
"""

from __future__ import annotations

import asyncio
import datetime
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")

_EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


class Clock(Protocol):
    """Monotonic time for intervals, wall time for timestamps, and sleep."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""

    def wall(self) -> datetime.datetime:
        """The current UTC time, for timestamps written to the API."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class RealClock:
    """The process's clocks: ``time.monotonic``, UTC now and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to.

    ``sleep`` registers a waiter and blocks until :meth:`advance` passes its
    deadline; ``sleep(0)`` (or negative) just yields to the loop. Wall time
    moves with monotonic time from ``wall_start``.
    """

    def __init__(self, start: float = 0.0, wall_start: datetime.datetime = _EPOCH):
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._changed: asyncio.Event | None = None

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime.datetime:
        return self._wall_start + datetime.timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        self._notify()
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has come.

        The woken coroutines run when the caller next yields to the loop.
        """
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """The earliest pending sleeper's wake-up time, if any."""
        pending = [d for d, _, f in self._sleepers if not f.done()]
        return min(pending) if pending else None

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Return once at least ``count`` sleeps are pending: the way a test
        knows the code under test has reached its wait, without sleeping."""
        while self.sleepers < count:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
            self._changed.clear()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()


async def wait_for(clock: Clock, awaitable: Awaitable[T], timeout: float | None) -> T:
    """Like :func:`asyncio.wait_for`, but the timeout is measured by ``clock``.

    Raises :class:`TimeoutError` (and cancels the awaitable) when ``timeout``
    of the clock's time passes first; ``None`` waits forever.
    """
    if timeout is None:
        return await awaitable
    if isinstance(clock, RealClock):
        return await asyncio.wait_for(awaitable, max(0.0, timeout))
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # noqa: BLE001 - the timeout is what the caller sees
        pass
    raise TimeoutError(f"timed out after {timeout}s")


__all__ = ["Clock", "FakeClock", "RealClock", "wait_for"]
