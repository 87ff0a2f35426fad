"""One scheduling decision, as a pure function of a pod and the nodes.

kube-scheduler's schedulePod: run PreFilter, then Filter over the nodes
starting where the previous cycle stopped, until enough feasible nodes are
found (:func:`num_feasible_nodes_to_find`: in a large cluster scoring every
node costs more than it gains); score those, and pick the highest total,
breaking ties at random. A pod that fits nowhere raises :class:`FitError`,
whose message is the one users see in the FailedScheduling event.

Nothing here awaits: a cycle runs start to finish on the event loop, so the
node infos it reads cannot change under it and need no copy.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from services.scheduler.framework import CycleState, Profile, Status
from services.scheduler.nodeinfo import NodeInfo, PodInfo

# kube-scheduler's constants (pkg/scheduler/schedule_one.go).
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
DEFAULT_PERCENTAGE_BASE = 50
DEFAULT_PERCENTAGE_NODES_DIVISOR = 125
NO_NODES_AVAILABLE = "no nodes available to schedule pods"


def num_feasible_nodes_to_find(num_all_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes to find before scoring stops the search.

    Every node in clusters under 100 nodes; else ``percentage`` of them, where
    0 means adaptive: 50% minus 1% per 125 nodes, never below 5%; and never
    fewer than 100 nodes.
    """
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage <= 0:
        percentage = DEFAULT_PERCENTAGE_BASE - num_all_nodes // DEFAULT_PERCENTAGE_NODES_DIVISOR
        percentage = max(percentage, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    percentage = min(percentage, 100)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def fit_error_message(num_all_nodes: int, statuses: Mapping[str, Status]) -> str:
    """"0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated
    taint {dedicated: gpu}." — every reason counted over the nodes, most
    frequent first (ties alphabetically), as the issue's example reads."""
    if num_all_nodes == 0:
        return NO_NODES_AVAILABLE
    counts: Counter[str] = Counter()
    for status in statuses.values():
        for reason in status.reasons:
            counts[reason] += 1
    parts = [f"{count} {reason}"
             for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    message = f"0/{num_all_nodes} nodes are available"
    return f"{message}: {', '.join(parts)}." if parts else f"{message}."


class FitError(Exception):
    """The pod fits on none of the nodes; ``statuses`` says why, per node."""

    def __init__(self, pod: PodInfo, num_all_nodes: int, statuses: Mapping[str, Status]):
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.statuses = dict(statuses)
        super().__init__(fit_error_message(num_all_nodes, self.statuses))

    @property
    def message(self) -> str:
        return str(self)


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleResult:
    node: str
    evaluated_nodes: int  # nodes filtered (feasible or not)
    feasible_nodes: int


class Algorithm:
    """The decision-making core, with the one bit of state kube-scheduler
    keeps between cycles: where the next node search starts, so successive
    pods look at different parts of a large cluster."""

    def __init__(self, percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None):
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.next_start_node_index = 0

    def schedule(self, profile: Profile, pod: PodInfo, nodes: Sequence[NodeInfo]) -> ScheduleResult:
        """Pick a node for ``pod``; raises :class:`FitError`."""
        if not nodes:
            raise FitError(pod, 0, {})
        state = CycleState()
        rejection, filters = profile.run_pre_filter(state, pod)
        if rejection is not None:
            raise FitError(pod, len(nodes), {n.name: rejection for n in nodes})
        feasible, statuses = self.find_nodes_that_fit(profile, state, pod, nodes, filters)
        if not feasible:
            raise FitError(pod, len(nodes), statuses)
        evaluated = len(feasible) + len(statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        totals = profile.run_scores(state, pod, feasible)
        return ScheduleResult(select_host(feasible, totals, self.rng).name, evaluated,
                              len(feasible))

    def find_nodes_that_fit(self, profile: Profile, state: CycleState, pod: PodInfo,
                            nodes: Sequence[NodeInfo], filters: Sequence
                            ) -> tuple[list[NodeInfo], dict[str, Status]]:
        """Filter from the rotating start index until enough feasible nodes
        are found; returns them and the failing nodes' statuses."""
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage_of_nodes_to_score)
        start = self.next_start_node_index % total
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        processed = 0
        for node in _rotated(nodes, start):
            processed += 1
            # The profile's run_filters, inlined: this loop runs for hundreds
            # of nodes per pod, and a call per node is a measurable share.
            for check in filters:
                status = check(state, pod, node)
                if status is not None:
                    statuses[node.name] = status
                    break
            else:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
        self.next_start_node_index = (start + processed) % total
        return feasible, statuses


def _rotated(nodes: Sequence[NodeInfo], start: int):
    if start == 0:
        return nodes
    return (*nodes[start:], *nodes[:start])


def select_host(nodes: Sequence[NodeInfo], totals: Sequence[int],
                rng: random.Random) -> NodeInfo:
    """The node with the highest total; among equals, each equally likely
    (kube-scheduler's selectHost samples a reservoir; choosing among the
    collected ties is the same distribution with one random draw)."""
    best = max(totals)
    ties = [i for i, total in enumerate(totals) if total == best]
    return nodes[ties[0] if len(ties) == 1 else rng.choice(ties)]


__all__ = [
    "Algorithm", "FitError", "MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND",
    "MIN_FEASIBLE_NODES_TO_FIND", "ScheduleResult", "fit_error_message",
    "num_feasible_nodes_to_find", "select_host",
]
