"""What every API server RPC goes through, whatever it serves: decoding
the request bytes (so corrupt bytes are INVALID_ARGUMENT, not UNKNOWN),
and a scope that turns whatever the handler raises into one gRPC status,
counts it and hands the outcome to the audit log. Shared by the kinds'
services (server.py) and the Authorization service (review.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from services.apiserver import errors, metrics
from services.apiserver.access import AccessControl, Outcome
from services.apiserver.authz.attributes import UserInfo
from services.apiserver.storage import StorageError
from services.apiserver.watchcache import TooOld, WatcherClosed

log = logging.getLogger(__name__)


def passthrough(data: bytes) -> bytes:
    return data


def decoder(message_type: Any) -> Callable[[bytes], Any]:
    """Decode a request in the handler rather than in grpc's deserializer,
    so that corrupt bytes get INVALID_ARGUMENT instead of UNKNOWN.

    Fields the schema does not know (a newer client's, a known number sent
    with the wrong wire type, or bytes smuggled past validation) are
    dropped, as kube-apiserver drops unknown fields, rather than stored and
    served back to every reader — where a later schema could give them a
    meaning no validation ever checked."""
    def decode(data: bytes) -> Any:
        try:
            message = message_type.FromString(data)
        except DecodeError as err:
            raise errors.bad_request(
                f"request is not a valid {message_type.DESCRIPTOR.full_name}: {err}") from None
        message.DiscardUnknownFields()
        return message
    return decode


def serialize(msg: Any) -> bytes:
    return msg.SerializeToString()


def status_for(err: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status a request error maps to; None for a bug (INTERNAL)."""
    if isinstance(err, errors.ApiStatus):
        return err.code, err.message
    if isinstance(err, StorageError):
        return grpc.StatusCode.UNAVAILABLE, errors.one_line(f"storage unavailable: {err}")
    if isinstance(err, WatcherClosed):
        return grpc.StatusCode.UNAVAILABLE, str(err)
    if isinstance(err, TooOld):
        return grpc.StatusCode.OUT_OF_RANGE, str(err)
    return None


class CallScope:
    """Wraps one RPC: turns whatever it raises into its gRPC status (one
    line; a bug becomes INTERNAL and is logged), counts it in
    apiserver_request_total (and, when ``timed``, the duration histogram),
    and hands its outcome to the audit log."""

    def __init__(self, context: grpc.aio.ServicerContext, verb: str, group: str, resource: str,
                 access: AccessControl, method: str, timed: bool = False):
        self.context, self.verb, self.resource, self.timed = context, verb, resource, timed
        self.access = access
        self.outcome = Outcome(method, group, resource)

    async def __aenter__(self) -> CallScope:
        self.started = time.perf_counter()
        return self

    async def __aexit__(self, exc_type: Any, err: BaseException | None, tb: Any) -> bool:
        code = grpc.StatusCode.OK
        try:
            if err is None:
                return False
            if isinstance(err, (asyncio.CancelledError, GeneratorExit)):
                code = grpc.StatusCode.CANCELLED
                return False
            if self.context.code() is not None:  # abort() already ran and raised
                code = self.context.code()
                return False
            mapped = status_for(err)
            if mapped is None:
                log.error("%s %s failed", self.verb, self.resource, exc_info=err)
                mapped = (grpc.StatusCode.INTERNAL,
                          f"internal error in {self.verb} {self.resource}")
            code = mapped[0]
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED and self.outcome.decision == "throttled":
                self.context.set_trailing_metadata((("retry-after", "1"),))
            await self.context.abort(*mapped)
            return False
        finally:
            metrics.REQUESTS.labels(self.verb, self.resource, code.name).inc()
            if self.timed:
                metrics.REQUEST_DURATION.labels(self.verb, self.resource).observe(
                    time.perf_counter() - self.started)
            self.access.finish(self.outcome, code.name)

    def authenticate(self) -> UserInfo:
        return self.access.authenticate(self.context, self.outcome)
