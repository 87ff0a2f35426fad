"""Pod volumes on the node: emptyDir and hostPath.

An emptyDir is a directory under ``<root-dir>/pods/<uid>/volumes/<name>``,
created before the first container and removed with the pod (a ``Memory``
medium uses the same kind of directory: tmpfs would need a mount per pod
and root, for little gain here). A hostPath is the host's own path, checked
or created as its ``type`` says. Containers get them through bind mounts
(``ContainerConfig.mounts``).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat
from typing import Any


class VolumeError(Exception):
    """A volume cannot be set up (its message says why)."""


def pod_dir(root_dir: str | os.PathLike[str], uid: str) -> pathlib.Path:
    return pathlib.Path(root_dir) / "pods" / uid


def _check_host_path(path: str, type_: str) -> None:
    p = pathlib.Path(path)
    if type_ == "DirectoryOrCreate":
        p.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif type_ == "FileOrCreate":
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch(mode=0o644, exist_ok=True)
    elif type_ == "Directory" and not p.is_dir():
        raise VolumeError(f"hostPath type check failed: {path} is not a directory")
    elif type_ == "File" and not p.is_file():
        raise VolumeError(f"hostPath type check failed: {path} is not a file")
    elif type_ in ("Socket", "CharDevice", "BlockDevice"):
        checks = {"Socket": stat.S_ISSOCK, "CharDevice": stat.S_ISCHR,
                  "BlockDevice": stat.S_ISBLK}
        try:
            mode = p.stat().st_mode
        except OSError:
            mode = 0
        if not checks[type_](mode):
            raise VolumeError(f"hostPath type check failed: {path} is not a {type_}")


def prepare_volumes(root_dir: str | os.PathLike[str], pod: Any) -> dict[str, str]:
    """Create the pod's volumes; returns volume name -> host path. Blocking:
    call it in a thread."""
    paths: dict[str, str] = {}
    for vol in pod.spec.volumes:
        if vol.HasField("host_path"):
            _check_host_path(vol.host_path.path, vol.host_path.type)
            paths[vol.name] = vol.host_path.path
        else:  # emptyDir (the API server defaults a source-less volume to one)
            path = pod_dir(root_dir, pod.metadata.uid) / "volumes" / vol.name
            try:
                path.mkdir(parents=True, exist_ok=True)
                path.chmod(0o777)  # as Kubernetes: any container user may write
            except OSError as err:
                raise VolumeError(f"emptyDir {vol.name}: {err}") from None
            paths[vol.name] = str(path)
    return paths


def remove_pod_dir(root_dir: str | os.PathLike[str], uid: str) -> None:
    """Remove everything the kubelet kept on disk for a pod. Blocking."""
    shutil.rmtree(pod_dir(root_dir, uid), ignore_errors=True)


def pod_dirs(root_dir: str | os.PathLike[str]) -> list[str]:
    """The pod UIDs that have a directory on disk."""
    base = pathlib.Path(root_dir) / "pods"
    try:
        return [p.name for p in base.iterdir() if p.is_dir()]
    except OSError:
        return []


__all__ = ["VolumeError", "pod_dir", "pod_dirs", "prepare_volumes", "remove_pod_dir"]
