from __future__ import annotations

import datetime

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.runtime.base import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_INIT, LABEL_RESTART_COUNT, ContainerInfo,
    ContainerState, SandboxInfo, SandboxState,
)
from services.kubelet.sync import (
    PodRuntimeState, compute_pod_actions, container_hash, next_init_container, prunable,
    should_restart, stale_sandboxes,
)

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_ids = iter(range(10_000))


def pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always") -> core.Pod:
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "ns", "uid"
    p.spec.restart_policy = policy
    for n in init:
        p.spec.init_containers.add(name=n, image="busybox", command=["true"])
    for n in names:
        p.spec.containers.add(name=n, image="busybox", command=["sleep", "1d"])
    return p


def spec_of(p: core.Pod, name: str):
    return next(c for c in list(p.spec.init_containers) + list(p.spec.containers)
                if c.name == name)


def ctr(p: core.Pod, name: str, state: ContainerState = ContainerState.RUNNING, *,
        exit_code: int = 0, restarts: int = 0, hash_: str | None = None) -> ContainerInfo:
    i = next(_ids)
    is_init = any(c.name == name for c in p.spec.init_containers)
    if hash_ is None:
        hash_ = container_hash(spec_of(p, name))
    labels = {LABEL_CONTAINER_NAME: name, LABEL_RESTART_COUNT: str(restarts),
              LABEL_CONTAINER_HASH: hash_}
    if is_init:
        labels[LABEL_INIT] = "true"
    return ContainerInfo(id=f"c{i}", name=name, pod_uid="uid", sandbox_id="s", state=state,
                         image="busybox", image_id="sha256:1", labels=labels, exit_code=exit_code,
                         created_at=T0 + datetime.timedelta(seconds=i),
                         started_at=T0 + datetime.timedelta(seconds=i),
                         finished_at=T0 + datetime.timedelta(seconds=i + 1)
                         if state == ContainerState.EXITED else None)


def sandbox(state: SandboxState = SandboxState.READY, ip: str = "172.17.0.2") -> SandboxInfo:
    i = next(_ids)
    return SandboxInfo(id=f"s{i}", pod_uid="uid", name="p", namespace="ns", state=state, ip=ip,
                       labels={}, created_at=T0 + datetime.timedelta(seconds=i))


def state(*items) -> PodRuntimeState:
    return PodRuntimeState.of([i for i in items if isinstance(i, SandboxInfo)],
                              [i for i in items if isinstance(i, ContainerInfo)])


def test_sync_new_pod_creates_sandbox_and_starts_all_containers():
    a = compute_pod_actions(pod("a", "b"), state())
    assert a.create_sandbox and a.kill_pod and a.attempt == 0
    assert a.containers_to_start == ["a", "b"]
    assert a.next_init_container is None


def test_sync_new_pod_with_init_containers_starts_the_first_init_only():
    a = compute_pod_actions(pod("a", init=("i1", "i2")), state())
    assert a.create_sandbox
    assert a.next_init_container == "i1"
    assert a.containers_to_start == []


def test_sync_running_pod_matching_its_spec_is_left_alone():
    p = pod("a", "b")
    a = compute_pod_actions(p, state(sandbox(), ctr(p, "a"), ctr(p, "b")))
    assert a.idle


def test_sync_init_containers_run_one_at_a_time_in_order():
    p = pod("a", init=("i1", "i2"))
    s = sandbox()
    assert compute_pod_actions(p, state(s, ctr(p, "i1"))).idle   # i1 still running
    a = compute_pod_actions(p, state(s, ctr(p, "i1", ContainerState.EXITED)))
    assert a.next_init_container == "i2" and not a.containers_to_start
    a = compute_pod_actions(p, state(s, ctr(p, "i1", ContainerState.EXITED),
                                     ctr(p, "i2", ContainerState.EXITED)))
    assert a.next_init_container is None and a.containers_to_start == ["a"]


def test_sync_failed_init_container_is_retried_unless_policy_is_never():
    for policy, retried in (("Always", True), ("OnFailure", True), ("Never", False)):
        p = pod("a", init=("i1",), policy=policy)
        a = compute_pod_actions(p, state(sandbox(), ctr(p, "i1", ContainerState.EXITED,
                                                        exit_code=1)))
        if retried:
            assert a.next_init_container == "i1" and not a.kill_pod
        else:
            assert a.next_init_container is None and a.kill_pod and a.init_failed


def test_sync_running_app_container_means_init_is_done():
    p = pod("a", init=("i1",))
    last, nxt, done = next_init_container(p, state(sandbox(), ctr(p, "a")))
    assert done and nxt is None and last is None


