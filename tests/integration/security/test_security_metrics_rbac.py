"""Who may read /metrics is RBAC's call, the Kubernetes way: ``get`` on the
non-resource URL /metrics, which the system:monitoring role (Prometheus'
group) and cluster-admin grant. The API server asks its own authorizers;
the other components ask the API server (delegated authorization), here a
real kyb-scheduler process with its own certificate. A certificate signed
by the cluster CA is no longer enough: a node's or a plain user's gets
403, and `kyb auth can-i get /metrics --as` says the same."""

from __future__ import annotations

import json
import pathlib
import signal
import ssl
import subprocess
import sys

import pytest

from services.machinery import config, pki, tlsconfig
from tests.support.https import https_get
from tests.support.processes import REPO, free_port, wait_for_port, wait_until

pytestmark = pytest.mark.asyncio

# name -> (user, groups, may read /metrics)
WHO = {
    "prometheus": ("system:prometheus", ("system:monitoring",), True),
    "admin": ("kubernetes-admin", ("system:masters",), True),
    "user": ("metrics-curious", ("developers",), False),
    "node": ("system:node:n1", ("system:nodes",), False),
}


def _context(secure, name: str | None) -> ssl.SSLContext:
    if name is None:
        return tlsconfig.http_client_context(secure.pki.ca_file)
    user, groups, _ = WHO[name]
    cert, key = secure.pki.user(user, groups)
    return tlsconfig.http_client_context(secure.pki.ca_file, cert, key)


def _kubeconfig(secure, directory: pathlib.Path, user: str, groups: tuple[str, ...] = (),
                server: str | None = None) -> pathlib.Path:
    cert, key = secure.pki.user(user, groups)
    stem = "".join(c if c.isalnum() else "_" for c in user)
    return config.write_config([server or secure.address], directory / f"{stem}.conf",
                               certificate_authority=secure.pki.ca_file,
                               client_certificate=cert, client_key=key)


def _can_i(kubeconfig: pathlib.Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.ctl.main", "--kubeconfig",
                           str(kubeconfig), "auth", "can-i", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.strip()


async def test_apiserver_metrics_are_for_monitoring_and_admins_only(secure, tmp_path):
    port = secure.api.metrics_port
    for name, (user, groups, may) in WHO.items():
        status, body = await https_get(port, "/metrics", _context(secure, name))
        if may:
            assert status == 200 and b"apiserver_request_total" in body, (name, status, body)
        else:
            assert (status, body) == (403, f'Forbidden: User "{user}" cannot get path '
                                           f'"/metrics"\n'.encode()), name
    status, body = await https_get(port, "/metrics", _context(secure, None))
    assert status == 401 and b"or a bearer token" in body

    def refused() -> list[dict]:
        return [r for r in map(json.loads, secure.audit_log.read_text().splitlines())
                if r["method"] == "GET /metrics" and r["user"] == "system:node:n1"]
    audited = await wait_until(refused, message="the refused scrape in the audit log")
    assert (audited[0]["decision"], audited[0]["verb"], audited[0]["code"]) == (
        "forbid", "get", "PERMISSION_DENIED")
    # Health stays open to everyone, as in Kubernetes.
    assert await https_get(port, "/healthz", _context(secure, "node")) == (200, b"ok\n")
    # kyb auth can-i asks the same authorizers, so it agrees.
    admin = _kubeconfig(secure, tmp_path, "kubernetes-admin", ("system:masters",))
    for name, (user, groups, may) in WHO.items():
        extra = [arg for g in groups for arg in ("--as-group", g)]
        assert _can_i(admin, "get", "/metrics", "--as", user, *extra) == \
            ("yes" if may else "no"), name
    assert _can_i(admin, "get", "/metrics") == "yes"


async def test_apiserver_metrics_tokens_are_authorized_too(secure):
    port, anonymous = secure.api.metrics_port, _context(secure, None)
    status, _ = await https_get(port, "/metrics", anonymous, {"Authorization": "Bearer tok-admin"})
    assert status == 200
    status, body = await https_get(port, "/metrics", anonymous,
                                   {"Authorization": "Bearer tok-viewer"})
    assert (status, body) == (403, b'Forbidden: User "script-viewer" cannot get path '
                                   b'"/metrics"\n')


class SchedulerProcess:
    """``python -m services.scheduler.main`` serving HTTPS metrics with its
    own serving certificate, talking to ``server`` as system:kube-scheduler."""

    def __init__(self, secure, directory: pathlib.Path, server: str | None = None):
        kubeconfig = _kubeconfig(secure, directory, "system:kube-scheduler", server=server)
        cert, key = secure.pki.issue(pki.CertSpec(
            f"scheduler-serving-{free_port()}", "kube-scheduler", ip_addresses=("127.0.0.1",),
            server=True))
        self.port = free_port()
        self.log = directory / f"scheduler-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.scheduler.main", "--kubeconfig", str(kubeconfig),
             "--bind-address", "127.0.0.1", "--metrics-port", str(self.port),
             "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
             "--leader-elect=false"],
            cwd=REPO, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 60, self.proc, self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def scheduler(secure, tmp_path):
    started: list[SchedulerProcess] = []

    def start(server: str | None = None) -> SchedulerProcess:
        proc = SchedulerProcess(secure, tmp_path, server)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


async def test_scheduler_metrics_are_authorized_by_the_apiserver(secure, scheduler):
    port = scheduler().port

    async def prometheus_reads() -> bool:
        status, body = await https_get(port, "/metrics", _context(secure, "prometheus"))
        return status == 200 and b"scheduler_pending_pods" in body
    await wait_until(prometheus_reads, 30, message="the scheduler to serve Prometheus")
    assert (await https_get(port, "/metrics", _context(secure, "admin")))[0] == 200
    status, body = await https_get(port, "/metrics", _context(secure, "node"))
    assert (status, body) == (403, b'Forbidden: User "system:node:n1" cannot get path '
                                   b'"/metrics"\n')
    status, body = await https_get(port, "/metrics", _context(secure, None),
                                   {"Authorization": "Bearer tok-admin"})
    assert status == 401 and b"takes no bearer tokens" in body
    assert await https_get(port, "/healthz", _context(secure, None)) == (200, b"ok\n")


async def test_scheduler_that_cannot_ask_refuses_everyone(secure, scheduler):
    """Fail closed: with no API server to ask, even Prometheus is refused."""
    port = scheduler(server=f"127.0.0.1:{free_port()}").port
    status, body = await https_get(port, "/metrics", _context(secure, "prometheus"))
    assert status == 403 and body.count(b"\n") == 1
    assert b"cannot check whether" in body and b"did not answer" in body
