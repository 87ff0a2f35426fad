"""Node IPAM: every node gets its own pod CIDR from the cluster CIDR.

As Kubernetes' range allocator (pkg/controller/nodeipam/ipam): the cluster
CIDR (default 10.244.0.0/16) is cut into subnets of ``node_cidr_mask_size``
(/24); each node without ``spec.podCIDR`` gets the next free one, written to
``spec.podCIDR`` and ``spec.podCIDRs`` (both may be set once, never
changed). On start the allocation set is rebuilt from the nodes that already
have one, before any new allocation, so a restarted or newly elected
controller never hands out a CIDR that is in use. A deleted node's CIDR is
released. When the range is exhausted the node gets a ``CIDRNotAvailable``
Warning event and is retried later.

:class:`CidrAllocator` is the pure bitmap; the controller keeps it in step
with the node cache.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.podcontrol import reconcile_loop
from services.machinery import (
    ApiError, Client, Clock, Conflict, NotFound, RealClock, SharedInformerFactory, WorkQueue,
    )
from services.machinery.store import object_key

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_NODE_CIDR_MASK_SIZE = 24
MAX_SUBNET_BITS = 16  # Kubernetes refuses a cluster/node mask difference above 16


class CidrExhausted(Exception):
    """Every subnet of the cluster CIDR is allocated."""


class CidrAllocator:
    """Hands out the ``/mask_size`` subnets of ``cluster_cidr``.

    Like Kubernetes' cidrset, allocation goes round from just after the last
    subnet handed out, so a subnet released a moment ago is not reused at
    once while others are free (routes to it may still be in flight).
    """

    def __init__(self, cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                 mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE):
        try:
            self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        except ValueError as err:
            raise ValueError(f"invalid cluster CIDR {cluster_cidr!r}: {err}") from None
        if not self.network.prefixlen <= mask_size <= self.network.max_prefixlen:
            raise ValueError(f"node CIDR mask size /{mask_size} must lie between the cluster "
                             f"CIDR's /{self.network.prefixlen} and "
                             f"/{self.network.max_prefixlen}")
        if mask_size - self.network.prefixlen > MAX_SUBNET_BITS:
            raise ValueError(f"node CIDR mask size /{mask_size} is more than {MAX_SUBNET_BITS} "
                             f"bits longer than the cluster CIDR's /{self.network.prefixlen}")
        self.mask_size = mask_size
        self.size = 2 ** (mask_size - self.network.prefixlen)
        self._step = 2 ** (self.network.max_prefixlen - mask_size)
        self._base = int(self.network.network_address)
        self._used: set[int] = set()
        self._next = 0

    def __repr__(self) -> str:
        return f"<CidrAllocator {self.network} /{self.mask_size}: {len(self._used)}/{self.size}>"

    @property
    def used(self) -> int:
        return len(self._used)

    def subnet(self, index: int) -> str:
        address = ipaddress.ip_address(self._base + index * self._step)
        return f"{address}/{self.mask_size}"

    def _indices(self, cidr: str) -> range | None:
        """The subnet indices ``cidr`` covers; None if outside the cluster CIDR."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or not net.subnet_of(self.network):
            return None
        first = (int(net.network_address) - self._base) // self._step
        last = (int(net.broadcast_address) - self._base) // self._step
        return range(first, last + 1)

    def occupy(self, cidr: str) -> bool:
        """Mark ``cidr`` (and every subnet it overlaps) used; False if it is
        not inside the cluster CIDR (nothing to track)."""
        indices = self._indices(cidr)
        if indices is None:
            return False
        self._used.update(indices)
        return True

    def is_allocated(self, cidr: str) -> bool:
        indices = self._indices(cidr)
        return indices is not None and all(i in self._used for i in indices)

    def allocate(self) -> str:
        """The next free subnet, now marked used."""
        for offset in range(self.size):
            index = (self._next + offset) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self.subnet(index)
        raise CidrExhausted(f"no free /{self.mask_size} left in cluster CIDR {self.network}")

    def release(self, cidr: str) -> None:
        """Mark ``cidr`` free again (unknown or outside CIDRs are ignored)."""
        indices = self._indices(cidr)
        if indices is not None:
            self._used.difference_update(indices)


def cidr_event(node: core.Node, now: Any) -> core.Event:
    """The Warning event Kubernetes records on a node it cannot give a CIDR
    (RecordNodeStatusChange(..., "CIDRNotAvailable")); node events live in
    the default namespace."""
    name = node.metadata.name
    ev = core.Event()
    ev.metadata.name = f"{name}.{uuid.uuid4().hex[:16]}"
    ev.metadata.namespace = "default"
    ev.involved_object.kind = "Node"
    ev.involved_object.name = name
    ev.involved_object.uid = node.metadata.uid
    ev.involved_object.api_version = "v1"
    ev.reason = "CIDRNotAvailable"
    ev.message = f"Node {name} status is now: CIDRNotAvailable"
    ev.type = "Warning"
    ev.source.component = "cidrAllocator"
    ev.reporting_component = "kube-controller-manager"
    ev.first_timestamp.FromDatetime(now)
    ev.last_timestamp.FromDatetime(now)
    ev.count = 1
    return ev


