"""The generic resource registry: create, read, update, delete and watch one
kind in etcd, with the per-kind rules delegated to its strategy.

Every write is a read-modify-write guarded by an etcd compare on the key's
mod_revision, so concurrent writers (and API server replicas) never lose an
update: a client that sent a resourceVersion gets ABORTED when it is stale;
an unconditional update is retried against the latest object.

Pod writes that change quota usage carry their namespace's ResourceQuota
updates in the same transaction, and a ResourceQuota's status is computed
as it is written (admission/quota.py); creates beyond
``max_objects_per_namespace`` are refused.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from services.api import selectors
from services.api.kinds import Kind
from services.apiserver import defaulting, errors
from services.apiserver.admission import quota
from services.apiserver.errors import quote
from services.apiserver.storage import (
    CompactedError,
    ConflictError,
    Guard,
    GuardConflict,
    KeyExists,
    Storage,
)
from services.apiserver.strategies import Strategy
from services.apiserver.strategies.base import spec_of
from services.apiserver.watchcache import TooOld, WatchCache, Watcher, decode, object_key

log = logging.getLogger(__name__)

_MAX_RETRIES = 16
_CACHE_READY_TIMEOUT = 30.0  # a list or watch waits no longer for a cache being rebuilt
_NAME_SUFFIX = string.ascii_lowercase + string.digits


def _now_seconds() -> int:
    return int(time.time())


def _encode(obj: Message) -> bytes:
    """The stored form: the resourceVersion lives in etcd's mod_revision."""
    stored = type(obj)()
    stored.CopyFrom(obj)
    stored.metadata.resource_version = ""
    return stored.SerializeToString(deterministic=True)


def _copy(obj: Message) -> Message:
    out = type(obj)()
    out.CopyFrom(obj)
    return out


