"""gRPC channel and server options, set in one place for both sides.

Keepalive is configured on client and server together (a client pinging more
often than the server permits gets GOAWAY "too_many_pings"). Message sizes
allow a little over the API's 3 MiB object limit so the server, not the
transport, gives the clear RESOURCE_EXHAUSTED error.
"""

from __future__ import annotations

import grpc

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000

CLIENT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Fail fast to the next server rather than waiting out a long reconnect.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
    ("grpc.http2.max_ping_strikes", 0),
]


def insecure_channel(target: str) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` with the project's options."""
    return grpc.aio.insecure_channel(target, options=CLIENT_OPTIONS)


def secure_channel(target: str, credentials: grpc.ChannelCredentials,
                   server_name: str | None = None) -> grpc.aio.Channel:
    """A TLS channel to ``target`` with the project's options.
    ``server_name``: the name to verify in the server's certificate when
    it is not the host dialled (an address the certificate does not list)."""
    options: list[tuple[str, int | str]] = list(CLIENT_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, credentials, options=options)
