"""The Docker Engine runtime: pods as containers, driven with the ``docker``
Python SDK (the part dockershim played for Kubernetes' kubelet).

A pod is a *sandbox* container (the pod infra image, ``sleep infinity``)
that owns the pod's network namespace — on Docker's default ``bridge``
network, so its IP is the pod IP, or the host's when ``hostNetwork`` — and
app/init containers started with ``network_mode=container:<sandbox>`` so
they share its localhost and IP. Everything the kubelet must find again is
in labels (see ``base.LABEL_*``); names only help people reading
``docker ps``.

The SDK blocks, so every call runs in a worker thread, bounded by a
deadline. The threads come from this runtime's own pool rather than the
event loop's default one (what ``asyncio.to_thread`` uses, six threads on
two cores): a few graceful stops or long ``exec``s would otherwise starve
every other call of the daemon. Followed log streams get a thread each,
outside any pool, and end as soon as their reader goes away.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import functools
import logging
import math
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig
from docker.utils import parse_repository_tag

from services.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    LABEL_RESTART_COUNT, LABEL_TYPE, ContainerConfig, ContainerInfo, ContainerState,
    ImagePullError, NotFoundError, RuntimeError_, SandboxConfig, SandboxInfo, SandboxState,
)

log = logging.getLogger(__name__)

DEFAULT_POD_INFRA_IMAGE = "kyb/pause:latest"
CALL_TIMEOUT = 30.0        # seconds any one Docker API request may take
PULL_TIMEOUT = 300.0       # an image pull may take longer
MAX_WORKERS = 32
LOG_MAX_SIZE = "10m"       # Kubernetes' containerLogMaxSize / containerLogMaxFiles
LOG_MAX_FILES = "5"
LOG_BUFFER_CHUNKS = 256    # log chunks read ahead of a slow reader
EXEC_OUTPUT_CAP = 16 << 20
_EXITED_CACHE_SIZE = 2048
_NETWORK_CONTAINER = "container:"
_RUNNING_STATES = {"running", "paused", "restarting"}
_EXITED_STATES = {"exited", "dead"}


# -- pure helpers ---------------------------------------------------------------------------

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_time(value: str | None) -> datetime.datetime | None:
    """Docker's RFC 3339 times (nanoseconds, ``Z``) as aware datetimes;
    the zero time ``0001-01-01T00:00:00Z`` (never happened) is None."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = _TIME.match(value)
    if not m:
        return None
    base, frac, zone = m.groups()
    text = base + ("." + (frac + "000000")[:6] if frac else "") + \
        ("+00:00" if zone in (None, "Z") else zone)
    return datetime.datetime.fromisoformat(text)


def sandbox_name(config: SandboxConfig) -> str:
    return f"kyb_POD_{config.namespace}_{config.name}_{config.pod_uid[:8]}"


def container_name(config: ContainerConfig, pod_labels: dict[str, str]) -> str:
    restart = config.labels.get(LABEL_RESTART_COUNT, "0")
    return (f"kyb_{config.name}_{pod_labels.get(LABEL_POD_NAME, '')}_"
            f"{pod_labels.get(LABEL_POD_NAMESPACE, '')}_"
            f"{pod_labels.get(LABEL_POD_UID, '')[:8]}_{restart}")


def container_state(state: dict[str, Any]) -> tuple[ContainerState, int, str, str]:
    """Docker's State → (state, exit code, reason, message), as dockershim
    mapped it. A container whose start failed stays "created" in Docker
    with an error: it did run (and failed), so it counts as exited."""
    status = state.get("Status", "")
    code = int(state.get("ExitCode") or 0)
    error = state.get("Error") or ""
    if status in _RUNNING_STATES:
        return ContainerState.RUNNING, 0, "", ""
    if status == "created" and not error:
        return ContainerState.CREATED, 0, "", ""
    if status in _EXITED_STATES or status == "created":
        if state.get("OOMKilled"):
            reason = "OOMKilled"
        elif error:
            reason = "ContainerCannotRun"
            code = code or 128
        else:
            reason = "Completed" if code == 0 else "Error"
        return ContainerState.EXITED, code, reason, error
    return ContainerState.UNKNOWN, code, "", error


