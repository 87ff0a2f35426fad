"""Authentication: who is calling. The first step of Kubernetes'
controlling-access pipeline (authentication → authorization → admission).

Two ways in, as kube-apiserver has them:

- a client certificate verified by the TLS handshake against the cluster
  CA: its Common Name is the user, its Organizations the groups;
- a bearer token (``authorization: Bearer <token>`` metadata) found in the
  static token file, for scripts.

A certificate wins when both are present. Every authenticated caller is
also in ``system:authenticated``. Neither → UNAUTHENTICATED: there is no
anonymous user. An API server started with ``--insecure-plaintext`` has no
TLS and so no identities; it treats every caller as a member of
system:masters, as the old insecure port did.
"""

from __future__ import annotations

import csv
import hmac
import io
import pathlib
from collections.abc import Mapping
from typing import Any

from services.apiserver import errors
from services.apiserver.authz.attributes import AUTHENTICATED, MASTERS, UserInfo
from services.machinery import peer

INSECURE_USER = UserInfo("system:insecure", (MASTERS, AUTHENTICATED), "insecure")


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """Kubernetes' static token file: CSV rows ``token,user,uid[,"g1,g2"]``.
    Blank lines and lines starting with # are skipped."""
    tokens: dict[str, UserInfo] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 3 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{source} line {number}: want token,user,uid[,\"groups\"]")
        token, user = row[0].strip(), row[1].strip()
        if token in tokens:
            raise ValueError(f"{source} line {number}: duplicate token")
        groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
        tokens[token] = UserInfo(user, tuple(dict.fromkeys([*groups, AUTHENTICATED])), "token")
    return tokens


def load_token_file(path: str | pathlib.Path) -> dict[str, UserInfo]:
    try:
        text = pathlib.Path(path).read_text()
    except OSError as err:
        raise ValueError(f"cannot read token file {path}: {err.strerror or err}") from None
    return parse_token_file(text, str(path))


bearer_token = peer.metadata_token


class Authenticator:
    """Turns a call's TLS peer or bearer token into a UserInfo."""

    def __init__(self, tokens: Mapping[str, UserInfo] | None = None, *, insecure: bool = False):
        self.tokens = dict(tokens or {})
        self.insecure = insecure

    def token_user(self, token: str) -> UserInfo | None:
        """The token's user (compared in constant time), or None."""
        found = None
        for known, user in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found

    def authenticate(self, context: Any) -> UserInfo:
        if self.insecure:
            return INSECURE_USER
        identity = peer.identity(context)
        if identity is not None:
            name, groups = identity
            if not name:
                raise errors.unauthenticated(
                    "client certificate has no Common Name: it names no user")
            return UserInfo(name, tuple(dict.fromkeys([*groups, AUTHENTICATED])), "x509")
        token = bearer_token(context.invocation_metadata())
        if token is None:
            raise errors.unauthenticated(
                "no credentials: present a client certificate or a bearer token")
        user = self.token_user(token) if token else None
        if user is None:
            raise errors.unauthenticated("invalid bearer token")
        return user
