"""The controller manager daemon: two replicas with leader election, only
the leader runs controllers; killing the leader hands over to the other
within the lease duration. Also the in-process manager starting and
stopping a set of controllers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from services.controller_manager.manager import ControllerManager
from services.machinery import NotFound
from tests.support import objects
from tests.support.processes import REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(120)

LEASE = ("kube-controller-manager", "kube-system")


class ManagerProcess:
    """One ``python -m services.controller_manager.main`` replica."""

    def __init__(self, server: str, workdir, name: str):
        self.server, self.name = server, name
        self.metrics_port = free_port()
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ManagerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.controller_manager.main", "--server", self.server,
             "--bind-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
             "--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
             "--leader-elect-retry-period", "0.5", "--controllers", "endpoints",
             "--concurrent-syncs", "2"],
            cwd=REPO, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        return self

    def _metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    async def metrics(self) -> str:
        return await asyncio.to_thread(self._metrics)

    async def leading(self) -> bool:
        text = await self.metrics()
        return bool(re.search(
            r'^leader_election_master_status\{name="kube-controller-manager"\} 1\.0$', text,
            re.M))

    async def runs_controllers(self) -> bool:
        return 'workqueue_adds_total{name="endpoints"}' in await self.metrics()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def make_ready_pod(client, namespace: str, name: str, ip: str) -> None:
    pods = client.resource("pods")
    await pods.create(objects.pod(name, namespace, labels={"app": "web"}))
    pod = await pods.get(name, namespace)
    pod.status.phase = "Running"
    pod.status.pod_ip = ip
    pod.status.conditions.add(type="Ready", status="True")
    await pods.update_status(pod)


async def endpoint_ips(client, namespace: str) -> list[str]:
    try:
        ep = await client.resource("endpoints").get("web", namespace)
    except NotFound:
        return []
    return sorted(a.ip for s in ep.subsets for a in s.addresses)


async def test_manager_only_the_leader_runs_controllers_and_failover(
        client, namespace, apiserver, tmp_path):
    replicas = [ManagerProcess(apiserver.address, tmp_path, name).start() for name in "ab"]
    try:
        async def one_leader():
            if not all([await r.metrics() for r in replicas]):
                return False  # both up and serving first
            states = [await r.leading() for r in replicas]
            return states.count(True) == 1 and states
        states = await wait_until(one_leader, timeout=30, message="exactly one leader")
        leader = replicas[states.index(True)]
        standby = replicas[1 - states.index(True)]
        await wait_until(leader.runs_controllers, timeout=15, message="leader runs controllers")
        assert not await standby.runs_controllers()  # serving, but no controllers

        lease = await client.resource("leases").get(*LEASE)
        first_holder = lease.spec.holder_identity
        assert first_holder

        await client.resource("services").create(objects.service("web", namespace))
        await make_ready_pod(client, namespace, "a", "10.244.9.1")

        async def has(ips):
            return await endpoint_ips(client, namespace) == ips
        await wait_until(lambda: has(["10.244.9.1"]), timeout=20, message="leader's endpoints")

        leader.stop(signal.SIGKILL)  # no release: the standby waits out the lease
        await wait_until(standby.leading, timeout=30, message="standby takes over")
        await wait_until(standby.runs_controllers, timeout=15,
                         message="new leader runs controllers")
        lease = await client.resource("leases").get(*LEASE)
        assert lease.spec.holder_identity not in ("", first_holder)
        assert lease.spec.lease_transitions >= 1

        await make_ready_pod(client, namespace, "b", "10.244.9.2")
        await wait_until(lambda: has(["10.244.9.1", "10.244.9.2"]), timeout=20,
                         message="new leader's endpoints")

        # A clean stop releases the Lease at once, and exits 0.
        assert standby.stop(signal.SIGTERM) == 0
        lease = await client.resource("leases").get(*LEASE)
        assert lease.spec.holder_identity == ""
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL)


async def test_manager_leader_that_loses_the_lease_exits_nonzero(client, apiserver, tmp_path):
    replicas = [ManagerProcess(apiserver.address, tmp_path, name).start() for name in "cd"]
    try:
        async def one_leader():
            if not all([await r.metrics() for r in replicas]):
                return False  # both up and serving first
            states = [await r.leading() for r in replicas]
            return states.count(True) == 1 and states
        states = await wait_until(one_leader, timeout=30, message="exactly one leader")
        leader = replicas[states.index(True)]
        standby = replicas[1 - states.index(True)]

        leader.proc.send_signal(signal.SIGSTOP)  # frozen: cannot renew
        try:
            await wait_until(standby.leading, timeout=30, message="standby takes over")
        finally:
            leader.proc.send_signal(signal.SIGCONT)
        # Thawed, it finds the Lease taken, stops its controllers and exits 1.
        await wait_until(lambda: leader.proc.poll() is not None, timeout=20,
                         message="old leader exits")
        assert leader.proc.returncode == 1
        assert "leaderelection lost" in leader.log.read_text()
        assert await standby.leading()
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL)


async def test_manager_in_process_runs_and_stops_controllers(client, namespace):
    # Every controller of this module together: they share informers (and
    # each adds its own indexes to the shared pod cache).
    names = ["endpoints", "nodeipam", "nodelifecycle", "garbagecollector", "namespace"]
    manager = ControllerManager(client, names, workers=1)
    assert manager.names == names
    task = asyncio.ensure_future(manager.run())
    try:
        await client.resource("services").create(objects.service("web", namespace))
        await make_ready_pod(client, namespace, "a", "10.244.8.1")
        await wait_until(lambda: _ips_are(client, namespace, ["10.244.8.1"]), timeout=60,
                         message="endpoints from the in-process manager")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.done()


async def _ips_are(client, namespace: str, ips: list[str]) -> bool:
    return await endpoint_ips(client, namespace) == ips
