"""Namespace controller helpers: what still needs deleting, and releasing
the finalizer."""

from __future__ import annotations

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.namespace import content_to_delete, without_finalizer


def test_namespace_content_to_delete_skips_objects_already_going():
    live, going = core.Pod(), core.Pod()
    live.metadata.name, going.metadata.name = "live", "going"
    going.metadata.deletion_timestamp.FromSeconds(1)
    assert [p.metadata.name for p in content_to_delete([live, going])] == ["live"]


def test_namespace_without_finalizer_removes_only_kubernetes():
    ns = core.Namespace()
    ns.spec.finalizers.extend(["example.com/x", "kubernetes"])
    updated = without_finalizer(ns)
    assert list(updated.spec.finalizers) == ["example.com/x"]
    assert list(ns.spec.finalizers) == ["example.com/x", "kubernetes"]  # input untouched
    assert without_finalizer(updated) is None
