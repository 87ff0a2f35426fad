"""The HTTP side every daemon serves: Prometheus ``/metrics`` and the
``/healthz``, ``/livez``, ``/readyz`` probes.

A few dozen lines on asyncio streams instead of a web framework: the
requests are tiny GETs from Prometheus and probes, and this keeps each
daemon on its one event loop.

With TLS (an ``ssl.SSLContext``, see :class:`tlsconfig.ServingCert`) the
health endpoints stay open, as Kubernetes leaves them, while ``/metrics``
needs a client certificate the handshake verified against the cluster CA,
or a bearer token ``token_ok`` accepts (the API server's token file);
anything else gets 401. Without TLS everything is open, as before (a
plaintext daemon has no way to tell who asks).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]
TokenCheck = Callable[[str], "bool | Awaitable[bool]"]
OPEN_PATHS = ("/healthz", "/livez", "/readyz")
MAX_HEADERS = 100
UNAUTHORIZED = b"Unauthorized: /metrics needs a client certificate signed by the cluster CA " \
               b"or a bearer token\n"


async def _always_ok() -> tuple[bool, str]:
    return True, "ok"


class HttpServer:
    """Serves /metrics and the health endpoints on ``host:port``."""

    def __init__(self, host: str, port: int, *, health: HealthCheck = _always_ok,
                 ready: HealthCheck | None = None, ssl_context: ssl.SSLContext | None = None,
                 token_ok: TokenCheck | None = None):
        self.host, self.port = host, port
        self.health = health
        self.ready = ready or health
        self.ssl_context = ssl_context
        self.token_ok = token_ok
        self._server: asyncio.base_events.Server | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    async def start(self) -> None:
        tls = {"ssl": self.ssl_context, "ssl_handshake_timeout": 10} if self.ssl_context else {}
        self._server = await asyncio.start_server(self._handle, self.host, self.port, **tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            headers = {}
            for _ in range(MAX_HEADERS):
                header = await asyncio.wait_for(reader.readline(), 5)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            method = parts[0] if parts else ""
            if path not in OPEN_PATHS and not await self._allowed(writer, headers):
                status, ctype, body = "401 Unauthorized", "text/plain", UNAUTHORIZED
            else:
                status, ctype, body = await self._route(method, path)
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

    async def _allowed(self, writer: asyncio.StreamWriter, headers: dict[str, str]) -> bool:
        """Whether the caller may see more than the health endpoints."""
        if self.ssl_context is None:
            return True
        if writer.get_extra_info("peercert"):
            return True  # the handshake verified it against the client CA
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if self.token_ok is None or scheme.lower() != "bearer" or not token.strip():
            return False
        ok = self.token_ok(token.strip())
        if inspect.isawaitable(ok):
            ok = await ok
        return bool(ok)

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
