"""Delegated authorization: a component other than the API server decides
who may read its /metrics by asking the API server, as Kubernetes'
components do (k8s.io/apiserver's delegating authorizer): a
SubjectAccessReview of ``get`` on the path for the caller's user and
groups, answered by the cluster's RBAC (the ``system:monitoring`` and
``cluster-admin`` roles allow it), so one policy governs every component.

Answers are cached, allowed ones for 5 minutes and denials for 30 seconds
(Kubernetes' --authorization-webhook-cache-authorized-ttl and
-unauthorized-ttl defaults), so a scrape every few seconds costs one review
every few minutes. When the API server cannot answer, the request is
refused (fail closed) and nothing is cached.

Asking needs create on subjectaccessreviews.authorization.k8s.io: the
component roles carry it (authz/bootstrap.py), nodes get it from the Node
authorizer.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz
from services.api.gen.kybernetes.authorization.v1.authorization_pb2_grpc import AuthorizationStub
from services.machinery.httpserver import CannotAuthorize

log = logging.getLogger(__name__)

ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
MAX_ENTRIES = 1024
VERB = "get"

Key = tuple[str, frozenset[str], str]
Review = Callable[[authz.SubjectAccessReview], Awaitable[authz.SubjectAccessReviewStatus]]


class DecisionCache:
    """Answers by (user, groups, path), each kept for its TTL; at most
    ``max_entries``, the oldest dropped first, so callers naming endless
    paths cannot grow it. Pure: the caller gives the time."""

    def __init__(self, allowed_ttl: float = ALLOWED_TTL, denied_ttl: float = DENIED_TTL,
                 max_entries: int = MAX_ENTRIES):
        self.allowed_ttl, self.denied_ttl = allowed_ttl, denied_ttl
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[Key, tuple[float, bool]] = \
            collections.OrderedDict()

    @staticmethod
    def key(user: str, groups: Iterable[str], path: str) -> Key:
        return user, frozenset(groups), path

    def get(self, key: Key, now: float) -> bool | None:
        """The cached answer, or None when there is none or it has expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, allowed = entry
        if now >= expires:
            del self._entries[key]
            return None
        return allowed

    def put(self, key: Key, allowed: bool, now: float) -> None:
        ttl = self.allowed_ttl if allowed else self.denied_ttl
        self._entries.pop(key, None)
        self._entries[key] = (now + ttl, allowed)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def review_request(user: str, groups: Iterable[str], path: str) -> authz.SubjectAccessReview:
    """May ``user`` in ``groups`` get ``path``?"""
    return authz.SubjectAccessReview(
        user=user, groups=list(groups),
        non_resource_attributes=authz.NonResourceAttributes(path=path, verb=VERB))


def _client_review(client: Any, timeout: float) -> Review:
    """Authorization.Review over ``client``'s channel (its credentials are
    the component's own), with a deadline."""
    async def review(request: authz.SubjectAccessReview) -> authz.SubjectAccessReviewStatus:
        stub = AuthorizationStub(await client.ready_channel())
        return await stub.Review(request, timeout=timeout)
    return review


def _why(err: grpc.aio.AioRpcError) -> str:
    details = " ".join((err.details() or "").split())
    if err.code() == grpc.StatusCode.PERMISSION_DENIED:
        return f"the API server refused the review ({details})"
    return f"the API server did not answer ({err.code().name}: {details})"


class DelegatedAuthorizer:
    """The ``authorize(user, groups, path)`` hook of a component's
    :class:`~services.machinery.httpserver.HttpServer`.

    ``client``: the component's :class:`~services.machinery.Client`;
    ``review``: instead of it, any async SubjectAccessReview → status (tests).
    Raises :class:`CannotAuthorize` when the API server cannot answer.
    """

    def __init__(self, client: Any = None, *, review: Review | None = None,
                 timeout: float = 5.0, cache: DecisionCache | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if review is None:
            if client is None:
                raise ValueError("DelegatedAuthorizer needs a client or a review function")
            review = _client_review(client, timeout)
        self.review = review
        self.timeout = timeout
        self.cache = cache or DecisionCache()
        self.clock = clock

    async def __call__(self, user: str, groups: tuple[str, ...], path: str) -> bool:
        key = DecisionCache.key(user, groups, path)
        cached = self.cache.get(key, self.clock())
        if cached is not None:
            return cached
        try:
            status = await asyncio.wait_for(self.review(review_request(user, groups, path)),
                                            self.timeout)
        except grpc.aio.AioRpcError as err:
            why = _why(err)
        except (asyncio.TimeoutError, OSError) as err:
            why = f"the API server did not answer ({type(err).__name__})"
        else:
            self.cache.put(key, status.allowed, self.clock())
            return status.allowed
        log.warning("cannot authorize a request for %s: %s", path, why,
                    extra={"user": user})
        raise CannotAuthorize(why)


def for_serving(tls: Any, client: Any) -> DelegatedAuthorizer | None:
    """The hook for a component's HttpServer: delegated authorization when
    it serves TLS (``tls``: its ServingCert, or None), none in plaintext
    (where it cannot tell who asks, and everything is open)."""
    return DelegatedAuthorizer(client) if tls is not None else None


__all__ = ["ALLOWED_TTL", "DENIED_TTL", "DecisionCache", "DelegatedAuthorizer",
           "for_serving", "review_request"]
