"""Container runtimes behind one small interface (as Kubernetes' CRI):
Docker Engine (the default, real) and an in-memory fake for hollow nodes."""

from services.kubelet.runtime.base import (
    ContainerConfig, ContainerInfo, ContainerState, ImagePullError, Mount, NotFoundError,
    PortMapping,
    Runtime, RuntimeError_, SandboxConfig, SandboxInfo, SandboxState, labels_for,
)

__all__ = [
    "ContainerConfig", "ContainerInfo", "ContainerState", "ImagePullError", "Mount",
    "NotFoundError",
    "PortMapping", "Runtime", "RuntimeError_", "SandboxConfig", "SandboxInfo", "SandboxState",
    "labels_for",
]
