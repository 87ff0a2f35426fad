"""Where the API server is: ``--server``, else ``KYB_SERVER``, else the client
config file (``$KYB_CONFIG`` or ``~/.kyb/config``, written by
``make cluster``), else ``localhost:6443``. Every daemon and the CLI resolve
it here, so they all agree."""

from __future__ import annotations

import os
import pathlib

import yaml

DEFAULT_SERVER = "localhost:6443"


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
        raise ValueError(f"cannot read client config {path}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"client config {path} is not a mapping")
    return data


def write_config(servers: list[str], path: pathlib.Path | None = None) -> pathlib.Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"server": ",".join(servers)}))
    return path


def resolve_servers(flag: str | None = None) -> list[str]:
    """The API server addresses to use, in the documented order."""
    raw = flag or os.environ.get("KYB_SERVER") or read_config().get("server") or DEFAULT_SERVER
    servers = [s.strip() for s in str(raw).split(",") if s.strip()]
    if not servers:
        raise ValueError(f"no API server address in {raw!r}")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"API server address {server!r} is not HOST:PORT")
    return servers
