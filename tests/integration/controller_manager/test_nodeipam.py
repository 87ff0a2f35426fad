"""Node IPAM against a real API server: distinct pod CIDRs, rebuilt on
restart, released on delete and reused, and an event on exhaustion.

Nodes are cluster-wide, so each test first removes nodes earlier tests of
this (dedicated) session left behind: the controller would otherwise give
them CIDRs from the small ranges these tests count on.
"""

from __future__ import annotations

import uuid

import pytest

from services.controller_manager.nodeipam import NodeIpamController
from services.machinery import NotFound
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def nodes(client):
    """Starts from a cluster without nodes; yields a name maker; deletes
    every node at the end."""
    api = client.resource("nodes")

    async def delete_all():
        for node in (await api.list_all()).items:
            try:
                await api.delete(node.metadata.name)
            except NotFound:
                pass
        await wait_until(lambda: _empty(api), timeout=20, message="no nodes left")

    await delete_all()
    prefix = f"ipam-{uuid.uuid4().hex[:6]}"
    yield lambda i: f"{prefix}-{i}"
    await delete_all()


async def _empty(api) -> bool:
    return not (await api.list_all()).items


async def cidr_of(client, name: str) -> str:
    node = await client.resource("nodes").get(name)
    if node.spec.pod_cidr:
        assert list(node.spec.pod_cidrs) == [node.spec.pod_cidr]
    return node.spec.pod_cidr


async def wait_cidr(client, name: str) -> str:
    return await wait_until(lambda: cidr_of(client, name), timeout=20,
                            message=f"a pod CIDR on {name}")


async def test_ipam_distinct_cidrs_for_every_node(client, nodes, start_controllers):
    await start_controllers(NodeIpamController, cluster_cidr="10.100.0.0/16",
                            node_cidr_mask_size=24)
    names = [nodes(i) for i in range(5)]
    for name in names:
        await client.resource("nodes").create(objects.node(name))
    cidrs = [await wait_cidr(client, name) for name in names]
    assert len(set(cidrs)) == 5
    assert all(c.startswith("10.100.") and c.endswith("/24") for c in cidrs)


async def test_ipam_rebuilds_allocations_on_restart(client, nodes, start_controllers):
    first = await start_controllers(NodeIpamController, cluster_cidr="10.101.0.0/22",
                                    node_cidr_mask_size=24)
    await client.resource("nodes").create(objects.node(nodes(0)))
    await client.resource("nodes").create(objects.node(nodes(1)))
    taken = {await wait_cidr(client, nodes(0)), await wait_cidr(client, nodes(1))}
    await first.stop()
    # A fresh controller (a new leader) must not hand out what is in use.
    await start_controllers(NodeIpamController, cluster_cidr="10.101.0.0/22",
                            node_cidr_mask_size=24)
    await client.resource("nodes").create(objects.node(nodes(2)))
    await client.resource("nodes").create(objects.node(nodes(3)))
    new = {await wait_cidr(client, nodes(2)), await wait_cidr(client, nodes(3))}
    assert len(taken | new) == 4


async def test_ipam_exhaustion_event_then_released_cidr_reused(client, nodes, namespace,
                                                                start_controllers):
    await start_controllers(NodeIpamController, cluster_cidr="10.102.0.0/23",
                            node_cidr_mask_size=24, cidr_exhausted_retry=0.5)
    api = client.resource("nodes")
    await api.create(objects.node(nodes(0)))
    await api.create(objects.node(nodes(1)))
    a, b = await wait_cidr(client, nodes(0)), await wait_cidr(client, nodes(1))
    assert {a, b} == {"10.102.0.0/24", "10.102.1.0/24"}

    await api.create(objects.node(nodes(2)))

    async def exhausted_event():
        events = (await client.resource("events").list_all("default")).items
        return [e for e in events if e.involved_object.name == nodes(2)
                and e.reason == "CIDRNotAvailable"]
    [event] = await wait_until(exhausted_event, timeout=20, message="CIDRNotAvailable event")
    assert event.type == "Warning" and event.involved_object.kind == "Node"
    assert await cidr_of(client, nodes(2)) == ""

    await api.delete(nodes(0))
    assert await wait_cidr(client, nodes(2)) == a
