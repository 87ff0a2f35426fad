"""What to do for one pod: a pure function of its spec and what the runtime
has, as kuberuntime's computePodActions.

The kubelet's loop is level-triggered: each sync lists the pod's sandboxes
and containers (found by labels), calls :func:`compute_pod_actions`, and
carries the result out. Nothing here remembers the previous sync, so a
restarted kubelet, a container removed behind its back, and a crash are all
the same case: the difference between spec and runtime.

Order, as Kubernetes: a sandbox first (a new one, killing the pod, when the
latest is not ready); then init containers one at a time, each to success;
then every app container. restartPolicy decides what an exited container
gets; a running container whose spec hash changed, or that failed its
liveness or startup probe, is killed (and restarted unless the policy is
Never).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from services.kubelet.runtime.base import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_INIT, ContainerInfo, ContainerState,
    SandboxInfo, SandboxState,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def container_hash(container: Any) -> str:
    """A stable hash of a container's spec: a change (an image update)
    means the running container must be replaced. Deterministic protobuf
    serialization keeps it equal across kubelet restarts."""
    return hashlib.sha256(container.SerializeToString(deterministic=True)).hexdigest()[:16]


def _created(info: ContainerInfo | SandboxInfo) -> datetime.datetime:
    return info.created_at or _EPOCH


def _order(info: ContainerInfo) -> tuple[int, datetime.datetime]:
    return info.restart_count, _created(info)


@dataclasses.dataclass
class PodRuntimeState:
    """A pod's sandboxes and containers as the runtime reports them, newest
    first (containers of one name are ordered by restart count, then by
    creation time)."""

    sandboxes: list[SandboxInfo] = dataclasses.field(default_factory=list)
    containers: list[ContainerInfo] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, sandboxes: Iterable[SandboxInfo],
           containers: Iterable[ContainerInfo]) -> PodRuntimeState:
        return cls(sorted(sandboxes, key=_created, reverse=True),
                   sorted(containers, key=_order, reverse=True))

    def instances(self, name: str) -> list[ContainerInfo]:
        """Every instance of the named container, newest first."""
        return [c for c in self.containers if container_name(c) == name]

    def latest(self, name: str) -> ContainerInfo | None:
        for c in self.containers:
            if container_name(c) == name:
                return c
        return None

    def latest_exited(self, name: str) -> ContainerInfo | None:
        for c in self.containers:
            if container_name(c) == name and c.state == ContainerState.EXITED:
                return c
        return None

    @property
    def ready_sandbox(self) -> SandboxInfo | None:
        if self.sandboxes and self.sandboxes[0].state == SandboxState.READY:
            return self.sandboxes[0]
        return None

    @property
    def running(self) -> list[ContainerInfo]:
        return [c for c in self.containers if c.state == ContainerState.RUNNING]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


def container_name(info: ContainerInfo) -> str:
    return info.name or info.labels.get(LABEL_CONTAINER_NAME, "")


def is_init(info: ContainerInfo) -> bool:
    return info.labels.get(LABEL_INIT) == "true"


@dataclasses.dataclass(frozen=True)
class Kill:
    """A container to stop, and why (for the log and events)."""

    container_id: str
    name: str
    message: str
    reason: str = ""


@dataclasses.dataclass
class PodActions:
    """The outcome of :func:`compute_pod_actions`."""

    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init_container: str | None = None
    containers_to_start: list[str] = dataclasses.field(default_factory=list)
    containers_to_kill: list[Kill] = dataclasses.field(default_factory=list)
    init_failed: bool = False   # an init container failed and restartPolicy is Never

    @property
    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.next_init_container
                    or self.containers_to_start or self.containers_to_kill)


def restarts_on_failure(pod: Any) -> bool:
    return pod.spec.restart_policy != "Never"


def should_restart(container: Any, pod: Any, state: PodRuntimeState) -> bool:
    """ShouldContainerBeRestarted: whether a non-running container must be
    (re)started now, as far as restartPolicy says."""
    if pod.metadata.HasField("deletion_timestamp"):
        return False
    latest = state.latest(container.name)
    if latest is None:
        return True
    if latest.state == ContainerState.RUNNING:
        return False
    if latest.state in (ContainerState.UNKNOWN, ContainerState.CREATED):
        return True
    policy = pod.spec.restart_policy or "Always"
    if policy == "Never":
        return False
    if policy == "OnFailure" and latest.exit_code == 0:
        return False
    return True


def _init_failed(info: ContainerInfo) -> bool:
    if info.state == ContainerState.EXITED:
        return info.exit_code != 0
    return info.state == ContainerState.UNKNOWN


def next_init_container(pod: Any, state: PodRuntimeState
                        ) -> tuple[ContainerInfo | None, str | None, bool]:
    """findNextInitContainerToRun: ``(last failed instance, next init
    container's name, done)``."""
    inits = list(pod.spec.init_containers)
    if not inits:
        return None, None, True
    for c in pod.spec.containers:
        latest = state.latest(c.name)
        if latest is not None and latest.state == ContainerState.RUNNING:
            return None, None, True  # app containers run: init finished long ago
    for c in reversed(inits):
        latest = state.latest(c.name)
        if latest is not None and _init_failed(latest):
            return latest, c.name, False
    for i in range(len(inits) - 1, -1, -1):
        latest = state.latest(inits[i].name)
        if latest is None:
            continue
        if latest.state == ContainerState.RUNNING:
            return None, None, False
        if latest.state == ContainerState.EXITED:
            if i == len(inits) - 1:
                return None, None, True
            return None, inits[i + 1].name, False
    return None, inits[0].name, False


def _succeeded(name: str, state: PodRuntimeState) -> bool:
    latest = state.latest(name)
    return (latest is not None and latest.state == ContainerState.EXITED
            and latest.exit_code == 0)


def sandbox_changed(pod: Any, state: PodRuntimeState) -> tuple[bool, int, str]:
    """podSandboxChanged: ``(need a new sandbox, attempt, latest sandbox id)``."""
    if not state.sandboxes:
        return True, 0, ""
    ready = sum(1 for s in state.sandboxes if s.state == SandboxState.READY)
    latest = state.sandboxes[0]
    attempt = len(state.sandboxes)
    if ready > 1 or latest.state != SandboxState.READY:
        return True, attempt, latest.id
    if not pod.spec.host_network and not latest.ip:
        return True, attempt, latest.id
    return False, attempt - 1, latest.id


def compute_pod_actions(pod: Any, state: PodRuntimeState, *,
                        liveness_failed: Iterable[str] = (),
                        startup_failed: Iterable[str] = ()) -> PodActions:
    """The actions that take the runtime toward ``pod``'s spec.

    ``liveness_failed`` and ``startup_failed`` are container IDs whose probe
    reached its failure threshold.
    """
    live_bad, start_bad = set(liveness_failed), set(startup_failed)
    create, attempt, sandbox_id = sandbox_changed(pod, state)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id,
                         attempt=attempt)
    if create:
        if not restarts_on_failure(pod) and attempt != 0 and state.containers:
            actions.create_sandbox = False  # the pod is done: do not bring it back
            return actions
        to_start = [c.name for c in pod.spec.containers
                    if not (pod.spec.restart_policy == "OnFailure" and _succeeded(c.name, state))]
        if not to_start and next_init_container(pod, state)[2]:
            actions.create_sandbox = False
            return actions
        if pod.spec.init_containers:
            actions.next_init_container = pod.spec.init_containers[0].name
            return actions
        actions.containers_to_start = to_start
        return actions

    last_failed, nxt, done = next_init_container(pod, state)
    if not done:
        if nxt is not None:
            if last_failed is not None and _init_failed(last_failed) and \
                    not restarts_on_failure(pod):
                actions.kill_pod = True
                actions.init_failed = True
            else:
                if last_failed is not None and last_failed.state == ContainerState.UNKNOWN:
                    actions.containers_to_kill.append(Kill(
                        last_failed.id, nxt, f"Init container {nxt} is in an unknown state"))
                actions.next_init_container = nxt
        return actions

    keep = 0
    for container in pod.spec.containers:
        latest = state.latest(container.name)
        if latest is None or latest.state != ContainerState.RUNNING:
            if should_restart(container, pod, state):
                actions.containers_to_start.append(container.name)
                if latest is not None and latest.state == ContainerState.UNKNOWN:
                    actions.containers_to_kill.append(Kill(
                        latest.id, container.name,
                        f"Container {container.name} is in an unknown state"))
            continue
        restart = restarts_on_failure(pod)
        reason = ""
        if latest.labels.get(LABEL_CONTAINER_HASH, "") != container_hash(container):
            message = f"Container {container.name} definition changed"
            restart = True
        elif latest.id in live_bad:
            message = f"Container {container.name} failed liveness probe"
            reason = "Unhealthy"
        elif latest.id in start_bad:
            message = f"Container {container.name} failed startup probe"
            reason = "Unhealthy"
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            actions.containers_to_start.append(container.name)
        actions.containers_to_kill.append(Kill(latest.id, container.name, message, reason))

    if keep == 0 and not actions.containers_to_start:
        actions.kill_pod = True
    return actions


