"""ResourceQuota: pods and cpu/memory requests per namespace, enforced
atomically in the API server's storage path.

Kubernetes splits this in two: the ResourceQuota admission plugin checks a
pod against the quotas' ``status.used`` and bumps it in a separate write,
and the quota controller recomputes ``status.used`` from the pods every few
minutes. Here the usage a pod adds or frees is written in the *same* etcd
transaction as the pod, with a compare on each quota's mod_revision and one
that no quota appeared in the namespace since the quotas were read, so
concurrent creates — on one API server or several — can never exceed a
quota, and ``status.used`` never drifts.

What counts, as in Kubernetes' pod evaluator: 1 pod, and the pod's requests
— max(sum over containers, largest init container) — under both names,
``requests.cpu`` and its synonym ``cpu`` (likewise memory). A pod in phase
Succeeded or Failed no longer counts: the status update that makes it
terminal frees its usage in that update's transaction. A pod being
deleted still counts until it is removed from etcd (Kubernetes also stops
counting one whose grace period has run out; that is time, not a write,
so it is left out here).

Refusals are PERMISSION_DENIED, Kubernetes' 403 Forbidden, with its words:
``pods "web" is forbidden: exceeded quota: q1, requested: pods=1, used:
pods=10, limited: pods=10`` and ``... failed quota: q1: must specify
requests.cpu`` for a pod that lacks a request for a resource a quota
limits. Only creates are checked (pods' requests are immutable; a change
that frees usage is never refused).

A quota's status is the server's: on every create and update (spec or
status) ``status.hard`` becomes ``spec.hard`` and ``status.used`` is
recomputed from the namespace's pods in etcd — synchronously, where
Kubernetes' controller does it moments later. A quota's own write compares
its mod_revision, and every usage-changing pod write touches every quota in
its namespace, so a count read after the quota was read is exact when the
write succeeds; a new quota instead compares that no pod changed since the
count, then recounts once it exists (see :meth:`QuotaAccounting.recount`).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from fractions import Fraction
from typing import Any

import grpc
from google.protobuf.message import Message

from services.api import quantity
from services.api.kinds import BY_KIND
from services.apiserver import errors
from services.apiserver.errors import quote
from services.apiserver.storage import ConflictError, Guard, GuardConflict, Storage
from services.apiserver.watchcache import WatchCache, decode

log = logging.getLogger(__name__)

PODS = "pods"
CPU_NAMES = ("cpu", "requests.cpu")
MEMORY_NAMES = ("memory", "requests.memory")
QUOTA_RESOURCES = (PODS, *CPU_NAMES, *MEMORY_NAMES)
TERMINAL_PHASES = ("Succeeded", "Failed")

_MAX_RETRIES = 16
_LOCK_STRIPES = 64

Usage = dict[str, Fraction]


# --- Pure core: usage, messages ------------------------------------------------------------


def _parse(text: str) -> Fraction | None:
    try:
        return quantity.parse_quantity(text)
    except (quantity.QuantityError, ValueError):
        return None  # validation refuses these before they get here


def parse_list(values: Mapping[str, str]) -> Usage:
    """A stored resource list (``status.used``, ``spec.hard``) as numbers."""
    out: Usage = {}
    for name, text in values.items():
        value = _parse(text)
        if value is not None:
            out[name] = value
    return out


def format_value(name: str, value: Fraction) -> str:
    """A quantity string for ``status.used``: memory in binary units when
    it divides evenly ("256Mi"), everything else decimal ("1500m", "3")."""
    binary = (name in MEMORY_NAMES and value.denominator == 1 and value.numerator % 1024 == 0)
    return quantity.format_quantity(value, binary=binary)


def counts(pod: Message) -> bool:
    """Whether a pod uses quota: not once it has Succeeded or Failed."""
    return pod.status.phase not in TERMINAL_PHASES


def _requests(container: Any) -> Usage:
    out: Usage = {}
    for resource in ("cpu", "memory"):
        if resource in container.resources.requests:
            value = _parse(container.resources.requests[resource])
            if value is not None:
                out[resource] = value
    return out


def pod_usage(pod: Message) -> Usage:
    """What one pod uses, terminal or not: Kubernetes' PodUsageFunc for the
    resources quota knows (zero-valued entries left out)."""
    total: Usage = {}
    for ctr in pod.spec.containers:
        for resource, value in _requests(ctr).items():
            total[resource] = total.get(resource, Fraction(0)) + value
    for ctr in pod.spec.init_containers:  # init containers run one at a time
        for resource, value in _requests(ctr).items():
            total[resource] = max(total.get(resource, Fraction(0)), value)
    usage: Usage = {PODS: Fraction(1)}
    for names, resource in ((CPU_NAMES, "cpu"), (MEMORY_NAMES, "memory")):
        if total.get(resource):
            for name in names:
                usage[name] = total[resource]
    return usage


def charged(pod: Message | None) -> Usage:
    """What a stored pod holds in its namespace's quotas."""
    return pod_usage(pod) if pod is not None and counts(pod) else {}


