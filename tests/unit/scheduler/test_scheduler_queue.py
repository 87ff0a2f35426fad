"""The scheduling queue on a FakeClock: ordering, backoff timing, the
unschedulable pool and the events that empty it."""

from __future__ import annotations

import asyncio

import pytest

from services.machinery.clock import FakeClock
from services.scheduler import queue as q
from services.scheduler.nodeinfo import PodInfo
from tests.unit.scheduler.builders import pod, pod_info


def make_queue(clock: FakeClock | None = None) -> q.SchedulingQueue:
    return q.SchedulingQueue(clock or FakeClock())


def pop_names(queue: q.SchedulingQueue) -> list[str]:
    names = []
    while (info := queue.pop_nowait()) is not None:
        names.append(info.pod_info.name)
    return names


def fail_unschedulable(queue: q.SchedulingQueue, name: str) -> q.QueuedPodInfo:
    """Pop ``name`` and report it unschedulable, as a cycle would."""
    info = queue.pop_nowait()
    assert info is not None and info.pod_info.name == name
    queue.add_unschedulable_if_not_present(info, queue.scheduling_cycle)
    return info


def test_queue_pops_by_priority_then_arrival():
    clock = FakeClock()
    queue = make_queue(clock)
    for name, prio in [("low-1", 0), ("high", 100), ("low-2", 0), ("mid", 10)]:
        queue.add(pod_info(name, priority=prio))
        clock.advance(0.001)
    assert pop_names(queue) == ["high", "mid", "low-1", "low-2"]


def test_queue_add_replaces_the_same_pod():
    queue = make_queue()
    queue.add(pod_info("a"))
    queue.add(pod_info("a", labels={"v": "2"}))
    assert len(queue) == 1
    info = queue.pop_nowait()
    assert info.pod_info.labels == {"v": "2"}
    assert queue.pop_nowait() is None


def test_queue_delete_removes_a_pod_from_any_part():
    queue = make_queue()
    queue.add(pod_info("a"))
    queue.add(pod_info("b"))
    fail_unschedulable(queue, "a")
    queue.delete("default/a")
    queue.delete("default/b")
    assert queue.lengths() == {"active": 0, "backoff": 0, "unschedulable": 0}
    assert queue.pop_nowait() is None


@pytest.mark.parametrize("attempts, expected", [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0),
                                                (5, 10.0), (9, 10.0)])
def test_queue_backoff_doubles_from_one_second_to_ten(attempts, expected):
    queue = make_queue()
    info = q.QueuedPodInfo(pod_info(), 0.0, attempts=attempts)
    assert queue.backoff_duration(info) == expected


def test_queue_backoff_pod_returns_when_its_backoff_expires():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    info = queue.pop_nowait()
    queue.add_backoff_if_not_present(info)  # first attempt failed: 1 s
    assert queue.where("default/a") == q.BACKOFF
    clock.advance(0.9)
    assert queue.flush_backoff_completed() == 0
    clock.advance(0.1)
    assert queue.flush_backoff_completed() == 1
    info = queue.pop_nowait()
    assert info.attempts == 2
    queue.add_backoff_if_not_present(info)  # second failure: 2 s
    clock.advance(1.5)
    assert queue.flush_backoff_completed() == 0
    clock.advance(0.5)
    assert queue.flush_backoff_completed() == 1


async def test_queue_run_flushes_backoff_on_the_clock():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    queue.add_backoff_if_not_present(queue.pop_nowait())
    runner = asyncio.ensure_future(queue.run())
    try:
        await clock.wait_for_sleepers(2)
        popped = asyncio.ensure_future(queue.pop())
        await asyncio.sleep(0)
        assert not popped.done()
        clock.advance(1.0)
        info = await asyncio.wait_for(popped, 5)
        assert info.pod_info.name == "a"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def test_queue_unschedulable_pod_moves_to_active_on_node_add():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    fail_unschedulable(queue, "a")
    assert queue.where("default/a") == q.UNSCHEDULABLE
    clock.advance(5)  # long past its 1 s backoff
    assert queue.flush_backoff_completed() == 0  # waits for an event, not for time
    assert queue.move_all_to_active_or_backoff(q.NODE_ADD) == 1
    assert queue.where("default/a") == q.ACTIVE
    assert pop_names(queue) == ["a"]


def test_queue_unschedulable_pod_still_backing_off_moves_to_backoff():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    fail_unschedulable(queue, "a")
    clock.advance(0.5)
    queue.move_all_to_active_or_backoff(q.NODE_ADD)
    assert queue.where("default/a") == q.BACKOFF
    clock.advance(0.5)
    queue.flush_backoff_completed()
    assert queue.where("default/a") == q.ACTIVE


def test_queue_move_request_during_a_cycle_sends_the_pod_to_backoff():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    info = queue.pop_nowait()
    cycle = queue.scheduling_cycle
    queue.move_all_to_active_or_backoff(q.NODE_ADD)  # a node arrived mid-cycle
    queue.add_unschedulable_if_not_present(info, cycle)
    assert queue.where("default/a") == q.BACKOFF


def test_queue_flushes_unschedulable_pods_left_over_for_sixty_seconds():
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add(pod_info("a"))
    fail_unschedulable(queue, "a")
    clock.advance(59)
    assert queue.flush_unschedulable_left_over() == 0
    clock.advance(1)
    assert queue.flush_unschedulable_left_over() == 1
    assert queue.where("default/a") == q.ACTIVE


def test_queue_update_of_an_unschedulable_pod_moves_it_only_if_the_spec_changed():
    clock = FakeClock()
    queue = make_queue(clock)
    original = pod("a")
    queue.add(PodInfo(original))
    fail_unschedulable(queue, "a")
    clock.advance(2)
    status_only = pod("a")
    status_only.status.conditions.add(type="PodScheduled", status="False")
    status_only.metadata.resource_version = "7"
    queue.update(original, PodInfo(status_only))
    assert queue.where("default/a") == q.UNSCHEDULABLE
    tolerating = pod("a", tolerations=[("dedicated", "Exists", "", "")])
    queue.update(status_only, PodInfo(tolerating))
    assert queue.where("default/a") == q.ACTIVE


def test_queue_update_of_a_pod_in_no_queue_adds_it():
    queue = make_queue()
    queue.update(pod("a"), pod_info("a"))
    assert queue.where("default/a") == q.ACTIVE


def test_queue_add_unschedulable_is_a_no_op_when_already_queued():
    queue = make_queue()
    queue.add(pod_info("a"))
    info = queue.pop_nowait()
    queue.add(pod_info("a"))  # an update arrived meanwhile
    queue.add_unschedulable_if_not_present(info, queue.scheduling_cycle)
    assert queue.where("default/a") == q.ACTIVE
    assert len(queue) == 1


async def test_queue_pop_waits_for_a_pod_and_close_stops_it():
    queue = make_queue()
    waiting = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.add(pod_info("a"))
    assert (await asyncio.wait_for(waiting, 5)).pod_info.name == "a"
    waiting = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
