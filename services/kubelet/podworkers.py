"""One worker task per pod, as the kubelet's podWorkers.

Each pod UID gets its own task, so a slow pod (an image pull, a long grace
period) never holds up another, and one pod's syncs never overlap. The
worker is level-triggered: :meth:`PodWorkers.update` only wakes it; it then
calls ``sync(uid)``, which reads the latest pod and runtime state, acts, and
returns when to sync again (seconds) or None when the pod is finished (gone
from both the API and the runtime) and its worker can end. Updates that
arrive during a sync are merged into one more sync. A sync that raises is
retried with backoff (1 s doubling to 10 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from services.machinery.clock import Clock, RealClock
from services.kubelet.runtime.base import RuntimeError_
from services.machinery.errors import ApiError

log = logging.getLogger(__name__)

# Failures of the outside world, logged in one line; anything else is a bug
# and gets its traceback.
EXPECTED = (ApiError, RuntimeError_, OSError, TimeoutError)

SyncFunc = Callable[[str], Awaitable[float | None]]


class _Worker:
    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.wake.set()
        self.task: asyncio.Task[None] | None = None
        self.failures = 0
        self.syncs = 0


class PodWorkers:
    def __init__(self, sync: SyncFunc, *, clock: Clock | None = None, name: str = "",
                 error_backoff: tuple[float, float] = (1.0, 10.0)):
        self.sync = sync
        self.clock = clock or RealClock()
        self.name = name
        self.error_backoff = error_backoff
        self._workers: dict[str, _Worker] = {}
        self._stopping = False

    def __contains__(self, uid: object) -> bool:
        return uid in self._workers

    def __len__(self) -> int:
        return len(self._workers)

    def uids(self) -> list[str]:
        return list(self._workers)

    def update(self, uid: str) -> None:
        """Sync the pod soon (starting its worker if it has none)."""
        if self._stopping:
            return
        worker = self._workers.get(uid)
        if worker is None:
            worker = self._workers[uid] = _Worker()
            worker.task = asyncio.get_running_loop().create_task(
                self._run(uid, worker), name=f"pod-worker-{self.name}-{uid}")
        worker.wake.set()

    async def _wait(self, worker: _Worker, delay: float) -> None:
        if worker.wake.is_set():
            return
        waits = [asyncio.ensure_future(worker.wake.wait()),
                 asyncio.ensure_future(self.clock.sleep(delay))]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _run(self, uid: str, worker: _Worker) -> None:
        try:
            while True:
                worker.wake.clear()
                try:
                    delay = await self.sync(uid)
                    worker.failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - every failure is retried
                    worker.failures += 1
                    first, cap = self.error_backoff
                    delay = min(first * 2 ** (worker.failures - 1), cap)
                    log.error("syncing pod %s failed (retry in %.0fs): %s", uid, delay,
                              err or type(err).__name__, exc_info=not isinstance(err, EXPECTED))
                worker.syncs += 1
                if delay is None:
                    if worker.wake.is_set() and not self._stopping:
                        continue
                    return
                await self._wait(worker, delay)
        finally:
            if self._workers.get(uid) is worker:
                del self._workers[uid]

    async def stop(self) -> None:
        """Cancel every worker (the kubelet is shutting down: containers stay)."""
        self._stopping = True
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()


__all__ = ["PodWorkers"]