def delta(old: Message | None, new: Message | None) -> Usage:
    """What a write from ``old`` to ``new`` (None: absent) adds to quota
    usage; empty when it changes nothing (most writes: no quota touched)."""
    before, after = charged(old), charged(new)
    out: Usage = {}
    for name in set(before) | set(after):
        change = after.get(name, Fraction(0)) - before.get(name, Fraction(0))
        if change:
            out[name] = change
    return out


def total_usage(pods: Iterable[Message], names: Iterable[str]) -> dict[str, str]:
    """``status.used`` for a quota limiting ``names``: the sum over the
    pods that count, "0" where nothing is used."""
    wanted = [n for n in names if n in QUOTA_RESOURCES]
    sums: Usage = {name: Fraction(0) for name in wanted}
    for pod in pods:
        for name, value in charged(pod).items():
            if name in sums:
                sums[name] += value
    return {name: format_value(name, value) for name, value in sums.items()}


def hard_of(quota: Message) -> Mapping[str, str]:
    """The limits enforced: status.hard (spec.hard as last stored), or
    spec.hard for a quota stored before the server kept its status."""
    return quota.status.hard if quota.status.hard else quota.spec.hard


def missing_requests(pod: Message, limited: Iterable[str]) -> list[str]:
    """The request names a quota limits that some container of ``pod`` does
    not set (Kubernetes' pod evaluator Constraints): a pod without a cpu
    request cannot be charged against a cpu quota."""
    required = {n for n in limited if n in CPU_NAMES or n in MEMORY_NAMES}
    missing: set[str] = set()
    for ctr in [*pod.spec.init_containers, *pod.spec.containers]:
        has: set[str] = set()
        if "cpu" in ctr.resources.requests:
            has.update(CPU_NAMES)
        if "memory" in ctr.resources.requests:
            has.update(MEMORY_NAMES)
        missing |= required - has
    return sorted(missing)


def _pretty(values: Mapping[str, Any], names: Iterable[str]) -> str:
    return ",".join(f"{name}={values[name]}" for name in sorted(names) if name in values)


def refusal(pod: Message, quotas: Iterable[Message]) -> str | None:
    """Why creating ``pod`` would break one of ``quotas`` (Kubernetes'
    words after "is forbidden: "), or None. Constraints first, then usage,
    quotas in name order."""
    ordered = sorted(quotas, key=lambda q: q.metadata.name)
    for quota in ordered:
        missing = missing_requests(pod, hard_of(quota))
        if missing:
            return f"failed quota: {quota.metadata.name}: must specify {','.join(missing)}"
    requested = charged(pod)
    for quota in ordered:
        hard_text = hard_of(quota)
        hard = parse_list(hard_text)
        used = parse_list(quota.status.used)
        wanted = {n: v for n, v in requested.items() if n in hard}
        exceeded = [n for n, v in wanted.items() if used.get(n, Fraction(0)) + v > hard[n]]
        if exceeded:
            shown = {n: format_value(n, v) for n, v in wanted.items()}
            used_text = {n: quota.status.used.get(n, "0") for n in exceeded}
            return (f"exceeded quota: {quota.metadata.name}, requested: {_pretty(shown, exceeded)}"
                    f", used: {_pretty(used_text, exceeded)}, limited: "
                    f"{_pretty(hard_text, exceeded)}")
    return None


