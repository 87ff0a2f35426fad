"""The garbage collector: dependents go with their owners.

As Kubernetes' pkg/controller/garbagecollector, over every kind (an
informer each, indexed by owner UID):

* Background: an object all of whose ``ownerReferences`` point to owners
  that no longer exist (by UID) is deleted. "No longer exists" is never
  taken from the cache alone: informers of different kinds lag
  independently, so a dependent can arrive before its owner; an owner
  missing from the cache is confirmed absent with a live GET (and the UIDs
  confirmed absent are remembered, since a UID never comes back). An object
  with at least one live owner keeps living, but loses its references to
  absent owners and to owners waiting for their dependents' deletion.
* Foreground: an owner being deleted with the ``foregroundDeletion``
  finalizer has its dependents deleted first (a dependent that has
  dependents of its own is deleted in the foreground too, so the whole
  chain goes bottom-up); once no dependent with ``blockOwnerDeletion``
  remains, the finalizer is removed and the API server lets the owner go.
* Orphan: an owner being deleted with the ``orphan`` finalizer has its
  references removed from every dependent, then the finalizer.

The decisions are the pure :func:`decide_dependent` and
:func:`plan_for_deleting_owner`; the controller resolves owners, then
writes what they say.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from services.api import kinds
from services.controller_manager.podcontrol import RECONCILE_DURATION, ensure_indexers
from services.machinery import (
    Client, Clock, Conflict, NotFound, PreconditionFailed, RealClock, SharedInformerFactory,
    WorkQueue, run_workers,
)
from services.machinery.store import DeletedFinalStateUnknown, object_key

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
OWNER_UID_INDEX = "gc-owner-uid"

EXISTS, ABSENT, WAITING = "exists", "absent", "waiting"
_ABSENT_CACHE_SIZE = 1000
_WRITE_ATTEMPTS = 5


# --- the pure part -----------------------------------------------------------------------


def owner_uid_index(obj: Any) -> list[str]:
    """Index objects by the UIDs of their owners."""
    return [ref.uid for ref in obj.metadata.owner_references if ref.uid]


def is_deleting(obj: Any) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


def owner_state(owner: Any | None, uid: str) -> str:
    """What a reference to ``uid`` finds in ``owner`` (the object of the
    referenced kind and name, or None): ABSENT if missing or another
    incarnation, WAITING if it is being deleted in the foreground, else EXISTS."""
    if owner is None or owner.metadata.uid != uid:
        return ABSENT
    if is_deleting(owner) and FOREGROUND in owner.metadata.finalizers:
        return WAITING
    return EXISTS


@dataclasses.dataclass(frozen=True)
class Action:
    """What to do with a dependent: nothing, drop some owner references
    (``uids``), or delete it with ``policy``."""

    kind: str  # "none", "remove_refs" or "delete"
    uids: tuple[str, ...] = ()
    policy: str = ""


NOTHING = Action("none")


def decide_dependent(obj: Any, states: Mapping[str, str], has_dependents: bool) -> Action:
    """attemptToDeleteItem's decision for ``obj`` given each owner UID's
    state (UIDs missing from ``states`` count as existing: an owner of a
    kind nobody can look up is never assumed gone)."""
    refs = obj.metadata.owner_references
    if not refs or is_deleting(obj):
        return NOTHING
    solid = [r.uid for r in refs if states.get(r.uid, EXISTS) == EXISTS]
    dangling = [r.uid for r in refs if states.get(r.uid) == ABSENT]
    waiting = [r.uid for r in refs if states.get(r.uid) == WAITING]
    if solid:
        if dangling or waiting:
            return Action("remove_refs", tuple(dangling + waiting))
        return NOTHING
    if waiting and has_dependents:
        return Action("delete", policy="Foreground")  # the chain goes bottom-up
    finalizers = obj.metadata.finalizers
    if ORPHAN in finalizers:
        return Action("delete", policy="Orphan")
    if FOREGROUND in finalizers:
        return Action("delete", policy="Foreground")
    return Action("delete", policy="Background")


@dataclasses.dataclass(frozen=True)
class OwnerPlan:
    """What to do for an owner being deleted: strip its references from
    ``orphan`` dependents, look at ``dependents`` again (they are to be
    deleted), and/or drop ``drop_finalizer``."""

    orphan: tuple[Any, ...] = ()
    dependents: tuple[Any, ...] = ()
    drop_finalizer: str = ""


def blocks(dependent: Any, owner_uid: str) -> bool:
    """Whether ``dependent`` holds up its owner's foreground deletion."""
    return any(r.uid == owner_uid and r.block_owner_deletion
               for r in dependent.metadata.owner_references)


