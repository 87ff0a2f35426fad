"""``-f FILE|DIR|-``: reading manifests and turning them into messages.

Everything is read and decoded before anything is sent, so a typo in the
third document stops ``kyb apply`` before the first one changes the cluster.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.message import Message

from services.api import convert, kinds
from services.ctl.context import CommandError

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"


@dataclasses.dataclass
class Manifest:
    """One object from a file: where it came from, its text form, its message."""

    source: str
    data: dict[str, Any]
    message: Message
    kind: kinds.Kind
    warnings: list[str]

    @property
    def name(self) -> str:
        return self.message.metadata.name


def expand_paths(paths: Sequence[str]) -> list[str]:
    """Files named, and a directory's *.yaml, *.yml, *.json in name order."""
    files: list[str] = []
    for path in paths:
        if path == "-":
            files.append(path)
            continue
        p = pathlib.Path(path)
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix in SUFFIXES)
            if not found:
                raise CommandError(f'error reading "{path}": no files with extensions '
                                   f"{list(SUFFIXES)}")
            files.extend(str(c) for c in found)
        elif p.exists():
            files.append(path)
        else:
            raise CommandError(f'the path "{path}" does not exist')
    return files


def read_objects(paths: Sequence[str], stdin: TextIO | None = None) -> list[tuple[str, dict]]:
    """(source, object) for every object in the files, in order."""
    objects: list[tuple[str, dict]] = []
    for path in expand_paths(paths):
        if path == "-":
            source, text = STDIN, (stdin or sys.stdin).read()
        else:
            source = path
            try:
                text = pathlib.Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CommandError(f'cannot read "{path}": {err}') from None
        try:
            objects.extend((source, obj) for obj in convert.load_manifests(text, source))
        except convert.ManifestError as err:
            raise CommandError(f"error parsing {err}") from None
    return objects


def decode(objects: Sequence[tuple[str, dict]], *, strict: bool = False) -> list[Manifest]:
    """Messages for the objects; CommandError for the first that fails."""
    manifests: list[Manifest] = []
    for source, data in objects:
        try:
            message, warnings = convert.from_dict(data, strict=strict)
        except convert.ConversionError as err:
            raise CommandError(f'error validating "{source}": {err}') from None
        kind = kinds.of_message(message) if type(message).DESCRIPTOR.name in kinds.BY_KIND \
            else None
        if kind is None:
            raise CommandError(f'error validating "{source}": {data.get("kind")} is a list '
                               f'kind; use kind: List or separate documents')
        if not message.metadata.name:
            raise CommandError(f'error validating "{source}": {kind.kind} has no '
                               f"metadata.name")
        manifests.append(Manifest(source, data, message, kind, warnings))
    return manifests


def load(paths: Sequence[str], *, strict: bool = False,
         stdin: TextIO | None = None) -> list[Manifest]:
    if not paths:
        raise CommandError("must specify one of -f")
    return decode(read_objects(paths, stdin), strict=strict)
