"""The watch cache: one etcd watch per kind, fanned out in-process.

It holds every object of its kind (the current state, for "start from now"
watches), and a bounded window of recent events so that a client resuming
from a recent resourceVersion replays exactly what it missed — no relist,
no gap, no duplicate. A resourceVersion older than the window gets
:class:`TooOld` (OUT_OF_RANGE: the client relists).

Each watcher has a filter (namespace, labels, fields). As in Kubernetes, an
object that stops matching is sent as DELETED and one that starts matching
as ADDED, so a filtered watcher's view stays consistent.

Events are serialized once (per event type) and the same bytes go to every
watcher: with many watchers, encoding would otherwise dominate.

Everything that touches the watcher set runs on the event loop without
awaiting, so registering a watcher and replaying history is atomic with
respect to new events.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from services.api.kinds import Kind
from services.apiserver import metrics
from services.apiserver.storage import CompactedError, Storage, StorageError

log = logging.getLogger(__name__)

Predicate = Callable[[Message], bool]

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"


class TooOld(Exception):
    """The requested resourceVersion is older than the cache's history."""


class WatcherClosed(Exception):
    """The watcher fell too far behind (or the cache restarted); resume from
    the last resourceVersion received."""


def registry_prefix(kind: Kind) -> bytes:
    return f"/registry/{kind.resource}/".encode()


def object_key(kind: Kind, namespace: str, name: str) -> bytes:
    if kind.namespaced:
        return f"/registry/{kind.resource}/{namespace}/{name}".encode()
    return f"/registry/{kind.resource}/{name}".encode()


def _namespace_of(key: bytes) -> bytes:
    """The namespace segment of /registry/<resource>/<namespace>/<name>
    (b"" for a cluster-scoped key)."""
    parts = key.split(b"/", 4)
    return parts[3] if len(parts) == 5 else b""


def decode(kind: Kind, value: bytes, revision: int) -> Message:
    """A stored value as a message carrying its resourceVersion."""
    obj = kind.message.FromString(value)
    obj.metadata.resource_version = str(revision)
    return obj


@dataclasses.dataclass(slots=True)
class CacheEvent:
    type: str
    obj: Message          # the object after the change (for DELETED: as it was, at the delete's rv)
    prev: Message | None  # the object before the change
    revision: int
    _encoded: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def encoded(self, kind: Kind, event_type: str, obj: Message) -> bytes:
        """The serialized watch event, computed once per type and shared."""
        data = self._encoded.get(event_type)
        if data is None:
            data = kind.event_message(type=event_type, object=obj).SerializeToString()
            self._encoded[event_type] = data
        return data


class Watcher:
    """One client watch: a queue of serialized events."""

    def __init__(self, cache: WatchCache, predicate: Predicate, bookmarks: bool,
                 max_queue: int):
        self.cache = cache
        self.predicate = predicate
        self.bookmarks = bookmarks
        self.max_queue = max_queue
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        self.last_revision = 0
        # Events at or below this revision are already known to the client
        # (it listed at that revision, maybe from etcd while the cache lagged).
        self.after = 0
        self.closed = False

    def _push(self, data: bytes, revision: int) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.max_queue:
            self.close(WatcherClosed("watcher fell too far behind; resume from its last "
                                     "resourceVersion"))
            return
        self.queue.put_nowait(data)
        self.last_revision = revision
        self.cache.events_sent.inc()

    def offer(self, event: CacheEvent) -> None:
        """Send ``event`` as this watcher's filter sees it, if at all."""
        if event.revision <= self.after:
            return
        kind = self.cache.kind
        now = self.predicate(event.obj) if event.type != DELETED else False
        before = event.prev is not None and self.predicate(event.prev)
        if event.type == DELETED:
            if before:
                self._push(event.encoded(kind, DELETED, event.obj), event.revision)
        elif now and before:
            self._push(event.encoded(kind, MODIFIED, event.obj), event.revision)
        elif now:
            self._push(event.encoded(kind, ADDED, event.obj), event.revision)
        elif before:
            # It stopped matching: to this watcher, it is gone.
            gone = _with_revision(event.prev, event.revision)
            self._push(kind.event_message(type=DELETED, object=gone).SerializeToString(),
                       event.revision)

    def bookmark(self, revision: int) -> None:
        if self.bookmarks and revision > self.last_revision and self.queue.empty():
            obj = self.cache.kind.message()
            obj.metadata.resource_version = str(revision)
            self._push(self.cache.kind.event_message(type=BOOKMARK, object=obj)
                       .SerializeToString(), revision)

    def close(self, error: Exception | None = None) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(error or WatcherClosed("watch closed"))
            self.cache.unregister(self)

    async def next(self) -> bytes:
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def next_batch(self, limit: int, window: float = 0.0) -> list[bytes]:
        """The next event and whatever else is queued ``window`` seconds later
        (up to ``limit``). A short window turns a steady trickle, where every
        event would cost each watcher one message, into a few messages that
        carry several; it adds at most ``window`` to an event's delivery."""
        batch = [await self.next()]
        if window > 0 and self.queue.qsize() < limit:
            await asyncio.sleep(window)
        while len(batch) < limit and not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, Exception):
                self.queue.put_nowait(item)  # raised by the next call, after this batch
                break
            batch.append(item)
        return batch


