"""Lease-based leader election against a real API server: one leader at a
time, takeover after the lease expires, at once after a release, and a
leader that cannot renew steps down."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time

from services.machinery.clock import RealClock
from services.machinery.leaderelection import LeaderElector
from tests.support.processes import wait_until

SHORT = dict(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)


class Candidate:
    """One elector plus a record of what its callbacks saw."""

    def __init__(self, client, namespace: str, identity: str, leaders: set[str],
                 overlaps: list[set[str]], release_on_cancel: bool = True, clock=None,
                 **timing):
        self.identity = identity
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.stop_event_set = False
        self.new_leaders: list[str] = []
        self._leaders = leaders
        self._overlaps = overlaps
        self.elector = LeaderElector(
            client, "test-lock", namespace, identity=identity,
            on_started_leading=self._lead, on_stopped_leading=self._stopped,
            on_new_leader=self.new_leaders.append, release_on_cancel=release_on_cancel,
            clock=clock, **(timing or SHORT))
        self.task: asyncio.Task | None = None

    async def _lead(self, stop: asyncio.Event) -> None:
        self._leaders.add(self.identity)
        if len(self._leaders) > 1:
            self._overlaps.append(set(self._leaders))
        self.started.set()
        try:
            await stop.wait()
        finally:
            self.stop_event_set = stop.is_set()
            self._leaders.discard(self.identity)

    def _stopped(self) -> None:
        self.stopped.set()

    def start(self) -> Candidate:
        self.task = asyncio.ensure_future(self.elector.run())
        return self

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 15)


async def first_leader(*candidates: Candidate, timeout: float = 15.0) -> Candidate:
    done, _ = await asyncio.wait([asyncio.ensure_future(c.started.wait()) for c in candidates],
                                 timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    assert done, "nobody became leader"
    return next(c for c in candidates if c.started.is_set())


async def test_two_electors_elect_exactly_one_leader(client, namespace):
    leaders: set[str] = set()
    overlaps: list[set[str]] = []
    a = Candidate(client, namespace, "a", leaders, overlaps).start()
    b = Candidate(client, namespace, "b", leaders, overlaps).start()
    try:
        leader = await first_leader(a, b)
        other = b if leader is a else a
        # Several lease durations of renewals: the leader keeps it, the other waits.
        deadline = time.monotonic() + 3 * SHORT["lease_duration"]
        while time.monotonic() < deadline:
            assert leaders == {leader.identity}
            await asyncio.sleep(0.1)
        assert not other.started.is_set()
        lease = await client.resource("leases").get("test-lock", namespace)
        assert lease.spec.holder_identity == leader.identity
        assert lease.spec.lease_duration_seconds == 2
        assert leader.elector.is_leader() and not other.elector.is_leader()
        await wait_until(lambda: other.new_leaders == [leader.identity], timeout=5)
        assert other.elector.leader == leader.identity
    finally:
        await a.cancel()
        await b.cancel()
    assert overlaps == []


async def test_standby_takes_over_after_the_lease_expires_when_leader_dies(client, namespace):
    leaders: set[str] = set()
    overlaps: list[set[str]] = []
    a = Candidate(client, namespace, "a", leaders, overlaps, release_on_cancel=False).start()
    leader = await first_leader(a)
    b = Candidate(client, namespace, "b", leaders, overlaps, release_on_cancel=False).start()
    try:
        await wait_until(lambda: b.new_leaders == ["a"], timeout=5)
        killed_at = time.monotonic()
        await leader.cancel()  # dies without releasing
        assert leader.stopped.is_set() and leader.stop_event_set
        await asyncio.wait_for(b.started.wait(), SHORT["lease_duration"] + 5)
        waited = time.monotonic() - killed_at
        # It had to wait for the lease to expire on its own clock.
        assert waited > SHORT["lease_duration"] - 2.2 * SHORT["retry_period"] - 0.2
        lease = await client.resource("leases").get("test-lock", namespace)
        assert lease.spec.holder_identity == "b"
        assert lease.spec.lease_transitions == 1
        assert b.new_leaders == ["a", "b"]
    finally:
        await b.cancel()
    assert overlaps == []


async def test_release_on_cancel_hands_over_at_once(client, namespace):
    # A long lease: a takeover well inside it can only come from the release.
    timing = dict(lease_duration=30.0, renew_deadline=10.0, retry_period=0.2)
    leaders: set[str] = set()
    overlaps: list[set[str]] = []
    a = Candidate(client, namespace, "a", leaders, overlaps, **timing).start()
    await first_leader(a)
    b = Candidate(client, namespace, "b", leaders, overlaps, **timing).start()
    try:
        await wait_until(lambda: b.new_leaders == ["a"], timeout=5)
        released_at = time.monotonic()
        await a.cancel()
        assert a.stopped.is_set()
        await asyncio.wait_for(b.started.wait(), 10)
        assert time.monotonic() - released_at < 10
        lease = await client.resource("leases").get("test-lock", namespace)
        assert lease.spec.holder_identity == "b"
        assert lease.spec.lease_duration_seconds == 30
    finally:
        await b.cancel()
    assert overlaps == []
    # b released too on its way out.
    lease = await client.resource("leases").get("test-lock", namespace)
    assert lease.spec.holder_identity == ""


async def test_leader_that_cannot_renew_steps_down(client, namespace, apiserver):
    leaders: set[str] = set()
    overlaps: list[set[str]] = []
    a = Candidate(client, namespace, "a", leaders, overlaps).start()
    await first_leader(a)
    try:
        await asyncio.to_thread(apiserver.stop)
        # run() returns by itself once renewals fail for renew_deadline.
        await asyncio.wait_for(asyncio.shield(a.task), SHORT["renew_deadline"] + 10)
        assert a.stopped.is_set() and a.stop_event_set
        assert leaders == set()
    finally:
        await asyncio.to_thread(apiserver.start)
        if not a.task.done():
            await a.cancel()


class SkewedClock(RealClock):
    """Real time, but a wall clock an hour ahead (a machine with a bad clock)."""

    def wall(self):
        return super().wall() + datetime.timedelta(hours=1)


async def test_standby_with_a_skewed_clock_does_not_steal_a_live_lease(client, namespace):
    leaders: set[str] = set()
    overlaps: list[set[str]] = []
    a = Candidate(client, namespace, "a", leaders, overlaps).start()
    await first_leader(a)
    b = Candidate(client, namespace, "b", leaders, overlaps,
                  clock=SkewedClock(), **SHORT).start()
    try:
        # By b's wall clock a's renewTime is an hour stale; only b's own
        # observation of the record changing counts, so it must wait.
        deadline = time.monotonic() + 3 * SHORT["lease_duration"]
        while time.monotonic() < deadline:
            assert not b.started.is_set()
            await asyncio.sleep(0.1)
        assert b.new_leaders == ["a"]
    finally:
        await b.cancel()
        await a.cancel()
    assert overlaps == []
