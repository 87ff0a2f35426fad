"""The HTTP side every daemon serves: Prometheus ``/metrics`` and the
``/healthz``, ``/livez``, ``/readyz`` probes.

A few dozen lines on asyncio streams instead of a web framework: the
requests are tiny GETs from Prometheus and probes, and this keeps each
daemon on its one event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]


async def _always_ok() -> tuple[bool, str]:
    return True, "ok"


class HttpServer:
    """Serves /metrics and the health endpoints on ``host:port``."""

    def __init__(self, host: str, port: int, *, health: HealthCheck = _always_ok,
                 ready: HealthCheck | None = None):
        self.host, self.port = host, port
        self.health = health
        self.ready = ready or health
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # skip headers
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, ctype, body = await self._route(parts[0] if parts else "", path)
            head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("http request failed")
        finally:
            writer.close()

    async def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        if path in ("/healthz", "/livez", "/readyz"):
            ok, text = await (self.ready() if path == "/readyz" else self.health())
            return ("200 OK" if ok else "503 Service Unavailable"), "text/plain", \
                (text + "\n").encode()
        return "404 Not Found", "text/plain", b"not found\n"
