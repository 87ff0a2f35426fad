"""A cluster from ``kyb-cluster up`` lets no one in where they do not
belong: plaintext, certificate-less and foreign-CA clients are refused by
the API server, etcd is not even reachable except by the API server, a
kubelet's gRPC API serves only the API server, metrics need a certificate,
and the written configs (the admin's certificate, the token users, a user
from ``kyb-cluster user``) work as their identities allow — every refusal
in the audit log. A one-node cluster of its own."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.cluster.config import Options
from services.cluster.topology import (
    APISERVER_METRICS_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBELET_METRICS_PORT, KUBELET_PORT,
    plan,
)
from services.machinery import ApiError, Client, pki, tlsconfig
from services.machinery.config import ClientConfig
from services.machinery.config import load as load_config
from tests.integration.cluster.conftest import (
    CLUSTER_CIDR, NAME, ROOT, SERVICE_CIDR, SUBNET, Cluster,
)
from tests.support.pki import TestPki

pytestmark = [pytest.mark.images, pytest.mark.timeout(600)]

NODES = 1
TOPO = plan(Options(name=NAME, nodes=NODES, subnet=SUBNET, cluster_cidr=CLUSTER_CIDR,
                    service_cidr=SERVICE_CIDR))
API = TOPO.api_addresses[0]
TOKEN_API = TOPO.token_addresses[0]
NODE_IP = TOPO.nodes[0].ip
ETCD_IP = TOPO.etcd[0].ip

POD = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: hello}}
spec:
  containers:
  - name: main
    image: kyb/busybox:latest
    command: ["sh", "-c", "echo hello from the pod; sleep 3600"]
"""


def _list_namespaces(cfg: ClientConfig) -> list[str]:
    async def go():
        async with Client(config=cfg, timeout=5, retry_for=1) as client:
            return [n.metadata.name for n in (await client.resource("namespaces").list()).items]
    return asyncio.run(go())


def _refused(cfg: ClientConfig) -> ApiError:
    with pytest.raises(ApiError) as info:
        _list_namespaces(cfg)
    return info.value


def _ca(cluster) -> str:
    return str(cluster.pki / "ca.crt")


def _as(cluster: Cluster, config) -> Cluster:
    """The same cluster driven with another client config."""
    return Cluster(cluster.name, {**cluster.env, "KYB_CONFIG": str(config)})


def _apply(cluster: Cluster, manifest: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "services.ctl.main", "apply", "-f", "-"],
                          input=manifest, env=cluster.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def _poll(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {last!r})"
        time.sleep(0.5)


def test_security_kyb_works_through_the_written_config_as_the_admin(cluster):
    cfg = load_config(kubeconfig=cluster.env["KYB_CONFIG"])
    assert cfg.servers == [API] and cfg.secure and cfg.cert
    out = cluster.kyb("auth", "whoami")
    assert "kubernetes-admin" in out and "system:masters" in out and "x509" in out
    assert cluster.node(1) in cluster.kyb("get", "nodes")


def test_security_plaintext_to_the_api_server_is_refused(cluster):
    err = _refused(ClientConfig([API]))
    assert err.code == grpc.StatusCode.UNAVAILABLE


def test_security_a_client_without_a_certificate_is_refused(cluster):
    err = _refused(ClientConfig.from_files([API], ca_file=_ca(cluster)))
    assert err.code == grpc.StatusCode.UNAVAILABLE  # the handshake fails
    # On the token port, no token is no identity.
    err = _refused(ClientConfig.from_files([TOKEN_API], ca_file=_ca(cluster)))
    assert err.code == grpc.StatusCode.UNAUTHENTICATED


def test_security_a_certificate_from_another_ca_is_refused(cluster, tmp_path):
    rogue = TestPki(tmp_path / "rogue")
    cert, key = rogue.user("kubernetes-admin", ("system:masters",))
    err = _refused(ClientConfig.from_files([API], ca_file=_ca(cluster), cert_file=cert,
                                           key_file=key))
    assert err.code == grpc.StatusCode.UNAVAILABLE
    # Nor does the client trust an API server its own CA did not sign.
    err = _refused(ClientConfig.from_files([API], ca_file=rogue.ca_file, cert_file=cert,
                                           key_file=key))
    assert "not signed by the configured CA" in str(err) or \
        err.code == grpc.StatusCode.UNAVAILABLE


def _connect(ip: str, port: int) -> str:
    """What a TCP connection from here to ip:port gets."""
    try:
        with socket.create_connection((ip, port), timeout=5):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        return f"failed: {err}"


def test_security_etcd_is_reachable_only_by_the_api_server(cluster):
    # Not from the host (which sits on the cluster network's bridge)...
    assert _connect(ETCD_IP, ETCD_CLIENT_PORT) == "refused"
    assert _connect(ETCD_IP, ETCD_PEER_PORT) == "refused"
    assert cluster.docker("port", f"{NAME}-etcd-0").strip() == ""  # nothing published
    # ...nor from a node...
    probe = f"timeout 5 bash -c 'echo > /dev/tcp/{ETCD_IP}/{ETCD_CLIENT_PORT}'"
    node = cluster.docker("exec", cluster.node(1), "sh", "-c", f"{probe} && echo open || echo shut")
    assert node.strip() == "shut"
    # ...while the API server, its one client, works (the cluster answers).
    assert "default" in cluster.kyb("get", "namespaces")
    rules = cluster.docker("exec", f"{NAME}-etcd-0", "iptables", "-S", "KYB-ETCD")
    assert f"-s {TOPO.apiservers[0].ip}/32 -p tcp -m tcp --dport 2379 -j ACCEPT" in rules


