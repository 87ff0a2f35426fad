"""Services: ClusterIP and NodePort allocation (see allocator.py)."""

from __future__ import annotations

import random
from typing import Any

from google.protobuf.message import Message

from services.apiserver import allocator, errors
from services.apiserver.strategies.base import Allocation, Strategy

_RANDOM_PICKS = 6


def _node_ports(svc: Message | None) -> set[int]:
    if svc is None or svc.spec.type != "NodePort":
        return set()
    return {p.node_port for p in svc.spec.ports if p.node_port}


class ServiceStrategy(Strategy):
    def __init__(self, kind, *, ip_range: allocator.ServiceIPRange | None = None,
                 port_range: allocator.NodePortRange | None = None, **options: Any):
        super().__init__(kind, **options)
        self.ips = ip_range or allocator.ServiceIPRange()
        self.ports = port_range or allocator.NodePortRange()
        self.rng = random.Random()

    def prepare_create(self, obj: Message) -> None:
        super().prepare_create(obj)
        if obj.spec.type != "NodePort":
            for port in obj.spec.ports:
                port.node_port = 0

    def prepare_update(self, new: Message, old: Message) -> None:
        super().prepare_update(new, old)
        if not new.spec.cluster_ip:
            new.spec.cluster_ip = old.spec.cluster_ip
            del new.spec.cluster_ips[:]
            new.spec.cluster_ips.extend(old.spec.cluster_ips)
        if new.spec.type == "NodePort":
            # A port kept without a nodePort keeps the one it had.
            had = {(p.port, p.protocol): p.node_port for p in old.spec.ports
                   if old.spec.type == "NodePort"}
            for port in new.spec.ports:
                if not port.node_port:
                    port.node_port = had.get((port.port, port.protocol), 0)
        else:
            for port in new.spec.ports:
                port.node_port = 0

    async def _taken(self, storage: Any, prefix: bytes) -> set[str]:
        taken, start = set(), None
        while True:
            kvs, more, _, _ = await storage.range(prefix, start=start, limit=5000,
                                                  kind="Service")
            taken.update(kv.key[len(prefix):].decode() for kv in kvs)
            if not more:
                return taken
            start = kvs[-1].key + b"\x00"

    async def _pick_ip(self, attempt: int, storage: Any) -> str:
        if attempt < _RANDOM_PICKS:
            return self.ips.pick(self.rng)
        free = self.ips.free(await self._taken(storage, allocator.IP_PREFIX))
        if not free:
            raise errors.too_large(f"no ClusterIP left in the service CIDR {self.ips}")
        return self.rng.choice(free)

    async def _pick_port(self, attempt: int, storage: Any, avoid: set[int]) -> int:
        if attempt < _RANDOM_PICKS:
            for _ in range(64):
                port = self.ports.pick(self.rng)
                if port not in avoid:
                    return port
        taken = {int(p) for p in await self._taken(storage, allocator.PORT_PREFIX)}
        free = [p for p in self.ports.free(taken) if p not in avoid]
        if not free:
            raise errors.too_large(f"no NodePort left in the range {self.ports}")
        return self.rng.choice(free)

    async def allocate(self, new: Message, old: Message | None, attempt: int,
                       storage: Any) -> Allocation:
        alloc = Allocation()
        owner = f"{new.metadata.namespace}/{new.metadata.name}".encode()
        if old is None and new.spec.cluster_ip != "None":
            ip = new.spec.cluster_ip
            if not ip:
                ip = await self._pick_ip(attempt, storage)
                alloc.auto.add(allocator.ip_key(ip))
            elif not self.ips.contains(ip):
                raise errors.invalid("Service", new.metadata.name, [
                    f'spec.clusterIP: Invalid value: "{ip}": provided IP is not in the valid '
                    f"range. The range of valid IPs is {self.ips}"])
            new.spec.cluster_ip = ip
            del new.spec.cluster_ips[:]
            new.spec.cluster_ips.append(ip)
            alloc.create.append((allocator.ip_key(ip), owner))
        before = _node_ports(old)
        chosen: set[int] = set()
        if new.spec.type == "NodePort":
            for port in new.spec.ports:
                if not port.node_port:
                    port.node_port = await self._pick_port(attempt, storage,
                                                           avoid=chosen | before)
                    alloc.auto.add(allocator.port_key(port.node_port))
                elif not self.ports.contains(port.node_port):
                    raise errors.invalid("Service", new.metadata.name, [
                        f"spec.ports.nodePort: Invalid value: {port.node_port}: provided port "
                        f"is not in the valid range. The range of valid ports is {self.ports}"])
                elif port.node_port in chosen:
                    raise errors.invalid("Service", new.metadata.name, [
                        f"spec.ports.nodePort: Duplicate value: {port.node_port}"])
                chosen.add(port.node_port)
        alloc.create += [(allocator.port_key(p), owner) for p in sorted(chosen - before)]
        alloc.delete += [allocator.port_key(p) for p in sorted(before - chosen)]
        return alloc

    def release(self, obj: Message) -> list[bytes]:
        keys = [allocator.port_key(p) for p in sorted(_node_ports(obj))]
        if obj.spec.cluster_ip and obj.spec.cluster_ip != "None":
            keys.append(allocator.ip_key(obj.spec.cluster_ip))
        return keys

    @staticmethod
    def describe_taken(key: bytes) -> str:
        """The user-facing message for an allocation someone else holds."""
        if key.startswith(allocator.IP_PREFIX):
            ip = key[len(allocator.IP_PREFIX):].decode()
            return f'spec.clusterIP: Invalid value: "{ip}": provided IP is already allocated'
        port = key[len(allocator.PORT_PREFIX):].decode()
        return f"spec.ports.nodePort: Invalid value: {port}: provided port is already allocated"
