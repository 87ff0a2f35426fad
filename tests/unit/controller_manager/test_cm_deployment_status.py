"""The Deployment controller's pure parts: status and conditions, the new
ReplicaSet it creates, which one is new, cleanup candidates, Recreate's
wait, and the cautious per-ReplicaSet numbers."""

from __future__ import annotations

import datetime

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.deployment import (
    calculate_status, cleanup_candidates, deployment_complete, deployment_progressing,
    deployment_timed_out, find_new_replicaset, get_condition, new_condition, new_replicaset,
    old_pods_running, replicaset_view, rollout_status, set_condition,
)
from services.controller_manager.rollout import (
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION, compute_hash,
)

NOW = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc)


def deployment(replicas: int = 3, generation: int = 1, deadline: int | None = 600
               ) -> apps.Deployment:
    d = apps.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "ns", "d-uid"
    d.metadata.generation = generation
    d.metadata.annotations["team"] = "a"
    d.spec.replicas = replicas
    d.spec.min_ready_seconds = 2
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image="web:1")
    d.spec.strategy.type = "RollingUpdate"
    d.spec.strategy.rolling_update.max_surge.int_value = 1
    d.spec.strategy.rolling_update.max_unavailable.int_value = 1
    d.spec.revision_history_limit = 1
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    return d


def rs(name: str, *, spec: int, replicas: int = 0, ready: int = 0, available: int = 0,
       revision: int | None = None, created: int = 0, image: str = "web:1") -> apps.ReplicaSet:
    r = apps.ReplicaSet()
    r.metadata.name, r.metadata.uid = name, f"uid-{name}"
    r.metadata.creation_timestamp.FromSeconds(created)
    r.metadata.generation = 1
    if revision is not None:
        r.metadata.annotations[REVISION_ANNOTATION] = str(revision)
    r.spec.replicas = spec
    r.spec.template.metadata.labels.update({"app": "web", POD_TEMPLATE_HASH_LABEL: name})
    r.spec.template.spec.containers.add(name="main", image=image)
    r.status.replicas, r.status.ready_replicas = replicas, ready
    r.status.available_replicas, r.status.observed_generation = available, 1
    return r


def test_calculate_status_sums_replicasets_and_sets_available():
    d = deployment(replicas=3)
    new = rs("new", spec=2, replicas=2, ready=2, available=1)
    old = rs("old", spec=2, replicas=2, ready=2, available=2)
    status = calculate_status(d, [old, new], new, NOW)
    assert (status.observed_generation, status.replicas, status.updated_replicas,
            status.ready_replicas, status.available_replicas, status.unavailable_replicas) == \
        (1, 4, 2, 4, 3, 1)
    assert get_condition(status, "Available").reason == "MinimumReplicasAvailable"


def test_calculate_status_reports_missing_minimum_availability():
    d = deployment(replicas=3)
    status = calculate_status(d, [rs("new", spec=3, replicas=3, ready=1, available=1)], None, NOW)
    cond = get_condition(status, "Available")
    assert (cond.status, cond.reason) == ("False", "MinimumReplicasUnavailable")


def test_set_condition_keeps_the_transition_time_when_only_the_reason_changes():
    status = apps.DeploymentStatus()
    set_condition(status, new_condition("Progressing", "True", "A", "a", NOW))
    later = NOW + datetime.timedelta(minutes=1)
    set_condition(status, new_condition("Progressing", "True", "B", "b", later))
    [cond] = status.conditions
    assert cond.reason == "B"
    assert cond.last_transition_time.ToDatetime(tzinfo=datetime.timezone.utc) == NOW
    assert cond.last_update_time.ToDatetime(tzinfo=datetime.timezone.utc) == later
    set_condition(status, new_condition("Progressing", "True", "B", "ignored", later))
    assert status.conditions[0].message == "b"


def test_deployment_complete_and_progressing():
    d = deployment(replicas=2, generation=3)
    status = apps.DeploymentStatus(observed_generation=3, replicas=2, updated_replicas=2,
                                   available_replicas=2)
    assert deployment_complete(d, status)
    status.observed_generation = 2
    assert not deployment_complete(d, status)
    d.status.CopyFrom(apps.DeploymentStatus(replicas=3, updated_replicas=1))
    assert deployment_progressing(d, apps.DeploymentStatus(replicas=3, updated_replicas=2))
    assert not deployment_progressing(d, apps.DeploymentStatus(replicas=3, updated_replicas=1))


def test_deployment_timed_out_after_the_progress_deadline():
    d = deployment(deadline=60)
    status = apps.DeploymentStatus()
    status.conditions.append(new_condition("Progressing", "True", "ReplicaSetUpdated", "", NOW))
    assert not deployment_timed_out(d, status, NOW + datetime.timedelta(seconds=60))
    assert deployment_timed_out(d, status, NOW + datetime.timedelta(seconds=61))
    assert not deployment_timed_out(deployment(deadline=None), status,
                                    NOW + datetime.timedelta(days=1))


