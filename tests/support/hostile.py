"""Hostile requests for fuzzing the API server.

Every RPC it serves (read from the proto descriptors, so a new kind or
method is fuzzed without a change here), raw protobuf wire builders for
what a well-behaved client library can never send — groups nested
thousands deep, invalid UTF-8 in string fields, negative varints in any
integer field, wrong wire types, unknown fields — hypothesis strategies
built from them, and the one check every reply must pass: OK or a
well-formed status.

Requests are sent as raw bytes (``unary_unary`` / ``unary_stream`` with an
identity serializer), so nothing on the client side can clean them up.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from services.api import kinds
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz_pb2
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from tests.support import objects

MiB = 1024 * 1024
MAX_DETAILS = 1024  # the server's one-line messages are cut at 1 KiB (errors.one_line)

# A status that is never a well-formed answer: a bug (UNKNOWN, INTERNAL,
# DATA_LOSS), a hang (DEADLINE_EXCEEDED: the client's deadline ran out), or
# a method the descriptors declare but the server does not serve.
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                   grpc.StatusCode.DATA_LOSS, grpc.StatusCode.DEADLINE_EXCEEDED,
                   grpc.StatusCode.UNIMPLEMENTED})


# -- the RPCs -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rpc:
    """One method the API server serves."""

    service: str
    method: str
    request: type[Message]
    response: type[Message]
    streaming: bool
    kind: kinds.Kind | None  # None: the Authorization service

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    def __str__(self) -> str:  # what hypothesis prints for a failing example
        return f"{self.service.rsplit('.', 1)[1]}.{self.method}"


def _service_rpcs(service_descriptor: Any, kind: kinds.Kind | None) -> list[Rpc]:
    return [Rpc(service_descriptor.full_name, m.name, GetMessageClass(m.input_type),
                GetMessageClass(m.output_type), m.server_streaming, kind)
            for m in service_descriptor.methods]


def all_rpcs() -> tuple[Rpc, ...]:
    """Every method of every kind's service, and the Authorization service."""
    found: list[Rpc] = []
    for kind in kinds.KINDS:
        service_module = importlib.import_module(kind.stub.__module__.removesuffix("_grpc"))
        short = kind.service.rsplit(".", 1)[1]
        found += _service_rpcs(service_module.DESCRIPTOR.services_by_name[short], kind)
    found += _service_rpcs(authz_pb2.DESCRIPTOR.services_by_name["Authorization"], None)
    return tuple(found)


RPCS = all_rpcs()


def harmless_sample(kind: str, name: str, namespace: str) -> Message:
    """objects.sample, except that a binding binds a user no one is: what
    the fuzz creates must grant no one anything (other tests share the server)."""
    obj = objects.sample(kind, name, namespace)
    if kind in ("ClusterRoleBinding", "RoleBinding"):
        del obj.subjects[:]
        obj.subjects.append(objects.subject("User", "hostile-fuzz-subject"))
    return obj


def valid_request(rpc: Rpc, name: str, namespace: str) -> Message:
    """A well-formed request for ``rpc`` naming ``namespace``/``name``."""
    request = rpc.request
    if rpc.kind is not None and request is rpc.kind.message:
        return harmless_sample(rpc.kind.kind, name, namespace)
    if request is meta_pb2.GetRequest:
        return meta_pb2.GetRequest(namespace=namespace, name=name)
    if request is meta_pb2.ListRequest:
        return meta_pb2.ListRequest(namespace=namespace, limit=5)
    if request is meta_pb2.DeleteRequest:
        return meta_pb2.DeleteRequest(namespace=namespace, name=name)
    if request is meta_pb2.WatchRequest:
        return meta_pb2.WatchRequest(namespace=namespace, allow_bookmarks=True)
    if request is core.Binding:
        binding = core.Binding()
        binding.metadata.name, binding.metadata.namespace = name, namespace
        binding.target.kind, binding.target.name = "Node", "hostile-node-0"
        return binding
    if request is core.PodLogsRequest:
        return core.PodLogsRequest(namespace=namespace, name=name, tail_lines=10)
    if request is core.ExecRequest:
        return core.ExecRequest(namespace=namespace, name=name, command=["true"],
                                stdin=b"\xff\xfe", timeout_seconds=5)
    if request is authz_pb2.SubjectAccessReview:
        review = authz_pb2.SubjectAccessReview()
        review.resource_attributes.verb, review.resource_attributes.resource = "get", "pods"
        review.resource_attributes.namespace, review.resource_attributes.name = namespace, name
        return review
    return request()


