"""The Deployment controller: rolls a deployment's pods from one template
to the next through ReplicaSets (Kubernetes' pkg/controller/deployment).

Each pod template gets one ReplicaSet, named ``<deployment>-<hash>`` after
the template's hash and carrying it as the ``pod-template-hash`` label in
its selector and template, so ReplicaSets of different revisions never
select each other's pods. Revisions are numbered in the
``deployment.kubernetes.io/revision`` annotation; rolling back is putting an
old template back (see :func:`rollout.rolled_back`), which makes its
ReplicaSet the new one again with the next revision number.

One ``sync(key)`` per deployment, reading only the caches:

* claim ReplicaSets (adopt matching orphans, release non-matching ones);
* paused, or resized (a ReplicaSet's desired-replicas annotation differs
  from spec.replicas): scale only, proportionally during a rollout;
* RollingUpdate: grow the new ReplicaSet within maxSurge, else shrink old
  ones within maxUnavailable (:mod:`rollout` does the arithmetic);
* Recreate: old ReplicaSets to zero, wait until their pods are gone, then
  the new one to full size;
* once complete, delete old empty ReplicaSets beyond revisionHistoryLimit;
* status and the Progressing/Available conditions.

Decisions use cautious numbers (:func:`replicaset_view`): a ReplicaSet whose
pods are still being deleted counts at its old size, and no ReplicaSet counts
more available pods than its spec keeps, so stale statuses never let a step
overshoot maxSurge or undercut maxUnavailable. ReplicaSets this controller
just wrote are read back from a :class:`MutationCache` until the informer
catches up.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from services.api import selectors
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.controller_manager.podcontrol import (
    reconcile_loop,
    CONTROLLER_UID_INDEX,
        ControllerRefManager,
    EventRecorder,
    MutationCache,
    controller_ref,
    copy_of,
    ensure_indexers,
    ensure_workload_indexers,
    is_pod_active,
    is_pod_available,
    is_terminating,
    new_controller_ref,
    recheck_owner,
    timestamp_seconds,
)
from services.controller_manager.replicaset import selector_of
from services.controller_manager.rollout import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    Fenceposts,
    RSView,
    compute_hash,
    equal_ignore_hash,
    int_annotation,
    max_revision,
    max_unavailable,
    new_rs_annotations,
    proportional_scale,
    replicas_annotations,
    replicas_of,
    revision_of,
    rolling_new_replicas,
    rolling_old_replicas,
)
from services.machinery import (
    AlreadyExists, ApiError, Client, Clock, NotFound, PreconditionFailed, RealClock,
    SharedInformerFactory, WorkQueue, )
from services.machinery.store import (
    NAMESPACE_INDEX, DeletedFinalStateUnknown, namespace_index, object_key,
)

log = logging.getLogger(__name__)

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

# Condition reasons, as Kubernetes names them.
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_NO_DEADLINE = 2**31 - 1


# --- the pure part: conditions and status ----------------------------------------------------


def get_condition(status: Any, type_: str) -> Any | None:
    return next((c for c in status.conditions if c.type == type_), None)


def new_condition(type_: str, status: str, reason: str, message: str,
                  now: datetime.datetime) -> apps.DeploymentCondition:
    cond = apps.DeploymentCondition(type=type_, status=status, reason=reason, message=message)
    cond.last_update_time.FromDatetime(now)
    cond.last_transition_time.FromDatetime(now)
    return cond


def remove_condition(status: Any, type_: str) -> None:
    keep = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend(keep)


def set_condition(status: Any, cond: apps.DeploymentCondition) -> None:
    """Add or replace the condition of ``cond.type``; unchanged when status
    and reason are the same, and the transition time kept when only the
    reason changed (SetDeploymentCondition)."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    cond = copy_of(cond)
    if current is not None and current.status == cond.status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    remove_condition(status, cond.type)
    status.conditions.append(cond)


def has_progress_deadline(d: Any) -> bool:
    return (d.spec.HasField("progress_deadline_seconds")
            and d.spec.progress_deadline_seconds != _NO_DEADLINE)


