"""Helpers for the ReplicaSet and Deployment integration tests.

:class:`FakeKubelet` plays the scheduler and the kubelet for one namespace
through the API server, one observable step at a time: it binds pending
pods to a node, reports them Running and Ready, and confirms graceful
deletions (the grace-0 second delete). Tests observe the pods between steps
and check their invariants on every observation.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.podcontrol import is_pod_ready, is_terminating
from services.controller_manager.rollout import POD_TEMPLATE_HASH_LABEL
from services.machinery import ApiError, Client, Conflict, NotFound
from tests.support import objects

NODE = "node-1"


def deployment(namespace: str, name: str = "web", *, replicas: int = 3, image: str = "web:1",
               surge: int | str | None = None, unavailable: int | str | None = None,
               strategy: str = "RollingUpdate") -> apps.Deployment:
    d = objects.deployment(name, namespace, replicas=replicas)
    d.spec.template.spec.containers[0].image = image
    d.spec.strategy.type = strategy
    for value, field in ((surge, "max_surge"), (unavailable, "max_unavailable")):
        if value is None:
            continue
        target = getattr(d.spec.strategy.rolling_update, field)
        if isinstance(value, int):
            target.int_value = value
        else:
            target.str_value = value
    return d


def image_of(obj: core.Pod | core.PodTemplateSpec) -> str:
    spec = obj.spec
    return spec.containers[0].image


def is_live(pod: core.Pod) -> bool:
    return not is_terminating(pod) and pod.status.phase not in ("Succeeded", "Failed")


def is_available(pod: core.Pod) -> bool:
    """What a Service would send traffic to: live and Ready."""
    return is_live(pod) and is_pod_ready(pod)


class FakeKubelet:
    """The scheduler and kubelet of one namespace, driven by the test."""

    def __init__(self, client: Client, namespace: str, node: str = NODE):
        self.pods_api = client.resource("pods")
        self.namespace = namespace
        self.node = node

    async def pods(self, label_selector: str = "") -> list[core.Pod]:
        result = await self.pods_api.list(self.namespace, label_selector=label_selector)
        return list(result.items)

    async def bind(self, pod: core.Pod) -> None:
        binding = core.Binding()
        binding.metadata.name, binding.metadata.namespace = pod.metadata.name, self.namespace
        binding.metadata.uid = pod.metadata.uid
        binding.target.CopyFrom(meta_pb2.ObjectReference(kind="Node", name=self.node))
        try:
            await self.pods_api.bind(binding)
        except (NotFound, ApiError):
            pass  # deleted or bound meanwhile: the next step sees it

    async def make_ready(self, pod: core.Pod) -> None:
        """Running, containers started and Ready since now."""
        now = datetime.datetime.now(datetime.timezone.utc)
        for _ in range(5):
            try:
                current = await self.pods_api.get(pod.metadata.name, self.namespace)
            except NotFound:
                return
            if is_terminating(current):
                return
            current.status.phase = "Running"
            current.status.host_ip = "10.0.0.1"
            current.status.pod_ip = "10.244.0.10"
            del current.status.conditions[:]
            for cond_type in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
                cond = current.status.conditions.add(type=cond_type, status="True")
                cond.last_transition_time.FromDatetime(now)
            del current.status.container_statuses[:]
            cs = current.status.container_statuses.add(name="main", ready=True, started=True,
                                                       image=image_of(current))
            cs.state.running.started_at.FromDatetime(now)
            try:
                await self.pods_api.update_status(current)
                return
            except Conflict:
                continue
            except NotFound:
                return

    async def confirm_deletion(self, pod: core.Pod) -> None:
        try:
            await self.pods_api.delete(pod.metadata.name, self.namespace,
                                       grace_period_seconds=0, uid=pod.metadata.uid)
        except (NotFound, ApiError):
            pass

    async def step(self, pods: list[core.Pod], *, ready: int | None = None,
                   confirm: bool = True) -> None:
        """Act on one observation: bind every unbound pod, confirm every
        graceful deletion (if ``confirm``) and make up to ``ready`` pods
        Ready (all if None), oldest first."""
        started = 0
        for pod in sorted(pods, key=lambda p: (p.metadata.creation_timestamp.seconds,
                                               p.metadata.name)):
            if is_terminating(pod):
                if confirm and pod.spec.node_name:
                    await self.confirm_deletion(pod)
                continue
            if not pod.spec.node_name:
                await self.bind(pod)
            if not is_pod_ready(pod) and (ready is None or started < ready):
                started += 1
                await self.make_ready(pod)


async def delete_workloads(client: Client, namespace: str) -> None:
    """Remove what a test left in its namespace (deployments, ReplicaSets,
    pods, events) once its controllers are stopped, so controllers started
    by later tests in the session do not reconcile it all again."""
    for resource in ("deployments", "replicasets", "pods", "events"):
        api = client.resource(resource)
        for obj in (await api.list(namespace)).items:
            grace = 0 if resource == "pods" else None
            try:
                await api.delete(obj.metadata.name, namespace, grace_period_seconds=grace)
            except NotFound:
                pass


async def modify(resource, namespace: str, name: str, mutate: Callable) -> object:
    """Read-modify-write with retry on Conflict, as a user's tool does:
    the controllers write the same objects (status, annotations)."""
    for _ in range(20):
        obj = await resource.get(name, namespace)
        mutate(obj)
        try:
            return await resource.update(obj)
        except Conflict:
            continue
    raise AssertionError(f"could not update {namespace}/{name}: too many conflicts")


async def drive(kubelet: FakeKubelet, done: Callable, *, check: Callable | None = None,
                ready_per_step: int | None = 1, timeout: float = 60.0,
                label_selector: str = "", interval: float = 0.02) -> list[core.Pod]:
    """Observe the pods, check them, let the kubelet act, until ``done``.

    ``check(pods)`` asserts invariants on every observation; ``done(pods)``
    (sync or async) ends the loop. Returns the last observation.
    """
    deadline = time.monotonic() + timeout
    while True:
        pods = await kubelet.pods(label_selector)
        if check is not None:
            check(pods)
        result = done(pods)
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return pods
        if time.monotonic() > deadline:
            summary = [(p.metadata.name, p.metadata.labels.get(POD_TEMPLATE_HASH_LABEL),
                        p.status.phase, is_pod_ready(p), is_terminating(p)) for p in pods]
            raise AssertionError(f"timed out after {timeout}s; last pods: {summary}")
        await kubelet.step(pods, ready=ready_per_step)
        await asyncio.sleep(interval)  # a polling interval, not a synchronisation


__all__ = ["FakeKubelet", "NODE", "delete_workloads", "deployment", "drive", "image_of",
           "is_available", "is_live", "modify"]
