"""Relays Pods.Logs and Pods.Exec to the kubelet of the pod's node, as
kube-apiserver proxies ``pods/log`` and ``pods/exec``.

The kubelet is found through its Node object: the InternalIP address and
the port published in status.daemonEndpoints.kubeletEndpoint. Channels are
kept per kubelet address. Errors from the kubelet pass through with their
status; an unreachable kubelet is UNAVAILABLE naming the node.

With ``tls`` (--kubelet-client-certificate, --kubelet-client-key,
--kubelet-certificate-authority) the channels are mutual TLS: the API
server presents its kubelet-client certificate, and the kubelet's serving
certificate must be signed by the CA and name the address dialled (the
node's InternalIP is among its SANs). Without it: plaintext, for clusters
whose kubelets serve plaintext (tests, --insecure-plaintext set-ups).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.apiserver import errors
from services.apiserver.errors import quote
from services.apiserver.registry import Registry
from services.machinery import channel as channels
from services.machinery.tlsconfig import ClientTLS, tls_failure

DEFAULT_KUBELET_PORT = 10250


def kubelet_address(node: Any) -> str:
    """HOST:PORT of a node's kubelet gRPC service."""
    addresses = {a.type: a.address for a in node.status.addresses}
    host = addresses.get("InternalIP") or addresses.get("Hostname") or node.metadata.name
    port = node.status.daemon_endpoints.kubelet_endpoint.port or DEFAULT_KUBELET_PORT
    return f"{host}:{port}"


def choose_container(pod: Any, requested: str) -> str:
    """The container a logs/exec request means (kubectl's rules)."""
    names = [c.name for c in pod.spec.containers]
    init = [c.name for c in pod.spec.init_containers]
    if requested:
        if requested not in names and requested not in init:
            raise errors.bad_request(
                f"container {quote(requested)} is not valid for pod {quote(pod.metadata.name)}")
        return requested
    if len(names) == 1:
        return names[0]
    raise errors.bad_request(
        f"a container name must be specified for pod {quote(pod.metadata.name)}, choose one "
        f"of: [{' '.join(names)}]")


# An exec holds a kubelet thread for its whole run: bounded, like
# Kubernetes' streaming-connection-idle-timeout bounds idle streams.
MAX_EXEC_SECONDS = 3600


class KubeletProxy:
    def __init__(self, pods: Registry, nodes: Registry, tls: ClientTLS | None = None):
        self.pods = pods
        self.nodes = nodes
        self.tls = tls
        self._credentials = tls.credentials() if tls is not None else None
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        chan = self._channels.get(address)
        if chan is None:
            if self._credentials is not None:
                assert self.tls is not None
                chan = channels.secure_channel(address, self._credentials, self.tls.server_name)
            else:
                chan = channels.insecure_channel(address)
            self._channels[address] = chan
        return chan

    async def _target(self, namespace: str, name: str, container: str) -> tuple[Any, str, str]:
        pod = await self.pods.get(namespace or "default", name)
        if not pod.spec.node_name:
            raise errors.precondition(f"pod {quote(name)} does not have a host assigned")
        node = await self.nodes.get("", pod.spec.node_name)
        stub = kubelet_pb2_grpc.KubeletStub(self._channel(kubelet_address(node)))
        return stub, choose_container(pod, container), pod.spec.node_name

    async def _relay(self, call: Any, node: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in call:
                yield chunk.SerializeToString()
        except grpc.aio.AioRpcError as err:
            reason = tls_failure(err.details() or "")
            if reason and err.code() == grpc.StatusCode.UNAVAILABLE:
                raise errors.unavailable(
                    f"cannot connect securely to the kubelet on node {quote(node)}: "
                    f"{reason}") from None
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise errors.unavailable(
                    f"unable to reach the kubelet on node {quote(node)}: {err.details()}") from None
            raise errors.ApiStatus(err.code(), err.details() or err.code().name) from None
        finally:
            call.cancel()

    async def _forward(self, request: Any) -> tuple[Any, Any, str]:
        """The kubelet stub, the request as the kubelet gets it, and the node."""
        stub, container, node = await self._target(request.namespace, request.name,
                                                   request.container)
        forwarded = type(request)()
        forwarded.CopyFrom(request)
        forwarded.namespace = request.namespace or "default"
        forwarded.container = container
        return stub, forwarded, node

    async def logs(self, request: Any) -> AsyncIterator[bytes]:
        stub, forwarded, node = await self._forward(request)
        # Following has no natural end: no deadline; otherwise a generous one.
        call = stub.Logs(forwarded, timeout=None if request.follow else 60)
        async for data in self._relay(call, node):
            yield data

    async def exec(self, request: Any) -> AsyncIterator[bytes]:
        if not request.command:
            raise errors.bad_request("command is required")
        if not 0 <= request.timeout_seconds <= MAX_EXEC_SECONDS:
            raise errors.bad_request(
                f"timeout_seconds must be between 0 (the default, 60) and {MAX_EXEC_SECONDS}")
        stub, forwarded, node = await self._forward(request)
        timeout = (request.timeout_seconds or 60) + 10
        async for data in self._relay(stub.Exec(forwarded, timeout=timeout), node):
            yield data

    async def close(self) -> None:
        for chan in self._channels.values():
            await chan.close()
        self._channels.clear()
