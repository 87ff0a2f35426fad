"""The Authorization service: "would this be allowed?" (Kubernetes'
SubjectAccessReview / SelfSubjectAccessReview) and "who am I?"
(SelfSubjectReview), answered by the very authorizer that decides real
requests, so `kyb auth can-i` can never disagree with them.

A review asks about an API resource or, as Kubernetes' nonResourceAttributes,
about a path such as /metrics: the components ask that one to decide who may
scrape them (delegated authorization, services/machinery/delegated.py)."""

from __future__ import annotations

from typing import Any

import grpc

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz_pb2
from services.apiserver import errors
from services.apiserver.access import AccessControl, Outcome
from services.apiserver.authz.attributes import AUTHENTICATED, Attributes, UserInfo
from services.apiserver.callscope import CallScope, decoder, passthrough

_decode_review = decoder(authz_pb2.SubjectAccessReview)

REVIEW_SERVICE = authz_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
VERBS = frozenset({"get", "list", "watch", "create", "update", "delete"})
# Non-resource requests are authorized by their lowercase HTTP method, as
# kubectl auth can-i knows them.
NON_RESOURCE_VERBS = frozenset({"get", "head", "post", "put", "patch", "delete", "options", "*"})


def _subject(caller: UserInfo, review: Any) -> UserInfo:
    if not review.user and not review.groups:
        return caller
    return UserInfo(review.user, tuple(dict.fromkeys([*review.groups, AUTHENTICATED])), "review")


def _reviewer_may_ask(access: AccessControl, caller: UserInfo, subject: UserInfo,
                      outcome: Outcome) -> None:
    """Asking about someone else needs create on subjectaccessreviews
    (in Kubernetes' authorization.k8s.io group), as kube-apiserver requires."""
    if subject is caller:
        return
    attrs = Attributes(user=caller, verb="create", group="authorization.k8s.io",
                       resource="subjectaccessreviews")
    outcome.attrs, outcome.user = attrs, caller
    decision = access.authorize(attrs)
    if not decision.allowed:
        outcome.decision, outcome.reason = "forbid", decision.reason
        raise errors.forbidden(
            f'User "{caller.name}" cannot ask what other users may do: that needs create on '
            'subjectaccessreviews.authorization.k8s.io')


def _attributes(subject: UserInfo, request: Any) -> Attributes:
    """What is asked about; exactly one of the two kinds of attributes."""
    resource = request.HasField("resource_attributes")
    if resource == request.HasField("non_resource_attributes"):
        raise errors.bad_request(
            "exactly one of resource_attributes and non_resource_attributes must be set")
    if not resource:
        nra = request.non_resource_attributes
        if nra.verb not in NON_RESOURCE_VERBS:
            raise errors.bad_request(
                f"non-resource verb {errors.quote(nra.verb)} is not one of "
                f"{', '.join(sorted(NON_RESOURCE_VERBS))}")
        if not nra.path.startswith("/"):
            raise errors.bad_request(
                f"non_resource_attributes.path {errors.quote(nra.path)} does not start with /")
        return Attributes(user=subject, verb=nra.verb, path=nra.path)
    ra = request.resource_attributes
    if ra.verb not in VERBS and ra.verb != "*":
        raise errors.bad_request(
            f"verb {errors.quote(ra.verb)} is not one of {', '.join(sorted(VERBS))}")
    if not ra.resource:
        raise errors.bad_request("resource_attributes.resource is required")
    return Attributes(user=subject, verb=ra.verb, group=ra.group, resource=ra.resource,
                      subresource=ra.subresource, namespace=ra.namespace, name=ra.name)


def review(access: AccessControl, caller: UserInfo, request: Any,
           outcome: Outcome | None = None) -> Any:
    subject = _subject(caller, request)
    attrs = _attributes(subject, request)
    if not subject.name:
        raise errors.bad_request("user is required when groups are given")
    _reviewer_may_ask(access, caller, subject, outcome or Outcome("Review"))
    decision = access.authorize(attrs)
    return authz_pb2.SubjectAccessReviewStatus(
        allowed=decision.allowed, reason=decision.reason, user=subject.name,
        groups=list(subject.groups))


async def _answer(access: AccessControl, method: str, raw: bytes,
                  context: grpc.aio.ServicerContext) -> Any:
    """One call, counted and audited like every other request."""
    async with CallScope(context, method.lower(), "authorization.k8s.io",
                         "subjectaccessreviews", access, method) as scope:
        caller = scope.authenticate()
        if method == "WhoAmI":
            return authz_pb2.UserInfo(username=caller.name, groups=list(caller.groups),
                                      authenticated_by=caller.authenticated_by)
        return review(access, caller, _decode_review(raw), scope.outcome)


def review_handler(access: AccessControl) -> grpc.GenericRpcHandler:
    def method(name: str, response: Any) -> grpc.RpcMethodHandler:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            return await _answer(access, name, raw, context)
        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=passthrough,
            response_serializer=response.SerializeToString)

    return grpc.method_handlers_generic_handler(REVIEW_SERVICE, {
        "Review": method("Review", authz_pb2.SubjectAccessReviewStatus),
        "WhoAmI": method("WhoAmI", authz_pb2.UserInfo),
    })
