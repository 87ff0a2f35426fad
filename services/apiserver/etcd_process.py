"""The embedded default: an etcd child process the API server starts and
supervises when no ``--etcd-servers`` are given, with its data in the API
server's state directory. It is restarted if it dies and stopped with the
API server."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import shutil

log = logging.getLogger(__name__)


class EtcdProcess:
    def __init__(self, data_dir: pathlib.Path, client_port: int = 2379, peer_port: int = 2380,
                 host: str = "127.0.0.1", binary: str = "etcd", progress_interval: float = 1.0):
        self.data_dir = data_dir
        self.client_port, self.peer_port, self.host = client_port, peer_port, host
        self.binary = binary
        self.progress_interval = progress_interval
        self.process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    def command(self) -> list[str]:
        client = f"http://{self.host}:{self.client_port}"
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            self.binary, "--name", "kyb-etcd", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kyb-etcd={peer}",
            # Room for the API's 3 MiB objects plus transaction overhead.
            "--max-request-bytes", str(8 * 1024 * 1024),
            # Progress notifications become BOOKMARKs for idle watchers.
            "--experimental-watch-progress-notify-interval",
            f"{max(int(self.progress_interval * 1000), 100)}ms",
            "--log-level", "warn",
        ]

    async def start(self) -> None:
        if shutil.which(self.binary) is None:
            raise FileNotFoundError(
                f"{self.binary} not found: install etcd-server (deploy/host/ensure.sh etcd) "
                "or pass --etcd-servers")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self._spawn()
        await self._wait_listening(timeout=30)
        self._supervisor = asyncio.create_task(self._supervise())

    async def _wait_listening(self, timeout: float) -> None:
        """Return once etcd accepts connections, so the API server's first
        calls do not race its start-up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see "
                                   f"{self.data_dir.parent / 'etcd.log'}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.client_port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise TimeoutError(f"etcd did not listen on {self.endpoint} within {timeout}s")

    async def _spawn(self) -> None:
        log_file = open(self.data_dir.parent / "etcd.log", "ab")  # noqa: SIM115 (child owns it)
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), stdout=log_file, stderr=log_file, start_new_session=True)
        log_file.close()
        log.info("started etcd (pid %d) on %s", self.process.pid, self.endpoint)

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            log.warning("etcd exited with %s; restarting in %.1fs", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)
            await self._spawn()

    async def stop(self) -> None:
        self._stopping = True
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._supervisor:
            self._supervisor.cancel()
