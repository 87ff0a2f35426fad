"""NodeResourcesBalancedAllocation: prefer nodes where, after placing the
pod, cpu and memory are used in similar proportions, so that neither runs
out while the other sits idle. Score = (1 - standard deviation of the used
fractions) * 100, as kube-scheduler computes it."""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.framework import MAX_NODE_SCORE
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesBalancedAllocation"


def _fraction(requested: int, capacity: int) -> float:
    if capacity == 0:
        return 1.0
    return min(1.0, requested / capacity)


def balanced_score(cpu_fraction: float, memory_fraction: float) -> int:
    # The standard deviation of two values is half their distance.
    std = abs(cpu_fraction - memory_fraction) / 2
    return int((1 - std) * MAX_NODE_SCORE)


class NodeResourcesBalancedAllocation:
    name = NAME

    def score(self, state: framework.CycleState, pod: PodInfo, node: NodeInfo) -> int:
        # _fraction and balanced_score, inlined (runs per node per pod).
        cpu_cap, mem_cap = node.allocatable_cpu, node.allocatable_memory
        cpu = (node.nonzero_cpu + pod.nonzero_cpu) / cpu_cap if cpu_cap else 1.0
        mem = (node.nonzero_memory + pod.nonzero_memory) / mem_cap if mem_cap else 1.0
        if cpu > 1.0:
            cpu = 1.0
        if mem > 1.0:
            mem = 1.0
        std = (cpu - mem if cpu > mem else mem - cpu) / 2
        return int((1 - std) * MAX_NODE_SCORE)

    def normalize_score(self, state: framework.CycleState, pod: PodInfo,
                        scores: list[int]) -> None:
        pass  # already 0..100