def charge(quota: Message, change: Usage) -> Message:
    """A copy of ``quota`` with ``change`` added to ``status.used`` for the
    resources it limits (never below zero)."""
    out = type(quota)()
    out.CopyFrom(quota)
    used = parse_list(out.status.used)
    for name in hard_of(quota):
        if name in change:
            value = max(used.get(name, Fraction(0)) + change[name], Fraction(0))
            out.status.used[name] = format_value(name, value)
    return out


def set_status(quota: Message, pods: Iterable[Message]) -> None:
    """The server-owned status: hard from spec, used counted from ``pods``."""
    quota.ClearField("status")
    quota.status.hard.update(quota.spec.hard)
    quota.status.used.update(total_usage(pods, quota.spec.hard))


def forbidden(resource: str, name: str, detail: str) -> errors.ApiStatus:
    """Kubernetes' 403 Forbidden for an admission refusal."""
    return errors.ApiStatus(grpc.StatusCode.PERMISSION_DENIED,
                            f"{resource} {quote(name)} is forbidden: {detail}")


# --- Keys ---------------------------------------------------------------------------------

_QUOTA_KIND = BY_KIND["ResourceQuota"]
_POD_KIND = BY_KIND["Pod"]


def quota_prefix(namespace: str) -> bytes:
    return f"/registry/{_QUOTA_KIND.resource}/{namespace}/".encode()


def pod_prefix(namespace: str) -> bytes:
    return f"/registry/{_POD_KIND.resource}/{namespace}/".encode()


def _encode(obj: Message) -> bytes:
    """The stored form (as the registry stores it: no resourceVersion)."""
    stored = type(obj)()
    stored.CopyFrom(obj)
    stored.metadata.resource_version = ""
    return stored.SerializeToString(deterministic=True)


# --- Shell: reads and transactions ---------------------------------------------------------

Txn = Callable[[Guard | None], Awaitable[int]]


