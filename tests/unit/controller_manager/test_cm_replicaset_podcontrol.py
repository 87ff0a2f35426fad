"""Shared workload helpers: pod predicates, controller references, pods
from templates, the mutation cache and index registration."""

from __future__ import annotations

import datetime

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.podcontrol import (
    CONTROLLER_UID_INDEX, MutationCache, controller_ref, controller_uid_index,
    ensure_workload_indexers, is_pod_active, is_pod_available, is_pod_ready, new_controller_ref,
    new_event, pod_from_template,
)
from services.machinery.clock import FakeClock
from services.machinery.store import NAMESPACE_INDEX, Store

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def owner() -> apps.ReplicaSet:
    rs = apps.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = "web-abc", "ns", "uid-1"
    rs.metadata.resource_version = "10"
    rs.spec.template.metadata.labels.update({"app": "web"})
    rs.spec.template.metadata.annotations["note"] = "x"
    rs.spec.template.spec.containers.add(name="main", image="web:1")
    return rs


def test_pod_from_template_names_labels_and_owns_the_pod():
    rs = owner()
    pod = pod_from_template(rs.spec.template, rs)
    assert pod.metadata.generate_name == "web-abc-" and not pod.metadata.name
    assert pod.metadata.namespace == "ns"
    assert dict(pod.metadata.labels) == {"app": "web"}
    assert dict(pod.metadata.annotations) == {"note": "x"}
    assert pod.spec == rs.spec.template.spec
    ref = controller_ref(pod)
    assert (ref.kind, ref.api_version, ref.name, ref.uid) == \
        ("ReplicaSet", "apps/v1", "web-abc", "uid-1")
    assert ref.controller and ref.block_owner_deletion


def test_controller_ref_ignores_non_controller_owners():
    pod = core.Pod()
    pod.metadata.owner_references.add(kind="Node", name="n", uid="u")
    assert controller_ref(pod) is None
    pod.metadata.owner_references.append(new_controller_ref(owner()))
    assert controller_ref(pod).uid == "uid-1"
    assert controller_uid_index(pod) == ["uid-1"]


def test_pod_predicates():
    pod = core.Pod()
    pod.status.phase = "Running"
    assert is_pod_active(pod) and not is_pod_ready(pod)
    cond = pod.status.conditions.add(type="Ready", status="True")
    cond.last_transition_time.FromDatetime(NOW)
    assert is_pod_ready(pod)
    assert is_pod_available(pod, 0, NOW)
    assert not is_pod_available(pod, 5, NOW + datetime.timedelta(seconds=5))
    assert is_pod_available(pod, 5, NOW + datetime.timedelta(seconds=6))
    pod.status.phase = "Succeeded"
    assert not is_pod_active(pod)
    pod.status.phase = "Running"
    pod.metadata.deletion_timestamp.FromDatetime(NOW)
    assert not is_pod_active(pod)


def test_new_event_describes_the_object():
    ev = new_event(owner(), "Normal", "SuccessfulCreate", "Created pod: p", "rs-ctl", NOW)
    ref = ev.involved_object
    assert (ref.kind, ref.name, ref.namespace, ref.uid) == ("ReplicaSet", "web-abc", "ns", "uid-1")
    assert ev.metadata.namespace == "ns" and ev.metadata.name.startswith("web-abc.")
    assert (ev.type, ev.reason, ev.count) == ("Normal", "SuccessfulCreate", 1)


def test_mutation_cache_prefers_newer_writes_until_the_cache_catches_up():
    clock = FakeClock()
    cache = MutationCache(clock, ttl=60)
    cached = owner()
    written = apps.ReplicaSet()
    written.CopyFrom(cached)
    written.metadata.resource_version = "12"
    written.spec.replicas = 7
    cache.written(written)
    assert cache.newest(cached).spec.replicas == 7
    caught_up = apps.ReplicaSet()
    caught_up.CopyFrom(written)
    caught_up.metadata.resource_version = "13"
    assert cache.newest(caught_up) is caught_up
    assert cache.newest(cached) is cached  # the entry is gone once seen


def test_mutation_cache_lists_created_objects_the_store_lacks():
    clock = FakeClock()
    cache = MutationCache(clock, ttl=60)
    store = Store()
    created = owner()
    cache.written(created)
    assert cache.extra("ns", store) == [created]
    assert cache.extra("other", store) == []
    store.add(created)
    assert cache.extra("ns", store) == []
    store.delete(created)
    clock.advance(61)
    assert cache.extra("ns", store) == []


def test_ensure_workload_indexers_is_idempotent():
    store = Store()
    ensure_workload_indexers(store)
    ensure_workload_indexers(store)
    rs = owner()
    pod = pod_from_template(rs.spec.template, rs)
    pod.metadata.name = "p"
    store.add(pod)
    assert store.by_index(NAMESPACE_INDEX, "ns") == [pod]
    assert store.by_index(CONTROLLER_UID_INDEX, "uid-1") == [pod]
