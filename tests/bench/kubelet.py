"""Pod startup latency with real containers: one kubelet (its own process,
Docker Engine runtime), pods bound to its node, image present.

Per pod: from just before the create call to the watch event that shows it
Running with every container running (Kubernetes' pod startup SLI, which
excludes image pulls). Beside it, in the same run, the same number of plain
``docker run -d`` of the same image and command, all at once, and one
alone: the floor the kubelet stands on. Note that a pod is two containers
(the sandbox holding its network, then the app container), so a ratio near
2x the concurrent ``docker run`` is the runtime's cost, not the kubelet's.

Also measured: the same number of pods created at a steady PACED_RATE per
second instead of all at once — the shape of Kubernetes' own density test,
which creates pods at a fixed rate — where no queue builds in Docker.

Kubernetes' SLO is p99 <= 5 s; the target here is p99 <= 2 s.

``python -m tests.bench.kubelet [--quick]`` runs it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client
from services.machinery.errors import NotFound
from tests.bench.common import fmt_ms, fmt_ratio, format_table, percentile, ratio
from tests.support import objects
from tests.support.images import BUSYBOX, ensure_images
from tests.support.processes import (
    REPO, ApiServerProcess, EtcdProcess, free_port, wait_for_port, wait_until,
)

TARGET_P99 = 2.0
PACED_RATE = 2.0   # pods per second: below what Docker starts here, so no queue builds
SLO_P99 = 5.0
COMMAND = ["sleep", "3600"]
BASELINE_LABEL = "io.kybernetes.bench"


def _pod(name: str, namespace: str, node: str) -> core.Pod:
    pod = objects.pod(name, namespace, image=BUSYBOX, node=node)
    del pod.spec.containers[0].command[:]
    pod.spec.containers[0].command.extend(COMMAND)
    pod.spec.containers[0].image_pull_policy = "IfNotPresent"
    pod.spec.termination_grace_period_seconds = 1
    return pod


def _running(pod: core.Pod) -> bool:
    statuses = pod.status.container_statuses
    return pod.status.phase == "Running" and len(statuses) == len(pod.spec.containers) and \
        all(s.state.HasField("running") for s in statuses)


class KubeletProcess:
    def __init__(self, workdir: pathlib.Path, server: str, node: str):
        self.workdir, self.server, self.node = workdir, server, node
        self.port, self.metrics_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.workdir / "kubelet.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.kubelet.main", "--server", self.server,
             "--node-name", self.node, "--node-ip", "127.0.0.1", "--address", "127.0.0.1",
             "--port", str(self.port), "--metrics-port", str(self.metrics_port),
             "--root-dir", str(self.workdir / "root"), "--log-level", "warning"],
            cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 60, self.proc, log)

    def operations(self) -> dict[str, tuple[float, float]]:
        """Runtime operations so far: type -> (count, seconds spent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, list[float]] = {}
        for line in text.splitlines():
            for suffix, index in (("_count", 0), ("_sum", 1)):
                head = f"kubelet_runtime_operations_duration_seconds{suffix}{{"
                if line.startswith(head):
                    op = line.split('operation_type="', 1)[1].split('"', 1)[0]
                    out.setdefault(op, [0.0, 0.0])[index] = float(line.rsplit(" ", 1)[1])
        return {op: (v[0], v[1]) for op, v in out.items()}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _remove_containers(label: str) -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=300)


async def _docker_run(tag: str) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "docker", "run", "-d", "--label", f"{BASELINE_LABEL}={tag}", BUSYBOX, *COMMAND,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"docker run failed: {err.decode().strip()}")
    return time.perf_counter() - started


async def measure_docker(count: int) -> tuple[list[float], float]:
    """``count`` concurrent ``docker run -d``, then one alone."""
    tag = uuid.uuid4().hex[:8]
    try:
        concurrent = await asyncio.gather(*(_docker_run(tag) for _ in range(count)))
        await asyncio.to_thread(_remove_containers, f"{BASELINE_LABEL}={tag}")
        alone = await _docker_run(tag)
    finally:
        await asyncio.to_thread(_remove_containers, f"{BASELINE_LABEL}={tag}")
    return list(concurrent), alone


async def measure_pods(client: Client, namespace: str, node: str, count: int,
                       prefix: str, rate: float = 0.0) -> list[float]:
    """Create ``count`` pods at once (or ``rate`` per second); seconds from
    create to Running, as seen by a watch."""
    pods = client.resource("pods")
    listed = await pods.list(namespace)
    created: dict[str, float] = {}
    latencies: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for event in pods.watch(namespace, resource_version=listed.metadata.resource_version):
            pod = event.object
            name = pod.metadata.name
            if name.startswith(prefix) and name not in latencies and _running(pod):
                latencies[name] = time.perf_counter() - created[name]
                if len(latencies) == count:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())

    async def create(i: int) -> None:
        name = f"{prefix}{i:03d}"
        created[name] = time.perf_counter()
        await pods.create(_pod(name, namespace, node))

    async def paced(i: int) -> None:
        await asyncio.sleep(i / rate)
        await create(i)

    try:
        await asyncio.gather(*((paced if rate else create)(i) for i in range(count)))
        await asyncio.wait_for(done.wait(), 120)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return list(latencies.values())


