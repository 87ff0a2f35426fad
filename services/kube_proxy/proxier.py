"""The sync loop: Services and Endpoints in, one iptables-restore out.

As in kube-proxy, informer handlers only record what changed (converted to
:mod:`model` values once) and ask for a sync; the loop coalesces requests
so that syncs start at most once per ``min_sync_period`` (a burst of
changes becomes one restore), and runs a *full* sync every
``sync_period`` — rewriting every chain, which also puts back rules someone
else flushed — even when nothing changed. Between full syncs a sync is
*partial*: only chains whose rules changed are written (see
:mod:`restore`). Each service port's rules are kept between syncs and
recomputed only when the port or its endpoints change, so the cost of a
sync follows the size of the change, not of the cluster.

On start the proxier reads iptables-save once to learn what an earlier run
left behind; the first full sync then deletes stale chains of ours,
recreates the rest and re-inserts missing jumps, in one restore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import math
import time
from typing import Any

from services.kube_proxy import metrics
from services.kube_proxy.iptables import NFT, Iptables, IptablesError
from services.kube_proxy.model import (
    Endpoint, ServicePort, endpoints_by_port, service_ports, trigger_time,
)
from services.kube_proxy.restore import (
    RestorePlan, missing_jumps, owned_chains, parse_save, render, render_cleanup,
)
from services.kube_proxy.rules import (
    BUILTIN_CHAINS, JUMPS, TABLES, ProxyConfig, Ruleset, ServiceRules, assemble,
    endpoints_for, is_large_cluster, service_rules,
)
from services.machinery.clock import Clock, RealClock, wait_for
from services.machinery.informer import SharedInformerFactory
from services.machinery.store import DeletedFinalStateUnknown, object_key

log = logging.getLogger(__name__)


class SyncSchedule:
    """When to sync next, and whether that sync is full: pure, clock-free.

    - a change asks for a sync, which starts ``min_period`` after the
      previous sync started at the earliest (changes in between coalesce);
    - a full sync is due ``period`` after the last successful full one
      (and first thing);
    - after a failure the next sync is full, retried with doubling delays
      from ``min_period`` up to ``period``.
    """

    def __init__(self, min_period: float, period: float):
        if period <= 0 or min_period < 0:
            raise ValueError("sync period must be > 0 and min sync period >= 0")
        self.min_period = min_period
        self.period = period
        self.dirty = True
        self.need_full = True
        self.last_start = -math.inf
        self.last_full = -math.inf
        self.retry_at: float | None = None
        self.failures = 0

    def request(self) -> None:
        self.dirty = True

    def next_run(self) -> float:
        """The time (same clock as the others) the next sync should start."""
        full_at = self.last_full + self.period
        if self.retry_at is not None:
            return min(self.retry_at, full_at)
        if self.dirty:
            return min(self.last_start + self.min_period, full_at)
        return full_at

    def full_due(self, now: float) -> bool:
        return self.need_full or now >= self.last_full + self.period

    def begin(self, now: float) -> None:
        self.last_start = now
        self.dirty = False
        self.retry_at = None

    def end(self, now: float, ok: bool, full: bool) -> None:
        if ok:
            self.failures = 0
            if full:
                self.last_full = self.last_start
                self.need_full = False
            return
        self.failures += 1
        self.need_full = True
        delay = min(self.period, max(self.min_period, 0.1) * 2 ** (self.failures - 1))
        self.retry_at = now + delay


def healthy(now: float, started: float, last_success: float | None, period: float) -> bool:
    """kube-proxy's healthz rule: unhealthy once the last successful sync
    (or, before the first, the start) is more than two sync periods old."""
    since = last_success if last_success is not None else started
    return now - since < 2 * period


@dataclasses.dataclass(frozen=True, slots=True)
class SyncStats:
    """What one sync did, for logs, tests and the benchmark."""

    full: bool
    ok: bool
    seconds: float          # the whole sync
    build_seconds: float    # computing the rules and the restore text
    restore_seconds: float  # iptables-restore itself
    chains_written: int
    chains_deleted: int
    lines: int
    rules: dict[str, int]   # rules owned per table after the sync
    text: str = ""          # the restore input (kept only when asked)
    error: str = ""
    read_seconds: float = 0.0  # listing the built-in chains' jumps (full syncs)


class Proxier:
    """kube-proxy in iptables mode for one node.

    ``iptables``: where and how to run iptables (a network namespace in
    tests). ``keep_text``: remember the last restore input in
    :attr:`last_sync` (the benchmark replays it).
    """

    def __init__(self, client: Any, iptables: Iptables, config: ProxyConfig | None = None, *,
                 min_sync_period: float = 1.0, sync_period: float = 30.0,
                 clock: Clock | None = None, factory: SharedInformerFactory | None = None,
                 keep_text: bool = False):
        self.iptables = iptables
        self.config = config or ProxyConfig()
        self.clock = clock or RealClock()
        self.schedule = SyncSchedule(min_sync_period, sync_period)
        self.factory = factory or SharedInformerFactory(client, clock=self.clock)
        self.keep_text = keep_text
        self._services: dict[str, tuple[ServicePort, ...]] = {}
        self._endpoints: dict[str, dict[tuple[str, str], tuple[Endpoint, ...]]] = {}
        # Rules per service (all its ports), recomputed only for services
        # whose Service or Endpoints changed; the sorted order of services.
        self._rules: dict[str, tuple[tuple[ServiceRules, ...], int]] = {}
        self._changed: set[str] = set()
        self._order: list[str] | None = None
        self._endpoint_total = 0
        self._large = False
        self._pending_triggers: list[datetime.datetime] = []
        self._previous: Ruleset | None = None
        self._existing: dict[str, set[str]] = {}
        self._builtin_rules: dict[tuple[str, str], list[str]] | None = None
        self._wake = asyncio.Event()
        self._started = self.clock.now()
        self._last_success: float | None = None
        self._last_success_wall: datetime.datetime | None = None
        self.last_sync: SyncStats | None = None
        self.syncs = 0
        self.synced = asyncio.Event()  # set after each successful sync
        self._listen()

    # -- informers ------------------------------------------------------------------------

    def _listen(self) -> None:
        services = self.factory.informer("services")
        endpoints = self.factory.informer("endpoints")
        services.add_event_handler(self._service_added, self._service_updated,
                                   self._service_deleted)
        endpoints.add_event_handler(self._endpoints_added, self._endpoints_updated,
                                    self._endpoints_deleted)

    def _request(self) -> None:
        self.schedule.request()
        metrics.LAST_QUEUED.set(time.time())
        self._wake.set()

    def _service_added(self, obj: Any) -> None:
        self._set_service(object_key(obj), service_ports(obj))

    def _service_updated(self, old: Any, new: Any) -> None:
        if old.metadata.resource_version != new.metadata.resource_version:
            self._set_service(object_key(new), service_ports(new))

    def _service_deleted(self, obj: Any) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self._set_service(key, ())

    def _set_service(self, key: str, ports: tuple[ServicePort, ...]) -> None:
        if self._services.get(key, ()) == ports:
            return
        if ports:
            self._services[key] = ports
        else:
            self._services.pop(key, None)
        self._changed.add(key)
        metrics.SERVICE_CHANGES.inc()
        self._request()

    def _endpoints_added(self, obj: Any) -> None:
        self._set_endpoints(object_key(obj), endpoints_by_port(obj), trigger_time(obj))

    def _endpoints_updated(self, old: Any, new: Any) -> None:
        if old.metadata.resource_version != new.metadata.resource_version:
            self._set_endpoints(object_key(new), endpoints_by_port(new), trigger_time(new))

    def _endpoints_deleted(self, obj: Any) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self._set_endpoints(key, {}, None)

    def _set_endpoints(self, key: str, eps: dict[tuple[str, str], tuple[Endpoint, ...]],
                       when: datetime.datetime | None) -> None:
        if self._endpoints.get(key, {}) == eps:
            return
        if eps:
            self._endpoints[key] = eps
        else:
            self._endpoints.pop(key, None)
        self._changed.add(key)
        # Network programming latency runs from the change's own time when
        # the endpoints controller stamped it, else from when we saw it.
        self._pending_triggers.append(when or self.clock.wall())
        metrics.ENDPOINT_CHANGES.inc()
        self._request()

    # -- rules --------------------------------------------------------------------------

    def desired(self) -> Ruleset:
        """The rules for the current state. Only services whose Service or
        Endpoints changed since the last call are recomputed (all of them
        when the cluster crosses the large-cluster threshold, which changes
        every service's rules)."""
        for key in self._changed:
            self._recompute(key)
        self._changed.clear()
        large = is_large_cluster((self._endpoint_total,))
        if large != self._large:
            self._large = large
            for key in list(self._rules):
                self._recompute(key)
        if self._order is None:
            self._order = sorted(self._rules, key=lambda k: tuple(k.split("/", 1)))
        rules = self._rules
        return assemble((r for key in self._order for r in rules[key][0]), self.config)

    def _recompute(self, key: str) -> None:
        old = self._rules.pop(key, None)
        if old is not None:
            self._endpoint_total -= old[1]
        ports = self._services.get(key)
        if not ports:
            if old is not None:
                self._order = None
            return
        by_port = self._endpoints.get(key)
        pairs = [(sp, endpoints_for(sp, by_port))
                 for sp in sorted(ports, key=lambda sp: (sp.port_name, sp.protocol))]
        count = sum(len(eps) for _, eps in pairs)
        self._rules[key] = (tuple(service_rules(sp, eps, self.config, self._large)
                                  for sp, eps in pairs), count)
        self._endpoint_total += count
        if old is None:
            self._order = None

    # -- syncing -------------------------------------------------------------------------

    async def start_up(self) -> None:
        """Learn what an earlier run left: our chains and jumps (one
        iptables-save per table)."""
        builtin: dict[tuple[str, str], list[str]] = {}
        for table in TABLES:
            dump = parse_save(await self.iptables.save(table)).get(table)
            if dump is None:
                continue
            self._existing[table] = set(owned_chains({table: dump}).get(table, ()))
            for chain in BUILTIN_CHAINS[table]:
                builtin[(table, chain)] = dump.rules_in(chain)
        self._builtin_rules = builtin

    async def _current_jumps(self) -> dict[tuple[str, str], list[str]]:
        if self._builtin_rules is not None:  # fresh from start_up
            rules, self._builtin_rules = self._builtin_rules, None
            return rules
        pairs = sorted({(j.table, j.chain) for j in JUMPS})
        listed = await asyncio.gather(*(self.iptables.list_rules(t, c) for t, c in pairs))
        return dict(zip(pairs, listed))

    async def sync(self, full: bool) -> SyncStats:
        """One sync now: compute, render, restore. Never raises for
        iptables errors (they are logged, counted, and make the next sync
        full)."""
        started = time.monotonic()
        triggers, self._pending_triggers = self._pending_triggers, []
        restore_seconds = read_seconds = 0.0
        plan: RestorePlan | None = None
        desired = self.desired()
        try:
            if full:
                read_started = time.monotonic()
                jumps = missing_jumps(await self._current_jumps(), JUMPS)
                bulk = await self.iptables.mode() == NFT
                read_seconds = time.monotonic() - read_started
            else:
                jumps, bulk = [], False
            plan = render(desired, previous=None if full else self._previous,
                          existing=self._existing, missing_jumps=jumps, bulk_workaround=bulk)
            build_seconds = time.monotonic() - started - read_seconds
            if not plan.empty:
                restore_seconds = await self.iptables.restore(plan.text)
        except IptablesError as err:
            self._previous = None
            for table in TABLES:
                self._existing.setdefault(table, set()).update(desired.chains(table))
            self._pending_triggers[:0] = triggers
            stats = SyncStats(full, False, time.monotonic() - started, 0.0, restore_seconds,
                              0, 0, plan.text.count("\n") if plan else 0, {},
                              plan.text if plan and self.keep_text else "", str(err),
                              read_seconds)
            self.last_sync = stats
            log.error("syncing iptables rules failed: %s", err)
            return stats
        self._previous = desired
        self._existing = {table: set(desired.chains(table)) for table in TABLES}
        seconds = time.monotonic() - started
        now_wall = self.clock.wall()
        for when in triggers:
            latency = (now_wall - when).total_seconds()
            if latency >= 0:
                metrics.NETWORK_PROGRAMMING.observe(latency)
        counts = {table: desired.rule_count(table) for table in TABLES}
        for table, count in counts.items():
            metrics.IPTABLES_RULES.labels(table).set(count)
        metrics.SYNC_DURATION.observe(seconds)
        (metrics.SYNC_FULL_DURATION if full else metrics.SYNC_PARTIAL_DURATION).observe(seconds)
        metrics.LAST_SYNC.set(time.time())
        self._last_success = self.clock.now()
        self._last_success_wall = now_wall
        stats = SyncStats(full, True, seconds, build_seconds, restore_seconds,
                          sum(plan.written.values()),
                          sum(len(c) for c in plan.deleted.values()),
                          plan.text.count("\n"), counts, plan.text if self.keep_text else "",
                          read_seconds=read_seconds)
        self.last_sync = stats
        self.syncs += 1
        log.debug("synced iptables rules", extra={
            "full": full, "seconds": round(seconds, 4), "restore": round(restore_seconds, 4),
            "chains_written": stats.chains_written, "chains_deleted": stats.chains_deleted})
        self.synced.set()
        return stats

    async def run(self) -> None:
        """Watch, then sync as the schedule says, until cancelled."""
        self.factory.start()
        await self.factory.wait_for_cache_sync()
        await self.start_up()
        while True:
            self._wake.clear()
            now = self.clock.now()
            due = self.schedule.next_run()
            if due > now:
                try:
                    await wait_for(self.clock, self._wake.wait(), due - now)
                except TimeoutError:
                    pass
                continue
            full = self.schedule.full_due(now)
            self.schedule.begin(now)
            stats = await self.sync(full)
            self.schedule.end(self.clock.now(), stats.ok, full)

    def request_full_sync(self) -> None:
        """Make the next sync a full one, as soon as the schedule allows."""
        self.schedule.need_full = True
        self._request()

    # -- health ----------------------------------------------------------------------------

    async def healthz(self) -> tuple[bool, str]:
        """For :class:`HttpServer`: kube-proxy's healthz body, with the time
        of the last successful sync; 503 once that is two sync periods old."""
        ok = healthy(self.clock.now(), self._started, self._last_success, self.schedule.period)
        last = self._last_success_wall.isoformat() if self._last_success_wall else ""
        return ok, json.dumps({"lastUpdated": last, "currentTime": self.clock.wall().isoformat()})


async def cleanup(iptables: Iptables) -> int:
    """Remove every chain and jump the proxier owns (``--cleanup``); returns
    how many chains there were. Idempotent: nothing to do is not an error."""
    dumps = {}
    for table in TABLES:
        dumps.update(parse_save(await iptables.save(table)))
    text = render_cleanup(dumps)
    if text:
        await iptables.restore(text)
    return sum(len(chains) for chains in owned_chains(dumps).values())


__all__ = ["Proxier", "SyncSchedule", "SyncStats", "cleanup", "healthy"]