def plan_for_deleting_owner(owner: Any, dependents: Iterable[Any]) -> OwnerPlan:
    """What the ``orphan`` / ``foregroundDeletion`` finalizers of a deleting
    ``owner`` call for, given its current dependents."""
    if not is_deleting(owner):
        return OwnerPlan()
    dependents = tuple(dependents)
    finalizers = owner.metadata.finalizers
    if ORPHAN in finalizers:
        return OwnerPlan(orphan=dependents, drop_finalizer=ORPHAN)
    if FOREGROUND in finalizers:
        uid = owner.metadata.uid
        if any(blocks(d, uid) for d in dependents):
            return OwnerPlan(dependents=dependents)
        return OwnerPlan(dependents=dependents, drop_finalizer=FOREGROUND)
    return OwnerPlan()


def interesting(obj: Any) -> bool:
    """Objects the collector has something to check on: dependents, and
    owners being deleted with a finalizer it serves."""
    meta = obj.metadata
    return bool(meta.owner_references) or (
        is_deleting(obj) and (ORPHAN in meta.finalizers or FOREGROUND in meta.finalizers))


def owner_key(dependent: Any, ref: Any) -> tuple[str, str] | None:
    """The (resource, cache key) an owner reference points at, or None when
    it cannot be resolved (a kind this API does not have, or a namespaced
    owner named by a cluster-scoped object). A namespaced owner lives in
    its dependent's namespace."""
    kind = kinds.BY_KIND.get(ref.kind)
    if kind is None:
        return None
    if kind.namespaced:
        namespace = dependent.metadata.namespace
        if not namespace:
            return None  # a cluster-scoped object cannot have a namespaced owner
        return kind.resource, f"{namespace}/{ref.name}"
    return kind.resource, ref.name


# --- the controller -------------------------------------------------------------------------


