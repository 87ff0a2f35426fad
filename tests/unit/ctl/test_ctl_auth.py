"""``kyb auth can-i`` and ``kyb auth whoami``: the question asked, the
answer printed, the exit status.

The CLI is the unit here, so the API server's Authorization service is a
small fake serving canned answers on a real grpc.aio server in the test's
event loop, where ``kyb`` runs too (:func:`main.main_async`); it records
every review it was sent.
"""

from __future__ import annotations

import json

import grpc
import pytest
import yaml

from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2_grpc as authz_grpc
from services.ctl import auth
from services.ctl import main as ctl
from services.ctl.context import CommandError


# --- pure: the question -------------------------------------------------------------------------


def _attrs(question: auth.Question) -> tuple:
    a = question.review.resource_attributes
    return a.verb, a.group, a.resource, a.subresource, a.name, a.namespace


@pytest.mark.parametrize(("args", "expected"), [
    (("get", "pods"), ("get", "", "pods", "", "", "default")),
    (("list", "po"), ("list", "", "pods", "", "", "default")),
    (("create", "Pod"), ("create", "", "pods", "", "", "default")),
    (("update", "deployments.apps"), ("update", "apps", "deployments", "", "", "default")),
    (("watch", "deploy"), ("watch", "apps", "deployments", "", "", "default")),
    (("get", "pods/log"), ("get", "", "pods", "log", "", "default")),
    (("update", "pods/status", "web"), ("update", "", "pods", "status", "web", "default")),
    (("get", "pods/web"), ("get", "", "pods", "", "web", "default")),
    (("delete", "pods", "web"), ("delete", "", "pods", "", "web", "default")),
    (("get", "nodes"), ("get", "", "nodes", "", "", "")),
    (("update", "leases"), ("update", "coordination.k8s.io", "leases", "", "", "default")),
    (("create", "clusterrolebindings"),
     ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "")),
    (("list", "roles.rbac.authorization.k8s.io"),
     ("list", "rbac.authorization.k8s.io", "roles", "", "", "default")),
    (("*", "*"), ("*", "", "*", "", "", "default")),
])
def test_auth_review_request_reads_kubectl_resource_forms(args, expected):
    question = auth.review_request(*args)
    assert _attrs(question) == expected
    assert question.warnings == ()


def test_auth_review_request_namespace_and_all_namespaces():
    assert _attrs(auth.review_request("get", "pods", namespace="team"))[5] == "team"
    assert _attrs(auth.review_request("get", "pods", namespace="team",
                                      all_namespaces=True))[5] == ""
    assert _attrs(auth.review_request("get", "nodes", namespace="team"))[5] == ""


def test_auth_review_request_subresource_flag():
    question = auth.review_request("create", "pods", "web", subresource="exec")
    assert _attrs(question) == ("create", "", "pods", "exec", "web", "default")
    with pytest.raises(CommandError, match="two subresources"):
        auth.review_request("get", "pods/log", subresource="status")


def test_auth_review_request_impersonation():
    review = auth.review_request("get", "pods", user="jane", groups=["devs", "ops"]).review
    assert (review.user, list(review.groups)) == ("jane", ["devs", "ops"])
    with pytest.raises(CommandError, match="--as-group needs --as"):
        auth.review_request("get", "pods", groups=["devs"])


def test_auth_review_request_unknown_types_and_verbs_warn_but_ask():
    question = auth.review_request("frob", "widgets.example.com")
    assert _attrs(question) == ("frob", "example.com", "widgets", "", "", "default")
    assert question.warnings == (
        "Warning: verb 'frob' is not a known verb",
        "Warning: the server doesn't have a resource type 'widgets' in group 'example.com'")
    # A known plural in the wrong group is not that kind.
    assert auth.review_request("get", "pods.apps").warnings == (
        "Warning: the server doesn't have a resource type 'pods' in group 'apps'",)


@pytest.mark.parametrize(("args", "message"), [
    (("get", "/metrics", "x"), "takes no name"),
    (("get", "pods/a/b"), "is not RESOURCE/SUBRESOURCE or TYPE/NAME"),
    (("get", "pods/"), "is not RESOURCE/SUBRESOURCE or TYPE/NAME"),
    (("get", "pods/web", "api"), "two names given"),
    (("", "pods"), "you must specify a verb"),
])
def test_auth_review_request_refuses_questions_it_cannot_ask(args, message):
    with pytest.raises(CommandError, match=message):
        auth.review_request(*args)


