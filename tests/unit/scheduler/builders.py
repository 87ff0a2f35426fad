"""Small builders of pods and nodes for the scheduler's tests (unit and
integration): every scheduling-relevant field as a keyword."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.scheduler.nodeinfo import NodeInfo, PodInfo

Req = tuple[str, str, Sequence[str]]  # (key, operator, values)


def _requirements(target, reqs: Iterable[Req]) -> None:
    for key, op, values in reqs:
        target.add(key=key, operator=op, values=list(values))


def pod(name: str = "p", namespace: str = "default", *, cpu: str | None = None,
        memory: str | None = None, labels: dict[str, str] | None = None,
        node_selector: dict[str, str] | None = None,
        tolerations: Iterable[tuple[str, str, str, str]] = (),
        host_ports: Iterable[int | tuple[int, str, str]] = (), priority: int | None = None,
        owner_uid: str = "", scheduler_name: str = "default-scheduler",
        required: Sequence[Sequence[Req]] | None = None,
        required_fields: Sequence[Req] = (),
        preferred: Sequence[tuple[int, Sequence[Req]]] = (),
        init_cpu: str | None = None, node_name: str = "", uid: str = "",
        containers: int = 1) -> core.Pod:
    """``tolerations``: (key, operator, value, effect); ``host_ports``: a
    port or (port, protocol, hostIP); ``required``: node selector terms,
    each a list of (key, operator, values)."""
    obj = core.Pod()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.metadata.uid = uid or f"uid-{namespace}-{name}"
    obj.metadata.labels.update(labels or {})
    if owner_uid:
        obj.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                          name="rs", uid=owner_uid, controller=True)
    spec = obj.spec
    spec.scheduler_name = scheduler_name
    spec.node_name = node_name
    for i in range(containers):
        ctr = spec.containers.add(name=f"c{i}", image="busybox")
        if cpu is not None:
            ctr.resources.requests["cpu"] = cpu
        if memory is not None:
            ctr.resources.requests["memory"] = memory
    for port in host_ports:
        number, protocol, ip = (port, "TCP", "") if isinstance(port, int) else port
        spec.containers[0].ports.add(container_port=number, host_port=number,
                                     protocol=protocol, host_ip=ip)
    if init_cpu is not None:
        init = spec.init_containers.add(name="init", image="busybox")
        init.resources.requests["cpu"] = init_cpu
    spec.node_selector.update(node_selector or {})
    for key, op, value, effect in tolerations:
        spec.tolerations.add(key=key, operator=op, value=value, effect=effect)
    if priority is not None:
        spec.priority = priority
    affinity = spec.affinity.node_affinity
    if required is not None or required_fields:
        selector = affinity.required_during_scheduling_ignored_during_execution
        selector.SetInParent()
        for term in (required or []):
            _requirements(selector.node_selector_terms.add().match_expressions, term)
        if required_fields:
            _requirements(selector.node_selector_terms.add().match_fields, required_fields)
    for weight, term in preferred:
        pref = affinity.preferred_during_scheduling_ignored_during_execution.add(weight=weight)
        _requirements(pref.preference.match_expressions, term)
    return obj


def node(name: str = "n", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None,
         taints: Iterable[tuple[str, str, str]] = (), unschedulable: bool = False,
         ready: bool | None = True) -> core.Node:
    """``taints``: (key, value, effect); ``ready=None`` leaves out the Ready condition."""
    obj = core.Node()
    obj.metadata.name = name
    obj.metadata.labels.update(labels or {})
    obj.spec.unschedulable = unschedulable
    for key, value, effect in taints:
        obj.spec.taints.add(key=key, value=value, effect=effect)
    for field in (obj.status.capacity, obj.status.allocatable):
        field.update({"cpu": cpu, "memory": memory, "pods": pods})
    if ready is not None:
        obj.status.conditions.add(type="Ready", status="True" if ready else "False")
    return obj


def node_info(name: str = "n", *, pods_on_node: Iterable[core.Pod] = (), **kwargs) -> NodeInfo:
    info = NodeInfo(name, node(name, **kwargs))
    for p in pods_on_node:
        info.add_pod(PodInfo(p))
    return info


def pod_info(name: str = "p", **kwargs) -> PodInfo:
    return PodInfo(pod(name, **kwargs))
