"""Pods: status reset on create, graceful deletion, binding."""

from __future__ import annotations

from google.protobuf.message import Message

from services.apiserver import defaulting
from services.apiserver.strategies.base import Strategy


class PodStrategy(Strategy):
    def prepare_create(self, obj: Message) -> None:
        obj.ClearField("status")
        defaulting.apply_defaults(obj)
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
