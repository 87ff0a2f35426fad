from __future__ import annotations

import datetime

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.runtime.base import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_INIT, LABEL_RESTART_COUNT, ContainerInfo,
    ContainerState, SandboxInfo, SandboxState,
)
from services.kubelet.status import compute_pod_status, qos_class
from services.kubelet.sync import PodRuntimeState

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
T0 = datetime.datetime(2024, 5, 1, 11, 0, 0, tzinfo=datetime.timezone.utc)
_ids = iter(range(10_000))


def pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always") -> core.Pod:
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "ns", "uid"
    p.spec.restart_policy = policy
    for n in init:
        p.spec.init_containers.add(name=n, image="busybox:1", command=["true"])
    for n in names:
        p.spec.containers.add(name=n, image="busybox:1", command=["sleep", "1d"])
    p.status.phase = "Pending"
    return p


def ctr(name: str, state=ContainerState.RUNNING, *, exit_code: int = 0, restarts: int = 0,
        init: bool = False) -> ContainerInfo:
    i = next(_ids)
    labels = {LABEL_CONTAINER_NAME: name, LABEL_RESTART_COUNT: str(restarts),
              LABEL_CONTAINER_HASH: "h"}
    if init:
        labels[LABEL_INIT] = "true"
    return ContainerInfo(
        id=f"id{i}", name=name, pod_uid="uid", sandbox_id="s", state=state, image="busybox:1",
        image_id="sha256:abc", labels=labels, exit_code=exit_code,
        created_at=T0 + datetime.timedelta(seconds=i),
        started_at=T0 + datetime.timedelta(seconds=i),
        finished_at=T0 + datetime.timedelta(seconds=i + 1) if state == ContainerState.EXITED
        else None)


def sandbox(ready: bool = True) -> SandboxInfo:
    return SandboxInfo(id="s", pod_uid="uid", name="p", namespace="ns",
                       state=SandboxState.READY if ready else SandboxState.NOT_READY,
                       ip="172.17.0.9", labels={}, created_at=T0)


def rt(*items) -> PodRuntimeState:
    return PodRuntimeState.of([i for i in items if isinstance(i, SandboxInfo)],
                              [i for i in items if isinstance(i, ContainerInfo)])


def conds(status: core.PodStatus) -> dict[str, core.PodCondition]:
    return {c.type: c for c in status.conditions}


def compute(p, state, **kw):
    return compute_pod_status(p, state, now=NOW, host_ip="10.0.0.1", **kw)


def test_status_new_pod_is_pending_with_containers_creating():
    s = compute(pod("a"), rt())
    assert s.phase == "Pending"
    assert s.container_statuses[0].state.waiting.reason == "ContainerCreating"
    c = conds(s)
    assert c["PodScheduled"].status == "True"
    assert c["Initialized"].status == "True"
    assert c["Ready"].status == "False" and c["Ready"].reason == "ContainersNotReady"
    assert c["ContainersReady"].message == "containers with unready status: [a]"
    assert s.host_ip == "10.0.0.1" and s.start_time.ToDatetime(datetime.timezone.utc) == NOW
    assert s.qos_class == "BestEffort"


def test_status_running_pod_is_ready_with_ids_and_ip():
    a = ctr("a")
    s = compute(pod("a"), rt(sandbox(), a))
    assert s.phase == "Running"
    cs = s.container_statuses[0]
    assert cs.state.HasField("running") and cs.ready and cs.started
    assert cs.container_id == f"docker://{a.id}" and cs.image_id == "sha256:abc"
    assert cs.image == "busybox:1"
    assert s.pod_ip == "172.17.0.9" and [i.ip for i in s.pod_ips] == ["172.17.0.9"]
    assert all(c.status == "True" for c in s.conditions)


def test_status_readiness_probe_gates_ready():
    p = pod("a")
    p.spec.containers[0].readiness_probe.exec.command.append("true")
    a = ctr("a")
    s = compute(p, rt(sandbox(), a))
    assert not s.container_statuses[0].ready and conds(s)["Ready"].status == "False"
    s = compute(p, rt(sandbox(), a), readiness={a.id: True})
    assert s.container_statuses[0].ready and conds(s)["Ready"].status == "True"


def test_status_startup_probe_gates_started_and_ready():
    p = pod("a")
    p.spec.containers[0].startup_probe.exec.command.append("true")
    a = ctr("a")
    cs = compute(p, rt(sandbox(), a)).container_statuses[0]
    assert not cs.started and not cs.ready
    cs = compute(p, rt(sandbox(), a), startup={a.id: True}).container_statuses[0]
    assert cs.started and cs.ready


def test_status_crash_loop_shows_waiting_with_last_state():
    p = pod("a")
    old = ctr("a", ContainerState.EXITED, exit_code=2, restarts=0)
    last = ctr("a", ContainerState.EXITED, exit_code=3, restarts=1)
    s = compute(p, rt(sandbox(), old, last),
                waiting={"a": ("CrashLoopBackOff", "back-off 10s restarting failed container")})
    cs = s.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.last_state.terminated.exit_code == 3
    assert cs.last_state.terminated.reason == "Error"
    assert cs.restart_count == 1 and not cs.ready
    assert s.phase == "Running"   # Always: restarting


