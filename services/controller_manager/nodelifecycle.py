"""Node lifecycle: notice dead nodes, taint them, and move their pods away.

After Kubernetes' pkg/controller/nodelifecycle (and the taint-eviction and
pod-GC controllers it works with):

* Health. A kubelet proves it is alive by renewing its Lease in
  ``kube-node-lease`` (and by posting its Ready condition's
  lastHeartbeatTime). This controller remembers, *on its own clock*, when it
  last saw either change; when neither has changed for
  ``node_monitor_grace_period`` (``node_startup_grace_period`` for a node
  that never posted Ready) the node's Ready, MemoryPressure, DiskPressure and
  PIDPressure conditions become Unknown ("Kubelet stopped posting node
  status."). Measuring on the local clock, never comparing remote
  timestamps with local time, makes clock skew harmless.
* Taints follow conditions: Ready=Unknown gives
  ``node.kubernetes.io/unreachable`` NoExecute and NoSchedule, Ready=False
  gives ``node.kubernetes.io/not-ready``; unschedulable and pressure
  conditions give their NoSchedule taints. When the condition clears the
  taint goes; nothing else on the node is touched.
* Eviction: a pod on a node with a NoExecute taint it does not tolerate is
  deleted at once; one that tolerates it for ``tolerationSeconds`` (the API
  server gives every pod 300 s for not-ready/unreachable) is deleted that
  long after the taint's ``timeAdded``. Each counts in
  ``node_collector_evictions_total``.
* A pod on a node that is gone or not Ready cannot be confirmed deleted by
  its kubelet, so terminating pods there are force-deleted (grace 0), as
  Kubernetes' pod GC does; only then can a ReplicaSet's replacement count.
  Pods on an unreachable node are also marked not Ready, so Services stop
  sending them traffic.

The decisions are pure functions of (node, lease, observations, pods, time);
the controller only feeds them cached state and writes the results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Iterable
from typing import Any

from google.protobuf import timestamp_pb2
from prometheus_client import Counter

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.podcontrol import reconcile_loop, ensure_indexers
from services.machinery import (
    Client, Clock, Conflict, NotFound, PreconditionFailed, RealClock, SharedInformerFactory,
    WorkQueue, )
from services.machinery.store import (
    POD_NODE_INDEX, DeletedFinalStateUnknown, object_key, pod_node_index,
)

log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
ZONE_LABEL = "topology.kubernetes.io/zone"

NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
HEALTH_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
PRESSURE_TAINTS = {"MemoryPressure": MEMORY_PRESSURE, "DiskPressure": DISK_PRESSURE,
                   "PIDPressure": PID_PRESSURE}
# The (key, effect) pairs this controller owns; any other taint is left alone.
MANAGED_TAINTS = frozenset({
    (UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE),
    (NOT_READY, NO_EXECUTE), (NOT_READY, NO_SCHEDULE),
    (UNSCHEDULABLE, NO_SCHEDULE),
    *((key, NO_SCHEDULE) for key in PRESSURE_TAINTS.values()),
})

EVICTIONS = Counter("node_collector_evictions", "Number of Node evictions that happened "
                    "since current instance of NodeController started.", ["zone"])
EVICTIONS.labels(zone="")  # the series exists (at 0) before the first eviction

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
EVICT_NOW = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


# --- health -------------------------------------------------------------------------------


def condition(node: core.Node, type_: str) -> core.NodeCondition | None:
    for cond in node.status.conditions:
        if cond.type == type_:
            return cond
    return None


def ready_status(node: core.Node) -> str | None:
    """"True", "False", "Unknown", or None when the node never posted Ready."""
    cond = condition(node, "Ready")
    return cond.status if cond is not None else None


@dataclasses.dataclass(frozen=True)
class Observation:
    """When this controller last saw a node's heartbeat move, on its own clock."""

    signature: tuple[Any, ...]
    probe_time: float


