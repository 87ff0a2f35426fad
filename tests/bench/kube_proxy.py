"""kube-proxy rule programming at scale, in scratch network namespaces.

For each size (1000 and 5000 services with 3 endpoints each; 200 and 1000
with --quick) a proxier starts against a real API server and an empty
namespace's iptables and programs everything (the start-up full sync);
then a full resync over the same rules is forced. Beside each, the same
restore text is fed to a bare ``iptables-restore --noflush`` in another
scratch namespace (empty, then over the same rules): the ratio is the
proxy's own overhead (informer bookkeeping, rule generation, rendering).

Then, with the largest size programmed, single endpoint changes: the time
from the API write to the new endpoint's chain being in the kernel (polled
with ``iptables -S`` on the service's chain), beside the proxier's own
partial sync time and a bare restore of the same partial text.

The host's iptables are never touched. Figures are printed, not asserted.
Targets from the networking issue: full sync of 5000 services under 2 s,
one endpoint change applied in under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import pathlib
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kube_proxy.iptables import Iptables
from services.kube_proxy.model import Endpoint, ServicePort
from services.kube_proxy.proxier import Proxier, SyncStats
from services.kube_proxy.rules import ProxyConfig, sep_chain, svc_chain
from services.machinery import Client
from tests.bench.common import fmt_ms, fmt_ratio, format_table, ratio
from tests.support.processes import ApiServerProcess, EtcdProcess

ENDPOINTS_PER_SERVICE = 3


def _endpoint_ip(k: int) -> str:
    return f"10.244.{k // 250}.{k % 250 + 1}"


class Netns:
    """A scratch network namespace, deleted on exit."""

    def __init__(self, label: str):
        self.name = f"kpb{label}-{secrets.token_hex(3)}"

    def __enter__(self) -> Netns:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


async def raw_restore(netns: str, text: str) -> float:
    """Seconds a bare ``iptables-restore --noflush`` takes for ``text``."""
    return await Iptables(netns, timeout=600).restore(text)


async def create_services(client: Client, ns: str, start: int, stop: int,
                          concurrency: int = 64) -> None:
    """Services start..stop-1 with 3 ready endpoints each."""
    services, endpoints = client.resource("services"), client.resource("endpoints")
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            svc = core.Service()
            svc.metadata.name, svc.metadata.namespace = f"svc-{i}", ns
            svc.spec.type = "ClusterIP"
            svc.spec.selector["app"] = f"svc-{i}"
            port = svc.spec.ports.add(name="http", port=80, protocol="TCP")
            port.target_port.int_value = 8080
            await services.create(svc)
            ep = core.Endpoints()
            ep.metadata.name, ep.metadata.namespace = f"svc-{i}", ns
            subset = ep.subsets.add()
            for j in range(ENDPOINTS_PER_SERVICE):
                subset.addresses.add(ip=_endpoint_ip(i * ENDPOINTS_PER_SERVICE + j))
            subset.ports.add(name="http", port=8080, protocol="TCP")
            await endpoints.create(ep)

    await asyncio.gather(*(one(i) for i in range(start, stop)))


async def next_sync(proxier: Proxier, timeout: float = 600) -> SyncStats:
    proxier.synced.clear()
    await asyncio.wait_for(proxier.synced.wait(), timeout)
    assert proxier.last_sync is not None
    return proxier.last_sync


async def settle(proxier: Proxier, quiet: float = 2.0, timeout: float = 600) -> None:
    """Wait until the proxier has applied everything it was told and then
    sat idle for ``quiet`` seconds (informer events drained)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = proxier.syncs
        await asyncio.sleep(quiet)
        if proxier.syncs == before and not proxier.schedule.dirty:
            return
    raise TimeoutError("the proxier did not settle")


@dataclasses.dataclass
class FullRow:
    services: int
    rules: int
    kind: str
    proxy: SyncStats
    raw: float


def full_table(rows: list[FullRow]) -> str:
    body = [[str(r.services), f"{r.rules:,}", r.kind, fmt_ms(r.proxy.seconds, 0),
             fmt_ms(r.proxy.build_seconds, 0), fmt_ms(r.proxy.read_seconds, 0),
             fmt_ms(r.proxy.restore_seconds, 0),
             fmt_ms(r.raw, 0), fmt_ratio(ratio(r.proxy.seconds, r.raw))] for r in rows]
    return format_table(
        ["services", "nat+filter rules", "sync", "proxy ms", "build ms", "read ms",
         "restore ms", "raw restore ms", "proxy/raw"], body,
        title="Full syncs (proxy = the whole sync; build = rules + restore text; read = "
              "listing the built-in chains' jumps;\nrestore = its iptables-restore; raw = a "
              "bare iptables-restore of the same text in another scratch namespace)")


