"""Stopping containers and pods gracefully, as the kubelet's killContainer.

Each running container gets its preStop hook (exec or httpGet) first, then
the stop signal, then SIGKILL once the grace period is over; the hook's
time counts against the grace period, and at least two seconds are always
left for the signal (Kubernetes' minimumGracePeriodInSeconds). A pod is
stopped by stopping all its containers at once, then its sandbox. Once a
pod with a deletionTimestamp is fully stopped and removed, the kubelet
confirms the deletion (Delete with grace period 0 and the pod's UID as a
precondition) and the API server lets the object go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from services.kubelet.containers import grace_seconds
from services.kubelet.probes import http_get, resolve_port
from services.kubelet.runtime.base import (
    LABEL_GRACE, ContainerInfo, ContainerState, RuntimeError_, SandboxState,
)
from services.kubelet.sync import PodRuntimeState, container_name, find_container

log = logging.getLogger(__name__)

MINIMUM_GRACE_SECONDS = 2.0


async def run_pre_stop(runtime: Any, pod: Any, container: Any, info: ContainerInfo,
                       pod_ip: str, timeout: float) -> None:
    """Run the container's preStop hook, bounded by ``timeout``; a failing
    hook is logged and the stop goes on, as in Kubernetes."""
    if container is None or not container.HasField("lifecycle") or \
            not container.lifecycle.HasField("pre_stop"):
        return
    hook = container.lifecycle.pre_stop
    where = {"object": f"{pod.metadata.namespace}/{pod.metadata.name}",
             "container": container.name}
    try:
        if hook.HasField("exec"):
            code, out, err = await runtime.exec(info.id, list(hook.exec.command),
                                                timeout=timeout)
            if code != 0:
                log.warning("preStop hook exited with %d: %s", code,
                            (out + err).decode("utf-8", "replace")[:200], extra=where)
        elif hook.HasField("http_get"):
            action = hook.http_get
            await http_get(action.host or pod_ip, resolve_port(action.port, container),
                           action.path or "/", scheme=action.scheme or "HTTP",
                           headers=[(h.name, h.value) for h in action.http_headers],
                           timeout=timeout)
    except asyncio.CancelledError:
        raise
    except Exception as err:  # noqa: BLE001 - the container is stopped anyway
        log.warning("preStop hook failed: %s", err or type(err).__name__, extra=where)


def label_grace(info: ContainerInfo) -> float:
    """The grace period recorded on a container (for orphans, whose pod is gone)."""
    try:
        return float(info.labels.get(LABEL_GRACE, "30"))
    except ValueError:
        return 30.0


async def kill_container(runtime: Any, pod: Any, info: ContainerInfo, *, pod_ip: str = "",
                         grace: float | None = None, run_hook: bool = True) -> None:
    """Stop one running container within the grace period (the pod's unless
    ``grace`` is given)."""
    if info.state != ContainerState.RUNNING and info.state != ContainerState.CREATED:
        return
    container = find_container(pod, container_name(info))[0] if pod is not None else None
    if grace is None:
        grace = float(grace_seconds(pod)) if pod is not None else label_grace(info)
    remaining = float(grace)
    has_hook = container is not None and container.HasField("lifecycle") and \
        container.lifecycle.HasField("pre_stop")
    if run_hook and has_hook and info.state == ContainerState.RUNNING and remaining > 0:
        started = time.monotonic()
        await run_pre_stop(runtime, pod, container, info, pod_ip, remaining)
        remaining -= time.monotonic() - started
    remaining = max(remaining, MINIMUM_GRACE_SECONDS) if grace > 0 else 0.0
    try:
        await runtime.stop_container(info.id, remaining)
    except RuntimeError_ as err:
        log.warning("stopping container %s failed: %s", info.id[:12], err)


async def kill_pod(runtime: Any, pod: Any, state: PodRuntimeState, *, pod_ip: str = "",
                   grace: float | None = None) -> None:
    """Stop every running container of the pod at once, then its sandboxes."""
    await kill_containers(runtime, pod, state.containers, pod_ip=pod_ip, grace=grace)
    for sandbox in state.sandboxes:
        if sandbox.state == SandboxState.READY:
            try:
                await runtime.stop_sandbox(sandbox.id)
            except RuntimeError_ as err:
                log.warning("stopping sandbox %s failed: %s", sandbox.id[:12], err)


async def kill_containers(runtime: Any, pod: Any, containers: Iterable[ContainerInfo], *,
                          pod_ip: str = "", grace: float | None = None) -> None:
    running = [c for c in containers
               if c.state in (ContainerState.RUNNING, ContainerState.CREATED)]
    await asyncio.gather(*(kill_container(runtime, pod, c, pod_ip=pod_ip, grace=grace)
                           for c in running))


async def remove_all(runtime: Any, state: PodRuntimeState) -> None:
    """Remove every container and sandbox of a stopped pod."""
    async def rm(fn: Any, ident: str) -> None:
        try:
            await fn(ident)
        except RuntimeError_ as err:
            log.warning("removing %s failed: %s", ident[:12], err)

    await asyncio.gather(*(rm(runtime.remove_container, c.id) for c in state.containers))
    await asyncio.gather(*(rm(runtime.remove_sandbox, s.id) for s in state.sandboxes))


__all__ = ["MINIMUM_GRACE_SECONDS", "kill_container", "kill_containers", "kill_pod",
           "remove_all", "run_pre_stop"]
