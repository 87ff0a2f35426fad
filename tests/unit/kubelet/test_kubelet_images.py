from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.backoff import Backoff
from services.kubelet.images import (
    ERR_IMAGE_NEVER_PULL, ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, ImageError, ImageManager,
    default_policy, should_pull,
)
from services.kubelet.runtime.base import ImagePullError
from services.machinery.clock import FakeClock


class Images:
    """The image half of the runtime interface: ``local`` images are
    present, ``remote`` ones can be pulled."""

    def __init__(self, local=(), remote=()):
        self.local = {i: f"sha256:{i}" for i in local}
        self.remote = set(remote)
        self.pulls: list[str] = []

    async def image_status(self, image):
        return self.local.get(image)

    async def pull_image(self, image):
        self.pulls.append(image)
        if image not in self.remote:
            raise ImagePullError(f"pull access denied for {image}")
        self.local[image] = f"sha256:{image}"
        return self.local[image]


def ctr(image: str, policy: str = "") -> core.Container:
    return core.Container(name="c", image=image, image_pull_policy=policy)


@pytest.mark.parametrize("policy, present, pull", [
    ("Always", True, True), ("Always", False, True), ("IfNotPresent", True, False),
    ("IfNotPresent", False, True), ("Never", True, False), ("Never", False, False)])
def test_images_should_pull(policy, present, pull):
    assert should_pull(policy, present) is pull


def test_images_default_policy():
    assert default_policy("busybox") == "Always"
    assert default_policy("busybox:latest") == "Always"
    assert default_policy("reg:5000/busybox") == "Always"
    assert default_policy("busybox:1.36") == "IfNotPresent"
    assert default_policy("busybox@sha256:abc") == "IfNotPresent"


async def test_images_if_not_present_uses_local_and_pulls_missing():
    rt = Images(local=["a:1"], remote=["b:1"])
    m = ImageManager(rt)
    assert await m.ensure_image("uid", ctr("a:1", "IfNotPresent")) == "sha256:a:1"
    assert await m.ensure_image("uid", ctr("b:1", "IfNotPresent")) == "sha256:b:1"
    assert rt.pulls == ["b:1"]


async def test_images_never_fails_without_local_image():
    m = ImageManager(Images())
    with pytest.raises(ImageError) as err:
        await m.ensure_image("uid", ctr("x:1", "Never"))
    assert err.value.reason == ERR_IMAGE_NEVER_PULL
    assert 'Container image "x:1" is not present with pull policy of Never' in err.value.message


async def test_images_failed_pull_backs_off_then_retries():
    clock = FakeClock()
    rt = Images()
    m = ImageManager(rt, Backoff(10, 300, clock=clock))
    reasons = []
    for step in (0, 1, 9.5, 1):   # t = 0, 1, 10.5, 11.5
        clock.advance(step)
        with pytest.raises(ImageError) as err:
            await m.ensure_image("uid", ctr("nope:1", "IfNotPresent"))
        reasons.append(err.value.reason)
    assert reasons == [ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF]
    assert rt.pulls == ["nope:1", "nope:1"]
    assert m.retry_in("uid", "nope:1") == pytest.approx(19)   # second failure: 20 s
    assert "Back-off pulling image" in str(err.value)


async def test_images_backoff_is_per_pod():
    clock = FakeClock()
    m = ImageManager(Images(), Backoff(10, 300, clock=clock))
    with pytest.raises(ImageError):
        await m.ensure_image("a", ctr("nope:1", "IfNotPresent"))
    with pytest.raises(ImageError) as err:
        await m.ensure_image("b", ctr("nope:1", "IfNotPresent"))
    assert err.value.reason == ERR_IMAGE_PULL
    m.forget_pod("a")
    with pytest.raises(ImageError) as err:
        await m.ensure_image("a", ctr("nope:1", "IfNotPresent"))
    assert err.value.reason == ERR_IMAGE_PULL


async def test_images_always_falls_back_to_a_local_image_when_offline():
    rt = Images(local=["kyb/busybox:latest"])
    m = ImageManager(rt)
    assert await m.ensure_image("uid", ctr("kyb/busybox:latest", "Always")) == \
        "sha256:kyb/busybox:latest"
    assert rt.pulls == ["kyb/busybox:latest"]
