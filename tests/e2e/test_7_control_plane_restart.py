"""Restarting the API server's container, then etcd's: every component
reconnects and carries on — the same pods with the same containers, none
lost and none duplicated, and a new change (a scale-up) still goes all the
way through the scheduler, the controllers and the kubelets."""

from __future__ import annotations

import pytest

from tests.e2e import workload
from tests.e2e.cluster import Cluster, CommandFailed, container_ids, wait_until
from tests.e2e.workload import NAME, REPLICAS, SELECTOR, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(400, func_only=True)


def state(c: Cluster) -> dict[str, tuple[str, dict[str, tuple[str, int]]]]:
    """Pod name → (uid, its containers' (ID, restartCount))."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"], container_ids(p))
            for p in c.pods(SELECTOR)}


def api_answers(c: Cluster) -> bool:
    try:
        c.kyb("get", "namespaces", timeout=30)
    except CommandFailed:
        return False
    return True


@pytest.mark.parametrize("role", ["apiserver", "etcd"])
def test_control_plane_restart_loses_and_duplicates_no_pod(e2e_cluster, healthy_web: Web,
                                                            role):
    c = e2e_cluster
    topo = c.topology
    container = {"apiserver": topo.apiservers[0], "etcd": topo.etcd[0]}[role].name
    before = state(c)
    assert len(before) == REPLICAS

    c.docker("restart", container, timeout=120)
    wait_until(lambda: api_answers(c), 120, f"the API answering after {container} restarted")
    c.wait_nodes_ready(120)
    after = workload.wait_healthy(c, REPLICAS)
    assert state(c) == before, f"pods changed across the restart of {container}"
    assert len(after.pods) == REPLICAS

    # The cluster carries on: a new replica is scheduled, started and served.
    try:
        c.kyb("scale", "deployment", NAME, "--replicas", str(REPLICAS + 1))
        grown = workload.wait_healthy(c, REPLICAS + 1, spread=False)
        assert set(before) < {p["metadata"]["name"] for p in grown.pods}
    finally:
        c.kyb("scale", "deployment", NAME, "--replicas", str(REPLICAS))
    workload.wait_healthy(c, REPLICAS, spread=False)
