"""The whole local cluster (`make cluster`): bring-up time, Deployment
startup, and control-plane memory — on a cluster of its own.

1. ``kyb-cluster up`` cold (images built, no container, network or state)
   and warm (a second ``up`` on the running cluster: nothing to change),
   each timed from the host, with 2 worker nodes as `make cluster` makes.
2. A 30-replica Deployment on the 2 nodes: from the Deployment's create call
   to each pod Running with its container running, as a watch sees it (per
   pod, p50/p99), and from each pod's own creation (its ADDED event) to
   Running. The reference, in the same run: raw ``docker run -d`` inside the
   node containers (``docker exec NODE docker run ...``), 15 at once on each
   node, then one alone. A pod is two containers (sandbox, then app), so a
   pod p50 near twice the concurrent ``docker run`` is the runtime's cost.
3. Memory: the resident set (VmRSS from /proc in the containers) of etcd,
   the API server, the scheduler, the controller manager, and of every
   node's kubelet and kube-proxy (and its dockerd, for scale), idle and
   with 300 pods — a 300-replica Deployment of ``sleep`` (busybox) over 3
   nodes at the kubelet's default 110 pods each (the cluster is grown to 3
   nodes by a further ``up --nodes 3``, timed too).

``--quick``: 10 replicas instead of 30 and 60 pods instead of 300.
``python -m tests.bench.cluster [--quick]`` runs it on its own. Figures are
printed, never asserted.
"""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client, config
from tests.bench.common import fmt_ms, fmt_ratio, format_table, percentile, ratio

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "images" / "build.sh"
NAME = "kybbench"
SUBNET = "172.30.92.0/24"
CLUSTER_CIDR = "10.252.0.0/16"
SERVICE_CIDR = "10.122.0.0/16"
IMAGE = "kyb/busybox:latest"
COMMAND = ["sleep", "3600"]
BASELINE_LABEL = "org.kybernetes.bench=docker-run"
CONTROL_PLANE = ("etcd-0", "apiserver-0", "scheduler", "controller-manager")
NODE_PROCESSES = {"kubelet": "bin/kyb-kubelet", "kube-proxy": "bin/kyb-proxy",
                  "dockerd": "dockerd --bip"}


# -- the cluster ----------------------------------------------------------------------------


class Cluster:
    """``kyb-cluster`` for the benchmark's own cluster and client config."""

    def __init__(self, workdir: pathlib.Path):
        self.env = {**os.environ, "KYB_CONFIG": str(workdir / "config"),
                    "PYTHONPATH": str(REPO)}
        self.env.pop("KYB_SERVER", None)

    def run(self, *argv: str, timeout: float = 900) -> float:
        """Run ``kyb-cluster ARGV --name NAME``; seconds it took."""
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "services.cluster.main", *argv,
                               "--name", NAME, "--quiet"],
                              env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"kyb-cluster {argv[0]} failed: {proc.stderr.strip()}")
        return time.monotonic() - started

    def up(self, nodes: int) -> float:
        return self.run("up", "--nodes", str(nodes), "--subnet", SUBNET,
                        "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
                        "--wait", "300")

    def down(self) -> float:
        return self.run("down")


def _docker(*args: str, timeout: float = 300) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {proc.stderr.strip()}")
    return proc.stdout


def node(i: int) -> str:
    return f"{NAME}-node-{i}"


# -- raw docker run inside the nodes ----------------------------------------------------------

_DOCKER_RUNS = """\
for i in $(seq 1 "$1"); do
  ( s=$(date +%s%N)
    docker run -d --label {label} {image} {command} >/dev/null || exit 1
    echo $(( ($(date +%s%N) - s) / 1000 )) ) &
done
wait
""".format(label=BASELINE_LABEL, image=IMAGE, command=" ".join(COMMAND))