def test_auth_review_request_asks_about_non_resource_urls():
    question = auth.review_request("get", "/metrics", namespace="team", user="prom",
                                   groups=["system:monitoring"])
    review = question.review
    assert not review.HasField("resource_attributes")
    assert review.non_resource_attributes == authz.NonResourceAttributes(path="/metrics",
                                                                         verb="get")
    assert (review.user, list(review.groups), question.warnings) == (
        "prom", ["system:monitoring"], ())
    assert auth.review_request("post", "/").review.non_resource_attributes.path == "/"
    assert auth.review_request("list", "/healthz").warnings == (
        "Warning: verb 'list' is not a known verb",)
    with pytest.raises(CommandError, match="--subresource cannot be used"):
        auth.review_request("get", "/metrics", subresource="log")


# --- pure: the answer ---------------------------------------------------------------------------


def test_auth_answer_line_is_yes_or_no_with_reason_only_when_verbose():
    yes = authz.SubjectAccessReviewStatus(allowed=True, reason='RBAC: allowed by "admin"')
    no = authz.SubjectAccessReviewStatus(allowed=False, reason="no rule\nallows it")
    assert auth.answer_line(yes) == "yes"
    assert auth.answer_line(no) == "no"
    assert auth.answer_line(yes, verbose=True) == 'yes - RBAC: allowed by "admin"'
    assert auth.answer_line(no, verbose=True) == "no - no rule allows it"
    assert auth.answer_line(authz.SubjectAccessReviewStatus(), verbose=True) == "no"


def test_auth_whoami_table_and_object():
    info = authz.UserInfo(username="kubernetes-admin",
                          groups=["system:masters", "system:authenticated"],
                          authenticated_by="x509")
    assert auth.whoami_table(info) == [
        "ATTRIBUTE          VALUE",
        "Username           kubernetes-admin",
        "Groups             [system:masters system:authenticated]",
        "Authenticated by   x509",
    ]
    assert auth.whoami_object(info)["status"] == {
        "userInfo": {"username": "kubernetes-admin",
                     "groups": ["system:masters", "system:authenticated"]}}


# --- the commands against a fake Authorization service ------------------------------------------


class FakeAuthorization(authz_grpc.AuthorizationServicer):
    """Allows what ``allowed`` lists as (verb, resource[/sub] or path) pairs; asking
    about user "nobody-may-ask" is PERMISSION_DENIED."""

    def __init__(self) -> None:
        self.reviews: list[authz.SubjectAccessReview] = []
        self.allowed = {("get", "pods"), ("create", "pods/exec"), ("get", "/metrics")}

    async def Review(self, request, context):
        self.reviews.append(request)
        if request.user == "nobody-may-ask":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                'user "me" cannot create subjectaccessreviews')
        if request.HasField("non_resource_attributes"):
            n = request.non_resource_attributes
            verb, what = n.verb, n.path
        else:
            a = request.resource_attributes
            verb, what = a.verb, f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        allowed = (verb, what) in self.allowed
        reason = "allowed by ClusterRole view" if allowed else "no rule allows it"
        return authz.SubjectAccessReviewStatus(allowed=allowed, reason=reason,
                                               user=request.user or "me")

    async def WhoAmI(self, request, context):
        return authz.UserInfo(username="jane", groups=["devs", "system:authenticated"],
                              authenticated_by="token")


