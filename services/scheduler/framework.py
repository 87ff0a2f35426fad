"""The plugin framework, after kube-scheduler's: one small protocol per
extension point, a :class:`Status` with a code, and a :class:`Profile` that
runs the enabled plugins in order with their score weights.

Extension points used here, as in kube-scheduler:

* PreFilter: once per pod per cycle; may compute state for Filter or answer
  :data:`SKIP` ("this pod has nothing for me to check"), after which the
  plugin's Filter is not run for that pod at all. That is what keeps a
  cycle over hundreds of nodes cheap in Python.
* Filter: per (pod, node): None (Kubernetes' nil Status) means the node
  passes; a Status says why it does not.
* PreScore / Score / NormalizeScore: per feasible node, a raw score; the
  plugin then normalises its scores in place to 0..:data:`MAX_NODE_SCORE`,
  and the profile sums them times the plugin's weight.

A filter's reasons are what users read in FailedScheduling events, so they
use Kubernetes' wording.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from services.scheduler.nodeinfo import NodeInfo, PodInfo

MAX_NODE_SCORE = 100


class Code(enum.Enum):
    SUCCESS = "Success"
    ERROR = "Error"
    UNSCHEDULABLE = "Unschedulable"
    # Unschedulable, and preempting other pods would not help either.
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    SKIP = "Skip"


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_unschedulable(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)


SUCCESS = Status(Code.SUCCESS)
SKIP = Status(Code.SKIP)


def unschedulable(plugin: str, *reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(plugin: str, *reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


def error(plugin: str, reason: str) -> Status:
    return Status(Code.ERROR, (reason,), plugin)


class CycleState(dict):
    """Data plugins keep for the length of one scheduling cycle (PreFilter
    results read by Filter, PreScore results read by Score), keyed by the
    plugin's name."""


# -- the extension points -----------------------------------------------------------


@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        """None to go on, :data:`SKIP` to skip this plugin's Filter for the
        pod, or a rejection that holds for every node."""


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None if ``pod`` may run on ``node``, else why not."""


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        """None to go on, :data:`SKIP` to leave this plugin out of scoring."""


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """A raw score for ``node`` (any scale until normalised)."""

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        """Rescale ``scores`` (one per feasible node) in place to
        0..MAX_NODE_SCORE."""


def default_normalize_score(scores: list[int], reverse: bool,
                            max_priority: int = MAX_NODE_SCORE) -> None:
    """kube-scheduler's DefaultNormalizeScore: scale so the highest score
    becomes ``max_priority``; ``reverse`` flips it so the lowest raw score
    wins. All zero stays zero (or all ``max_priority`` when reversed)."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    for i, score in enumerate(scores):
        scaled = max_priority * score // highest
        scores[i] = max_priority - scaled if reverse else scaled


# -- a profile --------------------------------------------------------------------------


@dataclasses.dataclass
class Profile:
    """The plugins one scheduler name runs: filters in order, scores with
    their weights. Built from configuration by :mod:`services.scheduler.config`."""

    name: str
    filters: list[Any]
    scores: list[tuple[Any, int]]

    def __post_init__(self) -> None:
        self._pre_filters = [p for p in self.filters if isinstance(p, PreFilterPlugin)]
        self._pre_scores = [p for p, _ in self.scores if isinstance(p, PreScorePlugin)]

    @property
    def plugin_names(self) -> list[str]:
        names = [p.name for p in self.filters]
        return names + [p.name for p, _ in self.scores if p.name not in names]

    def run_pre_filter(self, state: CycleState, pod: PodInfo
                       ) -> tuple[Status | None, list[Any]]:
        """Run every PreFilter; returns (a rejection or None, the Filter
        callables still to run for this pod)."""
        skipped: set[str] = set()
        for plugin in self._pre_filters:
            status = plugin.pre_filter(state, pod)
            if status is None:
                continue
            if status.code is Code.SKIP:
                skipped.add(plugin.name)
                continue
            if not status.plugin:
                status = dataclasses.replace(status, plugin=plugin.name)
            return status, []
        return None, [p.filter for p in self.filters if p.name not in skipped]

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo,
                    filters: Sequence[Any]) -> Status | None:
        """The first failing filter's Status, or None if the node fits."""
        for check in filters:
            status = check(state, pod, node)
            if status is not None:
                return status
        return None

    def run_scores(self, state: CycleState, pod: PodInfo,
                   nodes: Sequence[NodeInfo]) -> list[int]:
        """The weighted sum of every score plugin's normalised scores, one
        total per node in ``nodes``."""
        skipped: set[str] = set()
        for plugin in self._pre_scores:
            status = plugin.pre_score(state, pod, nodes)
            if status is not None and status.code is Code.SKIP:
                skipped.add(plugin.name)
        totals = [0] * len(nodes)
        for plugin, weight in self.scores:
            if plugin.name in skipped or weight == 0:
                continue
            score = plugin.score
            scores = [score(state, pod, node) for node in nodes]
            plugin.normalize_score(state, pod, scores)
            totals = [total + value * weight for total, value in zip(totals, scores)]
        return totals


__all__ = [
    "Code", "CycleState", "FilterPlugin", "MAX_NODE_SCORE", "PreFilterPlugin", "PreScorePlugin",
    "Profile", "SKIP", "SUCCESS", "ScorePlugin", "Status", "default_normalize_score", "error",
    "unresolvable", "unschedulable",
]
