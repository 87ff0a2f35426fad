"""The watch cache's pure core: applying etcd events, replaying history,
filtering, the window, bookmarks. No etcd: events are fed in directly."""

from __future__ import annotations

import pytest

from services.api import kinds
from services.apiserver.storage import WatchEvent
from services.apiserver.watchcache import TooOld, WatchCache, object_key

POD = kinds.BY_KIND["Pod"]


def _pod_event(name: str, revision: int, labels: dict[str, str] | None = None,
               deleted: bool = False) -> WatchEvent:
    pod = POD.message()
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.metadata.labels.update(labels or {})
    value = b"" if deleted else pod.SerializeToString()
    return WatchEvent(object_key(POD, "default", name), value, b"", revision, deleted)


def _cache(history: int = 10) -> WatchCache:
    cache = WatchCache(POD, storage=None, history=history)  # storage unused by the core
    cache.ready.set()
    return cache


def _drain(watcher) -> list[tuple[str, str, str]]:
    out = []
    while not watcher.queue.empty():
        ev = POD.event_message.FromString(watcher.queue.get_nowait())
        out.append((ev.type, ev.object.metadata.name, ev.object.metadata.resource_version))
    return out


def _all(_obj) -> bool:
    return True


def test_watchcache_replays_history_after_a_revision():
    cache = _cache()
    cache._apply([_pod_event("a", 2), _pod_event("b", 3), _pod_event("a", 4)], 4)
    watcher = cache.watch(2, _all, bookmarks=False)
    assert _drain(watcher) == [("ADDED", "b", "3"), ("MODIFIED", "a", "4")]


def test_watchcache_skips_events_the_client_already_listed():
    """A client that listed at revision 5 from etcd while the cache was still
    at 3 must not get events 4 and 5 when the cache catches up."""
    cache = _cache()
    cache._apply([_pod_event("a", 3)], 3)
    watcher = cache.watch(5, _all, bookmarks=False)
    cache._apply([_pod_event("b", 4), _pod_event("c", 5), _pod_event("d", 6)], 6)
    assert _drain(watcher) == [("ADDED", "d", "6")]


def test_watchcache_start_from_now_sends_current_state_first():
    cache = _cache()
    cache._apply([_pod_event("a", 2), _pod_event("b", 3), _pod_event("b", 4, deleted=True)], 4)
    watcher = cache.watch(None, _all, bookmarks=False)
    assert _drain(watcher) == [("ADDED", "a", "2")]
    cache._apply([_pod_event("c", 5)], 5)
    assert _drain(watcher) == [("ADDED", "c", "5")]


def test_watchcache_filter_turns_leaving_into_deleted_and_entering_into_added():
    cache = _cache()
    web = lambda obj: obj.metadata.labels.get("app") == "web"  # noqa: E731
    watcher = cache.watch(0, web, bookmarks=False)
    cache._apply([_pod_event("a", 1, {"app": "web"}), _pod_event("a", 2, {"app": "db"}),
                  _pod_event("a", 3, {"app": "web"}), _pod_event("a", 4, deleted=True)], 4)
    assert _drain(watcher) == [("ADDED", "a", "1"), ("DELETED", "a", "2"),
                               ("ADDED", "a", "3"), ("DELETED", "a", "4")]


def test_watchcache_window_makes_old_versions_too_old():
    cache = _cache(history=3)
    cache._apply([_pod_event(f"p{i}", i) for i in range(1, 6)], 5)
    assert cache.oldest == 2
    with pytest.raises(TooOld):
        cache.watch(1, _all, bookmarks=False)
    assert [name for _, name, _ in _drain(cache.watch(2, _all, bookmarks=False))] == \
        ["p3", "p4", "p5"]


def test_watchcache_ignores_replayed_etcd_events():
    cache = _cache()
    cache._apply([_pod_event("a", 2)], 2)
    watcher = cache.watch(2, _all, bookmarks=False)
    cache._apply([_pod_event("a", 2), _pod_event("b", 3)], 3)  # a rewatch overlapping
    assert _drain(watcher) == [("ADDED", "b", "3")]


def test_watchcache_bookmark_only_for_idle_watchers_that_asked():
    cache = _cache()
    cache._apply([_pod_event("a", 2)], 2)
    asked = cache.watch(2, _all, bookmarks=True)
    silent = cache.watch(2, _all, bookmarks=False)
    cache._apply([], 9)  # progress from etcd: nothing of ours up to 9
    assert _drain(asked) == [("BOOKMARK", "", "9")]
    assert _drain(silent) == []
    cache._apply([], 9)
    assert _drain(asked) == []  # nothing new to report


def test_watchcache_slow_watcher_is_closed_not_unbounded():
    cache = _cache(history=100)
    cache.max_watcher_queue = 3
    watcher = cache.watch(0, _all, bookmarks=False)
    watcher.max_queue = 3
    cache._apply([_pod_event(f"p{i}", i) for i in range(1, 10)], 9)
    assert watcher.closed and watcher not in cache.watchers


def test_watchcache_progress_ahead_of_events_drops_nothing():
    """etcd 3.4 may report progress past events still in flight
    (etcd-io/etcd#15220): those events must still be applied and sent."""
    cache = _cache()
    cache._apply([_pod_event("a", 2)], 2)
    watcher = cache.watch(2, _all, bookmarks=False)
    cache._apply([], 5)  # a progress report claiming 5 before 3..5 arrived
    cache._apply([_pod_event("b", 3), _pod_event("c", 5)], 5)
    assert _drain(watcher) == [("ADDED", "b", "3"), ("ADDED", "c", "5")]
    assert sorted(o.metadata.name for o in cache.objects.values()) == ["a", "b", "c"]


def test_watchcache_batch_is_what_is_queued_and_keeps_errors_for_later():
    import asyncio

    from services.apiserver.server import frame_repeated
    cache = _cache()
    watcher = cache.watch(0, _all, bookmarks=False)
    cache._apply([_pod_event(f"p{i}", i) for i in range(1, 6)], 5)
    watcher.close()  # an error queued behind the events

    async def batches():
        first = await watcher.next_batch(3)
        second = await watcher.next_batch(3)
        try:
            await watcher.next_batch(3)
        except Exception as err:  # noqa: BLE001 - the queued close
            return first, second, err
    first, second, err = asyncio.run(batches())
    assert (len(first), len(second)) == (3, 2) and err is not None
    decoded = POD.events_message.FromString(frame_repeated(first + second))
    assert [e.object.metadata.name for e in decoded.events] == [f"p{i}" for i in range(1, 6)]


def test_watchcache_counts_objects_per_namespace_as_events_apply():
    cache = _cache()
    cache._apply([_pod_event("a", 2), _pod_event("b", 3), _pod_event("a", 4)], 4)
    assert cache.count_in("default") == 2, "a modification is not a new object"
    cache._apply([_pod_event("a", 5, deleted=True)], 5)
    assert (cache.count_in("default"), cache.count_in("other")) == (1, 0)
    cache._apply([_pod_event("b", 6, deleted=True)], 6)
    assert cache.per_namespace == {}
