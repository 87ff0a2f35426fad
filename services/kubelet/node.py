"""The kubelet's Node: registration, status and the heartbeat Lease.

Capacity is read from the host (CPUs, MemTotal, ``--max-pods``) and
allocatable is capacity minus ``--kube-reserved`` and ``--system-reserved``.
As in Kubernetes, the status is checked every 10 s (a GET of the Node, which
also notices a deleted Node: the kubelet registers it again) and written
when it changed or every ``--node-status-update-period`` (5 min); liveness
is the Lease in kube-node-lease, renewed every 10 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import platform
import shutil
import socket
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.quantity import QuantityError, format_quantity, parse_quantity
from services.kubelet.status import timestamp
from services.machinery.clock import Clock, RealClock
from services.machinery.errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.30.0-kyb"
LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_MAX_PODS = 110
MEMORY_PRESSURE_BYTES = 100 * 2**20     # memory.available<100Mi (eviction default)
DISK_PRESSURE_FRACTION = 0.10           # nodefs.available<10%
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                 "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


# -- host facts (pure parsers, thin readers) ------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as field -> bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return out


def read_meminfo() -> dict[str, int]:
    try:
        with open("/proc/meminfo") as f:
            return parse_meminfo(f.read())
    except OSError:
        return {}


def parse_reserved(text: str) -> dict[str, Fraction]:
    """``"cpu=100m,memory=256Mi"`` -> resource -> quantity. Raises ValueError."""
    out: dict[str, Fraction] = {}
    for item in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"reserved resource {item!r} is not NAME=QUANTITY")
        try:
            out[name.strip()] = parse_quantity(value.strip())
        except QuantityError as err:
            raise ValueError(str(err)) from None
    return out


def host_capacity(max_pods: int = DEFAULT_MAX_PODS,
                  meminfo: Mapping[str, int] | None = None,
                  cpus: int | None = None) -> dict[str, str]:
    meminfo = read_meminfo() if meminfo is None else meminfo
    memory = meminfo.get("MemTotal", 0)
    return {"cpu": str(cpus or os.cpu_count() or 1),
            "memory": f"{memory // 1024}Ki",
            "pods": str(max_pods)}


def allocatable(capacity: Mapping[str, str], *reserved: Mapping[str, Fraction]) -> dict[str, str]:
    """Capacity minus every reservation, never below zero."""
    out: dict[str, str] = {}
    for name, value in capacity.items():
        amount = parse_quantity(value)
        for r in reserved:
            amount -= r.get(name, Fraction(0))
        amount = max(amount, Fraction(0))
        if name == "cpu":
            out[name] = format_quantity(Fraction(int(amount * 1000), 1000))
        elif name == "memory":
            out[name] = format_quantity(Fraction(int(amount)), binary=True)
        else:
            out[name] = format_quantity(amount)
    return out


def primary_ipv4() -> str:
    """The address of the interface that routes to the outside (no packet is
    sent: connecting a UDP socket only picks the route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
            if ip and not ip.startswith("0."):
                return ip
    except OSError:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _machine_id() -> str:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip()
    except OSError:
        return ""


def architecture() -> str:
    machine = platform.machine()
    return ARCHITECTURES.get(machine, machine.lower())


def node_info(runtime_version: str) -> core.NodeSystemInfo:
    return core.NodeSystemInfo(
        machine_id=_machine_id(), kernel_version=platform.release(), os_image=_os_image(),
        container_runtime_version=runtime_version, kubelet_version=KUBELET_VERSION,
        kube_proxy_version=KUBELET_VERSION, operating_system="linux",
        architecture=architecture())


@dataclasses.dataclass(frozen=True)
class Pressure:
    memory: bool = False
    disk: bool = False
    pid: bool = False


def measure_pressure(root_dir: str) -> Pressure:
    """Eviction thresholds Kubernetes uses by default, measured now."""
    available = read_meminfo().get("MemAvailable")
    memory = available is not None and available < MEMORY_PRESSURE_BYTES
    disk = False
    path = root_dir
    while path and not os.path.exists(path):
        path = os.path.dirname(path.rstrip("/")) or "/"
        if path == "/":
            break
    try:
        usage = shutil.disk_usage(path or "/")
        disk = usage.total > 0 and usage.free / usage.total < DISK_PRESSURE_FRACTION
    except OSError:
        pass
    return Pressure(memory=memory, disk=disk)


# -- the Node object ----------------------------------------------------------------------------


@dataclasses.dataclass
class NodeConfig:
    name: str
    ip: str
    port: int = 10250
    max_pods: int = DEFAULT_MAX_PODS
    kube_reserved: str = ""
    system_reserved: str = ""
    root_dir: str = "/var/lib/kyb-kubelet"
    lease_renew_interval: float = 10.0
    lease_duration_seconds: int = 40
    status_update_period: float = 300.0
    status_check_interval: float = 10.0
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def node_labels(config: NodeConfig) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": config.name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": architecture()}
    labels.update(config.labels)
    return labels