def encode_continue(revision: int, next_key: bytes) -> str:
    raw = json.dumps({"rv": revision, "start": next_key.decode()}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str, prefix: bytes) -> tuple[int, bytes]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        revision, start = int(data["rv"]), data["start"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise errors.bad_request(f"invalid continue token {token[:40]!r}") from None
    if not start.startswith(prefix) or revision <= 0:
        raise errors.bad_request("continue token does not belong to this list")
    return revision, start


def parse_resource_version(value: str, what: str = "resourceVersion") -> int:
    if not value.isdigit():
        raise errors.bad_request(f"{what} {quote(value)} is not a valid resource version")
    return int(value)


class Registry:
    """Storage operations for one kind."""

    def __init__(self, kind: Kind, storage: Storage, cache: WatchCache, strategy: Strategy,
                 namespaces: WatchCache | None, *,
                 caches: Mapping[str, WatchCache] | None = None,
                 max_objects_per_namespace: int = 0):
        """``caches``: every kind's watch cache by kind name (the server's),
        for quota and the per-namespace object count; without it neither
        is enforced. ``max_objects_per_namespace``: 0 is no limit."""
        self.kind = kind
        self.storage = storage
        self.cache = cache
        self.strategy = strategy
        self.namespaces = namespaces  # the Namespace kind's cache, to check existence
        self.prefix = f"/registry/{kind.resource}/".encode()
        self.caches = caches or {}
        self.max_objects_per_namespace = max_objects_per_namespace
        self.quota: quota.QuotaAccounting | None = None
        if kind.kind in ("Pod", "ResourceQuota") and "ResourceQuota" in self.caches:
            self.quota = quota.QuotaAccounting(storage, self.caches["ResourceQuota"])

    def key(self, namespace: str, name: str) -> bytes:
        return object_key(self.kind, namespace, name)

    def _require_name(self, namespace: str, name: str) -> None:
        if not name:
            raise errors.bad_request("name is required")
        if "/" in name or (namespace and "/" in namespace):
            raise errors.bad_request(f"name {quote(name)} may not contain '/'")
        if self.kind.namespaced and not namespace:
            raise errors.bad_request(f"namespace is required for {self.kind.resource}")

    def _scope(self, obj: Message) -> None:
        meta = obj.metadata
        if self.kind.namespaced:
            if not meta.namespace:
                meta.namespace = "default"
        elif meta.namespace:
            raise errors.bad_request(
                f"{self.kind.kind} is cluster-scoped: metadata.namespace must be empty")

    async def _check_namespace(self, namespace: str) -> None:
        """Objects may only be created in a namespace that exists and is not
        being deleted."""
        if not self.kind.namespaced or self.namespaces is None:
            return
        ns = self.namespaces.get(object_key(self.namespaces.kind, "", namespace))
        if ns is None:  # maybe created a moment ago through another replica
            kv, _ = await self.storage.get(object_key(self.namespaces.kind, "", namespace))
            ns = decode(self.namespaces.kind, kv.value, kv.mod_revision) if kv else None
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns.metadata.HasField("deletion_timestamp"):
            raise errors.precondition(
                f"unable to create new content in namespace {quote(namespace)} because it is being "
                "terminated")

    async def _read(self, namespace: str, name: str) -> tuple[Message, int]:
        kv, _ = await self.storage.get(self.key(namespace, name), self.kind.kind)
        if kv is None:
            raise errors.not_found(self.kind.resource, name)
        return decode(self.kind, kv.value, kv.mod_revision), kv.mod_revision

    async def _read_for_write(self, namespace: str, name: str, attempt: int,
                              expected: str = "") -> tuple[Message, int]:
        """The object a read-modify-write starts from. The first attempt may
        use the watch cache: the write's compare on mod_revision rejects a
        stale copy, and the retry then reads etcd. This saves one etcd round
        trip for most updates and bindings."""
        if attempt == 0:
            cached = self.cache.get(self.key(namespace, name))
            if cached is not None and (not expected
                                       or cached.metadata.resource_version == expected):
                return _copy(cached), int(cached.metadata.resource_version)
        return await self._read(namespace, name)

    # -- create ------------------------------------------------------------------------

    async def create(self, obj: Message) -> Message:
        obj = _copy(obj)
        self._scope(obj)
        meta = obj.metadata
        if not meta.name and meta.generate_name:
            meta.name = meta.generate_name + "".join(secrets.choice(_NAME_SUFFIX)
                                                     for _ in range(5))
        self.strategy.prepare_create(obj)
        for field in ("resource_version", "deletion_timestamp", "deletion_grace_period_seconds"):
            meta.ClearField(field)
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp.FromSeconds(_now_seconds())
        meta.generation = 1
        defaulting.set_api_version_and_kind(obj)
        self.strategy.validate(obj, None)
        await self._check_namespace(meta.namespace)
        self._check_object_count(meta.namespace)
        key = self.key(meta.namespace, meta.name)
        for attempt in range(_MAX_RETRIES):
            # Each attempt allocates on a fresh copy: values picked by a failed
            # attempt must not look like values the client asked for.
            candidate = _copy(obj)
            alloc = await self.strategy.allocate(candidate, None, attempt, self.storage)
            guard = None
            if self._is_quota():
                guard = self.quota.new_quota_guard(candidate, await self.quota.count(candidate))

            async def txn(extra: Guard | None, candidate=candidate, alloc=alloc,
                          guard=guard) -> int:
                return await self.storage.create(key, _encode(candidate),
                                                 also_create=alloc.create,
                                                 guard=extra or guard, kind=self.kind.kind)
            try:
                revision = await self._charged(None, candidate, txn)
            except KeyExists as err:
                if err.key == key:
                    raise errors.already_exists(self.kind.resource, meta.name) from None
                if err.key in alloc.auto:
                    continue  # someone took the value we picked: pick again
                raise errors.invalid(self.kind.kind, meta.name,
                                     [self.strategy.describe_taken(err.key)]) from None
            except GuardConflict:
                continue  # a pod changed while the new quota counted them: count again
            candidate.metadata.resource_version = str(revision)
            if self._is_quota():
                return await self.quota.recount(candidate)
            return candidate
        raise errors.unavailable("could not allocate; too much contention, try again")

    def _is_quota(self) -> bool:
        return self.quota is not None and self.kind.kind == "ResourceQuota"

    async def _charged(self, old: Message | None, new: Message | None,
                       txn: quota.Txn) -> int:
        """Run a pod's write with its quota usage change (others: as is)."""
        if self.quota is None or self.kind.kind != "Pod":
            return await txn(None)
        return await self.quota.write_pod(old, new, txn)

    def _check_object_count(self, namespace: str) -> None:
        """RESOURCE_EXHAUSTED past ``max_objects_per_namespace``. Counted
        from the watch caches, so concurrent creates may overshoot by a
        few: a guard against floods, not an exact quota."""
        limit = self.max_objects_per_namespace
        if limit <= 0 or not self.kind.namespaced or not self.caches:
            return
        if quota.objects_in_namespace(self.caches.values(), namespace) >= limit:
            raise quota.too_many_objects(namespace, limit)

    # -- read ----------------------------------------------------------------------------

    async def get(self, namespace: str, name: str) -> Message:
        self._require_name(namespace, name)
        obj, _ = await self._read(namespace, name)
        return obj

    def predicate(self, namespace: str, label_selector: str, field_selector: str):
        """A filter over objects for list and watch; INVALID_ARGUMENT on a bad selector."""
        try:
            labels = selectors.parse_label_selector(label_selector)
            fields = selectors.parse_field_selector(field_selector)
            selectors.check_fields(self.kind.kind, fields)
        except selectors.SelectorError as err:
            raise errors.bad_request(str(err)) from None
        namespaced = self.kind.namespaced and namespace

        def matches(obj: Message) -> bool:
            if namespaced and obj.metadata.namespace != namespace:
                return False
            if not labels.empty and not labels.matches(obj.metadata.labels):
                return False
            return fields.empty or fields.matches(selectors.object_fields(obj))
        return matches

    async def list(self, namespace: str, label_selector: str, field_selector: str, limit: int,
                   continue_token: str, resource_version: str) -> Message:
        matches = self.predicate(namespace, label_selector, field_selector)
        result = self.kind.list_message()
        if limit < 0:
            raise errors.bad_request("limit must not be negative")
        if resource_version == "0" and not continue_token:
            # Served from the watch cache: fast, possibly slightly stale (as Kubernetes).
            await self._cache_ready()
            items = sorted(self.cache.list(matches), key=lambda o: (o.metadata.namespace,
                                                                    o.metadata.name))
            result.items.extend(items)
            result.metadata.resource_version = str(self.cache.revision)
            return result
        prefix = self.prefix + (f"{namespace}/".encode() if self.kind.namespaced and namespace
                                else b"")
        start, revision = None, 0
        if continue_token:
            revision, start = decode_continue(continue_token, prefix)
        elif resource_version:
            revision = parse_resource_version(resource_version)
        want = limit or 0
        page = max(want, 100) if want else 1000
        while True:
            try:
                kvs, more, read_at, _ = await self.storage.range(
                    prefix, start=start, limit=page, revision=revision, kind=self.kind.kind)
            except CompactedError:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                    if continue_token else
                    f"too old resource version: {resource_version}") from None
            revision = revision or read_at
            for kv in kvs:
                obj = decode(self.kind, kv.value, kv.mod_revision)
                if matches(obj):
                    result.items.append(obj)
                    if want and len(result.items) == want:
                        rest = more or kv is not kvs[-1]
                        if rest:
                            result.metadata.continue_token = encode_continue(
                                revision, kv.key + b"\x00")
                        result.metadata.resource_version = str(revision)
                        return result
            if not more:
                break
            start = kvs[-1].key + b"\x00"
        result.metadata.resource_version = str(revision)
        return result

    # -- update ----------------------------------------------------------------------------

    async def update(self, obj: Message, *, status: bool = False) -> Message:
        """Update (metadata and spec) or, with ``status``, UpdateStatus."""
        self._scope(obj)
        meta = obj.metadata
        self._require_name(meta.namespace, meta.name)
        wanted = meta.resource_version
        if wanted:
            parse_resource_version(wanted)
        for attempt in range(_MAX_RETRIES):
            old, revision = await self._read_for_write(meta.namespace, meta.name, attempt, wanted)
            if wanted and wanted != str(revision):
                raise errors.conflict(self.kind.resource, meta.name)
            if meta.uid and meta.uid != old.metadata.uid:
                raise errors.precondition(
                    f"Precondition failed: UID in precondition: {meta.uid}, UID in object meta: "
                    f"{old.metadata.uid}")
            new = _copy(obj)
            if status:
                self.strategy.prepare_status_update(new, old)
            else:
                self._keep_server_fields(new, old)
                self.strategy.prepare_update(new, old)
            defaulting.set_api_version_and_kind(new)
            new.metadata.resource_version = ""
            if self._is_quota():
                # The server owns a quota's status: recount it with every
                # write (exact: the write compares the quota read above).
                await self.quota.count(new)
            if status:
                self.strategy.validate_status(new, old)
            else:
                self.strategy.validate(new, old)
            try:
                return await self._write(new, old, revision)
            except ConflictError:
                if wanted and attempt > 0:
                    raise errors.conflict(self.kind.resource, meta.name) from None
        raise errors.conflict(self.kind.resource, meta.name)

    def _keep_server_fields(self, new: Message, old: Message) -> None:
        """Fields only the server sets survive a client's update unchanged."""
        nm, om = new.metadata, old.metadata
        nm.uid = om.uid
        nm.creation_timestamp.CopyFrom(om.creation_timestamp)
        nm.ClearField("deletion_timestamp")
        nm.ClearField("deletion_grace_period_seconds")
        if om.HasField("deletion_timestamp"):
            nm.deletion_timestamp.CopyFrom(om.deletion_timestamp)
            # While deleting, finalizers may be removed but not added.
            kept = [f for f in nm.finalizers if f in om.finalizers]
            del nm.finalizers[:]
            nm.finalizers.extend(kept)
        if om.HasField("deletion_grace_period_seconds"):
            nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds
        nm.generate_name = nm.generate_name or om.generate_name
        nm.generation = om.generation + (1 if spec_of(new) != spec_of(old) else 0)

    async def _write(self, new: Message, old: Message, revision: int) -> Message:
        """Store ``new`` over ``old`` (at ``revision``), or remove it when its
        deletion is no longer held by anything."""
        old_bytes, new_bytes = _encode(old), _encode(new)
        if self._deletable(new):
            return await self._remove(new, old, revision)
        if new_bytes == old_bytes:
            return old  # nothing changed: no write, no new resourceVersion
        key = self.key(new.metadata.namespace, new.metadata.name)
        for attempt in range(_MAX_RETRIES):
            candidate = _copy(new)
            alloc = await self.strategy.allocate(candidate, old, attempt, self.storage)

            async def txn(guard: Guard | None, candidate=candidate, alloc=alloc) -> int:
                return await self.storage.update(key, _encode(candidate), revision,
                                                 also_create=alloc.create,
                                                 also_delete=alloc.delete, guard=guard,
                                                 kind=self.kind.kind)
            try:
                rev = await self._charged(old, candidate, txn)
            except KeyExists as err:
                if err.key in alloc.auto:
                    continue
                raise errors.invalid(self.kind.kind, new.metadata.name,
                                     [self.strategy.describe_taken(err.key)]) from None
            candidate.metadata.resource_version = str(rev)
            return candidate
        raise errors.unavailable("could not allocate; too much contention, try again")

    def _deletable(self, obj: Message) -> bool:
        meta = obj.metadata
        return (meta.HasField("deletion_timestamp") and not meta.finalizers
                and meta.deletion_grace_period_seconds == 0
                and not self.strategy.blocks_deletion(obj))

    async def _remove(self, obj: Message, stored: Message, revision: int) -> Message:
        """Remove ``obj`` from etcd for good (``stored``: as it is there, at
        ``revision``): the end of a graceful deletion. A pod's quota usage
        is freed in the same transaction."""
        key = self.key(obj.metadata.namespace, obj.metadata.name)

        async def txn(guard: Guard | None) -> int:
            return await self.storage.delete(key, revision, also_delete=self.strategy.release(obj),
                                             guard=guard, kind=self.kind.kind)
        rev = await self._charged(stored, None, txn)
        obj.metadata.resource_version = str(rev)
        return obj

    # -- delete -----------------------------------------------------------------------------

    async def delete(self, namespace: str, name: str, *, uid: str | None = None,
                     resource_version: str | None = None, grace_period: int | None = None,
                     propagation_policy: str = "") -> Message:
        self._require_name(namespace, name)
        if propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'propagationPolicy {quote(propagation_policy)}: supported values: "Orphan", '
                '"Foreground", "Background"')
        if grace_period is not None and grace_period < 0:
            grace_period = 0
        for _ in range(_MAX_RETRIES):
            obj, revision = await self._read(namespace, name)
            meta = obj.metadata
            if uid is not None and uid != meta.uid:
                raise errors.precondition(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{meta.uid}")
            if resource_version is not None and resource_version != str(revision):
                raise errors.conflict(self.kind.resource, name)
            new = _copy(obj)
            new.metadata.resource_version = ""
            self._mark_deleting(new, grace_period, propagation_policy)
            self.strategy.prepare_delete(new)
            try:
                if self._deletable(new):
                    return await self._remove(new, obj, revision)
                return await self._write(new, obj, revision)
            except ConflictError:
                if resource_version is not None:
                    raise errors.conflict(self.kind.resource, name) from None
        raise errors.conflict(self.kind.resource, name)

    def _mark_deleting(self, obj: Message, grace_period: int | None, policy: str) -> None:
        """Set deletionTimestamp and friends as Kubernetes' graceful deletion does."""
        meta = obj.metadata
        grace = self.strategy.grace_period(obj, grace_period)
        if policy == "Foreground" and "foregroundDeletion" not in meta.finalizers:
            meta.finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in meta.finalizers:
            meta.finalizers.append("orphan")
        now = _now_seconds()
        if not meta.HasField("deletion_timestamp"):
            meta.deletion_timestamp.FromSeconds(now + grace)
            meta.deletion_grace_period_seconds = grace
        elif grace < meta.deletion_grace_period_seconds:
            # A shorter grace period may cut a pending deletion short.
            meta.deletion_timestamp.FromSeconds(min(meta.deletion_timestamp.seconds, now + grace))
            meta.deletion_grace_period_seconds = grace

    # -- bind ---------------------------------------------------------------------------------

    async def bind(self, binding: Any) -> Message:
        """Set a pod's spec.nodeName if still unset: the scheduler's only write."""
        meta, target = binding.metadata, binding.target
        namespace = meta.namespace or "default"
        self._require_name(namespace, meta.name)
        if not target.name:
            raise errors.bad_request("target.name (the node) is required")
        if target.kind not in ("", "Node"):
            raise errors.bad_request(f'target.kind must be "Node", not {quote(target.kind)}')
        for attempt in range(_MAX_RETRIES):
            pod, revision = await self._read_for_write(namespace, meta.name, attempt)
            if meta.uid and meta.uid != pod.metadata.uid:
                raise errors.precondition(f"pod {quote(meta.name)} has another UID")
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.precondition(f"pod {quote(meta.name)} is being deleted, cannot be "
                                          "assigned to a host")
            if pod.spec.node_name:
                raise errors.precondition(f"pod {quote(meta.name)} is already assigned to node "
                                          f"{quote(pod.spec.node_name)}")
            new = _copy(pod)
            new.metadata.resource_version = ""
            new.spec.node_name = target.name
            _set_condition(new, "PodScheduled", "True")
            try:
                return await self._write(new, pod, revision)
            except ConflictError:
                continue
        raise errors.conflict(self.kind.resource, meta.name)

    # -- watch ----------------------------------------------------------------------------------

    async def _cache_ready(self) -> None:
        """Wait for the watch cache to be (re)built, within a deadline: while
        etcd is unreachable a list or watch fails UNAVAILABLE, never hangs."""
        try:
            await asyncio.wait_for(self.cache.ready.wait(), _CACHE_READY_TIMEOUT)
        except asyncio.TimeoutError:
            raise errors.unavailable(
                f"the watch cache of {self.kind.resource} is not ready; try again") from None

    async def watch(self, namespace: str, label_selector: str, field_selector: str,
                    resource_version: str, allow_bookmarks: bool) -> Watcher:
        matches = self.predicate(namespace, label_selector, field_selector)
        after = None
        if resource_version not in ("", "0"):
            after = parse_resource_version(resource_version)
        await self._cache_ready()
        try:
            return self.cache.watch(after, matches, bookmarks=allow_bookmarks)
        except TooOld as err:
            raise errors.expired(str(err)) from None


def _set_condition(pod: Message, type_: str, status: str) -> None:
    """Set a pod condition as Kubernetes' binding does: the whole condition
    is replaced (a stale reason or message from an earlier failure goes)."""
    for cond in pod.status.conditions:
        if cond.type == type_:
            if cond.status != status:
                cond.last_transition_time.FromSeconds(_now_seconds())
            cond.status = status
            cond.reason = cond.message = ""
            return
    cond = pod.status.conditions.add(type=type_, status=status)
    cond.last_transition_time.FromSeconds(_now_seconds())
