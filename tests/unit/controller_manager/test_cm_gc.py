"""Garbage collector decisions: which dependents to delete (and how),
which references to drop, and what a deleting owner's finalizers call for."""

from __future__ import annotations

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.garbagecollector import (
    ABSENT, EXISTS, FOREGROUND, ORPHAN, WAITING, Action, decide_dependent, interesting,
    owner_key, owner_state, owner_uid_index, plan_for_deleting_owner,
)


def ref(uid, kind="ReplicaSet", name=None, block=False):
    r = meta_pb2.OwnerReference(api_version="apps/v1", kind=kind, name=name or f"o-{uid}",
                                uid=uid)
    if block:
        r.block_owner_deletion = True
    return r


def obj(cls=core.Pod, name="p", uid="dep", refs=(), finalizers=(), deleting=False,
        namespace="ns"):
    o = cls()
    o.metadata.name, o.metadata.namespace, o.metadata.uid = name, namespace, uid
    o.metadata.owner_references.extend(refs)
    o.metadata.finalizers.extend(finalizers)
    if deleting:
        o.metadata.deletion_timestamp.FromSeconds(1)
    return o


def test_gc_owner_state_absent_when_missing_or_other_incarnation():
    assert owner_state(None, "u1") == ABSENT
    assert owner_state(obj(uid="u2"), "u1") == ABSENT


def test_gc_owner_state_waiting_only_for_foreground_deletion():
    assert owner_state(obj(uid="u1"), "u1") == EXISTS
    assert owner_state(obj(uid="u1", deleting=True, finalizers=[FOREGROUND]), "u1") == WAITING
    assert owner_state(obj(uid="u1", deleting=True, finalizers=[ORPHAN]), "u1") == EXISTS
    assert owner_state(obj(uid="u1", deleting=True), "u1") == EXISTS


def test_gc_dependent_with_every_owner_gone_is_deleted_in_background():
    dep = obj(refs=[ref("a"), ref("b")])
    assert decide_dependent(dep, {"a": ABSENT, "b": ABSENT}, False) == Action(
        "delete", policy="Background")


def test_gc_dependent_with_a_live_owner_stays_but_drops_dead_references():
    dep = obj(refs=[ref("a"), ref("b"), ref("c")])
    assert decide_dependent(dep, {"a": EXISTS, "b": ABSENT, "c": WAITING}, False) == Action(
        "remove_refs", ("b", "c"))
    assert decide_dependent(dep, {"a": EXISTS, "b": EXISTS, "c": EXISTS}, False).kind == "none"


def test_gc_dependent_of_a_waiting_owner_is_deleted():
    dep = obj(refs=[ref("a", block=True)])
    assert decide_dependent(dep, {"a": WAITING}, False) == Action("delete", policy="Background")


def test_gc_dependent_with_dependents_of_a_waiting_owner_goes_in_the_foreground():
    dep = obj(apps.ReplicaSet, refs=[ref("a", kind="Deployment", block=True)])
    assert decide_dependent(dep, {"a": WAITING}, True) == Action("delete", policy="Foreground")


def test_gc_dependent_own_finalizers_pick_the_policy():
    assert decide_dependent(obj(refs=[ref("a")], finalizers=[ORPHAN]), {"a": ABSENT},
                            False).policy == "Orphan"
    assert decide_dependent(obj(refs=[ref("a")], finalizers=[FOREGROUND]), {"a": ABSENT},
                            False).policy == "Foreground"


def test_gc_unresolvable_owner_counts_as_existing():
    assert decide_dependent(obj(refs=[ref("a")]), {}, False).kind == "none"


def test_gc_objects_being_deleted_or_without_owners_are_left_alone():
    assert decide_dependent(obj(refs=[ref("a")], deleting=True), {"a": ABSENT},
                            False).kind == "none"
    assert decide_dependent(obj(), {}, False).kind == "none"


def test_gc_orphan_finalizer_strips_every_dependent_then_drops():
    owner = obj(apps.ReplicaSet, uid="o", deleting=True, finalizers=[ORPHAN])
    deps = [obj(name="p1", refs=[ref("o")]), obj(name="p2", refs=[ref("o")])]
    plan = plan_for_deleting_owner(owner, deps)
    assert [d.metadata.name for d in plan.orphan] == ["p1", "p2"]
    assert plan.drop_finalizer == ORPHAN and plan.dependents == ()


def test_gc_foreground_waits_for_blocking_dependents():
    owner = obj(apps.ReplicaSet, uid="o", deleting=True, finalizers=[FOREGROUND])
    deps = [obj(name="p1", refs=[ref("o", block=True)]), obj(name="p2", refs=[ref("o")])]
    plan = plan_for_deleting_owner(owner, deps)
    assert plan.drop_finalizer == "" and len(plan.dependents) == 2 and plan.orphan == ()


def test_gc_foreground_drops_the_finalizer_when_nothing_blocks():
    owner = obj(apps.ReplicaSet, uid="o", deleting=True, finalizers=[FOREGROUND])
    plan = plan_for_deleting_owner(owner, [obj(refs=[ref("o")])])
    assert plan.drop_finalizer == FOREGROUND
    assert plan_for_deleting_owner(owner, []).drop_finalizer == FOREGROUND


def test_gc_owner_not_deleting_or_without_gc_finalizers_needs_nothing():
    assert plan_for_deleting_owner(obj(uid="o", finalizers=[ORPHAN]), []) == \
        plan_for_deleting_owner(obj(uid="o", deleting=True, finalizers=["example.com/x"]), [])


def test_gc_interesting_objects():
    assert interesting(obj(refs=[ref("a")]))
    assert interesting(obj(deleting=True, finalizers=[FOREGROUND]))
    assert not interesting(obj(finalizers=[ORPHAN]))
    assert not interesting(obj())


def test_gc_owner_key_namespaced_and_cluster_scoped():
    dep = obj(refs=[ref("a")])
    assert owner_key(dep, ref("a", kind="ReplicaSet", name="rs")) == ("replicasets", "ns/rs")
    assert owner_key(dep, ref("a", kind="Node", name="n1")) == ("nodes", "n1")
    assert owner_key(dep, ref("a", kind="Widget")) is None
    cluster_dep = obj(core.Node, namespace="")
    assert owner_key(cluster_dep, ref("a", kind="Pod")) is None


def test_gc_owner_uid_index_lists_owner_uids():
    assert owner_uid_index(obj(refs=[ref("a"), ref("b")])) == ["a", "b"]