# -- raw wire format ----------------------------------------------------------------------

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def varint(value: int) -> bytes:
    """Base-128 varint; a negative value as its 64-bit two's complement
    (10 bytes), as protobuf encodes negative int32/int64."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, LENGTH) + varint(len(payload)) + payload


def nested_groups(depth: int, number: int = 1999) -> bytes:
    """An unknown group holding itself ``depth`` deep: the parser has to
    recurse to skip it, so this tests its recursion limit."""
    return tag(number, START_GROUP) * depth + tag(number, END_GROUP) * depth


def nested_length_delimited(depth: int, number: int = 1999) -> bytes:
    """An unknown length-delimited field holding itself ``depth`` deep."""
    payload = b""
    for _ in range(depth):
        payload = length_delimited(number, payload)
    return payload


BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80",  # a lone surrogate
            b"\xf4\x90\x80\x80", b"ok\xe2\x82", b"\xc0\xaf", b"\x00\xfe\xfe")

# Field paths: (FieldDescriptor, ...) from the request message down to a leaf.
FieldPath = tuple[FieldDescriptor, ...]


def field_paths(descriptor: Descriptor, max_depth: int = 5) -> list[FieldPath]:
    """Every leaf field reachable from ``descriptor`` (map entries and
    repeated fields included), depth-first."""
    paths: list[FieldPath] = []

    def walk(d: Descriptor, prefix: FieldPath) -> None:
        for f in d.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                if len(prefix) + 1 < max_depth:
                    walk(f.message_type, prefix + (f,))
            else:
                paths.append(prefix + (f,))
    walk(descriptor, ())
    return paths


def set_field(path: FieldPath, wire_type: int, payload: bytes) -> bytes:
    """Wire bytes that, appended to a serialized message, set the leaf at
    ``path`` to ``payload`` (sub-messages merge, so the rest survives)."""
    data = tag(path[-1].number, wire_type) + payload
    for outer in reversed(path[:-1]):
        data = length_delimited(outer.number, data)
    return data


def string_value(raw: bytes) -> tuple[int, bytes]:
    return LENGTH, varint(len(raw)) + raw


INTEGER_TYPES = frozenset({FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64,
                           FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
                           FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
                           FieldDescriptor.TYPE_BOOL})

# Names real string "enums" use, and the unknown values an attacker sends.
UNKNOWN_ENUMS = ("NotAThing", "tcp", "Always ", "LoadBalancer2", "*", "-1", "\u0000",
                 "IfNotPresent\nAlways", "Exists ", "DoesNotExist2", "Orphan!", "../../etc")


# -- strategies --------------------------------------------------------------------------

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
dns_label = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}[a-z0-9]\Z")
extreme_ints = st.one_of(
    st.integers(-(2**63), -1),
    st.sampled_from([-1, -(2**31), 2**31 - 1, 2**31, 2**32, 2**63 - 1, -(2**63), 0]),
    st.integers(0, 2**64 - 1))


def huge_string(draw: Callable) -> bytes:
    """1–4 MiB: under and over the 3 MiB object limit (cheap to build)."""
    size = draw(st.sampled_from([MiB, 3 * MiB + 7, 4 * MiB]))
    return b"h" * size


@st.composite
def leaf_value(draw, leaf: FieldDescriptor, allow_huge: bool = True) -> tuple[int, bytes]:
    """(wire type, payload) of a hostile value for ``leaf``."""
    if draw(st.integers(0, 9)) == 0:  # the wrong wire type for the field
        wire = draw(st.sampled_from([VARINT, FIXED64, LENGTH, FIXED32]))
        payload = {VARINT: varint(draw(extreme_ints)), FIXED64: b"\xff" * 8,
                   LENGTH: varint(3) + b"abc", FIXED32: b"\x80\x00\x00\x00"}[wire]
        return wire, payload
    if leaf.type in INTEGER_TYPES or leaf.type == FieldDescriptor.TYPE_ENUM:
        return VARINT, varint(draw(extreme_ints))
    if leaf.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64,
                     FieldDescriptor.TYPE_SFIXED64):
        return FIXED64, draw(st.binary(min_size=8, max_size=8))
    if leaf.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32,
                     FieldDescriptor.TYPE_SFIXED32):
        return FIXED32, draw(st.binary(min_size=4, max_size=4))
    # strings and bytes: the same hostile payloads; only bytes may hold bad UTF-8
    choice = draw(st.integers(0, 19))
    if choice == 0 and allow_huge:
        return string_value(huge_string(draw))
    if choice <= 6:
        return string_value(draw(st.sampled_from(BAD_UTF8)))
    if choice <= 9:
        return string_value(draw(st.sampled_from(UNKNOWN_ENUMS)).encode())
    if choice <= 11:
        return string_value(draw(st.binary(max_size=64)))
    return string_value(draw(text).encode())


def _namespace(fuzz_namespace: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(fuzz_namespace), st.just(""), dns_label, text)


@st.composite
def mutated_request(draw, rpc: Rpc, fuzz_namespace: str, allow_huge: bool = True) -> bytes:
    """A valid request with 1–4 fields overwritten by hostile values at the
    wire level (invalid UTF-8, negative or huge numbers, unknown enum
    strings, wrong wire types, 1–4 MiB strings, unknown fields)."""
    base = valid_request(rpc, draw(st.one_of(dns_label, text)),
                         draw(_namespace(fuzz_namespace))).SerializeToString()
    paths = field_paths(rpc.request.DESCRIPTOR)
    extra = b""
    for _ in range(draw(st.integers(1, 4))):
        if not paths or draw(st.integers(0, 7)) == 0:  # an unknown field
            number = draw(st.integers(1000, 536_870_911))
            extra += length_delimited(number, draw(st.binary(max_size=32)))
            continue
        path = draw(st.sampled_from(paths))
        wire, payload = draw(leaf_value(path[-1], allow_huge))
        extra += set_field(path, wire, payload)
    return base + extra


@st.composite
def byte_mutation(draw, rpc: Rpc, fuzz_namespace: str) -> bytes:
    """A valid request's bytes with a few bytes flipped, inserted, dropped
    or the message cut short: mostly corrupt framing."""
    data = bytearray(valid_request(rpc, draw(dns_label),
                                   draw(_namespace(fuzz_namespace))).SerializeToString())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[at:]
        elif op == "duplicate":
            data += data[at:]
    return bytes(data)


# -- sending and checking ------------------------------------------------------------------


def check_status(err: grpc.RpcError, *, cancelled_by_us: bool = False) -> None:
    """A refusal must be a known, deliberate status with a clear one-line message."""
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.CANCELLED and cancelled_by_us:
        return
    assert code not in NEVER and code != grpc.StatusCode.CANCELLED, (code, details[:300])
    assert details, f"{code.name} without a message"
    assert "\n" not in details and "Traceback" not in details, details[:300]
    assert len(details) <= MAX_DETAILS, f"{code.name} message of {len(details)} chars"


@dataclasses.dataclass
class Reply:
    code: grpc.StatusCode
    details: str = ""
    messages: int = 0


def call_unary(chan: grpc.Channel, rpc: Rpc, payload: bytes, timeout: float = 20.0) -> Reply:
    """Send ``payload``; an OK reply must decode as the method's response."""
    fn = chan.unary_unary(rpc.path, request_serializer=_raw, response_deserializer=_raw)
    try:
        reply = fn(payload, timeout=timeout)
    except grpc.RpcError as err:
        check_status(err)
        return Reply(err.code(), err.details() or "")
    _must_decode(rpc.response, reply, rpc)
    return Reply(grpc.StatusCode.OK, messages=1)


