"""Liveness, readiness and startup probes, as the kubelet's prober runs them.

One worker per (pod, container, probe type) ticks every ``periodSeconds``
(on an injected clock). It probes only a running container, not before
``initialDelaySeconds`` after it started; the startup probe runs until it
first succeeds and the other two wait for that. A result counts once it
has repeated ``failureThreshold`` (or ``successThreshold``) times in a row.
Results are kept per container ID, so a restarted container starts afresh
(readiness: not ready; liveness: alive; startup: not started). A liveness or
startup failure puts the worker on hold until a new container appears — the
pod worker kills and restarts the container when it sees the failure.

Probes themselves: ``exec`` through the runtime (exit code 0), ``httpGet``
(status 200-399) and ``tcpSocket`` (the connection opens) against the pod
IP, each bounded by ``timeoutSeconds``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from services.machinery.clock import Clock, RealClock

log = logging.getLogger(__name__)

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"
PROBE_FIELDS = {LIVENESS: "liveness_probe", READINESS: "readiness_probe",
                STARTUP: "startup_probe"}


class Result(str, enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


INITIAL = {READINESS: Result.FAILURE, LIVENESS: Result.SUCCESS, STARTUP: Result.UNKNOWN}


def resolve_port(port: Any, container: Any) -> int:
    """An IntOrString probe port: a number, or the name of a container port."""
    which = port.WhichOneof("value")
    if which == "int_value":
        return port.int_value
    name = port.str_value if which == "str_value" else ""
    if name.isdigit():
        return int(name)
    for p in container.ports:
        if p.name == name:
            return p.container_port
    raise ValueError(f"port {name!r} not found in container {container.name!r}")


async def http_get(host: str, port: int, path: str, *, scheme: str = "HTTP",
                   headers: list[tuple[str, str]] = (), timeout: float = 1.0) -> int:
    """One HTTP GET: the response's status code (raises on failure)."""
    context = None
    if scheme.upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # Kubernetes probes skip verification too

    async def go() -> int:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            names = {k.lower() for k, _ in headers}
            lines = [f"GET {path or '/'} HTTP/1.1"]
            if "host" not in names:
                lines.append(f"Host: {host}:{port}")
            if "user-agent" not in names:
                lines.append("User-Agent: kube-probe/1.30")
            if "accept" not in names:
                lines.append("Accept: */*")
            lines.extend(f"{k}: {v}" for k, v in headers)
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.decode("latin-1").split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"bad HTTP response {status_line[:80]!r}")
            return int(parts[1])
        finally:
            writer.close()

    return await asyncio.wait_for(go(), timeout)


async def tcp_open(host: str, port: int, timeout: float = 1.0) -> None:
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.close()


class Prober:
    """Runs one probe against one container."""

    def __init__(self, runtime: Any):
        self.runtime = runtime

    async def probe(self, probe: Any, pod: Any, container: Any, container_id: str,
                    pod_ip: str) -> tuple[Result, str]:
        timeout = float(probe.timeout_seconds or 1)
        try:
            if probe.HasField("exec"):
                code, out, err = await self.runtime.exec(
                    container_id, list(probe.exec.command), timeout=timeout)
                output = (out + err).decode("utf-8", "replace")[:1024]
                return (Result.SUCCESS if code == 0 else Result.FAILURE), output
            if probe.HasField("http_get"):
                action = probe.http_get
                host = action.host or pod_ip
                port = resolve_port(action.port, container)
                code = await http_get(host, port, action.path or "/",
                                      scheme=action.scheme or "HTTP",
                                      headers=[(h.name, h.value) for h in action.http_headers],
                                      timeout=timeout)
                if 200 <= code < 400:
                    return Result.SUCCESS, f"HTTP probe succeeded with statuscode: {code}"
                return Result.FAILURE, f"HTTP probe failed with statuscode: {code}"
            if probe.HasField("tcp_socket"):
                action = probe.tcp_socket
                await tcp_open(action.host or pod_ip, resolve_port(action.port, container),
                               timeout)
                return Result.SUCCESS, ""
        except (asyncio.TimeoutError, TimeoutError):
            return Result.FAILURE, f"probe timed out after {timeout:g}s"
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a failing probe is a failed probe
            return Result.FAILURE, str(err) or type(err).__name__
        return Result.UNKNOWN, "probe has no handler"


ProbeFunc = Callable[[Any, Any, Any, str, str], Awaitable[tuple[Result, str]]]


