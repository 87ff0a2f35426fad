"""A pod's status, computed from its spec, the runtime and probe results.

:func:`compute_pod_status` is pure and follows the kubelet's
generateAPIPodStatus: container statuses (waiting, running or terminated,
lastState, restartCount, ready, started, image, imageID, containerID), the
phase (getPhase), and the conditions PodScheduled, Initialized,
ContainersReady and Ready, whose lastTransitionTime is kept while their
status does not change. :class:`StatusManager` writes the result through
UpdateStatus, only when it differs from what the API already has, and
retries conflicts — the kubelet is the one writer of pod status.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from google.protobuf import timestamp_pb2

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.quantity import QuantityError, parse_quantity
from services.kubelet.runtime.base import ContainerInfo, ContainerState
from services.kubelet.sync import PodRuntimeState, should_restart
from services.machinery.errors import Conflict, NotFound

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CONDITION_ORDER = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def timestamp(when: datetime.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    ts.FromDatetime(when.astimezone(datetime.timezone.utc))
    return ts


def is_terminal(pod: Any) -> bool:
    return pod.status.phase in TERMINAL_PHASES


# -- container statuses ------------------------------------------------------------------


def _convert(info: ContainerInfo, runtime_name: str) -> core.ContainerState:
    """convertContainerStatus: one runtime container's state."""
    state = core.ContainerState()
    cid = f"{runtime_name}://{info.id}"
    if info.state == ContainerState.RUNNING:
        state.running.SetInParent()
        if info.started_at:
            state.running.started_at.CopyFrom(timestamp(info.started_at))
    elif info.state == ContainerState.EXITED:
        t = state.terminated
        t.exit_code = info.exit_code
        t.reason = info.reason or ("Completed" if info.exit_code == 0 else "Error")
        t.message = info.message
        t.container_id = cid
        if info.started_at:
            t.started_at.CopyFrom(timestamp(info.started_at))
        if info.finished_at:
            t.finished_at.CopyFrom(timestamp(info.finished_at))
    elif info.state == ContainerState.CREATED:
        state.waiting.reason = CONTAINER_CREATING
    else:
        t = state.terminated
        t.exit_code = 137
        t.reason = "ContainerStatusUnknown"
        t.message = "The container could not be located when the pod was terminated"
        t.container_id = cid
    return state


