"""Image pull policy, as the kubelet's image manager applies it.

``Never`` uses the local image or fails with ErrImageNeverPull;
``IfNotPresent`` pulls only a missing image; ``Always`` pulls before every
container start. A failed pull is ErrImagePull, and later tries of the same
image for the same pod wait out a backoff (10 s doubling to 5 min) and say
ImagePullBackOff meanwhile, so a bad image never spins.

One deliberate difference from Kubernetes: when ``Always`` cannot pull but
the image is present locally, the local image is used (with a warning).
Kybernetes clusters are often offline with images built locally and tagged
``:latest`` — which defaults to ``Always`` — and would otherwise run
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from services.kubelet.backoff import Backoff
from services.kubelet.runtime.base import ImagePullError, RuntimeError_

log = logging.getLogger(__name__)

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_CAP = 300.0


class ImageError(Exception):
    """The container cannot start for want of its image: ``reason`` is the
    waiting reason shown in its status, ``message`` the detail."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def default_policy(image: str) -> str:
    """Always for ":latest" or no tag, else IfNotPresent (the API server
    defaults this; the kubelet repeats it for objects that skipped it)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def should_pull(policy: str, present: bool) -> bool:
    """shouldPullImage."""
    if policy == "Never":
        return False
    if policy == "Always":
        return True
    return not present


class ImageManager:
    """Makes sure a container's image is present before it is created."""

    def __init__(self, runtime: Any, backoff: Backoff | None = None):
        self.runtime = runtime
        self.backoff = backoff if backoff is not None else Backoff(IMAGE_BACKOFF_INITIAL,
                                                                   IMAGE_BACKOFF_CAP)
        self._fell_back: set[str] = set()

    def retry_in(self, pod_uid: str, image: str) -> float:
        """Seconds until a pull of ``image`` for the pod may be tried again."""
        return self.backoff.remaining_since_update((pod_uid, image))

    async def ensure_image(self, pod_uid: str, container: Any) -> str:
        """The image ID to run ``container`` from; raises :class:`ImageError`."""
        image = container.image
        if not image or image != image.strip():
            raise ImageError(INVALID_IMAGE_NAME, f"Failed to apply default image tag {image!r}")
        policy = container.image_pull_policy or default_policy(image)
        present = await self.runtime.image_status(image)
        if not should_pull(policy, present is not None):
            if present is not None:
                return present
            raise ImageError(ERR_IMAGE_NEVER_PULL,
                             f'Container image "{image}" is not present with pull policy of Never')
        key = (pod_uid, image)
        if self.backoff.in_backoff_since_update(key):
            raise ImageError(IMAGE_PULL_BACKOFF, f'Back-off pulling image "{image}"')
        try:
            image_id = await self.runtime.pull_image(image)
        except (ImagePullError, RuntimeError_) as err:
            if present is not None:
                level = logging.DEBUG if image in self._fell_back else logging.WARNING
                self._fell_back.add(image)
                log.log(level, "pulling %s failed (%s); using the local image", image, err)
                return present
            self.backoff.next(key, self.backoff.clock.wall())
            raise ImageError(ERR_IMAGE_PULL, f'Failed to pull image "{image}": {err}') from None
        self.backoff.reset(key)
        return image_id

    def forget_pod(self, pod_uid: str) -> None:
        self.backoff.forget_where(lambda key: key[0] == pod_uid)


__all__ = [
    "ERR_IMAGE_NEVER_PULL", "ERR_IMAGE_PULL", "IMAGE_PULL_BACKOFF", "INVALID_IMAGE_NAME",
    "ImageError", "ImageManager", "default_policy", "should_pull",
]
