"""Label and annotation size limits at their exact boundaries (Kubernetes'
ValidateLabels / ValidateAnnotations)."""

from __future__ import annotations

import pytest

from services.apiserver.validation_common import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    annotations,
    labels,
)

PREFIX_253 = ".".join(["a" * 63] * 4)[:253]  # a DNS subdomain of 253 characters


def test_total_annotation_size_limit_is_kubernetes_value():
    assert TOTAL_ANNOTATION_SIZE_LIMIT_B == 262144


@pytest.mark.parametrize("key,ok", [
    ("a" * 63, True),
    ("a" * 64, False),
    (f"{PREFIX_253}/name", True),
    (f"{PREFIX_253}a/name", False),
    ("example.com/" + "n" * 63, True),
    ("example.com/" + "n" * 64, False),
    ("Example.com/name", False),      # a label prefix is a lowercase DNS subdomain
    ("/name", False),
    ("example.com/", False),
    ("a/b/c", False),
    ("my_key.with-All.3", True),
    ("-start", False),
    ("end_", False),
    ("spa ce", False),
])
def test_label_keys(key, ok):
    errs = labels({key: "v"}, "metadata.labels")
    assert (errs == []) is ok, errs
    assert all(e.path == "metadata.labels" for e in errs)


@pytest.mark.parametrize("value,ok", [
    ("", True),
    ("v" * 63, True),
    ("v" * 64, False),
    ("My_value.1-2", True),
    ("-v", False),
    ("v/v", False),
    ("é", False),
])
def test_label_values(value, ok):
    errs = labels({"k": value}, "spec.nodeSelector")
    assert (errs == []) is ok, errs
    if not ok:
        assert str(errs[0]).startswith("spec.nodeSelector: Invalid value: ")


def test_annotation_total_size_boundary_counts_keys_and_values_in_bytes():
    limit = TOTAL_ANNOTATION_SIZE_LIMIT_B
    assert annotations({"k": "x" * (limit - 1)}, "metadata.annotations") == []
    errs = annotations({"k": "x" * limit}, "metadata.annotations")
    assert [str(e) for e in errs] == [
        "metadata.annotations: Too long: must have at most 262144 bytes"]
    # Two-byte characters count twice.
    assert annotations({"k": "é" * (limit // 2)}, "metadata.annotations") != []
    # Spread over many keys, the total is what counts.
    many = {f"k{i:04d}": "x" * 1000 for i in range(263)}
    assert annotations(many, "metadata.annotations") != []


def test_annotation_keys_are_qualified_names_in_any_case():
    assert annotations({"Example.COM/Key": "any\nvalue"}, "metadata.annotations") == []
    errs = annotations({"bad key": "x", "x" * 64: "y"}, "metadata.annotations")
    assert len(errs) == 2 and all(e.path == "metadata.annotations" for e in errs)
