"""An in-memory runtime: containers "run" the moment they start.

For hollow nodes (``kubelet --runtime fake --nodes N``, as kubemark and
KWOK) and for the kubelet's unit tests. It keeps Docker's observable
behaviour where the kubelet depends on it — labels on every object, an IP
per sandbox (10.88.x.y), exit codes and reasons, sandbox stop/remove taking
their containers along, NotFoundError for missing objects — and lets a test
decide what the real world would: which images exist, how containers exit,
what an exec returns, what a container logs.

Objects carry the ``node`` label: give each hollow node its own
FakeRuntime(node_name=...), or share one (node_name="") and let each
kubelet filter by its own LABEL_NODE.

Not thread-safe; it lives on one event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable

from services.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    LABEL_TYPE, ContainerConfig, ContainerInfo, ContainerState, ImagePullError, NotFoundError,
    RuntimeError_, SandboxConfig, SandboxInfo, SandboxState,
)
from services.machinery.clock import Clock, RealClock

ExitCodeFunc = Callable[[ContainerConfig], "int | None"]
ExecFunc = Callable[[ContainerInfo, list[str], bytes], tuple[int, bytes, bytes]]

DEFAULT_STOP_EXIT_CODE = 137  # SIGKILL: what a PID 1 without a TERM handler gets


def normalize_image(image: str) -> str:
    """``busybox`` and ``busybox:latest`` are one image."""
    name = image.rsplit("/", 1)[-1]
    return image if ("@" in image or ":" in name) else image + ":latest"


def image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(normalize_image(image).encode()).hexdigest()


def exit_reason(code: int) -> str:
    return "Completed" if code == 0 else "Error"


def matches(labels: dict[str, str], wanted: dict[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (wanted or {}).items())


def _rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclasses.dataclass
class _Container:
    info: ContainerInfo
    config: ContainerConfig
    logs: list[tuple[datetime.datetime, bytes]] = dataclasses.field(default_factory=list)
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def notify(self) -> None:
        event, self.changed = self.changed, asyncio.Event()
        event.set()


class FakeRuntime:
    """The runtime interface, in memory.

    ``images``: the images that exist (present, and pullable); None means
    every image does. ``exit_code(config)`` decides at start whether a
    container exits at once (an int) or keeps running (None, the default).
    ``exec_handler(info, command, stdin)`` answers execs (default: exit 0,
    no output). ``stop_exit_code`` is what a stopped container exits with.
    Tests drive the rest with :meth:`finish`, :meth:`write_log`, and read
    :attr:`pulls` and :attr:`stops`.
    """

    name = "fake"

    def __init__(self, *, node_name: str = "", images: Iterable[str] | None = None,
                 exit_code: ExitCodeFunc | None = None, exec_handler: ExecFunc | None = None,
                 stop_exit_code: int = DEFAULT_STOP_EXIT_CODE, clock: Clock | None = None,
                 version: str = "0.1.0"):
        self.node_name = node_name
        self.images: set[str] | None = (None if images is None
                                         else {normalize_image(i) for i in images})
        self.exit_code = exit_code
        self.exec_handler = exec_handler
        self.stop_exit_code = stop_exit_code
        self.clock: Clock = clock or RealClock()
        self._version = version
        self._ids = itertools.count(1)
        self._ips = itertools.count(2)
        self._last_time: datetime.datetime | None = None
        self._sandboxes: dict[str, SandboxInfo] = {}
        self._containers: dict[str, _Container] = {}
        self.pulls: list[str] = []
        self.stops: list[tuple[str, float]] = []

    # -- helpers

    def _now(self) -> datetime.datetime:
        """The clock's wall time, strictly increasing so that "newest" is
        well defined even when a fake clock stands still."""
        now = self.clock.wall()
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + datetime.timedelta(microseconds=1)
        self._last_time = now
        return now

    def _new_id(self) -> str:
        return hashlib.sha256(f"fake-{id(self)}-{next(self._ids)}".encode()).hexdigest()

    def _next_ip(self) -> str:
        n = next(self._ips)
        return f"10.88.{(n // 254) % 256}.{n % 254 + 1}"

    def _stamp(self, labels: dict[str, str], kind: str) -> dict[str, str]:
        labels = dict(labels)
        labels[LABEL_TYPE] = kind
        if self.node_name:
            labels.setdefault(LABEL_NODE, self.node_name)
        return labels

    def _visible(self, labels: dict[str, str], wanted: dict[str, str] | None) -> bool:
        if self.node_name and labels.get(LABEL_NODE) != self.node_name:
            return False
        return matches(labels, wanted)

    def _container(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise NotFoundError(f"no such container: {container_id}") from None

    def _exists(self, image: str) -> bool:
        return self.images is None or normalize_image(image) in self.images

    @staticmethod
    def _copy_container(info: ContainerInfo) -> ContainerInfo:
        return dataclasses.replace(info, labels=dict(info.labels))

    @staticmethod
    def _copy_sandbox(info: SandboxInfo) -> SandboxInfo:
        return dataclasses.replace(info, labels=dict(info.labels))

    def _exit(self, c: _Container, code: int, reason: str = "", message: str = "") -> None:
        now = self._now()
        c.info.state = ContainerState.EXITED
        c.info.exit_code = code
        c.info.reason = reason or exit_reason(code)
        c.info.message = message
        c.info.started_at = c.info.started_at or now
        c.info.finished_at = now
        c.notify()

    # -- version and images

    async def version(self) -> str:
        return f"fake://{self._version}"

    async def image_status(self, image: str) -> str | None:
        return image_id(image) if self._exists(image) else None

    async def pull_image(self, image: str) -> str:
        self.pulls.append(image)
        if not self._exists(image):
            raise ImagePullError(f'failed to pull image "{image}": '
                                 "repository does not exist (fake runtime)")
        return image_id(image)

    # -- sandboxes

    async def run_sandbox(self, config: SandboxConfig) -> str:
        labels = self._stamp({**config.labels, LABEL_POD_UID: config.pod_uid,
                              LABEL_POD_NAME: config.name,
                              LABEL_POD_NAMESPACE: config.namespace}, "sandbox")
        sandbox_id = self._new_id()
        self._sandboxes[sandbox_id] = SandboxInfo(
            id=sandbox_id, pod_uid=config.pod_uid, name=config.name,
            namespace=config.namespace, state=SandboxState.READY,
            ip="" if config.host_network else self._next_ip(), labels=labels,
            created_at=self._now())
        return sandbox_id

    def _members(self, sandbox_id: str) -> list[_Container]:
        return [c for c in self._containers.values() if c.info.sandbox_id == sandbox_id]

    async def stop_sandbox(self, sandbox_id: str) -> None:
        for c in self._members(sandbox_id):
            await self.stop_container(c.info.id, 0)
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is not None:
            sandbox.state = SandboxState.NOT_READY
            sandbox.ip = ""

    async def remove_sandbox(self, sandbox_id: str) -> None:
        for c in self._members(sandbox_id):
            await self.remove_container(c.info.id)
        self._sandboxes.pop(sandbox_id, None)

    async def list_sandboxes(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]:
        return [self._copy_sandbox(s) for s in self._sandboxes.values()
                if self._visible(s.labels, labels)]

    # -- containers

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise NotFoundError(f"no such sandbox: {sandbox_id}")
        if not self._exists(config.image):
            raise ImagePullError(f'image "{config.image}" is not present')
        pod = {k: v for k, v in sandbox.labels.items()
               if k in (LABEL_POD_UID, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_NODE)}
        labels = self._stamp({**pod, **config.labels, LABEL_CONTAINER_NAME: config.name},
                             "container")
        container_id = self._new_id()
        info = ContainerInfo(
            id=container_id, name=config.name, pod_uid=sandbox.pod_uid, sandbox_id=sandbox_id,
            state=ContainerState.CREATED, image=config.image, image_id=image_id(config.image),
            labels=labels, created_at=self._now())
        self._containers[container_id] = _Container(info, dataclasses.replace(config))
        return container_id

    async def start_container(self, container_id: str) -> None:
        c = self._container(container_id)
        if c.info.state != ContainerState.CREATED:
            raise RuntimeError_(f"container {container_id[:12]} is {c.info.state.value}, "
                                "not created")
        c.info.state = ContainerState.RUNNING
        c.info.started_at = self._now()
        c.notify()
        code = self.exit_code(c.config) if self.exit_code else None
        if code is not None:
            self._exit(c, code)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self._containers.get(container_id)
        if c is None:
            return
        self.stops.append((container_id, timeout))
        if c.info.state == ContainerState.RUNNING:
            self._exit(c, self.stop_exit_code)

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.pop(container_id, None)
        if c is not None:
            c.notify()

    async def list_containers(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        return [self._copy_container(c.info) for c in self._containers.values()
                if self._visible(c.info.labels, labels)]

    async def container_status(self, container_id: str) -> ContainerInfo:
        return self._copy_container(self._container(container_id).info)

    # -- test controls

    def finish(self, container_id: str, exit_code: int, reason: str = "",
               message: str = "") -> None:
        """Make a running container exit now (a crash, ``reason="OOMKilled"``, ...)."""
        c = self._container(container_id)
        if c.info.state != ContainerState.RUNNING:
            raise RuntimeError_(f"container {container_id[:12]} is not running")
        self._exit(c, exit_code, reason, message)

    def write_log(self, container_id: str, data: bytes) -> None:
        """Append to a container's log, as if it had printed ``data``."""
        c = self._container(container_id)
        c.logs.append((self._now(), data))
        c.notify()

    def config_of(self, container_id: str) -> ContainerConfig:
        """The config a container was created with (for assertions)."""
        return self._container(container_id).config

    # -- streams

    async def exec(self, container_id: str, command: list[str], *, stdin: bytes = b"",
                   timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        c = self._container(container_id)
        if c.info.state != ContainerState.RUNNING:
            raise RuntimeError_(f"container {container_id[:12]} is not running")
        if self.exec_handler is None:
            return 0, b"", b""
        return self.exec_handler(self._copy_container(c.info), list(command), stdin)

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: float | None = None) -> AsyncIterator[bytes]:
        return self._logs(container_id, follow, tail, timestamps, since)

    async def _logs(self, container_id: str, follow: bool, tail: int | None,
                    timestamps: bool, since: float | None) -> AsyncIterator[bytes]:
        c = self._container(container_id)

        def render(entry: tuple[datetime.datetime, bytes]) -> bytes:
            when, data = entry
            return (_rfc3339(when).encode() + b" " + data) if timestamps else data

        lines = [e for e in c.logs if not since or e[0].timestamp() >= since]
        if tail is not None:
            lines = lines[len(lines) - max(0, tail):] if tail > 0 else []
        sent = len(c.logs)
        for entry in lines:
            yield render(entry)
        while follow:
            changed = c.changed
            while sent < len(c.logs):
                sent += 1
                yield render(c.logs[sent - 1])
            if c.info.state != ContainerState.RUNNING or \
                    self._containers.get(container_id) is not c:
                return
            await changed.wait()


__all__ = ["DEFAULT_STOP_EXIT_CODE", "FakeRuntime", "image_id", "normalize_image"]
