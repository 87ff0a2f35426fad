"""Where the API server is and how to prove who we are to it.

Every daemon and the CLI resolve this here, so they all agree.

Servers: ``--server``, else ``KYB_SERVER``, else the config file's
``server``, else ``localhost:6443``.

Credentials come from one file only: ``--kubeconfig`` when given, else the
default client config (``$KYB_CONFIG`` or ``~/.kyb/config``, written by
``make cluster``) when it exists. ``--server`` and ``KYB_SERVER`` choose
the address, never the credentials. The file (YAML; paths are relative to
the file's directory)::

    server: host:6443[,host2:6443]
    certificate-authority: ca.crt      # no CA: plaintext (an --insecure-plaintext server)
    client-certificate: admin.crt
    client-key: admin.key
    token: <bearer token>              # instead of a client certificate (the token port)
    tls-server-name: <name>            # name to verify in the server's certificate

Each of the three files may be given inline instead, base64-encoded, as
``certificate-authority-data``, ``client-certificate-data``,
``client-key-data`` (as kubeconfig allows).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import yaml

from services.machinery import tlsconfig

DEFAULT_SERVER = "localhost:6443"

_FILE_KEYS = {  # config key -> (field, what it is, for errors)
    "certificate-authority": ("ca", "certificate authority"),
    "client-certificate": ("cert", "client certificate"),
    "client-key": ("key", "client key"),
}


def config_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KYB_CONFIG") or pathlib.Path.home() / ".kyb" / "config")


def read_config(path: pathlib.Path | None = None) -> dict:
    """The config file as a dict; empty when it does not exist."""
    path = path or config_path()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read client config {path}: {_one_line(err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"client config {path} is not a mapping")
    return data


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def write_config(servers: list[str], path: pathlib.Path | None = None, *,
                 certificate_authority: str | os.PathLike[str] | None = None,
                 client_certificate: str | os.PathLike[str] | None = None,
                 client_key: str | os.PathLike[str] | None = None,
                 token: str | None = None, tls_server_name: str | None = None) -> pathlib.Path:
    """Write a client config. File paths are written as given (relative
    ones are read relative to the config's directory). With a token the
    file is private (0600)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"server": ",".join(servers)}
    for key, value in (("certificate-authority", certificate_authority),
                       ("client-certificate", client_certificate), ("client-key", client_key),
                       ("token", token), ("tls-server-name", tls_server_name)):
        if value:
            data[key] = str(value)
    text = yaml.safe_dump(data, sort_keys=False)
    if token:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
    else:
        path.write_text(text)
    return path


def parse_servers(raw: str) -> list[str]:
    servers = [s.strip() for s in str(raw).split(",") if s.strip()]
    if not servers:
        raise ValueError(f"no API server address in {raw!r}")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"API server address {server!r} is not HOST:PORT")
    return servers


def resolve_servers(flag: str | None = None) -> list[str]:
    """The API server addresses to use, in the documented order."""
    raw = flag or os.environ.get("KYB_SERVER") or read_config().get("server") or DEFAULT_SERVER
    return parse_servers(str(raw))


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """Servers and credentials, ready for :class:`~services.machinery.Client`.

    ``ca``/``cert``/``key`` are PEM bytes; no ``ca`` means plaintext. The
    ``*_file`` fields say where they came from (for messages; "" when
    inline or not set). ``source`` is the config file read, if any.
    """

    servers: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_SERVER])
    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    token: str | None = None
    tls_server_name: str | None = None
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    source: pathlib.Path | None = None

    @property
    def secure(self) -> bool:
        return bool(self.ca)

    @classmethod
    def from_files(cls, servers: Sequence[str] | str, *, ca_file: str | os.PathLike[str],
                   cert_file: str | os.PathLike[str] | None = None,
                   key_file: str | os.PathLike[str] | None = None, token: str | None = None,
                   tls_server_name: str | None = None) -> ClientConfig:
        """A TLS config from PEM files (tests, tools that issue their own)."""
        tls = tlsconfig.ClientTLS.load(ca_file, cert_file, key_file, tls_server_name)
        servers = parse_servers(servers) if isinstance(servers, str) else list(servers)
        return cls(servers, tls.ca, tls.cert, tls.key, token or None, tls.server_name,
                   str(ca_file), str(cert_file or ""), str(key_file or ""))

    def with_servers(self, servers: Sequence[str]) -> ClientConfig:
        return dataclasses.replace(self, servers=list(servers))

    def credentials(self) -> Any:
        """The gRPC channel credentials (only when :attr:`secure`)."""
        if not self.ca:
            raise ValueError("a plaintext client config has no TLS credentials")
        return tlsconfig.channel_credentials(self.ca, self.cert, self.key, self.token)


