"""A node cut off from the control plane goes NotReady while its pods keep
serving; healed (before the pod eviction timeout), it comes back Ready with
the same pods and the same containers."""

from __future__ import annotations

import time

import pytest

from tests.e2e.cluster import (
    POD_EVICTION_TIMEOUT, container_ids, http_get, pod_ip, wait_until,
)
from tests.e2e.workload import SELECTOR, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(300, func_only=True)


def test_partitioned_node_goes_not_ready_and_heals_without_disturbing_pods(
        e2e_cluster, healthy_web: Web):
    c = e2e_cluster
    node = c.nodes[1]
    mine = healthy_web.on(node)
    before = {p["metadata"]["name"]: container_ids(p) for p in c.pods(SELECTOR)}
    inner = sorted(x.id for x in c.inner_containers(node))

    c.cluster("partition", node)
    try:
        # The node monitor grace period (20 s) must pass first.
        wait_until(lambda: c.node_ready().get(node) not in ("True", None), 90,
                   f"{node} NotReady")
        not_ready_at = time.monotonic()
        # Cut off from the control plane, its pods still serve.
        for p in mine:
            assert http_get(f"http://{pod_ip(p)}:8080/") == p["metadata"]["name"]
    finally:
        c.cluster("heal", node)
    c.wait_nodes_ready(90)
    back_after = time.monotonic() - not_ready_at

    after = {p["metadata"]["name"]: container_ids(p) for p in c.pods(SELECTOR)}
    # (Had the node stayed NotReady for the pod eviction timeout, its pods
    # would rightly have been evicted.)
    assert after == before, \
        f"pods or their containers changed across the partition ({node} Ready again " \
        f"{back_after:.0f}s after it was seen NotReady; eviction after {POD_EVICTION_TIMEOUT}s)"
    assert sorted(x.id for x in c.inner_containers(node)) == inner
    for p in mine:
        assert http_get(f"http://{pod_ip(p)}:8080/") == p["metadata"]["name"]
