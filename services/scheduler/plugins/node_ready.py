"""NodeReady: only nodes whose Ready condition is True take new pods.

Kubernetes expresses this through the node.kubernetes.io/not-ready taint
(which TaintToleration then checks); the condition is checked directly here
as well, so a node that registered without a Ready condition, or whose
kubelet stopped before the taint arrived, never receives pods.
"""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeReady"
REASON = "node(s) were not ready"

_REJECTED = framework.unresolvable(NAME, REASON)


class NodeReady:
    name = NAME

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        return None if node.ready else _REJECTED
