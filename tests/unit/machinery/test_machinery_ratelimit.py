"""Rate limiters: client-go's exact sequences; the Backoff helper."""

from __future__ import annotations

import asyncio

import pytest

from services.machinery.clock import FakeClock
from services.machinery.ratelimit import (
    Backoff, BucketRateLimiter, ExponentialFailureRateLimiter, MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_exponential_failure_rate_limiter_doubles_per_item_up_to_max():
    limiter = ExponentialFailureRateLimiter(base=0.001, max=1.0)
    assert [limiter.when("a") for _ in range(5)] == [0.001, 0.002, 0.004, 0.008, 0.016]
    assert limiter.when("b") == 0.001
    assert limiter.num_requeues("a") == 5
    assert limiter.num_requeues("b") == 1
    for _ in range(20):
        last = limiter.when("a")
    assert last == 1.0


def test_exponential_failure_rate_limiter_forget_starts_over():
    limiter = ExponentialFailureRateLimiter(base=0.005, max=1000)
    limiter.when("a")
    limiter.when("a")
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.005


def test_exponential_failure_rate_limiter_survives_huge_failure_counts():
    limiter = ExponentialFailureRateLimiter(base=0.005, max=1000)
    for _ in range(2000):
        last = limiter.when("a")
    assert last == 1000


def test_bucket_rate_limiter_allows_burst_then_spaces_by_qps():
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10, burst=3, clock=clock)
    assert [limiter.when(i) for i in range(3)] == [0, 0, 0]
    assert limiter.when("x") == pytest.approx(0.1)
    assert limiter.when("y") == pytest.approx(0.2)
    assert limiter.num_requeues("x") == 0


def test_bucket_rate_limiter_refills_with_time_up_to_burst():
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10, burst=2, clock=clock)
    limiter.when(1)
    limiter.when(2)
    clock.advance(0.1)
    assert limiter.when(3) == 0
    clock.advance(100)  # refills to burst, not beyond
    assert [limiter.when(i) for i in range(3)] == [0, 0, pytest.approx(0.1)]


def test_max_of_rate_limiter_takes_longest_and_forgets_everywhere():
    slow = ExponentialFailureRateLimiter(base=1, max=100)
    fast = ExponentialFailureRateLimiter(base=0.5, max=100)
    limiter = MaxOfRateLimiter(fast, slow)
    assert limiter.when("a") == 1
    assert limiter.when("a") == 2
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert slow.num_requeues("a") == fast.num_requeues("a") == 0


def test_default_controller_rate_limiter_matches_client_go():
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    assert [limiter.when("a") for _ in range(3)] == [0.005, 0.01, 0.02]
    # 100 tokens of burst: the 101st attempt (any item) waits for the bucket.
    for i in range(97):
        assert limiter.when(f"item-{i}") == 0.005
    assert limiter.when("one-more") == pytest.approx(0.1)


def test_backoff_grows_by_factor_up_to_cap():
    backoff = Backoff(initial=1, factor=2, cap=5, jitter=0, clock=FakeClock())
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    assert backoff.attempts == 5


def test_backoff_jitter_adds_up_to_jitter_fraction():
    backoff = Backoff(initial=1, factor=2, cap=10, jitter=0.5, clock=FakeClock(),
                      random=lambda: 1.0)
    assert [backoff.next() for _ in range(3)] == [1.5, 3.0, 6.0]


def test_backoff_reset_starts_over():
    backoff = Backoff(initial=1, factor=3, cap=100, jitter=0, clock=FakeClock())
    backoff.next()
    backoff.next()
    backoff.reset()
    assert backoff.next() == 1


def test_backoff_resets_itself_after_a_quiet_period():
    clock = FakeClock()
    backoff = Backoff(initial=1, factor=2, cap=100, jitter=0, reset_after=60, clock=clock)
    assert [backoff.next() for _ in range(3)] == [1, 2, 4]
    clock.advance(30)
    assert backoff.next() == 8
    clock.advance(61)
    assert backoff.next() == 1


async def test_backoff_sleep_waits_on_the_clock():
    clock = FakeClock()
    backoff = Backoff(initial=2, jitter=0, clock=clock)
    task = asyncio.ensure_future(backoff.sleep())
    await clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 2
    clock.advance(2)
    assert await task == 2


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(initial=10, cap=1)
