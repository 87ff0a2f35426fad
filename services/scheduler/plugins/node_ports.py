"""NodePorts: a pod asking for a host port cannot share a node with another
pod holding the same protocol and port on the same (or the wildcard) IP."""

from __future__ import annotations

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"

_REJECTED = framework.unschedulable(NAME, REASON)


class NodePorts:
    name = NAME

    def pre_filter(self, state: framework.CycleState, pod: PodInfo) -> framework.Status | None:
        return None if pod.host_ports else framework.SKIP

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        if not node.used_port_numbers:
            return None
        for port in pod.host_ports:
            if node.port_conflicts(port):
                return _REJECTED
        return None
