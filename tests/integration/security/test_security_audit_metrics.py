"""Refusals are counted and written down: apiserver_request_total carries
the status code, the audit log has who/verb/object/decision as JSON lines,
and /metrics itself needs a certificate or a token while health stays open."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from services.machinery import tlsconfig
from services.machinery.errors import ApiError
from tests.support.processes import wait_until

pytestmark = pytest.mark.asyncio


def _get(url: str, context: ssl.SSLContext, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_refusals_are_counted_and_audited(secure, namespace):
    user = f"outsider-{uuid.uuid4().hex[:6]}"
    admin_cert, admin_key = secure.pki.user("kubernetes-admin", ("system:masters",))
    with_cert = tlsconfig.http_client_context(secure.pki.ca_file, admin_cert, admin_key)
    before = _get(secure.api.metrics_url, with_cert)[1]
    async with secure.client(user) as c:
        for _ in range(3):
            with pytest.raises(ApiError):
                await c.resource("deployments").list(namespace)
    async with secure.token_client("wrong-token") as c:
        with pytest.raises(ApiError):
            await c.resource("pods").list(namespace)

    after = _get(secure.api.metrics_url, with_cert)[1]
    denied = ("apiserver_request_total", dict(verb="list", resource="deployments",
                                              code="PERMISSION_DENIED"))
    assert _metric(after, denied[0], **denied[1]) - _metric(before, denied[0], **denied[1]) == 3
    unauth = dict(verb="list", resource="pods", code="UNAUTHENTICATED")
    assert _metric(after, "apiserver_request_total", **unauth) > _metric(
        before, "apiserver_request_total", **unauth)

    def records():
        return [json.loads(line) for line in secure.audit_log.read_text().splitlines()]

    mine = await wait_until(lambda: [r for r in records() if r["user"] == user],
                            message="the outsider's refusals in the audit log")
    assert len(mine) == 3
    assert {(r["verb"], r["resource"], r["apiGroup"], r["namespace"], r["decision"], r["code"])
            for r in mine} == {("list", "deployments", "apps", namespace, "forbid",
                                "PERMISSION_DENIED")}
    assert f'User "{user}" cannot list' in mine[0]["reason"]
    assert any(r["decision"] == "unauthenticated" and r["resource"] == "pods"
               and r["namespace"] == "" for r in records())
    writes = [r for r in records() if r["verb"] == "create" and r["resource"] == "namespaces"
              and r["name"] == namespace]
    assert writes and writes[0]["decision"] == "allow" and writes[0]["user"] == "kubernetes-admin"


async def test_metrics_need_a_certificate_or_token_but_health_is_open(secure):
    anonymous = tlsconfig.http_client_context(secure.pki.ca_file)
    base = secure.api.metrics_url.rsplit("/", 1)[0]
    assert _get(f"{base}/healthz", anonymous)[0] == 200
    assert _get(f"{base}/readyz", anonymous)[0] == 200
    status, body = _get(f"{base}/metrics", anonymous)
    assert status == 401 and "\n" == body[-1] and body.count("\n") == 1
    assert _get(f"{base}/metrics", anonymous, token="not-a-token")[0] == 401
    assert _get(f"{base}/metrics", anonymous, token="tok-admin")[0] == 200
    cert, key = secure.pki.user("system:prometheus", ("system:monitoring",))
    status, body = _get(f"{base}/metrics", tlsconfig.http_client_context(
        secure.pki.ca_file, cert, key))
    assert status == 200 and "apiserver_request_total" in body


async def test_review_and_size_refusals_are_audited_too(secure, admin, namespace):
    from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz_pb2
    from services.api.gen.kybernetes.authorization.v1 import authorization_pb2_grpc as authz_grpc
    from services.api.gen.kybernetes.core.v1 import types_pb2 as core
    import grpc

    user = f"curious-{uuid.uuid4().hex[:6]}"
    async with secure.client(user) as c:
        stub = authz_grpc.AuthorizationStub(await c.ready_channel())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Review(authz_pb2.SubjectAccessReview(
                resource_attributes=authz_pb2.ResourceAttributes(verb="get", resource="pods"),
                user="kubernetes-admin"), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    huge = core.Pod()
    huge.metadata.name, huge.metadata.namespace = "huge", namespace
    huge.metadata.annotations["a"] = "x" * (3 * 1024 * 1024 + 1)
    with pytest.raises(ApiError) as too_big:
        await admin.resource("pods").create(huge)
    assert too_big.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(ApiError) as exec_err:  # an exec may hold a kubelet thread an hour at most
        await admin.resource("pods").exec("any", namespace, ["sleep", "inf"],
                                          timeout_seconds=10 ** 6)
    assert exec_err.value.code == grpc.StatusCode.INVALID_ARGUMENT

    def records():
        return [json.loads(line) for line in secure.audit_log.read_text().splitlines()]

    asked = await wait_until(lambda: [r for r in records() if r["user"] == user],
                             message="the refused review in the audit log")
    assert (asked[0]["resource"], asked[0]["decision"], asked[0]["code"]) == (
        "subjectaccessreviews", "forbid", "PERMISSION_DENIED")
    big = [r for r in records() if r.get("name") == "huge" and r["namespace"] == namespace]
    assert big and (big[0]["decision"], big[0]["code"]) == ("reject", "RESOURCE_EXHAUSTED")
