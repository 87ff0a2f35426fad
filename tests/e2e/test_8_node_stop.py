"""A worker node that stops: it goes NotReady, its pods are evicted once the
(shortened) pod eviction timeout passes and recreated on the other node;
started again, it rejoins and its dockerd keeps no container of the pods
that left, and new pods can land on it again."""

from __future__ import annotations

import time

import pytest

from tests.e2e import workload
from tests.e2e.cluster import POD_EVICTION_TIMEOUT, Cluster, is_ready, pod_node, wait_until
from tests.e2e.workload import REPLICAS, SELECTOR, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(600, func_only=True)

# Node monitor grace period (20 s) + monitor period, with room for a busy machine.
NOT_READY_TIMEOUT = 90
# The pods' eviction timeout after the taint, then a replacement to schedule and start.
REPLACED_TIMEOUT = POD_EVICTION_TIMEOUT + 90


def leftovers(c: Cluster, node: str, gone: set[str], *, all_states: bool) -> list[str]:
    """Containers in ``node``'s dockerd that belong to pods in ``gone``."""
    return [f"{x.pod}/{x.name or 'sandbox'} {x.state}"
            for x in c.inner_containers(node, all_states=all_states) if x.pod in gone]


def test_stopped_node_pods_move_and_rejoined_node_is_cleaned_up(e2e_cluster, healthy_web: Web):
    c = e2e_cluster
    node = c.nodes[1]
    other = c.other_node(node)
    moved = {p["metadata"]["name"] for p in healthy_web.on(node)}
    assert moved

    c.cluster("stop-node", node)
    try:
        wait_until(lambda: c.node_ready().get(node) not in ("True", None), NOT_READY_TIMEOUT,
                   f"{node} NotReady")
        not_ready_at = time.monotonic()

        def replaced():
            pods = c.pods(SELECTOR)
            return not ({p["metadata"]["name"] for p in pods} & moved) and \
                len(pods) == REPLICAS and all(is_ready(p) for p in pods)
        wait_until(replaced, REPLACED_TIMEOUT, f"{sorted(moved)} evicted and replaced on {other}")
        web = workload.wait_healthy(c, REPLICAS, spread=False)
        took = time.monotonic() - not_ready_at
        assert {pod_node(p) for p in web.pods} == {other}
        print(f"{node} NotReady → pods replaced on {other} in {took:.0f}s "
              f"(eviction timeout {POD_EVICTION_TIMEOUT}s)")
    finally:
        c.cluster("start-node", node, "--wait", "120")
    c.wait_nodes_ready(120)

    # The rejoined node's kubelet stops and removes the evicted pods' containers.
    wait_until(lambda: not leftovers(c, node, moved, all_states=True), 90,
               f"{node}'s dockerd rid of the containers of {sorted(moved)}")
    assert not leftovers(c, node, moved, all_states=False)
    # Every container it runs belongs to a pod the API places on it.
    placed = {p["metadata"]["name"] for p in c.pods() if pod_node(p) == node}
    strays = [x for x in c.inner_containers(node) if x.pod not in placed]
    assert not strays, f"{node} runs containers of pods not bound to it: {strays}"

    # And it takes pods again: spreading puts a replacement there.
    web = workload.wait_spread(c, REPLICAS)
    assert node in {pod_node(p) for p in web.pods}

