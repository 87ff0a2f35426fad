"""Hypothesis fuzz of every RPC: random and mutated requests never crash the
server, every error is a well-formed status with a one-line message, and
objects stored before the fuzz are unchanged afterwards."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api import kinds
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from tests.support import objects

ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
UNARY = ["Create", "Get", "List", "Update", "Delete"]
FUZZ_NS = "fuzz"


@pytest.fixture(scope="module")
def channel(apiserver):
    with grpc.insecure_channel(apiserver.address) as chan:
        yield chan


@pytest.fixture(scope="module")
def sentinels(channel):
    """Objects that must survive the fuzz byte for byte."""
    def call(kind, method, request):
        return channel.unary_unary(
            f"/{kind.service}/{method}", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=kind.message.FromString)(request, timeout=10)
    ns_kind = kinds.BY_KIND["Namespace"]
    try:
        call(ns_kind, "Create", objects.namespace(FUZZ_NS))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    stored = {}
    for kind in ("Pod", "Service", "Deployment"):
        info = kinds.BY_KIND[kind]
        try:
            stored[kind] = call(info, "Create", objects.sample(kind, "sentinel", FUZZ_NS))
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            stored[kind] = call(info, "Get", meta_pb2.GetRequest(namespace=FUZZ_NS,
                                                                  name="sentinel"))
    yield stored
    for kind, obj in stored.items():
        now = call(kinds.BY_KIND[kind], "Get", meta_pb2.GetRequest(namespace=FUZZ_NS,
                                                                   name="sentinel"))
        assert now == obj, f"{kind} sentinel changed by the fuzz"


def _check(err: grpc.RpcError) -> None:
    assert err.code() in ALLOWED, (err.code(), err.details())
    details = err.details() or ""
    assert details and "\n" not in details and "Traceback" not in details, details


def _raw(channel, kind, method):
    return channel.unary_unary(f"/{kind.service}/{method}",
                               request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)


names = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
small_ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@st.composite
def mutated_object(draw):
    """A valid object of a random kind with random fields scribbled over."""
    kind = draw(st.sampled_from([k.kind for k in kinds.KINDS]))
    obj = objects.sample(kind, draw(names), draw(st.sampled_from([FUZZ_NS, "", "default",
                                                                   draw(names)])))
    meta = obj.metadata
    if draw(st.booleans()):
        meta.labels[draw(names)] = draw(names)
    if draw(st.booleans()):
        meta.resource_version = draw(st.sampled_from(["", "0", "-1", "abc", "99999999999",
                                                      draw(names)]))
    if draw(st.booleans()):
        meta.generate_name = draw(names)
    if draw(st.booleans()):
        meta.finalizers.append(draw(names))
    if draw(st.booleans()):
        ref = meta.owner_references.add(name=draw(names), kind=draw(names))
        ref.uid = draw(names)
    if kind == "Pod" and draw(st.booleans()):
        c = obj.spec.containers.add(name=draw(names), image=draw(names))
        c.ports.add(container_port=draw(small_ints), protocol=draw(names))
        c.resources.limits[draw(names)] = draw(names)
        if draw(st.booleans()):
            c.liveness_probe.http_get.port.str_value = draw(names)
            c.liveness_probe.period_seconds = draw(small_ints)
    if kind == "Service" and draw(st.booleans()):
        obj.spec.type = draw(st.sampled_from(["NodePort", "ClusterIP", "LoadBalancer", ""]))
        obj.spec.cluster_ip = draw(st.sampled_from(["", "None", "10.96.0.1", "1.2.3.4.5",
                                                    draw(names)]))
        p = obj.spec.ports.add(port=draw(small_ints), node_port=draw(small_ints))
        p.target_port.int_value = draw(small_ints)
    if kind == "Deployment" and draw(st.booleans()):
        obj.spec.replicas = draw(small_ints)
        obj.spec.strategy.rolling_update.max_surge.str_value = draw(names)
    return kind, obj


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated_object(), method=st.sampled_from(["Create", "Update", "UpdateStatus"]))
def test_fuzz_mutated_objects_get_only_well_formed_errors(channel, sentinels, case, method):
    kind_name, obj = case
    kind = kinds.BY_KIND[kind_name]
    if method == "UpdateStatus" and not kind.has_status:
        method = "Update"
    try:
        _raw(channel, kind, method)(obj.SerializeToString(), timeout=10)
    except grpc.RpcError as err:
        _check(err)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(list(kinds.KINDS)), method=st.sampled_from(UNARY),
       payload=st.binary(max_size=400))
def test_fuzz_random_bytes_never_crash_the_server(channel, sentinels, kind, method, payload):
    try:
        _raw(channel, kind, method)(payload, timeout=10)
    except grpc.RpcError as err:
        _check(err)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(list(kinds.KINDS)), namespace=names, name=names,
       labels=names, fields=names, rv=names, limit=st.integers(-5, 10**9),
       token=names, grace=st.one_of(st.none(), st.integers(-(2**40), 2**40)),
       policy=names)
def test_fuzz_list_get_delete_arguments(channel, sentinels, kind, namespace, name, labels,
                                        fields, rv, limit, token, grace, policy):
    requests = [
        ("List", meta_pb2.ListRequest(namespace=namespace, label_selector=labels,
                                      field_selector=fields, limit=limit, continue_token=token,
                                      resource_version=rv)),
        ("Get", meta_pb2.GetRequest(namespace=namespace, name=name)),
    ]
    if name != "sentinel":
        delete = meta_pb2.DeleteRequest(namespace=namespace, name=name, propagation_policy=policy)
        if grace is not None:
            delete.grace_period_seconds = grace
        requests.append(("Delete", delete))
    for method, request in requests:
        try:
            _raw(channel, kind, method)(request.SerializeToString(), timeout=10)
        except grpc.RpcError as err:
            _check(err)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(list(kinds.KINDS)), labels=names, fields=names, rv=names)
def test_fuzz_watch_arguments(channel, sentinels, kind, labels, fields, rv):
    stream = channel.unary_stream(f"/{kind.service}/Watch",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=kind.event_message.FromString)
    call = stream(meta_pb2.WatchRequest(label_selector=labels, field_selector=fields,
                                        resource_version=rv, timeout_seconds=1), timeout=10)
    try:
        for _ in call:
            pass
    except grpc.RpcError as err:
        _check(err)
