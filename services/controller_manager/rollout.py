"""Rollout arithmetic: pure functions the workload controllers (and the CLI)
share, with no I/O, so each rule is unit-tested on plain numbers.

* Fenceposts: maxSurge/maxUnavailable from absolute numbers or percentages,
  surge rounded up and unavailable down, both zero meaning unavailable 1
  (Kubernetes' ResolveFenceposts).
* One step of a rolling update: how far the new ReplicaSet may grow and how
  far the old ones may shrink (rolling.go), and proportional scaling when the
  deployment is resized mid-rollout (sync.go ``scale``), over
  :class:`RSView` numbers.
* The pod-template hash that names a deployment's ReplicaSets, revisions
  and the rollback helpers ``kyb rollout undo|history`` import.
* The ReplicaSet controller's slow-start batches and which pods it deletes
  first (controller_utils.go ActivePodsWithRanks).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"

# Deployment annotations that belong to the controller, not the user: never
# copied from a deployment to its ReplicaSets nor back on rollback.
SKIPPED_ANNOTATIONS = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, ROLLBACK_TO_ANNOTATION,
})

MAX_REVISION_HISTORY_CHARS = 2000

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


# --- fenceposts -------------------------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString (message, int or "N%" string) as a number of pods out
    of ``total``: percentages rounded up or down (GetScaledValueFromIntOrPercent).
    An unset IntOrString is 0. Raises ValueError for a malformed percentage."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        which = value.WhichOneof("value")
        if which is None:
            return 0
        if which == "int_value":
            return value.int_value
        value = value.str_value
    if not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {value!r}")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise ValueError(f"invalid value {value!r}: not a percentage") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """``(surge, unavailable)`` for ``desired`` replicas. Both resolving to
    zero (e.g. 10% of 3 unavailable, 0 surge) gives unavailable 1, so a
    rollout can always make progress."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(deployment: Any) -> bool:
    return deployment.spec.strategy.type in ("RollingUpdate", "")


def _bounds(deployment: Any) -> tuple[Any, Any]:
    ru = deployment.spec.strategy.rolling_update
    surge = ru.max_surge if ru.max_surge.WhichOneof("value") else DEFAULT_MAX_SURGE
    unavailable = (ru.max_unavailable if ru.max_unavailable.WhichOneof("value")
                   else DEFAULT_MAX_UNAVAILABLE)
    return surge, unavailable


def replicas_of(obj: Any) -> int:
    """spec.replicas, defaulting to 1 as the API server does."""
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def max_surge(deployment: Any) -> int:
    """Pods a rolling deployment may run above spec.replicas (0 for Recreate)."""
    if not is_rolling_update(deployment):
        return 0
    surge, unavailable = _bounds(deployment)
    return resolve_fenceposts(surge, unavailable, replicas_of(deployment))[0]


def max_unavailable(deployment: Any) -> int:
    """Pods a rolling deployment may have unavailable (0 for Recreate or no
    replicas; never more than spec.replicas)."""
    replicas = replicas_of(deployment)
    if not is_rolling_update(deployment) or replicas == 0:
        return 0
    surge, unavailable = _bounds(deployment)
    return min(resolve_fenceposts(surge, unavailable, replicas)[1], replicas)


# --- one rollout step, over plain numbers -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RSView:
    """What the arithmetic needs to know about one ReplicaSet.

    ``replicas`` is spec.replicas. ``size`` counts the pods that may exist
    (the larger of spec, status and what the cache shows), so a ReplicaSet
    still deleting pods is not counted as already small. ``available`` is a
    cautious count of available pods: never more than spec.replicas, since a
    ReplicaSet scaled down deletes its not-ready pods first and keeps at most
    that many. ``created`` orders ReplicaSets of equal size; ``max_replicas``
    and ``desired`` are the deployment.kubernetes.io annotations.
    """

    name: str
    replicas: int
    available: int = 0
    size: int = 0
    created: float = 0.0
    max_replicas: int | None = None
    desired: int | None = None

    @property
    def pods(self) -> int:
        return max(self.replicas, self.size)