async def measure_size(client: Client, ns: str, size: int, created: int,
                       rows: list[FullRow]) -> int:
    """Bring the cluster to ``size`` services, then measure a fresh proxier's
    start-up sync and a forced full resync, with bare restores beside."""
    if created < size:
        await create_services(client, ns, created, size)
    with Netns("n") as node, Netns("r") as ref:
        proxier = Proxier(client, Iptables(node.name, timeout=600), ProxyConfig(),
                          min_sync_period=1.0, sync_period=3600, keep_text=True)
        task = asyncio.create_task(proxier.run())
        try:
            first = await next_sync(proxier)
            await settle(proxier)
            first_raw = await raw_restore(ref.name, first.text)
            rules = sum(first.rules.values())
            rows.append(FullRow(size, rules, "start-up (empty)", first, first_raw))
            proxier.request_full_sync()
            resync = await next_sync(proxier)
            resync_raw = await raw_restore(ref.name, resync.text)
            rows.append(FullRow(size, rules, "resync (same rules)", resync, resync_raw))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await proxier.factory.stop()
    return size


async def measure_changes(client: Client, ns: str, size: int, changes: int) -> str:
    """Single endpoint changes with ``size`` services programmed."""
    with Netns("n") as node, Netns("r") as ref:
        ipt = Iptables(node.name, timeout=600)
        proxier = Proxier(client, ipt, ProxyConfig(), min_sync_period=1.0, sync_period=3600,
                          keep_text=True)
        task = asyncio.create_task(proxier.run())
        try:
            first = await next_sync(proxier)
            await settle(proxier)
            await raw_restore(ref.name, first.text)
            api = client.resource("endpoints")
            polled, internal, partial, raw = [], [], [], []
            lines = []
            for n in range(changes):
                i = (n * 7919) % size
                ep = await api.get(f"svc-{i}", ns)
                new_ip = f"10.245.{n // 250}.{n % 250 + 1}"
                ep.subsets[0].addresses[0].ip = new_ip
                sp = ServicePort(ns, f"svc-{i}", "http", "TCP", "0.0.0.0", 80)
                chain, want = svc_chain(sp), sep_chain(sp, Endpoint(new_ip, 8080))
                await asyncio.sleep(1.2)  # past min-sync-period: applied at once
                syncs = proxier.syncs
                written = time.monotonic()
                await api.update(ep)
                while want not in " ".join(await ipt.list_rules("nat", chain)):
                    if time.monotonic() - written > 30:
                        raise TimeoutError(f"endpoint change {n} never reached iptables")
                polled.append(time.monotonic() - written)
                while proxier.syncs == syncs:
                    await asyncio.sleep(0.001)
                stats = proxier.last_sync
                internal.append(stats.seconds)
                partial.append(stats.restore_seconds)
                lines.append(stats.lines)
                raw.append(await raw_restore(ref.name, stats.text))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await proxier.factory.stop()

    def row(name: str, values: list[float]) -> list[str]:
        return [name, fmt_ms(statistics.median(values)), fmt_ms(max(values))]
    table = format_table(["one endpoint change", "p50 ms", "max ms"], [
        row("API write -> rule in iptables (polled)", polled),
        row("proxier partial sync (whole)", internal),
        row("  its iptables-restore", partial),
        row("bare iptables-restore, same text", raw),
    ], title=f"Endpoint changes with {size} services ({changes} changes, each a "
             f"{statistics.median(lines):.0f}-line restore)")
    return table + (f"\nratio partial sync / bare restore (p50): "
                    f"{fmt_ratio(ratio(statistics.median(internal), statistics.median(raw)))}")


async def run(quick: bool) -> None:
    """Start etcd and an API server, measure, print, clean up."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-restore") is None:
        raise RuntimeError("the kube-proxy benchmark needs root, iproute2 and iptables")
    sizes = (200, 1000) if quick else (1000, 5000)
    changes = 5 if quick else 10
    mode = await Iptables().mode()
    print(f"iptables backend: {mode}; cores: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kyb-bench-proxy-") as tmp:
        workdir = pathlib.Path(tmp)
        (workdir / "etcd").mkdir()
        (workdir / "api").mkdir()
        etcd = EtcdProcess(workdir / "etcd")
        etcd.start()
        apiserver = ApiServerProcess(workdir / "api", etcd.endpoint, watch_cache_size=20000)
        try:
            apiserver.start()
            async with Client([apiserver.address], timeout=30.0) as client:
                ns = f"bench-{uuid.uuid4().hex[:6]}"
                namespace = core.Namespace()
                namespace.metadata.name = ns
                await client.resource("namespaces").create(namespace)
                rows: list[FullRow] = []
                created = 0
                for size in sizes:
                    started = time.monotonic()
                    created = await measure_size(client, ns, size, created, rows)
                    print(f"  {size} services measured ({time.monotonic() - started:.0f}s)",
                          flush=True)
                print(full_table(rows), flush=True)
                print(flush=True)
                print(await measure_changes(client, ns, sizes[-1], changes), flush=True)
        finally:
            apiserver.stop()
            etcd.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.kube_proxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 and 1000 services")
    opts = p.parse_args(argv)
    try:
        asyncio.run(run(opts.quick))
    except (RuntimeError, TimeoutError, OSError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
