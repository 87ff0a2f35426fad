from __future__ import annotations

import pytest

from services.kubelet.backoff import Backoff
from services.machinery.clock import FakeClock


def _wall(clock: FakeClock) -> float:
    return clock.wall().timestamp()


def test_backoff_first_failure_restarts_at_once_then_waits_initial():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    key = ("uid", "c")
    exited = _wall(clock)
    assert not b.in_backoff_since(key, exited)     # first crash: restart now
    assert b.next(key, exited) == 10
    clock.advance(1)
    exited = _wall(clock)                           # crashed again a second later
    assert b.in_backoff_since(key, exited)
    assert b.remaining_since(key, exited) == pytest.approx(10)
    clock.advance(9.9)
    assert b.in_backoff_since(key, exited)
    clock.advance(0.2)
    assert not b.in_backoff_since(key, exited)


def test_backoff_doubles_up_to_the_cap():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    delays = []
    for _ in range(8):
        delays.append(b.next("k", _wall(clock)))
        clock.advance(1)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_running_for_twice_the_cap():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    for _ in range(4):
        b.next("k", _wall(clock))
    assert b.get("k") == 80
    clock.advance(601)                 # ran ten minutes and then some before crashing
    exited = _wall(clock)
    assert not b.in_backoff_since("k", exited)
    assert b.next("k", exited) == 10


def test_backoff_since_update_counts_from_the_last_failure():
    clock = FakeClock()
    b = Backoff(10, 300, clock=clock)
    assert not b.in_backoff_since_update("img")
    b.next("img", _wall(clock))
    assert b.in_backoff_since_update("img")
    clock.advance(10.5)
    assert not b.in_backoff_since_update("img")


def test_backoff_forget_and_gc():
    clock = FakeClock()
    b = Backoff(1, 2, clock=clock)
    b.next(("a", "x"), _wall(clock))
    b.next(("b", "x"), _wall(clock))
    b.forget_where(lambda k: k[0] == "a")
    assert len(b) == 1
    clock.advance(5)
    b.gc()
    assert len(b) == 0


def test_backoff_rejects_bad_bounds():
    with pytest.raises(ValueError):
        Backoff(10, 5)