def call_stream(chan: grpc.Channel, rpc: Rpc, payload: bytes, *, read: int = 1,
                linger: float = 0.3, timeout: float = 20.0) -> Reply:
    """Open a stream, read up to ``read`` messages (each must decode), and
    cancel it if it has not ended by itself within ``linger`` seconds of
    opening or once ``read`` messages are in. The stream must end or be
    cancelled before ``timeout`` (the deadline: running into it is a hang)."""
    fn = chan.unary_stream(rpc.path, request_serializer=_raw, response_deserializer=_raw)
    call = fn(payload, timeout=timeout)
    cancelled = threading.Event()

    def cancel() -> None:
        cancelled.set()
        call.cancel()
    timer = threading.Timer(linger, cancel)
    timer.start()
    count = 0
    try:
        for message in call:
            _must_decode(rpc.response, message, rpc)
            count += 1
            if count >= read:
                cancel()
                break
    except grpc.RpcError as err:
        check_status(err, cancelled_by_us=cancelled.is_set())
        code = err.code()
        return Reply(code, err.details() or "", count)
    finally:
        timer.cancel()
    return Reply(grpc.StatusCode.CANCELLED if cancelled.is_set() else grpc.StatusCode.OK,
                 messages=count)


def send(chan: grpc.Channel, rpc: Rpc, payload: bytes, **kw: Any) -> Reply:
    return (call_stream if rpc.streaming else call_unary)(chan, rpc, payload, **kw)


def _raw(data: bytes) -> bytes:
    return data


def _must_decode(response: type[Message], data: bytes, rpc: Rpc) -> None:
    try:
        response.FromString(data)
    except DecodeError as err:
        raise AssertionError(f"{rpc}: the server sent a reply that is not a "
                             f"{response.DESCRIPTOR.full_name}: {err}") from None


def secure_channel(secure: Any, user: str, groups: tuple[str, ...]) -> grpc.Channel:
    """A blocking mutual-TLS channel to the secured API server as ``user``."""
    from services.machinery import channel as channels
    cfg = secure.pki.config(secure.address, user, groups)
    return grpc.secure_channel(secure.address, cfg.credentials(),
                               options=channels.CLIENT_OPTIONS)
