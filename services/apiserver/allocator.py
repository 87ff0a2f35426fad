"""ClusterIP and NodePort allocation, safe across API server replicas.

An allocation is an etcd key (``/registry/ranges/serviceips/10.96.0.7``)
created in the same transaction as the Service that holds it, and deleted in
the same transaction that deletes or changes the Service. etcd's compare on
create_revision == 0 is the only lock, so two replicas (or two concurrent
requests) can never hand out one address twice, and nothing leaks when a
write fails. Candidates are picked at random (cheap while the range is
sparse); when several picks collide the taken set is read and a free one
chosen, and a full range is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import ipaddress
import random

IP_PREFIX = b"/registry/ranges/serviceips/"
PORT_PREFIX = b"/registry/ranges/servicenodeports/"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORTS = (30000, 32767)


def ip_key(ip: str) -> bytes:
    return IP_PREFIX + ip.encode()


def port_key(port: int) -> bytes:
    return PORT_PREFIX + str(port).encode()


class ServiceIPRange:
    """The service CIDR: hands out host addresses, never the network, the
    broadcast, or the first address (reserved, as Kubernetes reserves it for
    the ``kubernetes`` service)."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR):
        self.network = ipaddress.ip_network(cidr, strict=False)
        if self.network.version != 4 or self.network.num_addresses < 8:
            raise ValueError(f"service CIDR {cidr} must be IPv4 and hold at least 8 addresses")
        self.first = int(self.network.network_address) + 2
        self.last = int(self.network.broadcast_address) - 1

    def contains(self, ip: str) -> bool:
        try:
            value = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return self.first - 1 <= value <= self.last

    def pick(self, rng: random.Random) -> str:
        return str(ipaddress.IPv4Address(rng.randint(self.first, self.last)))

    def free(self, taken: set[str]) -> list[str]:
        """Every free address (only used once random picks keep colliding)."""
        out = []
        for value in range(self.first, self.last + 1):
            ip = str(ipaddress.IPv4Address(value))
            if ip not in taken:
                out.append(ip)
        return out

    def __str__(self) -> str:
        return str(self.network)


class NodePortRange:
    def __init__(self, low: int = DEFAULT_NODE_PORTS[0], high: int = DEFAULT_NODE_PORTS[1]):
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"node port range {low}-{high} is not valid")
        self.low, self.high = low, high

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high

    def pick(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def free(self, taken: set[int]) -> list[int]:
        return [p for p in range(self.low, self.high + 1) if p not in taken]

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"


def parse_port_range(text: str) -> NodePortRange:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise ValueError(f"node port range {text!r} is not LOW-HIGH")
    return NodePortRange(int(low), int(high))
