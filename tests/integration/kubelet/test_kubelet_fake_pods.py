"""The kubelet against the real API server, with the in-memory runtime:
node registration and lease, the pod lifecycle, restarts, probes, graceful
deletion, adoption after a restart, orphans, logs and exec."""

from __future__ import annotations

import asyncio
import datetime

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet import hollow
from services.kubelet.kubelet import KubeletConfig
from services.kubelet.runtime.base import LABEL_INIT, ContainerState
from services.kubelet.runtime.fake import FakeRuntime
from services.machinery.errors import NotFound
from tests.support import objects
from tests.support.processes import wait_until


def make_pod(name: str, ns: str, node: str, *, policy: str = "Always",
             command: tuple[str, ...] = ("sleep", "3600"), image: str = "busybox:1") -> core.Pod:
    pod = objects.pod(name, ns, image=image, node=node)
    pod.spec.restart_policy = policy
    del pod.spec.containers[0].command[:]
    pod.spec.containers[0].command.extend(command)
    pod.spec.termination_grace_period_seconds = 3
    return pod


async def get_pod(client, ns: str, name: str) -> core.Pod | None:
    try:
        return await client.resource("pods").get(name, ns)
    except NotFound:
        return None


async def wait_pod(client, ns, name, pred, timeout=15.0, message="pod condition"):
    async def check():
        pod = await get_pod(client, ns, name)
        return pod if pod is not None and pred(pod) else None
    return await wait_until(check, timeout, 0.05, message)


def running(pod: core.Pod) -> bool:
    return pod.status.phase == "Running" and all(
        c.state.HasField("running") for c in pod.status.container_statuses)