def calculate_status(d: Any, all_rs: Sequence[Any], new_rs: Any | None,
                     now: datetime.datetime) -> apps.DeploymentStatus:
    """The deployment's status from its ReplicaSets' statuses, with the
    Available condition (calculateStatus). Other conditions are carried over."""
    available = sum(rs.status.available_replicas for rs in all_rs)
    total_spec = sum(replicas_of(rs) for rs in all_rs)
    status = apps.DeploymentStatus(
        observed_generation=d.metadata.generation,
        replicas=sum(rs.status.replicas for rs in all_rs),
        updated_replicas=new_rs.status.replicas if new_rs is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in all_rs),
        available_replicas=available,
        unavailable_replicas=max(0, total_spec - available),
    )
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.conditions.extend(d.status.conditions)
    if available >= replicas_of(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def deployment_complete(d: Any, status: Any) -> bool:
    """Every replica updated and available, and the latest spec observed."""
    replicas = replicas_of(d)
    return (status.updated_replicas == replicas and status.replicas == replicas
            and status.available_replicas == replicas
            and status.observed_generation >= d.metadata.generation)


def deployment_progressing(d: Any, status: Any) -> bool:
    """More pods updated, ready or available, or fewer old ones, than the
    last recorded status says."""
    old = d.status
    return (status.updated_replicas > old.updated_replicas
            or (status.replicas - status.updated_replicas) < (old.replicas - old.updated_replicas)
            or status.ready_replicas > old.ready_replicas
            or status.available_replicas > old.available_replicas)


def deployment_timed_out(d: Any, status: Any, now: datetime.datetime) -> bool:
    """No progress recorded for progressDeadlineSeconds."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    since = cond.last_update_time.ToDatetime(tzinfo=datetime.timezone.utc)
    return since + datetime.timedelta(seconds=d.spec.progress_deadline_seconds) < now


def rollout_status(d: Any, all_rs: Sequence[Any], new_rs: Any | None,
                   now: datetime.datetime) -> apps.DeploymentStatus:
    """The status after a rollout step, with the Progressing condition
    (syncRolloutStatus): NewReplicaSetAvailable once complete,
    ReplicaSetUpdated while it moves, ProgressDeadlineExceeded when it
    stopped moving for progressDeadlineSeconds."""
    status = calculate_status(d, all_rs, new_rs, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.status, PROGRESSING)
    complete_already = (status.replicas == status.updated_replicas and current is not None
                        and current.reason == NEW_RS_AVAILABLE)
    what = (f'ReplicaSet "{new_rs.metadata.name}"' if new_rs is not None
            else f'Deployment "{d.metadata.name}"')
    if has_progress_deadline(d) and not complete_already:
        if deployment_complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                f"{what} has successfully progressed.", now))
        elif deployment_progressing(d, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{what} is progressing.", now)
            if current is not None:
                if current.status == "True":
                    cond.last_transition_time.CopyFrom(current.last_transition_time)
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                                f"{what} has timed out progressing.", now))
    failure = next((c for rs in all_rs for c in rs.status.conditions
                    if c.type == REPLICA_FAILURE and c.status == "True"), None)
    if failure is not None:
        cond = apps.DeploymentCondition(type=REPLICA_FAILURE, status=failure.status,
                                        reason=failure.reason, message=failure.message)
        cond.last_update_time.CopyFrom(failure.last_transition_time)
        cond.last_transition_time.CopyFrom(failure.last_transition_time)
        set_condition(status, cond)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def replicaset_view(rs: Any, pods: Iterable[Any], now: datetime.datetime) -> RSView:
    """The cautious numbers the rollout arithmetic works on: ``size`` the
    most pods the ReplicaSet may have (its status or the live pods cached,
    whichever is larger), ``available`` the fewest it is sure to keep (its
    status or the cache, whichever is smaller, and never above spec)."""
    replicas = replicas_of(rs)
    active = [p for p in pods if is_pod_active(p)]
    cached_available = sum(1 for p in active
                           if is_pod_available(p, rs.spec.min_ready_seconds, now))
    annotations = rs.metadata.annotations
    return RSView(
        name=rs.metadata.name,
        replicas=replicas,
        available=min(replicas, rs.status.available_replicas, cached_available),
        size=max(rs.status.replicas, len(active)),
        created=timestamp_seconds(rs.metadata.creation_timestamp),
        max_replicas=int_annotation(annotations, MAX_REPLICAS_ANNOTATION),
        desired=int_annotation(annotations, DESIRED_REPLICAS_ANNOTATION),
    )


def find_new_replicaset(d: Any, replicasets: Iterable[Any]) -> Any | None:
    """The ReplicaSet running the deployment's current template (the oldest,
    should several)."""
    ordered = sorted(replicasets, key=lambda rs: (
        timestamp_seconds(rs.metadata.creation_timestamp), rs.metadata.name))
    return next((rs for rs in ordered if equal_ignore_hash(rs.spec.template, d.spec.template)),
                None)


def new_replicaset(d: Any, replicas: int, revision: int, max_replicas: int) -> apps.ReplicaSet:
    """The ReplicaSet for the deployment's current template: named after the
    template hash, which its labels, selector and template carry, and
    controlled by the deployment."""
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    template_hash = compute_hash(d.spec.template, collision)
    rs = apps.ReplicaSet()
    rs.metadata.name = f"{d.metadata.name}-{template_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.owner_references.append(new_controller_ref(d))
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL] = template_hash
    rs.metadata.labels.update(rs.spec.template.metadata.labels)
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[POD_TEMPLATE_HASH_LABEL] = template_hash
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    annotations = new_rs_annotations(d, {}, revision, exists=False, max_replicas=max_replicas)
    rs.metadata.annotations.update(annotations or {})
    return rs


def cleanup_candidates(d: Any, old_rs: Sequence[Any]) -> list[Any]:
    """Old ReplicaSets beyond revisionHistoryLimit that may be deleted:
    lowest revisions first, only those with no replicas wanted or running
    and an up-to-date status (cleanupDeployment)."""
    if not d.spec.HasField("revision_history_limit"):
        return []
    alive = [rs for rs in old_rs if not is_terminating(rs)]
    excess = len(alive) - d.spec.revision_history_limit
    if excess <= 0:
        return []
    alive.sort(key=lambda rs: (revision_of(rs) or 0,
                               timestamp_seconds(rs.metadata.creation_timestamp),
                               rs.metadata.name))
    return [rs for rs in alive[:excess]
            if rs.status.replicas == 0 and replicas_of(rs) == 0
            and rs.metadata.generation <= rs.status.observed_generation]


def old_pods_running(new_rs: Any | None, old_rs: Sequence[Any],
                     pods_by_rs: dict[str, list[Any]]) -> bool:
    """Whether any pod of an old ReplicaSet may still run (terminating ones
    included): Recreate waits for none before starting the new pods."""
    if sum(rs.status.replicas for rs in old_rs) > 0:
        return True
    new_uid = new_rs.metadata.uid if new_rs is not None else None
    for uid, pods in pods_by_rs.items():
        if uid == new_uid:
            continue
        if any(p.status.phase not in ("Succeeded", "Failed") for p in pods):
            return True
    return False


# --- the controller ---------------------------------------------------------------------------


class DeploymentController:
    """Reconciles Deployments through their ReplicaSets; see the module docstring."""

    NAME = "deployment"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.dep_api = client.resource("deployments")
        self.rs_api = client.resource("replicasets")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.events = EventRecorder(client, "deployment-controller", self.clock)
        self.written_rs = MutationCache(self.clock)
        self.written_deployments = MutationCache(self.clock)
        self.deployments = factory.informer("deployments")
        self.replicasets = factory.informer("replicasets")
        self.pods = factory.informer("pods")
        ensure_indexers(self.deployments.store, {NAMESPACE_INDEX: namespace_index})
        ensure_workload_indexers(self.replicasets.store)
        ensure_workload_indexers(self.pods.store)
        self.deployments.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                           self._enqueue)
        self.replicasets.add_event_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_event_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                                    self._pod_changed)

    # -- handlers: keys only -----------------------------------------------------------------------

    def _enqueue(self, obj: Any) -> None:
        self.queue.add(object_key(obj))

    def _owner_key(self, namespace: str, ref: Any) -> str | None:
        if ref.kind != "Deployment":
            return None
        key = f"{namespace}/{ref.name}"
        d = self.deployments.store.get_by_key(key)
        if d is None or d.metadata.uid != ref.uid:
            return None
        return key

    def _matching_deployments(self, rs: Any) -> list[str]:
        keys = []
        for d in self.deployments.store.by_index(NAMESPACE_INDEX, rs.metadata.namespace):
            try:
                selector = selector_of(d)
            except selectors.SelectorError:
                continue
            if not selector.empty and selector.matches(rs.metadata.labels):
                keys.append(object_key(d))
        return keys

    def _rs_added(self, rs: Any) -> None:
        if is_terminating(rs):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            key = self._owner_key(rs.metadata.namespace, ref)
            if key is not None:
                self.queue.add(key)
            return
        for key in self._matching_deployments(rs):
            self.queue.add(key)

    def _rs_updated(self, old: Any, new: Any) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
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
        if ref_changed or old.metadata.labels != new.metadata.labels:
            for key in self._matching_deployments(new):
                self.queue.add(key)

    def _rs_deleted(self, rs: Any) -> None:
        if isinstance(rs, DeletedFinalStateUnknown):
            rs = rs.obj
        self.written_rs.forget(object_key(rs))
        ref = controller_ref(rs)
        if ref is not None:
            key = self._owner_key(rs.metadata.namespace, ref)
            if key is not None:
                self.queue.add(key)

    def _pod_changed(self, pod: Any) -> None:
        """A pod of one of our ReplicaSets changed: its deployment's numbers
        (sizes, availability, Recreate's wait) may have moved."""
        if isinstance(pod, DeletedFinalStateUnknown):
            pod = pod.obj
        ref = controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.replicasets.store.get_by_key(f"{pod.metadata.namespace}/{ref.name}")
        if rs is None or rs.metadata.uid != ref.uid:
            return
        owner = controller_ref(rs)
        if owner is not None:
            key = self._owner_key(rs.metadata.namespace, owner)
            if key is not None:
                self.queue.add(key)

    # -- running -----------------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Wait for the caches, then reconcile until cancelled."""
        self.factory.start()
        for informer in (self.deployments, self.replicasets, self.pods):
            await informer.wait_for_sync()
        log.info("%s controller: caches synced; %d workers", self.NAME, workers)
        await reconcile_loop(self.NAME, self.queue, self.sync, workers, requeue_conflicts=True)

    async def sync(self, key: str) -> None:
        """One reconcile of deployment ``key`` (syncDeployment)."""
        cached = self.deployments.store.get_by_key(key)
        if cached is None:
            self.written_deployments.forget(key)
            return
        d = copy_of(self.written_deployments.newest(cached))
        try:
            selector = selector_of(d)
        except selectors.SelectorError as err:
            log.error("invalid selector: %s", err, extra={"object": key})
            return
        if selector.empty:
            log.warning("deployment selects everything; ignoring it", extra={"object": key})
            return
        rs_list = await self._claim_replicasets(d, selector)
        pods_by_rs = self._pods_by_rs(rs_list)
        step = _Step(self, d, rs_list, pods_by_rs)
        if is_terminating(d):
            await step.sync_status_only()
            return
        await step.check_paused_conditions()
        if d.spec.paused:
            await step.sync_scale()
            return
        if step.is_scaling_event():
            await step.sync_scale()
            return
        if d.spec.strategy.type == "Recreate":
            await step.rollout_recreate()
        else:
            await step.rollout_rolling()

    async def _claim_replicasets(self, d: Any, selector: selectors.LabelSelector) -> list[Any]:
        namespace = d.metadata.namespace
        store = self.replicasets.store
        candidates = [self.written_rs.newest(rs)
                      for rs in store.by_index(NAMESPACE_INDEX, namespace)]
        candidates += self.written_rs.extra(namespace, store)
        manager = ControllerRefManager(self.rs_api, d, selector, recheck_owner(self.dep_api, d),
                                       on_write=self.written_rs.written)
        return await manager.claim(candidates)

    def _pods_by_rs(self, rs_list: Sequence[Any]) -> dict[str, list[Any]]:
        store = self.pods.store
        return {rs.metadata.uid: store.by_index(CONTROLLER_UID_INDEX, rs.metadata.uid)
                for rs in rs_list}


class _Step:
    """One sync of one deployment: the deployment as last written, its
    ReplicaSets and their pods, and the writes that move it on."""

    def __init__(self, ctl: DeploymentController, d: Any, rs_list: list[Any],
                 pods_by_rs: dict[str, list[Any]]):
        self.ctl = ctl
        self.d = d
        self.rs_list = rs_list
        self.pods_by_rs = pods_by_rs
        self.key = object_key(d)
        self.now = ctl.clock.wall()

    # -- reading ----------------------------------------------------------------------------------

    def fenceposts(self) -> Fenceposts:
        return Fenceposts.of(self.d)

    def view(self, rs: Any) -> RSView:
        return replicaset_view(rs, self.pods_by_rs.get(rs.metadata.uid, ()), self.now)

    def split(self) -> tuple[Any | None, list[Any]]:
        new = find_new_replicaset(self.d, self.rs_list)
        olds = [rs for rs in self.rs_list if new is None or rs.metadata.uid != new.metadata.uid]
        return new, olds

    def is_scaling_event(self) -> bool:
        """An active ReplicaSet was sized for a different spec.replicas."""
        replicas = replicas_of(self.d)
        for rs in self.rs_list:
            if replicas_of(rs) > 0:
                desired = int_annotation(rs.metadata.annotations, DESIRED_REPLICAS_ANNOTATION)
                if desired is not None and desired != replicas:
                    return True
        return False

    # -- writing ----------------------------------------------------------------------------------

    async def update_status(self, status: apps.DeploymentStatus) -> None:
        new = copy_of(self.d)
        new.status.CopyFrom(status)
        self.d = await self.ctl.dep_api.update_status(new)
        self.ctl.written_deployments.written(self.d)

    async def set_revision(self, revision: str) -> None:
        """The deployment's revision annotation follows its new ReplicaSet's
        (metadata goes through Update; UpdateStatus only writes status)."""
        if not revision or self.d.metadata.annotations.get(REVISION_ANNOTATION) == revision:
            return
        new = copy_of(self.d)
        new.metadata.annotations[REVISION_ANNOTATION] = revision
        self.d = await self.ctl.dep_api.update(new)
        self.ctl.written_deployments.written(self.d)

    async def scale(self, rs: Any, replicas: int) -> tuple[bool, Any]:
        """Set a ReplicaSet's replicas and its desired/max annotations;
        returns whether the size changed, and the ReplicaSet as written."""
        fp = self.fenceposts()
        size_changed = replicas_of(rs) != replicas
        annotations = replicas_annotations(rs.metadata.annotations, fp.replicas,
                                           fp.replicas + fp.max_surge)
        if not size_changed and annotations is None:
            return False, rs
        new = copy_of(rs)
        new.spec.replicas = replicas
        if annotations is not None:
            new.metadata.annotations.clear()
            new.metadata.annotations.update(annotations)
        updated = await self.ctl.rs_api.update(new)
        self.ctl.written_rs.written(updated)
        self._replace(updated)
        if size_changed:
            direction = "up" if replicas > replicas_of(rs) else "down"
            log.info("scaled %s replica set %s from %d to %d", direction, rs.metadata.name,
                     replicas_of(rs), replicas, extra={"object": self.key})
            await self.ctl.events.event(
                self.d, "Normal", "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs.metadata.name} from {replicas_of(rs)} "
                f"to {replicas}")
        return size_changed, updated

    def _replace(self, rs: Any) -> None:
        self.rs_list = [rs if r.metadata.uid == rs.metadata.uid else r for r in self.rs_list]

    async def get_new_replicaset(self, create: bool) -> tuple[Any | None, list[Any]]:
        """The new ReplicaSet (created if asked and missing) and the old ones,
        with revisions in step (getAllReplicaSetsAndSyncRevision)."""
        new, olds = self.split()
        revision = max_revision(olds) + 1
        fp = self.fenceposts()
        if new is not None:
            annotations = new_rs_annotations(self.d, new.metadata.annotations, revision,
                                             exists=True, max_replicas=fp.replicas + fp.max_surge)
            min_ready_changed = new.spec.min_ready_seconds != self.d.spec.min_ready_seconds
            if annotations is not None or min_ready_changed:
                rs = copy_of(new)
                if annotations is not None:
                    rs.metadata.annotations.clear()
                    rs.metadata.annotations.update(annotations)
                rs.spec.min_ready_seconds = self.d.spec.min_ready_seconds
                new = await self.ctl.rs_api.update(rs)
                self.ctl.written_rs.written(new)
                self._replace(new)
                return new, olds
            await self.set_revision(new.metadata.annotations.get(REVISION_ANNOTATION, ""))
            if has_progress_deadline(self.d) and get_condition(self.d.status, PROGRESSING) is None:
                status = copy_of(self.d.status)
                set_condition(status, new_condition(
                    PROGRESSING, "True", FOUND_NEW_RS,
                    f'Found new replica set "{new.metadata.name}"', self.now))
                await self.update_status(status)
            return new, olds
        if not create:
            return None, olds
        if self.d.spec.strategy.type == "Recreate":
            replicas = fp.replicas
        else:
            replicas = rolling_new_replicas(fp, RSView(name="", replicas=0),
                                            [self.view(rs) for rs in olds])
        wanted = new_replicaset(self.d, replicas, revision, fp.replicas + fp.max_surge)
        created = await self._create_replicaset(wanted)
        self.ctl.written_rs.written(created)
        self.rs_list.append(created)
        await self.set_revision(str(revision))
        return created, olds

    async def _create_replicaset(self, wanted: Any) -> Any:
        try:
            created = await self.ctl.rs_api.create(wanted)
        except AlreadyExists:
            existing = await self.ctl.rs_api.get(wanted.metadata.name, wanted.metadata.namespace)
            ref = controller_ref(existing)
            if ref is not None and ref.uid == self.d.metadata.uid and \
                    equal_ignore_hash(self.d.spec.template, existing.spec.template):
                return existing  # ours: created by an earlier sync the cache has not shown
            # A hash collision: count it, so the next name differs.
            status = copy_of(self.d.status)
            status.collision_count = (status.collision_count + 1
                                      if status.HasField("collision_count") else 1)
            await self.update_status(status)
            raise
        except ApiError as err:
            if has_progress_deadline(self.d):
                status = copy_of(self.d.status)
                set_condition(status, new_condition(
                    PROGRESSING, "False", FAILED_RS_CREATE,
                    f'Failed to create new replica set "{wanted.metadata.name}": {err}',
                    self.now))
                await self.update_status(status)
            raise
        log.info("created replica set %s", created.metadata.name, extra={"object": self.key})
        if replicas_of(created) > 0:
            await self.ctl.events.event(
                self.d, "Normal", "ScalingReplicaSet",
                f"Scaled up replica set {created.metadata.name} to {replicas_of(created)}")
        if has_progress_deadline(self.d):
            status = copy_of(self.d.status)
            set_condition(status, new_condition(
                PROGRESSING, "True", NEW_RS_CREATED,
                f'Created new replica set "{created.metadata.name}"', self.now))
            await self.update_status(status)
        return created

    async def cleanup(self, olds: Sequence[Any]) -> None:
        """Delete old empty ReplicaSets beyond revisionHistoryLimit."""
        for rs in cleanup_candidates(self.d, olds):
            try:
                await self.ctl.rs_api.delete(rs.metadata.name, rs.metadata.namespace,
                                             uid=rs.metadata.uid)
                log.info("deleted old replica set %s", rs.metadata.name,
                         extra={"object": self.key})
            except (NotFound, PreconditionFailed):
                pass  # already gone (or replaced by another of the same name)

    async def sync_status(self, new: Any | None) -> None:
        """Status only, no Progressing estimate (syncDeploymentStatus)."""
        status = calculate_status(self.d, self.rs_list, new, self.now)
        if status != self.d.status:
            await self.update_status(status)

    async def sync_rollout_status(self, new: Any | None) -> None:
        status = rollout_status(self.d, self.rs_list, new, self.now)
        if status != self.d.status:
            await self.update_status(status)
            return
        self.requeue_if_stuck(status)

    def requeue_if_stuck(self, status: Any) -> None:
        """Look again when the progress deadline would pass, so a stalled
        rollout is reported without waiting for an unrelated event."""
        cond = get_condition(self.d.status, PROGRESSING)
        if not has_progress_deadline(self.d) or cond is None:
            return
        if deployment_complete(self.d, status) or cond.reason == TIMED_OUT:
            return
        due = (cond.last_update_time.ToDatetime(tzinfo=datetime.timezone.utc)
               + datetime.timedelta(seconds=self.d.spec.progress_deadline_seconds))
        after = (due - self.now).total_seconds()
        if after < 1.0:
            self.ctl.queue.add_rate_limited(self.key)
        else:
            self.ctl.queue.add_after(self.key, after + 1.0)

    # -- the flows -------------------------------------------------------------------------------

    async def sync_status_only(self) -> None:
        new, _ = self.split()
        await self.sync_status(new)

    async def check_paused_conditions(self) -> None:
        """Progressing=Unknown DeploymentPaused while paused, and
        DeploymentResumed once resumed, so a pause does not count as a stall."""
        if not has_progress_deadline(self.d):
            return
        cond = get_condition(self.d.status, PROGRESSING)
        if cond is not None and cond.reason == TIMED_OUT:
            return
        paused_recorded = cond is not None and cond.reason == PAUSED
        if self.d.spec.paused and not paused_recorded:
            new_cond = new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused",
                                     self.now)
        elif not self.d.spec.paused and paused_recorded:
            new_cond = new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed",
                                     self.now)
        else:
            return
        status = copy_of(self.d.status)
        set_condition(status, new_cond)
        await self.update_status(status)

    async def sync_scale(self) -> None:
        """Paused or resized: scale the ReplicaSets, no rollout (sync)."""
        new, olds = await self.get_new_replicaset(create=False)
        fp = self.fenceposts()
        sizes = proportional_scale(fp, self.view(new) if new is not None else None,
                                   [self.view(rs) for rs in olds])
        by_name = {rs.metadata.name: rs for rs in self.rs_list}
        for name, replicas in sizes.items():
            await self.scale(by_name[name], replicas)
        if self.d.spec.paused:
            await self.cleanup(self._olds(new))
        await self.sync_status(self._current(new))

    def _current(self, rs: Any | None) -> Any | None:
        if rs is None:
            return None
        return next((r for r in self.rs_list if r.metadata.uid == rs.metadata.uid), rs)

    def _olds(self, new: Any | None) -> list[Any]:
        return [rs for rs in self.rs_list if new is None or rs.metadata.uid != new.metadata.uid]

    async def rollout_rolling(self) -> None:
        new, olds = await self.get_new_replicaset(create=True)
        fp = self.fenceposts()
        new_view = self.view(new)
        old_views = [self.view(rs) for rs in olds]
        target = rolling_new_replicas(fp, new_view, old_views)
        if target != new_view.replicas:
            scaled, new = await self.scale(new, target)
            if scaled:
                await self.sync_rollout_status(new)
                return
        plan = rolling_old_replicas(fp, new_view, [v for v in old_views if v.replicas > 0])
        if plan:
            by_name = {rs.metadata.name: rs for rs in olds}
            for name, replicas in plan.items():
                await self.scale(by_name[name], replicas)
            await self.sync_rollout_status(self._current(new))
            return
        if deployment_complete(self.d, self.d.status):
            await self.cleanup(self._olds(new))
        await self.sync_rollout_status(self._current(new))

    async def rollout_recreate(self) -> None:
        new, olds = await self.get_new_replicaset(create=False)
        scaled_down = False
        for rs in olds:
            if replicas_of(rs) > 0:
                scaled, _ = await self.scale(rs, 0)
                scaled_down = scaled_down or scaled
        if scaled_down:
            await self.sync_rollout_status(new)
            return
        olds = self._olds(new)
        if old_pods_running(new, olds, self.pods_by_rs):
            await self.sync_rollout_status(new)
            return
        if new is None:
            new, olds = await self.get_new_replicaset(create=True)
        if replicas_of(new) != replicas_of(self.d):
            _, new = await self.scale(new, replicas_of(self.d))
        if deployment_complete(self.d, self.d.status):
            await self.cleanup(self._olds(new))
        await self.sync_rollout_status(self._current(new))


__all__ = [
    "DeploymentController", "calculate_status", "cleanup_candidates", "deployment_complete",
    "deployment_progressing", "deployment_timed_out", "find_new_replicaset", "get_condition",
    "has_progress_deadline", "new_condition", "new_replicaset", "old_pods_running",
    "replicaset_view", "rollout_status", "set_condition",
]