def test_status_last_state_is_the_previous_instance():
    old = ctr("a", ContainerState.EXITED, exit_code=1, restarts=0)
    cur = ctr("a", restarts=1)
    cs = compute(pod("a"), rt(sandbox(), old, cur)).container_statuses[0]
    assert cs.state.HasField("running") and cs.restart_count == 1
    assert cs.last_state.terminated.container_id == f"docker://{old.id}"


def test_status_phases_by_restart_policy():
    ok, bad = ContainerState.EXITED, ContainerState.EXITED
    cases = [
        ("Never", [("a", ok, 0), ("b", ok, 0)], "Succeeded"),
        ("Never", [("a", ok, 0), ("b", bad, 1)], "Failed"),
        ("OnFailure", [("a", ok, 0), ("b", ok, 0)], "Succeeded"),
        ("OnFailure", [("a", ok, 0), ("b", bad, 1)], "Running"),
        ("Always", [("a", ok, 0), ("b", ok, 0)], "Running"),
        ("Never", [("a", ContainerState.RUNNING, 0), ("b", bad, 1)], "Running"),
    ]
    for policy, ctrs, phase in cases:
        p = pod("a", "b", policy=policy)
        st = rt(sandbox(), *(ctr(n, s, exit_code=code) for n, s, code in ctrs))
        assert compute(p, st).phase == phase, (policy, ctrs)


def test_status_succeeded_pod_conditions_say_completed():
    p = pod("a", policy="Never")
    s = compute(p, rt(sandbox(False), ctr("a", ContainerState.EXITED)))
    assert s.phase == "Succeeded"
    assert conds(s)["Ready"].reason == "PodCompleted"
    assert s.container_statuses[0].state.terminated.reason == "Completed"
    assert s.pod_ip == ""  # the sandbox stopped before any IP was recorded


def test_status_pod_ip_kept_after_the_sandbox_stops():
    p = pod("a", policy="Never")
    p.status.pod_ip = "172.17.0.9"
    s = compute(p, rt(sandbox(False), ctr("a", ContainerState.EXITED)))
    assert s.pod_ip == "172.17.0.9"


def test_status_init_containers_pending_and_failed():
    p = pod("a", init=("i1", "i2"))
    s = compute(p, rt(sandbox(), ctr("i1", init=True)))
    assert s.phase == "Pending"
    assert s.init_container_statuses[0].state.HasField("running")
    assert s.init_container_statuses[1].state.waiting.reason == "PodInitializing"
    assert s.container_statuses[0].state.waiting.reason == "PodInitializing"
    c = conds(s)["Initialized"]
    assert c.status == "False" and c.reason == "ContainersNotInitialized"
    assert c.message == "containers with incomplete status: [i1 i2]"

    never = pod("a", init=("i1",), policy="Never")
    s = compute(never, rt(sandbox(), ctr("i1", ContainerState.EXITED, exit_code=1, init=True)))
    assert s.phase == "Failed"

    done = compute(p, rt(sandbox(), ctr("i1", ContainerState.EXITED, init=True),
                         ctr("i2", ContainerState.EXITED, init=True), ctr("a")))
    assert conds(done)["Initialized"].status == "True" and done.phase == "Running"
    assert done.init_container_statuses[1].ready


def test_status_condition_transition_time_kept_while_unchanged():
    p = pod("a")
    first = compute(p, rt(sandbox(), ctr("a")))
    p.status.CopyFrom(first)
    later = compute_pod_status(p, rt(sandbox(), ctr("a")), host_ip="10.0.0.1",
                               now=NOW + datetime.timedelta(minutes=5))
    assert conds(later)["Ready"].last_transition_time == conds(first)["Ready"].last_transition_time
    assert later.start_time == first.start_time
    p.status.CopyFrom(later)
    gone = compute_pod_status(p, rt(sandbox()), host_ip="10.0.0.1",
                              now=NOW + datetime.timedelta(minutes=9))
    assert conds(gone)["Ready"].status == "False"
    assert conds(gone)["Ready"].last_transition_time.ToDatetime(datetime.timezone.utc) == \
        NOW + datetime.timedelta(minutes=9)


def test_status_vanished_running_container_counts_a_restart():
    p = pod("a")
    p.status.CopyFrom(compute(p, rt(sandbox(), ctr("a"))))
    s = compute(p, rt(sandbox()))
    cs = s.container_statuses[0]
    assert cs.restart_count == 1
    assert cs.last_state.terminated.reason == "ContainerStatusUnknown"
    assert s.phase == "Running"


def test_status_image_pull_errors_show_as_waiting():
    s = compute(pod("a"), rt(sandbox()),
                waiting={"a": ("ErrImagePull", 'Failed to pull image "nope": not found')})
    cs = s.container_statuses[0]
    assert cs.state.waiting.reason == "ErrImagePull"
    assert "nope" in cs.state.waiting.message
    assert s.phase == "Pending"


def test_status_terminal_phase_is_kept():
    p = pod("a", policy="Never")
    p.status.phase = "Succeeded"
    s = compute(p, rt())
    assert s.phase == "Succeeded"


def test_status_qos_classes():
    p = pod("a")
    assert qos_class(p) == "BestEffort"
    r = p.spec.containers[0].resources
    r.requests["cpu"] = "100m"
    assert qos_class(p) == "Burstable"
    r.limits.update({"cpu": "100m", "memory": "64Mi"})
    r.requests["memory"] = "64Mi"
    assert qos_class(p) == "Guaranteed"