def heartbeat_signature(node: core.Node, lease: Any | None) -> tuple[Any, ...]:
    """Everything whose change proves the kubelet alive: the Ready
    condition's heartbeat and the node Lease's renewTime (and identity).
    Statuses are left out, so this controller's own Unknown does not count."""
    ready = condition(node, "Ready")
    beat = ((ready.last_heartbeat_time.seconds, ready.last_heartbeat_time.nanos)
            if ready is not None else None)
    renew = ((lease.metadata.uid, lease.spec.renew_time.seconds, lease.spec.renew_time.nanos)
             if lease is not None else None)
    return (node.metadata.uid, beat, renew)


def observe(previous: Observation | None, node: core.Node, lease: Any | None,
            now: float) -> Observation:
    """The new observation: the probe time moves to ``now`` when the
    heartbeat signature changed (or on first sight), else stays."""
    signature = heartbeat_signature(node, lease)
    if previous is None or previous.signature != signature:
        return Observation(signature, now)
    return previous


def is_stale(observation: Observation, now: float, grace: float) -> bool:
    return now - observation.probe_time > grace


def _stamp(when: datetime.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def unknown_conditions(node: core.Node, now: datetime.datetime
                       ) -> list[core.NodeCondition] | None:
    """The node's conditions once its kubelet is presumed gone: the health
    conditions Unknown (added if never posted), others unchanged; None when
    that is already the case."""
    result = [core.NodeCondition() for _ in node.status.conditions]
    for copy, cond in zip(result, node.status.conditions):
        copy.CopyFrom(cond)
    changed = False
    for type_ in HEALTH_CONDITIONS:
        cond = next((c for c in result if c.type == type_), None)
        if cond is None:
            cond = core.NodeCondition(
                type=type_, status="Unknown", reason="NodeStatusNeverUpdated",
                message="Kubelet never posted node status.")
            cond.last_heartbeat_time.CopyFrom(node.metadata.creation_timestamp)
            cond.last_transition_time.CopyFrom(_stamp(now))
            result.append(cond)
            changed = True
        elif cond.status != "Unknown":
            cond.status = "Unknown"
            cond.reason = "NodeStatusUnknown"
            cond.message = "Kubelet stopped posting node status."
            cond.last_transition_time.CopyFrom(_stamp(now))
            changed = True
    return result if changed else None


# --- taints -------------------------------------------------------------------------------


def desired_managed_taints(node: core.Node) -> set[tuple[str, str]]:
    """The (key, effect) taints the node's conditions call for."""
    wanted: set[tuple[str, str]] = set()
    ready = ready_status(node)
    if ready == "False":
        wanted |= {(NOT_READY, NO_EXECUTE), (NOT_READY, NO_SCHEDULE)}
    elif ready == "Unknown":
        wanted |= {(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)}
    if node.spec.unschedulable:
        wanted.add((UNSCHEDULABLE, NO_SCHEDULE))
    for type_, key in PRESSURE_TAINTS.items():
        cond = condition(node, type_)
        if cond is not None and cond.status == "True":
            wanted.add((key, NO_SCHEDULE))
    return wanted


def taint_changes(node: core.Node, now: datetime.datetime) -> list[core.Taint] | None:
    """The node's taints with the managed ones matching its conditions
    (new NoExecute taints stamped ``timeAdded = now``; kept ones keep their
    stamp), or None when nothing changes."""
    wanted = desired_managed_taints(node)
    kept = [t for t in node.spec.taints
            if (t.key, t.effect) not in MANAGED_TAINTS or (t.key, t.effect) in wanted]
    present = {(t.key, t.effect) for t in kept}
    added = []
    for key, effect in sorted(wanted - present):
        taint = core.Taint(key=key, effect=effect)
        if effect == NO_EXECUTE:
            taint.time_added.CopyFrom(_stamp(now))
        added.append(taint)
    if not added and len(kept) == len(node.spec.taints):
        return None
    result = []
    for taint in kept + added:
        copy = core.Taint()
        copy.CopyFrom(taint)
        result.append(copy)
    return result


# --- eviction -----------------------------------------------------------------------------


def tolerates(toleration: core.Toleration, taint: core.Taint) -> bool:
    """Toleration.ToleratesTaint: same effect (or any), same key (or any,
    with Exists), and Exists or an equal value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and toleration.value == taint.value


def taint_time(taint: core.Taint) -> datetime.datetime | None:
    if not taint.HasField("time_added"):
        return None
    return taint.time_added.ToDatetime(tzinfo=datetime.timezone.utc)


def eviction_time(pod: core.Pod, taints: Iterable[core.Taint],
                  default_added: datetime.datetime) -> datetime.datetime | None:
    """When ``pod`` must leave a node with these NoExecute ``taints``:
    :data:`EVICT_NOW` if one is not tolerated, None if all are tolerated
    forever, else the earliest ``timeAdded + tolerationSeconds`` over the
    taints (the first matching toleration of each counts, as in Kubernetes).
    ``default_added`` stands in for a taint without ``timeAdded``."""
    deadline: datetime.datetime | None = None
    for taint in taints:
        if taint.effect != NO_EXECUTE:
            continue
        match = next((t for t in pod.spec.tolerations if tolerates(t, taint)), None)
        if match is None:
            return EVICT_NOW
        if not match.HasField("toleration_seconds"):
            continue  # tolerated for as long as the taint lasts
        added = taint_time(taint) or default_added
        due = added + datetime.timedelta(seconds=max(0, match.toleration_seconds))
        if deadline is None or due < deadline:
            deadline = due
    return deadline


def pods_to_evict(pods: Iterable[core.Pod], taints: Iterable[core.Taint],
                  now: datetime.datetime, default_added: datetime.datetime | None = None
                  ) -> tuple[list[core.Pod], datetime.datetime | None]:
    """(the pods to delete now, the earliest later deadline among the
    others or None). Pods already terminating are not evicted again."""
    taints = [t for t in taints if t.effect == NO_EXECUTE]
    evict: list[core.Pod] = []
    later: datetime.datetime | None = None
    if not taints:
        return evict, later
    for pod in pods:
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        due = eviction_time(pod, taints, default_added or now)
        if due is None:
            continue
        if due <= now:
            evict.append(pod)
        elif later is None or due < later:
            later = due
    return evict, later


def pods_to_force_delete(node: core.Node | None, pods: Iterable[core.Pod]) -> list[core.Pod]:
    """Terminating pods no kubelet will confirm: those on a node that is
    not Ready (False or Unknown). (A deleted node's pods are all orphans;
    the controller handles that case.)"""
    if node is None or ready_status(node) not in ("False", "Unknown"):
        return []
    return [p for p in pods if p.metadata.HasField("deletion_timestamp")]


def pods_to_mark_not_ready(node: core.Node, pods: Iterable[core.Pod]) -> list[core.Pod]:
    """Pods still reporting Ready on a node whose kubelet is gone
    (MarkPodsNotReady)."""
    if ready_status(node) != "Unknown":
        return []
    return [p for p in pods if any(c.type == "Ready" and c.status == "True"
                                   for c in p.status.conditions)]


# --- the controller -----------------------------------------------------------------------


class NodeLifecycleController:
    """Health, taints, taint-based eviction and pod GC for nodes."""

    NAME = "nodelifecycle"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, node_monitor_grace_period: float = 50.0,
                 node_monitor_period: float = 5.0, node_startup_grace_period: float = 60.0,
                 **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.grace = node_monitor_grace_period
        self.period = node_monitor_period
        self.startup_grace = max(node_startup_grace_period, node_monitor_grace_period)
        self.nodes_api = client.resource("nodes")
        self.pods_api = client.resource("pods")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.nodes = factory.informer("nodes")
        self.pods = factory.informer("pods")
        self.leases = factory.informer("leases", NODE_LEASE_NAMESPACE)
        ensure_indexers(self.pods.store, {POD_NODE_INDEX: pod_node_index})
        self.nodes.add_event_handler(self._enqueue_node, lambda old, new: self._enqueue_node(new),
                                     self._enqueue_node)
        self.leases.add_event_handler(self._enqueue_lease,
                                      lambda old, new: self._enqueue_lease(new),
                                      self._enqueue_lease)
        self.pods.add_event_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                                    self._pod_changed)
        # Owned by sync, one entry per node seen alive.
        self._observed: dict[str, Observation] = {}
        # When untimed NoExecute taints were first seen: (node, key, value) -> time.
        self._taint_seen: dict[tuple[str, str, str], datetime.datetime] = {}
        # UIDs of pods evicted per node, until the cache shows them going.
        self._evicted: dict[str, set[str]] = {}

    # -- handlers: keys only --------------------------------------------------------------------

    def _enqueue_node(self, obj: Any) -> None:
        self.queue.add(object_key(obj))

    def _enqueue_lease(self, obj: Any) -> None:
        lease = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        self.queue.add(lease.metadata.name)

    def _pod_changed(self, obj: Any) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        name = pod.spec.node_name
        if not name:
            return
        node = self.nodes.store.get_by_key(name)
        # Only pods on troubled (or vanished) nodes need the node looked at again.
        if node is None or ready_status(node) in ("False", "Unknown") or any(
                t.effect == NO_EXECUTE for t in node.spec.taints):
            self.queue.add(name)

    # -- running ------------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Wait for the caches, then monitor every node each period while the
        workers reconcile."""
        self.factory.start()
        for informer in (self.nodes, self.pods, self.leases):
            await informer.wait_for_sync()
        log.info("%s controller: caches synced; grace %.1fs, period %.1fs", self.NAME,
                 self.grace, self.period)
        monitor = asyncio.ensure_future(self._monitor())
        try:
            await reconcile_loop(self.NAME, self.queue, self.sync, workers)
        finally:
            monitor.cancel()
            self.queue.shutdown()
            await asyncio.gather(monitor, return_exceptions=True)

    async def _monitor(self) -> None:
        """monitorNodeHealth's loop: every node is looked at each period."""
        while True:
            await self.clock.sleep(self.period)
            for key in self.nodes.store.list_keys():
                self.queue.add(key)

    async def sync(self, name: str) -> None:
        node = self.nodes.store.get_by_key(name)
        if node is None:
            await self._node_gone(name)
            return
        node = await self._update_health(node)
        node = await self._update_taints(node)
        pods = self.pods.store.by_index(POD_NODE_INDEX, name)
        await self._mark_not_ready(node, pods)
        await self._evict(node, pods)
        await self._force_delete(pods_to_force_delete(node, pods), "node is not ready")

    async def _node_gone(self, name: str) -> None:
        """A node this controller knew was deleted: its pods are orphans."""
        if name not in self._observed:
            return
        orphans = self.pods.store.by_index(POD_NODE_INDEX, name)
        await self._force_delete(orphans, "node is gone")
        del self._observed[name]
        self._evicted.pop(name, None)
        for key in [k for k in self._taint_seen if k[0] == name]:
            del self._taint_seen[key]

    async def _update_health(self, node: core.Node) -> core.Node:
        name = node.metadata.name
        lease = self.leases.store.get_by_key(f"{NODE_LEASE_NAMESPACE}/{name}")
        now = self.clock.now()
        observation = observe(self._observed.get(name), node, lease, now)
        self._observed[name] = observation
        grace = self.grace if ready_status(node) is not None else self.startup_grace
        if not is_stale(observation, now, grace):
            # Look again right after the grace would run out if nothing moves.
            self.queue.add_after(name, observation.probe_time + grace - now + 0.01)
            return node
        conditions = unknown_conditions(node, self.clock.wall())
        if conditions is None:
            return node
        updated = core.Node()
        updated.CopyFrom(node)
        del updated.status.conditions[:]
        updated.status.conditions.extend(conditions)
        result = await self.nodes_api.update_status(updated)  # a Conflict is retried
        log.warning("no heartbeat for %.1fs: node status is now Unknown", now -
                    observation.probe_time, extra={"object": name})
        return result

    async def _update_taints(self, node: core.Node) -> core.Node:
        taints = taint_changes(node, self.clock.wall())
        if taints is None:
            return node
        updated = core.Node()
        updated.CopyFrom(node)
        del updated.spec.taints[:]
        updated.spec.taints.extend(taints)
        result = await self.nodes_api.update(updated)  # a Conflict is retried
        log.info("taints now %s", [f"{t.key}:{t.effect}" for t in taints] or "none",
                 extra={"object": node.metadata.name})
        return result

    async def _mark_not_ready(self, node: core.Node, pods: list[core.Pod]) -> None:
        for pod in pods_to_mark_not_ready(node, pods):
            updated = core.Pod()
            updated.CopyFrom(pod)
            now = _stamp(self.clock.wall())
            for cond in updated.status.conditions:
                if cond.type == "Ready":
                    cond.status = "False"
                    cond.last_transition_time.CopyFrom(now)
            try:
                await self.pods_api.update_status(updated)
            except (NotFound, Conflict):
                pass  # gone, or changed: its event brings us back

    def _timed_taints(self, node: core.Node, now: datetime.datetime) -> list[core.Taint]:
        """The node's NoExecute taints, with a first-seen time standing in
        for a missing ``timeAdded``."""
        name = node.metadata.name
        result = []
        for taint in node.spec.taints:
            if taint.effect != NO_EXECUTE:
                continue
            if not taint.HasField("time_added"):
                seen = self._taint_seen.setdefault((name, taint.key, taint.value), now)
                taint = core.Taint(key=taint.key, value=taint.value, effect=taint.effect,
                                   time_added=_stamp(seen))
            result.append(taint)
        return result

    async def _evict(self, node: core.Node, pods: list[core.Pod]) -> None:
        now = self.clock.wall()
        taints = self._timed_taints(node, now)
        if not taints:
            return
        name = node.metadata.name
        # Pods evicted a moment ago may still look alive in the cache: not twice.
        live = {p.metadata.uid for p in pods}
        evicted = self._evicted.setdefault(name, set())
        evicted &= live
        evict, later = pods_to_evict([p for p in pods if p.metadata.uid not in evicted],
                                     taints, now)
        zone = node.metadata.labels.get(ZONE_LABEL, "")
        for pod in evict:
            meta = pod.metadata
            try:
                await self.pods_api.delete(meta.name, meta.namespace, uid=meta.uid)
            except (NotFound, PreconditionFailed):
                continue
            evicted.add(meta.uid)
            EVICTIONS.labels(zone=zone).inc()
            log.info("evicted pod from tainted node %s", node.metadata.name,
                     extra={"object": f"{meta.namespace}/{meta.name}"})
        if later is not None:
            self.queue.add_after(name, (later - now).total_seconds() + 0.01)

    async def _force_delete(self, pods: list[core.Pod], why: str) -> None:
        for pod in pods:
            meta = pod.metadata
            try:
                await self.pods_api.delete(meta.name, meta.namespace, uid=meta.uid,
                                           grace_period_seconds=0)
            except (NotFound, PreconditionFailed):
                continue
            log.info("force-deleted pod: %s", why,
                     extra={"object": f"{meta.namespace}/{meta.name}"})


__all__ = [
    "EVICTIONS", "EVICT_NOW", "MANAGED_TAINTS", "NODE_LEASE_NAMESPACE", "NOT_READY",
    "NodeLifecycleController", "Observation", "UNREACHABLE", "desired_managed_taints",
    "eviction_time", "heartbeat_signature", "is_stale", "observe", "pods_to_evict",
    "pods_to_force_delete", "pods_to_mark_not_ready", "ready_status", "taint_changes",
    "tolerates", "unknown_conditions",
]