def test_sync_restart_policy_decides_for_exited_containers():
    cases = [("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False),
             ("OnFailure", 2, True), ("Never", 0, False), ("Never", 1, False)]
    for policy, code, restart in cases:
        p = pod("a", "b", policy=policy)
        st = state(sandbox(), ctr(p, "a", ContainerState.EXITED, exit_code=code), ctr(p, "b"))
        a = compute_pod_actions(p, st)
        assert (a.containers_to_start == ["a"]) == restart, (policy, code)
        assert not a.kill_pod


def test_sync_all_exited_with_never_kills_the_pod_and_does_not_recreate():
    p = pod("a", policy="Never")
    s = sandbox()
    a = compute_pod_actions(p, state(s, ctr(p, "a", ContainerState.EXITED, exit_code=0)))
    assert a.kill_pod and not a.containers_to_start
    stopped = sandbox(SandboxState.NOT_READY)
    a = compute_pod_actions(p, state(stopped, ctr(p, "a", ContainerState.EXITED)))
    assert a.kill_pod and not a.create_sandbox


def test_sync_on_failure_with_all_succeeded_does_not_recreate_the_sandbox():
    p = pod("a", policy="OnFailure")
    a = compute_pod_actions(p, state(sandbox(SandboxState.NOT_READY),
                                     ctr(p, "a", ContainerState.EXITED)))
    assert not a.create_sandbox


def test_sync_dead_sandbox_with_always_recreates_everything():
    p = pod("a", "b")
    a = compute_pod_actions(p, state(sandbox(SandboxState.NOT_READY), ctr(p, "a"), ctr(p, "b")))
    assert a.create_sandbox and a.kill_pod and a.attempt == 1
    assert a.containers_to_start == ["a", "b"]


def test_sync_sandbox_without_ip_is_replaced():
    p = pod("a")
    a = compute_pod_actions(p, state(sandbox(ip=""), ctr(p, "a")))
    assert a.create_sandbox


def test_sync_container_removed_behind_the_kubelets_back_is_started_again():
    p = pod("a", "b")
    a = compute_pod_actions(p, state(sandbox(), ctr(p, "b")))
    assert a.containers_to_start == ["a"] and not a.kill_pod


def test_sync_changed_spec_hash_kills_and_restarts_even_with_never():
    p = pod("a", policy="Never")
    old = ctr(p, "a", hash_="stale")
    a = compute_pod_actions(p, state(sandbox(), old))
    assert [k.container_id for k in a.containers_to_kill] == [old.id]
    assert a.containers_to_start == ["a"]
    assert "definition changed" in a.containers_to_kill[0].message


def test_sync_container_hash_changes_with_the_image():
    p = pod("a")
    before = container_hash(p.spec.containers[0])
    p.spec.containers[0].image = "busybox:2"
    assert container_hash(p.spec.containers[0]) != before


def test_sync_liveness_failure_kills_and_restarts_per_policy():
    for policy, restart in (("Always", True), ("Never", False)):
        p = pod("a", "b", policy=policy)
        bad = ctr(p, "a")
        a = compute_pod_actions(p, state(sandbox(), bad, ctr(p, "b")), liveness_failed={bad.id})
        assert [k.container_id for k in a.containers_to_kill] == [bad.id]
        assert (a.containers_to_start == ["a"]) == restart
        assert a.containers_to_kill[0].reason == "Unhealthy"


def test_sync_startup_failure_kills_the_container():
    p = pod("a")
    bad = ctr(p, "a")
    a = compute_pod_actions(p, state(sandbox(), bad), startup_failed={bad.id})
    assert a.containers_to_kill[0].container_id == bad.id and a.containers_to_start == ["a"]


def test_sync_latest_instance_decides_by_restart_count():
    p = pod("a")
    old = ctr(p, "a", ContainerState.EXITED, exit_code=1, restarts=0)
    new = ctr(p, "a", ContainerState.RUNNING, restarts=1)
    st = state(sandbox(), new, old)
    assert st.latest("a") is new
    assert compute_pod_actions(p, st).idle


def test_sync_deleted_pod_is_never_restarted():
    p = pod("a")
    p.metadata.deletion_timestamp.seconds = 1
    assert not should_restart(p.spec.containers[0], p, state(sandbox()))


def test_sync_prunable_keeps_the_newest_exited_instance_per_container():
    p = pod("a")
    oldest = ctr(p, "a", ContainerState.EXITED, exit_code=1, restarts=0)
    older = ctr(p, "a", ContainerState.EXITED, exit_code=1, restarts=1)
    old = ctr(p, "a", ContainerState.EXITED, exit_code=1, restarts=2)
    current = ctr(p, "a", ContainerState.RUNNING, restarts=3)
    stray = ctr(pod("zzz"), "zzz", ContainerState.EXITED)
    st = state(sandbox(), oldest, older, old, current, stray)
    assert {c.id for c in prunable(p, st)} == {oldest.id, older.id, stray.id}


def test_sync_stale_sandboxes_are_the_stopped_older_ones():
    old = sandbox(SandboxState.NOT_READY)
    new = sandbox()
    assert stale_sandboxes(state(old, new)) == [old]