def container_statuses(pod: Any, containers: Any, old_statuses: Any, state: PodRuntimeState,
                       *, init: bool, runtime_name: str,
                       readiness: Mapping[str, bool], startup: Mapping[str, bool],
                       waiting: Mapping[str, tuple[str, str]]) -> list[core.ContainerStatus]:
    """convertToAPIContainerStatuses for one list (init or app containers)."""
    has_init = len(pod.spec.init_containers) > 0
    default_reason = POD_INITIALIZING if has_init else CONTAINER_CREATING
    old = {s.name: s for s in old_statuses}
    out: dict[str, core.ContainerStatus] = {}

    for c in containers:
        status = core.ContainerStatus(name=c.name, image=c.image)
        status.state.waiting.reason = default_reason
        prev = old.get(c.name)
        if prev is not None:
            if prev.state.HasField("terminated"):
                status.CopyFrom(prev)
            else:
                status.restart_count = prev.restart_count
                if prev.HasField("last_state"):
                    status.last_state.CopyFrom(prev.last_state)
        out[c.name] = status

    # A container that was running and has vanished (removed behind our back)
    # did terminate, even if nobody knows how: say so, and count a restart.
    for c in containers:
        if state.instances(c.name):
            continue
        prev = old.get(c.name)
        if prev is None or not prev.state.HasField("running"):
            continue
        status = out[c.name]
        if not (status.state.HasField("waiting") and status.state.waiting.reason == default_reason):
            continue
        if status.last_state.HasField("terminated"):
            continue
        t = status.last_state.terminated
        t.reason = "ContainerStatusUnknown"
        t.message = ("The container could not be located when the pod was deleted.  "
                     "The container used to be Running")
        t.exit_code = 137
        if not pod.metadata.HasField("deletion_timestamp"):
            status.restart_count += 1

    for c in containers:
        instances = state.instances(c.name)[:2]
        if not instances:
            continue
        latest = instances[0]
        status = out[c.name]
        status.ClearField("state")
        status.state.CopyFrom(_convert(latest, runtime_name))
        status.restart_count = latest.restart_count
        status.container_id = f"{runtime_name}://{latest.id}"
        status.image_id = latest.image_id
        if len(instances) > 1:
            status.last_state.CopyFrom(_convert(instances[1], runtime_name))
        running = latest.state == ContainerState.RUNNING
        if init:
            status.ready = latest.state == ContainerState.EXITED and latest.exit_code == 0
            status.started = running
        else:
            started = running and (not c.HasField("startup_probe")
                                   or startup.get(latest.id, False))
            status.started = started
            if not started:
                status.ready = False
            elif c.HasField("readiness_probe"):
                status.ready = readiness.get(latest.id, False)
            else:
                status.ready = True

    for c in containers:
        if init:
            latest = state.latest(c.name)
            if latest is not None and latest.state == ContainerState.EXITED and \
                    latest.exit_code == 0:
                continue
        if not should_restart(c, pod, state):
            continue
        found = waiting.get(c.name)
        if found is None:
            continue
        status = out[c.name]
        if status.state.HasField("terminated"):
            status.last_state.CopyFrom(status.state)
        status.ClearField("state")
        status.state.waiting.reason, status.state.waiting.message = found
        status.ready = False
        status.started = False
    return [out[c.name] for c in containers]


# -- phase -----------------------------------------------------------------------------------


def _any_regular_started(pod: Any, statuses: Mapping[str, core.ContainerStatus]) -> bool:
    for c in pod.spec.containers:
        s = statuses.get(c.name)
        if s is not None and (s.state.HasField("running") or s.state.HasField("terminated")
                              or s.last_state.HasField("terminated")):
            return True
    return False


def pod_phase(pod: Any, init_statuses: Mapping[str, core.ContainerStatus],
              statuses: Mapping[str, core.ContainerStatus], pod_is_terminal: bool) -> str:
    """getPhase: Pending, Running, Succeeded or Failed."""
    spec = pod.spec
    pending_init = failed_init = 0
    for c in spec.init_containers:
        s = init_statuses.get(c.name)
        if s is None:
            pending_init += 1
        elif s.state.HasField("running"):
            pending_init += 1
        elif s.state.HasField("terminated"):
            if s.state.terminated.exit_code != 0:
                failed_init += 1
        elif s.state.HasField("waiting"):
            if s.last_state.HasField("terminated"):
                if s.last_state.terminated.exit_code != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.containers:
        s = statuses.get(c.name)
        if s is None:
            unknown += 1
        elif s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            if s.state.terminated.exit_code == 0:
                succeeded += 1
        elif s.state.HasField("waiting"):
            if s.last_state.HasField("terminated"):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    policy = spec.restart_policy or "Always"
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if (pending_init > 0 and not _any_regular_started(pod, statuses)) or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# -- conditions -------------------------------------------------------------------------------


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def initialized_condition(pod: Any, init_statuses: Mapping[str, core.ContainerStatus],
                          statuses: Mapping[str, core.ContainerStatus],
                          phase: str) -> tuple[str, str, str]:
    """(status, reason, message) of Initialized."""
    if not pod.spec.init_containers:
        return "True", "", ""
    unknown, incomplete = [], []
    for c in pod.spec.init_containers:
        s = init_statuses.get(c.name)
        if s is None:
            unknown.append(c.name)
        elif not s.state.HasField("terminated") or s.state.terminated.exit_code != 0:
            incomplete.append(c.name)
    if phase == "Succeeded" and not unknown:
        return "True", "PodCompleted", ""
    if _any_regular_started(pod, statuses):
        return "True", "", ""
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_names(incomplete)}")
    if messages:
        return "False", "ContainersNotInitialized", ", ".join(messages)
    return "True", "", ""


