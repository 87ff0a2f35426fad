"""Events about pods, written through the API the way kube-scheduler does:
``Normal Scheduled "Successfully assigned ns/pod to node"`` and
``Warning FailedScheduling "0/3 nodes are available: ..."``.

Recording never blocks the scheduling loop: :meth:`EventRecorder.event`
only queues, and a few writer tasks send them, at most ``qps`` a second
(burst ``burst``), as kube-scheduler's client is limited to 50 QPS. Like
client-go's event broadcaster the queue is bounded and drops events when
full: an event is information, never worth slowing the scheduler (or the
API server it shares with everyone) down for. In a burst of thousands of
pods most Scheduled events are therefore dropped, as in Kubernetes. Repeats of
the same event for the same object are aggregated (client-go's
EventCorrelator): the existing Event's count and lastTimestamp are updated
instead of writing a new object for every retry of an unschedulable pod.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from google.protobuf import timestamp_pb2

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery.clock import Clock, RealClock
from services.machinery.errors import AlreadyExists, ApiError, Conflict, NotFound
from services.machinery.ratelimit import BucketRateLimiter

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
SCHEDULED = "Scheduled"
FAILED_SCHEDULING = "FailedScheduling"

DEFAULT_MAX_PENDING = 1000
DEFAULT_WRITERS = 2
DEFAULT_QPS = 50.0
DEFAULT_BURST = 100
_CORRELATION_CACHE_SIZE = 4096


def scheduled_message(namespace: str, name: str, node: str) -> str:
    return f"Successfully assigned {namespace}/{name} to {node}"


def make_event(pod: Any, type_: str, reason: str, message: str, *, component: str,
               instance: str, now: timestamp_pb2.Timestamp, name: str) -> core.Event:
    """An Event about ``pod``, in the pod's namespace."""
    meta = pod.metadata
    event = core.Event(type=type_, reason=reason, message=message, count=1,
                       reporting_component=component, reporting_instance=instance)
    event.metadata.name = name
    event.metadata.namespace = meta.namespace
    ref = event.involved_object
    ref.kind, ref.api_version = "Pod", "v1"
    ref.namespace, ref.name, ref.uid = meta.namespace, meta.name, meta.uid
    ref.resource_version = meta.resource_version
    event.source.component = component
    event.first_timestamp.CopyFrom(now)
    event.last_timestamp.CopyFrom(now)
    return event


class EventRecorder:
    """Queues events and writes them with ``writers`` tasks (see module doc).

    ``component`` is the reporting scheduler's name (kube-scheduler reports
    as its profile's schedulerName, "default-scheduler"); ``instance`` the
    replica's identity.
    """

    def __init__(self, client: Any, component: str, instance: str = "", *,
                 clock: Clock | None = None, max_pending: int = DEFAULT_MAX_PENDING,
                 writers: int = DEFAULT_WRITERS, qps: float = DEFAULT_QPS,
                 burst: int = DEFAULT_BURST):
        self.events = client.resource("events")
        self.component = component  # the default; a profile passes its own name
        self.instance = instance
        self.clock = clock or RealClock()
        self.writers = writers
        self._limiter = BucketRateLimiter(qps, burst, self.clock)
        self._queue: asyncio.Queue[tuple[Any, str, str, str, str]] = asyncio.Queue(max_pending)
        self._seen: collections.OrderedDict[tuple, core.Event] = collections.OrderedDict()
        self.dropped = 0
        self.written = 0
        self._last_drop_warning: float | None = None

    def event(self, pod: Any, type_: str, reason: str, message: str,
              component: str = "") -> None:
        """Queue an event about ``pod``; never blocks (drops when full)."""
        try:
            self._queue.put_nowait((pod, type_, reason, message, component or self.component))
        except asyncio.QueueFull:
            self.dropped += 1
            now = self.clock.now()
            if self._last_drop_warning is None or now - self._last_drop_warning >= 10:
                self._last_drop_warning = now
                log.warning("event queue full: %d events dropped so far", self.dropped)
            log.debug("event queue full; dropped %s %s for %s/%s", type_, reason,
                      pod.metadata.namespace, pod.metadata.name)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Write queued events until cancelled."""
        await asyncio.gather(*(self._writer() for _ in range(self.writers)))

    async def _writer(self) -> None:
        while True:
            pod, type_, reason, message, component = await self._queue.get()
            delay = self._limiter.when(None)
            if delay > 0:
                await self.clock.sleep(delay)
            try:
                await self.write(pod, type_, reason, message, component)
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                log.warning("cannot write event %s for %s/%s: %s", reason,
                            pod.metadata.namespace, pod.metadata.name, err)
            except Exception:  # noqa: BLE001 - a bad event must not stop the writer
                log.exception("cannot write event %s", reason)

    def _now(self) -> timestamp_pb2.Timestamp:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(self.clock.wall())
        return stamp

    async def write(self, pod: Any, type_: str, reason: str, message: str,
                    component: str = "") -> core.Event:
        """Write one event now: a new Event, or a count bump of the same one."""
        component = component or self.component
        meta = pod.metadata
        key = (meta.namespace, meta.name, meta.uid, type_, reason, message, component)
        now = self._now()
        seen = self._seen.get(key)
        if seen is not None:
            bumped = core.Event()
            bumped.CopyFrom(seen)
            bumped.count += 1
            bumped.last_timestamp.CopyFrom(now)
            try:
                stored = await self.events.update(bumped)
            except (Conflict, NotFound):
                self._seen.pop(key, None)  # changed or gone: start a fresh one
            else:
                self._remember(key, stored)
                self.written += 1
                return stored
        for attempt in range(3):
            name = f"{meta.name}.{time.time_ns() + attempt:x}"
            event = make_event(pod, type_, reason, message, component=component,
                               instance=self.instance, now=now, name=name)
            try:
                stored = await self.events.create(event)
            except AlreadyExists:
                continue
            self._remember(key, stored)
            self.written += 1
            return stored
        raise AlreadyExists(f"event name for {meta.namespace}/{meta.name} kept colliding")

    def _remember(self, key: tuple, event: core.Event) -> None:
        self._seen[key] = event
        self._seen.move_to_end(key)
        while len(self._seen) > _CORRELATION_CACHE_SIZE:
            self._seen.popitem(last=False)


__all__ = [
    "EventRecorder", "FAILED_SCHEDULING", "NORMAL", "SCHEDULED", "WARNING", "make_event",
    "scheduled_message",
]
