"""DockerRuntime against the real Docker Engine (and its pure helpers).

Every object a test creates carries a per-test label and is removed in a
finalizer through the plain SDK, whatever the test's outcome. The runtime
under test is given a node name of its own, so its lists see only this
test's objects.
"""

from __future__ import annotations

import asyncio
import datetime
import struct
import threading
import time
import urllib.request
import uuid

import docker
import pytest

from services.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_UID, LABEL_RESTART_COUNT, LABEL_TYPE,
    ContainerConfig, ContainerState, ImagePullError, Mount, NotFoundError, PortMapping,
    SandboxConfig, SandboxState, labels_for,
)
from services.kubelet.runtime.docker import (
    DockerRuntime, container_info, container_name, container_state, demux, label_filters,
    parse_time, sandbox_info, sandbox_name,
)
from tests.support.images import BUSYBOX, PAUSE, ensure_images
from tests.support.processes import free_port, wait_until

TEST_LABEL = "io.kybernetes.test.run"
UTC = datetime.timezone.utc


# -- pure helpers (no Docker needed) ---------------------------------------------------------


def test_docker_runtime_parse_time_handles_nanoseconds_zones_and_zero():
    assert parse_time("2024-05-07T21:09:36.123456789Z") == \
        datetime.datetime(2024, 5, 7, 21, 9, 36, 123456, tzinfo=UTC)
    assert parse_time("2024-05-07T21:09:36Z") == datetime.datetime(2024, 5, 7, 21, 9, 36,
                                                                    tzinfo=UTC)
    assert parse_time("2024-05-07T23:09:36.5+02:00") == \
        datetime.datetime(2024, 5, 7, 21, 9, 36, 500000, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None and parse_time(None) is None


def test_docker_runtime_container_state_maps_docker_states_like_dockershim():
    assert container_state({"Status": "running"})[0] == ContainerState.RUNNING
    assert container_state({"Status": "created"})[0] == ContainerState.CREATED
    assert container_state({"Status": "exited", "ExitCode": 0}) == \
        (ContainerState.EXITED, 0, "Completed", "")
    assert container_state({"Status": "exited", "ExitCode": 2}) == \
        (ContainerState.EXITED, 2, "Error", "")
    assert container_state({"Status": "exited", "ExitCode": 137, "OOMKilled": True})[2] == \
        "OOMKilled"
    # A start that failed leaves Docker's container "created", with an error.
    assert container_state({"Status": "created", "ExitCode": 127, "Error": "no such file"}) == \
        (ContainerState.EXITED, 127, "ContainerCannotRun", "no such file")
    assert container_state({"Status": "removing"})[0] == ContainerState.UNKNOWN


def test_docker_runtime_container_info_reads_inspect():
    labels = {**labels_for("uid", "web", "prod"), LABEL_CONTAINER_NAME: "app",
              LABEL_RESTART_COUNT: "4"}
    inspect = {
        "Id": "c1", "Image": "sha256:abc", "Created": "2024-01-01T00:00:00.1Z",
        "Config": {"Labels": labels, "Image": BUSYBOX},
        "HostConfig": {"NetworkMode": "container:s1"},
        # Docker's StartedAt of a process that exited at once can be later.
        "State": {"Status": "exited", "ExitCode": 1, "StartedAt": "2024-01-01T00:00:02Z",
                  "FinishedAt": "2024-01-01T00:00:01Z"},
    }
    info = container_info(inspect)
    assert (info.id, info.name, info.pod_uid, info.sandbox_id) == ("c1", "app", "uid", "s1")
    assert (info.image, info.image_id, info.restart_count) == (BUSYBOX, "sha256:abc", 4)
    assert (info.state, info.exit_code, info.reason) == (ContainerState.EXITED, 1, "Error")
    assert info.finished_at == info.started_at == datetime.datetime(2024, 1, 1, 0, 0, 2,
                                                                     tzinfo=UTC)
    inspect["State"] = {"Status": "created", "ExitCode": 127, "Error": "exec: nope",
                        "StartedAt": "0001-01-01T00:00:00Z",
                        "FinishedAt": "0001-01-01T00:00:00Z"}
    failed = container_info(inspect)
    assert failed.reason == "ContainerCannotRun" and failed.message == "exec: nope"
    assert failed.started_at is None and failed.finished_at == failed.created_at


def test_docker_runtime_sandbox_info_takes_the_ip_only_while_running():
    inspect = {
        "Id": "s1", "Created": "2024-01-01T00:00:00Z",
        "Config": {"Labels": labels_for("uid", "web", "prod")},
        "State": {"Status": "running"},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.5"}}},
    }
    info = sandbox_info(inspect)
    assert (info.pod_uid, info.name, info.namespace) == ("uid", "web", "prod")
    assert (info.state, info.ip) == (SandboxState.READY, "172.17.0.5")
    inspect["State"] = {"Status": "exited"}
    assert (sandbox_info(inspect).state, sandbox_info(inspect).ip) == (SandboxState.NOT_READY, "")


def test_docker_runtime_demux_splits_stdout_and_stderr():
    def frame(kind: int, data: bytes) -> bytes:
        return struct.pack(">BxxxL", kind, len(data)) + data

    data = frame(1, b"out1 ") + frame(2, b"err") + frame(1, b"out2")
    assert demux(data) == (b"out1 out2", b"err")
    assert demux(b"") == (b"", b"")


def test_docker_runtime_names_and_label_filters():
    sandbox = SandboxConfig("0123456789ab", "web", "prod", "web", {})
    assert sandbox_name(sandbox) == "kyb_POD_prod_web_01234567"
    config = ContainerConfig("app", BUSYBOX, {LABEL_RESTART_COUNT: "3"})
    pod = labels_for("0123456789ab", "web", "prod")
    assert container_name(config, pod) == "kyb_app_web_prod_01234567_3"
    assert label_filters({LABEL_POD_UID: "u"}, "sandbox", "n1") == [
        f"{LABEL_NODE}=n1", f"{LABEL_POD_UID}=u", f"{LABEL_TYPE}=sandbox"]
    assert label_filters(None, "container", "") == [f"{LABEL_TYPE}=container"]


# -- against Docker --------------------------------------------------------------------------


@pytest.fixture
def run_label():
    """A label value for this test; its containers are removed at the end."""
    ensure_images()
    value = uuid.uuid4().hex[:12]
    yield value
    client = docker.from_env(timeout=60)
    try:
        for c in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={value}"}):
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
    finally:
        client.close()


@pytest.fixture
async def rt(run_label):
    runtime = DockerRuntime(node_name=f"test-{run_label}", pod_infra_image=PAUSE)
    yield runtime
    await runtime.close()


class Pod:
    """Configs for one test pod, every object labelled for clean-up."""

    def __init__(self, run_label: str, name: str = "pod"):
        self.uid = uuid.uuid4().hex
        self.name = name
        self.labels = {**labels_for(self.uid, name, "kyb-test"), TEST_LABEL: run_label}

    def sandbox(self, **kw) -> SandboxConfig:
        return SandboxConfig(pod_uid=self.uid, name=self.name, namespace="kyb-test",
                             hostname=self.name, labels=dict(self.labels), **kw)

    def container(self, name: str, *args: str, restart: int = 0, **kw) -> ContainerConfig:
        labels = {**self.labels, LABEL_CONTAINER_NAME: name, LABEL_RESTART_COUNT: str(restart)}
        return ContainerConfig(name=name, image=BUSYBOX, labels=labels, args=list(args), **kw)


async def start(rt: DockerRuntime, sandbox_id: str, config: ContainerConfig) -> str:
    cid = await rt.create_container(sandbox_id, config)
    await rt.start_container(cid)
    return cid


async def exited(rt: DockerRuntime, cid: str, timeout: float = 20.0):
    async def done():
        info = await rt.container_status(cid)
        return info if info.state == ContainerState.EXITED else None
    return await wait_until(done, timeout, message=f"container {cid[:12]} to exit")


async def log_text(rt: DockerRuntime, cid: str, **kw) -> str:
    return b"".join([chunk async for chunk in rt.logs(cid, **kw)]).decode()


def http_get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


async def test_docker_runtime_version_names_docker(rt):
    assert (await rt.version()).startswith("docker://")


async def test_docker_runtime_pod_shares_localhost_and_its_ip_serves_http(rt, run_label):
    pod = Pod(run_label, "web")
    host_port = free_port()
    sid = await rt.run_sandbox(pod.sandbox(port_mappings=[PortMapping(8080, host_port)]))
    [sandbox] = await rt.list_sandboxes({LABEL_POD_UID: pod.uid})
    assert sandbox.id == sid and sandbox.state == SandboxState.READY and sandbox.ip
    await start(rt, sid, pod.container("server", "httpd", "-f", "-p", "8080", "-h", "/www"))
    client = await start(rt, sid, pod.container("client", "sleep", "600"))

    async def over_localhost():
        code, out, _ = await rt.exec(client, ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"])
        return code == 0 and out.decode()
    assert (await wait_until(over_localhost, 20, message="httpd over localhost")) == \
        "kybernetes\n"
    # The pod IP, from the host, and the hostPort.
    body = await wait_until(lambda: asyncio.to_thread(http_get, f"http://{sandbox.ip}:8080/"),
                            20, message="httpd on the pod IP")
    assert body == "kybernetes\n"
    body = await wait_until(lambda: asyncio.to_thread(http_get, f"http://127.0.0.1:{host_port}/"),
                            20, message="httpd on the hostPort")
    assert body == "kybernetes\n"
    # Both containers see the pod's hostname and IP.
    code, out, _ = await rt.exec(client, ["sh", "-c", "hostname; ip -4 addr show eth0"])
    assert code == 0 and out.decode().splitlines()[0] == "web" and sandbox.ip in out.decode()


async def test_docker_runtime_container_config_is_applied(rt, run_label, tmp_path):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    (tmp_path / "hello").write_text("from the host")
    config = pod.container("app", "-c", "sleep 600", command=["sh"], env={"GREETING": "hi"},
                           working_dir="/tmp", mounts=[Mount(str(tmp_path), "/data", True)],
                           cpu_limit_millis=250, memory_limit_bytes=64 << 20, cpu_shares=256,
                           stop_signal="SIGINT", restart=2)
    cid = await start(rt, sid, config)
    inspect = docker.from_env().api.inspect_container(cid)
    cfg, host = inspect["Config"], inspect["HostConfig"]
    assert inspect["Name"] == f"/kyb_app_pod_kyb-test_{pod.uid[:8]}_2"
    assert cfg["Entrypoint"] == ["sh"] and cfg["Cmd"] == ["-c", "sleep 600"]
    assert "GREETING=hi" in cfg["Env"] and cfg["WorkingDir"] == "/tmp"
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Labels"][LABEL_CONTAINER_NAME] == "app" and cfg["Labels"][LABEL_TYPE] == "container"
    assert cfg["Labels"][LABEL_NODE] == f"test-{run_label}"
    assert host["NanoCpus"] == 250_000_000 and host["Memory"] == 64 << 20
    assert host["CpuShares"] == 256
    assert host["NetworkMode"] == f"container:{sid}"
    assert host["LogConfig"]["Type"] == "json-file"
    assert host["RestartPolicy"]["Name"] in ("no", "")
    assert f"{tmp_path}:/data:ro" in host["Binds"]
    code, out, _ = await rt.exec(cid, ["sh", "-c", 'echo "$GREETING $(pwd)"; cat /data/hello'])
    assert (code, out) == (0, b"hi /tmp\nfrom the host")
    info = await rt.container_status(cid)
    assert info.state == ContainerState.RUNNING and info.sandbox_id == sid
    assert info.pod_uid == pod.uid and info.name == "app" and info.restart_count == 2
    assert info.image == BUSYBOX and info.image_id == await rt.image_status(BUSYBOX)
    assert info.started_at is not None and info.started_at.tzinfo is not None


async def test_docker_runtime_args_alone_keep_the_image_entrypoint(rt, run_label):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    cid = await start(rt, sid, pod.container("echo", "echo", "args only"))
    info = await exited(rt, cid)
    assert (info.exit_code, await log_text(rt, cid)) == (0, "args only\n")


async def test_docker_runtime_exited_containers_are_completed_or_error(rt, run_label):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    ok = await start(rt, sid, pod.container("init", "true"))
    bad = await start(rt, sid, pod.container("crash", "sh", "-c", "exit 3"))
    ok_info, bad_info = await exited(rt, ok), await exited(rt, bad)
    assert (ok_info.exit_code, ok_info.reason) == (0, "Completed")
    assert (bad_info.exit_code, bad_info.reason) == (3, "Error")
    assert bad_info.finished_at is not None and bad_info.started_at <= bad_info.finished_at
    listed = {c.name: c for c in await rt.list_containers({LABEL_POD_UID: pod.uid})}
    assert listed["init"].reason == "Completed" and listed["crash"].exit_code == 3
    # A command that cannot run: start fails, and the container counts as failed.
    broken = await rt.create_container(sid, pod.container("broken", "no-such-binary"))
    with pytest.raises(Exception, match="no-such-binary"):
        await rt.start_container(broken)
    info = await rt.container_status(broken)
    assert info.state == ContainerState.EXITED and info.reason == "ContainerCannotRun"
    assert info.exit_code != 0 and info.finished_at is not None


async def test_docker_runtime_stop_honours_the_grace_period(rt, run_label):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    polite = await start(rt, sid, pod.container(
        "polite", "sh", "-c",
        "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.2; done"))
    stubborn = await start(rt, sid, pod.container(
        "stubborn", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.2; done"))
    for cid in (polite, stubborn):
        await wait_until(lambda cid=cid: _has(rt, cid, "ready"), 20, message="the trap to be set")
    await asyncio.gather(rt.stop_container(polite, 10), rt.stop_container(stubborn, 1))
    polite_info, stubborn_info = await exited(rt, polite), await exited(rt, stubborn)
    assert (polite_info.exit_code, polite_info.reason) == (0, "Completed")
    assert "bye" in await log_text(rt, polite)
    assert polite_info.finished_at - polite_info.started_at < datetime.timedelta(seconds=10)
    assert (stubborn_info.exit_code, stubborn_info.reason) == (137, "Error")
    await rt.stop_container(polite, 1)  # already stopped: nothing happens


async def test_docker_runtime_lists_by_labels_and_removes_pods(rt, run_label):
    one, two = Pod(run_label, "one"), Pod(run_label, "two")
    s1 = await rt.run_sandbox(one.sandbox())
    s2 = await rt.run_sandbox(two.sandbox(host_network=True))
    c1 = await start(rt, s1, one.container("app", "sleep", "600"))
    c2 = await rt.create_container(s2, two.container("app", "sleep", "600"))
    assert {s.id for s in await rt.list_sandboxes()} == {s1, s2}
    assert [s.id for s in await rt.list_sandboxes({LABEL_POD_UID: one.uid})] == [s1]
    [host_sandbox] = await rt.list_sandboxes({LABEL_POD_UID: two.uid})
    assert host_sandbox.ip == ""  # hostNetwork: the kubelet reports the node's IP
    assert {c.id for c in await rt.list_containers()} == {c1, c2}
    [created] = await rt.list_containers({LABEL_POD_UID: two.uid})
    assert created.state == ContainerState.CREATED and created.sandbox_id == s2
    # Another node's runtime on the same Docker sees none of it.
    other = DockerRuntime(node_name=f"other-{run_label}")
    assert await other.list_sandboxes() == [] and await other.list_containers() == []
    await other.close()

    await rt.stop_sandbox(s1)
    [stopped] = await rt.list_sandboxes({LABEL_POD_UID: one.uid})
    assert stopped.state == SandboxState.NOT_READY and stopped.ip == ""
    assert (await rt.container_status(c1)).state == ContainerState.EXITED
    await rt.remove_sandbox(s1)
    assert await rt.list_sandboxes({LABEL_POD_UID: one.uid}) == []
    with pytest.raises(NotFoundError):
        await rt.container_status(c1)
    await rt.remove_container(c2)
    await rt.remove_container(c2)  # gone already: fine
    await rt.remove_sandbox(s2)
    assert await rt.list_containers() == [] and await rt.list_sandboxes() == []


async def test_docker_runtime_sandbox_name_conflict_gets_a_new_name(rt, run_label):
    pod = Pod(run_label)
    first = await rt.run_sandbox(pod.sandbox())
    await rt.stop_sandbox(first)
    second = await rt.run_sandbox(pod.sandbox())  # the kubelet's next attempt
    sandboxes = sorted(await rt.list_sandboxes({LABEL_POD_UID: pod.uid}),
                       key=lambda s: s.created_at, reverse=True)
    assert [s.id for s in sandboxes] == [second, first]
    assert sandboxes[0].state == SandboxState.READY


async def test_docker_runtime_exec_returns_output_exit_code_and_takes_stdin(rt, run_label):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    cid = await start(rt, sid, pod.container("app", "sleep", "600"))
    assert await rt.exec(cid, ["sh", "-c", "echo out; echo err >&2; exit 4"]) == \
        (4, b"out\n", b"err\n")
    assert await rt.exec(cid, ["cat"], stdin=b"fed whole\n") == (0, b"fed whole\n", b"")
    with pytest.raises(TimeoutError):
        await rt.exec(cid, ["sleep", "5"], timeout=0.5)


async def test_docker_runtime_logs_tail_timestamps_and_follow(rt, run_label):
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    cid = await start(rt, sid, pod.container(
        "talker", "sh", "-c",
        "i=0; while [ $i -lt 5 ]; do echo line $i; i=$((i+1)); done; "
        "while true; do echo tick; sleep 0.2; done"))
    await wait_until(lambda: _has(rt, cid, "tick"), 20, message="the first tick")
    assert (await log_text(rt, cid)).startswith("line 0\nline 1\nline 2\nline 3\nline 4\n")
    assert len((await log_text(rt, cid, tail=2)).splitlines()) == 2
    [stamped] = (await log_text(rt, cid, tail=1, timestamps=True)).splitlines()
    assert parse_time(stamped.split(" ", 1)[0]) is not None
    later = await log_text(rt, cid, since=time.time() + 3600)
    assert later == ""

    stream = rt.logs(cid, follow=True, tail=0)
    ticks = 0
    async for chunk in stream:
        ticks += chunk.count(b"tick")
        if ticks >= 2:
            break
    await stream.aclose()
    await wait_until(lambda: not _log_threads(cid), 10, message="the log thread to end")

    # Cancelling a reader blocked on a quiet stream ends it as promptly.
    quiet = await start(rt, sid, pod.container("quiet", "sleep", "600"))
    stream = rt.logs(quiet, follow=True)
    task = asyncio.ensure_future(stream.__anext__())
    await wait_until(lambda: _log_threads(quiet), 10, message="the log thread to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
    await wait_until(lambda: not _log_threads(quiet), 10, message="the quiet log thread to end")


async def _has(rt: DockerRuntime, cid: str, text: str) -> bool:
    return text in await log_text(rt, cid)


def _log_threads(cid: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"docker-logs-{cid[:12]}"]


async def test_docker_runtime_missing_image_is_an_image_pull_error(rt, run_label):
    assert await rt.image_status("nosuch:1") is None
    assert await rt.image_status(BUSYBOX)
    with pytest.raises(ImagePullError, match='failed to pull image "nosuch:1"'):
        await rt.pull_image("nosuch:1")
    pod = Pod(run_label)
    sid = await rt.run_sandbox(pod.sandbox())
    config = pod.container("app")
    config.image = "nosuch:1"
    with pytest.raises(ImagePullError):
        await rt.create_container(sid, config)
