"""NodeUnschedulable: keep pods off cordoned nodes (spec.unschedulable),
unless they tolerate the node.kubernetes.io/unschedulable:NoSchedule taint
that stands for it, as DaemonSet pods do."""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo, Taint, tolerates

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")

_REJECTED = framework.unresolvable(NAME, REASON)


class NodeUnschedulable:
    name = NAME

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        if not node.unschedulable or tolerates(pod.tolerations, UNSCHEDULABLE_TAINT):
            return None
        return _REJECTED
