"""A kubelet that dies and comes back (the node entrypoint restarts it)
adopts the pods it finds running: no container is restarted, none is
created twice."""

from __future__ import annotations

import re

import pytest

from tests.e2e.cluster import Cluster, container_ids, wait_until
from tests.e2e.workload import SELECTOR, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(300, func_only=True)

# The kubelet's process, as the node entrypoint starts it (kyb-kubelet in the venv).
KUBELET = "^/opt/kyb/bin/python3 /opt/kyb/bin/kyb-kubelet "
POD_SYNCS = re.compile(r'^kubelet_pod_worker_duration_seconds_count\{[^}]*\} (\S+)$', re.M)


def kubelet_pid(c: Cluster, node: str) -> str:
    pids = c.docker("exec", node, "pgrep", "-f", KUBELET, check=False).split()
    assert len(pids) <= 1, f"{node} runs {len(pids)} kubelets: {pids}"
    return pids[0] if pids else ""


def pod_syncs(c: Cluster, node: str) -> float:
    """How many pod syncs the node's kubelet has done since it started."""
    from services.cluster.topology import KUBELET_METRICS_PORT
    try:
        text = c.metrics(f"{c.node_ip(node)}:{KUBELET_METRICS_PORT}", timeout=3)
    except OSError:
        return 0.0
    return sum(float(v) for v in POD_SYNCS.findall(text))


def snapshot(c: Cluster) -> dict[str, dict[str, tuple[str, int]]]:
    """Pod name → its containers' (ID, restartCount), as the API reports them."""
    return {p["metadata"]["name"]: container_ids(p) for p in c.pods(SELECTOR)}


def running_ids(c: Cluster, node: str) -> list[str]:
    return sorted(x.id for x in c.inner_containers(node) if x.type)


@pytest.mark.parametrize("signal", ["KILL", "TERM"])
def test_kubelet_restart_restarts_no_pod_and_duplicates_no_container(e2e_cluster,
                                                                     healthy_web: Web, signal):
    c = e2e_cluster
    node = c.nodes[0] if signal == "KILL" else c.nodes[1]
    before = snapshot(c)
    inner_before = running_ids(c, node)
    pods_here = len(healthy_web.on(node))
    old = kubelet_pid(c, node)
    assert old, f"no kubelet running in {node}"

    c.docker("exec", node, "kill", f"-{signal}", old)
    new = wait_until(lambda: (pid := kubelet_pid(c, node)) != old and pid, 60,
                     f"the entrypoint restarting {node}'s kubelet")
    # The new kubelet has done three syncs per pod (its first sync of each,
    # then status changes and periodic resyncs): by then any restart it
    # would make has been made.
    wait_until(lambda: pod_syncs(c, node) >= 3 * pods_here, 90,
               f"kubelet {new} on {node} syncing its {pods_here} pods three times")
    c.wait_nodes_ready(60)

    assert snapshot(c) == before, "a pod's containers changed across the kubelet restart"
    assert running_ids(c, node) == inner_before, \
        f"{node}'s dockerd runs other containers after the kubelet restart"
    per_pod = {}
    for x in c.inner_containers(node):
        per_pod.setdefault((x.pod, x.type, x.name), []).append(x.id)
    duplicates = {k: v for k, v in per_pod.items() if len(v) > 1}
    assert not duplicates, f"duplicate containers on {node}: {duplicates}"