def _credential(data: dict, key: str, base: pathlib.Path, source: pathlib.Path
                ) -> tuple[bytes | None, str]:
    """(PEM bytes, file) of one of the three file settings, or (None, "")."""
    _, what = _FILE_KEYS[key]
    inline = data.get(f"{key}-data")
    if inline:
        try:
            pem = base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"client config {source}: {key}-data is not base64") from None
        if b"-----BEGIN " not in pem:
            raise ValueError(f"client config {source}: {key}-data is not PEM")
        return pem, ""
    value = data.get(key)
    if not value:
        return None, ""
    path = pathlib.Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        path = base / path
    try:
        return tlsconfig.read_pem(path, what), str(path)
    except ValueError as err:
        raise ValueError(f"client config {source}: {err}") from None


def from_file_data(data: dict, source: pathlib.Path) -> ClientConfig:
    """The credentials a parsed config file gives (servers from its
    ``server``, else the default). Raises ValueError naming the file."""
    base = source.parent
    ca, ca_file = _credential(data, "certificate-authority", base, source)
    cert, cert_file = _credential(data, "client-certificate", base, source)
    key, key_file = _credential(data, "client-key", base, source)
    if bool(cert) != bool(key):
        raise ValueError(f"client config {source}: client-certificate and client-key go "
                         "together")
    token = data.get("token")
    if token is not None and not isinstance(token, str):
        raise ValueError(f"client config {source}: token is not a string")
    if (cert or token) and not ca:
        raise ValueError(f"client config {source}: credentials need certificate-authority "
                         "(they are only sent over TLS)")
    if cert and key:
        try:
            tlsconfig.check_pair(cert, key, f"client certificate {cert_file or '(inline)'}",
                                 f"client key {key_file or '(inline)'}")
        except ValueError as err:
            raise ValueError(f"client config {source}: {err}") from None
    name = data.get("tls-server-name")
    raw = data.get("server")
    try:
        servers = parse_servers(str(raw)) if raw else [DEFAULT_SERVER]
    except ValueError as err:
        raise ValueError(f"client config {source}: {err}") from None
    return ClientConfig(servers, ca, cert, key, token or None, str(name) if name else None,
                        ca_file, cert_file, key_file, source)


def load(server: str | None = None, kubeconfig: str | os.PathLike[str] | None = None
         ) -> ClientConfig:
    """Servers and credentials, in the documented order (see the module
    docstring). ``server``: a --server flag; ``kubeconfig``: a --kubeconfig
    flag (which must exist)."""
    if kubeconfig:
        path = pathlib.Path(kubeconfig)
        if not path.is_file():
            raise ValueError(f"client config {path} does not exist")
    else:
        path = config_path()
    data = read_config(path)
    cfg = from_file_data(data, path) if data else ClientConfig()
    raw = server or os.environ.get("KYB_SERVER") or data.get("server") or DEFAULT_SERVER
    return cfg.with_servers(parse_servers(str(raw)))


__all__ = ["ClientConfig", "load", "resolve_servers", "read_config", "write_config",
           "config_path", "parse_servers", "DEFAULT_SERVER"]
