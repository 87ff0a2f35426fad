"""The workload images tests run: built locally (no registry is reachable)
by deploy/images/*.sh, once per test session.

Several test modules — and several pytest processes started by people
working side by side — may call :func:`ensure_images`; a process-local flag
makes repeat calls free and a file lock keeps two processes from importing
the same image at once.
"""

from __future__ import annotations

import fcntl
import pathlib
import subprocess
import threading

BUSYBOX = "kyb/busybox:latest"
PAUSE = "kyb/pause:latest"

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = {BUSYBOX: ROOT / "deploy/images/busybox.sh", PAUSE: ROOT / "deploy/images/pause.sh"}
LOCK_PATH = pathlib.Path("/tmp/kyb-images.lock")
BUILD_TIMEOUT = 300.0

_lock = threading.Lock()
_done = False


class ImageBuildError(Exception):
    """An image could not be built (one line: the script's last words)."""


def _present(image: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                          timeout=30)
    return done.returncode == 0


def _build(image: str) -> None:
    done = subprocess.run(["bash", str(SCRIPTS[image])], capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ImageBuildError(f"building {image} with {SCRIPTS[image].name} failed: {last[0]}")


def ensure_images() -> None:
    """Build kyb/busybox and kyb/pause if they are absent (once per process)."""
    global _done
    with _lock:
        if _done:
            return
        missing = [image for image in SCRIPTS if not _present(image)]
        if missing:
            with open(LOCK_PATH, "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    for image in missing:
                        if not _present(image):  # another process may have built it meanwhile
                            _build(image)
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
        _done = True


__all__ = ["BUSYBOX", "PAUSE", "ImageBuildError", "ensure_images"]
