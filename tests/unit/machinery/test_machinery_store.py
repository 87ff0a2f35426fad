"""The keyed, indexed cache."""

from __future__ import annotations

import pytest

from services.machinery.store import (
    NAMESPACE_INDEX, POD_NODE_INDEX, DeletedFinalStateUnknown, Store, namespace_index,
    object_key, pod_node_index, split_key,
)
from tests.support import objects


def test_object_key_is_namespace_slash_name_or_name():
    assert object_key(objects.pod("p", "ns1")) == "ns1/p"
    assert object_key(objects.node("n1")) == "n1"
    assert object_key(DeletedFinalStateUnknown("ns/x", None)) == "ns/x"
    assert split_key("ns1/p") == ("ns1", "p")
    assert split_key("n1") == ("", "n1")


def test_store_add_get_update_delete():
    store = Store()
    pod = objects.pod("p", "ns")
    store.add(pod)
    assert store.get(pod) is pod
    assert store.get_by_key("ns/p") is pod
    newer = objects.pod("p", "ns", node="n1")
    store.update(newer)
    assert store.get_by_key("ns/p") is newer
    assert len(store) == 1
    store.delete(newer)
    assert store.get_by_key("ns/p") is None
    assert "ns/p" not in store
    store.delete(newer)  # deleting what is gone is fine


def test_store_list_and_list_keys():
    store = Store()
    for name in ("a", "b"):
        store.add(objects.pod(name, "ns"))
    assert sorted(store.list_keys()) == ["ns/a", "ns/b"]
    assert sorted(p.metadata.name for p in store.list()) == ["a", "b"]


def test_store_replace_holds_exactly_the_new_objects_and_version():
    store = Store()
    store.add(objects.pod("old", "ns"))
    store.replace([objects.pod("a", "ns"), objects.pod("b", "ns")], "42")
    assert sorted(store.list_keys()) == ["ns/a", "ns/b"]
    assert store.resource_version == "42"


def test_store_indexes_pods_by_node_and_follows_updates():
    store = Store(indexers={POD_NODE_INDEX: pod_node_index})
    store.add(objects.pod("a", "ns", node="n1"))
    store.add(objects.pod("b", "ns", node="n1"))
    store.add(objects.pod("pending", "ns"))
    assert [p.metadata.name for p in store.by_index(POD_NODE_INDEX, "n1")] == ["a", "b"]
    store.update(objects.pod("b", "ns", node="n2"))
    assert store.index_keys(POD_NODE_INDEX, "n1") == ["ns/a"]
    assert store.index_keys(POD_NODE_INDEX, "n2") == ["ns/b"]
    store.delete(objects.pod("a", "ns"))
    assert store.by_index(POD_NODE_INDEX, "n1") == []
    assert store.index_values(POD_NODE_INDEX) == ["n2"]  # empty values are dropped


def test_store_indexers_added_late_index_existing_objects():
    store = Store()
    store.add(objects.pod("a", "ns1"))
    store.add(objects.pod("b", "ns2"))
    store.add_indexers({NAMESPACE_INDEX: namespace_index})
    assert store.index_keys(NAMESPACE_INDEX, "ns2") == ["ns2/b"]


def test_store_replace_rebuilds_indexes():
    store = Store(indexers={NAMESPACE_INDEX: namespace_index})
    store.add(objects.pod("a", "ns1"))
    store.replace([objects.pod("b", "ns2")], "7")
    assert store.index_keys(NAMESPACE_INDEX, "ns1") == []
    assert store.index_keys(NAMESPACE_INDEX, "ns2") == ["ns2/b"]


def test_store_rejects_duplicate_and_unknown_indexers():
    store = Store(indexers={NAMESPACE_INDEX: namespace_index})
    with pytest.raises(ValueError):
        store.add_indexers({NAMESPACE_INDEX: namespace_index})
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_store_index_function_may_return_many_values():
    store = Store(indexers={"by_label_value": lambda o: list(o.metadata.labels.values())})
    store.add(objects.pod("a", "ns", labels={"x": "1", "y": "2"}))
    assert store.index_keys("by_label_value", "1") == ["ns/a"]
    assert store.index_keys("by_label_value", "2") == ["ns/a"]
