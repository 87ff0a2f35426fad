"""Scheduler benchmark with hollow nodes, after kube-scheduler's
scheduler_perf SchedulingBasic.

For each scenario a fresh etcd, API server and ``kyb-scheduler`` (each its
own process, leader election off) are started; N Node objects (8 cpu,
32Gi, Ready, no kubelet) are created and the scheduler's informers synced;
then M pending pods with requests are created from this process, 64 in
flight, while an informer here notes when each pod is first seen bound.

Measured from the first pod created to the last pod bound: pods per second,
and p50/p99 of each pod's time from creation (the create call sent) to
binding (the bound pod seen here). The create rate alone is printed as a
reference measured in the same run: the scheduler cannot bind faster than
pods arrive. Afterwards every node's pods are summed: no node may hold
more than its allocatable cpu, memory or pod count.

References (from the issue): kube-scheduler's own scheduler_perf threshold
for SchedulingBasic at 5000 nodes is 270 pods/s; Kubernetes' load tests
require 100 pods/s; the target here is at least 300 pods/s at 1000 nodes
on a 2-core machine.

Also shown, from the scheduler's own metrics: the mean Binding call latency
and the mean time from a pod's decision to its binding (queueing for a
binding slot included), which say whether the API server is the limit.

Run ``python -m tests.bench.scheduler [--quick] [--nodes N --pods M]``; the
bench runner calls :func:`run`. ``KYB_BENCH_PROFILE=FILE`` runs the
scheduler under cProfile, writing FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.quantity import cpu_millis, memory_bytes
from services.machinery import Client, Informer
from tests.bench.common import (
    CpuMeter, closed_loop, fmt_ms, fmt_num, fmt_rate, format_table, percentile, ratio,
)
from tests.support.processes import REPO, ApiServerProcess, EtcdProcess, free_port

NAMESPACE = "bench-scheduler"
NODE_CPU, NODE_MEMORY, NODE_PODS = "8", "32Gi", "110"
POD_CPU, POD_MEMORY = "150m", "256Mi"  # 100 nodes x 53 pods of 150m: tight but feasible
CREATE_CONCURRENCY = 64
KUBE_THRESHOLD_5000 = 270.0
LOAD_TEST_MINIMUM = 100.0
TARGET_AT_1000 = 300.0

FULL = [(100, 5000), (1000, 5000), (5000, 5000)]
QUICK = [(100, 1000), (1000, 1000)]


@dataclasses.dataclass
class Outcome:
    nodes: int
    pods: int
    bound: int
    elapsed: float          # first create sent -> last binding seen
    create_elapsed: float   # first create sent -> last create answered
    latencies: list[float]  # per pod, creation -> binding
    violations: list[str]
    cpu: dict[str, float]
    bind_rpc: float = math.nan  # mean Binding call latency, from the scheduler's metrics
    attempt: float = math.nan   # mean decision-to-bound time of a pod, likewise

    @property
    def rate(self) -> float:
        return ratio(self.bound, self.elapsed)

    @property
    def create_rate(self) -> float:
        return ratio(self.pods, self.create_elapsed)


def hollow_node(name: str) -> core.Node:
    node = core.Node()
    node.metadata.name = name
    node.metadata.labels["kubernetes.io/hostname"] = name
    for field in (node.status.capacity, node.status.allocatable):
        field.update({"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS})
    node.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    return node


def pending_pod(name: str) -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, NAMESPACE
    ctr = pod.spec.containers.add(name="pause", image="registry.k8s.io/pause:3.9")
    ctr.resources.requests.update({"cpu": POD_CPU, "memory": POD_MEMORY})
    return pod


def check_allocations(nodes: list, pods: list) -> list[str]:
    """Every node whose bound pods request more than it has."""
    used: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for pod in pods:
        if not pod.spec.node_name:
            continue
        totals = used[pod.spec.node_name]
        for ctr in pod.spec.containers:
            totals[0] += cpu_millis(ctr.resources.requests.get("cpu", "0"))
            totals[1] += memory_bytes(ctr.resources.requests.get("memory", "0"))
        totals[2] += 1
    problems = []
    for node in nodes:
        cpu, memory, count = used.get(node.metadata.name, (0, 0, 0))
        alloc = node.status.allocatable
        if (cpu > cpu_millis(alloc["cpu"]) or memory > memory_bytes(alloc["memory"])
                or count > int(alloc["pods"])):
            problems.append(f"{node.metadata.name}: {cpu}m cpu, {memory} bytes, {count} pods")
    unknown = set(used) - {n.metadata.name for n in nodes}
    problems += [f"pods bound to unknown node {n}" for n in sorted(unknown)]
    return problems


def start_scheduler(apiserver: ApiServerProcess, workdir: pathlib.Path
                    ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", os.environ["KYB_BENCH_PROFILE"]]
                           if os.environ.get("KYB_BENCH_PROFILE") else []),
         "-m", "services.scheduler.main", "--server", apiserver.address,
         "--bind-address", "127.0.0.1", "--metrics-port", str(port), "--leader-elect=false",
         "--log-level", "warning"],
        cwd=REPO, stdout=open(workdir / "scheduler.log", "ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    return proc, port


ATTEMPT_SUM = ('scheduler_scheduling_attempt_duration_seconds_sum'
               '{profile="default-scheduler",result="scheduled"}')
ATTEMPT_COUNT = ATTEMPT_SUM.replace("_sum{", "_count{")


def scrape(port: int) -> dict[str, float]:
    """The scheduler's metrics, sample name (with labels) -> value."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, number = line.rpartition(" ")
            samples[name] = float(number)
    return samples


