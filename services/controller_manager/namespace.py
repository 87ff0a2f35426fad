"""The namespace controller: a namespace being deleted is emptied, then let go.

As Kubernetes' pkg/controller/namespace: a namespace with a
deletionTimestamp is marked phase Terminating, every object of every
namespaced kind in it is deleted (pods with their default grace period, so
kubelets stop them cleanly), the controller waits until nothing is left,
then removes the ``kubernetes`` finalizer from ``spec.finalizers``, and the
API server removes the namespace. Content is listed live rather than from informers, as Kubernetes
does, so the controller needs no cache of every kind to do its job.

The API server runs an equivalent loop of its own (``_finalize_namespaces``);
both are idempotent, so both may run: every delete and update here
tolerates NotFound, and a Conflict just means "look again".
"""

from __future__ import annotations

import logging
from typing import Any

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.podcontrol import reconcile_loop
from services.machinery import (
    Client, Clock, Conflict, NotFound, PreconditionFailed, RealClock, SharedInformerFactory,
    WorkQueue, )
from services.machinery.store import object_key

log = logging.getLogger(__name__)

NAMESPACE_FINALIZER = "kubernetes"


def content_to_delete(objects: list[Any]) -> list[Any]:
    """The objects that still need a Delete call (those not already going)."""
    return [o for o in objects if not o.metadata.HasField("deletion_timestamp")]


def without_finalizer(ns: core.Namespace) -> core.Namespace | None:
    """``ns`` with the namespace finalizer removed, or None if it has none."""
    if NAMESPACE_FINALIZER not in ns.spec.finalizers:
        return None
    updated = core.Namespace()
    updated.CopyFrom(ns)
    updated.spec.finalizers.remove(NAMESPACE_FINALIZER)
    return updated


class NamespaceController:
    """Empties terminating namespaces and releases their finalizer."""

    NAME = "namespace"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, namespace_sync_period: float = 1.0,
                 **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.recheck = namespace_sync_period
        self.namespaces_api = client.resource("namespaces")
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        self.namespaces = factory.informer("namespaces")
        self.namespaces.add_event_handler(self._enqueue, lambda old, new: self._enqueue(new))

    def _enqueue(self, obj: Any) -> None:
        if obj.metadata.HasField("deletion_timestamp"):
            self.queue.add(object_key(obj))

    async def run(self, workers: int) -> None:
        self.factory.start()
        await self.namespaces.wait_for_sync()
        log.info("%s controller: cache synced; %d workers", self.NAME, workers)
        await reconcile_loop(self.NAME, self.queue, self.sync, workers)

    async def sync(self, name: str) -> None:
        ns = self.namespaces.store.get_by_key(name)
        if ns is None or not ns.metadata.HasField("deletion_timestamp"):
            return
        await self.mark_terminating(ns)
        remaining = await self.delete_content(name)
        if remaining:
            log.debug("namespace still has %d objects", remaining, extra={"object": name})
            self.queue.add_after(name, self.recheck)
            return
        await self.finalize(name)

    async def mark_terminating(self, ns: core.Namespace) -> None:
        """Phase Terminating, as Kubernetes' namespace deleter sets it first."""
        if ns.status.phase == "Terminating":
            return
        updated = core.Namespace()
        updated.CopyFrom(ns)
        updated.status.phase = "Terminating"
        try:
            await self.namespaces_api.update_status(updated)
        except (NotFound, Conflict):
            pass  # gone, or changed: the update brings it back to us

    async def delete_content(self, namespace: str) -> int:
        """Delete everything in ``namespace``; how many objects remain."""
        remaining = 0
        for kind in kinds.KINDS:
            if not kind.namespaced:
                continue
            api = self.client.resource(kind)
            objects = list((await api.list_all(namespace)).items)
            remaining += len(objects)
            for obj in content_to_delete(objects):
                try:
                    await api.delete(obj.metadata.name, namespace, uid=obj.metadata.uid)
                except (NotFound, PreconditionFailed):
                    pass  # gone already, or a new object of that name: the next look sees it
                except Conflict:
                    pass  # changed under us: the next look deletes it
        return remaining

    async def finalize(self, name: str) -> None:
        for _ in range(3):
            try:
                current = await self.namespaces_api.get(name)
            except NotFound:
                return
            updated = without_finalizer(current)
            if updated is None:
                return
            try:
                await self.namespaces_api.update(updated)
            except NotFound:
                return
            except Conflict:
                continue
            log.info("namespace is empty; finalizer removed", extra={"object": name})
            return
        self.queue.add_after(name, self.recheck)


__all__ = ["NAMESPACE_FINALIZER", "NamespaceController", "content_to_delete",
           "without_finalizer"]
