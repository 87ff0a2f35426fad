"""Validation: FieldError wording, dispatch, and the metadata rules every kind shares."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.validation import FieldError, validate, validate_status
from services.apiserver.validation_common import (
    duplicate,
    forbidden,
    immutable,
    invalid,
    required,
    unsupported,
)


def _messages(errs):
    return [str(e) for e in errs]


def _lease(name="l", namespace="default"):
    lease = coordination.Lease()
    lease.metadata.name, lease.metadata.namespace = name, namespace
    return lease


def _node(name="n1"):
    node = core.Node()
    node.metadata.name = name
    return node


# --- FieldError wording -------------------------------------------------------------------


def test_field_error_str_is_path_colon_message():
    assert str(FieldError("spec.containers[0].image", "Required value")) == \
        "spec.containers[0].image: Required value"


@pytest.mark.parametrize("error, text", [
    (required("a.b"), "a.b: Required value"),
    (required("a", "must specify a handler type"),
     "a: Required value: must specify a handler type"),
    (invalid("a", "x", "why"), 'a: Invalid value: "x": why'),
    (invalid("a", 70000, "why"), "a: Invalid value: 70000: why"),
    (invalid("a", True, "why"), "a: Invalid value: true: why"),
    (unsupported("a", "X", ["A", "B"]), 'a: Unsupported value: "X": supported values: "A", "B"'),
    (duplicate("a", "x"), 'a: Duplicate value: "x"'),
    (forbidden("a", "no"), "a: Forbidden: no"),
    (immutable("a", "x"), 'a: Invalid value: "x": field is immutable'),
])
def test_field_error_constructors_use_kubernetes_wording(error, text):
    assert str(error) == text


def test_validate_rejects_unknown_message_types():
    with pytest.raises(TypeError):
        validate(core.Binding())


# --- names and namespaces -----------------------------------------------------------------


def test_metadata_valid_lease_has_no_errors():
    assert validate(_lease()) == []


def test_metadata_name_required():
    assert _messages(validate(_lease(name=""))) == [
        "metadata.name: Required value: name or generateName is required"]


@pytest.mark.parametrize("name, ok", [
    ("a", True), ("a.b-c", True), ("0abc", True), ("a" * 253, True),
    ("A", False), ("a_b", False), ("-a", False), ("a.", False), ("a" * 254, False),
])
def test_metadata_name_is_dns1123_subdomain(name, ok):
    errs = validate(_lease(name=name))
    assert (errs == []) is ok
    if not ok:
        assert all(e.path == "metadata.name" and "Invalid value" in e.message for e in errs)


def test_metadata_namespace_name_is_dns1123_label():
    ns = core.Namespace()
    ns.metadata.name = "a.b"
    assert [e.path for e in validate(ns)] == ["metadata.name"]
    ns.metadata.name = "a" * 64
    assert "must be no more than 63 characters" in str(validate(ns)[0])


def test_metadata_service_name_must_start_with_a_letter():
    svc = core.Service()
    svc.metadata.name, svc.metadata.namespace = "1svc", "default"
    svc.spec.type, svc.spec.session_affinity, svc.spec.cluster_ip = "ClusterIP", "None", "None"
    assert [e.path for e in validate(svc)] == ["metadata.name"]


def test_metadata_generate_name_prefix_may_end_with_dash():
    lease = _lease()
    lease.metadata.generate_name = "web-"
    assert validate(lease) == []
    lease.metadata.generate_name = "Web-"
    assert [e.path for e in validate(lease)] == ["metadata.generateName"]


def test_metadata_namespace_required_for_namespaced_kinds():
    assert _messages(validate(_lease(namespace=""))) == ["metadata.namespace: Required value"]
    assert [e.path for e in validate(_lease(namespace="Bad_NS"))] == ["metadata.namespace"]


def test_metadata_namespace_forbidden_for_cluster_scoped_kinds():
    node = _node()
    node.metadata.namespace = "default"
    assert _messages(validate(node)) == ["metadata.namespace: Forbidden: not allowed on this type"]


# --- labels, annotations, finalizers ------------------------------------------------------


@pytest.mark.parametrize("key, value, ok", [
    ("app", "web", True),
    ("example.com/app", "", True),
    ("a_b.c-d", "A_b.c-9", True),
    ("k", "v" * 63, True),
    ("k", "v" * 64, False),
    ("-k", "v", False),
    ("k", "-v", False),
    ("k", "a b", False),
    ("Example.com/k", "v", False),
    ("a/b/c", "v", False),
    ("/k", "v", False),
    ("k" * 64, "v", False),
])
def test_metadata_labels_keys_and_values(key, value, ok):
    lease = _lease()
    lease.metadata.labels[key] = value
    errs = validate(lease)
    assert (errs == []) is ok
    assert all(e.path == "metadata.labels" for e in errs)


def test_metadata_annotation_keys_and_total_size():
    lease = _lease()
    lease.metadata.annotations["Example.com/Key"] = "any value at all\n"
    assert validate(lease) == []
    lease.metadata.annotations["bad key"] = "x"
    assert [e.path for e in validate(lease)] == ["metadata.annotations"]
    big = _lease()
    big.metadata.annotations["a"] = "x" * (256 * 1024)
    assert _messages(validate(big)) == [
        "metadata.annotations: Too long: must have at most 262144 bytes"]


def test_metadata_finalizers_are_qualified_names():
    lease = _lease()
    lease.metadata.finalizers.extend(["example.com/cleanup", "bad finalizer"])
    assert [e.path for e in validate(lease)] == ["metadata.finalizers[1]"]


# --- owner references ---------------------------------------------------------------------


def _owner(lease, kind="ReplicaSet", name="rs", uid="u1", api_version="apps/v1",
           controller=None):
    ref = lease.metadata.owner_references.add(api_version=api_version, kind=kind, name=name,
                                              uid=uid)
    if controller is not None:
        ref.controller = controller
    return ref


def test_metadata_owner_reference_fields_required():
    lease = _lease()
    _owner(lease, kind="", name="", uid="", api_version="")
    assert _messages(validate(lease)) == [
        'metadata.ownerReferences[0].apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences[0].kind: Invalid value: "": kind must not be empty',
        'metadata.ownerReferences[0].name: Invalid value: "": name must not be empty',
        'metadata.ownerReferences[0].uid: Invalid value: "": uid must not be empty',
    ]


def test_metadata_at_most_one_controller_reference():
    lease = _lease()
    _owner(lease, name="a", uid="1", controller=True)
    _owner(lease, name="b", uid="2", controller=False)
    assert validate(lease) == []
    _owner(lease, name="c", uid="3", controller=True)
    errs = validate(lease)
    assert [e.path for e in errs] == ["metadata.ownerReferences"]
    assert "Only one reference can have Controller set to true" in errs[0].message
    assert "ReplicaSet/a and ReplicaSet/c" in errs[0].message


# --- update rules -------------------------------------------------------------------------


def _stored():
    lease = _lease()
    lease.metadata.uid = "uid-1"
    lease.metadata.creation_timestamp.FromSeconds(1000)
    return lease


@pytest.mark.parametrize("change, path", [
    (lambda m: setattr(m, "name", "other"), "metadata.name"),
    (lambda m: setattr(m, "namespace", "other"), "metadata.namespace"),
    (lambda m: setattr(m, "uid", "uid-2"), "metadata.uid"),
    (lambda m: m.creation_timestamp.FromSeconds(2000), "metadata.creationTimestamp"),
])
def test_metadata_update_immutable_fields(change, path):
    old = _stored()
    new = coordination.Lease()
    new.CopyFrom(old)
    change(new.metadata)
    errs = [e for e in validate(new, old) if e.path == path]
    assert len(errs) == 1 and errs[0].message.endswith("field is immutable")


def test_metadata_update_empty_uid_and_timestamp_mean_unchanged():
    old = _stored()
    new = coordination.Lease()
    new.CopyFrom(old)
    new.metadata.uid = ""
    new.metadata.ClearField("creation_timestamp")
    new.metadata.labels["changed"] = "yes"
    assert validate(new, old) == []


def test_metadata_update_no_new_finalizers_while_deleting():
    old = _stored()
    old.metadata.finalizers.append("example.com/a")
    old.metadata.deletion_timestamp.FromSeconds(5000)
    new = coordination.Lease()
    new.CopyFrom(old)
    del new.metadata.finalizers[:]
    assert validate(new, old) == []
    new.metadata.finalizers.append("example.com/b")
    assert [e.path for e in validate(new, old)] == ["metadata.finalizers"]


def test_validate_status_applies_metadata_update_rules():
    old = _stored()
    new = coordination.Lease()
    new.CopyFrom(old)
    assert validate_status(new, old) == []
    new.metadata.name = "renamed"
    assert [e.path for e in validate_status(new, old)] == ["metadata.name"]


def test_validate_reports_each_error_once():
    node = _node(name="")
    errs = validate(node)
    assert len(errs) == len(set(errs))
