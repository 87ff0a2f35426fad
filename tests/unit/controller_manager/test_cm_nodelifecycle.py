"""Node lifecycle decisions: heartbeat observation on the controller's
clock, conditions going Unknown, taints following conditions, and which
pods a NoExecute taint evicts when."""

from __future__ import annotations

import datetime

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.nodelifecycle import (
    EVICT_NOW, NOT_READY, UNREACHABLE, eviction_time, is_stale, observe, pods_to_evict,
    pods_to_force_delete, pods_to_mark_not_ready, ready_status, taint_changes, tolerates,
    unknown_conditions,
)

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def node(ready: str | None = "True", heartbeat: int = 100, taints=(), unschedulable=False,
         **conditions: str) -> core.Node:
    n = core.Node()
    n.metadata.name, n.metadata.uid = "n1", "uid-n1"
    n.metadata.creation_timestamp.FromSeconds(50)
    if ready is not None:
        c = n.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
        c.last_heartbeat_time.FromSeconds(heartbeat)
    for type_, status in conditions.items():
        n.status.conditions.add(type=type_, status=status)
    n.spec.taints.extend(taints)
    n.spec.unschedulable = unschedulable
    return n


def lease(renew: int) -> coordination.Lease:
    le = coordination.Lease()
    le.metadata.name, le.metadata.uid = "n1", "lease-uid"
    le.spec.holder_identity = "n1"
    le.spec.renew_time.FromSeconds(renew)
    return le


def taint(key, effect="NoExecute", added: float | None = 0.0, value=""):
    t = core.Taint(key=key, effect=effect, value=value)
    if added is not None:
        t.time_added.FromDatetime(at(added))
    return t


def pod(name, *tolerations, terminating=False, ready=True):
    p = core.Pod()
    p.metadata.name, p.metadata.namespace = name, "ns"
    p.spec.node_name = "n1"
    p.spec.tolerations.extend(tolerations)
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    if terminating:
        p.metadata.deletion_timestamp.FromSeconds(1)
    return p


def tol(key="", seconds=None, operator="Exists", effect="NoExecute", value=""):
    t = core.Toleration(key=key, operator=operator, effect=effect, value=value)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


# --- health ----------------------------------------------------------------------------


def test_lifecycle_first_observation_starts_the_grace_clock():
    obs = observe(None, node(), lease(100), now=1000.0)
    assert obs.probe_time == 1000.0
    assert not is_stale(obs, 1050.0, grace=50.0)
    assert is_stale(obs, 1050.5, grace=50.0)


def test_lifecycle_lease_renewal_resets_the_probe_time():
    obs = observe(None, node(), lease(100), now=0.0)
    obs = observe(obs, node(), lease(110), now=40.0)
    assert obs.probe_time == 40.0 and not is_stale(obs, 80.0, grace=50.0)


def test_lifecycle_ready_heartbeat_alone_also_counts():
    obs = observe(None, node(heartbeat=100), None, now=0.0)
    obs = observe(obs, node(heartbeat=110), None, now=40.0)
    assert obs.probe_time == 40.0


def test_lifecycle_unchanged_heartbeats_keep_the_old_probe_time():
    obs = observe(None, node(), lease(100), now=0.0)
    assert observe(obs, node(), lease(100), now=30.0).probe_time == 0.0


def test_lifecycle_our_own_unknown_status_is_not_a_heartbeat():
    obs = observe(None, node(ready="True"), lease(100), now=0.0)
    assert observe(obs, node(ready="Unknown"), lease(100), now=60.0).probe_time == 0.0


def test_lifecycle_unknown_conditions_mark_health_conditions_unknown():
    n = node(MemoryPressure="False", DiskPressure="False", PIDPressure="False",
             NetworkUnavailable="False")
    conds = {c.type: c for c in unknown_conditions(n, at(10))}
    for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conds[type_].status == "Unknown"
        assert conds[type_].reason == "NodeStatusUnknown"
        assert conds[type_].message == "Kubelet stopped posting node status."
        assert conds[type_].last_transition_time.ToDatetime(
            tzinfo=datetime.timezone.utc) == at(10)
    assert conds["Ready"].last_heartbeat_time.seconds == 100  # kept
    assert conds["NetworkUnavailable"].status == "False"  # not ours


def test_lifecycle_unknown_conditions_added_when_never_posted():
    conds = {c.type: c for c in unknown_conditions(node(ready=None), at(0))}
    assert conds["Ready"].status == "Unknown"
    assert conds["Ready"].reason == "NodeStatusNeverUpdated"


def test_lifecycle_unknown_conditions_none_when_already_unknown():
    n = node(ready="Unknown", MemoryPressure="Unknown", DiskPressure="Unknown",
             PIDPressure="Unknown")
    assert unknown_conditions(n, at(0)) is None


# --- taints -----------------------------------------------------------------------------


def keys(taints):
    return sorted((t.key, t.effect) for t in taints)