def containers_ready_condition(pod: Any, statuses: Mapping[str, core.ContainerStatus],
                               phase: str) -> tuple[str, str, str]:
    """(status, reason, message) of ContainersReady (and so of Ready)."""
    unknown, unready = [], []
    for c in pod.spec.containers:
        s = statuses.get(c.name)
        if s is None:
            unknown.append(c.name)
        elif not s.ready:
            unready.append(c.name)
    if phase == "Succeeded" and not unknown:
        return "False", "PodCompleted", ""
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_names(unready)}")
    if messages:
        return "False", "ContainersNotReady", ", ".join(messages)
    return "True", "", ""


def _condition(type_: str, value: tuple[str, str, str], old: Mapping[str, core.PodCondition],
               now: datetime.datetime) -> core.PodCondition:
    status, reason, message = value
    cond = core.PodCondition(type=type_, status=status, reason=reason, message=message)
    prev = old.get(type_)
    if prev is not None and prev.status == status and prev.HasField("last_transition_time"):
        cond.last_transition_time.CopyFrom(prev.last_transition_time)
    else:
        cond.last_transition_time.CopyFrom(timestamp(now))
    return cond


# -- QoS --------------------------------------------------------------------------------------


def qos_class(pod: Any) -> str:
    """Guaranteed, Burstable or BestEffort from requests and limits."""
    requests: dict[str, object] = {}
    limits: dict[str, object] = {}
    guaranteed = True
    for c in list(pod.spec.init_containers) + list(pod.spec.containers):
        for name in ("cpu", "memory"):
            req = c.resources.requests.get(name)
            lim = c.resources.limits.get(name)
            try:
                if req is not None and parse_quantity(req) != 0:
                    requests[name] = req
                if lim is not None and parse_quantity(lim) != 0:
                    limits[name] = lim
                if lim is None or req is None or parse_quantity(lim) != parse_quantity(req):
                    guaranteed = False
            except QuantityError:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# -- the whole status ---------------------------------------------------------------------------


def compute_pod_status(pod: Any, state: PodRuntimeState, *, now: datetime.datetime,
                       host_ip: str, runtime_name: str = "docker",
                       readiness: Mapping[str, bool] | None = None,
                       startup: Mapping[str, bool] | None = None,
                       waiting: Mapping[str, tuple[str, str]] | None = None,
                       pod_is_terminal: bool | None = None) -> core.PodStatus:
    """generateAPIPodStatus. ``readiness``/``startup``: probe results by
    container ID; ``waiting``: the reason a container could not be started
    on the last try (ErrImagePull, CrashLoopBackOff, ...) by container name."""
    readiness = readiness or {}
    startup = startup or {}
    waiting = waiting or {}
    old = pod.status
    terminal = is_terminal(pod) if pod_is_terminal is None else pod_is_terminal
    status = core.PodStatus()

    kw = dict(runtime_name=runtime_name, readiness=readiness, startup=startup, waiting=waiting)
    init = container_statuses(pod, pod.spec.init_containers, old.init_container_statuses, state,
                              init=True, **kw)
    apps = container_statuses(pod, pod.spec.containers, old.container_statuses, state,
                              init=False, **kw)
    status.init_container_statuses.extend(init)
    status.container_statuses.extend(apps)
    init_map = {s.name: s for s in init}
    app_map = {s.name: s for s in apps}

    phase = pod_phase(pod, init_map, app_map, terminal)
    if is_terminal(pod) and phase != old.phase:
        phase = old.phase  # a terminal phase is final
    status.phase = phase

    old_conditions = {c.type: c for c in old.conditions}
    values = {
        "Initialized": initialized_condition(pod, init_map, app_map, phase),
        "ContainersReady": containers_ready_condition(pod, app_map, phase),
    }
    values["Ready"] = values["ContainersReady"]
    scheduled = old_conditions.get("PodScheduled")
    for type_ in CONDITION_ORDER:
        if type_ == "PodScheduled":
            if scheduled is not None:
                status.conditions.append(scheduled)
            else:
                status.conditions.append(_condition("PodScheduled", ("True", "", ""), {}, now))
            continue
        status.conditions.append(_condition(type_, values[type_], old_conditions, now))
    for cond in old.conditions:  # conditions others own (readiness gates, ...)
        if cond.type not in CONDITION_ORDER:
            status.conditions.append(cond)

    status.host_ip = host_ip
    sandbox = state.ready_sandbox
    if pod.spec.host_network:
        pod_ip = host_ip
    elif sandbox is not None and sandbox.ip:
        pod_ip = sandbox.ip
    else:
        pod_ip = old.pod_ip  # kept once the sandbox is gone (terminated pods)
    if pod_ip:
        status.pod_ip = pod_ip
        status.pod_ips.add(ip=pod_ip)
    if old.HasField("start_time"):
        status.start_time.CopyFrom(old.start_time)
    else:
        status.start_time.CopyFrom(timestamp(now))
    status.qos_class = old.qos_class or qos_class(pod)
    status.reason, status.message = old.reason, old.message
    return status


