"""What kyb-cluster asks of the cluster's own API: is it answering, the Node
objects with the pod CIDRs chosen for them, the binding of the token
viewers, and which nodes are Ready. Every call is made as the cluster's
admin (the :class:`ClientConfig` kyb-cluster writes with the admin
certificate)."""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.machinery import AlreadyExists, ApiError, Client, NotFound
from services.machinery.config import ClientConfig

CALL_TIMEOUT = 5.0
RBAC_GROUP = "rbac.authorization.k8s.io"


def _client(cfg: ClientConfig) -> Client:
    return Client(config=cfg, timeout=CALL_TIMEOUT, retry_for=2.0)


async def wait_for_api(cfg: ClientConfig, timeout: float) -> None:
    """Return once some API server lists namespaces; TimeoutError after
    ``timeout`` seconds, naming the last error."""
    deadline = time.monotonic() + timeout
    last = ""
    async with _client(cfg) as client:
        while time.monotonic() < deadline:
            try:
                await client.resource("namespaces").list()
                return
            except ApiError as err:
                last = str(err)
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the API server did not answer within {timeout:g}s ({last})")


async def ensure_nodes(cfg: ClientConfig, wanted: Mapping[str, str]) -> dict[str, str]:
    """For each node name → pod CIDR in ``wanted``: create the Node object
    with that CIDR unless it exists. Returns name → the pod CIDR each Node
    has now (an existing Node keeps its own)."""
    result: dict[str, str] = {}
    async with _client(cfg) as client:
        nodes = client.resource("nodes")
        for name, cidr in wanted.items():
            node = core.Node()
            node.metadata.name = name
            node.spec.pod_cidr = cidr
            node.spec.pod_cidrs.append(cidr)
            try:
                await nodes.create(node)
                result[name] = cidr
            except AlreadyExists:
                existing = await nodes.get(name)
                result[name] = existing.spec.pod_cidr or cidr
                if not existing.spec.pod_cidr:
                    existing.spec.pod_cidr = cidr
                    del existing.spec.pod_cidrs[:]
                    existing.spec.pod_cidrs.append(cidr)
                    await nodes.update(existing)
    return result


async def ensure_group_binding(cfg: ClientConfig, name: str, cluster_role: str,
                               group: str) -> bool:
    """A ClusterRoleBinding ``name`` of ``cluster_role`` to ``group``,
    created unless it exists (an existing one is left as an administrator
    may have changed it); whether it was created."""
    binding = rbac.ClusterRoleBinding()
    binding.metadata.name = name
    binding.role_ref.api_group, binding.role_ref.kind = RBAC_GROUP, "ClusterRole"
    binding.role_ref.name = cluster_role
    binding.subjects.add(kind="Group", name=group, api_group=RBAC_GROUP)
    async with _client(cfg) as client:
        try:
            await client.resource("clusterrolebindings").create(binding)
        except AlreadyExists:
            return False
    return True


async def node_pod_cidrs(cfg: ClientConfig, names: Sequence[str]) -> dict[str, str]:
    """name → pod CIDR of the Node objects that exist and have one."""
    out = {}
    async with _client(cfg) as client:
        for name in names:
            try:
                node = await client.resource("nodes").get(name)
            except NotFound:
                continue
            if node.spec.pod_cidr:
                out[name] = node.spec.pod_cidr
    return out


def is_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def node_ready(cfg: ClientConfig) -> dict[str, bool]:
    """Every Node's name → whether its Ready condition is True."""
    async with _client(cfg) as client:
        listed = await client.resource("nodes").list()
    return {n.metadata.name: is_ready(n) for n in listed.items}


def _opener(tls: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """No proxy from the environment: these addresses are on this machine."""
    handlers: list[Any] = [urllib.request.ProxyHandler({})]
    if tls is not None:
        handlers.append(urllib.request.HTTPSHandler(context=tls))
    return urllib.request.build_opener(*handlers)


def kubelet_healthy(ip: str, port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether the kubelet at ``ip`` answers /healthz with 200 (it does once
    it has registered its node): the proof that a node container started a
    moment ago is really up, which a Ready condition left from before a
    restart is not. ``tls``: HTTPS trusting the cluster CA (the health
    endpoints need no client certificate); None: plain HTTP."""
    scheme = "https" if tls is not None else "http"
    try:
        with _opener(tls).open(f"{scheme}://{ip}:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


async def wait_nodes_ready(cfg: ClientConfig, nodes: Mapping[str, str], timeout: float,
                           kubelet_port: int, tls: ssl.SSLContext | None = None,
                           on_ready: Callable[[str], None] = lambda name: None) -> None:
    """Return once every node (name → IP) has a healthy kubelet and a Ready
    Node; TimeoutError names the ones that are not."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        try:
            ready = await node_ready(cfg)
        except ApiError:
            ready = {}
        for name, ip in nodes.items():
            if name not in seen and ready.get(name) and \
                    await asyncio.to_thread(kubelet_healthy, ip, kubelet_port, tls):
                seen.add(name)
                on_ready(name)
        pending = [n for n in nodes if n not in seen]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nodes not Ready after {timeout:g}s: {', '.join(pending)}")
        await asyncio.sleep(0.5)


async def delete_nodes(cfg: ClientConfig, names: Sequence[str]) -> None:
    async with _client(cfg) as client:
        for name in names:
            try:
                await client.resource("nodes").delete(name)
            except NotFound:
                pass
