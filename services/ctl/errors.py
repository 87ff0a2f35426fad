"""API errors as kubectl words them: ``Error from server (NotFound): ...``."""

from __future__ import annotations

import grpc

from services.machinery import errors

_REASONS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.ABORTED: "Conflict",
    grpc.StatusCode.FAILED_PRECONDITION: "Conflict",
    grpc.StatusCode.INVALID_ARGUMENT: "Invalid",
    grpc.StatusCode.OUT_OF_RANGE: "Expired",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RequestEntityTooLarge",
    grpc.StatusCode.PERMISSION_DENIED: "Forbidden",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthorized",
    grpc.StatusCode.UNIMPLEMENTED: "MethodNotAllowed",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Timeout",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
}


def reason(err: errors.ApiError) -> str:
    """Kubernetes' StatusReason for an API error."""
    return _REASONS.get(err.code, "InternalError")


def from_server(err: errors.ApiError, doing: str = "") -> str:
    """``Error from server (Reason): [doing: ]message``, one line."""
    message = " ".join(str(err).split()) or err.code.name
    prefix = f"{doing}: " if doing else ""
    return f"Error from server ({reason(err)}): {prefix}{message}"
