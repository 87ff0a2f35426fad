"""The generic strategy: Kubernetes' rules shared by every kind."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.message import Message

from services.api.kinds import Kind
from services.apiserver import defaulting, validation
from services.apiserver import errors


@dataclasses.dataclass
class Allocation:
    """Extra keys written atomically with an object: created (must not
    exist) and deleted. ``auto`` holds the keys picked by the server, which
    may be re-picked when another writer took them first."""

    create: list[tuple[bytes, bytes]] = dataclasses.field(default_factory=list)
    delete: list[bytes] = dataclasses.field(default_factory=list)
    auto: set[bytes] = dataclasses.field(default_factory=set)


def copy_field(dst: Message, src: Message, field: str) -> None:
    """Copy one message field, keeping "unset" unset (an empty but present
    submessage would serialize differently and look like a change)."""
    if src.HasField(field):
        getattr(dst, field).CopyFrom(getattr(src, field))
    else:
        dst.ClearField(field)


def spec_of(obj: Message) -> bytes:
    """Everything but metadata and status, serialized: a change here bumps
    metadata.generation."""
    copy = type(obj)()
    copy.CopyFrom(obj)
    copy.ClearField("metadata")
    for field in ("status", "api_version", "kind"):
        if field in type(obj).DESCRIPTOR.fields_by_name:
            copy.ClearField(field)
    return copy.SerializeToString(deterministic=True)


class Strategy:
    """Hooks the registry calls around every write of one kind."""

    def __init__(self, kind: Kind, **options: Any):
        self.kind = kind
        self.options = options

    # -- create / update -----------------------------------------------------------

    def defaults(self, obj: Message) -> None:
        """Apply this kind's defaults (a hook: pods add configured tolerations)."""
        defaulting.apply_defaults(obj)

    def prepare_create(self, obj: Message) -> None:
        """Reset what a client may not set on create (status, as Kubernetes
        does for most kinds), then apply defaults."""
        if self.kind.has_status and self.kind.kind not in ("Node",):
            obj.ClearField("status")
        self.defaults(obj)

    def prepare_update(self, new: Message, old: Message) -> None:
        """Update changes metadata and spec; status comes from the stored object."""
        if self.kind.has_status:
            copy_field(new, old, "status")
        self.defaults(new)

    def prepare_status_update(self, new: Message, old: Message) -> None:
        """UpdateStatus changes status only."""
        given = type(new)()
        given.CopyFrom(new)
        new.CopyFrom(old)
        copy_field(new, given, "status")

    def validate(self, obj: Message, old: Message | None) -> None:
        problems = validation.validate(obj, old)
        if problems:
            raise errors.invalid(self.kind.kind, obj.metadata.name, problems)

    def validate_status(self, obj: Message, old: Message) -> None:
        problems = validation.validate_status(obj, old)
        if problems:
            raise errors.invalid(self.kind.kind, obj.metadata.name, problems)

    async def allocate(self, new: Message, old: Message | None, attempt: int,
                       storage: Any) -> Allocation:
        """Keys to create/delete with this write (ClusterIPs, NodePorts)."""
        return Allocation()

    @staticmethod
    def describe_taken(key: bytes) -> str:
        """The user-facing message for an allocated key someone else holds."""
        return f"{key.decode()}: already allocated"

    def release(self, obj: Message) -> list[bytes]:
        """Keys to delete together with ``obj``."""
        return []

    # -- delete ----------------------------------------------------------------------

    def grace_period(self, obj: Message, requested: int | None) -> int:
        """Seconds a deletion waits for (only pods on a node wait)."""
        return 0

    def blocks_deletion(self, obj: Message) -> bool:
        """Whether something other than metadata.finalizers holds the object."""
        return False

    def prepare_delete(self, obj: Message) -> None:
        """Changes a kind makes when its deletion is requested (after
        deletionTimestamp is set)."""
