"""TaintToleration: a pod may only land on a node whose NoSchedule and
NoExecute taints it tolerates (filter); among the rest, nodes with fewer
untolerated PreferNoSchedule taints score higher (score)."""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo, Taint, tolerates

NAME = "TaintToleration"
HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
PREFER_NO_SCHEDULE = "PreferNoSchedule"


def untolerated_taint_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


class TaintToleration:
    name = NAME

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        for taint in node.taints:
            if taint.effect in HARD_EFFECTS and not tolerates(pod.tolerations, taint):
                return framework.unresolvable(NAME, untolerated_taint_reason(taint))
        return None

    def pre_score(self, state: framework.CycleState, pod: PodInfo,
                  nodes: Sequence[NodeInfo]) -> framework.Status | None:
        if not any(node.taints for node in nodes):
            return framework.SKIP  # every node would score the same
        # Only tolerations that can match a PreferNoSchedule taint matter here.
        state[NAME] = tuple(t for t in pod.tolerations if t.effect in ("", PREFER_NO_SCHEDULE))
        return None

    def score(self, state: framework.CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations = state[NAME]
        return sum(1 for taint in node.taints
                   if taint.effect == PREFER_NO_SCHEDULE and not tolerates(tolerations, taint))

    def normalize_score(self, state: framework.CycleState, pod: PodInfo,
                        scores: list[int]) -> None:
        framework.default_normalize_score(scores, reverse=True)