async def _docker_runs(container: str, count: int) -> list[float]:
    """``count`` concurrent ``docker run -d`` in node ``container``, each timed
    inside the node; seconds."""
    proc = await asyncio.create_subprocess_exec(
        "docker", "exec", container, "sh", "-c", _DOCKER_RUNS, "sh", str(count),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    values = [int(v) / 1e6 for v in out.split()]
    if proc.returncode != 0 or len(values) != count:
        raise RuntimeError(f"docker run in {container} failed: {err.decode().strip()}")
    return values


def _remove_docker_runs(container: str) -> None:
    _docker("exec", container, "sh", "-c",
            f"docker ps -aq --filter label={BASELINE_LABEL} | xargs -r docker rm -f >/dev/null")


async def measure_docker_run(nodes: int, per_node: int) -> tuple[list[float], float]:
    """``per_node`` concurrent runs on each node at once, then one alone."""
    try:
        runs = await asyncio.gather(*(_docker_runs(node(i), per_node)
                                      for i in range(1, nodes + 1)))
        for i in range(1, nodes + 1):
            await asyncio.to_thread(_remove_docker_runs, node(i))
        (alone,) = await _docker_runs(node(1), 1)
    finally:
        for i in range(1, nodes + 1):
            await asyncio.to_thread(_remove_docker_runs, node(i))
    return [v for vs in runs for v in vs], alone


# -- a Deployment, watched ---------------------------------------------------------------------


def deployment(name: str, replicas: int) -> apps.Deployment:
    d = apps.Deployment()
    d.metadata.name, d.metadata.namespace = name, "default"
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    t = d.spec.template
    t.metadata.labels["app"] = name
    t.spec.termination_grace_period_seconds = 1
    t.spec.containers.add(name="main", image=IMAGE, command=COMMAND,
                          image_pull_policy="IfNotPresent")
    return d


def _running(pod: core.Pod) -> bool:
    statuses = pod.status.container_statuses
    return pod.status.phase == "Running" and len(statuses) == len(pod.spec.containers) and \
        all(s.state.HasField("running") for s in statuses)


async def run_deployment(client: Client, name: str, replicas: int,
                         timeout: float) -> tuple[list[float], list[float], float, dict[str, int]]:
    """Create the Deployment; wait for every pod Running. Returns seconds
    from the create call to each pod Running, from each pod's ADDED event
    to Running, to the last one, and pods per node."""
    pods = client.resource("pods")
    listed = await pods.list("default")
    seen: dict[str, float] = {}
    running: dict[str, float] = {}
    nodes: dict[str, str] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for event in pods.watch("default", resource_version=listed.metadata.resource_version):
            pod = event.object
            if pod.metadata.labels.get("app") != name:
                continue
            now = time.perf_counter()
            seen.setdefault(pod.metadata.name, now)
            if pod.metadata.name not in running and _running(pod):
                running[pod.metadata.name] = now
                nodes[pod.metadata.name] = pod.spec.node_name
                if len(running) == replicas:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0)  # the watch is open before the create
        started = time.perf_counter()
        await client.resource("deployments").create(deployment(name, replicas))
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{len(running)} of {replicas} pods Running after "
                               f"{timeout:g}s") from None
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    from_create = [t - started for t in running.values()]
    from_added = [running[n] - seen[n] for n in running]
    per_node: dict[str, int] = {}
    for n in nodes.values():
        per_node[n] = per_node.get(n, 0) + 1
    return from_create, from_added, max(from_create), per_node


async def delete_deployment(client: Client, name: str, timeout: float) -> None:
    await client.resource("deployments").delete(name, "default")

    async def gone() -> bool:
        items = (await client.resource("pods").list("default")).items
        return not any(p.metadata.labels.get("app") == name for p in items)
    deadline = time.monotonic() + timeout
    while not await gone():
        if time.monotonic() > deadline:
            raise TimeoutError(f"pods of {name} still there after {timeout:g}s")
        await asyncio.sleep(1)


# -- memory -----------------------------------------------------------------------------------

_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.M)


def _rss_of(container: str, pattern: str | None) -> float:
    """MB resident: of PID 1 of ``container``, or the sum over its processes
    whose command line contains ``pattern``."""
    if pattern is None:
        status = _docker("exec", container, "cat", "/proc/1/status")
        match = _RSS.search(status)
        return int(match.group(1)) / 1024 if match else math.nan
    # pgrep -f also matches the shell running this script (its arguments
    # hold the pattern): skip it.
    script = ('for p in $(pgrep -f -- "$1"); do [ "$p" = "$$" ] && continue; '
              'cat /proc/$p/status 2>/dev/null; done')
    status = _docker("exec", container, "sh", "-c", script, "sh", pattern)
    values = [int(v) for v in _RSS.findall(status)]
    return sum(values) / 1024 if values else math.nan


