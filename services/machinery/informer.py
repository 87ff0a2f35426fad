"""Informers: a local, watched cache of one kind, with change handlers.

The reflector inside an :class:`Informer` works as client-go's does: list
(paged) and remember the list's resourceVersion, then watch from it with
bookmarks. A watch that ends or fails (UNAVAILABLE: the server restarted or
failed over) is resumed from the last resourceVersion seen, after backoff,
with no relist; only OUT_OF_RANGE ("too old", :class:`Expired`) forces a
relist. A relist is reconciled with what the handlers have already been told
(:func:`compute_replace_deltas`): adds for new objects, updates only when the
resourceVersion moved, and :class:`DeletedFinalStateUnknown` tombstones for
objects that vanished while nobody was watching.

Handlers are called in order, one notification at a time, from a single
dispatcher task per informer, so each object's changes arrive in order; a
handler that raises is logged and the informer carries on. Handlers should
only enqueue keys; the work belongs in a worker that reads :attr:`store`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from services.api import kinds
from services.machinery.clock import Clock, RealClock, wait_for
from services.machinery.errors import ApiError, Expired
from services.machinery.ratelimit import Backoff
from services.machinery.store import DeletedFinalStateUnknown, KeyFunc, Store, object_key

log = logging.getLogger(__name__)

ADDED = "ADDED"
UPDATED = "UPDATED"
DELETED = "DELETED"

Handler = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Delta:
    """One change to tell the handlers about.

    ``obj`` is the new state (for DELETED: the final state, or a
    :class:`DeletedFinalStateUnknown` tombstone); ``old`` is the state the
    handlers last saw, if any.
    """

    type: str
    obj: Any
    old: Any = None


def resource_version(obj: Any) -> str:
    return obj.metadata.resource_version


def _is_newer(new: Any, old: Any) -> bool:
    """Whether ``new`` is a later state than ``old``: resourceVersions are
    etcd revisions, compared as integers; if one is not a number, any
    difference counts as newer."""
    a, b = resource_version(new), resource_version(old)
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


def _is_older(new: Any, old: Any) -> bool:
    a, b = resource_version(new), resource_version(old)
    try:
        return int(a) < int(b)
    except ValueError:
        return False


def upsert_deltas(old: Any | None, new: Any, key: str) -> list[Delta]:
    """What to tell the handlers when ``new`` is seen and they know ``old``.

    Nothing when ``new`` is not newer (a change is never delivered twice). A
    different UID under the same key means the object was deleted and
    recreated unseen: a tombstone delete of the old one, then an add.
    """
    if old is None:
        return [Delta(ADDED, new)]
    old_uid, new_uid = old.metadata.uid, new.metadata.uid
    if old_uid and new_uid and old_uid != new_uid:
        return [Delta(DELETED, DeletedFinalStateUnknown(key, old), old), Delta(ADDED, new)]
    if _is_newer(new, old):
        return [Delta(UPDATED, new, old)]
    return []


def compute_replace_deltas(known: Mapping[str, Any], new_list: Iterable[Any],
                           key_func: KeyFunc = object_key) -> list[Delta]:
    """The handler calls that take handlers which have seen ``known`` (key ->
    object) to the state of a fresh list: adds and updates in list order,
    then tombstone deletes for known keys the list no longer has."""
    deltas: list[Delta] = []
    listed: set[str] = set()
    for obj in new_list:
        key = key_func(obj)
        listed.add(key)
        deltas.extend(upsert_deltas(known.get(key), obj, key))
    for key, old in known.items():
        if key not in listed:
            deltas.append(Delta(DELETED, DeletedFinalStateUnknown(key, old), old))
    return deltas


@dataclasses.dataclass(frozen=True, eq=False)
class _Handlers:
    on_add: Handler | None
    on_update: Handler | None
    on_delete: Handler | None


_SYNCED = object()  # dispatcher marker: the first list has been delivered


class Informer:
    """A watched cache of one kind (optionally one namespace and selectors).

    ``kind``: any kind name (``"pods"``, ``"Pod"``, ``"po"``).
    ``resync_period``: if > 0, every so often every cached object is
    re-delivered as ``on_update(obj, obj)``, as client-go does, so a handler
    that dropped something gets another chance.
    """

    def __init__(self, client: Any, kind: str | kinds.Kind, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "",
                 resync_period: float = 0.0, clock: Clock | None = None,
                 backoff: Backoff | None = None, page_size: int = 500,
                 watch_timeout: float = 300.0):
        self.kind = kind if isinstance(kind, kinds.Kind) else kinds.lookup(kind)
        self.namespace = namespace if self.kind.namespaced else ""
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.clock = clock or RealClock()
        self.backoff = backoff or Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.5,
                                          clock=self.clock)
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.store = Store()
        self.last_sync_resource_version = ""
        self._resource = client.resource(self.kind)
        self._handlers: tuple[_Handlers, ...] = ()
        self._notes: asyncio.Queue[Any] = asyncio.Queue()
        self._synced = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._started = False
        self._task: asyncio.Task[Any] | None = None
        self.relists = 0  # lists after the first: how often the watch fell too far behind

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        sel = "".join(f" {s}" for s in (self.label_selector, self.field_selector) if s)
        return f"<Informer {self.kind.resource}{where}{sel}>"

    @property
    def name(self) -> str:
        return f"{self.kind.resource}/{self.namespace}" if self.namespace else self.kind.resource

    # -- handlers ----------------------------------------------------------------

    def add_event_handler(self, on_add: Handler | None = None,
                          on_update: Handler | None = None,
                          on_delete: Handler | None = None) -> None:
        """Register callbacks (plain functions or coroutine functions):
        ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)`` where a
        delete may carry a :class:`DeletedFinalStateUnknown`.

        A handler added once the informer runs first gets ``on_add`` for
        every object already cached, like client-go's late handlers.
        """
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers = (*self._handlers, handlers)
        if self._started and on_add is not None:
            for obj in self.store.list():
                self._notes.put_nowait(((handlers,), ADDED, (obj,)))

    def _notify(self, kind: str, *args: Any) -> None:
        if self._handlers:
            self._notes.put_nowait((self._handlers, kind, args))

    def _apply(self, deltas: Iterable[Delta]) -> None:
        """Update the store and queue the handler calls, in one step, so the
        store is always what the handlers have been (or are about to be) told."""
        for delta in deltas:
            if delta.type == DELETED:
                self.store.delete(delta.obj)
                self._notify(DELETED, delta.obj)
            elif delta.type == ADDED:
                self.store.add(delta.obj)
                self._notify(ADDED, delta.obj)
            else:
                self.store.add(delta.obj)
                self._notify(UPDATED, delta.old, delta.obj)

    async def _dispatch(self) -> None:
        while True:
            note = await self._notes.get()
            if note is _SYNCED:
                self._synced.set()
                continue
            handlers, kind, args = note
            for handler in handlers:
                func = (handler.on_add if kind == ADDED else
                        handler.on_update if kind == UPDATED else handler.on_delete)
                if func is None:
                    continue
                try:
                    result = func(*args)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one bad handler must not stop the rest
                    log.exception("%s: %s handler failed for %s", self.name, kind.lower(),
                                  object_key(args[-1]))

    # -- state ---------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the store and every handler has
        been called for it."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until :attr:`has_synced` (or the informer stops, or
        ``timeout`` seconds of its clock pass); returns :attr:`has_synced`."""
        async def synced_or_stopped() -> None:
            waits = [asyncio.ensure_future(self._synced.wait()),
                     asyncio.ensure_future(self._stopped.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        try:
            await wait_for(self.clock, synced_or_stopped(), timeout)
        except TimeoutError:
            pass
        return self.has_synced

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """List, watch and dispatch until cancelled or :meth:`stop`."""
        if self._started:
            raise RuntimeError(f"{self!r} is already running")
        self._started = True
        self._task = asyncio.current_task()
        if self._stopping:
            self._stopped.set()
            return
        helpers = [asyncio.ensure_future(self._dispatch())]
        if self.resync_period > 0:
            helpers.append(asyncio.ensure_future(self._resync_loop()))
        try:
            await self._reflect()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._stopped.set()

    def stop(self) -> None:
        """Ask :meth:`run` to return (it does so at its next await)."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _reflect(self) -> None:
        need_list = True
        expired_streak = 0
        while True:
            try:
                if need_list:
                    if self.store.resource_version:
                        self.relists += 1
                    await self._list()
                    need_list = False
                started = self.clock.now()
                events = await self._watch()
                if events:
                    expired_streak = 0
                    self.backoff.reset()
                elif self.clock.now() - started < 1.0:
                    # A stream that closes at once and says nothing: do not spin.
                    await self.backoff.sleep()
            except Expired as err:
                log.info("%s: watch from resourceVersion %s is too old (%s); relisting",
                         self.name, self.last_sync_resource_version, err)
                need_list = True
                expired_streak += 1
                if expired_streak > 1:
                    await self.backoff.sleep()
            except ApiError as err:
                delay = self.backoff.next()
                log.warning("%s: %s; retrying in %.1fs", self.name, err, delay)
                await self.clock.sleep(delay)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the reflector must outlive surprises
                delay = self.backoff.next()
                log.exception("%s: reflector failed; retrying in %.1fs", self.name, delay)
                await self.clock.sleep(delay)

    async def _list(self) -> None:
        result = await self._resource.list_all(
            self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size)
        version = result.metadata.resource_version
        self._apply(compute_replace_deltas(self.store.items(), result.items))
        self.store.resource_version = version
        self.last_sync_resource_version = version
        self.backoff.reset()
        if not self._synced.is_set():
            self._notes.put_nowait(_SYNCED)
        log.debug("%s: listed %d objects at resourceVersion %s", self.name,
                  len(result.items), version)

    async def _watch(self) -> int:
        """Watch from the last resourceVersion until the stream ends; returns
        how many events arrived. Errors propagate as :class:`ApiError`."""
        timeout = int(self.watch_timeout * (1 + random.random())) if self.watch_timeout else 0
        count = 0
        stream = self._resource.watch(
            self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self.last_sync_resource_version, allow_bookmarks=True,
            timeout_seconds=timeout)
        async for event in stream:
            count += 1
            self.handle_event(event.type, event.object)
        return count

    def handle_event(self, type_: str, obj: Any) -> None:
        """Apply one watch event to the store and queue the handler calls.

        Events not newer than the cached object are ignored; BOOKMARK only
        advances the resourceVersion to resume from.
        """
        version = obj.metadata.resource_version
        if type_ == "BOOKMARK":
            pass
        elif type_ in ("ADDED", "MODIFIED"):
            key = object_key(obj)
            self._apply(upsert_deltas(self.store.get_by_key(key), obj, key))
        elif type_ == "DELETED":
            old = self.store.get_by_key(object_key(obj))
            if old is not None and not _is_older(obj, old):
                self._apply([Delta(DELETED, obj, old)])
        else:
            log.warning("%s: ignoring watch event of unknown type %r", self.name, type_)
            return
        if version:
            self.last_sync_resource_version = version
            self.store.resource_version = version

    async def _resync_loop(self) -> None:
        while True:
            await self.clock.sleep(self.resync_period)
            if self._synced.is_set():
                for obj in self.store.list():
                    self._notify(UPDATED, obj, obj)


class SharedInformerFactory:
    """One informer per (kind, namespace, selectors), shared by every
    controller in a process so each kind is listed and watched once."""

    def __init__(self, client: Any, *, resync_period: float = 0.0,
                 clock: Clock | None = None):
        self.client = client
        self.resync_period = resync_period
        self.clock = clock or RealClock()
        self._informers: dict[tuple[str, str, str, str], Informer] = {}
        self._tasks: dict[Informer, asyncio.Task[None]] = {}
        self._started = False

    def informer(self, kind: str | kinds.Kind, namespace: str = "", *,
                 label_selector: str = "", field_selector: str = "",
                 resync_period: float | None = None) -> Informer:
        """The shared informer for these arguments, created on first use (and
        started at once if the factory already runs)."""
        info = kind if isinstance(kind, kinds.Kind) else kinds.lookup(kind)
        key = (info.kind, namespace if info.namespaced else "", label_selector, field_selector)
        found = self._informers.get(key)
        if found is None:
            found = self._informers[key] = Informer(
                self.client, info, namespace=namespace, label_selector=label_selector,
                field_selector=field_selector,
                resync_period=self.resync_period if resync_period is None else resync_period,
                clock=self.clock)
            if self._started:
                self._start(found)
        return found

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    def start(self) -> None:
        """Run every informer not yet running (needs a running event loop)."""
        self._started = True
        for informer in self._informers.values():
            self._start(informer)

    def _start(self, informer: Informer) -> None:
        if informer not in self._tasks:
            self._tasks[informer] = asyncio.get_running_loop().create_task(
                informer.run(), name=f"informer-{informer.name}")

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        """Wait until every started informer has synced; False on timeout."""
        informers = list(self._tasks)
        if not informers:
            return True
        try:
            results = await wait_for(self.clock, asyncio.gather(
                *(i.wait_for_sync() for i in informers)), timeout)
        except TimeoutError:
            return all(i.has_synced for i in informers)
        return all(results)

    async def stop(self) -> None:
        """Stop every informer and wait for them to finish."""
        self._started = False
        tasks = list(self._tasks.values())
        for informer in self._tasks:
            informer.stop()
        self._tasks.clear()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = [
    "ADDED", "DELETED", "UPDATED", "Delta", "DeletedFinalStateUnknown", "Informer",
    "SharedInformerFactory", "compute_replace_deltas", "upsert_deltas",
]
