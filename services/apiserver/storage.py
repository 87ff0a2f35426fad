"""The etcd storage seam: a handful of async methods over etcd's KV and Watch
APIs, the only code in the project that talks to etcd.

Built on aetcd's connection and generated etcd stubs (``aetcd.rpc``) rather
than its convenience wrappers, because the API server needs what those hide:
ranges at a fixed revision with limits (consistent paging), multi-key
transactions (an object and its allocations in one atomic write), and watch
responses with their header revision and progress notifications (bookmarks).

Several endpoints fail over: an UNAVAILABLE etcd is skipped for the next one
and the call retried with backoff within its deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence

import aetcd
from aetcd import rpc
import grpc

from services.apiserver import metrics

log = logging.getLogger(__name__)


class StorageError(Exception):
    """etcd could not be reached or answered with an error."""


class KeyExists(StorageError):
    def __init__(self, key: bytes):
        super().__init__(key.decode())
        self.key = key


class ConflictError(StorageError):
    """A compare on mod_revision failed: the object changed or went away."""


class GuardConflict(ConflictError):
    """The object's own compare held but its :class:`Guard`'s did not: what
    the writes riding along were computed from has changed. Recompute them
    and retry; the object itself is still as it was read."""


class CompactedError(StorageError):
    """The revision asked for has been compacted away."""

    def __init__(self, revision: int, compact_revision: int):
        super().__init__(f"revision {revision} is compacted (oldest kept: {compact_revision})")
        self.revision = revision
        self.compact_revision = compact_revision


@dataclasses.dataclass(frozen=True, slots=True)
class KV:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int


@dataclasses.dataclass(frozen=True, slots=True)
class WatchEvent:
    """One etcd change: ``value`` empty and ``deleted`` set for a delete."""

    key: bytes
    value: bytes
    prev_value: bytes
    mod_revision: int
    deleted: bool


@dataclasses.dataclass(frozen=True, slots=True)
class WatchBatch:
    """One etcd watch response: its events (maybe none: a progress report)
    and the revision up to which this watch has delivered everything."""

    events: list[WatchEvent]
    revision: int


@dataclasses.dataclass(frozen=True, slots=True)
class Guard:
    """Writes that ride along on one object's transaction, valid only while
    what they were computed from is unchanged (ResourceQuota usage written
    with the pod that changes it).

    ``puts``: (key, value, mod_revision) — replace a key still at that
    mod_revision (a deleted key fails too). ``unchanged``: (prefix,
    revision) — no key under the prefix created or modified after
    ``revision`` (no ResourceQuota appeared in the namespace meanwhile).
    A deletion under the prefix is not seen by ``unchanged``; a ``puts``
    entry covers each key the caller relies on.
    """

    puts: Sequence[tuple[bytes, bytes, int]] = ()
    unchanged: Sequence[tuple[bytes, int]] = ()

    def compares(self) -> list[rpc.Compare]:
        out = [rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                           mod_revision=rev) for k, _, rev in self.puts]
        out += [rpc.Compare(key=p, range_end=prefix_end(p), target=rpc.Compare.MOD,
                            result=rpc.Compare.LESS, mod_revision=rev + 1)
                for p, rev in self.unchanged]
        return out

    def ops(self) -> list[rpc.RequestOp]:
        return [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v))
                for k, v, _ in self.puts]


def _guard_compares(guard: Guard | None) -> list[rpc.Compare]:
    return guard.compares() if guard is not None else []


def _guard_ops(guard: Guard | None) -> list[rpc.RequestOp]:
    return guard.ops() if guard is not None else []


def _mod_revision_of(op: rpc.ResponseOp) -> int:
    """The mod_revision a failure branch's keys-only range saw (0: gone)."""
    kvs = op.response_range.kvs
    return kvs[0].mod_revision if kvs else 0


def prefix_end(prefix: bytes) -> bytes:
    """The exclusive range end that covers every key starting with ``prefix``."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def _cancelled_by_us() -> bool:
    """Whether a CancelledError means *this task* is being cancelled. grpc.aio
    also raises CancelledError when a call dies because its channel was
    closed (e.g. by a failover); that is a storage error, not a shutdown."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _kv(kv: rpc.KeyValue) -> KV:
    return KV(kv.key, kv.value, kv.mod_revision, kv.create_revision)


# Keepalive on the etcd channel: watch streams have no deadline, so a
# silently dead connection is found by pings instead. Only while calls are
# open (the watch caches always hold some): etcd refuses idle pings.
ETCD_CHANNEL_OPTIONS = {
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 0,
}


