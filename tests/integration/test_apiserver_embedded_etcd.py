"""With no --etcd-servers, kyb-apiserver starts and supervises its own etcd
in --data-dir: state survives an API server restart, and an etcd child that
dies is started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from services.machinery import Client
from tests.support import objects
from tests.support.processes import REPO, free_port, wait_for_port, wait_until


class EmbeddedApiServer:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port, self.metrics_port, self.etcd_port = free_port(), free_port(), free_port()
        while self.etcd_port + 1 in (self.port, self.metrics_port):
            self.etcd_port = free_port()
        self.proc = None

    def start(self):
        log = open(self.data_dir / "apiserver.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.apiserver.main", "--bind-address", "127.0.0.1",
             "--port", str(self.port), "--metrics-port", str(self.metrics_port),
             "--data-dir", str(self.data_dir), "--embedded-etcd-port", str(self.etcd_port),
             "--insecure-plaintext"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 60, self.proc, self.data_dir / "apiserver.log")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def etcd_pid(self) -> int | None:
        out = subprocess.run(["pgrep", "-f", f"listen-client-urls http://127.0.0.1:{self.etcd_port}"],
                             capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        return pids[0] if pids else None


@pytest.fixture
def embedded(tmp_path):
    server = EmbeddedApiServer(tmp_path)
    server.start()
    yield server
    server.stop()
    out = subprocess.run(["pgrep", "-f", f"127.0.0.1:{server.etcd_port}"], capture_output=True,
                         text=True)
    assert out.stdout.strip() == "", "the embedded etcd outlived its API server"


async def test_embedded_etcd_keeps_state_and_is_supervised(embedded):
    async with Client([f"127.0.0.1:{embedded.port}"], retry_for=30) as client:
        await client.resource("svc").create(objects.service("kept", "default"))
        assert (embedded.data_dir / "etcd").is_dir()
        first = embedded.etcd_pid()
        assert first is not None, "embedded etcd is not running"
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: embedded.etcd_pid() not in (None, first), timeout=30,
                         message="etcd restarted by the API server")
        got = await client.resource("svc").get("kept", "default")
        assert got.metadata.name == "kept"
        await asyncio.to_thread(embedded.stop)
        await asyncio.to_thread(embedded.start)
        got = await client.resource("svc").get("kept", "default")
        assert got.spec.cluster_ip
