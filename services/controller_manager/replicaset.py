"""The ReplicaSet controller: keeps exactly spec.replicas live pods that
match a ReplicaSet's selector (Kubernetes' pkg/controller/replicaset).

Handlers only enqueue ReplicaSet keys: a pod event goes to the ReplicaSet
named by its controller reference, or, for an orphan, to every ReplicaSet in
its namespace whose selector matches it (one of them may adopt it). ``sync``
reads only the cache: it claims pods (adopting matching orphans, releasing
owned pods whose labels no longer match), counts the active ones and creates
or deletes the difference in slow-start batches, deleting the pods that
matter least first (:func:`rollout.pods_to_delete`).

:class:`ControllerExpectations` keep it from counting twice: after asking
for N creations (or these deletions) it does not manage replicas again until
the watch has shown them all, or five minutes have passed.

Status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
observedGeneration, the ReplicaFailure condition) is written with
UpdateStatus only when it changed.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
from collections.abc import Sequence
from typing import Any

from services.api import selectors
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.expectations import ControllerExpectations
from services.controller_manager.podcontrol import (
    reconcile_loop,
        ControllerRefManager,
    EventRecorder,
    controller_ref,
    copy_of,
    ensure_indexers,
    ensure_workload_indexers,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    pod_from_template,
    pod_ready_time,
    recheck_owner,
)
from services.controller_manager.rollout import pods_to_delete, replicas_of, slow_start_batches
from services.machinery import (
    Client, Clock, Conflict, Forbidden, NotFound, PreconditionFailed, RealClock,
    SharedInformerFactory, WorkQueue, )
from services.machinery.store import (
    NAMESPACE_INDEX, DeletedFinalStateUnknown, namespace_index, object_key, split_key,
)

log = logging.getLogger(__name__)

BURST_REPLICAS = 500
REPLICA_FAILURE = "ReplicaFailure"
# Requeue a little after a pod's minReadySeconds pass: availability is a
# strict "more than minReadySeconds ago".
_AVAILABILITY_MARGIN = 0.01


# --- the pure part -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _parse_selector(serialized: bytes) -> selectors.LabelSelector:
    return selectors.from_proto(meta_pb2.LabelSelector.FromString(serialized))


def selector_of(obj: Any) -> selectors.LabelSelector:
    """The parsed spec.selector of a ReplicaSet or Deployment (memoized by
    content; raises SelectorError)."""
    return _parse_selector(obj.spec.selector.SerializeToString(deterministic=True))


def calculate_status(rs: apps.ReplicaSet, pods: Sequence[core.Pod],
                     manage_error: Exception | None, now: datetime.datetime
                     ) -> apps.ReplicaSetStatus:
    """The status ``rs`` should report for its claimed active ``pods``
    (calculateStatus): counts, and a ReplicaFailure condition while creating
    or deleting pods fails. observedGeneration is left for the writer."""
    status = apps.ReplicaSetStatus()
    status.CopyFrom(rs.status)
    template_labels = rs.spec.template.metadata.labels
    fully_labeled = ready = available = 0
    for pod in pods:
        if all(pod.metadata.labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, rs.spec.min_ready_seconds, now):
                available += 1
    failure = next((c for c in status.conditions if c.type == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - replicas_of(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        cond = status.conditions.add(type=REPLICA_FAILURE, status="True", reason=reason,
                                     message=str(manage_error))
        cond.last_transition_time.FromDatetime(now)
    elif manage_error is None and failure is not None:
        keep = [c for c in status.conditions if c.type != REPLICA_FAILURE]
        del status.conditions[:]
        status.conditions.extend(keep)
    status.replicas = len(pods)
    status.fully_labeled_replicas = fully_labeled
    status.ready_replicas = ready
    status.available_replicas = available
    return status


def next_availability_check(rs: apps.ReplicaSet, pods: Sequence[core.Pod],
                            now: datetime.datetime) -> float | None:
    """Seconds until the next ready pod becomes available under
    minReadySeconds (None if none is waiting): when to look again."""
    if rs.spec.min_ready_seconds <= 0:
        return None
    waits = []
    for pod in pods:
        since = pod_ready_time(pod)
        if since is None or is_pod_available(pod, rs.spec.min_ready_seconds, now):
            continue
        due = since + datetime.timedelta(seconds=rs.spec.min_ready_seconds)
        waits.append(max(0.0, (due - now).total_seconds()) + _AVAILABILITY_MARGIN)
    return min(waits) if waits else None


# --- the controller ------------------------------------------------------------------------


class ReplicaSetController:
    """Reconciles ReplicaSets against their pods; see the module docstring.

    Options: ``burst_replicas`` (most pods created or deleted in one sync,
    default 500).
    """

    NAME = "replicaset"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, burst_replicas: int = BURST_REPLICAS,
                 **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.burst_replicas = burst_replicas
        self.rs_api = client.resource("replicasets")
        self.pod_api = client.resource("pods")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.expectations = ControllerExpectations(self.clock)
        self.events = EventRecorder(client, "replicaset-controller", self.clock)
        self.replicasets = factory.informer("replicasets")
        self.pods = factory.informer("pods")
        ensure_indexers(self.replicasets.store, {NAMESPACE_INDEX: namespace_index})
        ensure_workload_indexers(self.pods.store)
        self.replicasets.add_event_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- handlers: keys only ------------------------------------------------------------------

    def _rs_added(self, rs: Any) -> None:
        self.queue.add(object_key(rs))

    def _rs_updated(self, old: Any, new: Any) -> None:
        self.queue.add(object_key(new))

    def _rs_deleted(self, rs: Any) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner_key(self, namespace: str, ref: Any) -> str | None:
        """The key of the ReplicaSet ``ref`` names, if it is one we cache
        (same name and UID)."""
        if ref.kind != "ReplicaSet":
            return None
        key = f"{namespace}/{ref.name}"
        rs = self.replicasets.store.get_by_key(key)
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        return key

    def _matching_replicasets(self, pod: Any) -> list[str]:
        """Keys of the ReplicaSets in the pod's namespace that select it."""
        keys = []
        for rs in self.replicasets.store.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            try:
                selector = selector_of(rs)
            except selectors.SelectorError:
                continue
            if not selector.empty and selector.matches(pod.metadata.labels):
                keys.append(object_key(rs))
        return keys

    def _pod_added(self, pod: Any) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            # Seen for the first time already terminating (e.g. after a restart).
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            key = self._owner_key(pod.metadata.namespace, ref)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for key in self._matching_replicasets(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Any, new: Any) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a resync: pods are resynced through their ReplicaSets
        labels_changed = old.metadata.labels != new.metadata.labels
        if new.metadata.HasField("deletion_timestamp"):
            # Graceful deletion: count it now, not when the kubelet confirms.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        new_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = (new_ref is None) != (old_ref is None) or (
            new_ref is not None and old_ref is not None and new_ref.uid != old_ref.uid)
        if ref_changed and old_ref is not None:
            key = self._owner_key(old.metadata.namespace, old_ref)
            if key is not None:
                self.queue.add(key)
        if new_ref is not None:
            key = self._owner_key(new.metadata.namespace, new_ref)
            if key is not None:
                self.queue.add(key)
            return
        if labels_changed or ref_changed:
            for key in self._matching_replicasets(new):
                self.queue.add(key)

    def _pod_deleted(self, pod: Any) -> None:
        if isinstance(pod, DeletedFinalStateUnknown):
            pod = pod.obj
        ref = controller_ref(pod)
        if ref is None:
            return
        key = self._owner_key(pod.metadata.namespace, ref)
        if key is None:
            return
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- running --------------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Wait for the caches, then reconcile until cancelled."""
        self.factory.start()
        for informer in (self.replicasets, self.pods):
            await informer.wait_for_sync()
        log.info("%s controller: caches synced; %d workers", self.NAME, workers)
        await reconcile_loop(self.NAME, self.queue, self.sync, workers, requeue_conflicts=True)

    async def sync(self, key: str) -> None:
        """Bring ReplicaSet ``key`` to spec.replicas pods and report its status."""
        namespace, _ = split_key(key)
        rs = self.replicasets.store.get_by_key(key)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_of(rs)
        except selectors.SelectorError as err:
            log.error("invalid selector: %s", err, extra={"object": key})
            return
        candidates = [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace)
                      if is_pod_active(p)]
        manager = ControllerRefManager(self.pod_api, rs, selector,
                                       recheck_owner(self.rs_api, rs))
        pods = await manager.claim(candidates)
        manage_error: Exception | None = None
        if needs_sync and not rs.metadata.HasField("deletion_timestamp"):
            try:
                await self._manage_replicas(key, rs, pods)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - reported in status, then retried
                manage_error = err
        now = self.clock.wall()
        status = calculate_status(rs, pods, manage_error, now)
        await self._update_status(rs, status)
        if manage_error is not None:
            raise manage_error
        delay = next_availability_check(rs, pods, now)
        if delay is not None:
            self.queue.add_after(key, delay)

    async def _manage_replicas(self, key: str, rs: Any, pods: list[Any]) -> None:
        diff = len(pods) - replicas_of(rs)
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete_pods(key, rs, pods, min(diff, self.burst_replicas))

    async def _create_pods(self, key: str, rs: Any, count: int) -> None:
        self.expectations.expect_creations(key, count)
        names: list[str] = []
        error: BaseException | None = None
        for batch in slow_start_batches(count):
            results = await asyncio.gather(*(self._create_pod(rs) for _ in range(batch)),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            names.extend(r for r in results if isinstance(r, str))
            if failures:
                error = failures[0]
                break
        # The watch will never show the pods not created: stop expecting them.
        for _ in range(count - len(names)):
            self.expectations.creation_observed(key)
        if names:
            log.info("created %d pods", len(names), extra={"object": key})
            await self.events.event(rs, "Normal", "SuccessfulCreate",
                                    f"Created pod{'s' if len(names) > 1 else ''}: "
                                    f"{_name_list(names)}")
        if error is not None:
            await self.events.event(rs, "Warning", "FailedCreate",
                                    f"Error creating: {error}")
            raise error

    async def _create_pod(self, rs: Any) -> str | None:
        try:
            pod = await self.pod_api.create(pod_from_template(rs.spec.template, rs))
        except (Forbidden, PreconditionFailed) as err:
            if isinstance(err, PreconditionFailed) and "being terminated" not in str(err):
                raise
            # The namespace is going away: nothing to retry.
            log.info("pod creation refused: %s", err, extra={"object": object_key(rs)})
            return None
        return str(pod.metadata.name)

    async def _delete_pods(self, key: str, rs: Any, pods: list[Any], count: int) -> None:
        victims = pods_to_delete(pods, count)
        self.expectations.expect_deletions(key, [object_key(p) for p in victims])
        results = await asyncio.gather(
            *(self.pod_api.delete(p.metadata.name, p.metadata.namespace, uid=p.metadata.uid)
              for p in victims),
            return_exceptions=True)
        error: BaseException | None = None
        for pod, result in zip(victims, results):
            if isinstance(result, BaseException):
                # The watch will not show this deletion: stop expecting it.
                self.expectations.deletion_observed(key, object_key(pod))
                if not isinstance(result, (NotFound, PreconditionFailed)) and error is None:
                    error = result
        deleted = [p.metadata.name for p, r in zip(victims, results)
                   if not isinstance(r, BaseException)]
        if deleted:
            log.info("deleted %d pods", len(deleted), extra={"object": key})
            await self.events.event(rs, "Normal", "SuccessfulDelete",
                                    f"Deleted pod{'s' if len(deleted) > 1 else ''}: "
                                    f"{_name_list(deleted)}")
        if error is not None:
            await self.events.event(rs, "Warning", "FailedDelete", f"Error deleting: {error}")
            raise error

    async def _update_status(self, rs: Any, status: apps.ReplicaSetStatus) -> None:
        """UpdateStatus only when something changed; one fresh re-read and
        retry on Conflict (updateReplicaSetStatus)."""
        generation = rs.metadata.generation
        if rs.status == _with_generation(status, rs.status.observed_generation) and \
                rs.status.observed_generation == generation:
            return
        current = rs
        for attempt in range(2):
            new = copy_of(current)
            new.status.CopyFrom(_with_generation(status, current.metadata.generation))
            try:
                await self.rs_api.update_status(new)
                return
            except Conflict:
                if attempt == 1:
                    raise
                current = await self.rs_api.get(rs.metadata.name, rs.metadata.namespace)
                if current.metadata.uid != rs.metadata.uid:
                    return
            except NotFound:
                return


def _name_list(names: Sequence[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _with_generation(status: apps.ReplicaSetStatus, generation: int) -> apps.ReplicaSetStatus:
    copy = apps.ReplicaSetStatus()
    copy.CopyFrom(status)
    copy.observed_generation = generation
    return copy


__all__ = ["BURST_REPLICAS", "ReplicaSetController", "calculate_status",
           "next_availability_check", "selector_of"]
