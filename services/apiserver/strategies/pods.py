"""Pods: status reset on create, graceful deletion, binding."""

from __future__ import annotations

from google.protobuf.message import Message

from services.apiserver import defaulting
from services.apiserver.strategies.base import Strategy


class PodStrategy(Strategy):
    def __init__(self, kind, *, not_ready_toleration_seconds: int = 300,
                 unreachable_toleration_seconds: int = 300, **options):
        super().__init__(kind, **options)
        self.tolerations = {"not_ready_seconds": not_ready_toleration_seconds,
                            "unreachable_seconds": unreachable_toleration_seconds}

    def defaults(self, obj: Message) -> None:
        defaulting.apply_defaults(obj, **self.tolerations)

    def prepare_create(self, obj: Message) -> None:
        obj.ClearField("status")
        self.defaults(obj)
        obj.status.phase = "Pending"

    def grace_period(self, obj: Message, requested: int | None) -> int:
        """A pod that never reached a node goes at once; one on a node waits
        for its kubelet to confirm (Delete with grace 0) — as Kubernetes does."""
        if not obj.spec.node_name:
            return 0
        if obj.status.phase in ("Succeeded", "Failed"):
            return 0 if requested is None else requested
        if requested is not None:
            return max(requested, 0)
        if obj.spec.HasField("termination_grace_period_seconds"):
            return obj.spec.termination_grace_period_seconds
        return 30