def memory(nodes: int) -> dict[str, float]:
    """Component → MB resident, for the control plane and every node."""
    out = {c: _rss_of(f"{NAME}-{c}", None) for c in CONTROL_PLANE}
    for i in range(1, nodes + 1):
        for proc, pattern in NODE_PROCESSES.items():
            out[f"{proc} (node-{i})"] = _rss_of(node(i), pattern)
    return out


# -- report -----------------------------------------------------------------------------------


def _row(name: str, values: list[float]) -> list[str]:
    return [name, str(len(values)), fmt_ms(percentile(values, 50), 0),
            fmt_ms(percentile(values, 99), 0), fmt_ms(max(values), 0)]


def _mb(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


async def run(quick: bool) -> None:
    """Build or check the images, then measure on the cluster ``kybbench``;
    the cluster is removed afterwards whatever happens."""
    replicas, many = (10, 60) if quick else (30, 300)
    started = time.monotonic()
    proc = await asyncio.to_thread(subprocess.run, [str(BUILD)], cwd=REPO, capture_output=True,
                                   text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"deploy/images/build.sh failed: {proc.stderr.strip()[-500:]}")
    images = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="kyb-bench-cluster-") as tmp:
        cluster = Cluster(pathlib.Path(tmp))
        await asyncio.to_thread(cluster.down)   # whatever an interrupted run left
        try:
            cold = await asyncio.to_thread(cluster.up, 2)
            warm = await asyncio.to_thread(cluster.up, 2)
            print(format_table(
                ["step", "seconds"],
                [["images (deploy/images/build.sh, up to date)", f"{images:.1f}"],
                 ["kyb-cluster up, cold (2 nodes; images built)", f"{cold:.1f}"],
                 ["kyb-cluster up, warm (nothing to change)", f"{warm:.1f}"]],
                title="Cluster bring-up (cluster kybbench)"), flush=True)

            docker_runs, docker_alone = await measure_docker_run(2, replicas // 2)
            async with Client(config=config.load(kubeconfig=cluster.env["KYB_CONFIG"])) as client:
                from_create, from_added, total, per_node = await run_deployment(
                    client, "startup", replicas, 300)
                await delete_deployment(client, "startup", 180)
            print()
            print(format_table(
                ["workload", "n", "p50 ms", "p99 ms", "max ms"],
                [_row("pod: Deployment create -> Running (watch)", from_create),
                 _row("pod: pod created -> Running (watch)", from_added),
                 _row(f"docker run -d in the nodes, {replicas // 2} at once on each",
                      docker_runs),
                 _row("docker run -d in a node, alone", [docker_alone])],
                title=f"A {replicas}-replica Deployment on 2 nodes "
                      f"({', '.join(f'{n}: {c}' for n, c in sorted(per_node.items()))}); "
                      f"all Running after {total:.2f}s"))
            print(format_table(
                ["figure", "value"],
                [["pod p50 (from create) / docker run p50 (same concurrency)",
                  fmt_ratio(ratio(percentile(from_create, 50), percentile(docker_runs, 50)))],
                 ["pod p50 (from create) / docker run alone",
                  fmt_ratio(ratio(percentile(from_create, 50), docker_alone))]]), flush=True)

            grow = await asyncio.to_thread(cluster.up, 3)
            idle = await asyncio.to_thread(memory, 3)
            async with Client(config=config.load(kubeconfig=cluster.env["KYB_CONFIG"])) as client:
                _, _, total_many, per_node_many = await run_deployment(
                    client, "density", many, 1800)
            loaded = await asyncio.to_thread(memory, 3)
            print()
            print(format_table(
                ["component", "idle MB", f"{many} pods MB", "delta MB"],
                [[c, _mb(idle[c]), _mb(loaded[c]), _mb(loaded[c] - idle[c])] for c in idle],
                title=f"Resident memory (VmRSS) with 3 nodes: idle, then {many} pods "
                      f"({', '.join(f'{n}: {c}' for n, c in sorted(per_node_many.items()))}; "
                      f"all Running {total_many:.0f}s after the Deployment was created; "
                      f"`up --nodes 3` took {grow:.1f}s)"), flush=True)
        finally:
            down = await asyncio.to_thread(cluster.down)
            print(f"\nkyb-cluster down: {down:.1f}s", flush=True)


if __name__ == "__main__":
    asyncio.run(run("--quick" in sys.argv[1:]))
