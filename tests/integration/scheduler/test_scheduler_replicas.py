"""Scheduler replicas as real processes: one leader schedules, the standby
takes over when the leader is killed, and no pod is ever bound twice."""

from __future__ import annotations

import collections
import time
import uuid

from tests.support.processes import wait_until
from tests.unit.scheduler import builders

SHORT_LEASE = ["--leader-elect-lease-duration", "2s", "--leader-elect-renew-deadline", "1.5s",
               "--leader-elect-retry-period", "0.2s"]


async def create_pods(client, namespace: str, scheduler: str, names: list[str]) -> None:
    for name in names:
        pod = builders.pod(name, namespace, scheduler_name=scheduler, cpu="100m")
        pod.metadata.uid = ""
        await client.resource("pods").create(pod)


async def all_bound(client, namespace: str, names: list[str]) -> bool:
    pods = await client.resource("pods").list(namespace)
    bound = {p.metadata.name for p in pods.items if p.spec.node_name}
    return set(names) <= bound


async def scheduled_events(client, namespace: str) -> collections.Counter:
    found = await client.resource("events").list(namespace)
    return collections.Counter(e.involved_object.name for e in found.items
                               if e.reason == "Scheduled")


async def test_scheduler_standby_takes_over_when_the_leader_is_killed(
        client, namespace, make_node, scheduler_process):
    name = f"ha-{uuid.uuid4().hex[:6]}"
    for _ in range(2):
        await make_node("ha", cpu="32", memory="64Gi")
    args = ["--scheduler-name", name, "--leader-elect-resource-namespace", namespace,
            *SHORT_LEASE]
    replicas = [scheduler_process(*args), scheduler_process(*args)]
    leader = await wait_until(lambda: next((p for p in replicas if p.is_leader()), None), 60,
                              message="a leader")
    standby = next(p for p in replicas if p is not leader)
    assert not standby.is_leader()

    first = [f"before-{i}" for i in range(10)]
    await create_pods(client, namespace, name, first)
    await wait_until(lambda: all_bound(client, namespace, first), 30,
                     message="first pods bound by the leader")
    await wait_until(lambda: _events_cover(client, namespace, first), 20,
                     message="Scheduled events of the first pods")
    assert standby.metric("scheduler_schedule_attempts_total") is None  # it never scheduled

    leader.kill()
    killed_at = time.monotonic()
    second = [f"after-{i}" for i in range(10)]
    await create_pods(client, namespace, name, second)
    await wait_until(lambda: all_bound(client, namespace, second), 60,
                     message=f"standby takes over\n{standby.tail()}")
    print(f"standby bound the pods {time.monotonic() - killed_at:.1f}s after the leader died")
    assert standby.is_leader()
    counts = await wait_until(lambda: _events_cover(client, namespace, first + second), 20,
                              message="Scheduled events of every pod")
    assert counts == {n: 1 for n in first + second}


async def _events_cover(client, namespace: str, names: list[str]):
    counts = await scheduled_events(client, namespace)
    return counts if all(counts[n] for n in names) else None


async def test_scheduler_replicas_with_leader_election_bind_each_pod_once(
        client, namespace, make_node, scheduler_process):
    name = f"pair-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        await make_node("pair", cpu="32", memory="64Gi")
    args = ["--scheduler-name", name, "--leader-elect-resource-namespace", namespace,
            *SHORT_LEASE]
    replicas = [scheduler_process(*args), scheduler_process(*args)]
    await wait_until(lambda: any(p.is_leader() for p in replicas), 60, message="a leader")
    names = [f"p{i}" for i in range(40)]
    await create_pods(client, namespace, name, names)
    await wait_until(lambda: all_bound(client, namespace, names), 60, message="all bound")
    counts = await wait_until(lambda: _events_cover(client, namespace, names), 20)
    assert counts == {n: 1 for n in names}
    assert sum(1 for p in replicas if p.is_leader()) == 1


async def test_scheduler_process_without_leader_election_schedules_at_once(
        client, namespace, make_node, scheduler_process):
    name = f"solo-{uuid.uuid4().hex[:6]}"
    node = await make_node("solo")
    proc = scheduler_process("--scheduler-name", name, "--leader-elect=false")
    await create_pods(client, namespace, name, ["only"])
    await wait_until(lambda: all_bound(client, namespace, ["only"]), 60,
                     message=f"bound\n{proc.tail()}")
    assert (await client.resource("pods").get("only", namespace)).spec.node_name == node
    await wait_until(lambda: proc.metric("scheduler_schedule_attempts_total") == 1.0, 10)
    assert "scheduler_pending_pods" in proc.metrics()
