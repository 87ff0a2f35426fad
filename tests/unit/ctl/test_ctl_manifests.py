"""Reading -f paths: files, directories in name order, stdin; decode errors."""

from __future__ import annotations

import io

import pytest

from services.ctl import manifests
from services.ctl.context import CommandError

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: []\n"


def test_manifests_directory_files_in_name_order(tmp_path):
    (tmp_path / "b.yaml").write_text(POD.format(name="b"))
    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "Pod", '
                                     '"metadata": {"name": "a"}}')
    (tmp_path / "c.yml").write_text(POD.format(name="c") + "---\n" + POD.format(name="d"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    loaded = manifests.load([str(tmp_path)])
    assert [m.name for m in loaded] == ["a", "b", "c", "d"]
    assert loaded[0].source.endswith("a.json") and loaded[0].kind.kind == "Pod"


def test_manifests_stdin_is_dash():
    loaded = manifests.load(["-"], stdin=io.StringIO(POD.format(name="x")))
    assert [(m.source, m.name) for m in loaded] == [("STDIN", "x")]


def test_manifests_missing_path_is_one_error(tmp_path):
    with pytest.raises(CommandError, match=r'the path ".*nope.yaml" does not exist'):
        manifests.load([str(tmp_path / "nope.yaml")])


def test_manifests_yaml_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Pod\nmetadata:\n  name: [x\n")
    with pytest.raises(CommandError) as caught:
        manifests.load([str(path)])
    assert str(caught.value).startswith(f"error parsing {path}:")


def test_manifests_decode_errors_name_the_source(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("apiVersion: v1\nkind: Foo\nmetadata: {name: x}\n")
    with pytest.raises(CommandError, match=rf'error validating "{path}": unknown kind "Foo"'):
        manifests.load([str(path)])


def test_manifests_warnings_kept_per_object(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(POD.format(name="x").replace("containers: []", "containers: []\n  bogus: 1"))
    [loaded] = manifests.load([str(path)])
    assert loaded.warnings == ['unknown field "spec.bogus"']
    with pytest.raises(CommandError, match='strict decoding error: unknown field "spec.bogus"'):
        manifests.load([str(path)], strict=True)


def test_manifests_object_needs_a_name(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\n")
    with pytest.raises(CommandError, match="Pod has no metadata.name"):
        manifests.load([str(path)])
