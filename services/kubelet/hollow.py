"""Hollow nodes: many kubelets in one process, for scale tests (as kubemark
and KWOK do).

Each hollow kubelet is the real :class:`~services.kubelet.kubelet.Kubelet`
with its own in-memory runtime; they share one API client, one pod informer
(whose events are routed to the kubelet named by the pod's spec.nodeName,
so a thousand nodes cost one watch, not a thousand) and one gRPC server for
logs and exec.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from services.kubelet.kubelet import Kubelet, KubeletConfig
from services.machinery.informer import Informer
from services.machinery.store import DeletedFinalStateUnknown


def node_names(prefix: str, count: int) -> list[str]:
    """``<prefix>-0`` .. ``<prefix>-<count-1>``."""
    return [f"{prefix}-{i}" for i in range(count)]


class PodRouter:
    """Pod informer handlers that hand each event to its node's kubelet."""

    def __init__(self, kubelets: Sequence[Kubelet]):
        self.by_node = {k.node_name: k for k in kubelets}

    def _kubelet(self, pod: Any) -> Kubelet | None:
        return self.by_node.get(pod.spec.node_name) if pod.spec.node_name else None

    def on_add(self, pod: Any) -> None:
        kubelet = self._kubelet(pod)
        if kubelet is not None:
            kubelet.on_pod(pod)

    def on_update(self, old: Any, new: Any) -> None:
        kubelet = self._kubelet(new)
        if kubelet is not None:
            kubelet.on_pod(old, new)

    def on_delete(self, obj: Any) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        kubelet = self._kubelet(pod)
        if kubelet is not None:
            kubelet.on_pod_deleted(obj)


def shared_pod_informer(client: Any, **kwargs: Any) -> Informer:
    """An informer on every scheduled pod."""
    return Informer(client, "pods", field_selector="spec.nodeName!=", **kwargs)


def hollow_kubelets(client: Any, base: KubeletConfig, count: int,
                    runtime_factory: Callable[[str], Any],
                    informer: Informer) -> list[Kubelet]:
    """``count`` kubelets named after ``base.node_name``, each with its own
    runtime (``runtime_factory(node_name)``) and root directory."""
    kubelets = []
    for name in node_names(base.node_name, count):
        config = dataclasses.replace(base, node_name=name,
                                     root_dir=os.path.join(base.root_dir, name),
                                     node_labels={**base.node_labels, "kubemark": "true"},
                                     measure_pressure=False)  # nothing real to measure
        kubelets.append(Kubelet(client, runtime_factory(name), config, informer=informer))
    return kubelets


async def run_group(kubelets: Sequence[Kubelet], informer: Informer | None) -> None:
    """Run kubelets (and the informer they share, if any) until cancelled."""
    tasks = []
    if informer is not None:
        router = PodRouter(kubelets)
        informer.add_event_handler(router.on_add, router.on_update, router.on_delete)
        tasks.append(asyncio.create_task(informer.run(), name="hollow-pod-informer"))
    tasks.extend(asyncio.create_task(k.run(), name=f"kubelet-{k.node_name}") for k in kubelets)
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["PodRouter", "hollow_kubelets", "node_names", "run_group", "shared_pod_informer"]
