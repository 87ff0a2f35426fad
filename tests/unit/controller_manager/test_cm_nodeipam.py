"""The pod CIDR allocator: distinct subnets, rebuilt occupation, release,
exhaustion, and Kubernetes' round-robin reuse order."""

from __future__ import annotations

import datetime

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.nodeipam import CidrAllocator, CidrExhausted, cidr_event


def test_allocator_hands_out_distinct_subnets_in_order():
    alloc = CidrAllocator("10.244.0.0/16", 24)
    got = [alloc.allocate() for _ in range(3)]
    assert got == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert alloc.used == 3 and alloc.size == 256


def test_allocator_skips_occupied_subnets():
    alloc = CidrAllocator("10.244.0.0/16", 24)
    assert alloc.occupy("10.244.0.0/24") and alloc.occupy("10.244.2.0/24")
    assert [alloc.allocate(), alloc.allocate()] == ["10.244.1.0/24", "10.244.3.0/24"]


def test_allocator_exhausts_then_reuses_a_released_subnet():
    alloc = CidrAllocator("10.0.0.0/30", 32)
    got = {alloc.allocate() for _ in range(4)}
    assert len(got) == 4
    with pytest.raises(CidrExhausted):
        alloc.allocate()
    alloc.release("10.0.0.2/32")
    assert alloc.allocate() == "10.0.0.2/32"


def test_allocator_goes_round_before_reusing_a_just_released_subnet():
    alloc = CidrAllocator("10.244.0.0/22", 24)
    first = alloc.allocate()
    alloc.release(first)
    assert alloc.allocate() == "10.244.1.0/24"


def test_allocator_occupy_outside_or_garbage_is_ignored():
    alloc = CidrAllocator("10.244.0.0/16", 24)
    assert not alloc.occupy("192.168.0.0/24")
    assert not alloc.occupy("not-a-cidr")
    alloc.release("192.168.0.0/24")
    assert alloc.used == 0


def test_allocator_occupy_larger_block_marks_every_subnet_inside():
    alloc = CidrAllocator("10.244.0.0/16", 24)
    alloc.occupy("10.244.4.0/23")
    assert alloc.is_allocated("10.244.4.0/24") and alloc.is_allocated("10.244.5.0/24")
    assert alloc.used == 2


def test_allocator_rejects_bad_mask_sizes():
    with pytest.raises(ValueError, match="mask size"):
        CidrAllocator("10.244.0.0/16", 8)
    with pytest.raises(ValueError, match="more than 16 bits"):
        CidrAllocator("10.0.0.0/8", 28)
    with pytest.raises(ValueError, match="invalid cluster CIDR"):
        CidrAllocator("10.0.0.0/40", 24)


def test_cidr_event_is_a_warning_about_the_node_in_default():
    node = core.Node()
    node.metadata.name, node.metadata.uid = "n1", "u1"
    ev = cidr_event(node, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    assert (ev.metadata.namespace, ev.reason, ev.type) == ("default", "CIDRNotAvailable",
                                                           "Warning")
    assert (ev.involved_object.kind, ev.involved_object.name) == ("Node", "n1")
    assert ev.metadata.name.startswith("n1.")