class QuotaAccounting:
    """Charges pod writes to their namespace's quotas and computes quota
    status, over the real storage. One per registry that needs it (Pod,
    ResourceQuota)."""

    def __init__(self, storage: Storage, quotas: WatchCache):
        self.storage = storage
        self.quotas = quotas
        # Pod writes that touch one namespace's quotas take turns within
        # this server: otherwise 50 concurrent creates would mostly fail
        # their compares and retry. Replicas still race; compares decide.
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    def _lock(self, namespace: str) -> asyncio.Lock:
        return self._locks[zlib.crc32(namespace.encode()) % _LOCK_STRIPES]

    # -- pods ------------------------------------------------------------------------

    async def write_pod(self, old: Message | None, new: Message | None, txn: Txn) -> int:
        """Run ``txn`` — the registry's own create/update/delete of a pod
        from ``old`` to ``new`` (None: absent) — with the namespace's quotas
        charged in the same transaction; refuse a create that does not fit.
        ``txn`` gets the Guard to add and returns the new revision; its
        KeyExists/ConflictError (the pod itself changed) pass through."""
        pod = new if new is not None else old
        assert pod is not None
        change = delta(old, new)
        if not change:
            return await txn(None)
        namespace = pod.metadata.namespace
        prefix = quota_prefix(namespace)
        seen_at = self.quotas.revision
        if seen_at > 0 and not any(k.startswith(prefix) for k in self.quotas.objects):
            # The common case: no quota here (as of the cache). The compare
            # proves it still holds when the pod is written.
            try:
                return await txn(Guard(unchanged=((prefix, seen_at),)))
            except GuardConflict:
                pass  # a quota appeared: charge it
        creating = old is None
        async with self._lock(namespace):
            for _ in range(_MAX_RETRIES):
                quotas, read_at = await self._read_quotas(namespace)
                if creating:
                    why = refusal(pod, [q for q, _ in quotas])
                    if why:
                        raise forbidden(_POD_KIND.resource, pod.metadata.name, why)
                puts = [(self._key(q), _encode(charge(q, change)), rev) for q, rev in quotas]
                try:
                    return await txn(Guard(puts=puts, unchanged=((prefix, read_at),)))
                except GuardConflict:
                    continue  # a quota changed (another replica, an edit): re-read
        raise errors.unavailable(
            f"could not update the resource quotas of namespace {quote(namespace)}; too much "
            "contention, try again")

    async def _read_quotas(self, namespace: str) -> tuple[list[tuple[Message, int]], int]:
        kvs, _, read_at, _ = await self.storage.range(quota_prefix(namespace),
                                                      kind=_QUOTA_KIND.kind)
        return [(decode(_QUOTA_KIND, kv.value, kv.mod_revision), kv.mod_revision)
                for kv in kvs], read_at

    @staticmethod
    def _key(quota: Message) -> bytes:
        return quota_prefix(quota.metadata.namespace) + quota.metadata.name.encode()

    # -- quotas ----------------------------------------------------------------------

    async def pods_in(self, namespace: str) -> tuple[list[Message], int]:
        """Every pod of ``namespace`` as etcd holds it, and the revision read
        at (paged, at one revision: a consistent snapshot)."""
        prefix = pod_prefix(namespace)
        pods: list[Message] = []
        start, revision = None, 0
        while True:
            kvs, more, revision, _ = await self.storage.range(
                prefix, start=start, limit=1000, revision=revision, kind=_POD_KIND.kind)
            pods += [decode(_POD_KIND, kv.value, kv.mod_revision) for kv in kvs]
            if not more:
                return pods, revision
            start = kvs[-1].key + b"\x00"

    async def count(self, quota: Message) -> int:
        """Set ``quota``'s status from the namespace's pods now; return the
        revision counted at. Exact once written over a quota still at the
        mod_revision read before this call (every pod write that changes
        usage since would have changed that quota)."""
        pods, read_at = await self.pods_in(quota.metadata.namespace)
        set_status(quota, pods)
        return read_at

    def new_quota_guard(self, quota: Message, counted_at: int) -> Guard:
        """For a quota's create: no pod of its namespace created or changed
        since it was counted (none of those writes knew of the quota)."""
        return Guard(unchanged=((pod_prefix(quota.metadata.namespace), counted_at),))

    async def recount(self, quota: Message) -> Message:
        """Recount a just-created quota now that every pod write charges it.
        Its create's guard saw no pod created or changed while it was
        counted, but not a pod removed then; this takes such a pod off.
        Best effort: under constant pod churn the count errs high (refusing
        early, never admitting too much) until the quota's next update."""
        key = self._key(quota)
        for _ in range(_MAX_RETRIES):
            kv, _ = await self.storage.get(key, _QUOTA_KIND.kind)
            if kv is None:
                return quota
            current = decode(_QUOTA_KIND, kv.value, kv.mod_revision)
            if current.metadata.uid != quota.metadata.uid:
                return quota
            fresh = type(current)()
            fresh.CopyFrom(current)
            await self.count(fresh)
            if fresh.status == current.status:
                return current
            try:
                rev = await self.storage.update(key, _encode(fresh), kv.mod_revision,
                                                kind=_QUOTA_KIND.kind)
            except ConflictError:
                continue
            fresh.metadata.resource_version = str(rev)
            return fresh
        log.warning("resource quota %s/%s: could not recount under pod churn; status.used may "
                    "be high until its next update", quota.metadata.namespace,
                    quota.metadata.name)
        return quota


def objects_in_namespace(caches: Iterable[WatchCache], namespace: str) -> int:
    """How many objects of every namespaced kind ``namespace`` holds, from
    the watch caches' per-namespace counts."""
    return sum(cache.count_in(namespace) for cache in caches)


def too_many_objects(namespace: str, limit: int) -> errors.ApiStatus:
    return errors.ApiStatus(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"namespace {quote(namespace)} has reached its limit of {limit} objects "
        "(--max-objects-per-namespace); delete some before creating more")
