"""Hostile input against the secured API server: no request, however
malformed or large, crashes it, hangs it, or changes what it stores.

Every RPC of every kind and the Authorization service get raw bytes —
random, byte-mutated, wire-level hostile values (invalid UTF-8, negative
numbers, unknown enum strings, wrong wire types, unknown fields, 1–4 MiB
strings), groups nested thousands deep — from system:masters (so requests
reach validation and storage), from users with no rights and from a node
(so they hit RBAC and the Node authorizer), by certificate and by token.
Every reply must be OK (and decode) or a deliberate status with a one-line
message; streams must end or be cancellable; and afterwards the server
serves normally, logged no traceback, released every watch, and sentinel
objects created before the fuzz are byte-for-byte unchanged.

The hypothesis runs are bounded by example counts (a few hundred requests
each), well under a minute together on a loaded two-core machine.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import uuid

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.machinery import channel as channel_options
from tests.integration.security.conftest import ADMIN, MAX_WATCHES
from tests.support import hostile, objects
from tests.support.hostile import RPCS, Rpc

FUZZ_NS = "hostile-fuzz"
# Who sends the fuzz: one who may do anything, and several who may do
# almost nothing (several, so that the per-user rate limit leaves most of
# their requests to reach authorization).
IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ADMIN,
    "nobody-0": ("hostile-nobody-0", ("hostile-nobodies",)),
    "nobody-1": ("hostile-nobody-1", ("hostile-nobodies",)),
    "nobody-2": ("hostile-nobody-2", ("hostile-nobodies",)),
    "node-0": ("system:node:hostile-node-0", ("system:nodes",)),
    "node-1": ("system:node:hostile-node-1", ("system:nodes",)),
}
TOKEN_IDENTITY = "token-viewer"  # the token port, as TOKENS' script-viewer
SENDERS = [*IDENTITIES, TOKEN_IDENTITY]


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=list(HealthCheck))


SENTINEL_KINDS = ("Pod", "Service", "Deployment", "ReplicaSet", "Lease", "Endpoints",
                  "Role", "RoleBinding")
CLUSTER_SENTINEL_KINDS = ("ClusterRole", "ClusterRoleBinding", "Node")


@pytest.fixture(scope="module")
def channels(secure):
    chans = {label: hostile.secure_channel(secure, *identity)
             for label, identity in IDENTITIES.items()}
    cfg = secure.pki.config(secure.token_address, token="tok-viewer")
    chans[TOKEN_IDENTITY] = grpc.secure_channel(secure.token_address, cfg.credentials(),
                                                options=channel_options.CLIENT_OPTIONS)
    yield chans
    for chan in chans.values():
        chan.close()


def _call(chan: grpc.Channel, kind: kinds.Kind, method: str, request) -> object:
    """A unary call with typed messages (to set up and check, not to fuzz)."""
    response = kind.list_message if method == "List" else kind.message
    return chan.unary_unary(f"/{kind.service}/{method}",
                            request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=response.FromString)(request, timeout=20)


def _get(chan, kind: kinds.Kind, namespace: str, name: str):
    return _call(chan, kind, "Get", meta_pb2.GetRequest(namespace=namespace, name=name))


def _create_ignoring_exists(chan, kind: kinds.Kind, obj) -> None:
    try:
        _call(chan, kind, "Create", obj)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err.details()


def _snapshot(chan, namespace: str, name: str) -> dict[str, bytes]:
    """The stored bytes of every sentinel, and what each sentinel kind lists
    in the sentinel namespace (so that nothing new can appear there either)."""
    found: dict[str, bytes] = {}
    for kind_name in SENTINEL_KINDS:
        kind = kinds.BY_KIND[kind_name]
        found[kind_name] = _get(chan, kind, namespace, name).SerializeToString()
        listed = _call(chan, kind, "List", meta_pb2.ListRequest(namespace=namespace))
        found[f"{kind_name} list"] = b"\0".join(sorted(
            o.metadata.name.encode() + b"@" + o.metadata.resource_version.encode()
            for o in listed.items))
    for kind_name in CLUSTER_SENTINEL_KINDS:
        found[kind_name] = _get(chan, kinds.BY_KIND[kind_name], "", name).SerializeToString()
    found["Namespace"] = _get(chan, kinds.BY_KIND["Namespace"], "", namespace
                              ).SerializeToString()
    return found


@pytest.fixture(scope="module")
def sentinels(secure, channels):
    """Objects no fuzzed request can name (a random namespace and name),
    which must come out of the fuzz byte for byte as they went in; and,
    once the fuzz is over, a server that still serves, logged no traceback,
    and runs."""
    admin = channels["admin"]
    ns_kind = kinds.BY_KIND["Namespace"]
    _create_ignoring_exists(admin, ns_kind, objects.namespace(FUZZ_NS))
    # Something to see at once for every watch of the fuzz namespace.
    for kind in kinds.KINDS:
        if kind.namespaced:
            seed = hostile.harmless_sample(kind.kind, "seed", FUZZ_NS)
            _create_ignoring_exists(admin, kind, seed)
    tag = uuid.uuid4().hex[:12]
    namespace, name = f"hostile-sentinel-{tag}", f"sentinel-{tag}"
    _create_ignoring_exists(admin, ns_kind, objects.namespace(namespace))
    for kind_name in (*SENTINEL_KINDS, *CLUSTER_SENTINEL_KINDS):
        obj = hostile.harmless_sample(kind_name, name, namespace)
        if kind_name == "Pod":
            obj.metadata.labels["hostile"] = "sentinel"
            obj.metadata.annotations["note"] = "bytes\u00e9\u4e2d"
        _create_ignoring_exists(admin, kinds.BY_KIND[kind_name], obj)
    before = _snapshot(admin, namespace, name)
    log = secure.api.workdir / "apiserver.log"
    log_offset = log.stat().st_size if log.exists() else 0
    yield namespace, name
    assert secure.api.proc.poll() is None, "the API server exited during the fuzz"
    after = _snapshot(admin, namespace, name)
    changed = [key for key in before if before[key] != after[key]]
    assert not changed, f"the fuzz changed stored sentinels: {changed}"
    # Still serving: a normal create and get.
    pod = objects.pod(f"after-fuzz-{uuid.uuid4().hex[:8]}", FUZZ_NS)
    created = _call(admin, kinds.BY_KIND["Pod"], "Create", pod)
    assert _get(admin, kinds.BY_KIND["Pod"], FUZZ_NS, pod.metadata.name) == created
    new_log = log.read_bytes()[log_offset:].decode(errors="replace") if log.exists() else ""
    assert "Traceback" not in new_log, new_log[new_log.find("Traceback") - 2000:][:6000]


class Tally:
    """What the fuzz got back, per kind of sender, to show it reached past
    decoding: into storage for the admin, into authorization for the rest."""

    def __init__(self) -> None:
        self.codes: dict[str, collections.Counter] = collections.defaultdict(
            collections.Counter)

    def add(self, sender: str, reply: hostile.Reply) -> None:
        self.codes["admin" if sender == "admin" else "other"][reply.code] += 1


@pytest.fixture(scope="module")
def tally(sentinels):
    found = Tally()
    yield found
    admin, other = found.codes["admin"], found.codes["other"]
    if sum(admin.values()) >= 100:
        assert admin[grpc.StatusCode.OK] > 0, dict(admin)
    if sum(other.values()) >= 100:
        assert other[grpc.StatusCode.PERMISSION_DENIED] > 0, dict(other)


def _alive(secure, reply: hostile.Reply) -> hostile.Reply:
    """UNAVAILABLE is a fair answer (etcd or a kubelet out of reach) unless
    the server itself is gone: then it is the crash this fuzz looks for."""
    if reply.code == grpc.StatusCode.UNAVAILABLE:
        assert secure.api.proc.poll() is None, f"the API server died: {reply.details}"
    return reply


def _fuzz(secure, channels, tally: Tally, sender: str, rpc: Rpc, payload: bytes
          ) -> hostile.Reply:
    """One fuzzed request, whose outcome is tallied (a throttled one too:
    that is a well-formed answer)."""
    reply = _alive(secure, hostile.send(channels[sender], rpc, payload))
    tally.add(sender, reply)
    return reply


_rotation = itertools.count()


def _send(channels, sender: str, rpc: Rpc, payload: bytes, **kw) -> hostile.Reply:
    """One targeted request that must get past the rate limit: "nobody"
    is spread over the nobody users, and a throttled request is sent again
    after a pause (the limit refills at RATE_QPS per second)."""
    for _ in range(200):
        label = sender
        if sender == "nobody":
            label = f"nobody-{next(_rotation) % 3}"
        reply = hostile.send(channels[label], rpc, payload, **kw)
        assert reply.code != grpc.StatusCode.UNAVAILABLE, (str(rpc), reply)
        if not (reply.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                and "too many requests" in reply.details):
            return reply
        time.sleep(0.05)
    raise AssertionError(f"{rpc}: throttled for 10 s")


rpcs = st.sampled_from(RPCS)
senders = st.sampled_from(["admin"] * 3 + SENDERS)  # a third reach storage


# -- hypothesis ------------------------------------------------------------------------------


@fuzz(300)
@given(rpc=rpcs, sender=senders, payload=st.binary(max_size=600))
def test_random_bytes_to_every_rpc(secure, channels, tally, rpc, sender, payload):
    _fuzz(secure, channels, tally, sender, rpc, payload)


@fuzz(250)
@given(data=st.data(), rpc=rpcs, sender=senders)
def test_byte_mutated_requests(secure, channels, tally, data, rpc, sender):
    payload = data.draw(hostile.byte_mutation(rpc, FUZZ_NS), label="payload")
    _fuzz(secure, channels, tally, sender, rpc, payload)


@fuzz(400)
@given(data=st.data(), rpc=rpcs, sender=senders)
def test_hostile_field_values(secure, channels, tally, data, rpc, sender):
    """Valid requests with fields overwritten at the wire level: invalid
    UTF-8, negative and huge numbers, unknown enum strings, wrong wire
    types, unknown fields, 1–4 MiB strings."""
    payload = data.draw(hostile.mutated_request(rpc, FUZZ_NS), label="payload")
    _fuzz(secure, channels, tally, sender, rpc, payload)


# -- targeted cases over every RPC -----------------------------------------------------------


@pytest.mark.parametrize("sender", ["admin", "nobody"])
def test_deeply_nested_groups_are_refused_cleanly(channels, sentinels, sender):
    """Groups nested past protobuf's recursion limit: INVALID_ARGUMENT,
    before anything else looks at the request; inside a known sub-message too."""
    top = hostile.nested_groups(5000)
    for rpc in RPCS:
        payloads = [top, hostile.valid_request(rpc, "deep", FUZZ_NS).SerializeToString() + top]
        meta = rpc.request.DESCRIPTOR.fields_by_name.get("metadata")
        if meta is not None:
            payloads.append(hostile.length_delimited(meta.number, top))
        for payload in payloads:
            reply = _send(channels, sender, rpc, payload)
            if rpc.method == "WhoAmI":  # reads nothing from its request
                continue
            assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (str(rpc), reply)


@pytest.mark.parametrize("sender", ["admin", "nobody"])
def test_deeply_nested_unknown_fields_do_no_harm(channels, sentinels, sender):
    """Length-delimited unknown fields nested thousands deep (which a parser
    may skip without recursing), at the top and inside metadata."""
    deep = hostile.nested_length_delimited(3000)
    for rpc in RPCS:
        base = hostile.valid_request(rpc, f"deep-{uuid.uuid4().hex[:6]}", FUZZ_NS)
        payloads = [deep, base.SerializeToString() + deep]
        meta = rpc.request.DESCRIPTOR.fields_by_name.get("metadata")
        if meta is not None:
            payloads.append(base.SerializeToString() + hostile.length_delimited(meta.number, deep))
        for payload in payloads:
            _send(channels, sender, rpc, payload)


def test_unknown_fields_are_dropped_not_stored(channels, sentinels):
    """Fields the schema does not know — a new number, or a known one sent
    with the wrong wire type — never reach storage (kube-apiserver drops
    unknown fields too): nothing can be smuggled past validation into
    objects every reader is served."""
    kind = kinds.BY_KIND["Pod"]
    by_path = {r.path: r for r in RPCS}
    spec = kind.message.DESCRIPTOR.fields_by_name["spec"]
    meta = kind.message.DESCRIPTOR.fields_by_name["metadata"]
    smuggled = (hostile.length_delimited(1999, b"smuggled-top")
                + hostile.length_delimited(meta.number,
                                           hostile.length_delimited(1998, b"smuggled-meta"))
                + hostile.set_field((spec, spec.message_type.fields_by_name["node_name"]),
                                    hostile.VARINT, hostile.varint(7))
                + hostile.length_delimited(spec.number, hostile.nested_length_delimited(500)))
    name = f"unknown-{uuid.uuid4().hex[:8]}"
    payload = objects.pod(name, FUZZ_NS).SerializeToString() + smuggled
    chan = channels["admin"]
    created = chan.unary_unary(by_path[f"/{kind.service}/Create"].path,
                               request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)(payload, timeout=20)
    stored = _get(chan, kind, FUZZ_NS, name)
    for data in (created, stored.SerializeToString()):
        clean = kind.message.FromString(data)
        clean.DiscardUnknownFields()
        assert clean.SerializeToString() == data, "unknown fields were stored"
    assert stored.spec.node_name == ""


def _string_paths(rpc: Rpc) -> list[hostile.FieldPath]:
    return [p for p in hostile.field_paths(rpc.request.DESCRIPTOR)
            if p[-1].type == FieldDescriptor.TYPE_STRING]


def test_invalid_utf8_in_any_string_field_is_refused(channels, sentinels):
    """proto3 strings must be UTF-8: bad bytes in any string field of any
    request (at any depth, in maps and lists) are INVALID_ARGUMENT, never
    stored. Sent by the admin, so nothing but decoding stands in the way."""
    for rpc in RPCS:
        paths = _string_paths(rpc)
        base = hostile.valid_request(rpc, f"utf8-{uuid.uuid4().hex[:6]}", FUZZ_NS)
        for i, path in enumerate(paths):
            bad = hostile.BAD_UTF8[i % len(hostile.BAD_UTF8)]
            payload = base.SerializeToString() + hostile.set_field(
                path, *hostile.string_value(bad))
            reply = _send(channels, "admin", rpc, payload)
            where = ".".join(f.name for f in path)
            assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (str(rpc), where, reply)
            assert "UTF-8" in reply.details or "not a valid" in reply.details, reply.details


def test_invalid_utf8_in_a_bytes_field_is_allowed(channels, sentinels):
    """ExecRequest.stdin is bytes: anything goes, so the request decodes
    and is refused only for what it asks (here: a pod that does not exist)."""
    rpc = next(r for r in RPCS if r.method == "Exec")
    for bad in hostile.BAD_UTF8:
        request = core.ExecRequest(namespace=FUZZ_NS, name="no-such-pod", command=["cat"],
                                   stdin=bad * 1000)
        reply = _send(channels, "admin", rpc, request.SerializeToString())
        assert reply.code == grpc.StatusCode.NOT_FOUND, reply


HUGE_SIZES = (hostile.MiB, 3 * hostile.MiB + 1, 4 * hostile.MiB)


def _huge_requests(size: int) -> list[tuple[Rpc, bytes]]:
    """One request per request type with a ``size``-byte string where it
    hurts most: the name, a label, an annotation, a selector, a command."""
    big = "x" * size
    by_path = {r.path: r for r in RPCS}

    def rpc(kind: str, method: str) -> Rpc:
        return by_path[f"/{kinds.BY_KIND[kind].service}/{method}"]
    out: list[tuple[Rpc, bytes]] = []
    for field in ("name", "label", "annotation", "label-key"):
        pod = objects.pod("huge", FUZZ_NS)
        if field == "name":
            pod.metadata.name = big
        elif field == "label":
            pod.metadata.labels["big"] = big
        elif field == "annotation":
            pod.metadata.annotations["big"] = big
        else:
            pod.metadata.labels[big] = "v"
        for method in ("Create", "Update", "UpdateStatus"):
            out.append((rpc("Pod", method), pod.SerializeToString()))
    deployment = objects.deployment("huge", FUZZ_NS)  # an image may be long: the size limit
    deployment.metadata.name = f"huge-{size}"
    deployment.spec.template.spec.containers[0].image = big
    out.append((rpc("Deployment", "Create"), deployment.SerializeToString()))
    out += [
        (rpc("Pod", "Get"), meta_pb2.GetRequest(namespace=FUZZ_NS, name=big).SerializeToString()),
        (rpc("Pod", "List"), meta_pb2.ListRequest(namespace=FUZZ_NS, label_selector=big
                                                  ).SerializeToString()),
        (rpc("Service", "List"), meta_pb2.ListRequest(field_selector=big, continue_token=big
                                                      ).SerializeToString()),
        (rpc("Pod", "Delete"), meta_pb2.DeleteRequest(namespace=big, name=big
                                                      ).SerializeToString()),
        (rpc("Pod", "Watch"), meta_pb2.WatchRequest(namespace=FUZZ_NS, label_selector=big
                                                    ).SerializeToString()),
        (rpc("Node", "WatchBatched"), meta_pb2.WatchRequest(resource_version=big
                                                            ).SerializeToString()),
        (rpc("Pod", "Logs"), core.PodLogsRequest(namespace=FUZZ_NS, name=big
                                                 ).SerializeToString()),
        (rpc("Pod", "Exec"), core.ExecRequest(namespace=FUZZ_NS, name="p", command=[big],
                                              stdin=big.encode()).SerializeToString()),
    ]
    review = hostile.valid_request(next(r for r in RPCS if r.method == "Review"), big, big)
    out.append((next(r for r in RPCS if r.method == "Review"), review.SerializeToString()))
    return out


@pytest.mark.parametrize("size", HUGE_SIZES, ids=["1MiB", "3MiB+1", "4MiB"])
@pytest.mark.parametrize("sender", ["admin", "nobody"])
def test_huge_strings_are_refused_cleanly(channels, sentinels, size, sender):
    for rpc, payload in _huge_requests(size):
        reply = _send(channels, sender, rpc, payload)
        if rpc.kind is not None and rpc.kind.kind == "Pod" and sender == "admin" and (
                rpc.method in ("Create", "Update", "UpdateStatus")):
            # Over the object limit or the field's limit: never stored.
            assert reply.code in (grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  grpc.StatusCode.NOT_FOUND), (str(rpc), reply)
        if size > 3 * hostile.MiB and rpc.method == "Create" and sender == "admin":
            assert reply.code == grpc.StatusCode.RESOURCE_EXHAUSTED, (str(rpc), reply)
            assert "3145728" in reply.details, reply.details


def test_a_message_over_the_transport_limit_is_refused(channels, sentinels):
    """17 MiB: over gRPC's 16 MiB receive limit, refused by the transport
    with RESOURCE_EXHAUSTED; the connection stays usable."""
    pod = objects.pod("too-big", FUZZ_NS)
    pod.metadata.annotations["big"] = "y" * (17 * hostile.MiB)
    rpc = next(r for r in RPCS if r.path == f"/{kinds.BY_KIND['Pod'].service}/Create")
    reply = _send(channels, "admin", rpc, pod.SerializeToString())
    assert reply.code == grpc.StatusCode.RESOURCE_EXHAUSTED, reply
    assert _get(channels["admin"], kinds.BY_KIND["Namespace"], "", FUZZ_NS).metadata.name


def _negative_requests() -> list[tuple[str, str, object, bool]]:
    """(kind, method, request, must be refused as invalid)."""
    out: list[tuple[str, str, object, bool]] = []
    deployment = objects.deployment("neg-replicas", FUZZ_NS)
    deployment.spec.replicas = -1
    out.append(("Deployment", "Create", deployment, True))
    rs = objects.replicaset("neg-replicas", FUZZ_NS, replicas=-(2**31))
    out.append(("ReplicaSet", "Create", rs, True))
    svc = objects.service("neg-port", FUZZ_NS, port=-80)
    out.append(("Service", "Create", svc, True))
    svc = objects.service("neg-target", FUZZ_NS)
    svc.spec.ports[0].target_port.int_value = -1
    out.append(("Service", "Create", svc, True))
    svc = objects.service("neg-nodeport", FUZZ_NS, type_="NodePort")
    svc.spec.ports[0].node_port = -30000
    out.append(("Service", "Create", svc, True))
    pod = objects.pod("neg-port", FUZZ_NS)
    pod.spec.containers[0].ports.add(container_port=-1)
    out.append(("Pod", "Create", pod, True))
    pod = objects.pod("neg-grace", FUZZ_NS)
    pod.spec.termination_grace_period_seconds = -5
    out.append(("Pod", "Create", pod, True))
    pod = objects.pod("neg-probe", FUZZ_NS)
    pod.spec.containers[0].liveness_probe.exec.command.append("true")
    pod.spec.containers[0].liveness_probe.period_seconds = -1
    out.append(("Pod", "Create", pod, True))
    for grace in (-1, -(2**63)):
        out.append(("Pod", "Delete", meta_pb2.DeleteRequest(
            namespace=FUZZ_NS, name="no-such-pod", grace_period_seconds=grace), False))
    for limit in (-1, -(2**63)):
        out.append(("Pod", "List", meta_pb2.ListRequest(namespace=FUZZ_NS, limit=limit), False))
    out.append(("Pod", "Logs", core.PodLogsRequest(namespace=FUZZ_NS, name="p", tail_lines=-1,
                                                   since_seconds=-(2**63)), False))
    out.append(("Pod", "Exec", core.ExecRequest(namespace=FUZZ_NS, name="p", command=["true"],
                                                timeout_seconds=-(2**31)), False))
    return out


def test_negative_numbers_are_refused_or_harmless(channels, sentinels):
    by_path = {r.path: r for r in RPCS}
    for kind_name, method, request, invalid in _negative_requests():
        rpc = by_path[f"/{kinds.BY_KIND[kind_name].service}/{method}"]
        reply = _send(channels, "admin", rpc, request.SerializeToString())
        if invalid:
            assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (kind_name, method, reply)
    # A watch asked to end after a second ends by itself ...
    for method in ("Watch", "WatchBatched"):
        request = meta_pb2.WatchRequest(namespace=FUZZ_NS, timeout_seconds=1)
        reply = _send(channels, "admin", by_path[f"/{kinds.BY_KIND['Pod'].service}/{method}"],
                      request.SerializeToString(), read=10**6, linger=15)
        assert reply.code == grpc.StatusCode.OK and reply.messages >= 1, reply
    # ... and one whose timeout is negative (or huge) still ends when cancelled.
    for kind in kinds.KINDS:
        for method in ("Watch", "WatchBatched"):
            for timeout in (-1, -(2**63), 2**63 - 1):
                request = meta_pb2.WatchRequest(namespace=FUZZ_NS, timeout_seconds=timeout,
                                                allow_bookmarks=True)
                _send(channels, "admin", by_path[f"/{kind.service}/{method}"],
                      request.SerializeToString(), linger=0.1)


def _enum_cases() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    svc = objects.service("enum-type", FUZZ_NS)
    svc.spec.type = "NotAThing"
    out.append(("Service", svc))
    svc = objects.service("enum-proto", FUZZ_NS)
    svc.spec.ports[0].protocol = "XTP"
    out.append(("Service", svc))
    pod = objects.pod("enum-restart", FUZZ_NS)
    pod.spec.restart_policy = "Sometimes"
    out.append(("Pod", pod))
    pod = objects.pod("enum-pull", FUZZ_NS)
    pod.spec.containers[0].image_pull_policy = "Whenever"
    out.append(("Pod", pod))
    deployment = objects.deployment("enum-strategy", FUZZ_NS)
    deployment.spec.strategy.type = "Sideways"
    out.append(("Deployment", deployment))
    deployment = objects.deployment("enum-operator", FUZZ_NS)
    deployment.spec.selector.match_expressions.add(key="app", operator="Near", values=["x"])
    out.append(("Deployment", deployment))
    binding = hostile.harmless_sample("ClusterRoleBinding", "enum-subject", "")
    binding.subjects[0].kind = "Robot"
    out.append(("ClusterRoleBinding", binding))
    role = objects.cluster_role("enum-verb", [objects.policy_rule(verbs=("teleport",))])
    out.append(("ClusterRole", role))
    return out


def test_unknown_enum_values_are_refused(channels, sentinels):
    """Kubernetes' enums are strings here (proto3 enums are not used): a
    value the API does not know is INVALID_ARGUMENT naming the field."""
    by_path = {r.path: r for r in RPCS}
    for kind_name, obj in _enum_cases():
        rpc = by_path[f"/{kinds.BY_KIND[kind_name].service}/Create"]
        reply = _send(channels, "admin", rpc, obj.SerializeToString())
        assert reply.code == grpc.StatusCode.INVALID_ARGUMENT, (kind_name, reply)
    delete = meta_pb2.DeleteRequest(namespace=FUZZ_NS, name="no-such-pod",
                                    propagation_policy="Sideways")
    reply = _send(channels, "admin",
                  by_path[f"/{kinds.BY_KIND['Pod'].service}/Delete"], delete.SerializeToString())
    assert reply.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), reply


def test_hostile_bearer_tokens_are_unauthenticated(secure, sentinels):
    """On the token port, malformed authorization metadata is
    UNAUTHENTICATED, never a crash."""
    cfg = secure.pki.config(secure.token_address)
    rpc = next(r for r in RPCS if r.method == "WhoAmI")
    headers = [(), (("authorization", ""),), (("authorization", "Bearer"),),
               (("authorization", "Bearer "),), (("authorization", "Basic dG9rLWFkbWlu"),),
               (("authorization", "Bearer " + "t" * 6000),),
               (("authorization", "Bearer tok-admi"),),
               (("authorization", "Bearer tok-admin2"),)]
    with grpc.secure_channel(secure.token_address, cfg.credentials(),
                             options=channel_options.CLIENT_OPTIONS) as chan:
        fn = chan.unary_unary(rpc.path, request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        for metadata in headers:
            with pytest.raises(grpc.RpcError) as caught:
                fn(b"", metadata=metadata, timeout=10)
            hostile.check_status(caught.value)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata


def test_every_fuzzed_watch_was_released(secure, channels, sentinels, tally):
    """Runs last: a node identity that opened (and had cancelled) many
    watches during the fuzz can open exactly MAX_WATCHES now — the server
    released every one of them (it may take a moment to notice the
    cancellations: poll)."""
    rpc = next(r for r in RPCS if r.path == f"/{kinds.BY_KIND['Pod'].service}/Watch")
    request = meta_pb2.WatchRequest(namespace=FUZZ_NS, allow_bookmarks=True).SerializeToString()
    chan = channels["node-0"]
    deadline = time.monotonic() + 30
    while True:
        codes = _open_watches(chan, rpc, request, MAX_WATCHES + 1)
        if codes.count(None) == MAX_WATCHES or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert codes == [None] * MAX_WATCHES + [grpc.StatusCode.RESOURCE_EXHAUSTED], codes


def _open_watches(chan: grpc.Channel, rpc: Rpc, request: bytes, count: int
                  ) -> list[grpc.StatusCode | None]:
    """Open ``count`` watches one after another, each confirmed by its first
    event (None) or refused (its code); then cancel them all."""
    calls, codes = [], []
    try:
        for _ in range(count):
            call = chan.unary_stream(rpc.path, request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)(request, timeout=30)
            calls.append(call)
            timer = threading.Timer(10.0, call.cancel)  # a first event comes within ~0.5 s
            timer.start()
            try:
                next(call)
                codes.append(None)
            except grpc.RpcError as err:
                hostile.check_status(err)
                codes.append(err.code())
            finally:
                timer.cancel()
    finally:
        for call in calls:
            call.cancel()
    return codes
