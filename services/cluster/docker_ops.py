"""A thin shell over the ``docker`` command line, the one place kyb-cluster
touches Docker. The CLI rather than the SDK: piping ``docker save`` into
``docker exec -i NODE docker load`` is one line, and every failure comes
back as Docker's own one-line message (:class:`DockerError`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence

DEFAULT_TIMEOUT = 120.0


class DockerError(Exception):
    """A docker command failed; the message is Docker's last error line."""


def _message(proc: subprocess.CompletedProcess, args: Sequence[str]) -> str:
    err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
    line = err[-1] if err else f"exit status {proc.returncode}"
    return f"docker {' '.join(args[:2])}: {line}"


def docker(*args: str, input: bytes | None = None, check: bool = True,
           timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run ``docker ARGS``; its standard output. Raises DockerError."""
    try:
        proc = subprocess.run(["docker", *args], input=input, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise DockerError("the docker command is not installed "
                          "(deploy/host/ensure.sh docker installs it)") from None
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker {' '.join(args[:2])}: no answer within {timeout:g}s") from None
    if check and proc.returncode != 0:
        raise DockerError(_message(proc, args))
    return proc.stdout.decode(errors="replace")


def check_engine() -> None:
    """Raise DockerError unless a Docker Engine answers."""
    if shutil.which("docker") is None:
        raise DockerError("the docker command is not installed "
                          "(deploy/host/ensure.sh docker installs it)")
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=20)
    except DockerError as err:
        raise DockerError(f"Docker Engine is not answering ({err}); "
                          "deploy/host/ensure.sh docker starts it") from None


def _label_filters(labels: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in labels.items():
        out += ["--filter", f"label={key}={value}" if value else f"label={key}"]
    return out


# -- images --------------------------------------------------------------------------------------


def image_id(ref: str) -> str | None:
    out = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False).strip()
    return out or None


def save(images: Sequence[str], path: str) -> None:
    docker("save", "-o", path, *images, timeout=600)


def load_into(container: str, images: Sequence[str]) -> None:
    """``docker save IMAGES | docker exec -i CONTAINER docker load``."""
    saver = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        loader = subprocess.run(["docker", "exec", "-i", container, "docker", "load", "-q"],
                                stdin=saver.stdout, capture_output=True, timeout=600, check=False)
    finally:
        assert saver.stdout is not None
        saver.stdout.close()
        _, save_err = saver.communicate(timeout=600)
    if saver.returncode != 0:
        line = save_err.decode(errors="replace").strip().splitlines()
        raise DockerError(f"docker save: {line[-1] if line else saver.returncode}")
    if loader.returncode != 0:
        raise DockerError(_message(loader, ["load", "into", container]))


# -- networks and volumes -----------------------------------------------------------------------


def network_labels(name: str) -> dict[str, str] | None:
    """The network's labels; None when there is no such network."""
    out = docker("network", "inspect", "--format", "{{json .Labels}}", name, check=False).strip()
    return (json.loads(out) or {}) if out else None


def network_subnets() -> dict[str, list[str]]:
    """Every Docker network's name → its IPv4 subnets."""
    names = docker("network", "ls", "--format", "{{.Name}}").split()
    if not names:
        return {}
    out = docker("network", "inspect", "--format",
                 "{{.Name}} {{range .IPAM.Config}}{{.Subnet}} {{end}}", *names, check=False)
    result: dict[str, list[str]] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts:
            result[parts[0]] = [p for p in parts[1:] if "." in p]
    return result


def create_network(name: str, subnet: str, gateway: str, labels: Mapping[str, str]) -> None:
    args = ["network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gateway]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    docker(*args, name)


def networks(labels: Mapping[str, str]) -> list[str]:
    return docker("network", "ls", "--format", "{{.Name}}",
                  *_label_filters(labels)).split()


def remove_network(name: str) -> None:
    docker("network", "rm", name)


def bridge_interface(network: str) -> str | None:
    """The host's bridge device of ``network`` (``br-<id prefix>``)."""
    out = docker("network", "inspect", "--format", "{{.Id}}", network, check=False).strip()
    return f"br-{out[:12]}" if out else None


def volume_exists(name: str) -> bool:
    return bool(docker("volume", "inspect", "--format", "{{.Name}}", name, check=False).strip())


def create_volume(name: str, labels: Mapping[str, str]) -> None:
    args = ["volume", "create"]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    docker(*args, name)


def volumes(labels: Mapping[str, str]) -> list[str]:
    return docker("volume", "ls", "-q", *_label_filters(labels)).split()


def remove_volume(name: str) -> None:
    docker("volume", "rm", "-f", name)


# -- containers --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContainerState:
    name: str
    status: str          # created, running, restarting, exited, ...
    running: bool
    labels: dict[str, str]
    started_at: str
    restarts: int


def inspect(names: Iterable[str]) -> dict[str, ContainerState]:
    """The state of each existing container among ``names``."""
    names = list(names)
    if not names:
        return {}
    out = docker("container", "inspect", "--format", "{{json .}}", *names, check=False)
    states = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        state = data.get("State") or {}
        name = data.get("Name", "").lstrip("/")
        states[name] = ContainerState(
            name=name, status=state.get("Status", ""), running=bool(state.get("Running")),
            labels=(data.get("Config") or {}).get("Labels") or {},
            started_at=state.get("StartedAt", ""), restarts=int(data.get("RestartCount", 0)))
    return states


def containers(labels: Mapping[str, str]) -> list[str]:
    return docker("ps", "-a", "--format", "{{.Names}}", *_label_filters(labels)).split()


def run(args: Sequence[str]) -> None:
    docker("run", *args)


def start(name: str) -> None:
    docker("start", name)


def stop(name: str, timeout: int) -> None:
    docker("stop", "-t", str(timeout), name, timeout=timeout + 60)


def remove(name: str) -> None:
    docker("rm", "-f", "-v", name, timeout=180)


def exec_(name: str, *cmd: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
    return docker("exec", name, *cmd, check=check, timeout=timeout)


def memory_usage(names: Sequence[str]) -> dict[str, str]:
    """``docker stats --no-stream`` memory column per running container."""
    if not names:
        return {}
    out = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names,
                 check=False, timeout=60)
    usage = {}
    for line in out.splitlines():
        name, _, rest = line.partition(" ")
        usage[name] = rest.split("/")[0].strip()
    return usage
