"""The kubelet's gRPC service: container logs and exec, through the runtime.

The API server proxies ``Pods.Logs``/``Pods.Exec`` here (it finds the
kubelet from the Node's InternalIP and daemonEndpoints.kubeletEndpoint).
One server can front several kubelets (hollow mode): a request is routed to
the kubelet that has the pod. ``previous`` means the container's last
exited instance, the one its status names in lastState.

With a serving certificate the server is mutual TLS only (plaintext and
certificate-less clients fail the handshake), and of the clients whose
certificate the cluster CA signed only the API server's
(``kube-apiserver-kubelet-client``) and members of ``system:masters`` may
read logs or exec: a node's or a user's certificate gets PERMISSION_DENIED,
as the kubelet's authorizer would refuse them ``nodes/proxy``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.kubelet.runtime.base import (
    LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_UID, ContainerInfo, ContainerState, RuntimeError_,
)
from services.kubelet.sync import PodRuntimeState
from services.machinery import channel, peer
from services.machinery.tlsconfig import ServingCert

log = logging.getLogger(__name__)

SERVICE_NAME = "kybernetes.kubelet.v1.Kubelet"
EXEC_CHUNK = 64 * 1024
# An exec holds a runtime thread for its whole run, so it is bounded.
MAX_EXEC_SECONDS = 3600
APISERVER_CLIENT = "kube-apiserver-kubelet-client"
MASTERS = "system:masters"


def may_use_kubelet(cert: peer.PeerCert) -> bool:
    """Whether this client certificate may read logs and exec."""
    return cert.common_name == APISERVER_CLIENT or MASTERS in cert.organizations


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


class KubeletService(kubelet_pb2_grpc.KubeletServicer):
    """``kubelets()`` gives the kubelets this server fronts. With
    ``authorize`` every call must come from an allowed client certificate."""

    def __init__(self, kubelets: Callable[[], Iterable[Any]], *, authorize: bool = False):
        self.kubelets = kubelets
        self.authorize = authorize

    def _check_caller(self, context: grpc.aio.ServicerContext) -> None:
        if not self.authorize:
            return
        cert = peer.peer_cert(context)
        if cert is None:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED,
                         "the kubelet needs a client certificate")
        if not may_use_kubelet(cert):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED,
                         f'User "{cert.common_name}" cannot use the kubelet API: only '
                         f"{APISERVER_CLIENT} and members of {MASTERS} may")

    def _find(self, namespace: str, name: str) -> tuple[Any, Any]:
        namespace = namespace or "default"
        for kubelet in self.kubelets():
            pod = kubelet.pod_by_name(namespace, name)
            if pod is not None:
                return kubelet, pod
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"pods {_quote(name)} not found")

    @staticmethod
    def _container_name(pod: Any, requested: str) -> str:
        names = [c.name for c in pod.spec.containers]
        inits = [c.name for c in pod.spec.init_containers]
        if requested:
            if requested not in names and requested not in inits:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"container {_quote(requested)} is not valid for pod "
                             f"{_quote(pod.metadata.name)}")
            return requested
        if len(names) == 1:
            return names[0]
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"a container name must be specified for pod {_quote(pod.metadata.name)}, "
                     f"choose one of: [{' '.join(names)}]")

    async def _instances(self, kubelet: Any, pod: Any, name: str) -> list[ContainerInfo]:
        found = await kubelet.runtime.list_containers({
            LABEL_POD_UID: pod.metadata.uid, LABEL_CONTAINER_NAME: name,
            LABEL_NODE: kubelet.node_name})
        return PodRuntimeState.of([], found).instances(name)

    async def _target(self, namespace: str, name: str, container: str, previous: bool
                      ) -> tuple[Any, ContainerInfo, str]:
        kubelet, pod = self._find(namespace, name)
        cname = self._container_name(pod, container)
        instances = await self._instances(kubelet, pod, cname)
        if previous:
            status = next((s for s in list(pod.status.container_statuses)
                           + list(pod.status.init_container_statuses) if s.name == cname), None)
            wanted = ""
            if status is not None and status.last_state.HasField("terminated"):
                wanted = status.last_state.terminated.container_id.split("://", 1)[-1]
            chosen = next((i for i in instances if wanted and i.id == wanted), None)
            if chosen is None and len(instances) > 1:
                chosen = instances[1]
            if chosen is None:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"previous terminated container {_quote(cname)} in pod "
                             f"{_quote(name)} not found")
            return kubelet, chosen, cname
        if not instances:
            reason = "ContainerCreating"
            status = next((s for s in list(pod.status.container_statuses)
                           + list(pod.status.init_container_statuses) if s.name == cname), None)
            if status is not None and status.state.HasField("waiting"):
                reason = status.state.waiting.reason or reason
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"container {_quote(cname)} in pod {_quote(name)} is waiting to start: "
                         f"{reason}")
        return kubelet, instances[0], cname

    async def Logs(self, request: core.PodLogsRequest, context: grpc.aio.ServicerContext):
        try:
            self._check_caller(context)
            kubelet, info, _ = await self._target(request.namespace, request.name,
                                                  request.container, request.previous)
            since = None
            if request.HasField("since_seconds"):
                since = time.time() - request.since_seconds
            tail = request.tail_lines if request.HasField("tail_lines") else None
            follow = request.follow and not request.previous
            async for data in kubelet.runtime.logs(info.id, follow=follow, tail=tail,
                                                   timestamps=request.timestamps, since=since):
                if data:
                    yield core.LogChunk(data=data)
        except _Abort as err:
            await context.abort(err.code, err.message)
        except RuntimeError_ as err:
            await context.abort(grpc.StatusCode.INTERNAL, f"reading logs failed: {err}")

    async def Exec(self, request: core.ExecRequest, context: grpc.aio.ServicerContext):
        try:
            self._check_caller(context)
            if not request.command:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "command is required")
            if not 0 <= request.timeout_seconds <= MAX_EXEC_SECONDS:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"timeout_seconds must be between 0 and {MAX_EXEC_SECONDS}")
            kubelet, info, cname = await self._target(request.namespace, request.name,
                                                      request.container, False)
            if info.state != ContainerState.RUNNING:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                             f"container {_quote(cname)} is not running")
            code, out, err = await kubelet.runtime.exec(
                info.id, list(request.command), stdin=request.stdin,
                timeout=float(request.timeout_seconds or 60))
        except _Abort as error:
            await context.abort(error.code, error.message)
            return
        except (asyncio.TimeoutError, TimeoutError):
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"command timed out after {request.timeout_seconds or 60}s")
            return
        except RuntimeError_ as error:
            await context.abort(grpc.StatusCode.INTERNAL, f"exec failed: {error}")
            return
        for i in range(0, max(len(out), len(err)), EXEC_CHUNK):
            yield core.ExecOutput(stdout=out[i:i + EXEC_CHUNK], stderr=err[i:i + EXEC_CHUNK])
        yield core.ExecOutput(exit_code=code)


class KubeletServer:
    """The gRPC server (Kubelet service + grpc.health.v1); mutual TLS when
    given a ``tls`` serving certificate, else plaintext."""

    def __init__(self, kubelets: Callable[[], Iterable[Any]], *, tls: ServingCert | None = None):
        self.tls = tls
        self.service = KubeletService(kubelets, authorize=tls is not None)
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str = "0.0.0.0", port: int = 10250) -> int:
        self.server = grpc.aio.server(options=channel.SERVER_OPTIONS)
        kubelet_pb2_grpc.add_KubeletServicer_to_server(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        address = f"{host}:{port}"
        if self.tls is not None:
            self.port = self.server.add_secure_port(address, self.tls.grpc_credentials())
        else:
            self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {host}:{port}")
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        if self.server is not None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace)


__all__ = ["KubeletServer", "KubeletService", "may_use_kubelet"]