@dataclasses.dataclass(frozen=True)
class Fenceposts:
    """A deployment's numbers: spec.replicas, resolved maxSurge and
    maxUnavailable, status.replicas (the fallback for proportions) and
    whether the strategy is RollingUpdate."""

    replicas: int
    max_surge: int = 0
    max_unavailable: int = 0
    status_replicas: int = 0
    rolling: bool = True

    @property
    def min_available(self) -> int:
        return self.replicas - self.max_unavailable if self.rolling else 0

    @classmethod
    def of(cls, deployment: Any) -> Fenceposts:
        return cls(replicas=replicas_of(deployment), max_surge=max_surge(deployment),
                   max_unavailable=max_unavailable(deployment),
                   status_replicas=deployment.status.replicas,
                   rolling=is_rolling_update(deployment))


def _by_creation(views: Iterable[RSView], newest_first: bool = False) -> list[RSView]:
    """Oldest first (ties by name), as ReplicaSetsByCreationTimestamp."""
    ordered = sorted(views, key=lambda v: (v.created, v.name))
    return ordered[::-1] if newest_first else ordered


def rolling_new_replicas(d: Fenceposts, new: RSView, olds: Sequence[RSView]) -> int:
    """The new ReplicaSet's replicas for this step (reconcileNewReplicaSet +
    NewRSNewReplicas): never more pods in all than replicas + maxSurge,
    never more new ones than replicas."""
    if new.replicas >= d.replicas:
        return d.replicas
    current = new.pods + sum(o.pods for o in olds)
    max_total = d.replicas + d.max_surge
    if current >= max_total:
        return new.replicas
    return new.replicas + min(max_total - current, d.replicas - new.replicas)


def rolling_old_replicas(d: Fenceposts, new: RSView, olds: Sequence[RSView]) -> dict[str, int]:
    """New replicas for the old ReplicaSets this step (reconcileOldReplicaSets):
    first shrink them by their unavailable pods, oldest first, then by
    available ones while more than replicas - maxUnavailable stay available.
    Only changed ReplicaSets are returned."""
    if sum(o.replicas for o in olds) == 0:
        return {}
    min_available = d.min_available
    max_scaled_down = sum(o.replicas for o in olds) + min(new.available, new.replicas) \
        - min_available
    if max_scaled_down <= 0:
        return {}
    targets = {o.name: o.replicas for o in olds}
    # Unhealthy replicas first: they cost no availability and could block the rollout.
    cleaned = 0
    for old in _by_creation(olds):
        if cleaned >= max_scaled_down:
            break
        unavailable = old.replicas - min(old.available, old.replicas)
        if old.replicas == 0 or unavailable <= 0:
            continue
        step = min(max_scaled_down - cleaned, unavailable)
        targets[old.name] = old.replicas - step
        cleaned += step
    # Then healthy ones, down to the minimum availability.
    available = min(new.available, new.replicas) + sum(
        min(o.available, targets[o.name]) for o in olds)
    if available > min_available:
        budget = available - min_available
        scaled = 0
        for old in _by_creation(olds):
            if scaled >= budget:
                break
            if targets[old.name] == 0:
                continue
            step = min(targets[old.name], budget - scaled)
            targets[old.name] -= step
            scaled += step
    return {o.name: targets[o.name] for o in olds if targets[o.name] != o.replicas}


def find_active_or_latest(new: RSView | None, olds: Sequence[RSView]) -> RSView | None:
    """The only ReplicaSet with replicas, or the newest if none has any;
    None when several have replicas (they scale proportionally)."""
    if new is None and not olds:
        return None
    olds_newest_first = _by_creation(olds, newest_first=True)
    active = [v for v in [*olds_newest_first, new] if v is not None and v.replicas > 0]
    if not active:
        return new if new is not None else olds_newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d: Fenceposts, new: RSView | None) -> bool:
    """The new ReplicaSet runs the full deployment, all of it available."""
    return (new is not None and new.replicas == d.replicas and new.desired == d.replicas
            and new.available == d.replicas)


