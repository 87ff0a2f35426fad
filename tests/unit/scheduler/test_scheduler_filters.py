"""Every filter plugin, table-driven: (pod, node) -> passes, or the reason."""

from __future__ import annotations

import pytest

from services.scheduler.framework import Code, CycleState
from services.scheduler.plugins import (
    node_affinity, node_ports, node_ready, node_resources_fit, node_unschedulable,
    taint_toleration,
)
from tests.unit.scheduler.builders import node_info, pod, pod_info


def run_filter(plugin, pod_, node_):
    """PreFilter then Filter, as a profile runs them; None means it fits."""
    state = CycleState()
    if hasattr(plugin, "pre_filter"):
        status = plugin.pre_filter(state, pod_)
        if status is not None and status.code is Code.SKIP:
            return None
        assert status is None
    return plugin.filter(state, pod_, node_)


def reasons(status):
    return None if status is None else status.reasons


# -- NodeUnschedulable ------------------------------------------------------------------

UNSCHEDULABLE_TOLERATION = ("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule")


@pytest.mark.parametrize("unschedulable, tolerations, expected", [
    (False, [], None),
    (True, [], ("node(s) were unschedulable",)),
    (True, [UNSCHEDULABLE_TOLERATION], None),
    (True, [("", "Exists", "", "")], None),  # tolerates everything
    (True, [("node.kubernetes.io/unschedulable", "Exists", "", "NoExecute")],
     ("node(s) were unschedulable",)),
])
def test_node_unschedulable_filter(unschedulable, tolerations, expected):
    status = run_filter(node_unschedulable.NodeUnschedulable(),
                        pod_info(tolerations=tolerations), node_info(unschedulable=unschedulable))
    assert reasons(status) == expected
    if status is not None:
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.plugin == "NodeUnschedulable"


# -- NodeReady ---------------------------------------------------------------------------


@pytest.mark.parametrize("ready, expected", [
    (True, None),
    (False, ("node(s) were not ready",)),
    (None, ("node(s) were not ready",)),  # no Ready condition at all
])
def test_node_ready_filter(ready, expected):
    assert reasons(run_filter(node_ready.NodeReady(), pod_info(), node_info(ready=ready))) \
        == expected


# -- TaintToleration ---------------------------------------------------------------------

GPU = ("dedicated", "gpu", "NoSchedule")