def _with_revision(obj: Message, revision: int) -> Message:
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.metadata.resource_version = str(revision)
    return copy


class WatchCache:
    """The current state and recent history of one kind, kept by one etcd watch."""

    def __init__(self, kind: Kind, storage: Storage, *, history: int = 1024,
                 max_watcher_queue: int = 10_000):
        self.kind = kind
        self.storage = storage
        self.objects: dict[bytes, Message] = {}
        # Objects per namespace, kept as events apply: the per-namespace
        # object limit reads it on every create, so it must not be a scan.
        self.per_namespace: collections.Counter[bytes] = collections.Counter()
        self.history: collections.deque[CacheEvent] = collections.deque(maxlen=history)
        self.oldest = 0       # history is complete for revisions > oldest
        self.revision = 0     # every change up to here has been applied
        # Events are deduplicated on what was really applied, never on a
        # progress report: a report can never make an event look seen.
        self.last_event_revision = 0
        self.watchers: set[Watcher] = set()
        self.max_watcher_queue = max_watcher_queue
        self.ready = asyncio.Event()
        self.events_sent = metrics.WATCH_EVENTS.labels(kind.resource)
        self._revision_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- feeding from etcd ------------------------------------------------------

    async def run(self) -> None:
        """List, then watch, forever; relist if etcd compacted past us."""
        prefix = registry_prefix(self.kind)
        backoff = 0.1
        while True:
            try:
                if not self.ready.is_set():
                    await self._relist(prefix)
                    self.ready.set()
                async for batch in self.storage.watch(prefix, self.revision + 1):
                    backoff = 0.1
                    self._apply(batch.events, batch.revision)
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():
                    raise
                log.warning("watch cache %s: etcd call cancelled; rewatching", self.kind.resource)
            except CompactedError:
                log.warning("watch cache %s: etcd compacted past revision %d; relisting",
                            self.kind.resource, self.revision)
                self.ready.clear()
            except StorageError as err:
                log.warning("watch cache %s: %s; rewatching from %d", self.kind.resource, err,
                            self.revision)
            except Exception:
                log.exception("watch cache %s failed; relisting", self.kind.resource)
                self.ready.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _relist(self, prefix: bytes) -> None:
        objects: dict[bytes, Message] = {}
        start, revision = None, 0
        while True:
            kvs, more, revision, _ = await self.storage.range(
                prefix, start=start, limit=1000, revision=revision, kind=self.kind.kind)
            for kv in kvs:
                objects[kv.key] = decode(self.kind, kv.value, kv.mod_revision)
            if not more:
                break
            start = kvs[-1].key + b"\x00"
        for watcher in list(self.watchers):
            watcher.close(TooOld("the watch cache was rebuilt; relist"))
        self.objects = objects
        self.per_namespace = collections.Counter(_namespace_of(key) for key in objects)
        self.history.clear()
        self.oldest = self.revision = self.last_event_revision = revision
        metrics.STORAGE_OBJECTS.labels(self.kind.resource).set(len(objects))
        self._wake_revision_waiters()

    def _apply(self, events: list, revision: int) -> None:
        for ev in events:
            if ev.mod_revision <= self.last_event_revision:
                continue  # already seen (a rewatch can overlap)
            self.last_event_revision = ev.mod_revision
            prev = self.objects.get(ev.key)
            if ev.deleted:
                if prev is None:
                    continue
                del self.objects[ev.key]
                self._count(ev.key, -1)
                event = CacheEvent(DELETED, _with_revision(prev, ev.mod_revision), prev,
                                   ev.mod_revision)
            else:
                obj = decode(self.kind, ev.value, ev.mod_revision)
                self.objects[ev.key] = obj
                if prev is None:
                    self._count(ev.key, 1)
                event = CacheEvent(MODIFIED if prev is not None else ADDED, obj, prev,
                                   ev.mod_revision)
            if len(self.history) == self.history.maxlen:
                self.oldest = self.history[0].revision
            self.history.append(event)
            self.revision = ev.mod_revision
            for watcher in list(self.watchers):
                watcher.offer(event)
        if revision > self.revision:
            self.revision = revision
        metrics.STORAGE_OBJECTS.labels(self.kind.resource).set(len(self.objects))
        if not events:
            for watcher in list(self.watchers):
                watcher.bookmark(self.revision)
        self._wake_revision_waiters()

    def _count(self, key: bytes, delta: int) -> None:
        namespace = _namespace_of(key)
        self.per_namespace[namespace] += delta
        if self.per_namespace[namespace] <= 0:
            del self.per_namespace[namespace]

    def count_in(self, namespace: str) -> int:
        """How many objects ``namespace`` holds (0 for cluster-scoped kinds)."""
        return self.per_namespace.get(namespace.encode(), 0) if self.kind.namespaced else 0

    # -- freshness -------------------------------------------------------------

    async def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Wait until the cache has applied everything up to ``revision``."""
        if self.revision >= revision and self.ready.is_set():
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._revision_waiters.append((revision, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _wake_revision_waiters(self) -> None:
        keep = []
        for revision, fut in self._revision_waiters:
            if fut.done():
                continue
            if self.revision >= revision and self.ready.is_set():
                fut.set_result(None)
            else:
                keep.append((revision, fut))
        self._revision_waiters = keep

    # -- serving watchers ---------------------------------------------------------

    def watch(self, after: int | None, predicate: Predicate, *, bookmarks: bool) -> Watcher:
        """Register a watcher. ``after`` None: an ADDED event for every
        matching object first, then changes; otherwise every change after
        revision ``after`` (raising :class:`TooOld` if the window lacks it)."""
        if after is not None and after < self.oldest:
            raise TooOld(f"too old resource version: {after} ({self.oldest})")
        watcher = Watcher(self, predicate, bookmarks, self.max_watcher_queue)
        if after is None:
            for obj in self.objects.values():
                if predicate(obj):
                    watcher._push(self.kind.event_message(type=ADDED, object=obj)
                                  .SerializeToString(), self.revision)
            watcher.last_revision = watcher.after = self.revision
        else:
            watcher.after = after
            for event in self.history:
                watcher.offer(event)
            watcher.last_revision = max(watcher.last_revision, after)
        self.watchers.add(watcher)
        metrics.REGISTERED_WATCHERS.labels(self.kind.resource).inc()
        return watcher

    def unregister(self, watcher: Watcher) -> None:
        if watcher in self.watchers:
            self.watchers.discard(watcher)
            metrics.REGISTERED_WATCHERS.labels(self.kind.resource).dec()

    def get(self, key: bytes) -> Message | None:
        return self.objects.get(key)

    def list(self, predicate: Predicate) -> list[Any]:
        return [obj for obj in self.objects.values() if predicate(obj)]