def container_info(inspect: dict[str, Any]) -> ContainerInfo:
    """One ``docker inspect`` answer as a ContainerInfo."""
    labels = dict(inspect.get("Config", {}).get("Labels") or {})
    state = inspect.get("State") or {}
    kind, code, reason, message = container_state(state)
    mode = (inspect.get("HostConfig") or {}).get("NetworkMode") or ""
    created = parse_time(inspect.get("Created"))
    started = parse_time(state.get("StartedAt"))
    finished = None
    if kind == ContainerState.EXITED:
        # A failed start has no finish time; its creation is the closest
        # (crash-loop back-off counts from it). Docker stamps StartedAt
        # after the process began, so one that exits at once can seem to
        # finish before it started: never report that.
        finished = parse_time(state.get("FinishedAt")) or created
        if started is not None and finished is not None and finished < started:
            finished = started
    return ContainerInfo(
        id=inspect["Id"], name=labels.get(LABEL_CONTAINER_NAME, ""),
        pod_uid=labels.get(LABEL_POD_UID, ""),
        sandbox_id=mode[len(_NETWORK_CONTAINER):] if mode.startswith(_NETWORK_CONTAINER) else "",
        state=kind, image=inspect.get("Config", {}).get("Image", ""),
        image_id=inspect.get("Image", ""), labels=labels, exit_code=code, reason=reason,
        message=message, created_at=created, started_at=started, finished_at=finished)


def sandbox_info(inspect: dict[str, Any]) -> SandboxInfo:
    labels = dict(inspect.get("Config", {}).get("Labels") or {})
    running = (inspect.get("State") or {}).get("Status") == "running"
    ip = ""
    if running:
        networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
    return SandboxInfo(
        id=inspect["Id"], pod_uid=labels.get(LABEL_POD_UID, ""),
        name=labels.get(LABEL_POD_NAME, ""), namespace=labels.get(LABEL_POD_NAMESPACE, ""),
        state=SandboxState.READY if running else SandboxState.NOT_READY, ip=ip, labels=labels,
        created_at=parse_time(inspect.get("Created")))


def label_filters(labels: dict[str, str] | None, kind: str, node: str) -> list[str]:
    wanted = dict(labels or {})
    wanted[LABEL_TYPE] = kind
    if node:
        wanted.setdefault(LABEL_NODE, node)
    return [f"{k}={v}" for k, v in sorted(wanted.items())]


def demux(data: bytes) -> tuple[bytes, bytes]:
    """Split Docker's multiplexed stream (8-byte headers: stream, size)."""
    out, err, i = bytearray(), bytearray(), 0
    while i + 8 <= len(data):
        kind, size = struct.unpack(">BxxxL", data[i:i + 8])
        chunk = data[i + 8:i + 8 + size]
        (err if kind == 2 else out).extend(chunk)
        i += 8 + size
    return bytes(out), bytes(err)


def _explain(err: Exception) -> str:
    text = getattr(err, "explanation", None) or str(err)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text).split())


_END = object()


class _Failed:
    def __init__(self, err: Exception):
        self.err = err


# -- the runtime ----------------------------------------------------------------------------


