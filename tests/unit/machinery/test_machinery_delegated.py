"""Delegated authorization: the review a component sends the API server,
the cache of its answers (allowed 5 minutes, denied 30 seconds, bounded),
and failing closed when the API server does not answer. The API server is
a fake review function; the clock is a number the test moves."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz
from services.machinery import delegated
from services.machinery.delegated import DecisionCache, DelegatedAuthorizer
from services.machinery.httpserver import CannotAuthorize

PROMETHEUS = ("system:prometheus", ("system:monitoring",))
NODE = ("system:node:n1", ("system:nodes",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeApiServer:
    """Allows group system:monitoring to get /metrics; ``error`` makes every
    review fail with that exception; ``hang`` never answers."""

    def __init__(self) -> None:
        self.reviews: list[authz.SubjectAccessReview] = []
        self.error: Exception | None = None
        self.hang = False

    async def __call__(self, request: authz.SubjectAccessReview
                       ) -> authz.SubjectAccessReviewStatus:
        self.reviews.append(request)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        nra = request.non_resource_attributes
        allowed = (nra.verb, nra.path) == ("get", "/metrics") and \
            "system:monitoring" in request.groups
        return authz.SubjectAccessReviewStatus(allowed=allowed, user=request.user)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.fixture
def api() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authorize(api, clock) -> DelegatedAuthorizer:
    return DelegatedAuthorizer(review=api, clock=clock, timeout=1.0)


# --- pure ---------------------------------------------------------------------------------------


def test_delegated_review_asks_get_on_the_path_for_the_user_and_groups():
    review = delegated.review_request("system:prometheus", ("system:monitoring",), "/metrics")
    assert review == authz.SubjectAccessReview(
        user="system:prometheus", groups=["system:monitoring"],
        non_resource_attributes=authz.NonResourceAttributes(path="/metrics", verb="get"))
    assert not review.HasField("resource_attributes")


def test_delegated_cache_keeps_allowed_answers_longer_than_denials():
    cache = DecisionCache()
    yes, no = DecisionCache.key("a", ("g",), "/metrics"), DecisionCache.key("b", (), "/metrics")
    cache.put(yes, True, 0.0)
    cache.put(no, False, 0.0)
    assert (cache.get(yes, 29.9), cache.get(no, 29.9)) == (True, False)
    assert (cache.get(yes, 299.9), cache.get(no, 30.0)) == (True, None)
    assert cache.get(yes, 300.0) is None
    assert len(cache) == 0


def test_delegated_cache_key_ignores_group_order_but_not_groups():
    assert DecisionCache.key("a", ("x", "y"), "/m") == DecisionCache.key("a", ("y", "x"), "/m")
    assert DecisionCache.key("a", ("x",), "/m") != DecisionCache.key("a", (), "/m")
    assert DecisionCache.key("a", (), "/m") != DecisionCache.key("a", (), "/n")


def test_delegated_cache_is_bounded_oldest_first():
    cache = DecisionCache(max_entries=3)
    keys = [DecisionCache.key("u", (), f"/p{i}") for i in range(5)]
    for key in keys:
        cache.put(key, True, 0.0)
    assert len(cache) == 3
    assert [cache.get(k, 1.0) for k in keys] == [None, None, True, True, True]


# --- the hook -----------------------------------------------------------------------------------


async def test_delegated_asks_once_then_answers_from_the_cache(api, clock, authorize):
    assert await authorize(*PROMETHEUS, "/metrics") is True
    assert await authorize(*NODE, "/metrics") is False
    assert len(api.reviews) == 2
    assert api.reviews[0].user == "system:prometheus"
    assert list(api.reviews[0].groups) == ["system:monitoring"]
    clock.now += 29
    assert await authorize(*PROMETHEUS, "/metrics") is True
    assert await authorize(*NODE, "/metrics") is False
    assert len(api.reviews) == 2
    clock.now += 2  # the denial has expired, the allowed answer has not
    assert await authorize(*NODE, "/metrics") is False
    assert await authorize(*PROMETHEUS, "/metrics") is True
    assert [r.user for r in api.reviews[2:]] == ["system:node:n1"]
    clock.now += 300
    assert await authorize(*PROMETHEUS, "/metrics") is True
    assert len(api.reviews) == 4


async def test_delegated_fails_closed_and_caches_no_failure(api, authorize):
    api.error = _rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    with pytest.raises(CannotAuthorize, match=r"did not answer \(UNAVAILABLE: connection"):
        await authorize(*PROMETHEUS, "/metrics")
    api.error = _rpc_error(grpc.StatusCode.PERMISSION_DENIED,
                           "cannot ask what other users may do")
    with pytest.raises(CannotAuthorize, match="refused the review"):
        await authorize(*PROMETHEUS, "/metrics")
    api.error = None
    assert await authorize(*PROMETHEUS, "/metrics") is True
    assert len(api.reviews) == 3


async def test_delegated_gives_up_at_its_deadline(api, authorize):
    authorize.timeout = 0.05
    api.hang = True
    with pytest.raises(CannotAuthorize, match="did not answer"):
        await authorize(*PROMETHEUS, "/metrics")


def test_delegated_for_serving_only_with_tls():
    assert delegated.for_serving(None, object()) is None
    assert isinstance(delegated.for_serving(object(), object()), DelegatedAuthorizer)
