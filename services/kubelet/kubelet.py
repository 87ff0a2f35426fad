"""The kubelet: ties the node, the pod workers, probes, images and status
together around one container runtime.

Data flow, as in Kubernetes: an informer on the pods bound to this node
(field selector spec.nodeName) and a periodic relist of the runtime (the
PLEG: every container and sandbox carrying this node's label) both only
wake pod workers; each worker's :meth:`Kubelet.sync_pod` reads the latest
pod and lists that pod's runtime objects, computes the actions
(:mod:`sync`), carries them out, and writes the status (:mod:`status`).
Since the runtime's labels hold everything needed (pod UID, container name,
spec hash, restart count), a restarted kubelet adopts running containers
as they are, and containers of pods no longer in the API are removed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from services.kubelet import containers as containers_
from services.kubelet import metrics, termination, volumes
from services.kubelet.backoff import CRASH_BACKOFF_CAP, CRASH_BACKOFF_INITIAL, Backoff
from services.kubelet.containers import ConfigError
from services.kubelet.images import IMAGE_BACKOFF_CAP, IMAGE_BACKOFF_INITIAL, ImageError, \
    ImageManager
from services.kubelet.node import NodeConfig, NodeManager, primary_ipv4
from services.kubelet.podworkers import PodWorkers
from services.kubelet.probes import LIVENESS, STARTUP, ProbeManager, Prober
from services.kubelet.runtime.base import (
    LABEL_NODE, LABEL_POD_UID, LABEL_RESTART_COUNT, ContainerInfo, ContainerState, RuntimeError_,
    SandboxState,
)
from services.kubelet.status import StatusManager, compute_pod_status, is_terminal
from services.kubelet.sync import (
    PodRuntimeState, compute_pod_actions, find_container, prunable, stale_sandboxes,
)
from services.machinery.clock import Clock, RealClock
from services.machinery.errors import NotFound, PreconditionFailed
from services.machinery.informer import Informer
from services.machinery.store import DeletedFinalStateUnknown

log = logging.getLogger(__name__)

CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
CREATE_CONTAINER_ERROR = "CreateContainerError"
RUN_CONTAINER_ERROR = "RunContainerError"


@dataclasses.dataclass
class KubeletConfig:
    """Everything a kubelet is told (main.py maps the flags onto this)."""

    node_name: str
    node_ip: str = ""
    port: int = 10250
    root_dir: str = "/var/lib/kyb-kubelet"
    max_pods: int = 110
    kube_reserved: str = ""
    system_reserved: str = ""
    node_labels: dict[str, str] = dataclasses.field(default_factory=dict)
    lease_renew_interval: float = 10.0
    status_update_period: float = 300.0
    status_check_interval: float = 10.0
    sync_frequency: float = 10.0          # resync of every pod, whatever happens
    relist_period: float = 1.0            # runtime relist: how soon crashes are noticed
    crash_backoff_initial: float = CRASH_BACKOFF_INITIAL
    crash_backoff_max: float = CRASH_BACKOFF_CAP
    image_backoff_initial: float = IMAGE_BACKOFF_INITIAL
    image_backoff_max: float = IMAGE_BACKOFF_CAP
    capacity: dict[str, str] | None = None   # None: read from the host
    measure_pressure: bool = True


def pod_name(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _fingerprint(state: PodRuntimeState) -> tuple:
    return (tuple((s.id, s.state) for s in state.sandboxes),
            tuple((c.id, c.state, c.exit_code) for c in state.containers))


def _spec_changed(old: Any, new: Any) -> bool:
    """Whether an update is more than a status change."""
    a, b = old.metadata, new.metadata
    return (old.spec != new.spec or a.uid != b.uid
            or a.HasField("deletion_timestamp") != b.HasField("deletion_timestamp")
            or a.deletion_grace_period_seconds != b.deletion_grace_period_seconds
            or a.labels != b.labels or a.annotations != b.annotations)


class Kubelet:
    """One node's kubelet. ``informer``: a pod informer shared by several
    kubelets (hollow mode), which then routes events to :meth:`on_pod` and
    :meth:`on_pod_deleted` itself; None: the kubelet runs its own."""

    def __init__(self, client: Any, runtime: Any, config: KubeletConfig, *,
                 clock: Clock | None = None, informer: Informer | None = None):
        self.client = client
        self.config = config
        self.node_name = config.node_name
        self.node_ip = config.node_ip or primary_ipv4()
        self.clock = clock or RealClock()
        self.runtime = metrics.InstrumentedRuntime(runtime)
        self.node = NodeManager(client, self.runtime, NodeConfig(
            name=config.node_name, ip=self.node_ip, port=config.port, max_pods=config.max_pods,
            kube_reserved=config.kube_reserved, system_reserved=config.system_reserved,
            root_dir=config.root_dir, lease_renew_interval=config.lease_renew_interval,
            status_update_period=config.status_update_period,
            status_check_interval=config.status_check_interval, labels=config.node_labels),
            clock=self.clock, capacity=config.capacity, measure=config.measure_pressure)
        self.status_manager = StatusManager(client)
        self.crash_backoff = Backoff(config.crash_backoff_initial, config.crash_backoff_max,
                                     clock=self.clock)
        self.images = ImageManager(self.runtime, Backoff(
            config.image_backoff_initial, config.image_backoff_max, clock=self.clock))
        self.workers = PodWorkers(self.sync_pod, clock=self.clock, name=config.node_name)
        self.probes = ProbeManager(Prober(self.runtime).probe, clock=self.clock,
                                   on_change=self.workers.update)
        self.shared_informer = informer
        self.informer: Informer | None = informer
        self.pods: dict[str, Any] = {}                       # uid -> latest pod
        self.waiting: dict[str, dict[str, tuple[str, str]]] = {}  # uid -> name -> reason
        self.volume_paths: dict[str, dict[str, str]] = {}
        self.runtime_cache: dict[str, PodRuntimeState] = {}
        self.first_seen: dict[str, float] = {}
        self.deleted_grace: dict[str, float] = {}
        self._listed_at: dict[str, float] = {}   # uid -> when its worker last listed it
        self.ready = asyncio.Event()
        self._pods_api = client.resource("pods")

    # -- pod events (handlers only record and wake) -------------------------------------------

    def on_pod(self, pod: Any, new: Any = None) -> None:
        """on_add(pod) / on_update(old, new). A change of status only (the
        kubelet's own writes, mostly) is recorded without a sync, as the
        kubelet's pod config treats it as a reconcile, not an update."""
        pod = new if new is not None else pod
        if pod.spec.node_name != self.node_name:
            return
        uid = pod.metadata.uid
        known = self.pods.get(uid)
        if known is None and uid not in self.first_seen and pod.status.phase == "Pending":
            self.first_seen[uid] = time.monotonic()
        self.pods[uid] = pod
        if known is None or _spec_changed(known, pod):
            self.workers.update(uid)

    def on_pod_deleted(self, obj: Any) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        uid = pod.metadata.uid
        self.pods.pop(uid, None)
        if pod.metadata.HasField("deletion_grace_period_seconds"):
            # Deleted at once (--force, grace 0): its containers get that grace.
            self.deleted_grace[uid] = float(pod.metadata.deletion_grace_period_seconds)
        self.workers.update(uid)

    def pod_by_name(self, namespace: str, name: str) -> Any | None:
        for pod in self.pods.values():
            if pod.metadata.name == name and pod.metadata.namespace == namespace:
                return pod
        return None

    # -- running -------------------------------------------------------------------------------

    async def wait_for_runtime(self) -> str:
        delay = 0.2
        while True:
            try:
                return await self.runtime.version()
            except Exception as err:  # noqa: BLE001 - wait for the runtime to come up
                log.warning("container runtime is not answering: %s; retrying", err)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        """Register the node, then sync pods until cancelled."""
        metrics.register_source(self, self._running_counts)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.wait_for_runtime()
            await self.node.register_until_done()
            if self.shared_informer is None:
                self.informer = Informer(self.client, "pods",
                                         field_selector=f"spec.nodeName={self.node_name}",
                                         clock=self.clock)
                self.informer.add_event_handler(self.on_pod, self.on_pod, self.on_pod_deleted)
                tasks.append(asyncio.create_task(self.informer.run(),
                                                 name=f"pod-informer-{self.node_name}"))
            assert self.informer is not None
            while not await self.informer.wait_for_sync(30):
                log.warning("pod informer has not synced yet", extra={"node": self.node_name})
            await self._relist()
            await self._orphan_dirs()
            self.ready.set()
            log.info("kubelet ready", extra={"node": self.node_name, "pods": len(self.pods)})
            tasks.append(asyncio.create_task(self.node.run(), name=f"node-{self.node_name}"))
            tasks.append(asyncio.create_task(self._relist_loop(), name=f"pleg-{self.node_name}"))
            tasks.append(asyncio.create_task(self._resync_loop(),
                                             name=f"resync-{self.node_name}"))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.workers.stop()
            await self.probes.stop()
            metrics.unregister_source(self)

    async def _relist_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.relist_period)
            try:
                await self._relist()
            except (RuntimeError_, OSError) as err:
                log.warning("relisting the runtime failed: %s", err)
            except Exception:  # noqa: BLE001 - keep relisting whatever happens
                log.exception("relisting the runtime failed")

    async def _resync_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.sync_frequency)
            for uid in list(self.pods):
                self.workers.update(uid)
            self.crash_backoff.gc()
            self.images.backoff.gc()

    async def _relist(self) -> None:
        """The PLEG: list this node's runtime objects and wake the worker of
        every pod whose containers changed, including pods the API no longer
        has (their containers are orphans to remove)."""
        selector = {LABEL_NODE: self.node_name}
        started = time.monotonic()
        sandboxes, containers = await asyncio.gather(
            self.runtime.list_sandboxes(selector), self.runtime.list_containers(selector))
        by_uid: dict[str, tuple[list, list]] = {}
        for s in sandboxes:
            by_uid.setdefault(s.pod_uid or s.labels.get(LABEL_POD_UID, ""), ([], []))[0].append(s)
        for c in containers:
            by_uid.setdefault(c.pod_uid or c.labels.get(LABEL_POD_UID, ""), ([], []))[1].append(c)
        fresh = {uid: PodRuntimeState.of(s, c) for uid, (s, c) in by_uid.items() if uid}
        old = self.runtime_cache
        # A pod its worker listed after this relist began is newer in the
        # cache than in this snapshot: keep the worker's view, compare nothing.
        newer = {uid for uid, at in self._listed_at.items() if at > started}
        for uid in newer:
            fresh.pop(uid, None)
            if uid in old:
                fresh[uid] = old[uid]
        self.runtime_cache = fresh
        for uid in (set(fresh) | set(old)) - newer:
            before, after = old.get(uid), fresh.get(uid)
            if before is None or after is None or _fingerprint(before) != _fingerprint(after):
                self.workers.update(uid)
            elif uid not in self.pods and uid not in self.workers:
                self.workers.update(uid)

    async def _orphan_dirs(self) -> None:
        """Remove pod directories left by pods that are gone everywhere."""
        on_disk = await asyncio.to_thread(volumes.pod_dirs, self.config.root_dir)
        for uid in on_disk:
            if uid not in self.pods and uid not in self.runtime_cache:
                await asyncio.to_thread(volumes.remove_pod_dir, self.config.root_dir, uid)

    def _running_counts(self) -> tuple[int, dict[str, int]]:
        pods = 0
        by_state: dict[str, int] = {}
        for state in self.runtime_cache.values():
            if state.ready_sandbox is not None:
                pods += 1
            for c in state.containers:
                key = c.state.value if isinstance(c.state, ContainerState) else str(c.state)
                by_state[key] = by_state.get(key, 0) + 1
        return pods, by_state

    # -- one pod ------------------------------------------------------------------------------

    async def pod_state(self, uid: str) -> PodRuntimeState:
        selector = {LABEL_POD_UID: uid, LABEL_NODE: self.node_name}
        started = time.monotonic()
        sandboxes, containers = await asyncio.gather(
            self.runtime.list_sandboxes(selector), self.runtime.list_containers(selector))
        state = PodRuntimeState.of(sandboxes, containers)
        # The PLEG's view follows what the worker saw: its own changes do not
        # wake the pod again, and the running-pods gauges stay current.
        if state.empty:
            self.runtime_cache.pop(uid, None)
            self._listed_at.pop(uid, None)
        else:
            self.runtime_cache[uid] = state
            self._listed_at[uid] = started
        return state

    async def sync_pod(self, uid: str) -> float | None:
        """One level-triggered sync of one pod; see the module docstring.
        Returns seconds until the next sync, or None when the pod is finished."""
        started = time.perf_counter()
        pod = self.pods.get(uid)
        state = await self.pod_state(uid)
        try:
            if pod is None:
                return await self._sync_gone(uid, state)
            if pod.metadata.HasField("deletion_timestamp"):
                return await self._sync_terminating(pod, state)
            return await self._sync_live(pod, state)
        finally:
            metrics.SYNC_DURATION.labels("sync").observe(time.perf_counter() - started)

    def _forget(self, uid: str) -> None:
        self.waiting.pop(uid, None)
        self.volume_paths.pop(uid, None)
        self.first_seen.pop(uid, None)
        self.status_manager.forget(uid)
        self.images.forget_pod(uid)
        self.crash_backoff.forget_where(lambda key: key[0] == uid)

    async def _sync_gone(self, uid: str, state: PodRuntimeState) -> float | None:
        """The pod is not in the API: remove whatever the runtime still has."""
        await self.probes.remove_pod(uid)
        if not state.empty:
            log.info("removing containers of a pod no longer in the API",
                     extra={"pod_uid": uid, "containers": len(state.containers)})
            await termination.kill_pod(self.runtime, None, state,
                                       grace=self.deleted_grace.get(uid))
            await termination.remove_all(self.runtime, state)
        self.deleted_grace.pop(uid, None)
        await asyncio.to_thread(volumes.remove_pod_dir, self.config.root_dir, uid)
        self._forget(uid)
        return None

    async def _sync_terminating(self, pod: Any, state: PodRuntimeState) -> float | None:
        """Graceful deletion: stop everything within the grace period, remove
        it, then confirm the deletion to the API server."""
        uid = pod.metadata.uid
        await self.probes.remove_pod(uid)
        if state.running or state.ready_sandbox is not None:
            log.info("stopping pod", extra={"object": pod_name(pod),
                                            "grace": containers_.grace_seconds(pod)})
        ip = state.ready_sandbox.ip if state.ready_sandbox is not None else ""
        await termination.kill_pod(self.runtime, pod, state, pod_ip=ip)
        await termination.remove_all(self.runtime, await self.pod_state(uid))
        await asyncio.to_thread(volumes.remove_pod_dir, self.config.root_dir, uid)
        try:
            await self._pods_api.delete(pod.metadata.name, pod.metadata.namespace,
                                        grace_period_seconds=0, uid=uid)
        except (NotFound, PreconditionFailed):
            pass  # already gone, or a new pod of the same name
        log.info("pod deleted", extra={"object": pod_name(pod)})
        self._forget(uid)
        return None

    async def _sync_live(self, pod: Any, state: PodRuntimeState) -> float | None:
        uid = pod.metadata.uid
        pod_view = pod
        latest = self.status_manager.latest_status(pod)
        if latest is not pod.status:
            pod_view = type(pod)()
            pod_view.CopyFrom(pod)
            pod_view.status.CopyFrom(latest)

        if is_terminal(pod_view):
            # Terminal: nothing runs again; stop what still runs, keep the status.
            await self.probes.remove_pod(uid)
            if state.running or state.ready_sandbox is not None:
                ip = state.ready_sandbox.ip if state.ready_sandbox is not None else ""
                await termination.kill_pod(self.runtime, pod, state, pod_ip=ip)
                state = await self.pod_state(uid)
            await self._write_status(pod_view, state)
            return None

        self.probes.add_pod(pod)
        retry: list[float] = []
        actions = compute_pod_actions(pod_view, state,
                                      liveness_failed=self.probes.failed(LIVENESS),
                                      startup_failed=self.probes.failed(STARTUP))
        acted = not actions.idle
        sandbox = state.ready_sandbox
        ip = sandbox.ip if sandbox is not None else ""
        if actions.kill_pod:
            await termination.kill_pod(self.runtime, pod, state, pod_ip=ip)
            sandbox = None
        for kill in actions.containers_to_kill:
            info = next((c for c in state.containers if c.id == kill.container_id), None)
            if info is not None:
                log.info(kill.message, extra={"object": pod_name(pod)})
                await termination.kill_container(self.runtime, pod, info, pod_ip=ip,
                                                 grace=self._kill_grace(pod, kill.name,
                                                                        kill.reason))
        if actions.create_sandbox:
            sandbox = await self._create_sandbox(pod)
        if sandbox is not None and (actions.next_init_container or actions.containers_to_start):
            paths = await self._volumes(pod)
            if paths is None:
                retry.append(2.0)
            else:
                if actions.containers_to_kill or (actions.kill_pod and state.running):
                    state = await self.pod_state(uid)  # what was killed has exited now
                if actions.next_init_container:
                    delay = await self._start(pod_view, actions.next_init_container, state,
                                              sandbox, paths)
                    if delay is not None:
                        retry.append(delay)
                results = await asyncio.gather(*(
                    self._start(pod_view, name, state, sandbox, paths)
                    for name in actions.containers_to_start))
                retry.extend(d for d in results if d is not None)
        if acted:
            state = await self.pod_state(uid)
        await self._prune(pod, state)
        status = await self._write_status(pod_view, state)
        if status is not None and status.phase == "Running" and uid in self.first_seen:
            metrics.POD_START.observe(time.monotonic() - self.first_seen.pop(uid))
        if status is not None and is_terminal(type(pod)(status=status)):
            return 0.0  # stop what still runs (the sandbox) on the next pass
        delay = self.config.sync_frequency
        if retry:
            delay = max(0.05, min(min(retry), delay))
        return delay

    def _kill_grace(self, pod: Any, name: str, reason: str) -> float | None:
        """A probe's own terminationGracePeriodSeconds applies when it killed."""
        if reason != "Unhealthy":
            return None
        container, _ = find_container(pod, name)
        if container is None:
            return None
        for field in ("liveness_probe", "startup_probe"):
            if container.HasField(field) and \
                    getattr(container, field).HasField("termination_grace_period_seconds"):
                return float(getattr(container, field).termination_grace_period_seconds)
        return None

    async def _volumes(self, pod: Any) -> dict[str, str] | None:
        uid = pod.metadata.uid
        paths = self.volume_paths.get(uid)
        if paths is not None:
            return paths
        try:
            paths = await asyncio.to_thread(volumes.prepare_volumes, self.config.root_dir, pod)
        except (volumes.VolumeError, OSError) as err:
            log.warning("volumes of pod cannot be set up: %s", err,
                        extra={"object": pod_name(pod)})
            for c in list(pod.spec.init_containers) + list(pod.spec.containers):
                self.waiting.setdefault(uid, {})[c.name] = (CREATE_CONTAINER_CONFIG_ERROR,
                                                            str(err))
            return None
        self.volume_paths[uid] = paths
        return paths

    async def _create_sandbox(self, pod: Any) -> Any | None:
        uid = pod.metadata.uid
        config = containers_.sandbox_config(pod, self.node_name)
        try:
            sandbox_id = await self.runtime.run_sandbox(config)
        except RuntimeError_ as err:
            log.warning("creating the pod sandbox failed: %s", err,
                        extra={"object": pod_name(pod)})
            raise
        for s in await self.runtime.list_sandboxes({LABEL_POD_UID: uid,
                                                    LABEL_NODE: self.node_name}):
            if s.id == sandbox_id and s.state == SandboxState.READY:
                return s
        raise RuntimeError_(f"sandbox {sandbox_id[:12]} is not ready after creation")

    def _restart_count(self, pod: Any, name: str, latest: ContainerInfo | None) -> int:
        if latest is not None:
            return latest.restart_count + 1
        for status in list(pod.status.init_container_statuses) + \
                list(pod.status.container_statuses):
            if status.name == name:
                ran = status.container_id or status.state.HasField("running") or \
                    status.state.HasField("terminated")
                return status.restart_count + (1 if ran else 0)
        return 0

    async def _start(self, pod: Any, name: str, state: PodRuntimeState, sandbox: Any,
                     paths: Mapping[str, str]) -> float | None:
        """Start one container (after backoff and image checks). Returns
        seconds until it may be tried again when it could not start now."""
        uid = pod.metadata.uid
        waiting = self.waiting.setdefault(uid, {})
        container, init = find_container(pod, name)
        if container is None:
            return None
        key = (uid, name)
        exited = state.latest_exited(name)
        if exited is not None and exited.finished_at is not None:
            remaining = self.crash_backoff.remaining_since(key, exited.finished_at)
            if remaining > 0:
                waiting[name] = (CRASH_LOOP_BACK_OFF,
                                 f"back-off {self.crash_backoff.get(key):.0f}s restarting failed "
                                 f"container={name} pod={pod.metadata.name}_"
                                 f"{pod.metadata.namespace}({uid})")
                return remaining
            self.crash_backoff.next(key, exited.finished_at)
        try:
            await self.images.ensure_image(uid, container)
        except ImageError as err:
            waiting[name] = (err.reason, err.message)
            return max(0.5, self.images.retry_in(uid, container.image) + 0.05)
        latest = state.latest(name)
        try:
            config = containers_.container_config(
                pod, container, node=self.node_name,
                restart_count=self._restart_count(pod, name, latest), init=init,
                pod_ip=sandbox.ip or (self.node_ip if pod.spec.host_network else ""),
                host_ip=self.node_ip, volume_paths=paths)
        except ConfigError as err:
            waiting[name] = (CREATE_CONTAINER_CONFIG_ERROR, str(err))
            return 5.0
        for stale in state.instances(name):
            if stale.state == ContainerState.CREATED:
                await self._remove_quietly(stale.id)
        if init:  # only the newest instance of an init container is of interest
            for old in state.instances(name):
                if old.state == ContainerState.EXITED:
                    await self._remove_quietly(old.id)
        try:
            container_id = await self.runtime.create_container(sandbox.id, config)
        except RuntimeError_ as err:
            waiting[name] = (CREATE_CONTAINER_ERROR, str(err))
            return 2.0
        try:
            await self.runtime.start_container(container_id)
        except RuntimeError_ as err:
            waiting[name] = (RUN_CONTAINER_ERROR, str(err))
            return 2.0
        waiting.pop(name, None)
        log.info("started container", extra={"object": pod_name(pod), "container": name,
                                              "restarts": config.labels[LABEL_RESTART_COUNT]})
        if container.HasField("lifecycle") and container.lifecycle.HasField("post_start") and \
                container.lifecycle.post_start.HasField("exec"):
            await self._post_start(pod, container, container_id)
        return None

    async def _post_start(self, pod: Any, container: Any, container_id: str) -> None:
        try:
            code, out, err = await self.runtime.exec(
                container_id, list(container.lifecycle.post_start.exec.command), timeout=30)
        except Exception as error:  # noqa: BLE001 - reported like a failing hook
            code, out, err = -1, b"", str(error).encode()
        if code != 0:
            log.warning("postStart hook failed (%d): %s; killing the container", code,
                        (out + err).decode("utf-8", "replace")[:200],
                        extra={"object": pod_name(pod), "container": container.name})
            try:
                await self.runtime.stop_container(container_id, 2.0)
            except RuntimeError_:
                pass

    async def _remove_quietly(self, container_id: str) -> None:
        try:
            await self.runtime.remove_container(container_id)
        except RuntimeError_ as err:
            log.debug("removing container %s: %s", container_id[:12], err)

    async def _prune(self, pod: Any, state: PodRuntimeState) -> None:
        for info in prunable(pod, state):
            await self._remove_quietly(info.id)
        for sandbox in stale_sandboxes(state):
            try:
                await self.runtime.remove_sandbox(sandbox.id)
            except RuntimeError_ as err:
                log.debug("removing sandbox %s: %s", sandbox.id[:12], err)

    async def _write_status(self, pod: Any, state: PodRuntimeState) -> Any:
        uid = pod.metadata.uid
        status = compute_pod_status(
            pod, state, now=self.clock.wall(), host_ip=self.node_ip,
            runtime_name=self.runtime.name, readiness=self.probes.readiness(),
            startup=self.probes.started(), waiting=self.waiting.get(uid, {}))
        self.probes.set_status(uid, status)
        await self.status_manager.set_status(pod, status)
        return status


__all__ = ["Kubelet", "KubeletConfig"]