async def wait_ready(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> None:
    """Until the scheduler's /readyz says its informers have synced."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kyb-scheduler exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("kyb-scheduler did not become ready")


async def scenario(n_nodes: int, n_pods: int, workdir: pathlib.Path) -> Outcome:
    etcd = EtcdProcess(workdir)
    apiserver = None
    scheduler = None
    try:
        etcd.start()
        apiserver = ApiServerProcess(workdir, etcd.endpoint, watch_cache_size=20000)
        apiserver.start()
        async with Client([apiserver.address], timeout=30.0) as client:
            ns = core.Namespace()
            ns.metadata.name = NAMESPACE
            await client.resource("namespaces").create(ns)
            nodes = client.resource("nodes")
            await closed_loop(lambda i: nodes.create(hollow_node(f"hollow-{i:05d}")), n_nodes,
                              CREATE_CONCURRENCY)
            scheduler, port = start_scheduler(apiserver, workdir)
            await wait_ready(scheduler, port)

            created: dict[str, float] = {}
            bound: dict[str, float] = {}
            all_bound = asyncio.Event()

            def seen(pod) -> None:
                if pod.spec.node_name and pod.metadata.name not in bound:
                    bound[pod.metadata.name] = time.time()
                    if len(bound) >= n_pods:
                        all_bound.set()

            watcher = Informer(client, "pods", namespace=NAMESPACE)
            watcher.add_event_handler(on_add=seen, on_update=lambda old, new: seen(new))
            watch_task = asyncio.ensure_future(watcher.run())
            await watcher.wait_for_sync(30)
            pods = client.resource("pods")

            async def create(i: int) -> None:
                name = f"pod-{i:05d}"
                created[name] = time.time()
                await pods.create(pending_pod(name))

            meter = CpuMeter({"bench": 0, "apiserver": apiserver.proc.pid,
                              "etcd": etcd.proc.pid, "scheduler": scheduler.pid})
            meter.start()
            began = time.time()
            _, create_elapsed = await closed_loop(create, n_pods, CREATE_CONCURRENCY)
            try:
                await asyncio.wait_for(all_bound.wait(), timeout=max(120.0, n_pods / 20))
            except asyncio.TimeoutError:
                pass
            cpu = meter.stop()
            scraped = scrape(port)
            last = max(bound.values()) if bound else math.nan
            watcher.stop()
            await asyncio.gather(watch_task, return_exceptions=True)
            latencies = [bound[n] - created[n] for n in bound if n in created]
            final_nodes = (await nodes.list_all()).items
            final_pods = (await pods.list_all(NAMESPACE)).items
            return Outcome(n_nodes, n_pods, len(bound), last - began, create_elapsed, latencies,
                           check_allocations(final_nodes, final_pods), cpu,
                           ratio(scraped.get("scheduler_binding_duration_seconds_sum", math.nan),
                                 scraped.get("scheduler_binding_duration_seconds_count", 0)),
                           ratio(scraped.get(ATTEMPT_SUM, math.nan),
                                 scraped.get(ATTEMPT_COUNT, 0)))
    finally:
        if scheduler is not None and scheduler.poll() is None:
            scheduler.terminate()
            try:
                scheduler.wait(10)
            except subprocess.TimeoutExpired:
                scheduler.kill()
                scheduler.wait()
        if apiserver is not None:
            apiserver.stop()
        etcd.stop()


def _verdict(outcome: Outcome) -> str:
    if outcome.bound < outcome.pods:
        return f"INCOMPLETE ({outcome.pods - outcome.bound} unbound)"
    if outcome.violations:
        return f"WRONG ({len(outcome.violations)} nodes over allocatable)"
    if outcome.nodes == 1000:
        return "met" if outcome.rate >= TARGET_AT_1000 else "MISSED"
    return "-"


def report(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        p50 = percentile(o.latencies, 50) if o.latencies else math.nan
        p99 = percentile(o.latencies, 99) if o.latencies else math.nan
        rows.append([f"{o.nodes} nodes", o.pods, o.bound, fmt_rate(o.create_rate),
                     fmt_rate(o.rate), fmt_ms(p50, 0), fmt_ms(p99, 0),
                     fmt_num(ratio(o.cpu.get("scheduler", math.nan) * 1000, o.bound), 2),
                     fmt_num(ratio(o.cpu.get("apiserver", math.nan) * 1000, o.bound), 2),
                     fmt_ms(o.bind_rpc, 0), fmt_ms(o.attempt, 0),
                     "yes" if not o.violations else "NO", _verdict(o)])
    table = format_table(
        ["cluster", "pods", "bound", "created/s (ref)", "bound/s", "p50 ms", "p99 ms",
         "sched CPU ms/pod", "apiserver CPU ms/pod", "Bind call ms", "decided->bound ms",
         "allocations ok", "verdict"], rows,
        title=f"Hollow-node scheduling: nodes of {NODE_CPU} cpu / {NODE_MEMORY}, pods "
              f"requesting {POD_CPU} / {POD_MEMORY}; creation -> binding per pod")
    refs = format_table(
        ["reference", "pods/s"],
        [["kube-scheduler scheduler_perf SchedulingBasic threshold, 5000 nodes",
          fmt_rate(KUBE_THRESHOLD_5000)],
         ["Kubernetes load tests (minimum)", fmt_rate(LOAD_TEST_MINIMUM)],
         ["target here, 1000 nodes, 2 cores", fmt_rate(TARGET_AT_1000)]])
    details = [v for o in outcomes for v in o.violations[:5]]
    out = f"{table}\n\n{refs}"
    if details:
        out += "\n\nover-allocated nodes:\n  " + "\n  ".join(details)
    return out


async def run(quick: bool) -> None:
    """Run every scenario (fewer, smaller ones when ``quick``) and print the figures."""
    outcomes = []
    for n_nodes, n_pods in (QUICK if quick else FULL):
        with tempfile.TemporaryDirectory(prefix="kyb-bench-sched-") as tmp:
            print(f"scheduling {n_pods} pods onto {n_nodes} hollow nodes ...", flush=True)
            outcome = await scenario(n_nodes, n_pods, pathlib.Path(tmp))
            cpu = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in outcome.cpu.items())
            print(f"  {outcome.bound} bound at {fmt_rate(outcome.rate)} pods/s; CPU: {cpu}",
                  flush=True)
            outcomes.append(outcome)
    print(report(outcomes), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.scheduler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller scenarios")
    p.add_argument("--nodes", type=int, help="one scenario with this many nodes")
    p.add_argument("--pods", type=int, default=5000, help="pods for --nodes")
    opts = p.parse_args(argv)
    if opts.nodes:
        global FULL, QUICK
        FULL = QUICK = [(opts.nodes, opts.pods)]
    asyncio.run(run(opts.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