class Worker:
    """One probe of one container; see the module docstring."""

    def __init__(self, manager: ProbeManager, pod: Any, container: Any, probe_type: str):
        self.manager = manager
        self.pod = pod
        self.container = container
        self.probe_type = probe_type
        self.spec = getattr(container, PROBE_FIELDS[probe_type])
        self.container_id = ""
        self.last_result: Result | None = None
        self.result_run = 0
        self.on_hold = False
        self.probes = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def results(self) -> dict[str, Result]:
        return self.manager.results[self.probe_type]

    async def run(self) -> None:
        clock = self.manager.clock
        period = float(self.spec.period_seconds or 10)
        try:
            while await self.do_probe():
                await clock.sleep(period)
        finally:
            if self.container_id:
                self.manager.set_result(self.probe_type, self.container_id, None,
                                        self.pod.metadata.uid)

    async def do_probe(self) -> bool:
        """One tick; False stops the worker."""
        uid = self.pod.metadata.uid
        status = self.manager.statuses.get(uid)
        if status is None:
            return True
        if status.phase in ("Succeeded", "Failed"):
            return False
        cs = next((s for s in status.container_statuses if s.name == self.container.name), None)
        if cs is None or not cs.container_id:
            return True
        cid = cs.container_id.split("://", 1)[-1]
        if cid != self.container_id:
            if self.container_id:
                self.manager.set_result(self.probe_type, self.container_id, None, uid)
            self.container_id = cid
            self.manager.set_result(self.probe_type, cid, INITIAL[self.probe_type], uid)
            self.on_hold = False
            self.last_result, self.result_run = None, 0
        if self.on_hold:
            return True
        if not cs.state.HasField("running"):
            self.manager.set_result(self.probe_type, cid, Result.FAILURE, uid)
            return not cs.state.HasField("terminated") or self.pod.spec.restart_policy != "Never"
        if self.pod.metadata.HasField("deletion_timestamp") and self.probe_type != READINESS:
            return False
        started_at = cs.state.running.started_at.ToDatetime().timestamp() \
            if cs.state.running.HasField("started_at") else None
        now = self.manager.clock.wall().timestamp()
        if started_at is not None and int(now - started_at) < self.spec.initial_delay_seconds:
            return True
        if cs.started:
            if self.probe_type == STARTUP:
                return True
        elif self.probe_type != STARTUP:
            return True

        result, output = await self.manager.probe_func(
            self.spec, self.pod, self.container, cid, status.pod_ip)
        self.probes += 1
        if result == self.last_result:
            self.result_run += 1
        else:
            self.last_result, self.result_run = result, 1
        if result == Result.FAILURE:
            log.info("%s probe failed: %s", self.probe_type, output,
                     extra={"object": f"{self.pod.metadata.namespace}/{self.pod.metadata.name}",
                            "container": self.container.name})
        failure_threshold = self.spec.failure_threshold or 3
        success_threshold = self.spec.success_threshold or 1
        if (result == Result.FAILURE and self.result_run < failure_threshold) or \
                (result == Result.SUCCESS and self.result_run < success_threshold):
            return True
        self.manager.set_result(self.probe_type, cid, result, uid)
        if self.probe_type in (LIVENESS, STARTUP) and result == Result.FAILURE:
            self.on_hold = True  # until the container is replaced
            self.result_run = 0
        return True


class ProbeManager:
    """The probe workers of every pod, and their latest results.

    The kubelet tells it about pods (:meth:`add_pod`, :meth:`remove_pod`) and
    about each status it computes (:meth:`set_status`); a result that changes
    calls ``on_change(pod_uid)`` so the pod is synced again.
    """

    def __init__(self, probe_func: ProbeFunc, *, clock: Clock | None = None,
                 on_change: Callable[[str], None] = lambda uid: None):
        self.probe_func = probe_func
        self.clock = clock or RealClock()
        self.on_change = on_change
        self.results: dict[str, dict[str, Result]] = {t: {} for t in PROBE_FIELDS}
        self.statuses: dict[str, Any] = {}
        self.workers: dict[tuple[str, str, str], Worker] = {}

    def add_pod(self, pod: Any) -> None:
        """Start a worker for every probe of the pod's app containers (once)."""
        uid = pod.metadata.uid
        for container in pod.spec.containers:
            for probe_type, field in PROBE_FIELDS.items():
                if not container.HasField(field):
                    continue
                key = (uid, container.name, probe_type)
                worker = self.workers.get(key)
                if worker is not None:
                    worker.pod = pod
                    continue
                worker = self.workers[key] = Worker(self, pod, container, probe_type)
                worker.task = asyncio.get_running_loop().create_task(
                    self._run(key, worker), name=f"probe-{probe_type}-{container.name}-{uid}")

    async def _run(self, key: tuple[str, str, str], worker: Worker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken worker must not take the kubelet down
            log.exception("probe worker %s failed", key)
        finally:
            if self.workers.get(key) is worker:
                del self.workers[key]

    def set_status(self, uid: str, status: Any) -> None:
        self.statuses[uid] = status

    async def remove_pod(self, uid: str) -> None:
        """Stop the pod's workers and drop their results."""
        tasks = []
        for key in [k for k in self.workers if k[0] == uid]:
            worker = self.workers.pop(key)
            if worker.task is not None:
                worker.task.cancel()
                tasks.append(worker.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.statuses.pop(uid, None)

    async def stop(self) -> None:
        for uid in {k[0] for k in self.workers}:
            await self.remove_pod(uid)

    def set_result(self, probe_type: str, container_id: str, result: Result | None,
                   uid: str) -> None:
        results = self.results[probe_type]
        old = results.get(container_id)
        if result is None:
            results.pop(container_id, None)
        else:
            results[container_id] = result
        if old != result and result is not None:
            self.on_change(uid)

    # -- views for the pod worker and status -------------------------------------------------

    def readiness(self) -> dict[str, bool]:
        return {cid: r == Result.SUCCESS for cid, r in self.results[READINESS].items()}

    def started(self) -> dict[str, bool]:
        return {cid: r == Result.SUCCESS for cid, r in self.results[STARTUP].items()}

    def failed(self, probe_type: str) -> set[str]:
        return {cid for cid, r in self.results[probe_type].items() if r == Result.FAILURE}


__all__ = [
    "INITIAL", "LIVENESS", "PROBE_FIELDS", "ProbeManager", "Prober", "READINESS", "Result",
    "STARTUP", "Worker", "http_get", "resolve_port", "tcp_open",
]
