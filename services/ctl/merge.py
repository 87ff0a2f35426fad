"""How ``kyb apply`` combines a manifest with what the server stores.

The server fills in defaults (restartPolicy, protocol, clusterIP, nodePort)
and controllers add annotations; a manifest lacks all of them. Sending the
manifest as it is would wipe them and report every re-apply as a change. So
the manifest is laid over the stored object, the way a strategic merge
patch is: objects merge key by key, lists of objects match their items by a
merge key (containers by name, ports by port) so each item keeps its server
defaults, and everything else the manifest says replaces what is stored.

Lists that grant permissions (a role's rules, a binding's subjects) are
atomic, as in Kubernetes: the manifest's list replaces the stored one, so a
field dropped from a rule cannot linger and widen it. Only the fields the
server defaults in their items are carried over, when nothing else differs.

Known gap against kubectl: without a last-applied annotation a field removed
from the manifest is not removed from the object.
"""

from __future__ import annotations

import copy
from typing import Any

# Tried in order; the first one every item of both lists has, with distinct
# values, matches items (Kubernetes' patchMergeKey for the common lists).
MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "ip", "type", "key")

# What a manifest may set in metadata; the rest belongs to the server.
USER_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")

_TYPE_AND_STATUS = ("apiVersion", "kind", "status")

# Atomic lists, by field name, with the keys the server defaults in each item.
ATOMIC_LISTS: dict[str, tuple[str, ...]] = {
    "rules": (),
    "subjects": ("apiGroup", "namespace"),
}


def overlay(stored: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The object to send: ``stored`` with ``manifest``'s spec-like fields and
    user metadata laid over it; status and server metadata kept."""
    result = copy.deepcopy(stored)
    for key, value in manifest.items():
        if key in _TYPE_AND_STATUS:
            continue
        if key == "metadata":
            meta = result.setdefault("metadata", {})
            for meta_key in USER_METADATA:
                if meta_key in value:
                    meta[meta_key] = merge_value(meta.get(meta_key), value[meta_key])
            continue
        result[key] = merge_value(result.get(key), value, key)
    return result


def merge_value(old: Any, new: Any, name: str = "") -> Any:
    """``new`` laid over ``old``; ``name`` is the field both are the value of."""
    if name in ATOMIC_LISTS and isinstance(old, list) and isinstance(new, list):
        return _atomic_list(old, new, ATOMIC_LISTS[name])
    if isinstance(old, dict) and isinstance(new, dict):
        out = copy.deepcopy(old)
        for key, value in new.items():
            out[key] = merge_value(old.get(key), value, key)
        return out
    if isinstance(old, list) and isinstance(new, list) and new \
            and all(isinstance(i, dict) for i in old + new):
        return _merge_list(old, new)
    return copy.deepcopy(new)


def _atomic_list(old: list[Any], new: list[Any], defaulted: tuple[str, ...]) -> list[Any]:
    """``new``, unless ``old`` is the same list plus server defaults."""
    def same(stored: Any, given: Any) -> bool:
        if not isinstance(stored, dict) or not isinstance(given, dict):
            return stored == given
        trimmed = {k: v for k, v in stored.items() if k in given or k not in defaulted}
        return trimmed == given
    if len(old) == len(new) and all(same(o, n) for o, n in zip(old, new)):
        return copy.deepcopy(old)
    return copy.deepcopy(new)


def _merge_list(old: list[dict], new: list[dict]) -> list[dict]:
    key = merge_key(old, new)
    if key is not None:
        by_key = {item[key]: item for item in old if key in item}
        return [merge_value(by_key.get(item[key]), item) for item in new]
    if len(old) == len(new):
        return [merge_value(o, n) for o, n in zip(old, new)]
    return copy.deepcopy(new)


def merge_key(old: list[dict], new: list[dict]) -> str | None:
    for key in MERGE_KEYS:
        if not all(key in item for item in new):
            continue
        values = [repr(item[key]) for item in new]
        if len(set(values)) == len(values):
            return key
    return None
