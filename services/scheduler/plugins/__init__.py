"""The scheduler's plugins, one per module, each named by its NAME.

:data:`REGISTRY` maps names to plugin classes; a profile instantiates each
enabled plugin once, so a plugin that both filters and scores
(TaintToleration, NodeAffinity) is one object at both extension points.
The defaults follow kube-scheduler's default profile: filters in its order,
scores with its weights (SelectorSpread standing in for PodTopologySpread's
default spreading, at its weight 2).
"""

from __future__ import annotations

from services.scheduler.plugins import (
    node_affinity, node_ports, node_ready, node_resources_balanced_allocation,
    node_resources_fit, node_resources_least_allocated, node_unschedulable, selector_spread,
    taint_toleration,
)

REGISTRY = {
    node_unschedulable.NAME: node_unschedulable.NodeUnschedulable,
    node_ready.NAME: node_ready.NodeReady,
    taint_toleration.NAME: taint_toleration.TaintToleration,
    node_affinity.NAME: node_affinity.NodeAffinity,
    node_ports.NAME: node_ports.NodePorts,
    node_resources_fit.NAME: node_resources_fit.NodeResourcesFit,
    node_resources_least_allocated.NAME: node_resources_least_allocated.NodeResourcesLeastAllocated,
    node_resources_balanced_allocation.NAME:
        node_resources_balanced_allocation.NodeResourcesBalancedAllocation,
    selector_spread.NAME: selector_spread.SelectorSpread,
}

# Cheap, decisive checks first: the first failing filter is the reason a
# node is reported with, as in kube-scheduler.
DEFAULT_FILTERS = [
    node_unschedulable.NAME,
    node_ready.NAME,
    taint_toleration.NAME,
    node_affinity.NAME,
    node_ports.NAME,
    node_resources_fit.NAME,
]

DEFAULT_SCORES = {
    taint_toleration.NAME: 3,
    node_affinity.NAME: 2,
    node_resources_least_allocated.NAME: 1,
    node_resources_balanced_allocation.NAME: 1,
    selector_spread.NAME: 2,
}

__all__ = ["DEFAULT_FILTERS", "DEFAULT_SCORES", "REGISTRY"]
