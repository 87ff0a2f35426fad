"""What every command runs with: the client, where output goes, the
namespace flags and the clock. One object, so commands stay testable."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TextIO

from services.api import kinds
from services.machinery import Client

DEFAULT_NAMESPACE = "default"


class CommandError(Exception):
    """A user-facing failure: main prints ``error: <message>`` and exits 1."""


@dataclasses.dataclass
class Context:
    client: Client
    namespace: str | None = None      # -n, if given
    out: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    err: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.time
    failed: bool = False              # a per-object error was printed: exit 1

    def namespace_for(self, kind: kinds.Kind, all_namespaces: bool = False) -> str:
        """The namespace a request for ``kind`` goes to ("" = all, or
        cluster-scoped)."""
        if not kind.namespaced or all_namespaces:
            return ""
        return self.namespace or DEFAULT_NAMESPACE

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=self.err, flush=True)
