"""The scheduler end to end through a real API server, run in-process.

Each test uses its own schedulerName, so only the scheduler it starts
handles its pods, and its own nodes (deleted afterwards by ``make_node``).
No kubelet: nodes are plain objects with a Ready condition.
"""

from __future__ import annotations

import collections
import uuid

from tests.support import objects
from tests.support.processes import wait_until
from tests.unit.scheduler import builders


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def create_pod(client, namespace: str, name: str, scheduler: str, **kwargs):
    pod = builders.pod(name, namespace, scheduler_name=scheduler, **kwargs)
    pod.metadata.uid = ""
    return await client.resource("pods").create(pod)


async def node_of(client, namespace: str, name: str) -> str:
    return (await client.resource("pods").get(name, namespace)).spec.node_name


async def wait_bound(client, namespace: str, name: str, timeout: float = 60.0) -> str:
    return await wait_until(lambda: node_of(client, namespace, name), timeout,
                            message=f"pod {namespace}/{name} bound")


async def events_for(client, namespace: str, pod: str, reason: str) -> list:
    found = await client.resource("events").list(namespace)
    return [e for e in found.items if e.involved_object.name == pod and e.reason == reason]


def scheduled_condition(pod):
    return next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)


async def test_scheduler_places_pods_where_resources_fit(client, namespace, make_node,
                                                         start_scheduler):
    name = unique("fit")
    small = await make_node("small", cpu="1")
    big = await make_node("big", cpu="4")
    await start_scheduler(name)
    for i in range(2):
        await create_pod(client, namespace, f"p{i}", name, cpu="2")
    assert {await wait_bound(client, namespace, f"p{i}") for i in range(2)} == {big}
    # The big node is now full (the second pod was accounted before the first
    # was confirmed); a third pod of 2 cpu fits nowhere.
    await create_pod(client, namespace, "p2", name, cpu="2")
    events = await wait_until(lambda: events_for(client, namespace, "p2", "FailedScheduling"),
                              20, message="FailedScheduling event")
    assert events[0].type == "Warning"
    assert events[0].message == "0/2 nodes are available: 2 Insufficient cpu."
    assert await node_of(client, namespace, "p2") == ""
    # A pod that fits the small node still goes there.
    await create_pod(client, namespace, "p3", name, cpu="500m")
    assert await wait_bound(client, namespace, "p3") == small
    # Events are recorded asynchronously (rate-limited, as kube-scheduler's).
    scheduled = await wait_until(lambda: events_for(client, namespace, "p3", "Scheduled"),
                                 20, message="Scheduled event")
    assert [e.message for e in scheduled] == [f"Successfully assigned {namespace}/p3 to {small}"]


async def test_scheduler_honours_node_selector_and_affinity(client, namespace, make_node,
                                                           start_scheduler):
    name = unique("sel")
    ssd = await make_node("ssd", labels={"disk": "ssd", "zone": "a"})
    hdd = await make_node("hdd", labels={"disk": "hdd", "zone": "b"})
    plain = await make_node("plain", labels={"cores": "2"})
    await start_scheduler(name)
    await create_pod(client, namespace, "selector", name, node_selector={"disk": "ssd"})
    await create_pod(client, namespace, "in", name, required=[[("zone", "In", ["b"])]])
    await create_pod(client, namespace, "not-in", name,
                     required=[[("disk", "NotIn", ["ssd", "hdd"])]])
    await create_pod(client, namespace, "exists", name, required=[[("zone", "Exists", [])]],
                     node_selector={"zone": "a"})
    await create_pod(client, namespace, "dne", name, required=[[("disk", "DoesNotExist", [])]])
    await create_pod(client, namespace, "lt", name, required=[[("cores", "Lt", ["4"])]])
    expected = {"selector": ssd, "in": hdd, "not-in": plain, "exists": ssd, "dne": plain,
                "lt": plain}
    for pod, node in expected.items():
        assert await wait_bound(client, namespace, pod) == node, pod
    # Preferred affinity steers among feasible nodes.
    for i in range(3):
        await create_pod(client, namespace, f"pref{i}", name,
                         preferred=[(50, [("zone", "In", ["b"])])])
        assert await wait_bound(client, namespace, f"pref{i}") == hdd


async def test_scheduler_respects_taints_and_tolerations(client, namespace, make_node,
                                                        start_scheduler):
    name = unique("taint")
    gpu = await make_node("gpu", cpu="8", labels={"pool": "all"},
                          taints=[("dedicated", "gpu", "NoSchedule")])
    plain = await make_node("plain", cpu="1", labels={"pool": "all"})
    await start_scheduler(name)
    for i in range(3):
        await create_pod(client, namespace, f"plain{i}", name, cpu="100m")
    for i in range(3):
        assert await wait_bound(client, namespace, f"plain{i}") == plain
    await create_pod(client, namespace, "tolerant", name, cpu="2",
                     tolerations=[("dedicated", "Equal", "gpu", "NoSchedule")])
    assert await wait_bound(client, namespace, "tolerant") == gpu
    # Two nodes too small plus one tainted: the example message.
    await make_node("small", cpu="1")
    await create_pod(client, namespace, "big", name, cpu="4")
    events = await wait_until(lambda: events_for(client, namespace, "big", "FailedScheduling"),
                              20, message="FailedScheduling event")
    assert events[0].message == ("0/3 nodes are available: 2 Insufficient cpu, "
                                 "1 node(s) had untolerated taint {dedicated: gpu}.")


