"""Listing (selectors, paging, revisions) and watching (resume, filters,
bookmarks, OUT_OF_RANGE) against a real API server and etcd."""

from __future__ import annotations

import asyncio

import pytest

from services.machinery import errors
from tests.integration.conftest import WATCH_CACHE_SIZE
from tests.support import objects


async def _collect(stream, count: int, timeout: float = 10.0, skip_bookmarks: bool = True):
    out = []

    async def run():
        async for ev in stream:
            if skip_bookmarks and ev.type == "BOOKMARK":
                continue
            out.append(ev)
            if len(out) == count:
                return
    await asyncio.wait_for(run(), timeout)
    return out


async def test_label_and_field_selectors(client, namespace):
    res = client.resource("pods")
    await res.create(objects.pod("a", namespace, labels={"app": "web", "tier": "front"}))
    await res.create(objects.pod("b", namespace, labels={"app": "web", "tier": "back"},
                                 node="n1"))
    await res.create(objects.pod("c", namespace, labels={"app": "db"}))

    async def names(**kw):
        return sorted(p.metadata.name for p in (await res.list(namespace, **kw)).items)
    assert await names(label_selector="app=web") == ["a", "b"]
    assert await names(label_selector="app!=web") == ["c"]
    assert await names(label_selector="tier in (front,middle)") == ["a"]
    assert await names(label_selector="tier notin (front)") == ["b", "c"]
    assert await names(label_selector="tier") == ["a", "b"]
    assert await names(label_selector="!tier") == ["c"]
    assert await names(field_selector="spec.nodeName=n1") == ["b"]
    assert await names(field_selector="metadata.name!=a,spec.nodeName=") == ["c"]
    with pytest.raises(errors.Invalid):
        await res.list(namespace, label_selector="app in (web")
    with pytest.raises(errors.Invalid):
        await res.list(namespace, field_selector="spec.nonsense=1")


async def test_paging_returns_a_consistent_snapshot(client, namespace):
    res = client.resource("endpoints")
    for i in range(25):
        await res.create(objects.endpoints(f"e{i:02d}", namespace))
    first = await res.list(namespace, limit=10)
    assert len(first.items) == 10 and first.metadata.continue_token
    await res.create(objects.endpoints("zz-late", namespace))  # not in the snapshot
    seen = [e.metadata.name for e in first.items]
    token = first.metadata.continue_token
    while token:
        page = await res.list(namespace, limit=10, continue_token=token)
        assert page.metadata.resource_version == first.metadata.resource_version
        seen += [e.metadata.name for e in page.items]
        token = page.metadata.continue_token
    assert seen == [f"e{i:02d}" for i in range(25)]
    with pytest.raises(errors.Invalid):
        await res.list(namespace, continue_token="garbage")


async def test_watch_resume_has_no_gap_or_duplicate(client, namespace):
    res = client.resource("leases")
    start = (await res.list(namespace)).metadata.resource_version
    for i in range(5):
        await res.create(objects.lease(f"l{i}", namespace))
    first = await _collect(res.watch(namespace, resource_version=start), 5)
    assert [e.type for e in first] == ["ADDED"] * 5
    resume_from = first[2].object.metadata.resource_version
    for i in range(5, 8):
        await res.create(objects.lease(f"l{i}", namespace))
    resumed = await _collect(res.watch(namespace, resource_version=resume_from), 5)
    assert [e.object.metadata.name for e in resumed] == ["l3", "l4", "l5", "l6", "l7"]
    rvs = [int(e.object.metadata.resource_version) for e in resumed]
    assert rvs == sorted(rvs) and len(set(rvs)) == 5


async def test_watch_from_empty_version_lists_first(client, namespace):
    res = client.resource("services")
    await res.create(objects.service("s1", namespace))
    stream = res.watch(namespace)
    initial = await _collect(stream, 1)
    assert initial[0].type == "ADDED" and initial[0].object.metadata.name == "s1"
    await res.delete("s1", namespace)
    deleted = await _collect(stream, 1)
    assert deleted[0].type == "DELETED"
    await stream.aclose()


async def test_filtered_watch_sees_objects_leave_and_enter(client, namespace):
    res = client.resource("pods")
    rv = (await res.list(namespace)).metadata.resource_version
    stream = res.watch(namespace, label_selector="app=web", resource_version=rv)
    pod = await res.create(objects.pod("f", namespace, labels={"app": "web"}))
    pod.metadata.labels["app"] = "db"
    pod = await res.update(pod)
    pod.metadata.labels["app"] = "web"
    await res.update(pod)
    events = await _collect(stream, 3)
    assert [e.type for e in events] == ["ADDED", "DELETED", "ADDED"]
    await stream.aclose()


async def test_bookmarks_keep_idle_watchers_fresh(client, namespace):
    res = client.resource("leases")
    rv = (await res.list(namespace)).metadata.resource_version
    await client.resource("pods").create(objects.pod("elsewhere", namespace))
    stream = res.watch(namespace, resource_version=rv, allow_bookmarks=True)
    events = await _collect(stream, 1, skip_bookmarks=False, timeout=15)
    assert events[0].type == "BOOKMARK"
    assert int(events[0].object.metadata.resource_version) > int(rv)
    await stream.aclose()


async def test_watch_too_old_is_out_of_range(client, namespace):
    res = client.resource("events")
    rv = (await res.list(namespace)).metadata.resource_version
    for i in range(WATCH_CACHE_SIZE + 20):
        await res.create(objects.event(f"ev{i}", namespace))
    with pytest.raises(errors.Expired):
        async for _ in res.watch(namespace, resource_version=rv):
            break


async def test_list_at_compacted_revision_is_out_of_range(client, namespace, etcd):
    res = client.resource("pods")
    old = (await res.list(namespace)).metadata.resource_version
    await res.create(objects.pod("c1", namespace))
    await asyncio.to_thread(etcd.compact)
    with pytest.raises(errors.Expired):
        await res.list(namespace, resource_version=old)
    page = await res.list("", limit=1)
    assert page.metadata.continue_token
    await res.create(objects.pod("c2", namespace))
    await asyncio.to_thread(etcd.compact)
    with pytest.raises(errors.Expired):
        await res.list("", limit=1, continue_token=page.metadata.continue_token)


async def test_list_from_watch_cache(client, namespace):
    res = client.resource("pods")
    created = await res.create(objects.pod("cached", namespace))

    async def visible():
        items = (await res.list(namespace, resource_version="0")).items
        return [p.metadata.name for p in items] == ["cached"]
    from tests.support.processes import wait_until
    await wait_until(visible, message="pod in the watch cache")
    assert created.metadata.name == "cached"