def _fraction(view: RSView, d: Fenceposts) -> int:
    """How many replicas ``view`` gains (or loses) when the deployment goes
    from its annotated max-replicas to ``replicas + maxSurge``."""
    if d.replicas == 0:
        return -view.replicas
    deployment_max = d.replicas + d.max_surge
    annotated = view.max_replicas if view.max_replicas is not None else d.status_replicas
    if annotated <= 0:
        return 0  # no base to scale from; the leftover goes to the largest
    return math.floor(view.replicas * deployment_max / annotated + 0.5) - view.replicas


def _proportion(view: RSView, d: Fenceposts, to_add: int, added: int) -> int:
    if view.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(view, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _size_order(views: Iterable[RSView], newer_first: bool) -> list[RSView]:
    """Largest first; among equals newer first (scaling up) or older first
    (scaling down), as ReplicaSetsBySizeNewer / BySizeOlder."""
    def compare(a: RSView, b: RSView) -> int:
        if a.replicas != b.replicas:
            return b.replicas - a.replicas
        older = (a.created, a.name) < (b.created, b.name)
        if newer_first:
            return 1 if older else -1
        return -1 if older else 1
    return sorted(views, key=functools.cmp_to_key(compare))


def proportional_scale(d: Fenceposts, new: RSView | None,
                       olds: Sequence[RSView]) -> dict[str, int]:
    """Replicas for every ReplicaSet when the deployment's size changed
    (sync.go ``scale``): one active ReplicaSet takes the whole size; a
    saturated new one leaves the old ones at zero; otherwise, for a rolling
    update, the pods added or removed are spread over the active ReplicaSets
    in proportion to their size, the rounding leftover going to the largest.

    Returns the replicas of every ReplicaSet it considered (unchanged ones
    included: their desired/max annotations need refreshing too).
    """
    single = find_active_or_latest(new, olds)
    if single is not None:
        return {single.name: d.replicas}
    if is_saturated(d, new):
        return {o.name: 0 for o in olds if o.replicas > 0}
    if not d.rolling:
        return {}
    active = [v for v in [*olds, new] if v is not None and v.replicas > 0]
    allowed = d.replicas + d.max_surge if d.replicas > 0 else 0
    to_add = allowed - sum(v.replicas for v in active)
    if to_add > 0:
        # Never add pods that would push the ones still present over the limit.
        to_add = min(to_add, max(0, allowed - sum(v.pods for v in active)))
    if to_add > 0:
        active = _size_order(active, newer_first=True)
    elif to_add < 0:
        active = _size_order(active, newer_first=False)
    sizes: dict[str, int] = {}
    added = 0
    for view in active:
        part = _proportion(view, d, to_add, added)
        sizes[view.name] = view.replicas + part
        added += part
    if to_add != 0 and active:
        first = active[0].name
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def replicas_annotations(annotations: Mapping[str, str], desired: int,
                         max_replicas: int) -> dict[str, str] | None:
    """``annotations`` with desired-replicas and max-replicas set, or None
    if they already say so."""
    want = {DESIRED_REPLICAS_ANNOTATION: str(desired), MAX_REPLICAS_ANNOTATION: str(max_replicas)}
    if all(annotations.get(k) == v for k, v in want.items()):
        return None
    return {**annotations, **want}


def int_annotation(annotations: Mapping[str, str], key: str) -> int | None:
    try:
        return int(annotations[key])
    except (KeyError, ValueError):
        return None


# --- the pod-template hash ------------------------------------------------------------------------

_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _fnv1a32(data: bytes, h: int = _FNV_OFFSET) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Map characters onto consonants and digits that spell no words
    (Kubernetes' rand.SafeEncodeString)."""
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in text)


def compute_hash(template: core.PodTemplateSpec, collision_count: int | None = None) -> str:
    """The pod-template-hash label value: FNV-1a over the template's
    deterministic serialization (and the collision count, when a hash has
    collided before), encoded as Kubernetes' ComputeHash does."""
    h = _fnv1a32(template.SerializeToString(deterministic=True))
    if collision_count is not None:
        h = _fnv1a32((collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def without_hash(template: core.PodTemplateSpec) -> core.PodTemplateSpec:
    copy = core.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return copy


def equal_ignore_hash(a: core.PodTemplateSpec, b: core.PodTemplateSpec) -> bool:
    """Templates equal but for the pod-template-hash label."""
    return without_hash(a) == without_hash(b)


# --- revisions and rollback ---------------------------------------------------------------------


class RolloutError(Exception):
    """A rollout command that cannot be carried out; ``str()`` is the one
    line to show the user."""


class RevisionNotFound(RolloutError, LookupError):
    """The requested revision (or any previous one) is not in the history."""


class RolloutFailed(RolloutError):
    """The rollout cannot proceed or succeed as asked: the deployment is
    paused (no undo), its progress deadline passed, or it runs another
    revision than the one waited for."""


def revision_of(obj: Any) -> int | None:
    """The revision annotation as a number: 0 when absent, None when it
    cannot be parsed (such objects are skipped, as Kubernetes does)."""
    text = obj.metadata.annotations.get(REVISION_ANNOTATION)
    if text is None:
        return 0
    try:
        return int(text)
    except ValueError:
        return None


def max_revision(replicasets: Iterable[Any]) -> int:
    return max((r for r in map(revision_of, replicasets) if r is not None), default=0)


def owned_by(deployment: Any, replicasets: Iterable[Any]) -> list[Any]:
    """The ReplicaSets whose controller reference is ``deployment``."""
    uid = deployment.metadata.uid
    return [rs for rs in replicasets
            if any(ref.uid == uid and ref.HasField("controller") and ref.controller
                   for ref in rs.metadata.owner_references)]


def revision_history(replicasets: Iterable[Any]) -> list[tuple[int, Any]]:
    """``(revision, replicaset)`` for every ReplicaSet with a revision,
    oldest revision first (what ``kyb rollout history`` prints). Pass the
    deployment's ReplicaSets (see :func:`owned_by`)."""
    found = [(rev, rs) for rs in replicasets
             if (rev := revision_of(rs)) is not None and rev > 0]
    return sorted(found, key=lambda pair: (pair[0], pair[1].metadata.name))


def rollback_source(deployment: Any, replicasets: Iterable[Any], to_revision: int = 0) -> Any:
    """The ReplicaSet holding revision ``to_revision`` of ``deployment``
    (0: the one before the latest), among those it controls. Raises
    :class:`RevisionNotFound` (kubectl's deploymentRevision), or
    :class:`RolloutFailed` for a paused deployment (kubectl refuses to undo
    those too)."""
    if deployment.spec.paused:
        raise RolloutFailed("you cannot rollback a paused deployment; resume it first with "
                            "'kyb rollout resume' and try again")
    history = revision_history(owned_by(deployment, replicasets))
    if to_revision < 0:
        raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
    if to_revision > 0:
        for rev, rs in history:
            if rev == to_revision:
                return rs
        raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
    if len(history) < 2:
        raise RevisionNotFound(
            f'no rollout history found for deployment "{deployment.metadata.name}"')
    return history[-2][1]


def rollback_template(deployment: Any, replicasets: Iterable[Any],
                      to_revision: int = 0) -> core.PodTemplateSpec | None:
    """The pod template to put back into ``deployment`` to roll back to
    ``to_revision`` (0: the previous revision), without the
    pod-template-hash label; None when the deployment already runs that
    template (kubectl says "skipped rollback"). Raises
    :class:`RevisionNotFound` when there is no such revision and
    :class:`RolloutFailed` when the deployment is paused (both are
    :class:`RolloutError`).

    ``replicasets``: the namespace's ReplicaSets (or any superset of the
    deployment's: only those it controls are considered).
    """
    source = rollback_source(deployment, replicasets, to_revision)
    if equal_ignore_hash(source.spec.template, deployment.spec.template):
        return None
    return without_hash(source.spec.template)


def rollback_annotations(deployment: Any, source: Any) -> dict[str, str]:
    """The deployment's annotations after rolling back to ``source``: the
    controller's own kept, the user's taken from the ReplicaSet (e.g. its
    change-cause), as kubectl does."""
    kept = {k: v for k, v in deployment.metadata.annotations.items() if k in SKIPPED_ANNOTATIONS}
    kept.update({k: v for k, v in source.metadata.annotations.items()
                 if k not in SKIPPED_ANNOTATIONS})
    return kept


def rolled_back(deployment: Any, replicasets: Iterable[Any], to_revision: int = 0) -> Any | None:
    """A copy of ``deployment`` rolled back to ``to_revision`` (template and
    annotations), ready to send with Update; None if there is nothing to
    do. Raises :class:`RevisionNotFound`."""
    replicasets = list(replicasets)
    source = rollback_source(deployment, replicasets, to_revision)
    if equal_ignore_hash(source.spec.template, deployment.spec.template):
        return None
    new = type(deployment)()
    new.CopyFrom(deployment)
    new.spec.template.CopyFrom(without_hash(source.spec.template))
    new.metadata.annotations.clear()
    new.metadata.annotations.update(rollback_annotations(deployment, source))
    return new


def rollout_status_message(deployment: Any, revision: int = 0) -> tuple[str, bool]:
    """What ``kyb rollout status`` prints for ``deployment``, and whether
    the rollout is done (kubectl's DeploymentStatusViewer). Raises
    :class:`RolloutFailed` once the progress deadline is exceeded, or when
    ``revision`` is given and is not the deployment's."""
    name = deployment.metadata.name
    if revision > 0:
        running = revision_of(deployment) or 0
        if running != revision:
            raise RolloutFailed(f"desired revision ({revision}) is different from the running "
                                f"revision ({running})")
    status = deployment.status
    if deployment.metadata.generation > status.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    progressing = next((c for c in status.conditions if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    replicas = replicas_of(deployment)
    if status.updated_replicas < replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {status.updated_replicas} '
                f"out of {replicas} new replicas have been updated...", False)
    if status.replicas > status.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.replicas - status.updated_replicas} old replicas are pending "
                "termination...", False)
    if status.available_replicas < status.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.available_replicas} of {status.updated_replicas} updated replicas "
                "are available...", False)
    return f'deployment "{name}" successfully rolled out', True


