"""The runtime interface the kubelet drives, modelled on Kubernetes' CRI.

A pod is a *sandbox* (one small container holding the pod's network
namespace and IP) plus its app and init containers, which join the
sandbox's network namespace. Everything the kubelet needs to find again
after a restart is in labels on the runtime's objects (see LABEL_*), so
the runtime itself is the source of truth: a restarted kubelet lists the
runtime and adopts what it finds — no local state file.

Implementations: ``docker.DockerRuntime`` (real, the default) and
``fake.FakeRuntime`` (in memory, for hollow nodes and unit tests).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import AsyncIterator
from typing import Protocol

LABEL_PREFIX = "io.kybernetes."
LABEL_TYPE = LABEL_PREFIX + "type"                    # "sandbox" or "container"
LABEL_POD_UID = LABEL_PREFIX + "pod.uid"
LABEL_POD_NAME = LABEL_PREFIX + "pod.name"
LABEL_POD_NAMESPACE = LABEL_PREFIX + "pod.namespace"
LABEL_CONTAINER_NAME = LABEL_PREFIX + "container.name"
LABEL_CONTAINER_HASH = LABEL_PREFIX + "container.hash"  # spec hash: changed spec → restart
LABEL_RESTART_COUNT = LABEL_PREFIX + "container.restartCount"
LABEL_INIT = LABEL_PREFIX + "container.init"           # "true" for init containers
LABEL_NODE = LABEL_PREFIX + "node"                     # owning node (hollow nodes share a runtime)
LABEL_GRACE = LABEL_PREFIX + "terminationGracePeriod"


class RuntimeError_(Exception):
    """A runtime operation failed (named with a trailing underscore so it
    does not shadow the builtin)."""


class ImagePullError(RuntimeError_):
    """The image is not present and could not be pulled (ErrImagePull)."""


class NotFoundError(RuntimeError_):
    """The container or sandbox does not exist (any more): removed behind
    the kubelet's back, or already cleaned up. Removals tolerate it."""


class ContainerState(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(str, enum.Enum):
    READY = "ready"
    NOT_READY = "notready"


@dataclasses.dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclasses.dataclass
class SandboxConfig:
    pod_uid: str
    name: str
    namespace: str
    hostname: str
    labels: dict[str, str]
    host_network: bool = False
    port_mappings: list[PortMapping] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SandboxInfo:
    id: str
    pod_uid: str
    name: str
    namespace: str
    state: SandboxState
    ip: str
    labels: dict[str, str]
    created_at: datetime.datetime | None = None


@dataclasses.dataclass
class ContainerConfig:
    name: str
    image: str
    labels: dict[str, str]
    command: list[str] = dataclasses.field(default_factory=list)
    args: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    working_dir: str = ""
    mounts: list[Mount] = dataclasses.field(default_factory=list)
    cpu_limit_millis: int = 0      # 0: no limit
    memory_limit_bytes: int = 0    # 0: no limit
    cpu_shares: int = 0            # from requests.cpu (Kubernetes: millis * 1024 / 1000, min 2)
    stop_signal: str = "SIGTERM"
    tty: bool = False
    stdin: bool = False


@dataclasses.dataclass
class ContainerInfo:
    id: str
    name: str                       # the container's name within its pod
    pod_uid: str
    sandbox_id: str
    state: ContainerState
    image: str
    image_id: str
    labels: dict[str, str]
    exit_code: int = 0
    reason: str = ""                # e.g. "OOMKilled", "Completed", "Error"
    message: str = ""
    created_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None

    @property
    def restart_count(self) -> int:
        return int(self.labels.get(LABEL_RESTART_COUNT, "0") or 0)


def labels_for(pod_uid: str, name: str, namespace: str, node: str = "") -> dict[str, str]:
    """The labels every runtime object of a pod carries."""
    labels = {LABEL_POD_UID: pod_uid, LABEL_POD_NAME: name, LABEL_POD_NAMESPACE: namespace}
    if node:
        labels[LABEL_NODE] = node
    return labels


class Runtime(Protocol):
    """What the kubelet needs from a container runtime. Every method is
    async; blocking SDKs run in threads inside the implementation."""

    name: str

    async def version(self) -> str: ...

    # images
    async def image_status(self, image: str) -> str | None:
        """The image's ID if present locally, else None."""
    async def pull_image(self, image: str) -> str:
        """Pull and return the image ID; ImagePullError when it cannot."""

    # sandboxes
    async def run_sandbox(self, config: SandboxConfig) -> str: ...
    async def stop_sandbox(self, sandbox_id: str) -> None: ...
    async def remove_sandbox(self, sandbox_id: str) -> None: ...
    async def list_sandboxes(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]: ...

    # containers
    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str: ...
    async def start_container(self, container_id: str) -> None: ...
    async def stop_container(self, container_id: str, timeout: float) -> None:
        """Send the stop signal, then SIGKILL after ``timeout`` seconds."""
    async def remove_container(self, container_id: str) -> None: ...
    async def list_containers(self, labels: dict[str, str] | None = None) -> list[ContainerInfo]:
        """Every container (app and init; running or exited) matching the labels."""
    async def container_status(self, container_id: str) -> ContainerInfo: ...

    # streams
    async def exec(self, container_id: str, command: list[str], *, stdin: bytes = b"",
                   timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Run a command in a running container: (exit code, stdout, stderr)."""
    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: float | None = None) -> AsyncIterator[bytes]: ...
