"""The pure parts of the access pipeline: token file parsing, bearer
headers, per-user limits, request attributes and audit records."""

from __future__ import annotations

import json

import grpc
import pytest

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.apiserver import audit, errors
from services.apiserver.access import (AccessControl, Outcome, attributes_for,
                                       denial_message)
from services.apiserver.authn import (INSECURE_USER, Authenticator, bearer_token,
                                      parse_token_file)
from services.apiserver.authz.attributes import Attributes, Decision, UserInfo
from services.apiserver.limits import RequestRateLimiter, WatchCounter

ALICE = UserInfo("alice", ("dev", "system:authenticated"), "token")
ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"), "x509")


def test_token_file_rows_become_users_in_system_authenticated():
    tokens = parse_token_file('# comment\n\nt1,alice,1001,"dev,ops"\nt2,bob,1002\n')
    assert tokens["t1"] == UserInfo("alice", ("dev", "ops", "system:authenticated"), "token")
    assert tokens["t2"].groups == ("system:authenticated",)


@pytest.mark.parametrize("text, problem", [
    ("t1,alice\n", "line 1"), ("t1,,1\n", "line 1"), ("t1,a,1\nt1,b,2\n", "duplicate")])
def test_bad_token_file_lines_are_named(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_token_file(text)


def test_bearer_header_parsing():
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) == ""
    assert bearer_token([("x-other", "1")]) is None


class _Context:
    """The two things the authenticator reads from a grpc call context."""

    def __init__(self, metadata=(), pem=None):
        self.metadata, self.pem = metadata, pem

    def auth_context(self):
        return {"x509_pem_cert": [self.pem]} if self.pem else {}

    def invocation_metadata(self):
        return self.metadata

    def peer(self):
        return "ipv4:127.0.0.1:5555"


def test_authenticator_tokens_and_refusals():
    auth = Authenticator({"t1": ALICE})
    assert auth.authenticate(_Context([("authorization", "Bearer t1")])) == ALICE
    for ctx, text in [(_Context(), "no credentials"),
                      (_Context([("authorization", "Bearer nope")]), "invalid bearer token"),
                      (_Context([("authorization", "Basic x")]), "invalid bearer token")]:
        with pytest.raises(errors.ApiStatus, match=text) as err:
            auth.authenticate(ctx)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert Authenticator(insecure=True).authenticate(_Context()) == INSECURE_USER


def test_rate_limiter_refuses_after_burst_refills_and_exempts_masters():
    now = [0.0]
    limiter = RequestRateLimiter(qps=2, burst=3, clock=lambda: now[0])
    assert [limiter.allow(ALICE) for _ in range(4)] == [True, True, True, False]
    assert all(limiter.allow(ADMIN) for _ in range(100))
    now[0] += 0.5  # one token back
    assert limiter.allow(ALICE) and not limiter.allow(ALICE)
    assert limiter.allow(UserInfo("bob")), "each user has a bucket of their own"
    assert RequestRateLimiter(0, 1).allow(ALICE), "qps 0 turns limiting off"


def test_watch_counter_caps_each_user():
    watches = WatchCounter(2)
    assert watches.acquire(ALICE) and watches.acquire(ALICE) and not watches.acquire(ALICE)
    assert watches.acquire(UserInfo("bob"))
    watches.release(ALICE)
    assert watches.acquire(ALICE)
    assert all(watches.acquire(ADMIN) for _ in range(10))


def test_attributes_follow_the_rpc():
    pods = kinds.BY_KIND["Pod"]
    pod = core.Pod(metadata=meta_pb2.ObjectMeta(name="web"))
    assert attributes_for(ALICE, pods, "Create", pod) == Attributes(
        ALICE, "create", "", "pods", "", "default", "web")
    status = attributes_for(ALICE, pods, "UpdateStatus", pod)
    assert (status.verb, status.resource_path) == ("update", "pods/status")
    listing = attributes_for(ALICE, pods, "WatchBatched", meta_pb2.WatchRequest(namespace="a"))
    assert (listing.verb, listing.namespace, listing.name) == ("watch", "a", "")
    logs = attributes_for(ALICE, pods, "Logs", core.PodLogsRequest(namespace="a", name="p"))
    assert (logs.verb, logs.resource_path, logs.name) == ("get", "pods/log", "p")
    bind = attributes_for(ALICE, pods, "Bind", core.Binding(
        metadata=meta_pb2.ObjectMeta(namespace="a", name="p")))
    assert (bind.verb, bind.resource_path, bind.namespace) == ("create", "pods/binding", "a")
    deploy = attributes_for(ALICE, kinds.BY_KIND["Deployment"], "Delete",
                            meta_pb2.DeleteRequest(namespace="a", name="d"))
    assert (deploy.group, deploy.verb) == ("apps", "delete")
    node = attributes_for(ALICE, kinds.BY_KIND["Node"], "Get",
                          meta_pb2.GetRequest(namespace="junk", name="n1"))
    assert node.namespace == "", "cluster-scoped kinds have no namespace"


def test_denial_message_reads_like_kubernetes():
    attrs = Attributes(ALICE, "create", "", "pods", namespace="b")
    assert denial_message(attrs, "no rule") == (
        'pods is forbidden: User "alice" cannot create resource "pods" in API group "" '
        'in the namespace "b": no rule')


def test_pipeline_records_refusals_and_writes_but_not_reads(tmp_path):
    log = audit.AuditLog(tmp_path / "audit.log")
    log.open()
    access = AccessControl(Authenticator({"t1": ALICE}), audit_log=log,
                           authorize=lambda a: Decision(a.verb == "get", "rule r"))
    ctx = _Context([("authorization", "Bearer t1")])
    pods = kinds.BY_KIND["Pod"]

    read = Outcome("Get")
    user = access.authenticate(ctx, read)
    access.authorize_request(attributes_for(user, pods, "Get",
                                            meta_pb2.GetRequest(namespace="a", name="p")), read)
    access.finish(read, "OK")

    write = Outcome("Create")
    with pytest.raises(errors.ApiStatus) as err:
        access.authorize_request(attributes_for(user, pods, "Create", core.Pod()), write)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    access.finish(write, "PERMISSION_DENIED")

    nobody = Outcome("List")
    with pytest.raises(errors.ApiStatus):
        access.authenticate(_Context(), nobody)
    access.finish(nobody, "UNAUTHENTICATED")
    log.close()

    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [(r["decision"], r["code"]) for r in records] == [
        ("forbid", "PERMISSION_DENIED"), ("unauthenticated", "UNAUTHENTICATED")]
    assert records[0]["user"] == "alice" and records[0]["verb"] == "create"
    assert records[0]["namespace"] == "default" and records[0]["reason"] == "rule r"
    assert records[1]["user"] == "" and records[1]["sourceAddress"].startswith("ipv4:")


def test_audit_log_rotates_past_its_size_keeping_backups(tmp_path):
    log = audit.AuditLog(tmp_path / "audit.log", max_bytes=1000, backups=2)
    log.open()
    record = audit.event(ALICE, None, "forbid", "PERMISSION_DENIED", "x" * 100)
    for _ in range(40):
        log.write(record)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 1000
        assert all(json.loads(line)["decision"] == "forbid"
                   for line in path.read_text().splitlines())