def prunable(pod: Any, state: PodRuntimeState, keep_dead: int = 1) -> list[ContainerInfo]:
    """Exited instances to remove: all but the newest ``keep_dead`` exited
    ones per container (the newest feeds ``logs --previous`` and lastState),
    and containers no longer in the spec that are not running."""
    names = {c.name for c in pod.spec.containers} | {c.name for c in pod.spec.init_containers}
    out: list[ContainerInfo] = []
    dead_seen: dict[str, int] = {}
    for info in state.containers:  # newest first
        name = container_name(info)
        if info.state == ContainerState.RUNNING:
            continue
        if name not in names:
            out.append(info)
            continue
        if info.state != ContainerState.EXITED:
            continue
        latest = state.latest(name)
        if latest is not None and latest.id == info.id:
            continue  # the current instance is never pruned
        dead_seen[name] = dead_seen.get(name, 0) + 1
        if dead_seen[name] > keep_dead:
            out.append(info)
    return out


def stale_sandboxes(state: PodRuntimeState) -> list[SandboxInfo]:
    """Sandboxes other than the newest, once they are stopped."""
    return [s for s in state.sandboxes[1:] if s.state != SandboxState.READY]


def find_container(pod: Any, name: str) -> tuple[Any | None, bool]:
    """The spec of the named container and whether it is an init container."""
    for c in pod.spec.init_containers:
        if c.name == name:
            return c, True
    for c in pod.spec.containers:
        if c.name == name:
            return c, False
    return None, False


def spec_names(pod: Any) -> Sequence[str]:
    return [c.name for c in pod.spec.init_containers] + [c.name for c in pod.spec.containers]


__all__ = [
    "Kill", "PodActions", "PodRuntimeState", "compute_pod_actions", "container_hash",
    "container_name", "find_container", "is_init", "next_init_container", "prunable",
    "restarts_on_failure", "sandbox_changed", "should_restart", "spec_names", "stale_sandboxes",
]