def _kubelet_logs(cluster, ca: str, cert: str | None, key: str | None) -> grpc.RpcError:
    creds = tlsconfig.ClientTLS.load(ca, cert, key).credentials()

    async def go():
        async with grpc.aio.secure_channel(f"{NODE_IP}:{KUBELET_PORT}", creds) as channel:
            stub = kubelet_pb2_grpc.KubeletStub(channel)
            stream = stub.Logs(core.PodLogsRequest(namespace="default", name="hello"),
                               timeout=10)
            async for _ in stream:
                pass
    with pytest.raises(grpc.RpcError) as info:
        asyncio.run(go())
    return info.value


def test_security_kubelet_serves_only_the_api_server(cluster):
    _apply(cluster, POD)
    # Through the API server (its kubelet-client certificate): logs work.
    _poll(lambda: "hello from the pod" in cluster.kyb("logs", "hello", check=False), 120,
          "the pod's logs through the API server")
    # Directly with any other certificate from the cluster CA: refused.
    pki_dir = cluster.pki
    for stem in (f"node-{cluster.node(1)}", "kube-proxy", "scheduler"):
        err = _kubelet_logs(cluster, _ca(cluster), str(pki_dir / f"{stem}.crt"),
                            str(pki_dir / f"{stem}.key"))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (stem, err)
    # Without a certificate the handshake fails.
    err = _kubelet_logs(cluster, _ca(cluster), None, None)
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def _get(url: str, context: ssl.SSLContext) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_security_metrics_need_a_certificate_health_does_not(cluster):
    anonymous = tlsconfig.http_client_context(_ca(cluster))
    prometheus = tlsconfig.http_client_context(_ca(cluster), cluster.pki / "prometheus.crt",
                                               cluster.pki / "prometheus.key")
    node_name = pki.node_client_name(TOPO.nodes[0].name)
    a_node = tlsconfig.http_client_context(_ca(cluster), cluster.pki / f"{node_name}.crt",
                                           cluster.pki / f"{node_name}.key")
    for address in (f"{TOPO.apiservers[0].ip}:{APISERVER_METRICS_PORT}",
                    f"{NODE_IP}:{KUBELET_METRICS_PORT}"):
        assert _get(f"https://{address}/healthz", anonymous) == 200
        assert _get(f"https://{address}/metrics", anonymous) == 401
        assert _get(f"https://{address}/metrics", prometheus) == 200
        # A certificate is not enough: RBAC must allow get /metrics.
        assert _get(f"https://{address}/metrics", a_node) == 403


def test_security_token_users_and_the_audit_log(cluster):
    as_viewer = _as(cluster, cluster.state / "viewer-token.conf")
    as_admin = _as(cluster, cluster.state / "admin-token.conf")
    assert "kyb-admin" in as_admin.kyb("auth", "whoami")
    assert "default" in as_viewer.kyb("get", "namespaces")
    out = as_viewer.kyb("create", "namespace", "not-for-viewers", check=False)
    assert "forbidden" in out.lower()
    audit = cluster.state / "audit" / f"{NAME}-apiserver-0" / "audit.log"
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(e["user"] == "kyb-viewer" and e["decision"] != "allow"
               and e["verb"] == "create" for e in entries)


def test_security_a_new_user_gets_a_working_config_and_no_rights(cluster, tmp_path):
    path = tmp_path / "alice.conf"
    out = cluster.run("user", "alice", "--group", "dev", "-o", str(path))
    assert str(path) in out
    alice = _as(cluster, path)
    whoami = alice.kyb("auth", "whoami")
    assert "alice" in whoami and "dev" in whoami
    assert "forbidden" in alice.kyb("get", "pods", check=False).lower()
    cert = pki.x509.load_pem_x509_certificate(load_config(kubeconfig=path).cert)
    assert pki.signed_by(cert, pki.load_cert(_ca(cluster)))


def test_security_second_up_keeps_every_certificate_and_container(cluster):
    before = {p.name: p.read_bytes() for p in cluster.pki.iterdir() if p.suffix == ".crt"}
    ids = cluster.docker("ps", "-q", "--filter", f"label=org.kybernetes.cluster={NAME}")
    out = cluster.run("up", "--wait", "60")
    assert "certificates: up to date" in out
    assert "created" not in out.replace("ClusterRoleBinding", "") and "recreated" not in out
    after = {p.name: p.read_bytes() for p in cluster.pki.iterdir() if p.suffix == ".crt"}
    assert after == before
    assert cluster.docker("ps", "-q", "--filter", f"label=org.kybernetes.cluster={NAME}") == ids
