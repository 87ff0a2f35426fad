"""API errors as Python exceptions, one per gRPC status the API uses.

Callers branch on the class (``except Conflict: re-read and retry``) rather
than on raw status codes; ``str(err)`` is the server's one-line message.
"""

from __future__ import annotations

import grpc


class ApiError(Exception):
    """An error status returned by the API server."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    """Stale resourceVersion: re-read the object and retry the change."""

    code = grpc.StatusCode.ABORTED


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class PreconditionFailed(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Expired(ApiError):
    """The resourceVersion is older than the server keeps: relist."""

    code = grpc.StatusCode.OUT_OF_RANGE


class TooLarge(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class Forbidden(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ApiError):
    """No credentials, or ones the server does not accept."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls
    for cls in (NotFound, AlreadyExists, Conflict, Invalid, PreconditionFailed, Expired,
                TooLarge, Unavailable, Forbidden, Unauthenticated)
}
_BY_CODE[grpc.StatusCode.DEADLINE_EXCEEDED] = Unavailable


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """Translate a gRPC error into the matching :class:`ApiError`."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, ApiError)
    return cls(details or code.name, code)
