"""What kyb-cluster asks of the cluster's own API: is it answering, the Node
objects with the pod CIDRs chosen for them, and which nodes are Ready."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import AlreadyExists, ApiError, Client, NotFound

CALL_TIMEOUT = 5.0
# No proxy from the environment: these addresses are on this machine.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _client(servers: Sequence[str]) -> Client:
    return Client(list(servers), timeout=CALL_TIMEOUT, retry_for=2.0)


async def wait_for_api(servers: Sequence[str], timeout: float) -> None:
    """Return once some API server lists namespaces; TimeoutError after
    ``timeout`` seconds, naming the last error."""
    deadline = time.monotonic() + timeout
    last = ""
    async with _client(servers) as client:
        while time.monotonic() < deadline:
            try:
                await client.resource("namespaces").list()
                return
            except ApiError as err:
                last = str(err)
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the API server did not answer within {timeout:g}s ({last})")


async def ensure_nodes(servers: Sequence[str], wanted: Mapping[str, str]) -> dict[str, str]:
    """For each node name → pod CIDR in ``wanted``: create the Node object
    with that CIDR unless it exists. Returns name → the pod CIDR each Node
    has now (an existing Node keeps its own)."""
    result: dict[str, str] = {}
    async with _client(servers) as client:
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


async def node_pod_cidrs(servers: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """name → pod CIDR of the Node objects that exist and have one."""
    out = {}
    async with _client(servers) as client:
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


async def node_ready(servers: Sequence[str]) -> dict[str, bool]:
    """Every Node's name → whether its Ready condition is True."""
    async with _client(servers) as client:
        listed = await client.resource("nodes").list()
    return {n.metadata.name: is_ready(n) for n in listed.items}


def kubelet_healthy(ip: str, port: int) -> bool:
    """Whether the kubelet at ``ip`` answers /healthz with 200 (it does once
    it has registered its node): the proof that a node container started a
    moment ago is really up, which a Ready condition left from before a
    restart is not."""
    try:
        with _DIRECT.open(f"http://{ip}:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


async def wait_nodes_ready(servers: Sequence[str], nodes: Mapping[str, str], timeout: float,
                           kubelet_port: int,
                           on_ready: Callable[[str], None] = lambda name: None) -> None:
    """Return once every node (name → IP) has a healthy kubelet and a Ready
    Node; TimeoutError names the ones that are not."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while True:
        try:
            ready = await node_ready(servers)
        except ApiError:
            ready = {}
        for name, ip in nodes.items():
            if name not in seen and ready.get(name) and \
                    await asyncio.to_thread(kubelet_healthy, ip, kubelet_port):
                seen.add(name)
                on_ready(name)
        pending = [n for n in nodes if n not in seen]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nodes not Ready after {timeout:g}s: {', '.join(pending)}")
        await asyncio.sleep(0.5)


async def delete_nodes(servers: Sequence[str], names: Sequence[str]) -> None:
    async with _client(servers) as client:
        for name in names:
            try:
                await client.resource("nodes").delete(name)
            except NotFound:
                pass
