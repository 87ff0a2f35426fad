"""The endpoints controller: for every Service with a selector, an Endpoints
object of the same name listing the matching pods' IPs and ports.

As Kubernetes' pkg/controller/endpoint: ready pods are ``addresses``, pods
that are not Ready are ``notReadyAddresses``; pods without an IP, terminating
pods and finished pods are left out; a named ``targetPort`` is resolved per
pod (so pods may serve one service port on different container ports), and
addresses are grouped into subsets by the exact set of ports they serve
(RepackSubsets). Services without a selector are someone else's to fill in:
their Endpoints are never touched. The Endpoints object goes with its
Service. A write happens only when the computed object differs from the
cached one, so resyncs and the controller's own echoes cost nothing.

The computation is the pure :func:`desired_endpoints`; the controller only
feeds it cached state and writes the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.podcontrol import (
    reconcile_loop,
    ensure_indexers, is_pod_ready,
)
from services.machinery import (
    AlreadyExists, Client, Clock, NotFound, PreconditionFailed, RealClock, SharedInformerFactory,
    WorkQueue, )
from services.machinery.store import (
    NAMESPACE_INDEX, DeletedFinalStateUnknown, namespace_index, object_key, split_key,
)

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"


# --- the pure part ----------------------------------------------------------------------


def should_pod_be_in_endpoints(pod: core.Pod) -> bool:
    """Pods that can take traffic at all: they have an IP, are not being
    deleted and have not finished."""
    return (bool(pod.status.pod_ip) and not pod.metadata.HasField("deletion_timestamp")
            and pod.status.phase not in ("Succeeded", "Failed"))


def selector_matches(selector: Any, labels: Any) -> bool:
    """A Service selector (a plain map) matches when every pair is present."""
    return all(labels.get(k) == v for k, v in selector.items())


def find_port(pod: core.Pod, port: core.ServicePort) -> int | None:
    """The container port a service port's targetPort means on this pod
    (podutil.FindPort): a number is taken as is; a name is looked up among
    the pod's container ports with the same protocol; None if absent."""
    target = port.target_port
    which = target.WhichOneof("value")
    if which == "str_value" and target.str_value:
        protocol = port.protocol or "TCP"
        for container in pod.spec.containers:
            for cport in container.ports:
                if cport.name == target.str_value and (cport.protocol or "TCP") == protocol:
                    return cport.container_port
        return None
    if which == "int_value" and target.int_value:
        return target.int_value
    return port.port  # unset targetPort defaults to the service port


def endpoint_address(service: core.Service, pod: core.Pod) -> core.EndpointAddress:
    addr = core.EndpointAddress(ip=pod.status.pod_ip)
    if pod.spec.node_name:
        addr.node_name = pod.spec.node_name
    addr.target_ref.CopyFrom(meta_pb2.ObjectReference(
        kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name,
        uid=pod.metadata.uid))
    if (pod.spec.hostname and pod.spec.subdomain == service.metadata.name
            and pod.metadata.namespace == service.metadata.namespace):
        addr.hostname = pod.spec.hostname
    return addr


def _port_key(port: core.EndpointPort) -> tuple[str, int, str]:
    return (port.name, port.port, port.protocol)


def _address_key(addr: core.EndpointAddress) -> tuple[tuple[int, ...], str, str]:
    try:
        ip = tuple(int(part) for part in addr.ip.split("."))
    except ValueError:
        ip = ()
    return (ip, addr.ip, addr.target_ref.uid)


def repack_subsets(entries: Iterable[tuple[core.EndpointAddress, bool,
                                           tuple[core.EndpointPort, ...]]]
                   ) -> list[core.EndpointSubset]:
    """Group (address, ready, ports) entries into subsets, one per distinct
    set of ports, as Kubernetes' RepackSubsets does; everything sorted so
    the result is stable and comparisons detect real changes only."""
    ports_of: dict[tuple, set[tuple[str, int, str]]] = {}
    addrs: dict[tuple, tuple[core.EndpointAddress, bool]] = {}
    for addr, ready, ports in entries:
        key = _address_key(addr)
        addrs.setdefault(key, (addr, ready))
        ports_of.setdefault(key, set()).update(_port_key(p) for p in ports)
    groups: dict[tuple[tuple[str, int, str], ...], list[tuple]] = {}
    for key, ports in ports_of.items():
        groups.setdefault(tuple(sorted(ports, key=lambda p: (p[1], p[2], p[0]))), []).append(key)
    subsets = []
    for ports, keys in sorted(groups.items(), key=lambda item: (min(item[1]), item[0])):
        subset = core.EndpointSubset()
        for key in sorted(keys):
            addr, ready = addrs[key]
            (subset.addresses if ready else subset.not_ready_addresses).append(addr)
        for name, number, protocol in ports:
            subset.ports.add(name=name, port=number, protocol=protocol)
        subsets.append(subset)
    return subsets