async def test_scheduler_spreads_the_pods_of_one_replicaset(client, namespace, make_node,
                                                           start_scheduler):
    name = unique("spread")
    # One node far larger: least-allocated alone would pile pods onto it.
    nodes = [await make_node("huge", cpu="64", memory="256Gi"),
             await make_node("a"), await make_node("b")]
    rs = await client.resource("replicasets").create(objects.replicaset("web", namespace, 6))
    await start_scheduler(name)
    for i in range(6):
        pod = builders.pod(f"web-{i}", namespace, scheduler_name=name, cpu="100m",
                           memory="64Mi", labels={"app": "web"})
        pod.metadata.uid = ""
        del pod.metadata.owner_references[:]
        pod.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                          name="web", uid=rs.metadata.uid, controller=True)
        await client.resource("pods").create(pod)
    placed = collections.Counter([await wait_bound(client, namespace, f"web-{i}")
                                  for i in range(6)])
    assert placed == {n: 2 for n in nodes}


async def test_scheduler_unschedulable_pod_is_scheduled_when_a_node_is_added(
        client, namespace, make_node, start_scheduler):
    name = unique("later")
    await make_node("tiny", cpu="500m")
    running = await start_scheduler(name)
    await create_pod(client, namespace, "waiting", name, cpu="2")

    async def unschedulable_condition():
        cond = scheduled_condition(await client.resource("pods").get("waiting", namespace))
        return cond if cond is not None and cond.status == "False" else None

    cond = await wait_until(unschedulable_condition, 20, message="PodScheduled=False")
    assert cond.reason == "Unschedulable"
    assert cond.message == "0/1 nodes are available: 1 Insufficient cpu."
    [event] = await wait_until(lambda: events_for(client, namespace, "waiting",
                                                  "FailedScheduling"), 20)
    assert (event.type, event.message) == ("Warning", cond.message)
    await wait_until(lambda: running.scheduler.queue.lengths()["unschedulable"] == 1, 10,
                     message="pod parked as unschedulable")
    roomy = await make_node("roomy", cpu="4")
    assert await wait_bound(client, namespace, "waiting") == roomy
    pod = await client.resource("pods").get("waiting", namespace)
    assert scheduled_condition(pod).status == "True"


async def test_scheduler_deleted_pod_frees_room_for_a_waiting_one(client, namespace,
                                                                 make_node, start_scheduler):
    name = unique("free")
    only = await make_node("only", cpu="1")
    await start_scheduler(name)
    await create_pod(client, namespace, "first", name, cpu="800m")
    assert await wait_bound(client, namespace, "first") == only
    await create_pod(client, namespace, "second", name, cpu="800m")
    await wait_until(lambda: events_for(client, namespace, "second", "FailedScheduling"), 20)
    # Play the kubelet: the graceful delete, then the confirmation.
    await client.resource("pods").delete("first", namespace)
    await client.resource("pods").delete("first", namespace, grace_period_seconds=0)
    assert await wait_bound(client, namespace, "second") == only


async def test_scheduler_ignores_pods_for_other_schedulers(client, namespace, make_node,
                                                         start_scheduler):
    name = unique("mine")
    await make_node("n")
    await start_scheduler(name)
    await create_pod(client, namespace, "theirs", "someone-else")
    await create_pod(client, namespace, "ours", name)
    await wait_bound(client, namespace, "ours")
    assert await node_of(client, namespace, "theirs") == ""


async def test_scheduler_two_racing_replicas_bind_every_pod_exactly_once(client, namespace, make_node,
                                                                start_scheduler):
    """Without leader election both replicas try every pod; the API server's
    Bind refuses the second binding and the loser must treat it as done."""
    name = unique("race")
    for _ in range(3):
        await make_node("r", cpu="32", memory="64Gi")
    a = await start_scheduler(name)
    b = await start_scheduler(name)
    count = 30
    for i in range(count):
        await create_pod(client, namespace, f"p{i}", name, cpu="100m")
    for i in range(count):
        await wait_bound(client, namespace, f"p{i}")

    async def all_events():
        found = await client.resource("events").list(namespace)
        scheduled = [e for e in found.items if e.reason == "Scheduled"]
        return scheduled if len(scheduled) >= count else None

    scheduled = await wait_until(all_events, 20, message="a Scheduled event per pod")
    per_pod = collections.Counter(e.involved_object.name for e in scheduled)
    assert per_pod == {f"p{i}": 1 for i in range(count)}
    assert a.scheduler.bindings + b.scheduler.bindings == count
    # Neither keeps an assumption for a pod the other bound.
    await wait_until(lambda: not a.scheduler.cache.assumed_keys()
                     and not b.scheduler.cache.assumed_keys(), 10)


async def test_scheduler_terminal_pods_free_their_node(client, namespace, make_node,
                                                      start_scheduler):
    name = unique("done")
    only = await make_node("only", cpu="1")
    await start_scheduler(name)
    await create_pod(client, namespace, "job", name, cpu="800m")
    assert await wait_bound(client, namespace, "job") == only
    await create_pod(client, namespace, "next", name, cpu="800m")
    await wait_until(lambda: events_for(client, namespace, "next", "FailedScheduling"), 20)
    # Play the kubelet: the job's container exits successfully.
    job = await client.resource("pods").get("job", namespace)
    job.status.phase = "Succeeded"
    await client.resource("pods").update_status(job)
    assert await wait_bound(client, namespace, "next") == only
