"""Fixtures for kubelet tests: kubelets run in-process as asyncio tasks
against the session's real API server, each under a node name unique to
the test, with the in-memory runtime or the real Docker Engine.

Whatever a test leaves behind is cleaned up: the kubelet is cancelled, and
for Docker every container carrying the test node's label is removed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from services.kubelet.kubelet import Kubelet, KubeletConfig
from services.kubelet.runtime.base import LABEL_NODE
from services.kubelet.server import KubeletServer

# Short enough that tests see crash loops and pull backoffs within seconds.
FAST = dict(sync_frequency=2.0, relist_period=0.5, crash_backoff_initial=1.0,
            crash_backoff_max=4.0, image_backoff_initial=1.0, image_backoff_max=4.0,
            lease_renew_interval=1.0, status_check_interval=1.0, measure_pressure=False)


@dataclasses.dataclass
class RunningKubelet:
    kubelet: Kubelet
    server: KubeletServer
    task: asyncio.Task[None]

    @property
    def runtime(self) -> Any:
        return self.kubelet.runtime.wrapped

    async def stop(self) -> None:
        """Stop the kubelet (as a crash or restart would): containers stay."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.server.stop(0)


@pytest.fixture
def kubelet_timings() -> dict[str, Any]:
    """The shortened intervals and backoffs kubelets get in these tests."""
    return dict(FAST)


@pytest.fixture
def node_name() -> str:
    return f"node-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def start_kubelet(client, tmp_path):
    """``await start_kubelet(runtime, node_name, **config)`` -> RunningKubelet,
    ready (node registered, informer synced)."""
    started: list[RunningKubelet] = []

    async def start(runtime: Any, node: str, **overrides: Any) -> RunningKubelet:
        options = {**FAST, **overrides}
        config = KubeletConfig(node_name=node, node_ip="127.0.0.1", port=0,
                               root_dir=str(tmp_path / "kubelet"), **options)
        holder: list[Kubelet] = []
        server = KubeletServer(lambda: holder)
        config.port = await server.start("127.0.0.1", 0)
        kubelet = Kubelet(client, runtime, config)
        holder.append(kubelet)
        task = asyncio.create_task(kubelet.run(), name=f"kubelet-{node}")
        running = RunningKubelet(kubelet, server, task)
        started.append(running)
        ready = asyncio.ensure_future(kubelet.ready.wait())
        await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        if not ready.done():
            ready.cancel()
            raise TimeoutError(f"kubelet {node} did not become ready")
        return running

    async def stop_all() -> None:
        for running in started:
            await running.stop()

    start.stop_all = stop_all
    yield start
    await stop_all()


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def docker_images():
    if not _docker_ok():
        pytest.skip("no Docker Engine (ENVIRONMENT.md says how to start one)")
    from tests.support.images import BUSYBOX, PAUSE, ensure_images
    ensure_images()
    return BUSYBOX, PAUSE


@pytest.fixture
async def docker_runtime(docker_images, node_name, start_kubelet):
    """A DockerRuntime for this test's node; the kubelets are stopped before
    it closes, and every container it made is removed afterwards."""
    from services.kubelet.runtime.docker import DockerRuntime
    runtime = DockerRuntime(node_name=node_name, pod_infra_image=docker_images[1])
    yield runtime
    await start_kubelet.stop_all()
    await runtime.close()
    remove_node_containers(node_name)


def remove_node_containers(node: str) -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_NODE}={node}"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)
