"""What the scheduler knows about a pod and a node, computed once.

After kube-scheduler's framework/types.go: a :class:`PodInfo` holds the
parts of a pod that scheduling reads (summed resource requests, host ports,
tolerations, affinity terms, the owning controller) already parsed from the
protobuf message, and a :class:`NodeInfo` holds a node's parsed allocatable,
taints and labels plus running totals over the pods on it (bound or
assumed). Plugins run for every (pod, node) pair of every cycle, so nothing
they read may need parsing there: quantities, taints and selectors are
parsed here, once per object version.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any, NamedTuple

from services.api.quantity import QuantityError, cpu_millis, memory_bytes, parse_quantity, value
from services.machinery.store import object_key

# Requests assumed for scoring when a container asks for nothing, as
# kube-scheduler's DefaultMilliCPURequest and DefaultMemoryRequest: a node
# full of request-less pods must not look empty to the scoring plugins.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

WILDCARD_IP = "0.0.0.0"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class Taint(NamedTuple):
    key: str
    value: str
    effect: str


class Toleration(NamedTuple):
    key: str
    operator: str
    value: str
    effect: str

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' Toleration.ToleratesTaint: an empty effect matches
        every effect, an empty key (with Exists) every key."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        if self.operator in ("", "Equal"):
            return self.value == taint.value
        return False


def tolerates(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    for toleration in tolerations:
        if toleration.tolerates(taint):
            return True
    return False


class HostPort(NamedTuple):
    ip: str
    protocol: str
    port: int


class Requirement(NamedTuple):
    """One node selector requirement; ``values`` is a frozenset, or for Gt
    and Lt the single integer bound (None when it does not parse)."""

    key: str
    operator: str
    values: Any


# A node selector term: requirements on labels and on fields (metadata.name).
class Term(NamedTuple):
    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]


def _quantity(parse, text: str) -> int:
    try:
        return parse(text)
    except QuantityError:
        return 0  # the API server validates quantities; never fail a cycle on one


def _count(text: str) -> int:
    return value(parse_quantity(text))


# Exact parsing goes through fractions; a cluster uses few distinct request
# strings, so remembering them makes building a PodInfo cheap.
@functools.lru_cache(maxsize=4096)
def _cpu(text: str) -> int:
    return _quantity(cpu_millis, text)


@functools.lru_cache(maxsize=4096)
def _memory(text: str) -> int:
    return _quantity(memory_bytes, text)


def _container_requests(container: Any) -> tuple[int, int, int, int]:
    """(cpu, memory, non-zero cpu, non-zero memory) of one container."""
    requests = container.resources.requests
    cpu_text, mem_text = requests.get("cpu"), requests.get("memory")
    cpu = _cpu(cpu_text) if cpu_text is not None else 0
    mem = _memory(mem_text) if mem_text is not None else 0
    return (cpu, mem, cpu if cpu_text is not None else DEFAULT_MILLI_CPU_REQUEST,
            mem if mem_text is not None else DEFAULT_MEMORY_REQUEST)


def pod_requests(spec: Any) -> tuple[int, int, int, int]:
    """A pod's effective requests, as Kubernetes computes them: the sum over
    its containers, raised to the largest init container's (init containers
    run one at a time, before the others). Returns (cpu millis, memory
    bytes, non-zero cpu, non-zero memory)."""
    totals = [0, 0, 0, 0]
    for container in spec.containers:
        for i, amount in enumerate(_container_requests(container)):
            totals[i] += amount
    for container in spec.init_containers:
        for i, amount in enumerate(_container_requests(container)):
            totals[i] = max(totals[i], amount)
    return totals[0], totals[1], totals[2], totals[3]


def _requirement(req: Any) -> Requirement:
    if req.operator in ("Gt", "Lt"):
        bound = None
        if len(req.values) == 1:
            try:
                bound = int(req.values[0])
            except ValueError:
                bound = None
        return Requirement(req.key, req.operator, bound)
    return Requirement(req.key, req.operator, frozenset(req.values))


def parse_term(term: Any) -> Term:
    return Term(tuple(_requirement(r) for r in term.match_expressions),
                tuple(_requirement(r) for r in term.match_fields))


class PodInfo:
    """A pod with everything scheduling reads parsed out of it.

    Built once per pod version (:func:`pod_info`); never mutated afterwards,
    so queue, cache and plugins can share it.
    """

    __slots__ = (
        "pod", "key", "uid", "namespace", "name", "priority", "scheduler_name",
        "cpu", "memory", "nonzero_cpu", "nonzero_memory", "host_ports", "tolerations",
        "node_selector", "required_terms", "preferred_terms", "owner_uid", "labels",
    )

    def __init__(self, pod: Any):
        meta, spec = pod.metadata, pod.spec
        self.pod = pod
        self.key = object_key(pod)
        self.uid = meta.uid
        self.namespace = meta.namespace
        self.name = meta.name
        self.priority = spec.priority if spec.HasField("priority") else 0
        self.scheduler_name = spec.scheduler_name
        self.labels = dict(meta.labels)
        self.cpu, self.memory, self.nonzero_cpu, self.nonzero_memory = pod_requests(spec)
        ports = []
        for container in (*spec.init_containers, *spec.containers):
            for port in container.ports:
                if port.host_port > 0:
                    ports.append(HostPort(port.host_ip or WILDCARD_IP, port.protocol or "TCP",
                                          port.host_port))
        self.host_ports = tuple(ports)
        self.tolerations = tuple(Toleration(t.key, t.operator, t.value, t.effect)
                                 for t in spec.tolerations)
        self.node_selector = dict(spec.node_selector)
        affinity = spec.affinity.node_affinity if spec.HasField("affinity") else None
        required = None
        preferred: tuple[tuple[int, Term], ...] = ()
        if affinity is not None:
            if affinity.HasField("required_during_scheduling_ignored_during_execution"):
                selector = affinity.required_during_scheduling_ignored_during_execution
                required = tuple(parse_term(t) for t in selector.node_selector_terms)
            preferred = tuple(
                (p.weight, parse_term(p.preference))
                for p in affinity.preferred_during_scheduling_ignored_during_execution
                if p.weight)
        self.required_terms: tuple[Term, ...] | None = required
        self.preferred_terms = preferred
        self.owner_uid = ""
        for ref in meta.owner_references:
            if ref.HasField("controller") and ref.controller:
                self.owner_uid = ref.uid
                break

    def __repr__(self) -> str:
        return f"<PodInfo {self.key}>"


def pod_info(pod: Any) -> PodInfo:
    return PodInfo(pod)


def is_terminal(pod: Any) -> bool:
    """Succeeded and Failed pods hold no resources on their node."""
    return pod.status.phase in TERMINAL_PHASES


def node_is_ready(node: Any) -> bool:
    for cond in node.status.conditions:
        if cond.type == "Ready":
            return cond.status == "True"
    return False


class NodeInfo:
    """A node and the pods on it (bound and assumed), with running totals.

    ``node`` is None for a node the scheduler has heard of only through pods
    bound to it (deleted, or not yet seen): such a NodeInfo keeps the
    accounting but is never offered to the plugins.
    """

    __slots__ = (
        "name", "node", "labels", "allocatable_cpu", "allocatable_memory", "allocatable_pods",
        "taints", "unschedulable", "ready", "requested_cpu", "requested_memory",
        "nonzero_cpu", "nonzero_memory", "pods", "used_ports", "used_port_numbers",
        "owner_counts", "generation",
    )

    def __init__(self, name: str, node: Any | None = None):
        self.name = name
        self.node: Any | None = None
        self.labels: dict[str, str] = {}
        self.allocatable_cpu = 0
        self.allocatable_memory = 0
        self.allocatable_pods = 0
        self.taints: tuple[Taint, ...] = ()
        self.unschedulable = False
        self.ready = False
        self.requested_cpu = 0
        self.requested_memory = 0
        self.nonzero_cpu = 0
        self.nonzero_memory = 0
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: Counter[HostPort] = Counter()
        self.used_port_numbers: Counter[tuple[str, int]] = Counter()  # (protocol, port)
        self.owner_counts: Counter[str] = Counter()
        self.generation = 0
        if node is not None:
            self.set_node(node)

    def __repr__(self) -> str:
        return f"<NodeInfo {self.name} pods={len(self.pods)}>"

    def set_node(self, node: Any) -> None:
        alloc = node.status.allocatable
        self.node = node
        self.labels = dict(node.metadata.labels)
        self.allocatable_cpu = _cpu(alloc["cpu"]) if "cpu" in alloc else 0
        self.allocatable_memory = _memory(alloc["memory"]) if "memory" in alloc else 0
        self.allocatable_pods = (_quantity(_count, alloc["pods"]) if "pods" in alloc else 0)
        self.taints = tuple(Taint(t.key, t.value, t.effect) for t in node.spec.taints)
        self.unschedulable = node.spec.unschedulable
        self.ready = node_is_ready(node)
        self.generation += 1

    def add_pod(self, info: PodInfo) -> None:
        old = self.pods.get(info.key)
        if old is not None:
            self.remove_pod(old)
        self.pods[info.key] = info
        self._account(info, 1)

    def remove_pod(self, info: PodInfo) -> bool:
        """Take the pod with ``info``'s key off the node; False if absent."""
        old = self.pods.pop(info.key, None)
        if old is None:
            return False
        self._account(old, -1)
        return True

    def _account(self, info: PodInfo, sign: int) -> None:
        self.requested_cpu += sign * info.cpu
        self.requested_memory += sign * info.memory
        self.nonzero_cpu += sign * info.nonzero_cpu
        self.nonzero_memory += sign * info.nonzero_memory
        for port in info.host_ports:
            self.used_ports[port] += sign
            self.used_port_numbers[(port.protocol, port.port)] += sign
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
            if self.used_port_numbers[(port.protocol, port.port)] <= 0:
                del self.used_port_numbers[(port.protocol, port.port)]
        if info.owner_uid:
            self.owner_counts[info.owner_uid] += sign
            if self.owner_counts[info.owner_uid] <= 0:
                del self.owner_counts[info.owner_uid]
        self.generation += 1

    def port_conflicts(self, port: HostPort) -> bool:
        """Whether ``port`` clashes with one in use: same protocol and port,
        and the same IP or either side on the wildcard 0.0.0.0."""
        if (port.protocol, port.port) not in self.used_port_numbers:
            return False
        if port.ip == WILDCARD_IP:
            return True
        return (port in self.used_ports
                or HostPort(WILDCARD_IP, port.protocol, port.port) in self.used_ports)


__all__ = [
    "DEFAULT_MEMORY_REQUEST", "DEFAULT_MILLI_CPU_REQUEST", "HostPort", "NodeInfo", "PodInfo",
    "Requirement", "Taint", "Term", "Toleration", "is_terminal", "node_is_ready", "parse_term",
    "pod_info", "pod_requests", "tolerates",
]
