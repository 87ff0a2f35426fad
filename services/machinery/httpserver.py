"""The HTTP side every daemon serves: Prometheus ``/metrics`` and the
``/healthz``, ``/livez``, ``/readyz`` probes.

A few dozen lines on asyncio streams instead of a web framework: the
requests are tiny GETs from Prometheus and probes, and this keeps each
daemon on its one event loop.

With TLS (an ``ssl.SSLContext``, see :class:`tlsconfig.ServingCert`) the
health endpoints stay open, as Kubernetes leaves them, and everything else
(``/metrics``) is authorized the Kubernetes way: the caller needs an
identity, a client certificate the handshake verified against the cluster
CA (its CN is the user, its O entries the groups) or a bearer token
``token_user`` knows (the API server's token file), else 401; and then the
``authorize(user, groups, path)`` hook must allow ``get`` on the path, else
403 naming the user. The hook is RBAC on a non-resource URL: the API
server asks its own authorizers, the other components ask the API server
(:mod:`services.machinery.delegated`). A hook that cannot decide raises
:class:`CannotAuthorize`, which refuses (fail closed).

Without a hook any verified certificate, or a token ``token_user``
knows, is enough (tests); without TLS everything is open, as before (a plaintext
daemon has no way to tell who asks).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.machinery import peer

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[tuple[bool, str]]]
Identity = tuple[str, tuple[str, ...]]  # (user, groups)
TokenUser = Callable[[str], "Identity | None | Awaitable[Identity | None]"]
Authorize = Callable[[str, tuple[str, ...], str], "bool | Awaitable[bool]"]
OPEN_PATHS = ("/healthz", "/livez", "/readyz")
MAX_HEADERS = 100
UNAUTHORIZED = b"Unauthorized: /metrics needs a client certificate signed by the cluster CA " \
               b"or a bearer token\n"
UNAUTHORIZED_NO_TOKENS = b"Unauthorized: /metrics needs a client certificate signed by the " \
                         b"cluster CA (this component takes no bearer tokens)\n"
NO_COMMON_NAME = b"Unauthorized: the client certificate has no Common Name: it names no user\n"


class CannotAuthorize(Exception):
    """Raised by an ``authorize`` hook that cannot decide (the API server it
    asks does not answer): the request is refused with 403 and this text."""


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _quote(text: str) -> str:
    """A name or path inside a one-line message: quoted, escaped, bounded."""
    quoted = json.dumps(text)
    return quoted if len(quoted) <= 200 else quoted[:197] + '..."'


def forbidden(user: str, path: str) -> bytes:
    """Kubernetes' refusal of a non-resource request, as one line."""
    return f"Forbidden: User {_quote(user)} cannot get path {_quote(path)}\n".encode()


async def _always_ok() -> tuple[bool, str]:
    return True, "ok"


class HttpServer:
    """Serves /metrics and the health endpoints on ``host:port``.

    ``token_user`` maps a bearer token to (user, groups), or None;
    ``authorize(user, groups, path)`` says whether that caller may get the
    path (sync or async; see the module docstring).
    """

    def __init__(self, host: str, port: int, *, health: HealthCheck = _always_ok,
                 ready: HealthCheck | None = None, ssl_context: ssl.SSLContext | None = None,
                 token_user: TokenUser | None = None, authorize: Authorize | None = None):
        self.host, self.port = host, port
        self.health = health
        self.ready = ready or health
        self.ssl_context = ssl_context
        self.token_user = token_user
        self.authorize = authorize
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
            refusal = None if path in OPEN_PATHS else await self._refusal(writer, headers, path)
            if refusal is not None:
                status, body = refusal
                ctype = "text/plain"
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

    async def _refusal(self, writer: asyncio.StreamWriter, headers: dict[str, str],
                       path: str) -> tuple[str, bytes] | None:
        """None when the caller may get ``path``, else (status, one-line body):
        authentication (401), then authorization (403), as Kubernetes does."""
        if self.ssl_context is None:
            return None
        who = await self._identity(writer, headers)
        if who is None:
            return "401 Unauthorized", (UNAUTHORIZED if self.token_user is not None
                                        else UNAUTHORIZED_NO_TOKENS)
        if self.authorize is None:
            return None
        user, groups = who
        if not user:
            return "401 Unauthorized", NO_COMMON_NAME
        try:
            allowed = await _maybe_await(self.authorize(user, groups, path))
        except Exception as err:  # noqa: BLE001 - whatever went wrong, refuse
            if not isinstance(err, CannotAuthorize):
                log.exception("authorizing a request for %s failed", path)
            text = " ".join(str(err).split()) or "internal error"
            return "403 Forbidden", (f"Forbidden: cannot check whether User {_quote(user)} may "
                                     f"get path {_quote(path)}: {text}\n").encode()
        return None if allowed else ("403 Forbidden", forbidden(user, path))

    async def _identity(self, writer: asyncio.StreamWriter,
                        headers: dict[str, str]) -> Identity | None:
        """(user, groups) of the verified client certificate, else of the
        bearer token; None for no credentials."""
        sslobj = writer.get_extra_info("ssl_object")
        der = None
        if sslobj is not None and sslobj.context.verify_mode != ssl.CERT_NONE:
            der = sslobj.getpeercert(binary_form=True)
        if der:  # the handshake verified it against the client CA
            try:
                cert = peer.parse_der_cert(der)
            except ValueError:
                return None
            return cert.common_name, cert.organizations
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if self.token_user is None:
            return None
        found = await _maybe_await(self.token_user(token))
        return (found[0], tuple(found[1])) if found else None

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