def new_rs_annotations(deployment: Any, rs_annotations: Mapping[str, str], new_revision: int,
                       *, exists: bool, max_replicas: int) -> dict[str, str] | None:
    """The new ReplicaSet's annotations (SetNewReplicaSetAnnotations): the
    deployment's own annotations copied, the revision raised to
    ``new_revision`` if lower (keeping the old one in revision-history when
    an old ReplicaSet becomes new again on rollback), and, for one about to
    be created, the replica annotations. None when nothing changes."""
    result = dict(rs_annotations)
    for key, value in deployment.metadata.annotations.items():
        if key not in SKIPPED_ANNOTATIONS:
            result[key] = value
    old = rs_annotations.get(REVISION_ANNOTATION)
    try:
        old_number: int | None = int(old) if old else 0
    except ValueError:
        old_number = None  # not ours to fix: leave the revision alone
    changed = result != dict(rs_annotations)
    if old_number is not None and old_number < new_revision:
        result[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old is not None:
            history = [h for h in result.get(REVISION_HISTORY_ANNOTATION, "").split(",") if h]
            history.append(old)
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            result[REVISION_HISTORY_ANNOTATION] = ",".join(history)
    if not exists:
        replicas = replicas_of(deployment)
        result[DESIRED_REPLICAS_ANNOTATION] = str(replicas)
        result[MAX_REPLICAS_ANNOTATION] = str(max_replicas)
        changed = True
    return result if changed else None


# --- the ReplicaSet controller's arithmetic -----------------------------------------------------


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes for ``count`` creations: 1, 2, 4 … (Kubernetes'
    slowStartBatch), so a template that cannot be created fails after one
    call instead of hundreds."""
    batches = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def _timestamp(ts: Any, present: bool) -> tuple[int, float]:
    """(0, 0) for no time (sorts first), else (1, -seconds): newer first."""
    if not present:
        return (0, 0.0)
    return (1, -(ts.seconds + ts.nanos / 1e9))


def _deletion_cost(pod: core.Pod) -> int:
    try:
        return int(pod.metadata.annotations.get(POD_DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        return 0


def deletion_key(pod: core.Pod, rank: int = 0) -> tuple[Any, ...]:
    """Sort key: pods to delete first sort first (ActivePodsWithRanks):
    unassigned < assigned; Pending < Unknown < Running; not ready < ready;
    lower deletion cost; more pods of the same owner on its node; ready for
    less time; more container restarts; newer; then by name."""
    ready_cond = next((c for c in pod.status.conditions if c.type == "Ready"), None)
    ready = ready_cond is not None and ready_cond.status == "True"
    ready_since = (_timestamp(ready_cond.last_transition_time,
                              ready_cond.HasField("last_transition_time"))
                   if ready and ready_cond is not None else (0, 0.0))
    restarts = max((cs.restart_count for cs in pod.status.container_statuses), default=0)
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_ORDINAL.get(pod.status.phase, 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -rank,
        ready_since,
        -restarts,
        _timestamp(pod.metadata.creation_timestamp,
                   pod.metadata.HasField("creation_timestamp")),
        pod.metadata.name,
    )


def pods_to_delete(pods: Sequence[core.Pod], count: int,
                   related: Sequence[core.Pod] | None = None) -> list[core.Pod]:
    """The ``count`` pods to delete first. A pod's rank is how many active
    pods of ``related`` (default: ``pods``) share its node, so doubled-up
    nodes lose pods first."""
    if count <= 0:
        return []
    if count >= len(pods):
        return list(pods)
    per_node: dict[str, int] = {}
    for pod in (pods if related is None else related):
        if pod.status.phase not in ("Succeeded", "Failed") and \
                not pod.metadata.HasField("deletion_timestamp"):
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1
    ranked = sorted(pods, key=lambda p: deletion_key(p, per_node.get(p.spec.node_name, 0)))
    return ranked[:count]


__all__ = [
    "CHANGE_CAUSE_ANNOTATION", "DESIRED_REPLICAS_ANNOTATION", "Fenceposts",
    "MAX_REPLICAS_ANNOTATION", "POD_TEMPLATE_HASH_LABEL", "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION", "RSView", "RevisionNotFound", "RolloutError",
    "RolloutFailed", "SKIPPED_ANNOTATIONS", "compute_hash", "deletion_key", "equal_ignore_hash",
    "find_active_or_latest", "int_annotation", "is_rolling_update", "is_saturated",
    "max_revision", "max_surge", "max_unavailable", "new_rs_annotations", "owned_by",
    "pods_to_delete", "proportional_scale", "replicas_annotations", "replicas_of",
    "resolve_fenceposts", "revision_history", "revision_of", "rollback_annotations",
    "rollback_source", "rollback_template", "rolled_back", "rolling_new_replicas",
    "rolling_old_replicas", "rollout_status_message", "safe_encode", "scaled_value",
    "slow_start_batches", "without_hash",
]
