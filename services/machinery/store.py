"""An informer's local cache of API objects, keyed and indexed.

Objects are keyed ``namespace/name`` (``name`` for cluster-scoped kinds), as
client-go's MetaNamespaceKeyFunc does, and may be indexed by any function of
the object (pods by node, anything by namespace) so controllers answer "the
pods on node n1" without scanning.

The store is not thread-safe and needs no locks: every method is synchronous,
so within one asyncio event loop no other code runs in the middle of one.
Cached objects are shared, not copied: callers must not mutate them (copy
with ``type(obj)()`` + ``CopyFrom`` first), as with client-go's listers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

IndexFunc = Callable[[Any], list[str]]
KeyFunc = Callable[[Any], str]

NAMESPACE_INDEX = "namespace"
POD_NODE_INDEX = "by_node"


@dataclasses.dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """A tombstone: ``obj`` was deleted while the watch was not looking, and
    the informer learnt it only from a relist, so ``obj`` is the last state
    seen, not the final one."""

    key: str
    obj: Any


def object_key(obj: Any) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects; a tombstone
    gives its own key."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def split_key(key: str) -> tuple[str, str]:
    """``(namespace, name)`` from a key; namespace is "" for cluster-scoped."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("", namespace)


def namespace_index(obj: Any) -> list[str]:
    """Index by ``metadata.namespace``."""
    return [obj.metadata.namespace]


def pod_node_index(obj: Any) -> list[str]:
    """Index pods by ``spec.nodeName``; unscheduled pods are not indexed."""
    node = obj.spec.node_name
    return [node] if node else []


class Store:
    """A keyed cache with optional indexes; see the module docstring."""

    def __init__(self, key_func: KeyFunc = object_key,
                 indexers: Mapping[str, IndexFunc] | None = None):
        self.key_func = key_func
        self.resource_version = ""
        self._items: dict[str, Any] = {}
        self._indexers: dict[str, IndexFunc] = {}
        # index name -> indexed value -> keys
        self._indices: dict[str, dict[str, set[str]]] = {}
        if indexers:
            self.add_indexers(indexers)

    # -- writes ----------------------------------------------------------------

    def add(self, obj: Any) -> None:
        """Insert or replace ``obj`` under its key."""
        key = self.key_func(obj)
        old = self._items.get(key)
        self._items[key] = obj
        self._reindex(key, old, obj)

    update = add

    def delete(self, obj: Any) -> None:
        """Remove the object with ``obj``'s key (a tombstone works too)."""
        self.delete_key(self.key_func(obj))

    def delete_key(self, key: str) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._reindex(key, old, None)

    def replace(self, objects: Iterable[Any], resource_version: str = "") -> None:
        """Make the store hold exactly ``objects`` (a fresh list)."""
        self._items = {self.key_func(obj): obj for obj in objects}
        self.resource_version = resource_version
        self._rebuild_indices()

    # -- reads -------------------------------------------------------------------

    def get(self, obj: Any) -> Any | None:
        """The cached object with ``obj``'s key, or None."""
        return self._items.get(self.key_func(obj))

    def get_by_key(self, key: str) -> Any | None:
        return self._items.get(key)

    def list(self) -> list[Any]:
        return list(self._items.values())

    def list_keys(self) -> list[str]:
        return list(self._items)

    def items(self) -> dict[str, Any]:
        """A snapshot of key -> object."""
        return dict(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # -- indexes -------------------------------------------------------------------

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Register index functions (``name -> fn(obj) -> [values]``); objects
        already cached are indexed at once."""
        clash = set(indexers) & set(self._indexers)
        if clash:
            raise ValueError(f"indexer {sorted(clash)[0]!r} already exists")
        for name, func in indexers.items():
            self._indexers[name] = func
            index: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for value in func(obj):
                    index.setdefault(value, set()).add(key)
            self._indices[name] = index

    def by_index(self, name: str, value: str) -> list[Any]:
        """The cached objects whose index ``name`` includes ``value``."""
        return [self._items[key] for key in sorted(self.index_keys(name, value))]

    def index_keys(self, name: str, value: str) -> list[str]:
        """The keys of the objects whose index ``name`` includes ``value``."""
        if name not in self._indices:
            raise KeyError(f"no indexer named {name!r}")
        return sorted(self._indices[name].get(value, ()))

    def index_values(self, name: str) -> list[str]:
        """Every value index ``name`` currently holds."""
        if name not in self._indices:
            raise KeyError(f"no indexer named {name!r}")
        return sorted(self._indices[name])

    def _reindex(self, key: str, old: Any | None, new: Any | None) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            old_values = set(func(old)) if old is not None else set()
            new_values = set(func(new)) if new is not None else set()
            for value in old_values - new_values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
            for value in new_values - old_values:
                index.setdefault(value, set()).add(key)

    def _rebuild_indices(self) -> None:
        indexers, self._indexers, self._indices = self._indexers, {}, {}
        self.add_indexers(indexers)


__all__ = [
    "DeletedFinalStateUnknown", "IndexFunc", "KeyFunc", "NAMESPACE_INDEX", "POD_NODE_INDEX",
    "Store", "namespace_index", "object_key", "pod_node_index", "split_key",
]
