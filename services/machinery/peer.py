"""Who is calling a gRPC server (or an HTTPS metrics server): the verified
client certificate's CN and O entries (Kubernetes reads the user and its
groups from them), and the bearer token a caller sent.

gRPC hands over the peer's certificate as PEM in the auth context once the
handshake has verified it; the CN is there already, but the O entries need
parsing, which is cached by the PEM bytes (the same few clients call again
and again).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class PeerCert:
    """The subject of a verified client certificate."""

    common_name: str
    organizations: tuple[str, ...] = ()


def _subject(cert: x509.Certificate) -> PeerCert:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return PeerCert(str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


@functools.lru_cache(maxsize=1024)
def parse_peer_cert(pem: bytes) -> PeerCert:
    return _subject(x509.load_pem_x509_certificate(pem))


@functools.lru_cache(maxsize=1024)
def parse_der_cert(der: bytes) -> PeerCert:
    """The same from DER, as Python's ssl gives a verified peer certificate
    (``getpeercert(binary_form=True)``: the HTTPS metrics servers)."""
    return _subject(x509.load_der_x509_certificate(der))


def peer_cert(context: Any) -> PeerCert | None:
    """The caller's verified certificate subject, or None (plaintext, or TLS
    without a client certificate). ``context``: a grpc(.aio) ServicerContext."""
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert")
    if pems:
        pem = pems[0]
        try:
            return parse_peer_cert(pem.encode() if isinstance(pem, str) else bytes(pem))
        except ValueError:
            pass
    names = auth.get("x509_common_name")
    if names:
        name = names[0]
        return PeerCert(name.decode("utf-8", "replace") if isinstance(name, bytes) else name)
    return None


def identity(context: Any) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) from the caller's verified certificate, or None."""
    cert = peer_cert(context)
    return None if cert is None else (cert.common_name, cert.organizations)


def metadata_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header in call
    metadata; "" for an authorization header that is not a bearer token
    (so callers can tell "none sent" from "malformed"), None for none."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


def bearer_token(context: Any) -> str | None:
    """The caller's bearer token, else None."""
    return metadata_token(context.invocation_metadata()) or None


__all__ = ["PeerCert", "peer_cert", "identity", "parse_peer_cert", "parse_der_cert",
           "bearer_token", "metadata_token"]