@pytest.mark.parametrize("taints, tolerations, expected", [
    ([], [], None),
    ([GPU], [], ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([GPU], [("dedicated", "Equal", "gpu", "NoSchedule")], None),
    ([GPU], [("dedicated", "", "gpu", "")], None),  # empty operator is Equal, empty effect all
    ([GPU], [("dedicated", "Equal", "tpu", "NoSchedule")],
     ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([GPU], [("dedicated", "Exists", "", "NoSchedule")], None),
    ([GPU], [("dedicated", "Exists", "", "NoExecute")],
     ("node(s) had untolerated taint {dedicated: gpu}",)),
    ([GPU], [("", "Exists", "", "")], None),
    ([("evict", "", "NoExecute")], [], ("node(s) had untolerated taint {evict: }",)),
    ([("soft", "x", "PreferNoSchedule")], [], None),  # only a score matter
    ([GPU, ("zone", "a", "NoExecute")], [("dedicated", "Exists", "", "")],
     ("node(s) had untolerated taint {zone: a}",)),
])
def test_taint_toleration_filter(taints, tolerations, expected):
    status = run_filter(taint_toleration.TaintToleration(), pod_info(tolerations=tolerations),
                        node_info(taints=taints))
    assert reasons(status) == expected
    if status is not None:
        assert status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


# -- NodeAffinity ---------------------------------------------------------------------------

AFFINITY = "node(s) didn't match Pod's node affinity/selector"


@pytest.mark.parametrize("labels, kwargs, fits", [
    ({}, {}, True),
    ({"disk": "ssd"}, {"node_selector": {"disk": "ssd"}}, True),
    ({"disk": "hdd"}, {"node_selector": {"disk": "ssd"}}, False),
    ({}, {"node_selector": {"disk": "ssd"}}, False),
    ({"disk": "ssd", "zone": "a"}, {"node_selector": {"disk": "ssd", "zone": "b"}}, False),
    ({"zone": "a"}, {"required": [[("zone", "In", ["a", "b"])]]}, True),
    ({"zone": "c"}, {"required": [[("zone", "In", ["a", "b"])]]}, False),
    ({}, {"required": [[("zone", "In", ["a"])]]}, False),
    ({"zone": "c"}, {"required": [[("zone", "NotIn", ["a", "b"])]]}, True),
    ({}, {"required": [[("zone", "NotIn", ["a"])]]}, True),
    ({"zone": "a"}, {"required": [[("zone", "NotIn", ["a"])]]}, False),
    ({"gpu": ""}, {"required": [[("gpu", "Exists", [])]]}, True),
    ({}, {"required": [[("gpu", "Exists", [])]]}, False),
    ({}, {"required": [[("gpu", "DoesNotExist", [])]]}, True),
    ({"gpu": "1"}, {"required": [[("gpu", "DoesNotExist", [])]]}, False),
    ({"cores": "8"}, {"required": [[("cores", "Gt", ["4"])]]}, True),
    ({"cores": "4"}, {"required": [[("cores", "Gt", ["4"])]]}, False),
    ({"cores": "2"}, {"required": [[("cores", "Lt", ["4"])]]}, True),
    ({"cores": "many"}, {"required": [[("cores", "Gt", ["4"])]]}, False),
    ({}, {"required": [[("cores", "Lt", ["4"])]]}, False),
    # terms are ORed, requirements within a term ANDed
    ({"zone": "b"}, {"required": [[("zone", "In", ["a"])], [("zone", "In", ["b"])]]}, True),
    ({"zone": "a", "disk": "hdd"},
     {"required": [[("zone", "In", ["a"]), ("disk", "In", ["ssd"])]]}, False),
    # an empty term matches nothing; so does an empty list of terms
    ({"zone": "a"}, {"required": [[]]}, False),
    ({"zone": "a"}, {"required": []}, False),
    # nodeSelector and affinity must both hold
    ({"zone": "a"}, {"node_selector": {"disk": "ssd"}, "required": [[("zone", "In", ["a"])]]},
     False),
    # matchFields on metadata.name
    ({}, {"required_fields": [("metadata.name", "In", ["n"])]}, True),
    ({}, {"required_fields": [("metadata.name", "In", ["other"])]}, False),
])
def test_node_affinity_filter(labels, kwargs, fits):
    status = run_filter(node_affinity.NodeAffinity(), pod_info(**kwargs),
                        node_info("n", labels=labels))
    assert reasons(status) == (None if fits else (AFFINITY,))


def test_node_affinity_pre_filter_skips_pods_without_constraints():
    plugin = node_affinity.NodeAffinity()
    assert plugin.pre_filter(CycleState(), pod_info()).code is Code.SKIP
    assert plugin.pre_filter(CycleState(), pod_info(node_selector={"a": "b"})) is None


# -- NodePorts ----------------------------------------------------------------------------------

PORTS = "node(s) didn't have free ports for the requested pod ports"


@pytest.mark.parametrize("existing, wanted, fits", [
    ([], [8080], True),
    ([8080], [8080], False),
    ([8080], [8081], True),
    ([(8080, "TCP", "")], [(8080, "UDP", "")], True),
    ([(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "10.0.0.2")], True),
    ([(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "10.0.0.1")], False),
    ([(8080, "TCP", "10.0.0.1")], [(8080, "TCP", "")], False),  # wildcard wants every IP
    ([(8080, "TCP", "")], [(8080, "TCP", "10.0.0.1")], False),
    ([8080], [], True),
])
def test_node_ports_filter(existing, wanted, fits):
    holder = pod("holder", host_ports=existing)
    status = run_filter(node_ports.NodePorts(), pod_info(host_ports=wanted),
                        node_info(pods_on_node=[holder]))
    assert reasons(status) == (None if fits else (PORTS,))
    if status is not None:
        assert status.code is Code.UNSCHEDULABLE


def test_node_ports_frees_ports_when_the_holder_leaves():
    holder = pod("holder", host_ports=[80])
    info = node_info(pods_on_node=[holder])
    from services.scheduler.nodeinfo import PodInfo
    info.remove_pod(PodInfo(holder))
    assert run_filter(node_ports.NodePorts(), pod_info(host_ports=[80]), info) is None


# -- NodeResourcesFit ---------------------------------------------------------------------------


@pytest.mark.parametrize("node_kwargs, existing, wanted, expected", [
    ({"cpu": "2"}, [], {"cpu": "1"}, None),
    ({"cpu": "2"}, [{"cpu": "1500m"}], {"cpu": "500m"}, None),  # exactly full
    ({"cpu": "2"}, [{"cpu": "1500m"}], {"cpu": "501m"}, ("Insufficient cpu",)),
    ({"memory": "1Gi"}, [{"memory": "512Mi"}], {"memory": "513Mi"}, ("Insufficient memory",)),
    ({"cpu": "1", "memory": "1Gi"}, [], {"cpu": "2", "memory": "2Gi"},
     ("Insufficient cpu", "Insufficient memory")),
    ({"pods": "1"}, [{}], {}, ("Too many pods",)),
    ({"pods": "2"}, [{}], {}, None),
    ({"cpu": "1"}, [{"cpu": "1"}], {}, None),  # requesting nothing always fits resources
    ({"cpu": "0"}, [], {"cpu": "1m"}, ("Insufficient cpu",)),
])
def test_node_resources_fit_filter(node_kwargs, existing, wanted, expected):
    on_node = [pod(f"e{i}", **kw) for i, kw in enumerate(existing)]
    status = run_filter(node_resources_fit.NodeResourcesFit(), pod_info(**wanted),
                        node_info(pods_on_node=on_node, **node_kwargs))
    assert reasons(status) == expected
    if status is not None:
        assert status.code is Code.UNSCHEDULABLE


def test_node_resources_fit_counts_init_containers_as_kubernetes_does():
    # max(sum of containers, largest init container): 2 x 300m vs 800m init
    wanted = pod_info(cpu="300m", containers=2, init_cpu="800m")
    assert wanted.cpu == 800
    plugin = node_resources_fit.NodeResourcesFit()
    assert run_filter(plugin, wanted, node_info(cpu="800m")) is None
    assert reasons(run_filter(plugin, wanted, node_info(cpu="799m"))) == ("Insufficient cpu",)
