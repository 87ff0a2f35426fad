"""The typed API client every component uses.

Hides the generated stubs behind one small surface: ``client.resource("pods")``
gives create/get/list/update/update_status/delete/watch/bind for that kind.
Every unary call carries a deadline; UNAVAILABLE (server down, connection
refused) is retried with exponential backoff, moving round the configured
servers, so a restarted or failed-over API server is transparent to callers.
Other errors are raised as :mod:`services.machinery.errors` classes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from services.api import kinds
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.machinery import channel as channels
from services.machinery import config as _config
from services.machinery import tlsconfig
from services.machinery.errors import ApiError, Unavailable, from_rpc_error

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


def _retry_after(err: grpc.aio.AioRpcError) -> float | None:
    """Seconds the server asked us to wait before retrying (its
    ``retry-after`` trailer on a throttled RESOURCE_EXHAUSTED), else None."""
    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in err.trailing_metadata() or ():
        if key == "retry-after":
            try:
                return max(0.0, min(float(value), 30.0))
            except (TypeError, ValueError):
                return None
    return None


class Client:
    """A connection to one or more API server replicas.

    ``servers``: "host:port" strings, or one comma-separated string.
    ``config``: servers and credentials (:func:`config.load`); a config
    with a CA gives TLS channels, with its client certificate and/or bearer
    token. Neither given: ``config.load()``, as every component resolves
    it. Explicit ``servers`` without a config: plaintext (tests, and an
    ``--insecure-plaintext`` API server); with one: those servers, the
    config's credentials.
    ``timeout``: the deadline of each unary call, in seconds.
    ``retry_for``: how long UNAVAILABLE is retried before it is raised.
    """

    def __init__(self, servers: Sequence[str] | str | None = None, *,
                 config: _config.ClientConfig | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retry_for: float = 30.0,
                 connect_timeout: float = 2.0):
        if servers is None and config is None:
            config = _config.load()
        if servers is None:
            assert config is not None
            servers = config.servers
        elif isinstance(servers, str):
            servers = _config.resolve_servers(servers)
        if not servers:
            raise ValueError("no API server address given")
        self.servers = list(servers)
        self.config = config
        self._credentials = config.credentials() if config is not None and config.secure \
            else None
        self.timeout = timeout
        self.retry_for = retry_for
        self.connect_timeout = connect_timeout
        self._current = 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._resources: dict[str, ResourceClient] = {}

    @classmethod
    def from_config(cls, cfg: _config.ClientConfig, **kwargs: Any) -> Client:
        """A client for ``cfg``'s servers with its credentials."""
        return cls(config=cfg, **kwargs)

    @property
    def secure(self) -> bool:
        return self._credentials is not None

    # -- plumbing --------------------------------------------------------------

    def channel(self) -> grpc.aio.Channel:
        """The channel to the server currently in use."""
        target = self.servers[self._current]
        chan = self._channels.get(target)
        if chan is None:
            if self._credentials is not None:
                assert self.config is not None
                chan = channels.secure_channel(target, self._credentials,
                                               self.config.tls_server_name)
            else:
                chan = channels.insecure_channel(target)
            self._channels[target] = chan
        return chan

    def _fail_over(self) -> None:
        self._current = (self._current + 1) % len(self.servers)

    async def ready_channel(self) -> grpc.aio.Channel:
        """The current server's channel, once connected. With several
        servers, one that does not connect within ``connect_timeout`` (a
        stopped machine answers nothing, so a call would wait out its whole
        deadline) is skipped for the next; with one, the call itself waits."""
        if len(self.servers) == 1:
            return self.channel()
        for _ in range(len(self.servers)):
            chan = self.channel()
            if chan.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
                return chan
            try:
                await asyncio.wait_for(chan.channel_ready(), self.connect_timeout)
                return chan
            except asyncio.TimeoutError:
                log.debug("API server %s not reachable; trying the next",
                          self.servers[self._current])
                self._fail_over()
        return self.channel()

    async def call(self, kind: kinds.Kind, method: str, request: Message,
                   timeout: float | None = None) -> Any:
        """One unary call with deadline, retry on UNAVAILABLE and failover."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_for
        delay = 0.1
        untried = len(self.servers) - 1  # every server gets one try, whatever the budget
        while True:
            stub = kind.stub(await self.ready_channel())
            try:
                return await getattr(stub, method)(request, timeout=timeout or self.timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() in _RETRYABLE and untried > 0:
                    untried -= 1
                    self._fail_over()
                    continue
                reason = tlsconfig.tls_failure(err.details() or "")
                if reason and err.code() in _RETRYABLE:
                    raise Unavailable(f"cannot connect securely to the API server "
                                      f"{self.servers[self._current]}: {reason}") from None
                wait = _retry_after(err)
                if wait is not None and loop.time() + wait <= give_up:
                    # Throttled (client-go retries a 429 after its Retry-After too).
                    log.debug("%s.%s throttled; retrying in %.1fs", kind.kind, method, wait)
                    await asyncio.sleep(wait * (0.5 + random.random()))
                    continue
                if err.code() not in _RETRYABLE or loop.time() + delay > give_up:
                    raise from_rpc_error(err) from None
                log.debug("%s.%s: %s; retrying in %.1fs", kind.kind, method, err.details(), delay)
                self._fail_over()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    def resource(self, kind: str | kinds.Kind) -> ResourceClient:
        """The typed verbs for one kind (any kubectl name: "pods", "po", "Pod")."""
        info = kind if isinstance(kind, kinds.Kind) else kinds.lookup(kind)
        found = self._resources.get(info.kind)
        if found is None:
            found = self._resources[info.kind] = ResourceClient(self, info)
        return found

    async def close(self) -> None:
        channels_ = list(self._channels.values())
        self._channels.clear()
        await asyncio.gather(*(c.close() for c in channels_), return_exceptions=True)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ResourceClient:
    """Create, read, update, delete and watch objects of one kind."""

    def __init__(self, client: Client, kind: kinds.Kind):
        self.client = client
        self.kind = kind

    async def create(self, obj: Any) -> Any:
        return await self.client.call(self.kind, "Create", obj)

    async def get(self, name: str, namespace: str = "") -> Any:
        return await self.client.call(self.kind, "Get",
                                      meta_pb2.GetRequest(namespace=namespace, name=name))

    async def list(self, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "",
                   resource_version: str = "") -> Any:
        """One page; ``result.metadata.continue_token`` is set if more remain."""
        request = meta_pb2.ListRequest(
            namespace=namespace, label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_token=continue_token, resource_version=resource_version)
        return await self.client.call(self.kind, "List", request)

    async def list_all(self, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> Any:
        """Every matching object, following continue tokens; the result's
        resourceVersion is the first page's (the snapshot all pages share)."""
        first = await self.list(namespace, label_selector=label_selector,
                                field_selector=field_selector, limit=page_size)
        token = first.metadata.continue_token
        while token:
            page = await self.list(namespace, label_selector=label_selector,
                                   field_selector=field_selector, limit=page_size,
                                   continue_token=token)
            first.items.extend(page.items)
            token = page.metadata.continue_token
        first.metadata.continue_token = ""
        return first

    async def update(self, obj: Any) -> Any:
        return await self.client.call(self.kind, "Update", obj)

    async def update_status(self, obj: Any) -> Any:
        return await self.client.call(self.kind, "UpdateStatus", obj)

    async def delete(self, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str | None = None,
                     resource_version: str | None = None, propagation_policy: str = "") -> Any:
        request = meta_pb2.DeleteRequest(namespace=namespace, name=name,
                                         propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        if uid is not None:
            request.preconditions.uid = uid
        if resource_version is not None:
            request.preconditions.resource_version = resource_version
        return await self.client.call(self.kind, "Delete", request)

    async def bind(self, binding: Any) -> Any:
        return await self.client.call(self.kind, "Bind", binding)

    async def logs(self, name: str, namespace: str = "", *, container: str = "",
                   follow: bool = False, tail_lines: int | None = None, previous: bool = False,
                   timestamps: bool = False, since_seconds: int | None = None
                   ) -> AsyncIterator[bytes]:
        """A pod's container log, chunk by chunk (pods only)."""
        from services.api.gen.kybernetes.core.v1 import types_pb2 as core
        request = core.PodLogsRequest(namespace=namespace, name=name, container=container,
                                      follow=follow, previous=previous, timestamps=timestamps)
        if tail_lines is not None:
            request.tail_lines = tail_lines
        if since_seconds is not None:
            request.since_seconds = since_seconds
        async for chunk in self._stream("Logs", request,
                                        None if follow else self.client.timeout * 6):
            yield chunk.data

    async def exec(self, name: str, namespace: str = "", command: Sequence[str] = (), *,
                   container: str = "", stdin: bytes = b"", timeout_seconds: int = 60
                   ) -> tuple[int, bytes, bytes]:
        """Run a command in a pod's container: (exit code, stdout, stderr)."""
        from services.api.gen.kybernetes.core.v1 import types_pb2 as core
        request = core.ExecRequest(namespace=namespace, name=name, container=container,
                                   command=list(command), stdin=stdin,
                                   timeout_seconds=timeout_seconds)
        out, err, code = [], [], -1
        async for chunk in self._stream("Exec", request, timeout_seconds + self.client.timeout):
            out.append(chunk.stdout)
            err.append(chunk.stderr)
            if chunk.HasField("exit_code"):
                code = chunk.exit_code
        return code, b"".join(out), b"".join(err)

    async def _stream(self, method: str, request: Message,
                      timeout: float | None) -> AsyncIterator[Any]:
        stub = self.kind.stub(await self.client.ready_channel())
        call = getattr(stub, method)(request, timeout=timeout)
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as err:
            if err.code() in _RETRYABLE:
                self.client._fail_over()
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    async def watch(self, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    allow_bookmarks: bool = True,
                    timeout_seconds: int = 0) -> AsyncIterator[Any]:
        """Yield watch events until the stream ends or fails.

        Failures are raised as :class:`ApiError` (``Expired`` means relist);
        resuming is the caller's job — informers do it.
        """
        request = meta_pb2.WatchRequest(
            namespace=namespace, label_selector=label_selector, field_selector=field_selector,
            resource_version=resource_version, allow_bookmarks=allow_bookmarks,
            timeout_seconds=timeout_seconds)
        stub = self.kind.stub(await self.client.ready_channel())
        # A watch has no fixed deadline of its own: keepalive detects a dead
        # peer; timeout_seconds bounds it when the caller asks. The batched
        # form carries several events per message when they queue up.
        deadline = timeout_seconds + self.client.timeout if timeout_seconds else None
        call = stub.WatchBatched(request, timeout=deadline)
        try:
            async for batch in call:
                for event in batch.events:
                    yield event
        except grpc.aio.AioRpcError as err:
            if err.code() in _RETRYABLE:
                self.client._fail_over()
            if err.code() == grpc.StatusCode.CANCELLED and call.cancelled():
                return
            raise from_rpc_error(err) from None
        finally:
            call.cancel()


__all__ = ["Client", "ResourceClient", "ApiError", "Unavailable", "DEFAULT_TIMEOUT"]
