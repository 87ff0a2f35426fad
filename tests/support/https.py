"""A minimal HTTP(S) GET on asyncio streams, for probing the daemons'
metrics servers with or without a client certificate."""

from __future__ import annotations

import asyncio
import ssl


async def https_get(port: int, path: str, ctx: ssl.SSLContext | None,
                    headers: dict[str, str] | None = None, host: str = "127.0.0.1",
                    server_hostname: str | None = None) -> tuple[int, bytes]:
    """(status, body) of ``GET path``; plain HTTP when ``ctx`` is None.
    Status 0 when the server closed the connection without answering (a
    refused handshake, or plaintext sent to a TLS port). The server's
    certificate must name ``server_hostname`` (default: ``host``)."""
    server_hostname = server_hostname or host
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_hostname if ctx else None), 10)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {server_hostname}\r\n{extra}\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    except (ssl.SSLError, ConnectionError):
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return (int(head.split()[1]), body) if head else (0, b"")