class NodeIpamController:
    """Assigns and releases node pod CIDRs."""

    NAME = "nodeipam"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                 node_cidr_mask_size: int = DEFAULT_NODE_CIDR_MASK_SIZE,
                 cidr_exhausted_retry: float = 10.0, **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.allocator = CidrAllocator(cluster_cidr, node_cidr_mask_size)
        self.exhausted_retry = cidr_exhausted_retry
        self.nodes_api = client.resource("nodes")
        self.events_api = client.resource("events")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.nodes = factory.informer("nodes")
        self.nodes.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                     self._enqueue)
        # node name -> the CIDR this controller accounts to it (written or
        # about to be); the only state besides the cache, owned by sync.
        self._assigned: dict[str, str] = {}
        self._reported: set[str] = set()  # nodes told about exhaustion already

    def _enqueue(self, obj: Any) -> None:
        self.queue.add(object_key(obj))

    async def run(self, workers: int) -> None:
        """Wait for the node cache, rebuild the allocations, then reconcile."""
        self.factory.start()
        await self.nodes.wait_for_sync()
        self.rebuild()
        log.info("%s controller: %d pod CIDRs in use in %s", self.NAME, self.allocator.used,
                 self.allocator.network)
        await reconcile_loop(self.NAME, self.queue, self.sync, workers)

    def rebuild(self) -> None:
        """Occupy every CIDR the cached nodes already hold."""
        for node in self.nodes.store.list():
            if node.spec.pod_cidr:
                self._account(node.metadata.name, node.spec.pod_cidr)

    def _account(self, name: str, cidr: str) -> None:
        previous = self._assigned.get(name)
        if previous == cidr:
            return
        if previous is not None:
            self.allocator.release(previous)
        if not self.allocator.occupy(cidr):
            log.warning("node %s has pod CIDR %s outside the cluster CIDR %s", name, cidr,
                        self.allocator.network)
        self._assigned[name] = cidr

    async def sync(self, name: str) -> None:
        node = self.nodes.store.get_by_key(name)
        if node is None:
            self._release(name)
            return
        if node.spec.pod_cidr:
            self._account(name, node.spec.pod_cidr)
            self._reported.discard(name)
            return
        cidr = self._assigned.get(name)
        if cidr is None:
            try:
                cidr = self.allocator.allocate()
            except CidrExhausted as err:
                await self._report_exhausted(node, err)
                self.queue.add_after(name, self.exhausted_retry)
                return
            self._assigned[name] = cidr
        await self._write(node, cidr)

    def _release(self, name: str) -> None:
        self._reported.discard(name)
        cidr = self._assigned.pop(name, None)
        if cidr is None:
            return
        self.allocator.release(cidr)
        log.info("released pod CIDR %s of deleted node", cidr, extra={"object": name})
        for other in self.nodes.store.list():  # someone may be waiting for a free CIDR
            if not other.spec.pod_cidr:
                self.queue.add(object_key(other))

    async def _write(self, node: core.Node, cidr: str) -> None:
        name = node.metadata.name
        current = node
        for attempt in range(3):
            if current.spec.pod_cidr:  # someone else set it: take theirs
                self._account(name, current.spec.pod_cidr)
                return
            updated = core.Node()
            updated.CopyFrom(current)
            updated.spec.pod_cidr = cidr
            del updated.spec.pod_cidrs[:]
            updated.spec.pod_cidrs.append(cidr)
            try:
                await self.nodes_api.update(updated)
            except NotFound:
                self._release(name)
                return
            except Conflict:
                if attempt == 2:
                    raise
                try:
                    current = await self.nodes_api.get(name)
                except NotFound:
                    self._release(name)
                    return
                continue
            self._reported.discard(name)
            log.info("assigned pod CIDR %s", cidr, extra={"object": name})
            return

    async def _report_exhausted(self, node: core.Node, err: CidrExhausted) -> None:
        name = node.metadata.name
        if name in self._reported:
            return
        log.warning("cannot assign a pod CIDR: %s", err, extra={"object": name})
        try:
            await self.events_api.create(cidr_event(node, self.clock.wall()))
        except ApiError as event_err:
            log.warning("could not record CIDRNotAvailable event: %s", event_err,
                        extra={"object": name})
            return
        self._reported.add(name)


__all__ = [
    "CidrAllocator", "CidrExhausted", "DEFAULT_CLUSTER_CIDR", "DEFAULT_NODE_CIDR_MASK_SIZE",
    "NodeIpamController", "cidr_event",
]
