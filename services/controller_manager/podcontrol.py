"""What the workload controllers share: pod predicates, controller
references, pod creation from a template, adoption and release, and the
reconcile-duration metric every controller records.

Kubernetes keeps these in pkg/controller (controller_utils.go,
controller_ref_manager.go) and pkg/api/v1/pod; the rules are copied here so
that the ReplicaSet and Deployment controllers (and the endpoints controller,
which needs the same "ready" test) agree on what a live, ready or available
pod is.

Every write carries the resourceVersion of the object it was computed from,
so a decision made on a stale cache fails with Conflict and is retried from
a fresh read, never applied.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from prometheus_client import Histogram

from services.api import kinds, selectors
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.machinery.errors import ApiError, Conflict, NotFound
from services.machinery.workqueue import WorkQueue, run_workers
from services.machinery.store import NAMESPACE_INDEX, Store, namespace_index

# One histogram for every controller in the process, labelled by controller
# name (the other controllers import it from here).
RECONCILE_DURATION = Histogram(
    "controller_reconcile_duration_seconds",
    "How long one reconcile (sync of one key) takes, by controller.",
    ["controller"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


async def reconcile_loop(name: str, queue: WorkQueue, sync: Callable[[str], Awaitable[None]],
                         workers: int, *, requeue_conflicts: bool = False) -> None:
    """Run ``workers`` over ``queue`` until cancelled, timing every
    ``sync(key)`` into RECONCILE_DURATION; the queue is shut down on the way
    out. With ``requeue_conflicts``, a Conflict (someone wrote first) is
    requeued quietly rather than logged as a failure."""
    async def timed(key: Any) -> None:
        started = time.perf_counter()
        try:
            await sync(str(key))
        except Conflict as err:
            if not requeue_conflicts:
                raise
            log.debug("conflict, retrying: %s", err, extra={"object": key})
            queue.add_rate_limited(key)
        finally:
            RECONCILE_DURATION.labels(controller=name).observe(time.perf_counter() - started)
    try:
        await run_workers(queue, timed, workers)
    finally:
        queue.shutdown()

CONTROLLER_UID_INDEX = "controller_uid"

UTC = datetime.timezone.utc

log = logging.getLogger(__name__)


# --- pod predicates (pkg/api/v1/pod, pkg/controller) ---------------------------------------


def is_terminating(obj: Any) -> bool:
    """Deletion was requested (graceful deletion or finalizers hold it)."""
    return obj.metadata.HasField("deletion_timestamp")


def is_pod_active(pod: core.Pod) -> bool:
    """Counts towards a ReplicaSet's replicas: not finished and not being
    deleted (Kubernetes' IsPodActive)."""
    return pod.status.phase not in ("Succeeded", "Failed") and not is_terminating(pod)


def ready_condition(pod: core.Pod) -> core.PodCondition | None:
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return cond
    return None


def is_pod_ready(pod: core.Pod) -> bool:
    """The pod's Ready condition is True."""
    cond = ready_condition(pod)
    return cond is not None and cond.status == "True"


def pod_ready_time(pod: core.Pod) -> datetime.datetime | None:
    """When the pod last became ready (None if it is not ready, or the
    kubelet gave no transition time)."""
    cond = ready_condition(pod)
    if cond is None or cond.status != "True" or not cond.HasField("last_transition_time"):
        return None
    return cond.last_transition_time.ToDatetime(tzinfo=UTC)


def is_pod_available(pod: core.Pod, min_ready_seconds: int, now: datetime.datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes' IsPodAvailable:
    ready, and either no minimum or the Ready transition is old enough)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = pod_ready_time(pod)
    return since is not None and since + datetime.timedelta(seconds=min_ready_seconds) < now


def max_container_restarts(pod: core.Pod) -> int:
    return max((cs.restart_count for cs in pod.status.container_statuses), default=0)


def timestamp_seconds(ts: Any) -> float:
    return ts.seconds + ts.nanos / 1e9


# --- controller references -----------------------------------------------------------------


def controller_ref(obj: Any) -> meta_pb2.OwnerReference | None:
    """The ownerReference with controller=true, if any (GetControllerOf)."""
    for ref in obj.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            return ref
    return None


def new_controller_ref(owner: Any) -> meta_pb2.OwnerReference:
    """A controller reference to ``owner``: controller=true and
    blockOwnerDeletion=true, as Kubernetes' NewControllerRef."""
    kind = kinds.of_message(owner)
    return meta_pb2.OwnerReference(api_version=kind.api_version, kind=kind.kind,
                                   name=owner.metadata.name, uid=owner.metadata.uid,
                                   controller=True, block_owner_deletion=True)


def controller_uid_index(obj: Any) -> list[str]:
    """Index objects by the UID of their controller (ownerReference)."""
    ref = controller_ref(obj)
    return [ref.uid] if ref is not None and ref.uid else []


def ensure_indexers(store: Store, indexers: Mapping[str, Callable[[Any], list[str]]]) -> None:
    """Add the indexers the store does not have yet: informers are shared,
    and another controller may have registered the same index first."""
    missing = {}
    for name, func in indexers.items():
        try:
            store.index_keys(name, "")
        except KeyError:
            missing[name] = func
    if missing:
        store.add_indexers(missing)


def ensure_workload_indexers(store: Store) -> None:
    """The namespace and controller-UID indexes the workload controllers use."""
    ensure_indexers(store, {NAMESPACE_INDEX: namespace_index,
                            CONTROLLER_UID_INDEX: controller_uid_index})


def copy_of(obj: Any) -> Any:
    """A private copy of a (shared, cached) message, safe to mutate."""
    new = type(obj)()
    new.CopyFrom(obj)
    return new


# --- pods from templates -------------------------------------------------------------------


def pod_from_template(template: core.PodTemplateSpec, owner: Any) -> core.Pod:
    """The pod a controller creates: named ``<owner>-<random>`` by the
    server (generateName), labels, annotations and finalizers from the
    template, a controller reference to ``owner`` (Kubernetes'
    GetPodFromTemplate)."""
    pod = core.Pod()
    meta = pod.metadata
    meta.namespace = owner.metadata.namespace
    meta.generate_name = f"{owner.metadata.name}-"
    meta.labels.update(template.metadata.labels)
    meta.annotations.update(template.metadata.annotations)
    meta.finalizers.extend(template.metadata.finalizers)
    meta.owner_references.append(new_controller_ref(owner))
    pod.spec.CopyFrom(template.spec)
    return pod


# --- adoption and release (controller_ref_manager.go) ----------------------------------------


class ControllerRefManager:
    """Claims objects for one controller: keeps the ones it owns and still
    selects, adopts matching orphans (adds its controller reference) and
    releases owned objects its selector no longer matches (removes it).

    ``can_adopt`` is awaited at most once per claim, before the first
    adoption: it re-reads the owner from the API server so that an owner
    being deleted (or deleted and recreated with another UID) adopts nothing.
    """

    def __init__(self, resource: Any, owner: Any, selector: selectors.LabelSelector,
                 can_adopt: Callable[[], Awaitable[bool]],
                 on_write: Callable[[Any], None] | None = None):
        self.resource = resource
        self.on_write = on_write
        self.owner = owner
        self.selector = selector
        self._can_adopt = can_adopt
        self._adopt_checked: bool | None = None

    async def claim(self, objects: Iterable[Any]) -> list[Any]:
        """The objects this controller owns after adoption and release.

        Returned objects are the updated ones where a write happened, the
        cached ones otherwise. Errors (other than NotFound: the object is
        gone) propagate after every object has been tried, so one failure
        does not stop the rest of the claim.
        """
        claimed: list[Any] = []
        errors: list[Exception] = []
        for obj in objects:
            try:
                result = await self._claim_one(obj)
            except NotFound:
                continue
            except Exception as err:  # noqa: BLE001 - reported after the others are tried
                errors.append(err)
                continue
            if result is not None:
                claimed.append(result)
        if errors:
            raise errors[0]
        return claimed

    async def _claim_one(self, obj: Any) -> Any | None:
        owner_meta = self.owner.metadata
        ref = controller_ref(obj)
        matches = self.selector.matches(obj.metadata.labels)
        if ref is not None:
            if ref.uid != owner_meta.uid:
                return None  # someone else's
            if matches:
                return obj
            if is_terminating(self.owner):
                return None
            await self.release(obj)
            return None
        # An orphan.
        if is_terminating(self.owner) or not matches or is_terminating(obj):
            return None
        if obj.metadata.namespace != owner_meta.namespace:
            return None
        if self._adopt_checked is None:
            self._adopt_checked = await self._can_adopt()
        if not self._adopt_checked:
            return None
        return await self.adopt(obj)

    async def adopt(self, obj: Any) -> Any:
        """Add our controller reference, conditional on the cached
        resourceVersion (Conflict if the object changed meanwhile)."""
        new = copy_of(obj)
        new.metadata.owner_references.append(new_controller_ref(self.owner))
        return self._wrote(await self.resource.update(new))

    async def release(self, obj: Any) -> Any:
        """Remove our controller reference (by UID), conditionally."""
        new = copy_of(obj)
        keep = [r for r in new.metadata.owner_references if r.uid != self.owner.metadata.uid]
        del new.metadata.owner_references[:]
        new.metadata.owner_references.extend(keep)
        return self._wrote(await self.resource.update(new))

    def _wrote(self, obj: Any) -> Any:
        if self.on_write is not None:
            self.on_write(obj)
        return obj


def recheck_owner(resource: Any, owner: Any) -> Callable[[], Awaitable[bool]]:
    """A ``can_adopt`` that reads ``owner`` fresh from the API server
    (Kubernetes' RecheckDeletionTimestamp): adoption is allowed only if it
    still exists with the same UID and is not being deleted."""
    async def check() -> bool:
        try:
            fresh = await resource.get(owner.metadata.name, owner.metadata.namespace)
        except NotFound:
            return False
        return fresh.metadata.uid == owner.metadata.uid and not is_terminating(fresh)
    return check


# --- events -----------------------------------------------------------------------------------


def new_event(obj: Any, type_: str, reason: str, message: str, component: str,
              now: datetime.datetime) -> core.Event:
    """An Event about ``obj`` (in its namespace), as client-go's recorder
    writes one: named ``<object>.<unique suffix>``, counted once."""
    kind = kinds.of_message(obj)
    meta = obj.metadata
    ev = core.Event()
    ev.metadata.name = f"{meta.name}.{uuid.uuid4().hex[:16]}"
    ev.metadata.namespace = meta.namespace or "default"
    ref = ev.involved_object
    ref.kind, ref.api_version = kind.kind, kind.api_version
    ref.namespace, ref.name, ref.uid = meta.namespace, meta.name, meta.uid
    ref.resource_version = meta.resource_version
    ev.type, ev.reason, ev.message = type_, reason, message
    ev.source.component = component
    ev.reporting_component = component
    ev.first_timestamp.FromDatetime(now)
    ev.last_timestamp.FromDatetime(now)
    ev.count = 1
    return ev


class EventRecorder:
    """Best-effort events: a failure to record is logged, never raised, so
    the controller's real work does not depend on the events API."""

    def __init__(self, client: Any, component: str, clock: Any):
        self.api = client.resource("events")
        self.component = component
        self.clock = clock

    async def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        try:
            await self.api.create(new_event(obj, type_, reason, message, self.component,
                                            self.clock.wall()))
        except ApiError as err:
            log.debug("could not record event %s on %s/%s: %s", reason,
                      obj.metadata.namespace, obj.metadata.name, err)


# --- our own writes, until the informer catches up --------------------------------------------


def _rv(obj: Any) -> int:
    try:
        return int(obj.metadata.resource_version or 0)
    except ValueError:
        return 0


class MutationCache:
    """Objects this controller wrote, kept until the informer shows them
    (client-go's MutationCache).

    A controller that reads its cache right after a write would otherwise see
    the old object and decide again on stale numbers; :meth:`newest` returns
    whichever of the cached and the written object is newer, and
    :meth:`extra` lists objects created here that the informer has not
    delivered yet. Entries are dropped once the cache holds the same or a
    newer version, when the object is deleted, or after ``ttl`` seconds.
    """

    def __init__(self, clock: Any, ttl: float = 60.0):
        self.clock = clock
        self.ttl = ttl
        self._written: dict[str, tuple[float, Any]] = {}

    @staticmethod
    def _key(obj: Any) -> str:
        return f"{obj.metadata.namespace}/{obj.metadata.name}"

    def written(self, obj: Any) -> None:
        """Record the object an API write returned."""
        self._written[self._key(obj)] = (self.clock.now(), obj)

    def forget(self, key: str) -> None:
        self._written.pop(key, None)

    def newest(self, cached: Any) -> Any:
        key = self._key(cached)
        entry = self._written.get(key)
        if entry is None:
            return cached
        at, obj = entry
        if (obj.metadata.uid != cached.metadata.uid or _rv(cached) >= _rv(obj)
                or self.clock.now() - at > self.ttl):
            del self._written[key]
            return cached
        return obj

    def extra(self, namespace: str, store: Store) -> list[Any]:
        """Written objects in ``namespace`` the store does not hold yet."""
        found = []
        for key, (at, obj) in list(self._written.items()):
            if obj.metadata.namespace != namespace:
                continue
            if key in store or self.clock.now() - at > self.ttl:
                if key not in store:
                    del self._written[key]
                continue
            found.append(obj)
        return found


__all__ = [
    "CONTROLLER_UID_INDEX", "ControllerRefManager", "EventRecorder", "MutationCache",
    "RECONCILE_DURATION", "controller_ref", "controller_uid_index", "copy_of", "ensure_indexers",
    "ensure_workload_indexers", "is_pod_active", "is_pod_available", "is_pod_ready",
    "is_terminating", "max_container_restarts", "new_controller_ref", "new_event",
    "pod_from_template", "pod_ready_time", "ready_condition", "recheck_owner",
    "timestamp_seconds",
]