def _cond(type_: str, status: str, reason: str, message: str) -> core.NodeCondition:
    return core.NodeCondition(type=type_, status=status, reason=reason, message=message)


def node_conditions(runtime_error: str, pressure: Pressure) -> list[core.NodeCondition]:
    conditions = [
        _cond("MemoryPressure", "True", "KubeletHasInsufficientMemory",
              "kubelet has insufficient memory available") if pressure.memory else
        _cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
              "kubelet has sufficient memory available"),
        _cond("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure")
        if pressure.disk else
        _cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        _cond("PIDPressure", "False", "KubeletHasSufficientPID",
              "kubelet has sufficient PID available"),
    ]
    if runtime_error:
        conditions.append(_cond("Ready", "False", "KubeletNotReady",
                                f"container runtime is down: {runtime_error}"))
    else:
        conditions.append(_cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
    return conditions


def build_status(config: NodeConfig, *, runtime_version: str, runtime_error: str,
                 pressure: Pressure, now: datetime.datetime, old: Any | None = None,
                 capacity: Mapping[str, str] | None = None) -> core.NodeStatus:
    """The node's status; condition transition times kept from ``old`` while
    a condition's status stays the same."""
    capacity = dict(capacity or host_capacity(config.max_pods))
    status = core.NodeStatus()
    status.capacity.update(capacity)
    status.allocatable.update(allocatable(capacity, parse_reserved(config.kube_reserved),
                                          parse_reserved(config.system_reserved)))
    previous = {c.type: c for c in old.conditions} if old is not None else {}
    for cond in node_conditions(runtime_error, pressure):
        cond.last_heartbeat_time.CopyFrom(timestamp(now))
        prev = previous.get(cond.type)
        if prev is not None and prev.status == cond.status and \
                prev.HasField("last_transition_time"):
            cond.last_transition_time.CopyFrom(prev.last_transition_time)
        else:
            cond.last_transition_time.CopyFrom(timestamp(now))
        status.conditions.append(cond)
    status.addresses.add(type="InternalIP", address=config.ip)
    status.addresses.add(type="Hostname", address=config.name)
    status.node_info.CopyFrom(node_info(runtime_version))
    status.daemon_endpoints.kubelet_endpoint.port = config.port
    return status


def without_heartbeats(status: Any) -> core.NodeStatus:
    """The status with heartbeat times cleared: what "changed" compares."""
    copy = core.NodeStatus()
    copy.CopyFrom(status)
    for cond in copy.conditions:
        cond.ClearField("last_heartbeat_time")
    return copy


class NodeManager:
    """Registers the node, keeps its status current and renews its Lease."""

    def __init__(self, client: Any, runtime: Any, config: NodeConfig, *,
                 clock: Clock | None = None, capacity: Mapping[str, str] | None = None,
                 measure: bool = True):
        self.nodes = client.resource("nodes")
        self.leases = client.resource("leases")
        self.runtime = runtime
        self.config = config
        self.clock = clock or RealClock()
        self.capacity = dict(capacity) if capacity else None
        self.measure = measure
        self.node: Any | None = None
        self.lease: Any | None = None
        self.registrations = 0
        self._last_report = 0.0
        self.runtime_error = ""
        self.runtime_version = ""

    async def _probe_runtime(self) -> None:
        try:
            self.runtime_version = await self.runtime.version()
            self.runtime_error = ""
        except Exception as err:  # noqa: BLE001 - any failure means the runtime is down
            self.runtime_error = str(err) or type(err).__name__

    def _status(self, old: Any | None) -> core.NodeStatus:
        pressure = measure_pressure(self.config.root_dir) if self.measure else Pressure()
        return build_status(self.config, runtime_version=self.runtime_version,
                            runtime_error=self.runtime_error, pressure=pressure,
                            now=self.clock.wall(), old=old, capacity=self.capacity)

    async def register(self) -> Any:
        """Create the Node, or adopt and refresh an existing one."""
        await self._probe_runtime()
        node = core.Node()
        node.metadata.name = self.config.name
        node.metadata.labels.update(node_labels(self.config))
        node.status.CopyFrom(self._status(None))
        try:
            created = await self.nodes.create(node)
            log.info("registered node", extra={"object": self.config.name})
        except AlreadyExists:
            existing = await self.nodes.get(self.config.name)
            if any(existing.metadata.labels.get(k) != v
                   for k, v in node_labels(self.config).items()):
                existing.metadata.labels.update(node_labels(self.config))
                existing = await self.nodes.update(existing)
            existing.status.CopyFrom(self._status(existing.status))
            created = await self.nodes.update_status(existing)
            log.info("node already registered; updated it", extra={"object": self.config.name})
        self.node = created
        self.lease = None  # its owner reference names the Node's UID
        self.registrations += 1
        self._last_report = self.clock.now()
        return created

    async def register_until_done(self) -> Any:
        delay = 0.2
        while True:
            try:
                return await self.register()
            except ApiError as err:
                log.warning("registering node %s failed: %s; retrying", self.config.name, err)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def sync_status(self) -> bool:
        """One status check; True when a status was written."""
        await self._probe_runtime()
        try:
            node = await self.nodes.get(self.config.name)
        except NotFound:
            log.warning("node object is gone; registering again",
                        extra={"object": self.config.name})
            await self.register()
            return True
        status = self._status(node.status)
        due = self.clock.now() - self._last_report >= self.config.status_update_period
        if not due and without_heartbeats(status) == without_heartbeats(node.status):
            self.node = node
            return False
        node.status.CopyFrom(status)
        for _ in range(3):
            try:
                self.node = await self.nodes.update_status(node)
                break
            except Conflict:
                node = await self.nodes.get(self.config.name)
                node.status.CopyFrom(self._status(node.status))
        self._last_report = self.clock.now()
        return True

    async def status_loop(self) -> None:
        interval = min(self.config.status_check_interval, self.config.status_update_period)
        while True:
            await self.clock.sleep(interval)
            try:
                await self.sync_status()
            except ApiError as err:
                log.warning("updating node status failed: %s", err,
                            extra={"object": self.config.name})

    def _new_lease(self) -> coordination.Lease:
        lease = coordination.Lease()
        lease.metadata.name = self.config.name
        lease.metadata.namespace = LEASE_NAMESPACE
        if self.node is not None and self.node.metadata.uid:
            lease.metadata.owner_references.add(api_version="v1", kind="Node",
                                                name=self.config.name, uid=self.node.metadata.uid)
        lease.spec.holder_identity = self.config.name
        lease.spec.lease_duration_seconds = self.config.lease_duration_seconds
        return lease

    async def renew_lease(self) -> Any:
        now = timestamp(self.clock.wall())
        for _ in range(3):
            if self.lease is None:
                try:
                    current = await self.leases.get(self.config.name, LEASE_NAMESPACE)
                except NotFound:
                    lease = self._new_lease()
                    lease.spec.renew_time.CopyFrom(now)
                    lease.spec.acquire_time.CopyFrom(now)
                    try:
                        self.lease = await self.leases.create(lease)
                        return self.lease
                    except AlreadyExists:
                        continue
                self.lease = current
            lease = coordination.Lease()
            lease.CopyFrom(self.lease)
            fresh = self._new_lease()
            lease.spec.holder_identity = fresh.spec.holder_identity
            lease.spec.lease_duration_seconds = fresh.spec.lease_duration_seconds
            if fresh.metadata.owner_references and \
                    list(lease.metadata.owner_references) != list(fresh.metadata.owner_references):
                del lease.metadata.owner_references[:]
                lease.metadata.owner_references.extend(fresh.metadata.owner_references)
            lease.spec.renew_time.CopyFrom(now)
            try:
                self.lease = await self.leases.update(lease)
                return self.lease
            except (Conflict, NotFound):
                self.lease = None
        raise Conflict(f"lease {LEASE_NAMESPACE}/{self.config.name} kept conflicting")

    async def lease_loop(self) -> None:
        while True:
            try:
                await self.renew_lease()
            except ApiError as err:
                log.warning("renewing lease failed: %s", err, extra={"object": self.config.name})
            await self.clock.sleep(self.config.lease_renew_interval)

    async def run(self) -> None:
        """Status and lease loops (after :meth:`register`)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.status_loop(), name=f"node-status-{self.config.name}")
            group.create_task(self.lease_loop(), name=f"node-lease-{self.config.name}")


__all__ = [
    "KUBELET_VERSION", "LEASE_NAMESPACE", "NodeConfig", "NodeManager", "Pressure", "allocatable",
    "architecture", "build_status", "host_capacity", "node_conditions", "node_info",
    "node_labels", "parse_meminfo", "parse_reserved", "primary_ipv4", "without_heartbeats",
]
