"""NodeResourcesFit: the pod's cpu and memory requests must fit in the
node's allocatable minus what its bound and assumed pods request, and the
node must have room for one more pod."""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """Every reason the pod does not fit (Kubernetes reports them all)."""
    reasons = []
    if len(node.pods) + 1 > node.allocatable_pods:
        reasons.append(TOO_MANY_PODS)
    if pod.cpu and pod.cpu > node.allocatable_cpu - node.requested_cpu:
        reasons.append(INSUFFICIENT_CPU)
    if pod.memory and pod.memory > node.allocatable_memory - node.requested_memory:
        reasons.append(INSUFFICIENT_MEMORY)
    return reasons


class NodeResourcesFit:
    name = NAME

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        # The common case (it fits) without building a list.
        if (len(node.pods) < node.allocatable_pods
                and pod.cpu <= node.allocatable_cpu - node.requested_cpu
                and pod.memory <= node.allocatable_memory - node.requested_memory):
            return None
        reasons = insufficient(pod, node)
        return framework.unschedulable(NAME, *reasons) if reasons else None
