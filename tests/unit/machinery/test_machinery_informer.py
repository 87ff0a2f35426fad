"""The informer's pure parts: relist reconciliation and watch-event handling.

The reflector against a real API server is in tests/integration/test_informer.py.
"""

from __future__ import annotations

import asyncio

from services.machinery import Client
from services.machinery.clock import FakeClock
from services.machinery.informer import (
    ADDED, DELETED, UPDATED, Informer, SharedInformerFactory, compute_replace_deltas,
    upsert_deltas,
)
from services.machinery.store import DeletedFinalStateUnknown
from tests.support import objects

SAFETY = 5


def pod(name: str, rv: int, uid: str = "", node: str = ""):
    obj = objects.pod(name, "ns", node=node)
    obj.metadata.resource_version = str(rv)
    obj.metadata.uid = uid or f"uid-{name}"
    return obj


def summary(deltas):
    return [(d.type, d.obj.key if isinstance(d.obj, DeletedFinalStateUnknown)
             else d.obj.metadata.name) for d in deltas]


def test_compute_replace_deltas_adds_updates_and_tombstones():
    known = {"ns/same": pod("same", 5), "ns/moved": pod("moved", 6), "ns/gone": pod("gone", 7)}
    listed = [pod("same", 5), pod("moved", 9), pod("new", 10)]
    deltas = compute_replace_deltas(known, listed)
    assert summary(deltas) == [(UPDATED, "moved"), (ADDED, "new"), (DELETED, "ns/gone")]
    update = deltas[0]
    assert update.old.metadata.resource_version == "6"
    tombstone = deltas[2].obj
    assert isinstance(tombstone, DeletedFinalStateUnknown)
    assert tombstone.obj.metadata.resource_version == "7"


def test_compute_replace_deltas_on_an_empty_cache_adds_everything():
    assert summary(compute_replace_deltas({}, [pod("a", 1), pod("b", 2)])) == [
        (ADDED, "a"), (ADDED, "b")]


def test_compute_replace_deltas_of_an_identical_list_is_empty():
    known = {"ns/a": pod("a", 3)}
    assert compute_replace_deltas(known, [pod("a", 3)]) == []


def test_compute_replace_deltas_compares_versions_as_integers():
    known = {"ns/a": pod("a", 9)}
    assert summary(compute_replace_deltas(known, [pod("a", 10)])) == [(UPDATED, "a")]
    # An older version than the handlers saw is never delivered.
    assert compute_replace_deltas({"ns/a": pod("a", 10)}, [pod("a", 9)]) == []


def test_upsert_deltas_treats_a_new_uid_as_delete_then_add():
    old, new = pod("a", 3, uid="first"), pod("a", 8, uid="second")
    deltas = upsert_deltas(old, new, "ns/a")
    assert summary(deltas) == [(DELETED, "ns/a"), (ADDED, "a")]
    assert deltas[0].obj.obj is old


def offline_informer(**kwargs) -> Informer:
    """An informer whose client points nowhere: nothing here does I/O."""
    return Informer(Client(["127.0.0.1:1"]), "pods", clock=FakeClock(), **kwargs)


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []
        self.event = asyncio.Event()

    def on_add(self, obj):
        self.calls.append(("add", obj.metadata.name, obj.metadata.resource_version))

    async def on_update(self, old, new):
        await asyncio.sleep(0)  # async handlers are awaited in order
        self.calls.append(("update", new.metadata.name, old.metadata.resource_version,
                           new.metadata.resource_version))

    def on_delete(self, obj):
        tomb = isinstance(obj, DeletedFinalStateUnknown)
        self.calls.append(("delete", obj.key if tomb else obj.metadata.name, tomb))


async def drain(informer: Informer) -> None:
    """Run the informer's dispatcher until every queued notification is out."""
    dispatcher = asyncio.ensure_future(informer._dispatch())
    try:
        while not informer._notes.empty():
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
    finally:
        dispatcher.cancel()


