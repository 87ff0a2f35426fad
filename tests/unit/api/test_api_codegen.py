"""The committed generated code matches proto/ (run `make proto` if not)."""

from __future__ import annotations

import filecmp
import pathlib

from services.api import codegen


def test_codegen_committed_code_is_fresh(tmp_path):
    fresh = tmp_path / "gen"
    codegen.generate(fresh)
    committed = codegen.DEFAULT_OUT
    stale = []
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    committed_files = {p.relative_to(committed) for p in committed.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts}
    assert fresh_files == committed_files, "files differ: run `make proto`"
    for rel in sorted(fresh_files):
        if not filecmp.cmp(fresh / rel, committed / rel, shallow=False):
            stale.append(str(rel))
    assert not stale, f"stale generated files (run `make proto`): {stale}"


def test_codegen_proto_is_self_contained():
    """Every import in proto/ is another file in proto/ or a protobuf well-known type."""
    root = codegen.PROTO_ROOT
    for proto in root.rglob("*.proto"):
        for line in proto.read_text().splitlines():
            if line.startswith("import "):
                target = line.split('"')[1]
                assert (root / target).exists() or target.startswith("google/protobuf/"), \
                    f"{proto.name} imports {target}"


def test_codegen_every_message_has_kubernetes_json_names():
    from services.api.gen.kybernetes.core.v1 import types_pb2 as core
    fields = core.PodStatus.DESCRIPTOR.fields_by_name
    assert fields["pod_ip"].json_name == "podIP"
    assert fields["host_ip"].json_name == "hostIP"
    assert core.NodeSpec.DESCRIPTOR.fields_by_name["pod_cidr"].json_name == "podCIDR"
    assert pathlib.Path(codegen.__file__).exists()