def ready(pod: core.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def test_kubelet_registers_its_node_and_renews_its_lease(client, start_kubelet, node_name):
    await start_kubelet(FakeRuntime(node_name=node_name), node_name,
                        kube_reserved="cpu=100m,memory=100Mi", capacity={
                            "cpu": "4", "memory": "8Gi", "pods": "110"})
    node = await client.resource("nodes").get(node_name)
    assert node.metadata.labels["kubernetes.io/hostname"] == node_name
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert node.status.capacity["cpu"] == "4"
    assert node.status.allocatable["cpu"] == "3900m"
    assert node.status.allocatable["memory"] == "8092Mi"
    assert {a.type: a.address for a in node.status.addresses} == {
        "InternalIP": "127.0.0.1", "Hostname": node_name}
    assert node.status.daemon_endpoints.kubelet_endpoint.port > 0
    assert node.status.node_info.container_runtime_version.startswith("fake://")
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"

    leases = client.resource("leases")
    lease = await wait_until(lambda: _lease(leases, node_name), 10, message="lease")
    assert lease.spec.holder_identity == node_name
    assert lease.spec.lease_duration_seconds == 40
    assert lease.metadata.owner_references[0].uid == node.metadata.uid
    first = lease.spec.renew_time.ToDatetime()

    async def renewed():
        current = await _lease(leases, node_name)
        return current is not None and current.spec.renew_time.ToDatetime() > first
    await wait_until(renewed, 10, message="lease renewal")


async def _lease(leases, name):
    try:
        return await leases.get(name, "kube-node-lease")
    except NotFound:
        return None


async def test_kubelet_registers_again_when_its_node_is_deleted(client, start_kubelet, node_name):
    running_ = await start_kubelet(FakeRuntime(node_name=node_name), node_name)
    nodes = client.resource("nodes")
    old = await nodes.get(node_name)
    await nodes.delete(node_name)

    async def back():
        try:
            node = await nodes.get(node_name)
        except NotFound:
            return None
        return node if node.metadata.uid != old.metadata.uid else None
    node = await wait_until(back, 15, message="node re-registration")
    assert node.status.daemon_endpoints.kubelet_endpoint.port == running_.server.port


async def test_kubelet_runs_a_pod_and_reports_its_status(client, namespace, start_kubelet,
                                                         node_name):
    runtime = FakeRuntime(node_name=node_name)
    k = await start_kubelet(runtime, node_name)
    pod = make_pod("web", namespace, node_name)
    c = pod.spec.containers[0]
    c.env.add(name="GREETING", value="hello")
    c.env.add(name="MSG", value="$(GREETING) world")
    c.args.extend(["$(MSG)"])
    c.resources.limits.update({"cpu": "200m", "memory": "32Mi"})
    await client.resource("pods").create(pod)
    pod = await wait_pod(client, namespace, "web", lambda p: running(p) and ready(p))
    status = pod.status
    assert status.pod_ip.startswith("10.88.") and status.host_ip == "127.0.0.1"
    assert status.HasField("start_time") and status.qos_class == "Guaranteed"
    cs = status.container_statuses[0]
    assert cs.container_id.startswith("fake://") and cs.ready and cs.started
    assert cs.restart_count == 0 and cs.image_id.startswith("sha256:")
    assert {c.type for c in status.conditions} == {"PodScheduled", "Initialized",
                                                   "ContainersReady", "Ready"}
    cid = cs.container_id.removeprefix("fake://")
    config = runtime.config_of(cid)
    assert config.env == {"GREETING": "hello", "MSG": "hello world"}
    assert config.args == ["hello world"]
    assert config.cpu_limit_millis == 200 and config.memory_limit_bytes == 32 << 20
    assert config.cpu_shares == 204

    # Level-triggered, and quiet: a running pod's status is not rewritten.
    writes = k.kubelet.status_manager.writes
    await asyncio.sleep(k.kubelet.config.relist_period * 3)
    assert k.kubelet.status_manager.writes == writes


async def test_kubelet_crash_loop_backs_off_and_counts_restarts(client, namespace,
                                                                start_kubelet, node_name):
    runtime = FakeRuntime(node_name=node_name, exit_code=lambda config: 3)
    await start_kubelet(runtime, node_name)
    await client.resource("pods").create(make_pod("crash", namespace, node_name))
    seen: set[str] = set()

    def crash_looping(p):
        for c in p.status.container_statuses:
            if c.state.waiting.reason:
                seen.add(c.state.waiting.reason)
        cs = p.status.container_statuses
        return cs and cs[0].restart_count >= 2 and "CrashLoopBackOff" in seen
    pod = await wait_pod(client, namespace, "crash", crash_looping, 20, "crash loop")
    cs = pod.status.container_statuses[0]
    assert cs.last_state.terminated.exit_code == 3
    assert pod.status.phase == "Running"       # restartPolicy Always: restarting
    # Only the current and the previous instance are kept.
    instances = await runtime.list_containers()
    assert len(instances) <= 3


async def test_kubelet_restart_policies_decide_the_final_phase(client, namespace, start_kubelet,
                                                               node_name):
    codes = {"ok": 0, "bad": 1}
    runtime = FakeRuntime(node_name=node_name,
                          exit_code=lambda config: codes.get(config.args[0] if config.args else ""))
    await start_kubelet(runtime, node_name)
    pods = client.resource("pods")
    cases = [("never-ok", "Never", "ok", "Succeeded"), ("never-bad", "Never", "bad", "Failed"),
             ("onfailure-ok", "OnFailure", "ok", "Succeeded")]
    for name, policy, arg, _ in cases:
        pod = make_pod(name, namespace, node_name, policy=policy)
        pod.spec.containers[0].args.append(arg)
        await pods.create(pod)
    for name, _, _, phase in cases:
        pod = await wait_pod(client, namespace, name, lambda p, ph=phase: p.status.phase == ph,
                             message=f"{name} {phase}")
        assert pod.status.container_statuses[0].restart_count == 0
        assert pod.status.container_statuses[0].state.HasField("terminated")
    # OnFailure restarts a failing container.
    pod = make_pod("onfailure-bad", namespace, node_name, policy="OnFailure")
    pod.spec.containers[0].args.append("bad")
    await pods.create(pod)
    await wait_pod(client, namespace, "onfailure-bad",
                   lambda p: p.status.container_statuses
                   and p.status.container_statuses[0].restart_count >= 1, 15, "restart")
    # A terminal pod's sandbox is stopped.
    done = await get_pod(client, namespace, "never-ok")

    async def sandbox_stopped():
        return all(s.state.value != "ready" for s in await runtime.list_sandboxes()
                   if s.pod_uid == done.metadata.uid)
    await wait_until(sandbox_stopped, 10, message="terminal pod's sandbox stopped")


async def test_kubelet_runs_init_containers_in_order_first(client, namespace, start_kubelet,
                                                           node_name):
    def exit_code(config):
        return 0 if config.labels.get(LABEL_INIT) == "true" else None
    runtime = FakeRuntime(node_name=node_name, exit_code=exit_code)
    await start_kubelet(runtime, node_name)
    pod = make_pod("init", namespace, node_name)
    for name in ("first", "second", "third"):
        pod.spec.init_containers.add(name=name, image="busybox:1", command=["true"])
    await client.resource("pods").create(pod)
    pod = await wait_pod(client, namespace, "init", running)
    assert [s.name for s in pod.status.init_container_statuses] == ["first", "second", "third"]
    assert all(s.state.terminated.reason == "Completed" for s in pod.status.init_container_statuses)
    assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"
    started = sorted(await runtime.list_containers(), key=lambda c: c.started_at)
    assert [c.name for c in started] == ["first", "second", "third", "main"]


async def test_kubelet_failed_init_container_with_never_fails_the_pod(client, namespace,
                                                                      start_kubelet, node_name):
    runtime = FakeRuntime(node_name=node_name,
                          exit_code=lambda c: 1 if c.labels.get(LABEL_INIT) == "true" else None)
    await start_kubelet(runtime, node_name)
    pod = make_pod("badinit", namespace, node_name, policy="Never")
    pod.spec.init_containers.add(name="setup", image="busybox:1", command=["false"])
    await client.resource("pods").create(pod)
    pod = await wait_pod(client, namespace, "badinit", lambda p: p.status.phase == "Failed")
    assert not any(c.name == "main" for c in await runtime.list_containers())


async def test_kubelet_graceful_deletion_stops_then_confirms(client, namespace, start_kubelet,
                                                            node_name):
    runtime = FakeRuntime(node_name=node_name)
    await start_kubelet(runtime, node_name)
    pods = client.resource("pods")
    pod = make_pod("bye", namespace, node_name)
    pod.spec.termination_grace_period_seconds = 17
    pod.spec.containers[0].lifecycle.pre_stop.exec.command.extend(["sh", "-c", "echo bye"])
    execs = []
    runtime.exec_handler = lambda info, cmd, stdin: execs.append(cmd) or (0, b"", b"")
    await pods.create(pod)
    pod = await wait_pod(client, namespace, "bye", running)
    cid = pod.status.container_statuses[0].container_id.removeprefix("fake://")
    await pods.delete("bye", namespace, grace_period_seconds=5)
    await wait_until(lambda: _gone(client, namespace, "bye"), 15, message="pod deletion")
    assert ["sh", "-c", "echo bye"] in execs            # the preStop hook ran first
    assert (cid, 5.0) in [(i, round(t)) for i, t in runtime.stops]  # within the pod's grace
    assert await runtime.list_containers() == [] and await runtime.list_sandboxes() == []


async def _gone(client, ns, name):
    return await get_pod(client, ns, name) is None


async def test_kubelet_restart_adopts_running_containers(client, namespace, start_kubelet,
                                                         node_name):
    runtime = FakeRuntime(node_name=node_name)
    first = await start_kubelet(runtime, node_name)
    pods = client.resource("pods")
    for name in ("a", "b"):
        await pods.create(make_pod(name, namespace, node_name))
    before = {}
    for name in ("a", "b"):
        pod = await wait_pod(client, namespace, name, running)
        before[name] = pod.status.container_statuses[0].container_id
    a_uid = (await get_pod(client, namespace, "a")).metadata.uid
    await first.stop()
    # While the kubelet is down, one pod goes away for good.
    await pods.delete("b", namespace, grace_period_seconds=0)
    second = await start_kubelet(runtime, node_name)

    async def only_a_left():
        return {c.pod_uid for c in await runtime.list_containers()} == {a_uid} and \
            {s.pod_uid for s in await runtime.list_sandboxes()} == {a_uid}
    await wait_until(only_a_left, 15, message="orphan cleanup")
    await asyncio.sleep(second.kubelet.config.relist_period * 2)
    live = await runtime.list_containers()
    assert [f"fake://{c.id}" for c in live] == [before["a"]]     # adopted, not restarted
    pod = await get_pod(client, namespace, "a")
    assert pod.status.container_statuses[0].container_id == before["a"]
    assert pod.status.container_statuses[0].restart_count == 0
    assert second.kubelet.status_manager.writes == 0             # nothing changed


async def test_kubelet_recreates_a_container_removed_behind_its_back(client, namespace,
                                                                     start_kubelet, node_name):
    runtime = FakeRuntime(node_name=node_name)
    await start_kubelet(runtime, node_name)
    await client.resource("pods").create(make_pod("phoenix", namespace, node_name))
    pod = await wait_pod(client, namespace, "phoenix", running)
    old = pod.status.container_statuses[0].container_id
    await runtime.remove_container(old.removeprefix("fake://"))
    pod = await wait_pod(client, namespace, "phoenix",
                         lambda p: running(p) and p.status.container_statuses[0].container_id
                         != old, message="recreated container")
    assert pod.status.container_statuses[0].restart_count == 1
    running_now = [c for c in await runtime.list_containers() if c.state == ContainerState.RUNNING]
    assert len(running_now) == 1


async def test_kubelet_replaces_a_container_whose_image_changed(client, namespace,
                                                                start_kubelet, node_name):
    runtime = FakeRuntime(node_name=node_name)
    await start_kubelet(runtime, node_name)
    pods = client.resource("pods")
    await pods.create(make_pod("upd", namespace, node_name))
    pod = await wait_pod(client, namespace, "upd", running)
    pod.spec.containers[0].image = "busybox:2"
    await pods.update(pod)
    pod = await wait_pod(client, namespace, "upd",
                         lambda p: running(p) and p.status.container_statuses[0].image
                         == "busybox:2", message="updated image running")
    live = [c for c in await runtime.list_containers() if c.state == ContainerState.RUNNING]
    assert [c.image for c in live] == ["busybox:2"]


async def test_kubelet_missing_image_gives_err_image_pull_then_backoff(client, namespace,
                                                                      start_kubelet, node_name):
    runtime = FakeRuntime(node_name=node_name, images=["busybox:1"])
    await start_kubelet(runtime, node_name)
    await client.resource("pods").create(make_pod("noimg", namespace, node_name,
                                                  image="nothere:1"))
    reasons: list[str] = []

    def both(p):
        for c in p.status.container_statuses:
            r = c.state.waiting.reason
            if r and (not reasons or reasons[-1] != r):
                reasons.append(r)
        return "ErrImagePull" in reasons and \
            "ImagePullBackOff" in reasons[reasons.index("ErrImagePull"):]
    pod = await wait_pod(client, namespace, "noimg", both, 15, "image pull errors")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.message
    await wait_until(lambda: len(runtime.pulls) >= 2, 10, message="a second pull")


async def test_kubelet_liveness_failure_restarts_and_readiness_flips_ready(
        client, namespace, start_kubelet, node_name):
    healthy = {"live": True, "ready": False}

    def exec_handler(info, command, stdin):
        return (0 if healthy[command[0]] else 1), b"", b""
    runtime = FakeRuntime(node_name=node_name, exec_handler=exec_handler)
    await start_kubelet(runtime, node_name)
    pod = make_pod("probed", namespace, node_name)
    c = pod.spec.containers[0]
    c.liveness_probe.exec.command.append("live")
    c.liveness_probe.period_seconds = 1
    c.liveness_probe.failure_threshold = 2
    c.readiness_probe.exec.command.append("ready")
    c.readiness_probe.period_seconds = 1
    await client.resource("pods").create(pod)
    pod = await wait_pod(client, namespace, "probed", running)
    assert not ready(pod)
    healthy["ready"] = True
    await wait_pod(client, namespace, "probed", ready, message="Ready")
    healthy["ready"] = False
    await wait_pod(client, namespace, "probed", lambda p: not ready(p), message="not Ready")
    healthy["live"] = False
    pod = await wait_pod(client, namespace, "probed",
                         lambda p: p.status.container_statuses[0].restart_count >= 1,
                         message="liveness restart")
    assert pod.status.container_statuses[0].last_state.HasField("terminated")


async def test_kubelet_logs_and_exec_through_the_api_server(client, namespace, start_kubelet,
                                                            node_name):
    runtime = FakeRuntime(node_name=node_name,
                          exec_handler=lambda info, cmd, stdin: (7, b"out:" + stdin, b"err"))
    await start_kubelet(runtime, node_name)
    await client.resource("pods").create(make_pod("talk", namespace, node_name))
    pod = await wait_pod(client, namespace, "talk", running)
    cid = pod.status.container_statuses[0].container_id.removeprefix("fake://")
    runtime.write_log(cid, b"line 1\n")
    runtime.write_log(cid, b"line 2\n")
    pods = client.resource("pods")
    data = b"".join([chunk async for chunk in pods.logs("talk", namespace)])
    assert data == b"line 1\nline 2\n"
    tail = b"".join([chunk async for chunk in pods.logs("talk", namespace, tail_lines=1)])
    assert tail == b"line 2\n"
    stamped = b"".join([c async for c in pods.logs("talk", namespace, timestamps=True)])
    assert stamped.split(b" ", 1)[0].startswith(str(datetime.date.today().year).encode())
    code, out, err = await pods.exec("talk", namespace, ["cat"], stdin=b"hi")
    assert (code, out, err) == (7, b"out:hi", b"err")


async def test_kubelet_hollow_nodes_share_one_informer(client, namespace, tmp_path,
                                                      kubelet_timings):
    base = KubeletConfig(node_name=f"hollow-{namespace}", node_ip="127.0.0.1",
                         root_dir=str(tmp_path), **kubelet_timings)
    informer = hollow.shared_pod_informer(client)
    kubelets = hollow.hollow_kubelets(client, base, 3, lambda n: FakeRuntime(node_name=n),
                                      informer)
    task = asyncio.create_task(hollow.run_group(kubelets, informer))
    try:
        await wait_until(lambda: all(k.ready.is_set() for k in kubelets), 20,
                         message="hollow kubelets ready")
        names = [k.node_name for k in kubelets]
        assert names == [f"{base.node_name}-{i}" for i in range(3)]
        for i, name in enumerate(names):
            await client.resource("pods").create(make_pod(f"p{i}", namespace, name))
        for i in range(3):
            await wait_pod(client, namespace, f"p{i}", running)
        for k in kubelets:
            assert len(await k.runtime.list_containers()) == 1
        nodes = await client.resource("nodes").list()
        ours = [n for n in nodes.items if n.metadata.name in names]
        assert len(ours) == 3 and all(n.metadata.labels["kubemark"] == "true" for n in ours)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for name in [k.node_name for k in kubelets]:
            try:
                await client.resource("nodes").delete(name)
            except NotFound:
                pass
