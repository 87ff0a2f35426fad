"""PodInfo and NodeInfo: requests as Kubernetes sums them, tolerations as
Kubernetes matches them, and NodeInfo's running totals."""

from __future__ import annotations

import pytest

from services.scheduler.nodeinfo import (
    DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, HostPort, Taint, Toleration,
)
from tests.unit.scheduler.builders import node_info, pod, pod_info


@pytest.mark.parametrize("kwargs, cpu, memory, nonzero_cpu, nonzero_memory", [
    ({}, 0, 0, DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST),
    ({"cpu": "250m", "memory": "64Mi"}, 250, 64 << 20, 250, 64 << 20),
    ({"cpu": "250m", "containers": 3}, 750, 0, 750, 3 * DEFAULT_MEMORY_REQUEST),
    ({"cpu": "0.5", "init_cpu": "2"}, 2000, 0, 2000, DEFAULT_MEMORY_REQUEST),
    ({"cpu": "1", "containers": 2, "init_cpu": "1500m"}, 2000, 0, 2000,
     2 * DEFAULT_MEMORY_REQUEST),
])
def test_pod_info_requests(kwargs, cpu, memory, nonzero_cpu, nonzero_memory):
    info = pod_info(**kwargs)
    assert (info.cpu, info.memory, info.nonzero_cpu, info.nonzero_memory) == \
        (cpu, memory, nonzero_cpu, nonzero_memory)


def test_pod_info_reads_owner_priority_and_ports():
    info = pod_info(owner_uid="rs-uid", priority=7, host_ports=[80, (53, "UDP", "10.0.0.1")])
    assert info.owner_uid == "rs-uid"
    assert info.priority == 7
    assert info.host_ports == (HostPort("0.0.0.0", "TCP", 80), HostPort("10.0.0.1", "UDP", 53))
    assert pod_info().priority == 0


@pytest.mark.parametrize("toleration, taint, tolerated", [
    (("k", "Equal", "v", "NoSchedule"), ("k", "v", "NoSchedule"), True),
    (("k", "Equal", "v", "NoSchedule"), ("k", "w", "NoSchedule"), False),
    (("k", "", "v", "NoSchedule"), ("k", "v", "NoSchedule"), True),
    (("k", "Exists", "", "NoSchedule"), ("k", "anything", "NoSchedule"), True),
    (("k", "Exists", "", ""), ("k", "v", "NoExecute"), True),
    (("k", "Exists", "", "NoSchedule"), ("k", "v", "NoExecute"), False),
    (("", "Exists", "", ""), ("any", "v", "NoExecute"), True),
    (("other", "Exists", "", ""), ("k", "v", "NoSchedule"), False),
    (("k", "Bogus", "v", ""), ("k", "v", "NoSchedule"), False),
])
def test_toleration_tolerates_taint_like_kubernetes(toleration, taint, tolerated):
    assert Toleration(*toleration).tolerates(Taint(*taint)) is tolerated


def test_node_info_running_totals_follow_adds_and_removes():
    a = pod("a", cpu="1", memory="1Gi", owner_uid="rs", host_ports=[80])
    b = pod("b", cpu="500m", owner_uid="rs")
    info = node_info(cpu="4", memory="8Gi", pods_on_node=[a, b])
    assert (info.requested_cpu, info.requested_memory) == (1500, 1 << 30)
    assert info.owner_counts == {"rs": 2}
    assert info.port_conflicts(HostPort("0.0.0.0", "TCP", 80))
    info.remove_pod(pod_info("a"))
    assert (info.requested_cpu, info.requested_memory) == (500, 0)
    assert info.owner_counts == {"rs": 1}
    assert not info.port_conflicts(HostPort("0.0.0.0", "TCP", 80))
    assert not info.remove_pod(pod_info("a"))


def test_node_info_parses_the_node():
    info = node_info(cpu="7500m", memory="2Gi", pods="30", labels={"zone": "a"},
                     taints=[("k", "v", "NoSchedule")], unschedulable=True)
    assert (info.allocatable_cpu, info.allocatable_memory, info.allocatable_pods) == \
        (7500, 2 << 30, 30)
    assert info.labels == {"zone": "a"}
    assert info.taints == (Taint("k", "v", "NoSchedule"),)
    assert info.unschedulable and info.ready
