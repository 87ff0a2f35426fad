"""NodeResourcesLeastAllocated: prefer the node with the most cpu and
memory left after placing the pod, which spreads load across nodes.

Requests here are the non-zero ones (a container without requests counts
as 100m and 200Mi), as kube-scheduler scores.
"""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.framework import MAX_NODE_SCORE
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesLeastAllocated"


def least_requested_score(requested: int, capacity: int) -> int:
    """0..100: the share of ``capacity`` still free; 0 when over-committed."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesLeastAllocated:
    name = NAME

    def score(self, state: framework.CycleState, pod: PodInfo, node: NodeInfo) -> int:
        # least_requested_score for cpu and memory, inlined (runs per node per pod).
        cpu_cap, mem_cap = node.allocatable_cpu, node.allocatable_memory
        cpu = node.nonzero_cpu + pod.nonzero_cpu
        mem = node.nonzero_memory + pod.nonzero_memory
        cpu_score = (cpu_cap - cpu) * MAX_NODE_SCORE // cpu_cap if 0 < cpu_cap >= cpu else 0
        mem_score = (mem_cap - mem) * MAX_NODE_SCORE // mem_cap if 0 < mem_cap >= mem else 0
        return (cpu_score + mem_score) // 2

    def normalize_score(self, state: framework.CycleState, pod: PodInfo,
                        scores: list[int]) -> None:
        pass  # already 0..100