class DockerRuntime:
    """The real runtime: Docker Engine through the ``docker`` SDK."""

    name = "docker"

    def __init__(self, base_url: str | None = None, node_name: str = "",
                 pod_infra_image: str = DEFAULT_POD_INFRA_IMAGE, cgroup_parent: str = "",
                 *, call_timeout: float = CALL_TIMEOUT, pull_timeout: float = PULL_TIMEOUT,
                 max_workers: int = MAX_WORKERS):
        self.base_url = base_url
        self.node_name = node_name
        self.pod_infra_image = pod_infra_image
        self.cgroup_parent = cgroup_parent
        self.call_timeout = call_timeout
        self.pull_timeout = pull_timeout
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="docker-runtime")
        self._api: Any = None
        self._connect_lock = asyncio.Lock()
        # Exited containers never change: their inspect answers are kept.
        self._exited: collections.OrderedDict[str, ContainerInfo] = collections.OrderedDict()

    # -- plumbing

    async def _client(self) -> Any:
        if self._api is None:
            async with self._connect_lock:
                if self._api is None:
                    self._api = await self._call("connect", self._connect)
        return self._api

    def _connect(self) -> Any:
        if self.base_url:
            client = docker.DockerClient(base_url=self.base_url, timeout=self.call_timeout)
        else:
            client = docker.from_env(timeout=self.call_timeout)
        return client.api

    async def _call(self, op: str, fn: Callable[..., Any], *args: Any,
                    deadline: float | None = None,
                    on_timeout: Callable[[str], Exception] | None = None, **kwargs: Any) -> Any:
        """Run one blocking SDK call in the pool, bounded by ``deadline``,
        with Docker's errors turned into the runtime's."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        limit = deadline or self.call_timeout
        try:
            return await asyncio.wait_for(future, limit)
        except asyncio.TimeoutError:
            if future.done() and not future.cancelled():
                raise  # raised by fn itself: let it through
            message = f"docker {op} timed out after {limit:g}s"
            raise (on_timeout or RuntimeError_)(message) from None
        except docker.errors.NotFound as err:
            raise NotFoundError(f"docker {op}: {_explain(err)}") from None
        except docker.errors.APIError as err:
            raise RuntimeError_(f"docker {op}: {_explain(err)}") from None
        except requests.exceptions.RequestException as err:
            raise RuntimeError_(f"docker {op}: cannot talk to the Docker Engine: "
                                f"{_explain(err)}") from None
        except docker.errors.DockerException as err:
            raise RuntimeError_(f"docker {op}: {_explain(err)}") from None

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, api.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _log_config(self) -> LogConfig:
        return LogConfig(type=LogConfig.types.JSON,
                         config={"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILES})

    def _stamp(self, labels: dict[str, str], kind: str) -> dict[str, str]:
        labels = {k: str(v) for k, v in labels.items()}
        labels[LABEL_TYPE] = kind
        if self.node_name:
            labels.setdefault(LABEL_NODE, self.node_name)
        return labels

    # -- version and images

    async def version(self) -> str:
        api = await self._client()
        info = await self._call("version", api.version)
        return f"docker://{info.get('Version', 'unknown')}"

    async def image_status(self, image: str) -> str | None:
        api = await self._client()
        try:
            info = await self._call("image inspect", api.inspect_image, image)
        except NotFoundError:
            return None
        except RuntimeError_ as err:
            if "invalid reference format" in str(err):
                return None
            raise
        return info.get("Id")

    async def pull_image(self, image: str) -> str:
        api = await self._client()
        repository, tag = parse_repository_tag(image)

        def pull() -> None:
            # The pull's errors may come as a status line in the stream.
            for event in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise docker.errors.APIError(event["error"])

        try:
            await self._call("pull", pull, deadline=self.pull_timeout)
        except RuntimeError_ as err:
            reason = str(err).removeprefix("docker pull: ")
            raise ImagePullError(f'failed to pull image "{image}": {reason}') from None
        image_id = await self.image_status(image)
        if image_id is None:
            raise ImagePullError(f'failed to pull image "{image}": not present after the pull')
        return image_id

    # -- sandboxes

    async def run_sandbox(self, config: SandboxConfig) -> str:
        api = await self._client()
        labels = self._stamp({**config.labels, LABEL_POD_UID: config.pod_uid,
                              LABEL_POD_NAME: config.name,
                              LABEL_POD_NAMESPACE: config.namespace}, "sandbox")
        exposed: list[tuple[int, str]] = []
        bindings: dict[str, list[Any]] = {}
        if not config.host_network:
            for pm in config.port_mappings:
                proto = (pm.protocol or "TCP").lower()
                exposed.append((pm.container_port, proto))
                bindings.setdefault(f"{pm.container_port}/{proto}", []).append(
                    (pm.host_ip, pm.host_port) if pm.host_ip else pm.host_port)
        host_config = api.create_host_config(
            network_mode="host" if config.host_network else "bridge",
            port_bindings=bindings or None, restart_policy={"Name": "no"},
            cgroup_parent=self.cgroup_parent or None, log_config=self._log_config())
        create = functools.partial(
            api.create_container, self.pod_infra_image, labels=labels, detach=True,
            hostname=None if config.host_network else (config.hostname or None),
            ports=exposed or None, host_config=host_config)
        try:
            sandbox_id = await self._create("sandbox create", create, sandbox_name(config))
        except NotFoundError:
            raise RuntimeError_(f"pod infra image {self.pod_infra_image} is not present "
                                "(deploy/images/pause.sh builds it)") from None
        try:
            await self._call("sandbox start", api.start, sandbox_id)
        except RuntimeError_:
            await self._remove(sandbox_id, force=True)
            raise
        return sandbox_id

    async def _create(self, op: str, create: Callable[..., Any], name: str) -> str:
        """Create with ``name``; if the name is taken (a leftover of an
        earlier attempt), with a random suffix rather than touching it."""
        try:
            return (await self._call(op, create, name=name))["Id"]
        except RuntimeError_ as err:
            if "Conflict" not in str(err) and "already in use" not in str(err):
                raise
        return (await self._call(op, create, name=f"{name}_{secrets.token_hex(4)}"))["Id"]

    async def _members(self, sandbox_id: str) -> list[str]:
        """The IDs of the containers that joined the sandbox's network."""
        api = await self._client()
        summaries = await self._call("list", api.containers, all=True,
                                     filters={"label": [f"{LABEL_TYPE}=container"]})
        wanted = _NETWORK_CONTAINER + sandbox_id
        return [s["Id"] for s in summaries
                if (s.get("HostConfig") or {}).get("NetworkMode") == wanted]

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Kill whatever still runs in the pod, then the sandbox (CRI's
        StopPodSandbox; the kubelet stops containers gracefully before)."""
        for member in await self._members(sandbox_id):
            await self.stop_container(member, 0)
        await self.stop_container(sandbox_id, 0)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and every container in it (CRI's RemovePodSandbox)."""
        for member in await self._members(sandbox_id):
            await self._remove(member, force=True)
        await self._remove(sandbox_id, force=True)

    async def list_sandboxes(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]:
        return [sandbox_info(i) for i in await self._inspect_all(labels, "sandbox")]

    async def _inspect_all(self, labels: dict[str, str] | None, kind: str,
                           cached: Callable[[dict[str, Any]], Any] | None = None
                           ) -> list[Any]:
        """List by labels, then inspect each (in one thread: the summary
        lacks exit codes and nanosecond times). ``cached`` may answer for a
        container without an inspect; containers gone meanwhile are skipped."""
        api = await self._client()
        filters = {"label": label_filters(labels, kind, self.node_name)}

        def inspect_all() -> list[Any]:
            out = []
            for summary in api.containers(all=True, filters=filters):
                hit = cached(summary) if cached else None
                if hit is not None:
                    out.append(hit)
                    continue
                try:
                    out.append(api.inspect_container(summary["Id"]))
                except docker.errors.NotFound:
                    continue
            return out

        return await self._call("list", inspect_all, deadline=self.call_timeout * 2)

    # -- containers

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        api = await self._client()
        sandbox = await self._call("sandbox inspect", api.inspect_container, sandbox_id)
        pod = {k: v for k, v in (sandbox["Config"].get("Labels") or {}).items()
               if k in (LABEL_POD_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_NODE)}
        labels = self._stamp({**pod, **config.labels, LABEL_CONTAINER_NAME: config.name},
                             "container")
        binds = [f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}"
                 for m in config.mounts]
        host_config = api.create_host_config(
            network_mode=_NETWORK_CONTAINER + sandbox["Id"], binds=binds or None,
            nano_cpus=config.cpu_limit_millis * 1_000_000 or None,
            mem_limit=config.memory_limit_bytes or None,
            memswap_limit=config.memory_limit_bytes or None,  # no swap, as Kubernetes
            cpu_shares=config.cpu_shares or None, cgroup_parent=self.cgroup_parent or None,
            restart_policy={"Name": "no"}, log_config=self._log_config())
        create = functools.partial(
            api.create_container, config.image,
            entrypoint=list(config.command) or None, command=list(config.args) or None,
            environment=[f"{k}={v}" for k, v in config.env.items()] or None,
            working_dir=config.working_dir or None, labels=labels, detach=True,
            stop_signal=config.stop_signal or None, tty=config.tty, stdin_open=config.stdin,
            host_config=host_config)
        try:
            return await self._create("create", create, container_name(config, labels))
        except NotFoundError as err:
            raise ImagePullError(f'image "{config.image}" is not present: {err}') from None

    async def start_container(self, container_id: str) -> None:
        api = await self._client()
        await self._call("start", api.start, container_id)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        api = await self._client()
        grace = max(0, math.ceil(timeout))
        try:
            await self._call("stop", api.stop, container_id, timeout=grace,
                             deadline=grace + self.call_timeout)
        except NotFoundError:
            pass

    async def remove_container(self, container_id: str) -> None:
        await self._remove(container_id, force=False)

    async def _remove(self, container_id: str, *, force: bool) -> None:
        """Remove; a running container is removed by force (as CRI's
        RemoveContainer), one already gone or being removed is fine."""
        api = await self._client()
        self._exited.pop(container_id, None)
        try:
            await self._call("remove", api.remove_container, container_id, force=force)
        except NotFoundError:
            pass
        except RuntimeError_ as err:
            text = str(err)
            if "already in progress" in text:
                return
            if force or "running" not in text:
                raise
            await self._remove(container_id, force=True)

    async def list_containers(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        def cached(summary: dict[str, Any]) -> ContainerInfo | None:
            hit = self._exited.get(summary["Id"])
            if hit is None or summary.get("State") not in _EXITED_STATES:
                return None
            return dataclasses.replace(hit, labels=dict(hit.labels))

        out = []
        for item in await self._inspect_all(labels, "container", cached):
            info = item if isinstance(item, ContainerInfo) else self._remember(container_info(item))
            out.append(info)
        return out

    def _remember(self, info: ContainerInfo) -> ContainerInfo:
        if info.state == ContainerState.EXITED and info.finished_at is not None:
            self._exited[info.id] = info
            while len(self._exited) > _EXITED_CACHE_SIZE:
                self._exited.popitem(last=False)
        return info

    async def container_status(self, container_id: str) -> ContainerInfo:
        api = await self._client()
        return container_info(await self._call("inspect", api.inspect_container, container_id))

    # -- streams

    async def exec(self, container_id: str, command: list[str], *, stdin: bytes = b"",
                   timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Run ``command`` with ``stdin`` fed whole and then closed, through
        the low-level exec API on a hijacked socket (so stdin works and the
        read is bounded by ``timeout``). TimeoutError when it runs too long."""
        api = await self._client()
        created = await self._call("exec", api.exec_create, container_id, list(command),
                                   stdout=True, stderr=True, stdin=bool(stdin), tty=False)
        exec_id = created["Id"]
        started = time.monotonic()

        def run() -> tuple[int, bytes, bytes] | None:
            sock = api.exec_start(exec_id, socket=True)
            raw: socket.socket = getattr(sock, "_sock", sock)
            data = bytearray()
            try:
                if stdin:
                    raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)
                while True:
                    left = timeout - (time.monotonic() - started)
                    if left <= 0:
                        return None
                    raw.settimeout(left)
                    try:
                        chunk = raw.recv(65536)
                    except (TimeoutError, socket.timeout):
                        return None
                    if not chunk:
                        break
                    if len(data) < EXEC_OUTPUT_CAP:
                        data.extend(chunk)
            finally:
                raw.close()
                sock.close()
            out, err = demux(bytes(data))
            while True:  # the exit code lands a moment after the stream ends
                info = api.exec_inspect(exec_id)
                if not info.get("Running") or time.monotonic() - started > timeout:
                    return int(info.get("ExitCode") or 0), out, err
                time.sleep(0.01)

        def timed_out(message: str) -> Exception:
            return TimeoutError(f"command timed out after {timeout:g}s")

        result = await self._call("exec", run, deadline=timeout + self.call_timeout,
                                  on_timeout=timed_out)
        if result is None:
            raise timed_out("")
        return result

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: float | None = None) -> AsyncIterator[bytes]:
        return self._logs(container_id, follow, tail, timestamps, since)

    async def _logs(self, container_id: str, follow: bool, tail: int | None,
                    timestamps: bool, since: float | None) -> AsyncIterator[bytes]:
        """The SDK's blocking stream, read by a thread of its own and handed
        over through a queue with a bounded read-ahead. Leaving the
        iterator (end, error, cancel, aclose) shuts the socket down, which
        wakes the thread's blocked read at once."""
        api = await self._client()
        kwargs: dict[str, Any] = dict(stdout=True, stderr=True, stream=True, follow=follow,
                                      timestamps=timestamps,
                                      tail="all" if tail is None else max(0, int(tail)))
        if since:
            kwargs["since"] = float(since)
        stream = await self._call("logs", api.logs, container_id, **kwargs)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        credits = threading.Semaphore(LOG_BUFFER_CHUNKS)
        leaving = threading.Event()

        def hand_over(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is reading
                leaving.set()

        def pump() -> None:
            try:
                for chunk in stream:
                    credits.acquire()
                    if leaving.is_set():
                        return
                    hand_over(chunk)
            except Exception as err:  # noqa: BLE001 - handed to the reader
                if not leaving.is_set():
                    hand_over(_Failed(err))
            finally:
                hand_over(_END)

        threading.Thread(target=pump, name=f"docker-logs-{container_id[:12]}",
                         daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise RuntimeError_(f"docker logs: {_explain(item.err)}")
                credits.release()
                yield item
        finally:
            leaving.set()
            credits.release()
            try:
                stream.close()
            except Exception as err:  # noqa: BLE001 - closing a closed stream
                log.debug("closing the log stream of %s: %s", container_id[:12], err)


__all__ = ["DockerRuntime", "container_info", "container_state", "demux", "parse_time",
           "sandbox_info"]
