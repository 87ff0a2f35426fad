"""The kubelet with the real Docker Engine: pods as real containers.

Few tests, each covering several behaviours on one kubelet, to stay quick
on two shared cores. Every container a test makes carries its node's label
and is removed afterwards (the docker_runtime fixture)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery.errors import NotFound
from tests.support.processes import wait_until

TIMEOUT = 40.0


async def get_pod(client, ns: str, name: str) -> core.Pod | None:
    try:
        return await client.resource("pods").get(name, ns)
    except NotFound:
        return None


async def wait_pod(client, ns, name, pred, timeout, message):
    async def check():
        pod = await get_pod(client, ns, name)
        return pod if pod is not None and pred(pod) else None
    return await wait_until(check, timeout, 0.1, message)


def running(pod: core.Pod) -> bool:
    return pod.status.phase == "Running" and all(
        c.state.HasField("running") for c in pod.status.container_statuses)


def ready(pod: core.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def pod_spec(name: str, ns: str, node: str, image: str, *containers: tuple[str, str],
             policy: str = "Always", grace: int = 2) -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, ns
    pod.spec.node_name = node
    pod.spec.restart_policy = policy
    pod.spec.termination_grace_period_seconds = grace
    for cname, script in containers:
        pod.spec.containers.add(name=cname, image=image, command=["sh", "-c", script])
    return pod


def inspect(container_id: str) -> dict:
    out = subprocess.run(["docker", "inspect", container_id.removeprefix("docker://")],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return json.loads(out)[0]


def docker_ids(node: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                           f"label=io.kybernetes.node={node}"],
                          capture_output=True, text=True, timeout=30).stdout.split()


def status_of(pod: core.Pod, name: str) -> core.ContainerStatus:
    return next(s for s in list(pod.status.container_statuses)
                + list(pod.status.init_container_statuses) if s.name == name)


async def fetch(url: str) -> bytes:
    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    return await asyncio.to_thread(get)


async def test_kubelet_docker_pod_serves_http_shares_localhost_and_streams_logs(
        client, namespace, start_kubelet, docker_runtime, docker_images, node_name):
    busybox = docker_images[0]
    await start_kubelet(docker_runtime, node_name)
    pod = pod_spec(
        "web", namespace, node_name, busybox,
        ("web", "mkdir -p /www && echo $(GREETING) > /www/index.html && "
                "exec httpd -f -p 8080 -h /www"),
        ("client", "while true; do wget -qO- http://127.0.0.1:8080/ > /tmp/got && "
                   "echo fetched; sleep 1; done"))
    web = pod.spec.containers[0]
    web.env.add(name="WHO", value="kybernetes")
    web.env.add(name="GREETING", value="hello $(WHO)")
    web.args.extend(["ignored-arg"])
    web.working_dir = "/tmp"
    web.resources.limits.update({"cpu": "250m", "memory": "64Mi"})
    web.resources.requests.update({"cpu": "100m"})
    web.ports.add(name="http", container_port=8080)
    probe = web.readiness_probe
    probe.http_get.path = "/"
    probe.http_get.port.str_value = "http"
    probe.period_seconds = 1
    await client.resource("pods").create(pod)
    pod = await wait_pod(client, namespace, "web", lambda p: running(p) and ready(p), TIMEOUT,
                         "web pod running and ready")

    # The pod IP serves HTTP from the host.
    assert pod.status.pod_ip and pod.status.pod_ip != "127.0.0.1"
    assert await fetch(f"http://{pod.status.pod_ip}:8080/") == b"hello kybernetes\n"

    # env, command, args, working dir and resources reach Docker.
    info = inspect(status_of(pod, "web").container_id)
    assert "GREETING=hello kybernetes" in info["Config"]["Env"]
    assert info["Config"]["Entrypoint"] == [   # command, with $(VAR) expanded
        "sh", "-c", "mkdir -p /www && echo hello kybernetes > /www/index.html && "
        "exec httpd -f -p 8080 -h /www"]
    assert info["Config"]["Cmd"] == ["ignored-arg"]
    assert info["Config"]["WorkingDir"] == "/tmp"
    assert info["HostConfig"]["NanoCpus"] == 250_000_000
    assert info["HostConfig"]["Memory"] == 64 << 20
    assert info["HostConfig"]["CpuShares"] == 102
    assert info["HostConfig"]["NetworkMode"].startswith("container:")

    # The two containers share localhost: exec through the API server proves it.
    pods = client.resource("pods")

    async def client_fetched():
        code, out, _ = await pods.exec("web", namespace, ["cat", "/tmp/got"], container="client")
        return code == 0 and out == b"hello kybernetes\n"
    await wait_until(client_fetched, TIMEOUT, 0.5, "client container fetching over localhost")
    code, out, err = await pods.exec("web", namespace,
                                     ["sh", "-c", "echo out; echo err >&2; exit 3"],
                                     container="client")
    assert (code, out, err) == (3, b"out\n", b"err\n")

    # Logs through the API server: whole, tail, and followed.
    async def logged():
        data = b"".join([c async for c in pods.logs("web", namespace, container="client")])
        return data.count(b"fetched\n") >= 2
    await wait_until(logged, TIMEOUT, 0.5, "client logs")
    tail = b"".join([c async for c in pods.logs("web", namespace, container="client",
                                                tail_lines=1)])
    assert tail == b"fetched\n"
    stream = pods.logs("web", namespace, container="client", follow=True, tail_lines=0)
    first = await asyncio.wait_for(stream.__anext__(), 10)
    assert b"fetched" in first
    await stream.aclose()


async def test_kubelet_docker_init_order_restart_policies_and_crash_loop(
        client, namespace, start_kubelet, docker_runtime, docker_images, node_name):
    busybox = docker_images[0]
    await start_kubelet(docker_runtime, node_name)
    pods = client.resource("pods")

    init = pod_spec("init", namespace, node_name, busybox,
                    ("main", "cat /work/order; exec sleep 3600"))
    init.spec.volumes.add(name="work").empty_dir.SetInParent()
    for i, word in enumerate(("one", "two")):
        c = init.spec.init_containers.add(name=f"init{i}", image=busybox,
                                          command=["sh", "-c", f"echo {word} >> /work/order"])
        c.volume_mounts.add(name="work", mount_path="/work")
    init.spec.containers[0].volume_mounts.add(name="work", mount_path="/work")
    await pods.create(init)
    await pods.create(pod_spec("never", namespace, node_name, busybox, ("main", "exit 1"),
                               policy="Never"))
    await pods.create(pod_spec("onfailure", namespace, node_name, busybox, ("main", "exit 0"),
                               policy="OnFailure"))
    await pods.create(pod_spec("crash", namespace, node_name, busybox, ("main", "exit 2")))

    pod = await wait_pod(client, namespace, "init", running, TIMEOUT, "init pod running")
    assert [s.state.terminated.exit_code for s in pod.status.init_container_statuses] == [0, 0]
    logs = b"".join([c async for c in pods.logs("init", namespace)])
    assert logs == b"one\ntwo\n"

    never = await wait_pod(client, namespace, "never", lambda p: p.status.phase == "Failed",
                           TIMEOUT, "Never pod Failed")
    assert status_of(never, "main").state.terminated.exit_code == 1
    assert status_of(never, "main").restart_count == 0
    await wait_pod(client, namespace, "onfailure", lambda p: p.status.phase == "Succeeded",
                   TIMEOUT, "OnFailure pod Succeeded")

    seen: set[str] = set()

    def looping(p):
        for s in p.status.container_statuses:
            seen.add(s.state.waiting.reason)
        return p.status.container_statuses and \
            p.status.container_statuses[0].restart_count >= 2 and "CrashLoopBackOff" in seen
    crash = await wait_pod(client, namespace, "crash", looping, TIMEOUT, "crash loop")
    assert status_of(crash, "main").last_state.terminated.exit_code == 2
    previous = b"".join([c async for c in pods.logs("crash", namespace, previous=True)])
    assert previous == b""


async def test_kubelet_docker_probes_restart_and_flip_ready(
        client, namespace, start_kubelet, docker_runtime, docker_images, node_name):
    busybox = docker_images[0]
    await start_kubelet(docker_runtime, node_name)
    pod = pod_spec("probed", namespace, node_name, busybox,
                   ("main", "touch /tmp/ready /tmp/alive; echo started; exec sleep 3600"))
    c = pod.spec.containers[0]
    c.readiness_probe.exec.command.extend(["test", "-f", "/tmp/ready"])
    c.readiness_probe.period_seconds = 1
    c.liveness_probe.exec.command.extend(["test", "-f", "/tmp/alive"])
    c.liveness_probe.period_seconds = 1
    c.liveness_probe.failure_threshold = 1
    pods = client.resource("pods")
    await pods.create(pod)
    await wait_pod(client, namespace, "probed", lambda p: running(p) and ready(p), TIMEOUT, "Ready")
    assert (await pods.exec("probed", namespace, ["rm", "/tmp/ready"]))[0] == 0
    await wait_pod(client, namespace, "probed", lambda p: not ready(p), TIMEOUT, "not Ready")
    assert (await pods.exec("probed", namespace, ["touch", "/tmp/ready"]))[0] == 0
    pod = await wait_pod(client, namespace, "probed", ready, TIMEOUT, "Ready again")
    old = status_of(pod, "main").container_id
    assert (await pods.exec("probed", namespace, ["rm", "/tmp/alive"]))[0] == 0
    pod = await wait_pod(client, namespace, "probed",
                         lambda p: status_of(p, "main").restart_count == 1 and running(p),
                         TIMEOUT, "liveness restart")
    assert status_of(pod, "main").container_id != old
    assert status_of(pod, "main").last_state.terminated.container_id == old
    previous = b"".join([c async for c in pods.logs("probed", namespace, previous=True)])
    assert previous == b"started\n"


async def test_kubelet_docker_missing_image_and_graceful_termination(
        client, namespace, start_kubelet, docker_runtime, docker_images, node_name, tmp_path):
    busybox = docker_images[0]
    await start_kubelet(docker_runtime, node_name)
    pods = client.resource("pods")
    missing = pod_spec("missing", namespace, node_name, "kyb/no-such-image:1", ("main", "true"))
    await pods.create(missing)
    marker = tmp_path / "marker"
    marker.mkdir()
    term = pod_spec("term", namespace, node_name, busybox,
                    ("polite", "trap 'echo got-term > /out/term; exit 0' TERM; "
                               "while true; do sleep 0.2; done"),
                    ("stubborn", "exec sleep 3600"), grace=3)
    term.spec.volumes.add(name="out").host_path.path = str(marker)
    term.spec.containers[0].volume_mounts.add(name="out", mount_path="/out")
    await pods.create(term)

    reasons: list[str] = []

    def pull_errors(p):
        for s in p.status.container_statuses:
            reason = s.state.waiting.reason
            if reason and (not reasons or reasons[-1] != reason):
                reasons.append(reason)
        # ErrImagePull, then ImagePullBackOff while the backoff lasts
        return "ErrImagePull" in reasons and \
            "ImagePullBackOff" in reasons[reasons.index("ErrImagePull"):]
    pod = await wait_pod(client, namespace, "missing", pull_errors, TIMEOUT, "pull errors")
    assert pod.status.phase == "Pending"
    assert "kyb/no-such-image:1" in status_of(pod, "main").state.waiting.message

    await wait_pod(client, namespace, "term", running, TIMEOUT, "term pod running")
    started = time.monotonic()
    await pods.delete("term", namespace)

    async def gone():
        try:
            await pods.get("term", namespace)
        except NotFound:
            return True
        return False
    await wait_until(gone, TIMEOUT, 0.1, "graceful deletion")
    elapsed = time.monotonic() - started
    assert (marker / "term").read_text() == "got-term\n"   # SIGTERM reached the trap
    assert elapsed >= 2.5                                  # the stubborn one got its grace
    assert docker_ids(node_name) == [] or all(
        "missing" in inspect(i)["Name"] for i in docker_ids(node_name))


async def test_kubelet_docker_restart_adopts_and_recreates_removed_containers(
        client, namespace, start_kubelet, docker_runtime, docker_images, node_name):
    busybox = docker_images[0]
    first = await start_kubelet(docker_runtime, node_name)
    pods = client.resource("pods")
    await pods.create(pod_spec("steady", namespace, node_name, busybox,
                               ("main", "exec sleep 3600")))
    pod = await wait_pod(client, namespace, "steady", running, TIMEOUT, "steady running")
    ids = sorted(docker_ids(node_name))
    assert len(ids) == 2   # the sandbox and the container
    await first.stop()
    second = await start_kubelet(docker_runtime, node_name)
    await asyncio.sleep(second.kubelet.config.relist_period * 3)
    assert sorted(docker_ids(node_name)) == ids            # adopted: no duplicates, no restart
    again = await get_pod(client, namespace, "steady")
    assert status_of(again, "main").container_id == status_of(pod, "main").container_id
    assert status_of(again, "main").restart_count == 0

    old = status_of(again, "main").container_id.removeprefix("docker://")
    subprocess.run(["docker", "rm", "-f", old], capture_output=True, timeout=30, check=True)
    pod = await wait_pod(client, namespace, "steady",
                         lambda p: running(p) and status_of(p, "main").restart_count == 1,
                         TIMEOUT, "recreated container")
    assert status_of(pod, "main").container_id != f"docker://{old}"
    assert len(docker_ids(node_name)) == 2