def test_rollout_status_walks_the_progressing_condition():
    d = deployment(replicas=2, deadline=60)
    new = rs("new", spec=2, replicas=2, ready=1, available=1)
    moving = rollout_status(d, [new], new, NOW)
    assert get_condition(moving, "Progressing").reason == "ReplicaSetUpdated"

    d.status.CopyFrom(moving)
    stalled = rollout_status(d, [new], new, NOW + datetime.timedelta(seconds=61))
    cond = get_condition(stalled, "Progressing")
    assert (cond.status, cond.reason) == ("False", "ProgressDeadlineExceeded")

    d.status.CopyFrom(moving)
    done_rs = rs("new", spec=2, replicas=2, ready=2, available=2)
    done = rollout_status(d, [done_rs], done_rs, NOW)
    cond = get_condition(done, "Progressing")
    assert (cond.status, cond.reason) == ("True", "NewReplicaSetAvailable")
    assert cond.message == 'ReplicaSet "new" has successfully progressed.'


def test_rollout_status_without_deadline_has_no_progressing_condition():
    d = deployment(deadline=None)
    d.status.conditions.append(new_condition("Progressing", "True", "X", "", NOW))
    assert get_condition(rollout_status(d, [], None, NOW), "Progressing") is None


def test_rollout_status_promotes_replica_failures():
    d = deployment()
    failing = rs("new", spec=3)
    failing.status.conditions.add(type="ReplicaFailure", status="True", reason="FailedCreate",
                                  message="quota")
    cond = get_condition(rollout_status(d, [failing], failing, NOW), "ReplicaFailure")
    assert (cond.reason, cond.message) == ("FailedCreate", "quota")


def test_new_replicaset_carries_the_hash_everywhere():
    d = deployment(replicas=4)
    made = new_replicaset(d, replicas=2, revision=3, max_replicas=5)
    h = compute_hash(d.spec.template)
    assert made.metadata.name == f"web-{h}"
    assert made.metadata.labels[POD_TEMPLATE_HASH_LABEL] == h
    assert made.spec.selector.match_labels == {"app": "web", POD_TEMPLATE_HASH_LABEL: h}
    assert made.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL] == h
    assert (made.spec.replicas, made.spec.min_ready_seconds) == (2, 2)
    assert dict(made.metadata.annotations) == {
        "team": "a", REVISION_ANNOTATION: "3", DESIRED_REPLICAS_ANNOTATION: "4",
        MAX_REPLICAS_ANNOTATION: "5"}
    ref = made.metadata.owner_references[0]
    assert (ref.kind, ref.uid, ref.controller) == ("Deployment", "d-uid", True)


def test_new_replicaset_name_changes_with_the_collision_count():
    d = deployment()
    first = new_replicaset(d, 1, 1, 1).metadata.name
    d.status.collision_count = 1
    assert new_replicaset(d, 1, 1, 1).metadata.name != first


def test_find_new_replicaset_matches_the_template_ignoring_the_hash():
    d = deployment()
    old = rs("old", spec=0, image="web:0")
    current = rs("cur", spec=3)
    assert find_new_replicaset(d, [old, current]) is current
    assert find_new_replicaset(d, [old]) is None


def test_cleanup_candidates_beyond_the_history_limit():
    d = deployment()  # revisionHistoryLimit 1
    olds = [rs("r1", spec=0, revision=1), rs("r2", spec=0, revision=2),
            rs("r3", spec=0, revision=3)]
    assert [r.metadata.name for r in cleanup_candidates(d, olds)] == ["r1", "r2"]
    busy = rs("r1", spec=0, replicas=1, revision=1)
    assert [r.metadata.name for r in cleanup_candidates(d, [busy, *olds[1:]])] == ["r2"]
    d.spec.ClearField("revision_history_limit")
    assert cleanup_candidates(d, olds) == []


def pod(phase: str = "Running", terminating: bool = False) -> core.Pod:
    p = core.Pod()
    p.status.phase = phase
    if terminating:
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    return p


def test_old_pods_running_waits_for_terminating_pods():
    new = rs("new", spec=3)
    old = rs("old", spec=0)
    assert old_pods_running(new, [old], {"uid-old": [pod(terminating=True)]})
    assert not old_pods_running(new, [old], {"uid-old": [pod("Succeeded")],
                                             "uid-new": [pod()]})
    old.status.replicas = 1
    assert old_pods_running(new, [old], {})


def ready_pod(ready_for: float, terminating: bool = False) -> core.Pod:
    p = core.Pod()
    p.status.phase = "Running"
    cond = p.status.conditions.add(type="Ready", status="True")
    cond.last_transition_time.FromDatetime(NOW - datetime.timedelta(seconds=ready_for))
    if terminating:
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    return p


def test_replicaset_view_is_cautious():
    r = rs("old", spec=2, replicas=4, available=4)
    r.spec.min_ready_seconds = 5
    r.metadata.annotations[MAX_REPLICAS_ANNOTATION] = "6"
    pods = [ready_pod(60), ready_pod(60), ready_pod(1), ready_pod(60, terminating=True)]
    view = replicaset_view(r, pods, NOW)
    # status says 4 available, the cache 2 (one too fresh, one terminating), spec keeps 2.
    assert (view.replicas, view.available, view.size, view.max_replicas) == (2, 2, 4, 6)
    assert replicaset_view(r, pods[:1], NOW).available == 1