# -- writing --------------------------------------------------------------------------------------


class StatusManager:
    """Writes pod statuses through UpdateStatus, only when they change.

    A status equal to the one the API has (as the kubelet last saw it) or to
    the one last written is skipped. A conflict re-reads the pod and tries
    again; a pod gone from the API is dropped.
    """

    def __init__(self, client: Any, retries: int = 5):
        self.pods = client.resource("pods")
        self.retries = retries
        self._written: dict[str, core.PodStatus] = {}
        self._written_rv: dict[str, int] = {}
        self.writes = 0

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        self._written_rv.pop(uid, None)

    def latest_status(self, pod: Any) -> core.PodStatus:
        """The freshest status known for ``pod``: the one last written when
        the cached copy has not caught up with that write yet."""
        uid = pod.metadata.uid
        written = self._written.get(uid)
        if written is not None:
            try:
                if int(pod.metadata.resource_version or 0) < self._written_rv.get(uid, 0):
                    return written
            except ValueError:
                pass
        return pod.status

    def last_written(self, uid: str) -> core.PodStatus | None:
        return self._written.get(uid)

    async def set_status(self, pod: Any, status: core.PodStatus) -> Any | None:
        """Write ``status`` for ``pod`` if it changed; returns the updated pod
        (None when nothing was written or the pod is gone)."""
        uid = pod.metadata.uid
        if status == pod.status or status == self._written.get(uid):
            return None
        current = pod
        for _ in range(self.retries):
            update = core.Pod()
            update.CopyFrom(current)
            update.status.CopyFrom(status)
            try:
                result = await self.pods.update_status(update)
            except Conflict:
                try:
                    current = await self.pods.get(pod.metadata.name, pod.metadata.namespace)
                except NotFound:
                    return None
                if current.metadata.uid != uid:
                    return None
                continue
            except NotFound:
                return None
            self._written[uid] = status
            try:
                self._written_rv[uid] = int(result.metadata.resource_version)
            except (ValueError, AttributeError):
                pass
            self.writes += 1
            return result
        raise Conflict(f"pod {pod.metadata.namespace}/{pod.metadata.name}: status update "
                       f"kept conflicting")


__all__ = [
    "StatusManager", "TERMINAL_PHASES", "compute_pod_status", "container_statuses",
    "containers_ready_condition", "initialized_condition", "is_terminal", "pod_phase",
    "qos_class", "timestamp",
]