async def _delete_all(client: Client, namespace: str) -> None:
    pods = client.resource("pods")
    for pod in (await pods.list(namespace)).items:
        try:
            await pods.delete(pod.metadata.name, namespace)
        except NotFound:
            pass

    async def empty() -> bool:
        return not (await pods.list(namespace)).items
    await wait_until(empty, 60, 0.2, "pods deleted")


def report(pod_latencies: list[float], paced_latencies: list[float],
           docker_concurrent: list[float], docker_alone: float, count: int) -> str:
    def row(name: str, values: list[float]) -> list[str]:
        return [name, str(len(values)), fmt_ms(percentile(values, 50), 0),
                fmt_ms(percentile(values, 99), 0), fmt_ms(max(values), 0)]

    table = format_table(
        ["workload", "n", "p50 ms", "p99 ms", "max ms"],
        [row("pods: create -> Running (watch)", pod_latencies),
         row(f"pods, paced at {PACED_RATE:g}/s", paced_latencies),
         row(f"docker run -d, {count} at once", docker_concurrent),
         row("docker run -d, alone", [docker_alone])],
        title=f"Pod startup latency: {count} pods created at once on one kubelet "
              f"(Docker Engine, image present)")
    p99 = percentile(pod_latencies, 99)
    verdict = "-" if math.isnan(p99) else ("met" if p99 <= TARGET_P99 else "MISSED")
    ratios = format_table(
        ["figure", "measured", "target", "verdict"],
        [["pod p99", f"{p99:.2f}s", f"<= {TARGET_P99:.0f}s (SLO {SLO_P99:.0f}s)", verdict],
         ["pod p99, paced", f"{percentile(paced_latencies, 99):.2f}s",
          f"<= {TARGET_P99:.0f}s", "met" if percentile(paced_latencies, 99) <= TARGET_P99
          else "MISSED"],
         ["pod p50 / docker run p50 (same concurrency)",
          fmt_ratio(ratio(percentile(pod_latencies, 50), percentile(docker_concurrent, 50))),
          "-", "-"],
         ["pod p50 / docker run alone",
          fmt_ratio(ratio(percentile(pod_latencies, 50), docker_alone)), "-", "-"]])
    return f"{table}\n\n{ratios}"


def operations_table(before: dict[str, tuple[float, float]],
                     after: dict[str, tuple[float, float]], count: int) -> str:
    """The kubelet's runtime calls during the measured run: where the time went."""
    rows = []
    for op in sorted(after):
        n = after[op][0] - before.get(op, (0.0, 0.0))[0]
        spent = after[op][1] - before.get(op, (0.0, 0.0))[1]
        if n > 0:
            rows.append([op, f"{n:.0f}", f"{n / count:.1f}", fmt_ms(spent / n, 0)])
    return format_table(["runtime operation", "calls", "per pod", "mean ms"], rows,
                        title="Kubelet runtime calls during the measured run")


async def run(quick: bool) -> None:
    """Start etcd, an API server and a kubelet; measure; print; clean up."""
    count = 10 if quick else 30
    await asyncio.to_thread(ensure_images)
    node = f"bench-{uuid.uuid4().hex[:8]}"
    namespace = "bench-kubelet"
    with tempfile.TemporaryDirectory(prefix="kyb-bench-kubelet-") as tmp:
        workdir = pathlib.Path(tmp)
        for sub in ("etcd", "apiserver", "kubelet"):
            (workdir / sub).mkdir()
        etcd = EtcdProcess(workdir / "etcd")
        apiserver = kubelet = None
        try:
            etcd.start()
            apiserver = ApiServerProcess(workdir / "apiserver", etcd.endpoint)
            apiserver.start()
            kubelet = KubeletProcess(workdir / "kubelet", apiserver.address, node)
            kubelet.start()
            async with Client([apiserver.address]) as client:
                await client.resource("namespaces").create(objects.namespace(namespace))

                async def node_ready() -> bool:
                    try:
                        n = await client.resource("nodes").get(node)
                    except NotFound:
                        return False
                    return any(c.type == "Ready" and c.status == "True"
                               for c in n.status.conditions)
                await wait_until(node_ready, 60, 0.2, "node Ready")
                await measure_pods(client, namespace, node, 2, "warmup-")   # first-use costs
                await _delete_all(client, namespace)
                before = await asyncio.to_thread(kubelet.operations)
                pod_latencies = await measure_pods(client, namespace, node, count, "pod-")
                after = await asyncio.to_thread(kubelet.operations)
                await _delete_all(client, namespace)
                paced_latencies = await measure_pods(client, namespace, node, count, "paced-",
                                                     rate=PACED_RATE)
                await _delete_all(client, namespace)
            docker_concurrent, docker_alone = await measure_docker(count)
        finally:
            if kubelet is not None:
                kubelet.stop()
            for proc in (apiserver, etcd):
                if proc is not None:
                    proc.stop()
            await asyncio.to_thread(_remove_containers, f"io.kybernetes.node={node}")
    print(report(pod_latencies, paced_latencies, docker_concurrent, docker_alone, count),
          flush=True)
    print()
    print(operations_table(before, after, count), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.kubelet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10 pods instead of 30")
    opts = p.parse_args(argv)
    try:
        asyncio.run(run(opts.quick))
    except (RuntimeError, TimeoutError, ValueError, OSError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