class GarbageCollector:
    """Deletes orphaned dependents and serves the orphan/foreground finalizers."""

    NAME = "garbagecollector"

    def __init__(self, client: Client, factory: SharedInformerFactory, *,
                 clock: Clock | None = None, gc_kinds: Iterable[str] | None = None,
                 **options: Any):
        self.client = client
        self.factory = factory
        self.clock = clock or RealClock()
        self.queue = WorkQueue(self.NAME, clock=self.clock)
        chosen = [kinds.lookup(k) for k in gc_kinds] if gc_kinds else list(kinds.KINDS)
        self.informers = {kind.resource: factory.informer(kind) for kind in chosen}
        for resource, informer in self.informers.items():
            ensure_indexers(informer.store, {OWNER_UID_INDEX: owner_uid_index})
            informer.add_event_handler(*self._handlers(resource))
        self._absent: dict[str, None] = {}  # UIDs confirmed gone (insertion-ordered)

    # -- handlers: keys only ----------------------------------------------------------------

    def _handlers(self, resource: str) -> tuple[Any, Any, Any]:
        def on_add(obj: Any) -> None:
            if interesting(obj):
                self.queue.add((resource, object_key(obj)))

        def on_update(old: Any, new: Any) -> None:
            if old.metadata.resource_version == new.metadata.resource_version:
                return
            if interesting(new):
                self.queue.add((resource, object_key(new)))
            kept = {r.uid for r in new.metadata.owner_references}
            for ref in old.metadata.owner_references:
                if ref.uid not in kept:  # an owner waiting on us may be free now
                    self._enqueue_owner(old, ref)

        def on_delete(obj: Any) -> None:
            if isinstance(obj, DeletedFinalStateUnknown):
                obj = obj.obj
            for dep_resource, dep in self._dependents(obj.metadata.uid):
                self.queue.add((dep_resource, object_key(dep)))
            for ref in obj.metadata.owner_references:
                self._enqueue_owner(obj, ref)

        return on_add, on_update, on_delete

    def _enqueue_owner(self, dependent: Any, ref: Any) -> None:
        key = owner_key(dependent, ref)
        if key is not None and key[0] in self.informers:
            self.queue.add(key)

    def _dependents(self, uid: str) -> list[tuple[str, Any]]:
        return [(resource, dep) for resource, informer in self.informers.items()
                for dep in informer.store.by_index(OWNER_UID_INDEX, uid)]

    # -- running ---------------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        self.factory.start()
        for informer in self.informers.values():
            await informer.wait_for_sync()
        log.info("%s: caches synced for %d kinds; %d workers", self.NAME,
                 len(self.informers), workers)
        try:
            await run_workers(self.queue, self._timed_sync, workers)
        finally:
            self.queue.shutdown()

    async def _timed_sync(self, item: Hashable) -> None:
        started = time.perf_counter()
        try:
            resource, key = item  # type: ignore[misc]
            await self.sync(resource, key)
        finally:
            RECONCILE_DURATION.labels(controller=self.NAME).observe(
                time.perf_counter() - started)

    async def sync(self, resource: str, key: str) -> None:
        obj = self.informers[resource].store.get_by_key(key)
        if obj is None:
            return
        if is_deleting(obj):
            await self._process_deleting_owner(resource, obj)
            return
        if not obj.metadata.owner_references:
            return
        states = {}
        for ref in obj.metadata.owner_references:
            states[ref.uid] = await self._owner_state(obj, ref)
        has_dependents = bool(self._dependents(obj.metadata.uid))
        if not has_dependents and WAITING in states.values():
            # Background or Foreground for a link of a foreground cascade:
            # decided on the API's view, since dependents created a moment
            # ago may not be in our caches yet.
            has_dependents = bool(await self._live_dependents(obj))
        action = decide_dependent(obj, states, has_dependents)
        if action.kind == "remove_refs":
            await self._remove_refs(resource, obj, set(action.uids))
        elif action.kind == "delete":
            await self._delete(resource, obj, action.policy)

    async def _live_dependents(self, owner: Any) -> list[tuple[str, Any]]:
        """The owner's dependents as the API server has them now. Dependents
        of a namespaced owner live in its namespace (a cluster-scoped owner's
        may be anywhere)."""
        uid, namespace = owner.metadata.uid, owner.metadata.namespace
        found = []
        for resource, informer in self.informers.items():
            if namespace and not informer.kind.namespaced:
                continue
            listed = await self.client.resource(resource).list_all(namespace)
            found += [(resource, obj) for obj in listed.items
                      if any(r.uid == uid for r in obj.metadata.owner_references)]
        return found

    async def _process_deleting_owner(self, resource: str, owner: Any) -> None:
        dependents = self._dependents(owner.metadata.uid)
        plan = plan_for_deleting_owner(owner, [dep for _, dep in dependents])
        if plan.drop_finalizer:
            # Dropping the finalizer lets the owner go for good, so decide it
            # on the API's view: a dependent created just before the delete
            # may not be in our caches yet (each kind's watch runs on its own
            # time), and would otherwise be collected instead of orphaned.
            dependents = await self._live_dependents(owner)
            plan = plan_for_deleting_owner(owner, [dep for _, dep in dependents])
        by_id = {id(dep): dep_resource for dep_resource, dep in dependents}
        for dep in plan.orphan:
            await self._remove_refs(by_id[id(dep)], dep, {owner.metadata.uid})
        for dep in plan.dependents:
            self.queue.add((by_id[id(dep)], object_key(dep)))
        if plan.drop_finalizer:
            await self._remove_finalizer(resource, owner, plan.drop_finalizer)

    # -- owners ----------------------------------------------------------------------------

    async def _owner_state(self, dependent: Any, ref: Any) -> str:
        key = owner_key(dependent, ref)
        if key is None:
            # An unknown kind, or a namespaced owner of a cluster-scoped
            # object: unresolvable, and never collected on a guess (as
            # Kubernetes 1.20+).
            return EXISTS
        resource, cache_key = key
        informer = self.informers.get(resource)
        cached = informer.store.get_by_key(cache_key) if informer is not None else None
        if cached is not None and cached.metadata.uid == ref.uid:
            return owner_state(cached, ref.uid)
        if ref.uid in self._absent:
            return ABSENT
        namespace, _, name = cache_key.rpartition("/")
        try:
            live = await self.client.resource(resource).get(name, namespace)
        except NotFound:
            live = None
        state = owner_state(live, ref.uid)
        if state == ABSENT:
            self._absent[ref.uid] = None
            if len(self._absent) > _ABSENT_CACHE_SIZE:
                del self._absent[next(iter(self._absent))]
        return state

    # -- writes ------------------------------------------------------------------------------

    async def _delete(self, resource: str, obj: Any, policy: str) -> None:
        """Delete a dependent whose owners are gone — only as the cache saw
        it: the resourceVersion precondition refuses if it changed since
        (e.g. an orphaning just removed the very reference that condemned
        it), and the Conflict retries the key once the cache has caught up.
        Kubernetes' collector re-reads the dependent for the same reason."""
        meta = obj.metadata
        try:
            await self.client.resource(resource).delete(
                meta.name, meta.namespace, uid=meta.uid,
                resource_version=meta.resource_version, propagation_policy=policy)
        except (NotFound, PreconditionFailed):
            return
        log.info("deleted %s whose owners are gone (propagation %s)", resource, policy,
                 extra={"object": object_key(obj)})

    async def _read_modify_write(self, resource: str, obj: Any, change: Any) -> None:
        """Apply ``change(fresh) -> bool`` to the live object and update it,
        re-reading on conflict; a vanished object needs nothing."""
        api = self.client.resource(resource)
        meta = obj.metadata
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                fresh = await api.get(meta.name, meta.namespace)
            except NotFound:
                return
            if fresh.metadata.uid != meta.uid or not change(fresh):
                return
            try:
                await api.update(fresh)
                return
            except NotFound:
                return
            except Conflict:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise

    async def _remove_refs(self, resource: str, obj: Any, uids: set[str]) -> None:
        def change(fresh: Any) -> bool:
            refs = fresh.metadata.owner_references
            kept = [r for r in refs if r.uid not in uids]
            if len(kept) == len(refs):
                return False
            copies = [type(r)() for r in kept]
            for copy, ref in zip(copies, kept):
                copy.CopyFrom(ref)
            del refs[:]
            refs.extend(copies)
            return True

        await self._read_modify_write(resource, obj, change)
        log.info("removed owner references %s", sorted(uids), extra={"object": object_key(obj)})

    async def _remove_finalizer(self, resource: str, obj: Any, finalizer: str) -> None:
        def change(fresh: Any) -> bool:
            if finalizer not in fresh.metadata.finalizers:
                return False
            fresh.metadata.finalizers.remove(finalizer)
            return True

        await self._read_modify_write(resource, obj, change)
        log.info("removed finalizer %s", finalizer, extra={"object": object_key(obj)})


__all__ = [
    "ABSENT", "Action", "EXISTS", "FOREGROUND", "GarbageCollector", "ORPHAN", "OwnerPlan",
    "WAITING", "blocks", "decide_dependent", "interesting", "owner_key", "owner_state",
    "owner_uid_index", "plan_for_deleting_owner",
]