@pytest.fixture
async def kyb(monkeypatch, tmp_path, capsys):
    """Run kyb against a fake Authorization service served in the test's own
    event loop (grpc.aio wants one loop); returns (exit status, stdout,
    stderr). ``kyb.servicer`` holds what the fake was sent."""
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "no-config"))
    monkeypatch.delenv("KYB_SERVER", raising=False)
    servicer = FakeAuthorization()
    server = grpc.aio.server()
    authz_grpc.add_AuthorizationServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()

    async def run(*argv: str) -> tuple[int, str, str]:
        status = await ctl.main_async(["--server", address, *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    run.servicer = servicer  # type: ignore[attr-defined]
    yield run
    await server.stop(None)


async def test_auth_can_i_yes_exits_zero(kyb):
    assert await kyb("auth", "can-i", "get", "pods") == (0, "yes\n", "")
    review = kyb.servicer.reviews[-1]
    assert review.resource_attributes == authz.ResourceAttributes(
        verb="get", resource="pods", namespace="default")
    assert review.user == ""


async def test_auth_can_i_no_exits_one_reason_only_when_verbose(kyb):
    assert await kyb("auth", "can-i", "delete", "pods") == (1, "no\n", "")
    assert await kyb("auth", "can-i", "delete", "pods", "-v") == \
        (1, "no - no rule allows it\n", "")
    assert await kyb("auth", "can-i", "get", "po", "--verbose") == \
        (0, "yes - allowed by ClusterRole view\n", "")
    assert await kyb("auth", "can-i", "delete", "pods", "--quiet") == (1, "", "")


async def test_auth_can_i_passes_namespace_name_subresource_and_impersonation(kyb):
    status, out, _ = await kyb("auth", "can-i", "create", "pods/exec", "web", "-n", "team",
                               "--as", "jane", "--as-group", "devs", "--as-group", "ops")
    assert (status, out) == (0, "yes\n")
    review = kyb.servicer.reviews[-1]
    assert review.resource_attributes == authz.ResourceAttributes(
        verb="create", resource="pods", subresource="exec", name="web", namespace="team")
    assert (review.user, list(review.groups)) == ("jane", ["devs", "ops"])
    await kyb("-n", "team", "auth", "can-i", "list", "deployments.apps", "-A")
    attrs = kyb.servicer.reviews[-1].resource_attributes
    assert (attrs.group, attrs.resource, attrs.namespace) == ("apps", "deployments", "")


async def test_auth_can_i_asks_about_a_path(kyb):
    assert await kyb("auth", "can-i", "get", "/metrics", "--as", "prom") == (0, "yes\n", "")
    review = kyb.servicer.reviews[-1]
    assert review.non_resource_attributes == authz.NonResourceAttributes(path="/metrics",
                                                                         verb="get")
    assert review.user == "prom" and not review.HasField("resource_attributes")


async def test_auth_can_i_warnings_go_to_stderr(kyb):
    status, out, err = await kyb("auth", "can-i", "get", "widgets")
    assert (status, out) == (1, "no\n")
    assert err == "Warning: the server doesn't have a resource type 'widgets'\n"


async def test_auth_can_i_refused_review_is_one_error_line(kyb):
    status, out, err = await kyb("auth", "can-i", "get", "pods", "--as", "nobody-may-ask")
    assert (status, out) == (1, "")
    assert err == ('Error from server (Forbidden): user "me" cannot create '
                   "subjectaccessreviews\n")


async def test_auth_can_i_bad_arguments_are_one_error_line(kyb):
    assert (await kyb("auth", "can-i", "get"))[:2] == (1, "")
    status, _, err = await kyb("auth", "can-i", "get", "pods", "--as-group", "devs")
    assert (status, err) == (1, "error: --as-group needs --as (the user whose groups they "
                                "are)\n")
    assert kyb.servicer.reviews == []


async def test_auth_whoami_table_json_yaml(kyb):
    status, out, _ = await kyb("auth", "whoami")
    assert status == 0
    assert out.splitlines() == ["ATTRIBUTE          VALUE",
                                "Username           jane",
                                "Groups             [devs system:authenticated]",
                                "Authenticated by   token"]
    status, out, _ = await kyb("auth", "whoami", "-o", "json")
    assert json.loads(out)["status"]["userInfo"] == {
        "username": "jane", "groups": ["devs", "system:authenticated"]}
    status, out, _ = await kyb("auth", "whoami", "-o", "yaml")
    assert yaml.safe_load(out)["kind"] == "SelfSubjectReview"


def test_auth_help_exits_zero(capsys):
    for argv in (["auth", "--help"], ["auth", "can-i", "--help"], ["auth", "whoami", "--help"]):
        assert ctl.main(argv) == 0
    assert "can-i" in capsys.readouterr().out
