"""SelectorSpread: spread the pods of one owner (the controller in their
ownerReferences: a ReplicaSet, say) across nodes, so one node going away
takes as few of them as possible. A lite PodTopologySpread with the node as
the only topology domain: nodes with fewer pods of the owner score higher."""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "SelectorSpread"


class SelectorSpread:
    name = NAME

    def pre_score(self, state: framework.CycleState, pod: PodInfo,
                  nodes: Sequence[NodeInfo]) -> framework.Status | None:
        return None if pod.owner_uid else framework.SKIP

    def score(self, state: framework.CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return node.owner_counts.get(pod.owner_uid, 0)

    def normalize_score(self, state: framework.CycleState, pod: PodInfo,
                        scores: list[int]) -> None:
        framework.default_normalize_score(scores, reverse=True)
