"""Errors the API server returns, as gRPC status codes with one-line messages."""

from __future__ import annotations

import json

import grpc

_MAX_MESSAGE = 1024


def quote(value: str) -> str:
    """A user-supplied string inside a message: quoted, control characters
    escaped (like Go's %q), so a message stays one readable line."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + '..."'


def one_line(message: str) -> str:
    """The last guard: whatever a message holds, it leaves as one bounded line."""
    flat = message.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


class ApiStatus(Exception):
    """Raised anywhere in request handling; the server turns it into the
    call's status. ``message`` is what the user sees: one line."""

    def __init__(self, code: grpc.StatusCode, message: str):
        message = one_line(message)
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(resource: str, name: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.NOT_FOUND, f'{resource} {quote(name)} not found')


def already_exists(resource: str, name: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.ALREADY_EXISTS, f'{resource} {quote(name)} already exists')


def conflict(resource: str, name: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.ABORTED,
                     f'Operation cannot be fulfilled on {resource} {quote(name)}: the object has been '
                     "modified; please apply your changes to the latest version and try again")


def invalid(kind: str, name: str, errors: list) -> ApiStatus:
    details = "; ".join(str(e) for e in errors)
    return ApiStatus(grpc.StatusCode.INVALID_ARGUMENT, f'{kind} {quote(name)} is invalid: {details}')


def bad_request(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.INVALID_ARGUMENT, message)


def precondition(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.FAILED_PRECONDITION, message)


def expired(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.OUT_OF_RANGE, message)


def too_large(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.UNAVAILABLE, message)


def unauthenticated(message: str) -> ApiStatus:
    return ApiStatus(grpc.StatusCode.UNAUTHENTICATED, message)


def forbidden(message: str) -> ApiStatus:
    """Kubernetes' 403: authenticated, but not allowed (authorization or admission)."""
    return ApiStatus(grpc.StatusCode.PERMISSION_DENIED, message)


def throttled(message: str) -> ApiStatus:
    """Kubernetes' 429 Too Many Requests."""
    return ApiStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
