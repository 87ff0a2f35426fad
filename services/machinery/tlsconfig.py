"""TLS settings for both sides of every connection, in one place.

gRPC: mutual-TLS server credentials (a client certificate signed by the
cluster CA is required: plaintext and certificate-less clients fail the
handshake), TLS without client certificates (the API server's token port),
and channel credentials — the CA, optionally a client certificate, and
optionally a bearer token sent as ``authorization: Bearer <token>``.
HTTP: the ``ssl.SSLContext`` of the metrics servers (a client certificate
is optional at the handshake, so the open health endpoints stay open; the
server then checks it per path).

Files are read and checked here, up front, so a wrong path or a key that is
not the certificate's is one clear line naming the file rather than an
obscure handshake failure later.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import ssl

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

PathLike = str | os.PathLike[str]


def read_pem(path: PathLike, what: str) -> bytes:
    """The bytes of a PEM file; ValueError naming ``what`` and the file."""
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if b"-----BEGIN " not in data:
        raise ValueError(f"{what} {path} is not a PEM file")
    return data


def check_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError(f"{what} holds no valid PEM certificate") from None
    return certs


def check_pair(cert_pem: bytes, key_pem: bytes, cert_what: str, key_what: str) -> None:
    """Raise ValueError unless ``key_pem`` is the private key of the first
    certificate in ``cert_pem``."""
    cert = check_certificates(cert_pem, cert_what)[0]
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        raise ValueError(f"{key_what} is not an unencrypted PEM private key") from None
    if key.public_key() != cert.public_key():
        raise ValueError(f"{key_what} is not the private key of {cert_what}")


# -- gRPC, server side ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServingCert:
    """A server's certificate and key files, and the CA whose client
    certificates it accepts (PEM; empty: it accepts none)."""

    cert_file: str
    key_file: str
    client_ca: bytes = b""

    @classmethod
    def load(cls, cert_file: PathLike, key_file: PathLike,
             client_ca_file: PathLike | None = None, *, client_ca: bytes = b"") -> ServingCert:
        """Check the files now; ``client_ca`` (PEM) is used when no file is given."""
        cert = read_pem(cert_file, "certificate")
        key = read_pem(key_file, "private key")
        check_pair(cert, key, f"certificate {cert_file}", f"private key {key_file}")
        if client_ca_file:
            client_ca = read_pem(client_ca_file, "client CA")
            check_certificates(client_ca, f"client CA {client_ca_file}")
        return cls(str(cert_file), str(key_file), client_ca)

    def _pair(self) -> tuple[bytes, bytes]:
        return (read_pem(self.key_file, "private key"), read_pem(self.cert_file, "certificate"))

    def grpc_credentials(self, *, require_client_auth: bool = True) -> grpc.ServerCredentials:
        """Mutual TLS (the default): only clients with a certificate signed
        by ``client_ca`` complete the handshake. Without client auth: TLS
        that asks for no client certificate (callers bring a token)."""
        if require_client_auth:
            if not self.client_ca:
                raise ValueError("mutual TLS needs a client CA (--client-ca-file)")
            return grpc.ssl_server_credentials([self._pair()], root_certificates=self.client_ca,
                                               require_client_auth=True)
        return grpc.ssl_server_credentials([self._pair()], require_client_auth=False)

    def ssl_context(self) -> ssl.SSLContext:
        """For an HTTPS server: presents this certificate; a client
        certificate is optional but, when sent, must be signed by
        ``client_ca`` (the handshake fails otherwise)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca:
            ctx.load_verify_locations(cadata=self.client_ca.decode("ascii", "replace"))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


def server_credentials(cert_file: PathLike, key_file: PathLike,
                       client_ca_file: PathLike) -> grpc.ServerCredentials:
    """Mutual TLS server credentials from files."""
    return ServingCert.load(cert_file, key_file, client_ca_file).grpc_credentials()


def server_credentials_without_client_auth(cert_file: PathLike,
                                           key_file: PathLike) -> grpc.ServerCredentials:
    """TLS server credentials that request no client certificate."""
    return ServingCert.load(cert_file, key_file).grpc_credentials(require_client_auth=False)


# -- gRPC, client side ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClientTLS:
    """What a client needs for TLS: the CA that signed the server's
    certificate, optionally its own certificate and key (PEM), and the name
    to verify in the server's certificate when it is not the host dialled."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def load(cls, ca_file: PathLike, cert_file: PathLike | None = None,
             key_file: PathLike | None = None, server_name: str | None = None) -> ClientTLS:
        if bool(cert_file) != bool(key_file):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        ca = read_pem(ca_file, "certificate authority")
        check_certificates(ca, f"certificate authority {ca_file}")
        cert = key = None
        if cert_file and key_file:
            cert = read_pem(cert_file, "client certificate")
            key = read_pem(key_file, "client key")
            check_pair(cert, key, f"client certificate {cert_file}", f"client key {key_file}")
        return cls(ca, cert, key, server_name or None)

    def credentials(self, token: str | None = None) -> grpc.ChannelCredentials:
        return channel_credentials(self.ca, self.cert, self.key, token)


def token_call_credentials(token: str) -> grpc.CallCredentials:
    """Sends ``authorization: Bearer <token>`` with every call (gRPC only
    sends call credentials over a secure channel)."""
    return grpc.access_token_call_credentials(token)


def channel_credentials(ca: bytes, cert: bytes | None = None, key: bytes | None = None,
                        token: str | None = None) -> grpc.ChannelCredentials:
    """TLS verifying the server against ``ca``; with a client certificate
    when ``cert``/``key`` are given; with a bearer token when ``token`` is."""
    if bool(cert) != bool(key):
        raise ValueError("a client certificate needs its key, and a key its certificate")
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key or None,
                                         certificate_chain=cert or None)
    if token:
        creds = grpc.composite_channel_credentials(creds, token_call_credentials(token))
    return creds


# Client-side handshake failures gRPC reports as UNAVAILABLE although
# retrying cannot help: the server's certificate does not verify, or the
# server does not speak TLS. (A server refusing *our* certificate just
# closes the socket, which looks like any restart; that one is retried.)
_FAILURES = (
    ("Hostname Verification Check failed",
     "its certificate is not valid for the name dialled (set tls-server-name?)"),
    ("WRONG_VERSION_NUMBER", "it does not speak TLS (a plaintext server?)"),
    ("certificate has expired", "its certificate has expired"),
    ("CERTIFICATE_VERIFY_FAILED", "its certificate is not signed by the configured CA"),
    ("Tls handshake failed", "the TLS handshake failed"),
)


def tls_failure(details: str) -> str:
    """Why the TLS handshake failed on our side, from an UNAVAILABLE
    error's details ("" when that is not what happened)."""
    for marker, reason in _FAILURES:
        if marker in details:
            return reason
    return ""


# -- HTTP, client side (probes, tests, the cluster tool) -----------------------------------


def http_client_context(ca_file: PathLike, cert_file: PathLike | None = None,
                        key_file: PathLike | None = None) -> ssl.SSLContext:
    """An HTTPS client context trusting the cluster CA, optionally with a
    client certificate (for /metrics)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cadata=read_pem(ca_file, "certificate authority").decode())
    if cert_file and key_file:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


__all__ = ["ServingCert", "ClientTLS", "read_pem", "check_pair", "server_credentials",
           "server_credentials_without_client_auth", "channel_credentials",
           "token_call_credentials", "tls_failure", "http_client_context"]
