"""The client moves on to the next API server when one does not answer at
all (a stopped machine: no connection refused, nothing), within one call."""

from __future__ import annotations

import asyncio
import socket

from services.machinery import Client


def _blackhole() -> tuple[socket.socket, str]:
    """A listening socket that never accepts: connections hang (backlog 0)
    — as close as one process gets to an address that answers nothing."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


async def test_client_skips_a_server_that_does_not_connect(apiserver):
    sock, dead = _blackhole()
    try:
        async with Client([dead, apiserver.address], timeout=10, retry_for=1,
                          connect_timeout=1) as client:
            # Waiting out the deadline on the silent server would raise
            # DEADLINE_EXCEEDED, which is not retried: success means it moved on.
            got = await client.resource("ns").get("default")
            assert got.metadata.name == "default"
            events = client.resource("ns").watch(resource_version="")
            first = await asyncio.wait_for(events.__anext__(), 10)
            assert first.type == "ADDED"
            await events.aclose()
    finally:
        sock.close()


async def test_client_tries_every_server_once_even_with_no_retry_budget(apiserver):
    async with Client(["127.0.0.1:1", apiserver.address], retry_for=0) as client:
        got = await client.resource("ns").get("default")
        assert got.metadata.name == "default"
