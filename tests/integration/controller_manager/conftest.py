"""Fixtures for the controller-manager integration tests.

These tests get their own etcd and API server for the session (the
``etcd`` and ``apiserver`` fixtures are overridden here, so the shared
``client`` and ``namespace`` fixtures point at them): controllers watch
cluster-wide, and nodes or pods from other suites must not be reconciled,
evicted or given CIDRs by them.

``start_controllers(ControllerClass, ..., **options)`` runs controllers
in-process as asyncio tasks on one shared informer factory, waits for
their caches, and stops them when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from services.machinery import SharedInformerFactory
from tests.support.processes import ApiServerProcess, EtcdProcess

WATCH_CACHE_SIZE = 1000


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    proc = EtcdProcess(tmp_path_factory.mktemp("cm-etcd"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    proc = ApiServerProcess(tmp_path_factory.mktemp("cm-apiserver"), etcd.endpoint,
                            watch_cache_size=WATCH_CACHE_SIZE)
    proc.start()
    yield proc
    proc.stop()


class RunningControllers:
    """Controllers started by one call of ``start_controllers``."""

    def __init__(self, factory: SharedInformerFactory, controllers: list, tasks: list):
        self.factory = factory
        self.controllers = controllers
        self.tasks = tasks

    def __getitem__(self, index: int):
        return self.controllers[index]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks = []
        await self.factory.stop()


@pytest.fixture
async def start_controllers(client):
    started: list[RunningControllers] = []

    async def start(*classes, workers: int = 2, **options) -> RunningControllers:
        factory = SharedInformerFactory(client)
        controllers = [cls(client, factory, **options) for cls in classes]
        factory.start()
        tasks = [asyncio.ensure_future(c.run(workers)) for c in controllers]
        running = RunningControllers(factory, controllers, tasks)
        started.append(running)
        assert await factory.wait_for_cache_sync(timeout=30), "informer caches did not sync"
        for task in tasks:
            if task.done():
                task.result()  # a controller that died at start: show why
        return running

    yield start
    for running in started:
        await running.stop()
