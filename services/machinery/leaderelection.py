"""Lease-based leader election, after client-go's LeaderElector.

Replicas of a component (scheduler, controller manager) race for one Lease
object; its holder runs the work, the others stand by. The holder renews the
Lease every ``retry_period``; a standby takes it over once the Lease has not
changed for ``lease_duration`` *as measured on the standby's own clock from
when it last saw the record change* — never by comparing the remote
renewTime with local time, so clock skew between machines does not matter.
A leader that cannot renew within ``renew_deadline`` (< lease_duration)
stops leading before anyone else may start. Every write carries the Lease's
resourceVersion; a conflict means someone else wrote, and the next attempt
re-reads.

:meth:`LeaderElector.run` returns once leadership is lost, as client-go's
Run does: a daemon should then exit (or run again), never carry on working.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import timestamp_pb2
from prometheus_client import Gauge

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.machinery.clock import Clock, RealClock, wait_for
from services.machinery.errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's: standbys retry every retry_period * [1, 2.2)

MASTER_STATUS = Gauge("leader_election_master_status",
                      "Gauge of if the reporting system is master of the relevant lease, "
                      "0 indicates backup, 1 indicates master. 'name' is the string used "
                      "to identify the lease.", ["name"])


def default_identity() -> str:
    """``hostname_<uuid>``: unique per process, readable in the Lease."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElector:
    """Acquire and keep the Lease ``namespace/name`` for ``identity``.

    ``on_started_leading(stop)`` runs as a task once leadership is acquired;
    ``stop`` is an :class:`asyncio.Event` set when leadership ends, after
    which the task is also cancelled. ``on_stopped_leading()`` is called once
    when a leadership that started ends (lost, or run cancelled).
    ``on_new_leader(identity)`` is called whenever the observed holder
    changes (including to this elector). Callbacks may be sync or async.
    ``release_on_cancel``: when run is cancelled while leading, clear the
    holder so a standby takes over at once instead of after the lease expires.
    """

    def __init__(self, client: Any, name: str, namespace: str = "kube-system", *,
                 identity: str | None = None, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock | None = None,
                 on_started_leading: Callable[[asyncio.Event], Awaitable[Any]] | None = None,
                 on_stopped_leading: Callable[[], Any] | None = None,
                 on_new_leader: Callable[[str], Any] | None = None,
                 release_on_cancel: bool = True):
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError(f"renew_deadline must be greater than retry_period*{JITTER_FACTOR}")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        if not name:
            raise ValueError("a lease name is required")
        self.leases = client.resource("leases")
        self.name = name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock or RealClock()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self._observed: coordination.LeaseSpec | None = None
        self._observed_time = 0.0
        self._observed_version = ""
        self._reported_leader: str | None = None
        self._leading = False
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._metric = MASTER_STATUS.labels(name=name)

    # -- observation --------------------------------------------------------------

    def is_leader(self) -> bool:
        """Whether the last observed record names this elector as holder."""
        return self._observed is not None and self._observed.holder_identity == self.identity

    @property
    def leader(self) -> str:
        """The holder identity last observed ("" if none)."""
        return self._observed.holder_identity if self._observed is not None else ""

    def _observe(self, spec: coordination.LeaseSpec, version: str) -> None:
        """Remember the record and, if it changed, *when we saw it change*."""
        if self._observed is None or self._observed != spec:
            self._observed = coordination.LeaseSpec()
            self._observed.CopyFrom(spec)
            self._observed_time = self.clock.now()
        self._observed_version = version
        self._report_transition()

    def _report_transition(self) -> None:
        holder = self.leader
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        if holder:
            log.info("lease %s/%s: new leader %s", self.namespace, self.name, holder)
        if holder and self.on_new_leader is not None:
            self._spawn(self.on_new_leader, holder)

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        async def call() -> None:
            try:
                result = func(*args)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("lease %s/%s: callback %s failed", self.namespace, self.name,
                              getattr(func, "__name__", func))
        task = asyncio.get_running_loop().create_task(call())
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    # -- one attempt -----------------------------------------------------------------

    def _timestamp(self) -> timestamp_pb2.Timestamp:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(self.clock.wall())
        return stamp

    def _lease_seconds(self) -> int:
        return max(1, math.ceil(self.lease_duration))

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True if we hold it now.

        API errors count as a failed attempt (logged), never as an exception.
        """
        try:
            return await self._try_acquire_or_renew()
        except ApiError as err:
            log.info("lease %s/%s: %s", self.namespace, self.name, err)
            return False

    async def _try_acquire_or_renew(self) -> bool:
        now_stamp = self._timestamp()
        try:
            lease = await self.leases.get(self.name, self.namespace)
        except NotFound:
            lease = coordination.Lease(
                metadata=meta_pb2.ObjectMeta(name=self.name, namespace=self.namespace),
                spec=coordination.LeaseSpec(
                    holder_identity=self.identity, lease_duration_seconds=self._lease_seconds(),
                    acquire_time=now_stamp, renew_time=now_stamp, lease_transitions=0))
            try:
                created = await self.leases.create(lease)
            except AlreadyExists:
                return False
            self._observe(created.spec, created.metadata.resource_version)
            return True

        self._observe(lease.spec, lease.metadata.resource_version)
        old = lease.spec
        duration = old.lease_duration_seconds or self._lease_seconds()
        if (old.holder_identity and old.holder_identity != self.identity
                and self._observed_time + duration > self.clock.now()):
            return False  # held by someone else and not expired by our observation

        spec = coordination.LeaseSpec(
            holder_identity=self.identity, lease_duration_seconds=self._lease_seconds(),
            renew_time=now_stamp)
        if old.holder_identity == self.identity:
            spec.acquire_time.CopyFrom(old.acquire_time)
            spec.lease_transitions = old.lease_transitions
        else:
            spec.acquire_time.CopyFrom(now_stamp)
            spec.lease_transitions = old.lease_transitions + 1
        lease.spec.CopyFrom(spec)
        try:
            updated = await self.leases.update(lease)
        except Conflict:
            return False  # someone else wrote; the next attempt re-reads
        self._observe(updated.spec, updated.metadata.resource_version)
        return True

    async def release(self) -> bool:
        """Give the Lease up (holder cleared) if we hold it; True on success."""
        if not self.is_leader():
            return True
        try:
            lease = await self.leases.get(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return True
            now_stamp = self._timestamp()
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time.CopyFrom(now_stamp)
            lease.spec.acquire_time.CopyFrom(now_stamp)
            updated = await self.leases.update(lease)
        except ApiError as err:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, err)
            return False
        self._observe(updated.spec, updated.metadata.resource_version)
        log.info("lease %s/%s: released by %s", self.namespace, self.name, self.identity)
        return True

    # -- the loops ---------------------------------------------------------------------

    async def _acquire(self) -> None:
        log.info("lease %s/%s: %s trying to acquire", self.namespace, self.name, self.identity)
        while True:
            if await self.try_acquire_or_renew():
                log.info("lease %s/%s: acquired by %s", self.namespace, self.name, self.identity)
                return
            await self.clock.sleep(self.retry_period * (1 + random.random() * JITTER_FACTOR))

    async def _renew(self) -> None:
        """Renew every retry_period; return when a renewal round could not
        succeed within renew_deadline."""
        while True:
            deadline = self.clock.now() + self.renew_deadline
            while True:
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    return
                try:
                    if await wait_for(self.clock, self.try_acquire_or_renew(), remaining):
                        break
                except TimeoutError:
                    return
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    return
                await self.clock.sleep(min(self.retry_period, remaining))
            await self.clock.sleep(self.retry_period)

    async def run(self) -> None:
        """Acquire, lead while renewing, and return once leadership is lost.

        Cancelling it stops leading (releasing the Lease if
        ``release_on_cancel``) and re-raises the cancellation.
        """
        stop = asyncio.Event()
        leading: asyncio.Task[Any] | None = None
        cancelled = False
        try:
            await self._acquire()
            self._leading = True
            self._metric.set(1)
            if self.on_started_leading is not None:
                leading = asyncio.get_running_loop().create_task(
                    self._run_leading(stop), name=f"leading-{self.name}")
            await self._renew()
            log.warning("lease %s/%s: %s failed to renew within %.1fs; stopping leading",
                        self.namespace, self.name, self.identity, self.renew_deadline)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if self._leading:
                stop.set()
                if leading is not None:
                    leading.cancel()
                    await asyncio.gather(leading, return_exceptions=True)
                if cancelled and self.release_on_cancel:
                    await self._release_bounded()
                self._leading = False
                self._metric.set(0)
                if self.on_stopped_leading is not None:
                    await self._call_quietly(self.on_stopped_leading)

    async def _run_leading(self, stop: asyncio.Event) -> None:
        assert self.on_started_leading is not None
        try:
            await self.on_started_leading(stop)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("lease %s/%s: on_started_leading failed", self.namespace, self.name)

    async def _release_bounded(self) -> None:
        try:
            await wait_for(self.clock, self.release(), self.renew_deadline)
        except TimeoutError:
            log.warning("lease %s/%s: release timed out", self.namespace, self.name)

    async def _call_quietly(self, func: Callable[[], Any]) -> None:
        try:
            result = func()
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001
            log.exception("lease %s/%s: on_stopped_leading failed", self.namespace, self.name)


__all__ = ["LeaderElector", "default_identity"]
