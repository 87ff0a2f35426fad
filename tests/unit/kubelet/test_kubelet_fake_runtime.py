"""FakeRuntime: the in-memory runtime of hollow nodes and kubelet unit tests."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from services.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_UID, LABEL_RESTART_COUNT, LABEL_TYPE,
    ContainerConfig, ContainerState, ImagePullError, NotFoundError, PortMapping, RuntimeError_,
    SandboxConfig, SandboxState, labels_for,
)
from services.kubelet.runtime.fake import FakeRuntime, image_id, normalize_image
from services.machinery.clock import FakeClock

IMAGE = "kyb/busybox:latest"


def sandbox_config(uid: str = "uid-1", name: str = "web", namespace: str = "default",
                   node: str = "", **kw) -> SandboxConfig:
    return SandboxConfig(pod_uid=uid, name=name, namespace=namespace, hostname=name,
                         labels=labels_for(uid, name, namespace, node), **kw)


def container_config(name: str = "app", image: str = IMAGE, restart: int = 0,
                     **kw) -> ContainerConfig:
    return ContainerConfig(name=name, image=image,
                           labels={LABEL_CONTAINER_NAME: name,
                                   LABEL_RESTART_COUNT: str(restart)}, **kw)


async def running_container(rt: FakeRuntime, **kw) -> tuple[str, str]:
    sandbox = await rt.run_sandbox(sandbox_config())
    cid = await rt.create_container(sandbox, container_config(**kw))
    await rt.start_container(cid)
    return sandbox, cid


async def test_fake_runtime_version_names_the_runtime():
    assert await FakeRuntime(version="1.2.3").version() == "fake://1.2.3"


async def test_fake_runtime_sandbox_is_ready_with_pod_labels_and_ip():
    rt = FakeRuntime()
    sid = await rt.run_sandbox(sandbox_config())
    [sb] = await rt.list_sandboxes()
    assert sb.id == sid
    assert (sb.pod_uid, sb.name, sb.namespace) == ("uid-1", "web", "default")
    assert sb.state == SandboxState.READY
    assert sb.ip.startswith("10.88.")
    assert sb.labels[LABEL_TYPE] == "sandbox"
    assert sb.created_at is not None and sb.created_at.tzinfo is not None


async def test_fake_runtime_sandbox_ips_are_unique_and_valid():
    rt = FakeRuntime()
    for i in range(600):
        await rt.run_sandbox(sandbox_config(uid=f"u{i}", port_mappings=[PortMapping(80, 8080)]))
    ips = [s.ip for s in await rt.list_sandboxes()]
    assert len(set(ips)) == 600
    for ip in ips:
        octets = [int(o) for o in ip.split(".")]
        assert octets[:2] == [10, 88] and 0 <= octets[2] <= 255 and 1 <= octets[3] <= 254


async def test_fake_runtime_host_network_sandbox_has_no_ip_of_its_own():
    rt = FakeRuntime()
    await rt.run_sandbox(sandbox_config(host_network=True))
    [sb] = await rt.list_sandboxes()
    assert sb.ip == ""


async def test_fake_runtime_container_runs_after_start_with_pod_labels():
    rt = FakeRuntime()
    sandbox, cid = await running_container(rt, restart=2)
    info = await rt.container_status(cid)
    assert info.state == ContainerState.RUNNING
    assert info.name == "app" and info.pod_uid == "uid-1" and info.sandbox_id == sandbox
    assert info.labels[LABEL_TYPE] == "container" and info.labels[LABEL_POD_UID] == "uid-1"
    assert info.restart_count == 2
    assert info.image_id == image_id(IMAGE)
    assert info.started_at is not None and info.finished_at is None


async def test_fake_runtime_created_container_waits_for_start():
    rt = FakeRuntime()
    sandbox = await rt.run_sandbox(sandbox_config())
    cid = await rt.create_container(sandbox, container_config())
    assert (await rt.container_status(cid)).state == ContainerState.CREATED
    await rt.start_container(cid)
    with pytest.raises(RuntimeError_):
        await rt.start_container(cid)


async def test_fake_runtime_exit_code_function_decides_at_start():
    rt = FakeRuntime(exit_code=lambda config: {"init": 0, "crash": 3}.get(config.name))
    sandbox = await rt.run_sandbox(sandbox_config())
    ids = {}
    for name in ("init", "crash", "server"):
        ids[name] = await rt.create_container(sandbox, container_config(name))
        await rt.start_container(ids[name])
    init, crash, server = [await rt.container_status(ids[n]) for n in ("init", "crash", "server")]
    assert (init.state, init.exit_code, init.reason) == (ContainerState.EXITED, 0, "Completed")
    assert (crash.state, crash.exit_code, crash.reason) == (ContainerState.EXITED, 3, "Error")
    assert crash.finished_at is not None and crash.started_at <= crash.finished_at
    assert server.state == ContainerState.RUNNING


async def test_fake_runtime_finish_makes_a_running_container_exit_with_reason():
    rt = FakeRuntime()
    _, cid = await running_container(rt)
    rt.finish(cid, 137, reason="OOMKilled")
    info = await rt.container_status(cid)
    assert (info.state, info.exit_code, info.reason) == (ContainerState.EXITED, 137, "OOMKilled")
    with pytest.raises(RuntimeError_):
        rt.finish(cid, 1)


async def test_fake_runtime_stop_records_the_grace_and_exits():
    rt = FakeRuntime(stop_exit_code=143)
    _, cid = await running_container(rt)
    await rt.stop_container(cid, 30)
    info = await rt.container_status(cid)
    assert (info.state, info.exit_code, info.reason) == (ContainerState.EXITED, 143, "Error")
    assert rt.stops == [(cid, 30)]
    await rt.stop_container(cid, 30)  # stopping again changes nothing
    assert (await rt.container_status(cid)).finished_at == info.finished_at


async def test_fake_runtime_stop_sandbox_stops_its_containers_and_drops_the_ip():
    rt = FakeRuntime()
    sandbox, cid = await running_container(rt)
    await rt.stop_sandbox(sandbox)
    [sb] = await rt.list_sandboxes()
    assert sb.state == SandboxState.NOT_READY and sb.ip == ""
    assert (await rt.container_status(cid)).state == ContainerState.EXITED


async def test_fake_runtime_remove_sandbox_takes_its_containers_along():
    rt = FakeRuntime()
    sandbox, _ = await running_container(rt)
    other_sandbox, other = await running_container(rt)
    await rt.remove_sandbox(sandbox)
    assert [s.id for s in await rt.list_sandboxes()] == [other_sandbox]
    assert [c.id for c in await rt.list_containers()] == [other]


async def test_fake_runtime_missing_objects_raise_not_found_and_removals_tolerate_them():
    rt = FakeRuntime()
    with pytest.raises(NotFoundError):
        await rt.container_status("nope")
    with pytest.raises(NotFoundError):
        await rt.create_container("nope", container_config())
    await rt.remove_container("nope")
    await rt.stop_container("nope", 1)
    await rt.stop_sandbox("nope")
    await rt.remove_sandbox("nope")


async def test_fake_runtime_only_known_images_exist_and_pull():
    rt = FakeRuntime(images=["kyb/busybox"])
    assert await rt.image_status("kyb/busybox:latest") == image_id("kyb/busybox")
    assert await rt.pull_image("kyb/busybox") == image_id("kyb/busybox:latest")
    assert await rt.image_status("nosuch:1") is None
    with pytest.raises(ImagePullError, match='failed to pull image "nosuch:1"'):
        await rt.pull_image("nosuch:1")
    assert rt.pulls == ["kyb/busybox", "nosuch:1"]
    sandbox = await rt.run_sandbox(sandbox_config())
    with pytest.raises(ImagePullError):
        await rt.create_container(sandbox, container_config(image="nosuch:1"))
    rt.images.add(normalize_image("nosuch:1"))
    assert await rt.pull_image("nosuch:1") == image_id("nosuch:1")


async def test_fake_runtime_without_an_image_set_has_every_image():
    rt = FakeRuntime()
    assert await rt.image_status("anything/at:all") == image_id("anything/at:all")
    assert await rt.pull_image("registry:5000/x") == image_id("registry:5000/x:latest")


def test_fake_runtime_normalize_image_adds_latest_only_without_tag_or_digest():
    assert normalize_image("busybox") == "busybox:latest"
    assert normalize_image("busybox:1") == "busybox:1"
    assert normalize_image("registry:5000/busybox") == "registry:5000/busybox:latest"
    assert normalize_image("busybox@sha256:abc") == "busybox@sha256:abc"


async def test_fake_runtime_lists_by_labels():
    rt = FakeRuntime()
    s1 = await rt.run_sandbox(sandbox_config(uid="a"))
    s2 = await rt.run_sandbox(sandbox_config(uid="b"))
    c1 = await rt.create_container(s1, container_config("x"))
    c2 = await rt.create_container(s2, container_config("x"))
    assert [s.id for s in await rt.list_sandboxes({LABEL_POD_UID: "b"})] == [s2]
    assert [c.id for c in await rt.list_containers({LABEL_POD_UID: "a"})] == [c1]
    assert {c.id for c in await rt.list_containers({LABEL_CONTAINER_NAME: "x"})} == {c1, c2}
    assert await rt.list_containers({LABEL_POD_UID: "zzz"}) == []


async def test_fake_runtime_node_name_keeps_each_node_to_its_own_objects():
    shared = FakeRuntime()
    one, two = FakeRuntime(node_name="n1"), FakeRuntime(node_name="n2")
    await one.run_sandbox(sandbox_config(uid="a"))
    assert await two.list_sandboxes() == []
    [sb] = await one.list_sandboxes()
    assert sb.labels[LABEL_NODE] == "n1"
    # One runtime shared by hollow nodes: each kubelet filters by its label.
    await shared.run_sandbox(sandbox_config(uid="a", node="n1"))
    await shared.run_sandbox(sandbox_config(uid="b", node="n2"))
    [mine] = await shared.list_sandboxes({LABEL_NODE: "n2"})
    assert mine.pod_uid == "b"
    cid = await shared.create_container(mine.id, container_config())
    assert (await shared.container_status(cid)).labels[LABEL_NODE] == "n2"


async def test_fake_runtime_exec_uses_the_handler_and_needs_a_running_container():
    seen = []

    def handler(info, command, stdin):
        seen.append((info.name, command, stdin))
        return 3, b"out", b"err"

    rt = FakeRuntime(exec_handler=handler)
    _, cid = await running_container(rt)
    assert await rt.exec(cid, ["cat"], stdin=b"in") == (3, b"out", b"err")
    assert seen == [("app", ["cat"], b"in")]
    rt.finish(cid, 0)
    with pytest.raises(RuntimeError_):
        await rt.exec(cid, ["true"])


async def test_fake_runtime_exec_defaults_to_success():
    rt = FakeRuntime()
    _, cid = await running_container(rt)
    assert await rt.exec(cid, ["anything"]) == (0, b"", b"")


async def test_fake_runtime_logs_tail_timestamps_and_since():
    clock = FakeClock(wall_start=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    rt = FakeRuntime(clock=clock)
    _, cid = await running_container(rt)
    for i in range(5):
        clock.advance(1)
        rt.write_log(cid, f"line {i}\n".encode())
    assert [c async for c in rt.logs(cid)] == [f"line {i}\n".encode() for i in range(5)]
    assert [c async for c in rt.logs(cid, tail=2)] == [b"line 3\n", b"line 4\n"]
    assert [c async for c in rt.logs(cid, tail=0)] == []
    [stamped] = [c async for c in rt.logs(cid, tail=1, timestamps=True)]
    assert stamped == b"2024-01-01T00:00:05.000000000Z line 4\n"
    since = clock.wall().timestamp() - 1.5
    assert [c async for c in rt.logs(cid, since=since)] == [b"line 3\n", b"line 4\n"]


async def test_fake_runtime_logs_follow_streams_new_lines_until_the_container_exits():
    rt = FakeRuntime()
    _, cid = await running_container(rt)
    rt.write_log(cid, b"before\n")
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in rt.logs(cid, follow=True):
            got.append(chunk)

    task = asyncio.ensure_future(follow())
    while got != [b"before\n"]:
        await asyncio.sleep(0)
    rt.write_log(cid, b"after 1\n")
    rt.write_log(cid, b"after 2\n")
    rt.finish(cid, 0)
    await asyncio.wait_for(task, 5)
    assert got == [b"before\n", b"after 1\n", b"after 2\n"]


async def test_fake_runtime_logs_follow_can_be_cancelled():
    rt = FakeRuntime()
    _, cid = await running_container(rt)
    stream = rt.logs(cid, follow=True)
    task = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()


async def test_fake_runtime_times_strictly_increase_when_the_clock_stands_still():
    rt = FakeRuntime(clock=FakeClock())
    sandboxes = [await rt.run_sandbox(sandbox_config(uid=f"u{i}")) for i in range(3)]
    times = {s.id: s.created_at for s in await rt.list_sandboxes()}
    assert times[sandboxes[0]] < times[sandboxes[1]] < times[sandboxes[2]]


async def test_fake_runtime_returns_copies_not_its_own_state():
    rt = FakeRuntime()
    _, cid = await running_container(rt)
    info = await rt.container_status(cid)
    info.labels["mutated"] = "yes"
    info.state = ContainerState.EXITED
    again = await rt.container_status(cid)
    assert "mutated" not in again.labels and again.state == ContainerState.RUNNING
    [sb] = await rt.list_sandboxes()
    sb.labels.clear()
    assert (await rt.list_sandboxes())[0].labels


async def test_fake_runtime_keeps_the_config_a_container_was_created_with():
    rt = FakeRuntime()
    _, cid = await running_container(rt, command=["sh"], args=["-c", "x"], env={"A": "1"},
                                     cpu_limit_millis=500)
    config = rt.config_of(cid)
    assert (config.command, config.args, config.env, config.cpu_limit_millis) == \
        (["sh"], ["-c", "x"], {"A": "1"}, 500)
