"""ObjectMeta rules shared by every kind (Kubernetes' ValidateObjectMeta and
ValidateObjectMetaUpdate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.apiserver.validation_common import (
    Errors,
    annotations,
    check,
    dns1123_label_errors,
    forbidden,
    immutable,
    invalid,
    labels,
    qualified_name_errors,
    required,
)

NameCheck = Callable[[str], list[str]]


def _mask_trailing_dash(name: str) -> str:
    """generateName "web-" is a valid prefix: check it as if it ended in a letter."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-1] + "a"
    return name


def object_meta(meta: Any, *, namespaced: bool, name_check: NameCheck,
                path: str = "metadata") -> Errors:
    """The rules every stored object's metadata obeys."""
    errs: Errors = []
    if meta.generate_name:
        errs += check(f"{path}.generateName", meta.generate_name,
                      name_check(_mask_trailing_dash(meta.generate_name)))
    if not meta.name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += check(f"{path}.name", meta.name, name_check(meta.name))
    if namespaced:
        if not meta.namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += check(f"{path}.namespace", meta.namespace,
                          dns1123_label_errors(meta.namespace))
    elif meta.namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    if meta.generation < 0:
        errs.append(invalid(f"{path}.generation", meta.generation,
                            "must be greater than or equal to 0"))
    errs += labels(meta.labels, f"{path}.labels")
    errs += annotations(meta.annotations, f"{path}.annotations")
    errs += owner_references(meta.owner_references, f"{path}.ownerReferences")
    for i, fin in enumerate(meta.finalizers):
        errs += check(f"{path}.finalizers[{i}]", fin, qualified_name_errors(fin))
    return errs


def owner_references(refs: Any, path: str) -> Errors:
    errs: Errors = []
    controllers = []
    for i, ref in enumerate(refs):
        p = f"{path}[{i}]"
        for field, json_name, what in (("api_version", "apiVersion", "version"),
                                       ("kind", "kind", "kind"), ("name", "name", "name"),
                                       ("uid", "uid", "uid")):
            if not getattr(ref, field):
                errs.append(invalid(f"{p}.{json_name}", "", f"{what} must not be empty"))
        if ref.HasField("controller") and ref.controller:
            controllers.append(f"{ref.kind}/{ref.name}")
    if len(controllers) > 1:
        errs.append(invalid(path, controllers,
                            "Only one reference can have Controller set to true. Found \"true\" "
                            f"in references for {' and '.join(controllers)}"))
    return errs


def object_meta_update(new: Any, old: Any, path: str = "metadata") -> Errors:
    """What an update may not change. An empty uid or creationTimestamp in the
    new object means "unchanged" (the server keeps the stored one), as in
    Kubernetes' rest.BeforeUpdate."""
    errs: Errors = []
    if new.name != old.name:
        errs.append(immutable(f"{path}.name", new.name))
    if new.namespace != old.namespace:
        errs.append(immutable(f"{path}.namespace", new.namespace))
    if new.uid and new.uid != old.uid:
        errs.append(immutable(f"{path}.uid", new.uid))
    if (new.HasField("creation_timestamp") and old.HasField("creation_timestamp")
            and new.creation_timestamp != old.creation_timestamp):
        errs.append(immutable(f"{path}.creationTimestamp", new.creation_timestamp.ToJsonString()))
    if old.HasField("deletion_timestamp"):
        added = [f for f in new.finalizers if f not in set(old.finalizers)]
        if added:
            errs.append(forbidden(f"{path}.finalizers",
                                  "no new finalizers can be added if the object is being "
                                  f"deleted, found new finalizers {added!r}".replace("'", '"')))
    return errs
