"""The kubelet's gRPC service over mutual TLS, against the real API server
with the in-memory runtime: only the API server's kubelet-client
certificate and system:masters may read logs and exec; a node's
certificate is PERMISSION_DENIED; plaintext and certificate-less clients
never get past the handshake. The API server's relay (KubeletProxy)
verifies the kubelet's serving certificate by the node's IP. And
``kyb-kubelet`` as a process wires the TLS flags to both its ports."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.apiserver import errors as api_errors
from services.apiserver.proxy import KubeletProxy
from services.kubelet.kubelet import Kubelet, KubeletConfig
from services.kubelet.runtime.fake import FakeRuntime
from services.kubelet.server import KubeletServer
from services.machinery import channel, pki, tlsconfig
from services.machinery.errors import NotFound
from tests.support import objects
from tests.support.https import https_get
from tests.support.processes import REPO, free_port, wait_until


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.create_ca()
    pki.save(ca, d, "ca")
    other = pki.create_ca()
    for name, spec, signer in [
        ("kubelet", pki.CertSpec("kubelet", "system:node:tls", ("system:nodes",),
                                 dns_names=("tls-node",), ip_addresses=("127.0.0.1",),
                                 server=True), ca),
        ("apiserver-kubelet-client", pki.CertSpec("a", "kube-apiserver-kubelet-client",
                                                  ("system:masters",), client=True), ca),
        ("admin", pki.CertSpec("admin", "kubernetes-admin", ("system:masters",), client=True),
         ca),
        ("node", pki.CertSpec("node", "system:node:other", ("system:nodes",), client=True), ca),
        ("foreign", pki.CertSpec("f", "kube-apiserver-kubelet-client", ("system:masters",),
                                 client=True), other),
    ]:
        pki.save(pki.issue(signer, spec), d, name)
    return d


def client_tls(certs, name: str | None) -> tlsconfig.ClientTLS:
    if name is None:
        return tlsconfig.ClientTLS.load(certs / "ca.crt")
    return tlsconfig.ClientTLS.load(certs / "ca.crt", certs / f"{name}.crt",
                                    certs / f"{name}.key")


class Via:
    """The registry surface KubeletProxy reads, backed by the API client."""

    def __init__(self, resource):
        self.resource = resource

    async def get(self, namespace: str, name: str):
        return await self.resource.get(name, namespace)


@pytest.fixture
async def tls_kubelet(client, certs, node_name, tmp_path, kubelet_timings):
    """A kubelet serving mutual TLS, with one running pod "talk"; yields
    (address, runtime, namespace-less pod name)."""
    runtime = FakeRuntime(node_name=node_name,
                          exec_handler=lambda info, cmd, stdin: (3, b"out:" + stdin, b""))
    holder: list[Kubelet] = []
    serving = tlsconfig.ServingCert.load(certs / "kubelet.crt", certs / "kubelet.key",
                                         certs / "ca.crt")
    server = KubeletServer(lambda: holder, tls=serving)
    port = await server.start("127.0.0.1", 0)
    config = KubeletConfig(node_name=node_name, node_ip="127.0.0.1", port=port,
                           root_dir=str(tmp_path / "kubelet"), **kubelet_timings)
    kubelet = Kubelet(client, runtime, config)
    holder.append(kubelet)
    task = asyncio.create_task(kubelet.run())
    try:
        await asyncio.wait_for(kubelet.ready.wait(), 30)
        yield f"127.0.0.1:{port}", runtime
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop(0)
        try:
            await client.resource("nodes").delete(node_name)
        except NotFound:
            pass


async def running_pod(client, namespace, node_name, runtime) -> None:
    pod = objects.pod("talk", namespace, node=node_name)
    await client.resource("pods").create(pod)

    async def started():
        p = await client.resource("pods").get("talk", namespace)
        statuses = p.status.container_statuses
        return p if statuses and statuses[0].state.HasField("running") else None
    pod = await wait_until(started, 30, 0.05, "pod running")
    runtime.write_log(pod.status.container_statuses[0].container_id.removeprefix("fake://"),
                      b"hello\n")


async def read_logs(address: str, tls: tlsconfig.ClientTLS | None, namespace: str) -> bytes:
    chan = channel.secure_channel(address, tls.credentials()) if tls else \
        channel.insecure_channel(address)
    try:
        stub = kubelet_pb2_grpc.KubeletStub(chan)
        call = stub.Logs(core.PodLogsRequest(namespace=namespace, name="talk"), timeout=10)
        return b"".join([chunk.data async for chunk in call])
    finally:
        await chan.close()


async def test_kubelet_tls_serves_only_the_api_server_and_masters(
        client, namespace, node_name, certs, tls_kubelet):
    address, runtime = tls_kubelet
    await running_pod(client, namespace, node_name, runtime)
    for allowed in ("apiserver-kubelet-client", "admin"):
        assert await read_logs(address, client_tls(certs, allowed), namespace) == b"hello\n"
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await read_logs(address, client_tls(certs, "node"), namespace)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "system:node:other" in denied.value.details()
    for refused in (None, "no certificate", "foreign"):
        tls = None if refused is None else client_tls(
            certs, None if refused == "no certificate" else refused)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await read_logs(address, tls, namespace)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, refused


async def test_kubelet_tls_api_server_relay_verifies_the_kubelet(
        client, namespace, node_name, certs, tls_kubelet):
    _, runtime = tls_kubelet
    await running_pod(client, namespace, node_name, runtime)
    pods, nodes = Via(client.resource("pods")), Via(client.resource("nodes"))
    proxy = KubeletProxy(pods, nodes, tls=client_tls(certs, "apiserver-kubelet-client"))
    try:
        chunks = [core.LogChunk.FromString(c) async for c in proxy.logs(
            core.PodLogsRequest(namespace=namespace, name="talk"))]
        assert b"".join(c.data for c in chunks) == b"hello\n"
        outputs = [core.ExecOutput.FromString(c) async for c in proxy.exec(
            core.ExecRequest(namespace=namespace, name="talk", command=["cat"], stdin=b"x"))]
        assert b"".join(o.stdout for o in outputs) == b"out:x" and outputs[-1].exit_code == 3
    finally:
        await proxy.close()

    # A kubelet certificate that the relay's CA did not sign is refused by the relay.
    other_ca = certs / "other-ca.crt"
    other_ca.write_bytes(pki.create_ca().cert_pem)
    wrong = KubeletProxy(pods, nodes, tls=tlsconfig.ClientTLS.load(
        other_ca, certs / "apiserver-kubelet-client.crt",
        certs / "apiserver-kubelet-client.key"))
    try:
        with pytest.raises(api_errors.ApiStatus, match="not signed by the configured CA"):
            _ = [c async for c in wrong.logs(core.PodLogsRequest(namespace=namespace,
                                                                 name="talk"))]
    finally:
        await wrong.close()


async def test_kubelet_tls_process_serves_grpc_and_metrics_over_tls(
        apiserver, client, namespace, certs, tmp_path):
    prefix = f"tls-{uuid.uuid4().hex[:6]}"
    node = f"{prefix}-0"  # --runtime fake names its (here: one) hollow node PREFIX-0
    metrics_port = free_port()
    log = tmp_path / "kubelet.log"
    kubeconfig = tmp_path / "kubelet.conf"
    kubeconfig.write_text(f"server: {apiserver.address}\n")  # the test API server is plaintext
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.kubelet.main", "--kubeconfig", str(kubeconfig),
         "--runtime", "fake", "--node-name", prefix, "--node-ip", "127.0.0.1",
         "--address", "127.0.0.1", "--port", "0", "--metrics-port", str(metrics_port),
         "--root-dir", str(tmp_path / "root"), "--relist-period", "0.5",
         "--tls-cert-file", str(certs / "kubelet.crt"),
         "--tls-private-key-file", str(certs / "kubelet.key"),
         "--client-ca-file", str(certs / "ca.crt")],
        cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    nodes = client.resource("nodes")
    anonymous = tlsconfig.http_client_context(certs / "ca.crt")
    admin = tlsconfig.http_client_context(certs / "ca.crt", certs / "admin.crt",
                                          certs / "admin.key")
    try:
        async def healthy():
            return (await https_get(metrics_port, "/healthz", anonymous))[0] == 200
        await wait_until(healthy, 30, 0.2, "/healthz over https")
        assert (await https_get(metrics_port, "/metrics", anonymous))[0] == 401
        assert (await https_get(metrics_port, "/metrics", admin))[0] == 200

        registered = await nodes.get(node)
        address = f"127.0.0.1:{registered.status.daemon_endpoints.kubelet_endpoint.port}"
        runtime_pod = objects.pod("talk", namespace, node=node)
        await client.resource("pods").create(runtime_pod)

        async def running():
            p = await client.resource("pods").get("talk", namespace)
            return p.status.phase == "Running"
        await wait_until(running, 30, 0.2, "pod Running")
        assert await read_logs(address, client_tls(certs, "admin"), namespace) == b""
        with pytest.raises(grpc.aio.AioRpcError) as plain:
            await read_logs(address, None, namespace)
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        try:
            await nodes.delete(node)
        except NotFound:
            pass
    assert code == 0, log.read_text()[-2000:]


def test_kubelet_tls_bad_certificate_flags_fail_in_one_line(certs):
    done = subprocess.run(
        [sys.executable, "-m", "services.kubelet.main", "--kubeconfig", "/nonexistent/conf"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "kyb-kubelet: client config /nonexistent/conf does not exist"
    done = subprocess.run(
        [sys.executable, "-m", "services.kubelet.main", "--tls-cert-file",
         str(certs / "kubelet.crt"), "--tls-private-key-file", str(certs / "admin.key"),
         "--client-ca-file", str(certs / "ca.crt")],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("admin.key is not the private key of certificate "
                                        f"{certs / 'kubelet.crt'}")
