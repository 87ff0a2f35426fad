from __future__ import annotations

import asyncio

from services.kubelet.podworkers import PodWorkers
from services.machinery.clock import FakeClock


async def _until(pred, steps: int = 200) -> None:
    for _ in range(steps):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_podworkers_merge_updates_during_a_sync_into_one_more_sync():
    clock = FakeClock()
    gate = asyncio.Event()
    calls: list[str] = []

    async def sync(uid):
        calls.append(uid)
        if len(calls) == 1:
            await gate.wait()
        return None

    w = PodWorkers(sync, clock=clock)
    w.update("a")
    await _until(lambda: calls == ["a"])
    w.update("a")
    w.update("a")
    gate.set()
    await _until(lambda: "a" not in w)
    assert calls == ["a", "a"]


async def test_podworkers_resync_after_the_returned_delay():
    clock = FakeClock()
    calls: list[float] = []

    async def sync(uid):
        calls.append(clock.now())
        return 5.0 if len(calls) < 3 else None

    w = PodWorkers(sync, clock=clock)
    w.update("a")
    await clock.wait_for_sleepers(1)
    clock.advance(5)
    await clock.wait_for_sleepers(1)
    clock.advance(5)
    await _until(lambda: "a" not in w)
    assert calls == [0.0, 5.0, 10.0]


async def test_podworkers_failures_are_retried_with_backoff():
    clock = FakeClock()
    calls: list[float] = []

    async def sync(uid):
        calls.append(clock.now())
        if len(calls) < 3:
            raise RuntimeError("boom")
        return None

    w = PodWorkers(sync, clock=clock, error_backoff=(1.0, 10.0))
    w.update("a")
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 1.0
    clock.advance(1)
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 3.0      # doubled
    clock.advance(2)
    await _until(lambda: "a" not in w)
    assert len(calls) == 3


async def test_podworkers_pods_run_in_parallel_and_stop_cancels():
    clock = FakeClock()
    running: set[str] = set()
    forever = asyncio.Event()

    async def sync(uid):
        running.add(uid)
        await forever.wait()

    w = PodWorkers(sync, clock=clock)
    for uid in "abc":
        w.update(uid)
    await _until(lambda: running == set("abc"))
    assert sorted(w.uids()) == ["a", "b", "c"]
    await w.stop()
    assert len(w) == 0
    w.update("d")
    assert "d" not in w
