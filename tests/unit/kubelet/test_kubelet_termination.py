from __future__ import annotations

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.containers import container_config, sandbox_config
from services.kubelet.runtime.base import ContainerState, SandboxState
from services.kubelet.runtime.fake import FakeRuntime
from services.kubelet.sync import PodRuntimeState
from services.kubelet.termination import kill_container, kill_pod, label_grace, remove_all


def pod(grace: int = 10) -> core.Pod:
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "ns", "uid"
    p.spec.termination_grace_period_seconds = grace
    a = p.spec.containers.add(name="a", image="busybox")
    a.lifecycle.pre_stop.exec.command.extend(["drain"])
    p.spec.containers.add(name="b", image="busybox")
    return p


async def _running(runtime: FakeRuntime, p: core.Pod) -> PodRuntimeState:
    sandbox = await runtime.run_sandbox(sandbox_config(p, "n1"))
    for c in p.spec.containers:
        cid = await runtime.create_container(
            sandbox, container_config(p, c, node="n1", restart_count=0))
        await runtime.start_container(cid)
    return PodRuntimeState.of(await runtime.list_sandboxes(), await runtime.list_containers())


async def test_termination_runs_pre_stop_then_stops_within_the_grace_period():
    hooks = []
    runtime = FakeRuntime(exec_handler=lambda info, cmd, stdin: hooks.append((info.name, cmd))
                          or (0, b"", b""))
    p = pod(grace=10)
    state = await _running(runtime, p)
    await kill_pod(runtime, p, state)
    assert hooks == [("a", ["drain"])]                   # only the container with a hook
    first_stop: dict[str, float] = {}
    for cid, timeout in runtime.stops:
        first_stop.setdefault(cid, timeout)
    assert [round(first_stop[c.id]) for c in state.containers] == [10, 10]
    after = PodRuntimeState.of(await runtime.list_sandboxes(), await runtime.list_containers())
    assert all(c.state == ContainerState.EXITED for c in after.containers)
    assert all(s.state == SandboxState.NOT_READY for s in after.sandboxes)
    await remove_all(runtime, after)
    assert await runtime.list_containers() == [] and await runtime.list_sandboxes() == []


async def test_termination_deletion_grace_wins_and_two_seconds_are_the_minimum():
    runtime = FakeRuntime()
    p = pod(grace=30)
    state = await _running(runtime, p)
    p.metadata.deletion_grace_period_seconds = 1
    info = next(c for c in state.containers if c.name == "b")
    await kill_container(runtime, p, info)
    assert runtime.stops == [(info.id, 2.0)]


async def test_termination_orphans_use_the_grace_recorded_on_the_container():
    runtime = FakeRuntime()
    p = pod(grace=7)
    state = await _running(runtime, p)
    assert all(label_grace(c) == 7 for c in state.containers)
    info = state.containers[0]
    await kill_container(runtime, None, info)
    assert runtime.stops == [(info.id, 7.0)]
    other = state.containers[1]
    await kill_container(runtime, None, other, grace=0)      # force deletion
    assert runtime.stops[-1] == (other.id, 0.0)
