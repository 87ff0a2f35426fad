"""The work queue's contract, driven deterministically (FakeClock, no sleeps)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.machinery.clock import FakeClock
from services.machinery.ratelimit import ExponentialFailureRateLimiter
from services.machinery.workqueue import ShutDown, WorkQueue, run_workers

SAFETY = 5  # seconds: a safety net against hangs, never a synchronisation


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (yielding to the loop; no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def get(queue: WorkQueue):
    return await asyncio.wait_for(queue.get(), SAFETY)


def queue_with(clock: FakeClock | None = None, base: float = 1.0) -> WorkQueue:
    return WorkQueue(clock=clock or FakeClock(),
                     rate_limiter=ExponentialFailureRateLimiter(base=base, max=100))


async def test_workqueue_hands_out_keys_in_fifo_order():
    q = queue_with()
    for key in ("a", "b", "c"):
        q.add(key)
    assert [await get(q) for _ in range(3)] == ["a", "b", "c"]


async def test_workqueue_merges_adds_of_a_queued_key():
    q = queue_with()
    q.add("a")
    q.add("b")
    q.add("a")
    assert q.len() == len(q) == 2
    assert [await get(q), await get(q)] == ["a", "b"]
    assert q.len() == 0


async def test_workqueue_key_readded_while_processing_is_queued_after_done():
    q = queue_with()
    q.add("a")
    assert await get(q) == "a"
    q.add("a")
    q.add("a")
    assert q.len() == 0  # not handed out while being processed
    q.done("a")
    assert q.len() == 1
    assert await get(q) == "a"
    q.done("a")
    assert q.len() == 0


async def test_workqueue_never_gives_one_key_to_two_workers_at_once():
    q = queue_with()
    q.add("a")
    first = await get(q)
    second = asyncio.ensure_future(q.get())
    q.add("a")
    await settle()
    assert not second.done()
    assert q.processing() == {"a"}
    q.done(first)
    assert await asyncio.wait_for(second, SAFETY) == "a"


async def test_workqueue_wakes_a_waiting_getter_on_add():
    q = queue_with()
    waiting = asyncio.ensure_future(q.get())
    await settle()
    assert not waiting.done()
    q.add("x")
    assert await asyncio.wait_for(waiting, SAFETY) == "x"


async def test_workqueue_shutdown_wakes_every_getter_with_shutdown():
    q = queue_with()
    getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    for getter in getters:
        with pytest.raises(ShutDown):
            await asyncio.wait_for(getter, SAFETY)
    assert q.shutting_down


async def test_workqueue_shutdown_still_hands_out_queued_keys_but_takes_no_more():
    q = queue_with()
    q.add("a")
    q.shutdown()
    q.add("b")
    assert await get(q) == "a"
    with pytest.raises(ShutDown):
        await get(q)


async def test_workqueue_cancelled_getter_passes_its_wakeup_on():
    q = queue_with()
    first = asyncio.ensure_future(q.get())
    await settle()
    second = asyncio.ensure_future(q.get())
    await settle()
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, SAFETY) == "a"


async def test_workqueue_add_after_releases_keys_in_due_order():
    clock = FakeClock()
    q = queue_with(clock)
    q.add_after("late", 3)
    q.add_after("early", 1)
    q.add_after("now", 0)
    assert await get(q) == "now"
    assert q.delayed() == 2
    await clock.wait_for_sleepers(1)
    clock.advance(1)
    assert await get(q) == "early"
    clock.advance(1)
    await settle()
    assert q.len() == 0
    clock.advance(1)
    assert await get(q) == "late"
    assert q.delayed() == 0


async def test_workqueue_add_after_keeps_the_earlier_time_for_a_key():
    clock = FakeClock()
    q = queue_with(clock)
    q.add_after("a", 10)
    q.add_after("a", 2)
    q.add_after("a", 5)
    assert q.delayed() == 1
    await clock.wait_for_sleepers(1)
    clock.advance(2)
    assert await get(q) == "a"
    q.done("a")
    clock.advance(10)
    await settle()
    assert q.len() == 0  # the superseded times add nothing


async def test_workqueue_add_rate_limited_backs_off_per_key():
    clock = FakeClock()
    q = queue_with(clock, base=1.0)
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # 1 s pending; 2 s asked: the earlier wins
    assert q.num_requeues("a") == 2
    await clock.wait_for_sleepers(1)
    clock.advance(0.5)
    await settle()
    assert q.len() == 0
    clock.advance(0.5)
    assert await get(q) == "a"
    q.done("a")
    q.add_rate_limited("a")  # third failure: 4 s
    await clock.wait_for_sleepers(1)
    clock.advance(3.9)
    await settle()
    assert q.len() == 0
    clock.advance(0.1)
    assert await get(q) == "a"
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_workqueue_shutdown_drops_delayed_keys():
    clock = FakeClock()
    q = queue_with(clock)
    q.add_after("a", 1)
    q.shutdown()
    clock.advance(5)
    await settle()
    assert q.len() == 0
    with pytest.raises(ShutDown):
        await get(q)


async def test_workqueue_shut_down_with_drain_waits_for_keys_in_processing():
    q = queue_with()
    q.add("a")
    key = await get(q)
    drain = asyncio.ensure_future(q.shut_down_with_drain())
    await settle()
    assert not drain.done()
    q.done(key)
    await asyncio.wait_for(drain, SAFETY)


async def test_run_workers_forgets_on_success_and_requeues_failures_with_backoff():
    clock = FakeClock()
    q = queue_with(clock, base=1.0)
    calls: list[str] = []
    failures = {"bad": 2}
    all_done = asyncio.Event()

    async def sync(key):
        calls.append(key)
        if failures.get(key):
            failures[key] -= 1
            raise RuntimeError(f"{key} is broken")
        if calls.count("bad") == 3:
            all_done.set()

    q.add("good")
    q.add("bad")
    workers = asyncio.ensure_future(run_workers(q, sync, workers=2))
    await clock.wait_for_sleepers(1)
    assert q.num_requeues("bad") == 1
    assert q.num_requeues("good") == 0
    clock.advance(1)  # first retry after 1 s
    while q.num_requeues("bad") < 2:
        await settle(1)
    await clock.wait_for_sleepers(1)
    clock.advance(2)  # second retry after 2 s; succeeds
    await asyncio.wait_for(all_done.wait(), SAFETY)
    await settle()
    assert q.num_requeues("bad") == 0  # forgotten on success
    assert calls == ["good", "bad", "bad", "bad"]
    q.shutdown()
    await asyncio.wait_for(workers, SAFETY)


async def test_run_workers_never_syncs_one_key_concurrently():
    q = queue_with()
    running: set[str] = set()
    overlaps: list[str] = []
    release = asyncio.Event()
    seen = 0

    async def sync(key):
        nonlocal seen
        if key in running:
            overlaps.append(key)
        running.add(key)
        seen += 1
        await release.wait()
        running.discard(key)

    workers = asyncio.ensure_future(run_workers(q, sync, workers=4))
    q.add("a")
    await settle()
    q.add("a")
    q.add("a")
    await settle()
    assert seen == 1
    release.set()
    await settle()
    assert seen == 2  # the re-add, once, after the first finished
    q.shutdown()
    await asyncio.wait_for(workers, SAFETY)
    assert overlaps == []


async def test_workqueue_metrics_are_recorded_per_queue_name():
    clock = FakeClock()
    name = "unit-test-metrics"
    q = WorkQueue(name, clock=clock, rate_limiter=ExponentialFailureRateLimiter(1, 10))
    WorkQueue(name, clock=clock)  # a second queue of the same name does not collide

    def value(metric: str) -> float:
        return REGISTRY.get_sample_value(metric, {"name": name}) or 0.0

    q.add("a")
    q.add("a")
    q.add("b")
    assert value("workqueue_adds_total") == 2
    assert value("workqueue_depth") == 2
    clock.advance(3)
    key = await get(q)
    assert value("workqueue_depth") == 1
    assert value("workqueue_queue_duration_seconds_sum") == 3
    clock.advance(2)
    q.done(key)
    assert value("workqueue_work_duration_seconds_sum") == 2
    q.add_rate_limited("c")
    assert value("workqueue_retries_total") == 1
    q.shutdown()


async def test_workqueue_without_a_name_records_no_metrics():
    q = WorkQueue(clock=FakeClock())
    q.add("a")
    assert REGISTRY.get_sample_value("workqueue_adds_total", {"name": ""}) is None
