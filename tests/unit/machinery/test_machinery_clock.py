"""FakeClock and the clock-driven wait_for."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from services.machinery.clock import FakeClock, RealClock, wait_for


async def test_fakeclock_advance_wakes_due_sleepers_in_deadline_order():
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("late", 3), ("early", 1),
                                                                 ("mid", 2))]
    await clock.wait_for_sleepers(3)
    clock.advance(2)
    await asyncio.gather(tasks[1], tasks[2])
    assert woke == ["early", "mid"]
    assert clock.sleepers == 1
    clock.advance(1)
    await tasks[0]
    assert woke == ["early", "mid", "late"]


async def test_fakeclock_cancelled_sleeper_is_not_counted():
    clock = FakeClock()
    task = asyncio.ensure_future(clock.sleep(5))
    await clock.wait_for_sleepers(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    assert clock.next_deadline() is None


async def test_fakeclock_sleep_zero_returns_at_once():
    clock = FakeClock()
    await clock.sleep(0)
    assert clock.now() == 0


def test_fakeclock_wall_moves_with_now():
    start = datetime.datetime(2030, 5, 1, tzinfo=datetime.timezone.utc)
    clock = FakeClock(start=100.0, wall_start=start)
    clock.advance(90)
    assert clock.now() == 190.0
    assert clock.wall() == start + datetime.timedelta(seconds=90)


def test_fakeclock_refuses_to_go_backwards():
    with pytest.raises(ValueError):
        FakeClock().advance(-1)


async def test_wait_for_times_out_on_the_fake_clock():
    clock = FakeClock()
    never = asyncio.Event()
    waiting = asyncio.ensure_future(wait_for(clock, never.wait(), 10))
    await clock.wait_for_sleepers(1)
    clock.advance(10)
    with pytest.raises(TimeoutError):
        await waiting


async def test_wait_for_returns_the_result_before_the_timeout():
    clock = FakeClock()

    async def answer() -> int:
        return 42

    assert await wait_for(clock, answer(), 10) == 42
    assert await wait_for(clock, answer(), None) == 42
    assert clock.sleepers == 0


async def test_wait_for_propagates_the_awaitables_error():
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await wait_for(FakeClock(), boom(), 10)


async def test_realclock_wall_is_utc():
    clock = RealClock()
    assert clock.wall().tzinfo == datetime.timezone.utc
    before = clock.now()
    await clock.sleep(0)
    assert clock.now() >= before