async def test_informer_handle_event_applies_changes_once_in_order():
    informer = offline_informer()
    rec = Recorder()
    informer.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    informer.handle_event("ADDED", pod("a", 5))
    informer.handle_event("ADDED", pod("a", 5))       # duplicate: ignored
    informer.handle_event("MODIFIED", pod("a", 7))
    informer.handle_event("MODIFIED", pod("a", 6))    # stale: ignored
    informer.handle_event("BOOKMARK", pod("", 20))
    informer.handle_event("DELETED", pod("a", 21))
    informer.handle_event("DELETED", pod("a", 22))    # unknown object: ignored
    await drain(informer)
    assert rec.calls == [("add", "a", "5"), ("update", "a", "5", "7"), ("delete", "a", False)]
    assert informer.store.list_keys() == []
    assert informer.last_sync_resource_version == "22"


async def test_informer_bookmark_only_advances_the_resource_version():
    informer = offline_informer()
    rec = Recorder()
    informer.add_event_handler(rec.on_add, rec.on_update, rec.on_delete)
    bookmark = pod("", 0)
    bookmark.metadata.resource_version = "99"
    informer.handle_event("BOOKMARK", bookmark)
    await drain(informer)
    assert rec.calls == []
    assert len(informer.store) == 0
    assert informer.last_sync_resource_version == "99"


async def test_informer_handler_that_raises_does_not_stop_the_others():
    informer = offline_informer()
    rec = Recorder()

    def broken(obj):
        raise RuntimeError("handler bug")

    informer.add_event_handler(on_add=broken)
    informer.add_event_handler(rec.on_add)
    informer.handle_event("ADDED", pod("a", 1))
    informer.handle_event("ADDED", pod("b", 2))
    await drain(informer)
    assert [c[1] for c in rec.calls] == ["a", "b"]


async def test_informer_late_handler_gets_adds_for_cached_objects_only_once():
    informer = offline_informer()
    informer._started = True  # as if run() were going
    early = Recorder()
    informer.add_event_handler(early.on_add)
    informer.handle_event("ADDED", pod("a", 1))
    late = Recorder()
    informer.add_event_handler(late.on_add, late.on_update)
    informer.handle_event("MODIFIED", pod("a", 2))
    await drain(informer)
    assert early.calls == [("add", "a", "1")]
    assert late.calls == [("add", "a", "1"), ("update", "a", "1", "2")]


async def test_informer_resync_redelivers_every_cached_object_as_update():
    clock = FakeClock()
    informer = Informer(Client(["127.0.0.1:1"]), "pods", clock=clock, resync_period=30)
    rec = Recorder()
    informer.add_event_handler(rec.on_add, rec.on_update)
    informer.handle_event("ADDED", pod("a", 1))
    informer._synced.set()
    resync = asyncio.ensure_future(informer._resync_loop())
    await clock.wait_for_sleepers(1)
    clock.advance(30)
    await clock.wait_for_sleepers(1)
    resync.cancel()
    await drain(informer)
    assert rec.calls == [("add", "a", "1"), ("update", "a", "1", "1")]


async def test_informer_wait_for_sync_times_out_on_its_clock():
    clock = FakeClock()
    informer = Informer(Client(["127.0.0.1:1"]), "pods", clock=clock)
    waiting = asyncio.ensure_future(informer.wait_for_sync(timeout=10))
    await clock.wait_for_sleepers(1)
    clock.advance(10)
    assert await asyncio.wait_for(waiting, SAFETY) is False


def test_shared_informer_factory_shares_one_informer_per_kind_and_scope():
    factory = SharedInformerFactory(Client(["127.0.0.1:1"]))
    pods = factory.informer("pods")
    assert factory.informer("Pod") is pods
    assert factory.informer("po", "") is pods
    assert factory.informer("pods", "ns1") is not pods
    assert factory.informer("pods", label_selector="app=x") is not pods
    # Cluster-scoped kinds ignore the namespace.
    assert factory.informer("nodes", "ns1") is factory.informer("nodes")
    assert len(factory.informers) == 4
