"""Fixtures for kube-proxy against real iptables: a namespace network
(:class:`netlab.Lab`, one per module) and in-process proxiers programming
its node namespace from the session's real API server."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from services.kube_proxy.iptables import Iptables
from services.kube_proxy.proxier import Proxier
from services.kube_proxy.rules import ProxyConfig
from tests.integration.kube_proxy.netlab import Lab


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    for tool in ("ip", "iptables-restore", "iptables-save"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: run deploy/host/ensure.sh docker")
    net = Lab().setup()
    yield net
    net.close()


class Proxiers:
    """``await start_proxier(sync_period=..., min_sync_period=...)``: a
    running proxier for the lab's node, after its first sync;
    ``await start_proxier.stop(proxier)`` stops one early."""

    def __init__(self, client, lab):
        self.client, self.lab = client, lab
        self.running: dict[Proxier, asyncio.Task] = {}

    async def __call__(self, *, sync_period: float = 30.0, min_sync_period: float = 0.1,
                       cluster_cidr: str = "10.244.0.0/16") -> Proxier:
        proxier = Proxier(self.client, Iptables(self.lab.node, timeout=30.0),
                          ProxyConfig(cluster_cidr=cluster_cidr),
                          min_sync_period=min_sync_period, sync_period=sync_period)
        task = asyncio.create_task(proxier.run())
        self.running[proxier] = task
        synced = asyncio.ensure_future(proxier.synced.wait())
        done, _ = await asyncio.wait({synced, task}, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped it
        if synced not in done:
            synced.cancel()
            raise AssertionError(f"no successful sync within 30s: {proxier.last_sync}")
        return proxier

    async def stop(self, proxier: Proxier) -> None:
        task = self.running.pop(proxier, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await proxier.factory.stop()


@pytest.fixture
async def start_proxier(client, lab):
    proxiers = Proxiers(client, lab)
    yield proxiers
    for proxier in list(proxiers.running):
        await proxiers.stop(proxier)