def test_lifecycle_unknown_node_gets_unreachable_taints_stamped_now():
    taints = taint_changes(node(ready="Unknown"), at(5))
    assert keys(taints) == [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")]
    no_exec = next(t for t in taints if t.effect == "NoExecute")
    assert no_exec.time_added.ToDatetime(tzinfo=datetime.timezone.utc) == at(5)


def test_lifecycle_not_ready_node_gets_not_ready_taints():
    assert keys(taint_changes(node(ready="False"), at(0))) == [
        (NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")]


def test_lifecycle_unreachable_swaps_to_not_ready():
    n = node(ready="False", taints=[taint(UNREACHABLE), taint(UNREACHABLE, "NoSchedule", None)])
    assert keys(taint_changes(n, at(9))) == [(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")]


def test_lifecycle_ready_node_loses_managed_taints_but_keeps_others():
    user = taint("dedicated", "NoSchedule", None, value="gpu")
    n = node(ready="True", taints=[taint(UNREACHABLE), user])
    assert keys(taint_changes(n, at(0))) == [("dedicated", "NoSchedule")]


def test_lifecycle_existing_taint_keeps_its_time_added():
    n = node(ready="Unknown", taints=[taint(UNREACHABLE, added=3),
                                      taint(UNREACHABLE, "NoSchedule", None)])
    assert taint_changes(n, at(100)) is None


def test_lifecycle_unschedulable_and_pressure_give_no_schedule_taints():
    n = node(unschedulable=True, MemoryPressure="True", DiskPressure="False")
    assert keys(taint_changes(n, at(0))) == [
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule")]


def test_lifecycle_healthy_node_without_taints_needs_nothing():
    assert taint_changes(node(), at(0)) is None


# --- eviction ----------------------------------------------------------------------------


def test_tolerates_key_value_effect_rules():
    t = taint("k", value="v")
    assert tolerates(tol("k"), t)
    assert tolerates(tol("", operator="Exists", effect=""), t)
    assert tolerates(tol("k", operator="Equal", value="v"), t)
    assert not tolerates(tol("k", operator="Equal", value="w"), t)
    assert not tolerates(tol("other"), t)
    assert not tolerates(tol("k", effect="NoSchedule"), t)


def test_lifecycle_untolerated_taint_evicts_now():
    assert eviction_time(pod("a"), [taint(UNREACHABLE)], at(0)) is EVICT_NOW
    evict, later = pods_to_evict([pod("a")], [taint(UNREACHABLE, added=0)], at(0))
    assert [p.metadata.name for p in evict] == ["a"] and later is None


def test_lifecycle_toleration_seconds_count_from_time_added():
    p = pod("a", tol(UNREACHABLE, seconds=300))
    taints = [taint(UNREACHABLE, added=10)]
    evict, later = pods_to_evict([p], taints, at(309))
    assert evict == [] and later == at(310)
    evict, later = pods_to_evict([p], taints, at(310))
    assert [x.metadata.name for x in evict] == ["a"]


def test_lifecycle_forever_toleration_never_evicts():
    p = pod("a", tol(UNREACHABLE))
    assert pods_to_evict([p], [taint(UNREACHABLE)], at(10 ** 6)) == ([], None)


def test_lifecycle_zero_or_negative_seconds_evict_at_once():
    for seconds in (0, -5):
        evict, _ = pods_to_evict([pod("a", tol(UNREACHABLE, seconds=seconds))],
                                 [taint(UNREACHABLE, added=0)], at(0))
        assert len(evict) == 1


def test_lifecycle_earliest_deadline_over_several_taints_wins():
    p = pod("a", tol(UNREACHABLE, seconds=100), tol("custom", seconds=20))
    taints = [taint(UNREACHABLE, added=0), taint("custom", added=50)]
    assert eviction_time(p, taints, at(0)) == at(70)


def test_lifecycle_one_untolerated_taint_of_several_evicts_now():
    p = pod("a", tol(UNREACHABLE, seconds=100))
    assert eviction_time(p, [taint(UNREACHABLE), taint("custom")], at(0)) is EVICT_NOW


def test_lifecycle_no_schedule_taints_do_not_evict():
    assert pods_to_evict([pod("a")], [taint(UNREACHABLE, "NoSchedule")], at(0)) == ([], None)


def test_lifecycle_terminating_pods_are_not_evicted_again():
    assert pods_to_evict([pod("a", terminating=True)], [taint(UNREACHABLE)], at(0)) == ([], None)


def test_lifecycle_missing_time_added_uses_the_default():
    p = pod("a", tol(UNREACHABLE, seconds=30))
    assert eviction_time(p, [taint(UNREACHABLE, added=None)], at(100)) == at(130)


def test_lifecycle_pods_sorted_into_now_and_later():
    pods = [pod("now"), pod("soon", tol(UNREACHABLE, seconds=5)),
            pod("later", tol(UNREACHABLE, seconds=60)), pod("never", tol(UNREACHABLE))]
    evict, later = pods_to_evict(pods, [taint(UNREACHABLE, added=0)], at(1))
    assert [p.metadata.name for p in evict] == ["now"] and later == at(5)


def test_lifecycle_force_delete_terminating_pods_on_not_ready_nodes_only():
    pods = [pod("going", terminating=True), pod("staying")]
    for status in ("False", "Unknown"):
        assert [p.metadata.name for p in pods_to_force_delete(node(ready=status), pods)] == [
            "going"]
    assert pods_to_force_delete(node(ready="True"), pods) == []
    assert pods_to_force_delete(node(ready=None), pods) == []


def test_lifecycle_pods_marked_not_ready_only_on_unknown_nodes():
    pods = [pod("r"), pod("nr", ready=False)]
    assert [p.metadata.name for p in pods_to_mark_not_ready(node(ready="Unknown"), pods)] == ["r"]
    assert pods_to_mark_not_ready(node(ready="False"), pods) == []


def test_lifecycle_ready_status_of_missing_condition_is_none():
    assert ready_status(node(ready=None)) is None
    assert ready_status(node(ready="False")) == "False"
