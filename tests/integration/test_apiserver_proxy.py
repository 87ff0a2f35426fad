"""Pods.Logs and Pods.Exec are relayed to the kubelet named by the pod's
Node. The far end here is a minimal gRPC server speaking the Kubelet
protocol, so that the relay (addressing, container choice, streaming,
error pass-through) is tested on its own; the real kubelet's side is in
tests/integration/kubelet."""

from __future__ import annotations

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.machinery import errors
from tests.support import objects
from tests.support.processes import free_port


class EchoKubelet(kubelet_pb2_grpc.KubeletServicer):
    async def Logs(self, request, context):
        for i in range(3):
            yield core.LogChunk(data=f"{request.namespace}/{request.name}/{request.container} "
                                     f"line {i}\n".encode())

    async def Exec(self, request, context):
        if request.command[0] == "fail":
            await context.abort(grpc.StatusCode.NOT_FOUND, "container not running")
        yield core.ExecOutput(stdout=" ".join(request.command).encode())
        yield core.ExecOutput(stderr=request.stdin, exit_code=7)


@pytest.fixture
async def kubelet_node(client):
    port = free_port()
    server = grpc.aio.server()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(EchoKubelet(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    node = objects.node(f"proxy-node-{port}")
    node.status.addresses.add(type="InternalIP", address="127.0.0.1")
    node.status.daemon_endpoints.kubelet_endpoint.port = port
    created = await client.resource("nodes").create(node)
    yield created.metadata.name
    await server.stop(0)
    await client.resource("nodes").delete(created.metadata.name)


async def test_proxy_logs_and_exec_reach_the_pods_kubelet(client, namespace, kubelet_node):
    pods = client.resource("pods")
    await pods.create(objects.pod("p", namespace, node=kubelet_node))
    text = b"".join([c async for c in pods.logs("p", namespace)]).decode()
    assert text.splitlines() == [f"{namespace}/p/main line {i}" for i in range(3)]
    code, out, err = await pods.exec("p", namespace, ["echo", "hi"], stdin=b"in")
    assert (code, out, err) == (7, b"echo hi", b"in")
    with pytest.raises(errors.NotFound, match="container not running"):
        await pods.exec("p", namespace, ["fail"])


async def test_proxy_refuses_unscheduled_pods_and_unknown_containers(client, namespace,
                                                                     kubelet_node):
    pods = client.resource("pods")
    await pods.create(objects.pod("floating", namespace))
    with pytest.raises(errors.PreconditionFailed, match="does not have a host"):
        await pods.exec("floating", namespace, ["true"])
    two = objects.pod("two", namespace, node=kubelet_node)
    two.spec.containers.add(name="side", image="busybox:1", command=["sleep", "1"])
    await pods.create(two)
    with pytest.raises(errors.Invalid, match="choose one of"):
        async for _ in pods.logs("two", namespace):
            pass
    with pytest.raises(errors.Invalid, match="not valid"):
        await pods.exec("two", namespace, ["true"], container="nope")
    with pytest.raises(errors.NotFound):
        await pods.exec("missing", namespace, ["true"])


async def test_proxy_unreachable_kubelet_is_unavailable(client, namespace):
    node = objects.node(f"dead-node-{free_port()}")
    node.status.addresses.add(type="InternalIP", address="127.0.0.1")
    node.status.daemon_endpoints.kubelet_endpoint.port = free_port()  # nothing listens
    await client.resource("nodes").create(node)
    await client.resource("pods").create(objects.pod("p", namespace, node=node.metadata.name))
    with pytest.raises(errors.Unavailable, match="unable to reach the kubelet"):
        await client.resource("pods").exec("p", namespace, ["true"])
    await client.resource("nodes").delete(node.metadata.name)
