"""The audit log: one JSON object per line for every refused request and
every allowed write — who, what verb on which object, the decision and
why — like kube-apiserver's audit log at its Metadata level.

Reads that were allowed are not recorded (they are most of the traffic
and say nothing about change). Lines are written straight to the file
with the OS buffering them: each is a few hundred bytes, far cheaper than
handing it to a thread, and a crash loses at most what the kernel had
not yet written.
"""

from __future__ import annotations

import datetime
import json
import logging
import pathlib
import sys
from typing import IO, Any

from services.apiserver.authz.attributes import Attributes, UserInfo

log = logging.getLogger(__name__)

WRITE_VERBS = frozenset({"create", "update", "delete"})


def event(user: UserInfo | None, attrs: Attributes | None, decision: str, code: str,
          reason: str = "", peer: str = "", method: str = "") -> dict[str, Any]:
    """One audit record. ``decision``: allow, forbid, unauthenticated,
    throttled, or reject (admission)."""
    record: dict[str, Any] = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
        "user": user.name if user else "",
        "groups": list(user.groups) if user else [],
        "authenticatedBy": user.authenticated_by if user else "",
        "sourceAddress": peer,
        "method": method,
        "decision": decision,
        "code": code,
    }
    if attrs is not None:
        record.update(verb=attrs.verb, apiGroup=attrs.group, resource=attrs.resource,
                      subresource=attrs.subresource, namespace=attrs.namespace,
                      name=attrs.name)
    if reason:
        record["reason"] = reason
    return record


def should_record(decision: str, attrs: Attributes | None) -> bool:
    """Every refusal; of allowed requests, only writes."""
    return decision != "allow" or (attrs is not None and attrs.verb in WRITE_VERBS)


class AuditLog:
    """Appends records to ``path`` ("-": stdout) as JSON lines.

    Like kube-apiserver's --audit-log-maxsize/--audit-log-maxbackup, the file
    is rotated once it passes ``max_bytes`` (path.1, path.2, ... up to
    ``backups``), so a flood of refused requests cannot fill the disk.
    """

    def __init__(self, path: str | pathlib.Path, *, max_bytes: int = 100 * 1024 * 1024,
                 backups: int = 5):
        self.path = str(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: IO[str] | None = None
        self._size = 0

    def open(self) -> None:
        if self.path == "-":
            self._file = sys.stdout
            return
        target = pathlib.Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            self._size = target.stat().st_size
        except OSError as err:
            raise ValueError(f"cannot open audit log {self.path}: {err.strerror or err}") from None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n"
        try:
            if self._file is not sys.stdout and self._size + len(line) > self.max_bytes > 0:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        except (OSError, ValueError) as err:  # a full disk must not fail the request
            log.warning("audit log write failed: %s", err)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        base = pathlib.Path(self.path)
        for n in range(self.backups - 1, 0, -1):
            older = base.with_name(f"{base.name}.{n}")
            if older.exists():
                older.replace(base.with_name(f"{base.name}.{n + 1}"))
        if self.backups > 0:
            base.replace(base.with_name(f"{base.name}.1"))
        else:
            base.unlink(missing_ok=True)
        self._file = open(base, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None
