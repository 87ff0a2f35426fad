"""A flood from one client is cut off at its per-user limits while other
clients are served, and every refusal is in the audit log.

The flooder and a bystander are both bound to ``view`` cluster-wide (a
ClusterRoleBinding to their group), so everything they are refused is
refused by a limit, not by RBAC. User names are fresh per test: the
limits count per user, and must not carry over from another test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from services.machinery import Client
from services.machinery.errors import Forbidden, TooLarge
from tests.integration.security.conftest import MAX_WATCHES, RATE_BURST, RATE_QPS
from tests.support import objects
from tests.support.processes import wait_until

VIEWERS = "hostile-flood-viewers"
EVENT_WAIT = 10.0  # seconds a watch may take to deliver an event (generous: a loaded machine)


@dataclasses.dataclass
class Viewers:
    flooder: Client
    bystander: Client
    flooder_user: str  # whose audit records to look for


@pytest.fixture
async def viewers(secure, admin):
    """Two clients of distinct users in a group bound to ``view``, once
    RBAC lets them list."""
    tag = uuid.uuid4().hex[:8]
    binding = objects.cluster_role_binding(f"hostile-flood-{tag}", role_name="view",
                                           subjects=[objects.subject("Group", VIEWERS)])
    await admin.resource("clusterrolebindings").create(binding)
    flooder = secure.client(f"flooder-{tag}", (VIEWERS,))
    bystander = secure.client(f"bystander-{tag}", (VIEWERS,))

    async def can_list(client) -> bool:
        try:
            await client.resource("pods").list("default", limit=1)
            return True
        except Forbidden:
            return False
    await wait_until(lambda: can_list(flooder), timeout=20, message="view binding in force")
    await wait_until(lambda: can_list(bystander), timeout=20, message="view binding in force")
    try:
        yield Viewers(flooder, bystander, f"flooder-{tag}")
    finally:
        await flooder.close()
        await bystander.close()
        await admin.resource("clusterrolebindings").delete(binding.metadata.name)


async def _event_named(stream: AsyncIterator, name: str):
    """The next event about object ``name`` (bookmarks and others skipped)."""
    async def find():
        async for event in stream:
            if event.object.metadata.name == name:
                return event
        raise AssertionError(f"watch ended before an event about {name}")
    return await asyncio.wait_for(find(), EVENT_WAIT)


async def _open_watches(client, namespace: str, count: int, seed: str
                        ) -> tuple[list[AsyncIterator], TooLarge | None]:
    """Open up to ``count`` pod watches, each confirmed by its first event
    (the ADDED of ``seed``); stop at the first refusal and return it."""
    streams: list[AsyncIterator] = []
    for _ in range(count):
        stream = client.resource("pods").watch(namespace)
        try:
            await _event_named(stream, seed)
        except TooLarge as refused:
            await stream.aclose()
            return streams, refused
        streams.append(stream)
    return streams, None


async def _close(streams: list[AsyncIterator]) -> None:
    for stream in streams:
        await stream.aclose()


async def _audit(secure, user: str, **match: str) -> list[dict]:
    """The audit records about ``user`` with every field in ``match``
    (polled: the log is written as requests finish)."""
    def found() -> list[dict]:
        records = [json.loads(line) for line in secure.audit_log.read_text().splitlines()
                   if line.strip()]
        return [r for r in records if r.get("user") == user
                and all(r.get(k) == v for k, v in match.items())]
    return await wait_until(found, timeout=10, message=f"audit records {match} for {user}")


async def test_watch_flood_is_cut_off_at_the_limit_while_others_are_served(
        secure, admin, namespace, viewers):
    flooder, bystander = viewers.flooder, viewers.bystander
    pods = admin.resource("pods")
    await pods.create(objects.pod("seed", namespace))

    flood, refused = await _open_watches(flooder, namespace, MAX_WATCHES + 1, "seed")
    try:
        assert len(flood) == MAX_WATCHES and refused is not None, (len(flood), refused)
        assert f"the limit is {MAX_WATCHES}" in str(refused), str(refused)

        # Meanwhile the bystander watches and lists, and hears of a new pod
        # as soon as the flooder's watches do.
        watch = bystander.resource("pods").watch(namespace)
        await _event_named(watch, "seed")
        listed = await bystander.resource("pods").list(namespace)
        assert [p.metadata.name for p in listed.items] == ["seed"]
        await pods.create(objects.pod("during-flood", namespace))
        added = await _event_named(watch, "during-flood")
        assert added.type == "ADDED"
        for stream in flood:
            assert (await _event_named(stream, "during-flood")).type == "ADDED"
        await watch.aclose()
    finally:
        await _close(flood)

    # Closed watches are given back: the flooder may hold MAX_WATCHES again
    # (the server sees the cancellations promptly, but not instantly: poll).
    async def all_back() -> bool:
        streams, refusal = await _open_watches(flooder, namespace, MAX_WATCHES, "seed")
        await _close(streams)
        return refusal is None
    await wait_until(all_back, timeout=20, interval=0.2, message="watches released")

    records = await _audit(secure, viewers.flooder_user, decision="throttled", verb="watch")
    record = records[-1]
    assert record["code"] == "RESOURCE_EXHAUSTED", record
    assert record["resource"] == "pods" and record["namespace"] == namespace, record


async def test_request_burst_is_throttled_per_user(secure, admin, namespace, viewers):
    """~3×burst concurrent lists from one user: some are refused with
    RESOURCE_EXHAUSTED "too many requests" (bounded waves: on a slow machine
    the bucket refills while a wave is served), the rest are served, and
    another user's calls meanwhile all succeed."""
    flooder, bystander = viewers.flooder, viewers.bystander
    pods = flooder.resource("pods")
    throttled: list[TooLarge] = []
    served = 0
    for _wave in range(5):
        flood = asyncio.gather(*(pods.list(namespace) for _ in range(3 * RATE_BURST)),
                               return_exceptions=True)
        others = asyncio.gather(*(bystander.resource("pods").list(namespace)
                                  for _ in range(RATE_BURST // 4)))
        results, _ = await asyncio.gather(flood, others)  # the bystander's all succeed
        for result in results:
            if isinstance(result, TooLarge):
                throttled.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                served += 1
        if throttled:
            break
    assert throttled, f"{served} lists served, none throttled"
    assert served >= RATE_BURST - 1, served  # the burst itself is allowed (less the first list)
    message = str(throttled[0])
    assert "too many requests" in message and f"{RATE_QPS:g} per second" in message, message

    records = await _audit(secure, viewers.flooder_user, decision="throttled",
                           code="RESOURCE_EXHAUSTED")
    assert records[-1]["method"] == "List", records[-1]
    assert records[-1].get("verb") == "list" and records[-1].get("resource") == "pods", (
        "a rate-limited request's audit record must say what was refused", records[-1])


async def test_system_masters_are_not_rate_limited(admin, namespace):
    pods = admin.resource("pods")
    results = await asyncio.gather(*(pods.list(namespace) for _ in range(3 * RATE_BURST)),
                                   return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]


async def test_forbidden_requests_are_audited(secure, namespace, viewers):
    """A viewer's write is PERMISSION_DENIED, and the audit log says who
    tried which verb on what, and the decision."""
    flooder = viewers.flooder
    with pytest.raises(Forbidden):
        await flooder.resource("pods").create(objects.pod("not-allowed", namespace))
    with pytest.raises(Forbidden):
        await flooder.resource("clusterroles").delete("view")
    user = viewers.flooder_user
    created = await _audit(secure, user, decision="forbid", verb="create")
    assert created[-1]["resource"] == "pods" and created[-1]["namespace"] == namespace
    assert created[-1]["name"] == "not-allowed" and created[-1]["code"] == "PERMISSION_DENIED"
    assert VIEWERS in created[-1]["groups"], created[-1]
    deleted = await _audit(secure, user, decision="forbid", verb="delete")
    assert deleted[-1]["resource"] == "clusterroles" and deleted[-1]["name"] == "view"
    assert deleted[-1]["apiGroup"] == "rbac.authorization.k8s.io", deleted[-1]
    assert deleted[-1]["code"] == "PERMISSION_DENIED", deleted[-1]
