"""Fixtures for the scheduler's integration tests.

The scheduler watches every node and pod in the cluster, so these tests get
their own etcd and API server for the session (``etcd`` and ``apiserver``
are overridden here; the shared ``client`` and ``namespace`` fixtures then
point at them), and every node a test creates is deleted when it ends, so
each test schedules onto its own nodes only.

* ``make_node(prefix, **builder_kwargs)`` creates a Ready node with a
  unique name and returns the name.
* ``start_scheduler(...)`` runs a :class:`Scheduler` in-process as an
  asyncio task (its own client and informers) and stops it at the end.
* ``scheduler_process(...)`` runs ``python -m services.scheduler.main`` as
  a subprocess (for leader election and failover), killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import urllib.request
import uuid

import pytest

from services.machinery import Client, NotFound, SharedInformerFactory
from services.scheduler import config as cfg
from services.scheduler.scheduler import Scheduler
from tests.support.processes import REPO, ApiServerProcess, EtcdProcess, free_port
from tests.unit.scheduler import builders

WATCH_CACHE_SIZE = 2000


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    proc = EtcdProcess(tmp_path_factory.mktemp("sched-etcd"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    proc = ApiServerProcess(tmp_path_factory.mktemp("sched-apiserver"), etcd.endpoint,
                            watch_cache_size=WATCH_CACHE_SIZE)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def make_node(client):
    created: list[str] = []

    async def make(prefix: str = "node", **kwargs) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        await client.resource("nodes").create(builders.node(name, **kwargs))
        created.append(name)
        return name

    yield make
    for name in created:
        with contextlib.suppress(NotFound):
            await client.resource("nodes").delete(name)


class RunningScheduler:
    def __init__(self, scheduler: Scheduler, client: Client, factory: SharedInformerFactory,
                 task: asyncio.Task):
        self.scheduler = scheduler
        self.client = client
        self.factory = factory
        self.task = task

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.factory.stop()
        await self.client.close()


@pytest.fixture
async def start_scheduler(apiserver):
    started: list[RunningScheduler] = []

    async def start(scheduler_name: str, *, config: cfg.SchedulerConfig | None = None,
                    percentage: int = 0) -> RunningScheduler:
        client = Client([apiserver.address], timeout=10.0, retry_for=30.0)
        factory = SharedInformerFactory(client)
        scheduler = Scheduler(client, factory,
                              cfg.build_profiles(config or cfg.default_config(scheduler_name)),
                              percentage_of_nodes_to_score=percentage,
                              identity=f"test-{uuid.uuid4().hex[:6]}")
        factory.start()
        assert await scheduler.wait_for_sync(30), "informers did not sync"
        running = RunningScheduler(scheduler, client, factory,
                                   asyncio.ensure_future(scheduler.run()))
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


class SchedulerProcess:
    """``python -m services.scheduler.main`` against the test API server."""

    def __init__(self, apiserver, workdir, args: list[str]):
        self.metrics_port = free_port()
        self.log = workdir / f"scheduler-{self.metrics_port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.scheduler.main", "--server", apiserver.address,
             "--bind-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
             "--log-level", "info", *args],
            cwd=REPO, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def metric(self, name: str) -> float | None:
        """The value of the first sample whose line starts with ``name``."""
        for line in self.metrics().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def is_leader(self) -> bool:
        return self.metric("leader_election_master_status") == 1.0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


@pytest.fixture
def scheduler_process(apiserver, tmp_path):
    procs: list[SchedulerProcess] = []

    def start(*args: str) -> SchedulerProcess:
        proc = SchedulerProcess(apiserver, tmp_path, list(args))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill(signal.SIGTERM)
