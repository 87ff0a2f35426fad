"""Authorization.Review, pure: what is asked (a resource, or a path as
Kubernetes' nonResourceAttributes — exactly one), about whom (oneself, or
another user, which needs create on subjectaccessreviews), and the answer
of the same authorizer that decides real requests (here a small stand-in
that records what it was asked)."""

from __future__ import annotations

import grpc
import pytest

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz
from services.apiserver import errors
from services.apiserver.access import AccessControl
from services.apiserver.authn import Authenticator
from services.apiserver.authz.attributes import Attributes, Decision, UserInfo
from services.apiserver.review import review

DAEMON = UserInfo("system:kube-scheduler", ("system:authenticated",), "x509")
ALICE = UserInfo("alice", ("system:authenticated",), "x509")


class Policy:
    """system:monitoring may get /metrics; the scheduler may create
    subjectaccessreviews; alice may list pods."""

    def __init__(self) -> None:
        self.asked: list[Attributes] = []

    def __call__(self, attrs: Attributes) -> Decision:
        self.asked.append(attrs)
        if attrs.path:
            ok = (attrs.verb, attrs.path) == ("get", "/metrics") and \
                "system:monitoring" in attrs.user.groups
        elif attrs.resource == "subjectaccessreviews":
            ok = attrs.user.name == DAEMON.name and attrs.verb == "create" and \
                attrs.group == "authorization.k8s.io"
        else:
            ok = attrs.user.name == "alice" and (attrs.verb, attrs.resource) == ("list", "pods")
        return Decision(ok, "yes" if ok else "no")


@pytest.fixture
def policy() -> Policy:
    return Policy()


@pytest.fixture
def access(policy) -> AccessControl:
    return AccessControl(Authenticator(), authorize=policy)


def _path(path: str, verb: str = "get", user: str = "", groups=()) -> authz.SubjectAccessReview:
    return authz.SubjectAccessReview(
        user=user, groups=list(groups),
        non_resource_attributes=authz.NonResourceAttributes(path=path, verb=verb))


def test_review_of_a_path_asks_the_authorizer_about_the_path(access, policy):
    status = review(access, DAEMON, _path("/metrics", user="system:prometheus",
                                          groups=["system:monitoring"]))
    assert status.allowed and status.user == "system:prometheus"
    assert list(status.groups) == ["system:monitoring", "system:authenticated"]
    asked = policy.asked[-1]
    assert (asked.verb, asked.path, asked.resource, asked.user.name) == (
        "get", "/metrics", "", "system:prometheus")
    node = review(access, DAEMON, _path("/metrics", user="system:node:n1",
                                        groups=["system:nodes"]))
    assert not node.allowed


def test_review_of_a_path_for_another_user_needs_create_subjectaccessreviews(access):
    with pytest.raises(errors.ApiStatus) as err:
        review(access, ALICE, _path("/metrics", user="system:prometheus",
                                    groups=["system:monitoring"]))
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "subjectaccessreviews" in err.value.message
    assert not review(access, ALICE, _path("/metrics")).allowed  # about oneself: anyone


def test_review_of_a_resource_is_unchanged(access):
    status = review(access, ALICE, authz.SubjectAccessReview(
        resource_attributes=authz.ResourceAttributes(verb="list", resource="pods",
                                                     namespace="d")))
    assert status.allowed and status.user == "alice"


@pytest.mark.parametrize("request_, message", [
    (authz.SubjectAccessReview(), "exactly one of"),
    (authz.SubjectAccessReview(
        resource_attributes=authz.ResourceAttributes(verb="get", resource="pods"),
        non_resource_attributes=authz.NonResourceAttributes(path="/metrics", verb="get")),
     "exactly one of"),
    (_path("metrics"), "does not start with /"),
    (_path("", ), "does not start with /"),
    (_path("/metrics", verb="list"), 'non-resource verb "list" is not one of'),
    (_path("/metrics", verb=""), "non-resource verb"),
    (_path("/metrics", groups=["g"]), "user is required"),
])
def test_review_refuses_malformed_questions(access, request_, message):
    with pytest.raises(errors.ApiStatus) as err:
        review(access, DAEMON, request_)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.message
