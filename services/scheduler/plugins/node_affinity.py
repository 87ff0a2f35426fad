"""NodeAffinity: spec.nodeSelector and required node affinity must match
the node's labels (filter); preferred node affinity terms add their
weights to the nodes they match (score).

Matching follows Kubernetes: nodeSelector terms are ORed, a term's
requirements ANDed, and a term with no requirements matches nothing.
NotIn and DoesNotExist match a node without the label; Gt and Lt compare
the label as an integer. matchFields supports metadata.name, as Kubernetes
does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.scheduler import framework
from services.scheduler.nodeinfo import NodeInfo, PodInfo, Requirement, Term

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"

_REJECTED = framework.unresolvable(NAME, REASON)


def requirement_matches(req: Requirement, labels: Mapping[str, str]) -> bool:
    op = req.operator
    value = labels.get(req.key)
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or req.values is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        return number > req.values if op == "Gt" else number < req.values
    return False


def term_matches(term: Term, node: NodeInfo) -> bool:
    if not term.expressions and not term.fields:
        return False
    for req in term.expressions:
        if not requirement_matches(req, node.labels):
            return False
    if term.fields:
        fields = {"metadata.name": node.name}
        for req in term.fields:
            if not requirement_matches(req, fields):
                return False
    return True


def matches_node_selector(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeSelector and required node affinity, both of which must hold."""
    labels = node.labels
    for key, value in pod.node_selector.items():
        if labels.get(key) != value:
            return False
    if pod.required_terms is not None:
        return any(term_matches(term, node) for term in pod.required_terms)
    return True


class NodeAffinity:
    name = NAME

    def pre_filter(self, state: framework.CycleState, pod: PodInfo) -> framework.Status | None:
        if not pod.node_selector and pod.required_terms is None:
            return framework.SKIP
        return None

    def filter(self, state: framework.CycleState, pod: PodInfo,
               node: NodeInfo) -> framework.Status | None:
        return None if matches_node_selector(pod, node) else _REJECTED

    def pre_score(self, state: framework.CycleState, pod: PodInfo,
                  nodes: Sequence[NodeInfo]) -> framework.Status | None:
        return None if pod.preferred_terms else framework.SKIP

    def score(self, state: framework.CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(weight for weight, term in pod.preferred_terms if term_matches(term, node))

    def normalize_score(self, state: framework.CycleState, pod: PodInfo,
                        scores: list[int]) -> None:
        framework.default_normalize_score(scores, reverse=False)
