"""From a pod's container spec to the runtime's ContainerConfig.

Pure: env (with ``$(VAR)`` expansion) and expanded command/args, working
dir, resources (limits as CPU millis and memory bytes, requests.cpu as CPU
shares the way Kubernetes converts them), volume mounts, and the labels by
which the kubelet finds the container again after a restart — including
its spec hash and restart count.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from services.api.quantity import QuantityError, cpu_millis, memory_bytes
from services.kubelet.envvars import container_env, expand_all
from services.kubelet.runtime.base import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_GRACE, LABEL_INIT, LABEL_RESTART_COUNT,
    LABEL_TYPE, ContainerConfig, Mount, PortMapping, SandboxConfig, labels_for,
)
from services.kubelet.sync import container_hash

MIN_SHARES = 2
SHARES_PER_CPU = 1024


class ConfigError(Exception):
    """The container spec cannot be turned into a runtime config
    (CreateContainerConfigError)."""


def cpu_shares(milli_cpu: int) -> int:
    """MilliCPUToShares: requests.cpu in millis -> cgroup CPU shares (min 2)."""
    if milli_cpu <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, milli_cpu * SHARES_PER_CPU // 1000)


def pod_labels(pod: Any, node: str) -> dict[str, str]:
    meta = pod.metadata
    return labels_for(meta.uid, meta.name, meta.namespace, node)


def sandbox_config(pod: Any, node: str) -> SandboxConfig:
    meta = pod.metadata
    labels = pod_labels(pod, node)
    labels[LABEL_TYPE] = "sandbox"
    ports = []
    for c in pod.spec.containers:
        for p in c.ports:
            if p.host_port:
                ports.append(PortMapping(p.container_port, p.host_port, p.protocol or "TCP",
                                         p.host_ip))
    hostname = pod.spec.hostname or meta.name
    return SandboxConfig(pod_uid=meta.uid, name=meta.name, namespace=meta.namespace,
                         hostname=hostname[:63], labels=labels,
                         host_network=pod.spec.host_network, port_mappings=ports)


def grace_seconds(pod: Any) -> int:
    """The pod's termination grace period: deletionGracePeriodSeconds once
    deletion began, else spec.terminationGracePeriodSeconds (30)."""
    if pod.metadata.HasField("deletion_grace_period_seconds"):
        return pod.metadata.deletion_grace_period_seconds
    if pod.spec.HasField("termination_grace_period_seconds"):
        return pod.spec.termination_grace_period_seconds
    return 30


def container_config(pod: Any, container: Any, *, node: str, restart_count: int,
                     init: bool = False, pod_ip: str = "", host_ip: str = "",
                     volume_paths: Mapping[str, str] | None = None) -> ContainerConfig:
    volume_paths = volume_paths or {}
    try:
        env = container_env(pod, container, host_ip=host_ip, pod_ip=pod_ip)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    labels = pod_labels(pod, node)
    labels.update({
        LABEL_TYPE: "container",
        LABEL_CONTAINER_NAME: container.name,
        LABEL_CONTAINER_HASH: container_hash(container),
        LABEL_RESTART_COUNT: str(restart_count),
        LABEL_GRACE: str(grace_seconds(pod)),
    })
    if init:
        labels[LABEL_INIT] = "true"
    limits, requests = container.resources.limits, container.resources.requests
    try:
        cpu_limit = cpu_millis(limits["cpu"]) if "cpu" in limits else 0
        mem_limit = memory_bytes(limits["memory"]) if "memory" in limits else 0
        cpu_request = cpu_millis(requests["cpu"]) if "cpu" in requests else 0
    except QuantityError as err:
        raise ConfigError(str(err)) from None
    mounts = []
    for vm in container.volume_mounts:
        if vm.name not in volume_paths:
            raise ConfigError(f"unable to find volume {vm.name!r} for container "
                              f"{container.name!r}")
        host = volume_paths[vm.name]
        if vm.sub_path:
            host = posixpath.join(host, vm.sub_path)
        mounts.append(Mount(host, vm.mount_path, vm.read_only))
    return ContainerConfig(
        name=container.name, image=container.image, labels=labels,
        command=expand_all(container.command, env), args=expand_all(container.args, env),
        env=env, working_dir=container.working_dir, mounts=mounts,
        cpu_limit_millis=cpu_limit, memory_limit_bytes=mem_limit,
        cpu_shares=cpu_shares(cpu_request), tty=container.tty, stdin=container.stdin)


__all__ = ["ConfigError", "container_config", "cpu_shares", "grace_seconds", "pod_labels",
           "sandbox_config"]
