"""Namespaces: Active on create; deletion marks Terminating and waits for the
namespace to be emptied (spec.finalizers "kubernetes") before it goes."""

from __future__ import annotations

from google.protobuf.message import Message

from services.apiserver.strategies.base import Strategy

PROTECTED = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


class NamespaceStrategy(Strategy):
    def prepare_create(self, obj: Message) -> None:
        obj.ClearField("status")
        self.defaults(obj)
        obj.status.phase = "Active"

    def prepare_update(self, new: Message, old: Message) -> None:
        super().prepare_update(new, old)
        if old.metadata.HasField("deletion_timestamp"):
            # Namespace finalizers may only shrink while terminating.
            kept = [f for f in new.spec.finalizers if f in old.spec.finalizers]
            del new.spec.finalizers[:]
            new.spec.finalizers.extend(kept)

    def blocks_deletion(self, obj: Message) -> bool:
        return len(obj.spec.finalizers) > 0

    def prepare_delete(self, obj: Message) -> None:
        obj.status.phase = "Terminating"
