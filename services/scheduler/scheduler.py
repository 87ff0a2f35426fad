"""The scheduler's shell: informers in, bindings, events and status out.

Event handlers keep the cache and the queue current and do nothing else:

* pods: bound ones are accounted in the cache (terminal ones freed),
  pending ones whose ``spec.schedulerName`` names one of our profiles are
  queued; a bound pod's deletion frees its node and gives the
  unschedulable pods another chance;
* nodes: into the cache; an added node, or a change to what scheduling
  reads (labels, taints, allocatable, readiness, unschedulable), gives the
  unschedulable pods another chance.

:meth:`Scheduler.run` — the leader's work — is kube-scheduler's scheduleOne
in a loop: pop a pod, decide synchronously (:mod:`algorithm`), *assume*
it onto the chosen node in the cache, and start its binding as a task, so
the next decision does not wait for the API server. A failed binding
forgets the assumption and retries with backoff; FAILED_PRECONDITION (the
pod is bound already — by another replica, or by our own earlier attempt
whose reply was lost — or is being deleted) means there is nothing left
to do. A pod that fits nowhere gets a FailedScheduling event and a
PodScheduled=False condition, and waits in the unschedulable pool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery.clock import Clock, RealClock
from services.machinery.errors import ApiError, Conflict, NotFound, PreconditionFailed
from services.machinery.store import DeletedFinalStateUnknown, object_key, split_key
from services.scheduler import events, metrics
from services.scheduler import queue as q
from services.scheduler.algorithm import Algorithm, FitError
from services.scheduler.cache import Cache
from services.scheduler.events import EventRecorder
from services.scheduler.framework import Profile
from services.scheduler.nodeinfo import PodInfo, is_terminal, node_is_ready

log = logging.getLogger(__name__)

POD_SCHEDULED = "PodScheduled"
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"
DEFAULT_BIND_CONCURRENCY = 128
CONDITION_WRITE_CONCURRENCY = 8
CLEAN_ASSUMED_PERIOD = 1.0


def node_scheduling_changed(old: Any, new: Any) -> bool:
    """Whether a node update could make a pending pod fit (kube-scheduler's
    nodeSchedulingPropertiesChange): heartbeats and addresses cannot."""
    a, b = old, new
    return (a.spec.unschedulable != b.spec.unschedulable
            or [(t.key, t.value, t.effect) for t in a.spec.taints]
            != [(t.key, t.value, t.effect) for t in b.spec.taints]
            or a.metadata.labels != b.metadata.labels
            or a.status.allocatable != b.status.allocatable
            or node_is_ready(a) != node_is_ready(b))


def has_condition(pod: Any, type_: str, status: str, reason: str, message: str) -> bool:
    for cond in pod.status.conditions:
        if cond.type == type_:
            return cond.status == status and cond.reason == reason and cond.message == message
    return False


def set_condition(pod: Any, type_: str, status: str, reason: str, message: str,
                  now: Any) -> None:
    """Set (or add) a condition, moving lastTransitionTime only when the
    status itself changes."""
    for cond in pod.status.conditions:
        if cond.type == type_:
            if cond.status != status:
                cond.last_transition_time.CopyFrom(now)
            cond.status, cond.reason, cond.message = status, reason, message
            return
    cond = pod.status.conditions.add(type=type_, status=status, reason=reason, message=message)
    cond.last_transition_time.CopyFrom(now)


class Scheduler:
    """Schedules the pending pods of ``profiles`` (schedulerName -> Profile).

    Construction registers the informer handlers on ``factory`` (which the
    caller starts), so a standby replica keeps a warm cache and queue and can
    start deciding the moment it becomes leader.
    """

    def __init__(self, client: Any, factory: Any, profiles: Mapping[str, Profile], *,
                 percentage_of_nodes_to_score: int = 0, clock: Clock | None = None,
                 rng: random.Random | None = None, identity: str = "",
                 recorder: EventRecorder | None = None,
                 bind_concurrency: int = DEFAULT_BIND_CONCURRENCY,
                 queue: q.SchedulingQueue | None = None):
        if not profiles:
            raise ValueError("at least one profile is required")
        self.client = client
        self.profiles = dict(profiles)
        self.clock = clock or RealClock()
        self.cache = Cache(self.clock)
        self.queue = queue or q.SchedulingQueue(self.clock)
        self.algorithm = Algorithm(percentage_of_nodes_to_score, rng)
        self.recorder = recorder or EventRecorder(client, next(iter(self.profiles)), identity,
                                                  clock=self.clock)
        self.pods = client.resource("pods")
        self.pod_informer = factory.informer("pods")
        self.node_informer = factory.informer("nodes")
        self.pod_informer.add_event_handler(self._on_pod_add, self._on_pod_update,
                                            self._on_pod_delete)
        self.node_informer.add_event_handler(self._on_node_add, self._on_node_update,
                                             self._on_node_delete)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._condition_slots = asyncio.Semaphore(CONDITION_WRITE_CONCURRENCY)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._conditions: dict[str, tuple[str, str]] = {}
        self._condition_writers: dict[str, asyncio.Task[Any]] = {}
        self.bindings = 0  # successful Binding calls made by this replica
        metrics.watch_queue(self.queue.lengths)

    # -- informer handlers -------------------------------------------------------

    def responsible_for(self, pod: Any) -> bool:
        return pod.spec.scheduler_name in self.profiles

    def _on_pod_add(self, pod: Any) -> None:
        node = pod.spec.node_name
        if node:
            if not is_terminal(pod):
                self.cache.add_pod(PodInfo(pod), node)
        elif self.responsible_for(pod) and not pod.metadata.HasField("deletion_timestamp"):
            self.queue.add(PodInfo(pod))

    def _on_pod_update(self, old: Any, new: Any) -> None:
        key = object_key(new)
        node = new.spec.node_name
        if node:
            if is_terminal(new):
                if self.cache.remove_pod(key):
                    self.queue.move_all_to_active_or_backoff(q.ASSIGNED_POD_DELETE)
            else:
                self.cache.update_pod(PodInfo(new), node)
            if not old.spec.node_name:
                self.queue.delete(key)
            return
        if not self.responsible_for(new):
            self.queue.delete(key)
        elif new.metadata.HasField("deletion_timestamp"):
            self.queue.delete(key)
        else:
            self.queue.update(old, PodInfo(new))

    def _on_pod_delete(self, obj: Any) -> None:
        key = object_key(obj)
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        self.queue.delete(key)
        if pod.spec.node_name or (self.cache.has_pod(key) and not self.cache.is_assumed(key)):
            if self.cache.remove_pod(key):
                self.queue.move_all_to_active_or_backoff(q.ASSIGNED_POD_DELETE)

    def _on_node_add(self, node: Any) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(q.NODE_ADD)

    def _on_node_update(self, old: Any, new: Any) -> None:
        self.cache.update_node(new)
        if node_scheduling_changed(old, new):
            self.queue.move_all_to_active_or_backoff(q.NODE_UPDATE)

    def _on_node_delete(self, obj: Any) -> None:
        self.cache.remove_node(object_key(obj))

    # -- the loop ------------------------------------------------------------------

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(self.pod_informer.wait_for_sync(timeout),
                                       self.node_informer.wait_for_sync(timeout))
        return all(results)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Schedule until cancelled (or ``stop`` is set): the leader's work."""
        await self.wait_for_sync()
        helpers = [asyncio.ensure_future(self.queue.run()),
                   asyncio.ensure_future(self.recorder.run()),
                   asyncio.ensure_future(self._clean_assumed())]
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        log.info("scheduling", extra={"profiles": ",".join(self.profiles),
                                      "pending": len(self.queue), "nodes": self.cache.node_count})
        try:
            while stopper is None or not stopper.done():
                await self.schedule_one()
                await asyncio.sleep(0)  # let watch events and bindings in
        finally:
            for task in [*helpers, *self._tasks, *self._condition_writers.values()]:
                task.cancel()
            if stopper is not None:
                stopper.cancel()
            await asyncio.gather(*helpers, *self._tasks, return_exceptions=True)

    async def _clean_assumed(self) -> None:
        while True:
            await self.clock.sleep(CLEAN_ASSUMED_PERIOD)
            self.cache.cleanup_expired_assumed_pods()

    def _skip(self, info: PodInfo) -> bool:
        """kube-scheduler's skipPodSchedule: the pod is gone, being deleted,
        bound, or already assumed (its binding is in flight)."""
        current = self.pod_informer.store.get_by_key(info.key)
        if current is None or current.spec.node_name:
            return True
        if current.metadata.uid != info.uid or current.metadata.HasField("deletion_timestamp"):
            return True
        return self.cache.has_pod(info.key)

    async def schedule_one(self) -> None:
        queued = await self.queue.pop()
        self.schedule_cycle(queued)

    def schedule_cycle(self, queued: q.QueuedPodInfo) -> str | None:
        """Decide for one popped pod (synchronously) and start its binding;
        returns the chosen node, or None."""
        info = queued.pod_info
        profile = self.profiles.get(info.scheduler_name)
        if profile is None or self._skip(info):
            return None
        started = time.perf_counter()
        cycle = self.queue.scheduling_cycle
        try:
            result = self.algorithm.schedule(profile, info, self.cache.snapshot())
        except FitError as err:
            log.info("pod %s/%s is unschedulable: %s", info.namespace, info.name, err)
            metrics.observe_attempt(metrics.UNSCHEDULABLE, profile.name,
                                    time.perf_counter() - started)
            self._failed(queued, profile, str(err), REASON_UNSCHEDULABLE, cycle)
            return None
        except Exception as err:  # noqa: BLE001 - a plugin bug must not stop scheduling
            log.exception("scheduling %s failed", info.key)
            metrics.observe_attempt(metrics.ERROR, profile.name, time.perf_counter() - started)
            self._failed(queued, profile, f"scheduler error: {err}", REASON_SCHEDULER_ERROR, cycle)
            return None
        self.cache.assume_pod(info, result.node)
        self._spawn(self._bind(queued, profile, result.node, started))
        return result.node

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _bind(self, queued: q.QueuedPodInfo, profile: Profile, node: str,
                    started: float) -> None:
        info = queued.pod_info
        binding = core.Binding()
        binding.metadata.name, binding.metadata.namespace = info.name, info.namespace
        binding.metadata.uid = info.uid
        binding.target.kind, binding.target.name = "Node", node
        began = time.perf_counter()
        try:
            async with self._bind_slots:
                began = time.perf_counter()
                await self.pods.bind(binding)
        except asyncio.CancelledError:
            self.cache.forget_pod(info.key)
            raise
        except PreconditionFailed as err:
            # Already bound (by another replica, or our own attempt whose reply
            # was lost) or being deleted: nothing left to do, nothing to retry.
            self.cache.forget_pod(info.key)
            log.info("binding %s to %s not needed: %s", info.key, node, err)
            metrics.observe_attempt(metrics.ERROR, profile.name, time.perf_counter() - started)
            return
        except NotFound:
            self.cache.forget_pod(info.key)
            log.info("pod %s was deleted before it could be bound", info.key)
            return
        except Exception as err:  # noqa: BLE001 - any other failure: retry later
            self.cache.forget_pod(info.key)
            log.warning("binding %s to %s failed: %s; will retry", info.key, node, err)
            metrics.observe_attempt(metrics.ERROR, profile.name, time.perf_counter() - started)
            current = self.pod_informer.store.get_by_key(info.key)
            if (current is not None and not current.spec.node_name
                    and current.metadata.uid == info.uid):
                self.queue.add_backoff_if_not_present(queued)
            return
        done = time.perf_counter()
        self.bindings += 1
        metrics.BINDING_DURATION.observe(done - began)
        metrics.observe_attempt(metrics.SCHEDULED, profile.name, done - started)
        self.cache.finish_binding(info.key)
        log.debug("bound %s to %s", info.key, node)
        self.recorder.event(info.pod, events.NORMAL, events.SCHEDULED,
                            events.scheduled_message(info.namespace, info.name, node),
                            profile.name)

    # -- failures ----------------------------------------------------------------------

    def _failed(self, queued: q.QueuedPodInfo, profile: Profile, message: str, reason: str,
                cycle: int) -> None:
        info = queued.pod_info
        current = self.pod_informer.store.get_by_key(info.key)
        if current is None or current.spec.node_name or current.metadata.uid != info.uid:
            return  # deleted or bound meanwhile: nothing to retry or report
        if reason == REASON_UNSCHEDULABLE:
            self.queue.add_unschedulable_if_not_present(queued, cycle)
        else:
            self.queue.add_backoff_if_not_present(queued)
        self.recorder.event(info.pod, events.WARNING, events.FAILED_SCHEDULING, message,
                            profile.name)
        self._conditions[info.key] = (reason, message)
        if info.key not in self._condition_writers:
            self._condition_writers[info.key] = self._spawn(self._write_conditions(info.key))

    async def _write_conditions(self, key: str) -> None:
        """Write the latest wanted PodScheduled=False for ``key``; coalesces
        repeated failures of one pod into one write at a time."""
        try:
            while key in self._conditions:
                reason, message = self._conditions.pop(key)
                async with self._condition_slots:
                    await self._write_condition(key, reason, message)
        except ApiError as err:
            log.warning("cannot set PodScheduled=False on %s: %s", key, err)
        finally:
            self._condition_writers.pop(key, None)

    async def _write_condition(self, key: str, reason: str, message: str) -> None:
        namespace, name = split_key(key)
        pod = self.pod_informer.store.get_by_key(key)
        for _ in range(5):
            if pod is None or pod.spec.node_name:
                return
            if has_condition(pod, POD_SCHEDULED, "False", reason, message):
                return
            new = core.Pod()
            new.CopyFrom(pod)
            now = timestamp_pb2.Timestamp()
            now.FromDatetime(self.clock.wall())
            set_condition(new, POD_SCHEDULED, "False", reason, message, now)
            try:
                await self.pods.update_status(new)
                return
            except NotFound:
                return
            except Conflict:
                pass  # re-read and try again
            try:
                pod = await self.pods.get(name, namespace)
            except NotFound:
                return


__all__ = ["Scheduler", "has_condition", "node_scheduling_changed", "set_condition"]
