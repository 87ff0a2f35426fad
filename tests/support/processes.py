"""Start and stop real etcd and API server processes for tests."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None,
                  log: pathlib.Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening:\n{tail}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class EtcdProcess:
    """A real etcd on free ports, with its data in ``workdir``."""

    def __init__(self, workdir: pathlib.Path):
        if shutil.which("etcd") is None:
            raise RuntimeError("etcd is not installed: run deploy/host/ensure.sh etcd")
        self.workdir = workdir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = self.workdir / "etcd.log"
        self.proc = subprocess.Popen(
            ["etcd", "--name", "test", "--data-dir", str(self.workdir / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"test={peer}", "--max-request-bytes", str(8 << 20),
             "--experimental-watch-progress-notify-interval", "1s", "--log-level", "warn"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.client_port, 30, self.proc, log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)

    def compact(self) -> int:
        """Compact etcd to its current revision (as an outside operator would)."""
        out = subprocess.run(
            ["etcdctl", "--endpoints", self.endpoint, "endpoint", "status", "-w", "json"],
            check=True, capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
        import json
        revision = json.loads(out.stdout)[0]["Status"]["header"]["revision"]
        subprocess.run(["etcdctl", "--endpoints", self.endpoint, "compact", str(revision)],
                       check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})
        return revision


class EtcdCluster:
    """A real multi-member etcd cluster on free ports (for failover tests)."""

    def __init__(self, workdir: pathlib.Path, members: int = 3):
        if shutil.which("etcd") is None:
            raise RuntimeError("etcd is not installed: run deploy/host/ensure.sh etcd")
        self.workdir = workdir
        self.ports = [(free_port(), free_port()) for _ in range(members)]
        self.procs: list[subprocess.Popen | None] = [None] * members

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{client}" for client, _ in self.ports]

    def _initial_cluster(self) -> str:
        return ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(self.ports))

    def start_member(self, i: int) -> None:
        client, peer = self.ports[i]
        log = self.workdir / f"etcd-m{i}.log"
        self.procs[i] = subprocess.Popen(
            ["etcd", "--name", f"m{i}", "--data-dir", str(self.workdir / f"m{i}"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", self._initial_cluster(), "--initial-cluster-state", "new",
             "--initial-cluster-token", f"kyb-test-{self.ports[0][0]}", "--log-level", "warn"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        for i in range(len(self.ports)):
            self.start_member(i)
        for i, (client, _) in enumerate(self.ports):
            wait_for_port("127.0.0.1", client, 30, self.procs[i], self.workdir / f"etcd-m{i}.log")

    def stop_member(self, i: int) -> None:
        _stop(self.procs[i], signal.SIGKILL)

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc)


class ApiServerProcess:
    """A real ``kyb-apiserver`` process against ``etcd``."""

    def __init__(self, workdir: pathlib.Path, etcd_endpoints: str, *, watch_cache_size: int = 1024,
                 extra_args: list[str] | None = None):
        self.workdir = workdir
        self.etcd_endpoints = etcd_endpoints
        self.port = free_port()
        self.token_port = free_port()
        self.metrics_port = free_port()
        self.watch_cache_size = watch_cache_size
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure(self) -> bool:
        return "--tls-cert-file" in self.extra_args

    @property
    def metrics_url(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        log = self.workdir / "apiserver.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.apiserver.main", "--bind-address", "127.0.0.1",
             "--port", str(self.port), "--metrics-port", str(self.metrics_port),
             "--etcd-servers", self.etcd_endpoints, "--data-dir", str(self.workdir / "state"),
             "--watch-cache-size", str(self.watch_cache_size), "--bookmark-interval", "0.5",
             *(["--token-port", str(self.token_port)] if self.secure else ["--insecure-plaintext"]),
             *self.extra_args],
            cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 60, self.proc, log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self, context=None) -> str:
        """/metrics; a secure server needs ``context`` (an ssl context with a
        client certificate)."""
        with urllib.request.urlopen(self.metrics_url, timeout=5, context=context) as resp:
            return resp.read().decode()


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05,
                     message: str = "condition"):
    """Poll ``predicate`` (sync or async) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")