class _TlsEtcdClient(aetcd.Client):
    """aetcd's client over a mutual-TLS channel. aetcd only opens plaintext
    channels, so this repeats its connect() with grpc.aio.secure_channel
    (same stubs, same watcher); the rest of aetcd is unchanged."""

    def __init__(self, *args: object, credentials: grpc.ChannelCredentials, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        self.channel = grpc.aio.secure_channel(target, self._credentials,
                                               options=list(self._options.items()))
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(rpc.WatchStub(self.channel),
                                              timeout=self._timeout, metadata=self.metadata)
        self._connected.set()


class Storage:
    """Async etcd access with deadlines, failover and metrics.

    ``credentials``: mutual-TLS channel credentials for etcd (the API
    server's etcd client certificate and the etcd CA); None for plaintext.
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0,
                 retry_for: float = 15.0, credentials: grpc.ChannelCredentials | None = None):
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.credentials = credentials
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.retry_for = retry_for
        self._index = 0
        self._client: aetcd.Client | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task] = set()

    # -- connection ------------------------------------------------------------

    async def _connected(self) -> aetcd.Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    host, _, port = self.endpoints[self._index].rpartition(":")
                    if self.credentials is not None:
                        client = _TlsEtcdClient(host=host, port=int(port), timeout=self.timeout,
                                                options=ETCD_CHANNEL_OPTIONS,
                                                credentials=self.credentials)
                    else:
                        client = aetcd.Client(host=host, port=int(port), timeout=self.timeout,
                                              options=ETCD_CHANNEL_OPTIONS)
                    await client.connect()
                    self._client = client
        return self._client

    async def _fail_over(self, failed: aetcd.Client) -> None:
        async with self._lock:
            if self._client is failed:
                self._client = None
                self._index = (self._index + 1) % len(self.endpoints)
                # Never wait for the old client under the lock: closing a
                # broken connection can stall, and every call needs the lock.
                task = asyncio.create_task(self._close_quietly(failed))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_quietly(client: aetcd.Client) -> None:
        try:
            await asyncio.wait_for(client.close(), 5)
        except Exception:  # a broken channel may fail or stall on close
            pass

    async def _call(self, operation: str, kind: str, fn):
        """Run ``fn(client)`` with retry on UNAVAILABLE across endpoints."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_for
        delay = 0.05
        while True:
            client = await self._connected()
            started = time.perf_counter()
            try:
                return await fn(client)
            except asyncio.CancelledError:
                if _cancelled_by_us() or loop.time() + delay > give_up:
                    raise
                await asyncio.sleep(delay)  # the channel was closed under us: retry
                delay = min(delay * 2, 1.0)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    raise
                retry = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if not retry or loop.time() + delay > give_up:
                    raise StorageError(f"etcd {operation}: {code.name}: {err.details()}") from err
                log.warning("etcd %s at %s failed (%s); retrying", operation,
                            self.endpoints[self._index], code.name)
                await self._fail_over(client)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            finally:
                metrics.ETCD_REQUEST_DURATION.labels(operation, kind).observe(
                    time.perf_counter() - started)

    async def close(self) -> None:
        """Close the connection, within a deadline: a broken channel may
        stall on close, and shutdown must not hang on it."""
        client, self._client = self._client, None
        if client is not None:
            await self._close_quietly(client)

    # -- reads -------------------------------------------------------------------

    async def get(self, key: bytes, kind: str = "") -> tuple[KV | None, int]:
        """The key's current value (or None) and the store's revision."""
        async def do(c: aetcd.Client):
            return await c.kvstub.Range(rpc.RangeRequest(key=key), timeout=self.timeout)
        resp = await self._call("get", kind, do)
        return (_kv(resp.kvs[0]) if resp.kvs else None), resp.header.revision

    async def range(self, prefix: bytes, *, start: bytes | None = None, limit: int = 0,
                    revision: int = 0, kind: str = "",
                    count_only: bool = False) -> tuple[list[KV], bool, int, int]:
        """Keys under ``prefix`` from ``start``, at ``revision`` (0: latest).

        Returns (kvs, more, revision read at, total count in range).
        Raises :class:`CompactedError` when ``revision`` is compacted.
        """
        request = rpc.RangeRequest(key=start or prefix, range_end=prefix_end(prefix),
                                   limit=limit, revision=revision, count_only=count_only)

        async def do(c: aetcd.Client):
            return await c.kvstub.Range(request, timeout=self.timeout)
        try:
            resp = await self._call("list", kind, do)
        except grpc.aio.AioRpcError as err:
            raise CompactedError(revision, 0) from err
        return [_kv(kv) for kv in resp.kvs], resp.more, resp.header.revision, resp.count

    async def revision(self) -> int:
        """The store's current revision."""
        _, rev = await self.get(b"/registry/", "revision")
        return rev

    # -- writes ------------------------------------------------------------------

    async def _txn(self, operation: str, kind: str, request: rpc.TxnRequest) -> rpc.TxnResponse:
        async def do(c: aetcd.Client):
            return await c.kvstub.Txn(request, timeout=self.timeout)
        return await self._call(operation, kind, do)

    async def create(self, key: bytes, value: bytes, *, also_create: Sequence[tuple[bytes, bytes]] = (),
                     also_delete: Sequence[bytes] = (), guard: Guard | None = None,
                     kind: str = "") -> int:
        """Write ``key`` (and ``also_create``) only if none exists; return the
        new revision. :class:`KeyExists` names the first key that was taken;
        :class:`GuardConflict` says ``guard`` no longer held."""
        puts = [(key, value), *also_create]
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                 create_revision=0) for k, _ in puts] + _guard_compares(guard),
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v)) for k, v in puts]
            + [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))
               for k in also_delete] + _guard_ops(guard),
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k, count_only=True))
                     for k, _ in puts],
        )
        resp = await self._txn("create", kind, request)
        if not resp.succeeded:
            for (k, _), op in zip(puts, resp.responses):
                if op.response_range.count:
                    raise KeyExists(k)
            if guard is not None:
                raise GuardConflict(key.decode())
            raise KeyExists(key)
        return resp.header.revision

    async def update(self, key: bytes, value: bytes, mod_revision: int, *,
                     also_create: Sequence[tuple[bytes, bytes]] = (),
                     also_delete: Sequence[bytes] = (), guard: Guard | None = None,
                     kind: str = "") -> int:
        """Replace ``key`` only if it is still at ``mod_revision``; keys in
        ``also_create`` must not exist. Return the new revision.
        :class:`GuardConflict` says only ``guard`` no longer held."""
        compare = [rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                               mod_revision=mod_revision)]
        compare += [rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                                create_revision=0) for k, _ in also_create]
        failure = [rpc.RequestOp(request_range=rpc.RangeRequest(key=k, count_only=True))
                   for k, _ in also_create]
        if guard is not None:
            failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True)))
        request = rpc.TxnRequest(
            compare=compare + _guard_compares(guard),
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v))
                     for k, v in [(key, value), *also_create]]
            + [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))
               for k in also_delete] + _guard_ops(guard),
            failure=failure,
        )
        resp = await self._txn("update", kind, request)
        if not resp.succeeded:
            for (k, _), op in zip(also_create, resp.responses):
                if op.response_range.count:
                    raise KeyExists(k)
            if guard is not None and _mod_revision_of(resp.responses[-1]) == mod_revision:
                raise GuardConflict(key.decode())
            raise ConflictError(key.decode())
        return resp.header.revision

    async def delete(self, key: bytes, mod_revision: int, *, also_delete: Sequence[bytes] = (),
                     guard: Guard | None = None, kind: str = "") -> int:
        """Delete ``key`` only if it is still at ``mod_revision``.
        :class:`GuardConflict` says only ``guard`` no longer held."""
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                                 mod_revision=mod_revision)] + _guard_compares(guard),
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))
                     for k in (key, *also_delete)] + _guard_ops(guard),
            failure=([rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))]
                     if guard is not None else []),
        )
        resp = await self._txn("delete", kind, request)
        if not resp.succeeded:
            if guard is not None and _mod_revision_of(resp.responses[-1]) == mod_revision:
                raise GuardConflict(key.decode())
            raise ConflictError(key.decode())
        return resp.header.revision

    async def compact(self, revision: int) -> None:
        async def do(c: aetcd.Client):
            return await c.kvstub.Compact(rpc.CompactionRequest(revision=revision),
                                          timeout=self.timeout)
        try:
            await self._call("compact", "", do)
        except grpc.aio.AioRpcError as err:  # already compacted past it: fine
            if err.code() != grpc.StatusCode.OUT_OF_RANGE:
                raise

    # -- watch -------------------------------------------------------------------

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchBatch]:
        """Every change under ``prefix`` from ``start_revision`` (inclusive),
        in batches, plus empty batches when etcd reports progress. Ends with
        StorageError when the stream breaks, :class:`CompactedError` if the
        start is compacted.

        Progress comes only from etcd's timed notifications (progress_notify;
        etcd sends them to watchers that have caught up, in order with the
        events). Hand-requested progress (WatchProgressRequest) is not used:
        etcd 3.4 may answer it with a revision whose events are still on
        their way (etcd-io/etcd#15220), which would make events look seen.
        """
        client = await self._connected()

        async def request_stream():
            yield rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
                key=prefix, range_end=prefix_end(prefix), start_revision=start_revision,
                prev_kv=True, progress_notify=True))
            await asyncio.Event().wait()  # keep the request side open

        stream = rpc.WatchStub(client.channel).Watch(request_stream())
        try:
            async for resp in stream:
                if resp.compact_revision:
                    raise CompactedError(start_revision, resp.compact_revision)
                if resp.canceled:
                    raise StorageError(f"etcd cancelled the watch: {resp.cancel_reason}")
                if resp.created and not resp.events:
                    continue
                events = [WatchEvent(e.kv.key, e.kv.value, e.prev_kv.value, e.kv.mod_revision,
                                     e.type == rpc.Event.DELETE) for e in resp.events]
                revision = events[-1].mod_revision if events else resp.header.revision
                yield WatchBatch(events, revision)
        except asyncio.CancelledError:
            if _cancelled_by_us():
                raise
            raise StorageError("etcd watch: the connection was closed") from None
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                await self._fail_over(client)
            raise StorageError(f"etcd watch: {err.code().name}: {err.details()}") from err
        finally:
            stream.cancel()