def desired_endpoints(service: core.Service, pods: Iterable[core.Pod]) -> core.Endpoints:
    """The Endpoints object ``service`` should have, given candidate
    ``pods`` (any pods; those of other namespaces or not matching the
    selector are ignored). Labels are the service's, plus the headless
    marker for a headless service, as Kubernetes sets them."""
    meta = service.metadata
    ep = core.Endpoints()
    ep.metadata.name, ep.metadata.namespace = meta.name, meta.namespace
    ep.metadata.labels.update(meta.labels)
    headless = service.spec.cluster_ip == "None"
    if headless:
        ep.metadata.labels[HEADLESS_LABEL] = ""
    selector = service.spec.selector
    if not selector:
        return ep
    entries = []
    for pod in pods:
        if pod.metadata.namespace != meta.namespace or not selector_matches(
                selector, pod.metadata.labels) or not should_pod_be_in_endpoints(pod):
            continue
        addr = endpoint_address(service, pod)
        ready = is_pod_ready(pod)
        if not service.spec.ports:
            if headless:  # a headless service may have addresses without ports
                entries.append((addr, ready, ()))
            continue
        for sport in service.spec.ports:
            number = find_port(pod, sport)
            if number is None:
                log.debug("service %s/%s: pod %s has no port %r", meta.namespace, meta.name,
                          pod.metadata.name, sport.target_port.str_value)
                continue
            entries.append((addr, ready, (core.EndpointPort(
                name=sport.name, port=number, protocol=sport.protocol or "TCP"),)))
    ep.subsets.extend(repack_subsets(entries))
    return ep


def endpoints_equal(current: core.Endpoints, desired: core.Endpoints) -> bool:
    """Whether writing ``desired`` over ``current`` would change anything
    this controller owns (subsets and labels)."""
    return (list(current.subsets) == list(desired.subsets)
            and dict(current.metadata.labels) == dict(desired.metadata.labels))


# --- the controller -----------------------------------------------------------------------


class EndpointsController:
    """Keeps each selector Service's Endpoints in step with its pods."""

    NAME = "endpoints"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.endpoints_api = client.resource("endpoints")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.services = factory.informer("services")
        self.pods = factory.informer("pods")
        self.endpoints = factory.informer("endpoints")
        ensure_indexers(self.services.store, {NAMESPACE_INDEX: namespace_index})
        ensure_indexers(self.pods.store, {NAMESPACE_INDEX: namespace_index})
        self.services.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                        self._enqueue)
        self.pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_added)
        # Endpoints changed or removed behind our back are put right; those
        # left over from a deleted Service are removed. An add matters too:
        # a sync that lost a create race (AlreadyExists) waits for it.
        self.endpoints.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new),
                                         self._enqueue)

    # -- handlers: keys only --------------------------------------------------------------

    def _enqueue(self, obj: Any) -> None:
        self.queue.add(object_key(obj))

    def _services_for(self, namespace: str, labels: Any) -> list[str]:
        return [object_key(svc) for svc in self.services.store.by_index(NAMESPACE_INDEX, namespace)
                if svc.spec.selector and selector_matches(svc.spec.selector, labels)]

    def _pod_added(self, pod: Any) -> None:
        if isinstance(pod, DeletedFinalStateUnknown):
            pod = pod.obj  # a tombstone carries the last state seen
        for key in self._services_for(pod.metadata.namespace, pod.metadata.labels):
            self.queue.add(key)

    def _pod_updated(self, old: Any, new: Any) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a resync: nothing moved
        keys = set(self._services_for(new.metadata.namespace, new.metadata.labels))
        if old.metadata.labels != new.metadata.labels:
            keys.update(self._services_for(old.metadata.namespace, old.metadata.labels))
        for key in keys:
            self.queue.add(key)

    # -- running --------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        """Wait for the caches, then reconcile until cancelled."""
        self.factory.start()
        for informer in (self.services, self.pods, self.endpoints):
            await informer.wait_for_sync()
        log.info("%s controller: caches synced; %d workers", self.NAME, workers)
        await reconcile_loop(self.NAME, self.queue, self.sync, workers)

    async def sync(self, key: str) -> None:
        """Make the Endpoints ``key`` what its Service and pods say."""
        namespace, name = split_key(key)
        service = self.services.store.get_by_key(key)
        current = self.endpoints.store.get_by_key(key)
        if service is None:
            if current is not None:
                try:
                    await self.endpoints_api.delete(name, namespace, uid=current.metadata.uid)
                    log.info("deleted endpoints of a removed service", extra={"object": key})
                except (NotFound, PreconditionFailed):
                    pass  # gone, or replaced: the informer brings any new one back here
            return
        if not service.spec.selector:
            return  # a selectorless service's Endpoints belong to its user
        desired = desired_endpoints(
            service, self.pods.store.by_index(NAMESPACE_INDEX, namespace))
        if current is None:
            try:
                await self.endpoints_api.create(desired)
            except AlreadyExists:
                # Our cache is behind; the informer's add will bring us back.
                return
            log.debug("created endpoints", extra={"object": key})
            return
        if endpoints_equal(current, desired):
            return
        updated = core.Endpoints()
        updated.CopyFrom(current)
        del updated.subsets[:]
        updated.subsets.extend(desired.subsets)
        updated.metadata.labels.clear()
        updated.metadata.labels.update(desired.metadata.labels)
        await self.endpoints_api.update(updated)  # a Conflict is retried with backoff
        log.debug("updated endpoints", extra={"object": key})


__all__ = [
    "EndpointsController", "desired_endpoints", "endpoints_equal", "find_port",
    "repack_subsets", "should_pod_be_in_endpoints",
]
