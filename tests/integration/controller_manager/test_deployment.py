"""The Deployment controller (with the ReplicaSet controller) against a
real API server, the test playing scheduler and kubelet: a rolling update
within maxSurge/maxUnavailable at every observed step, Recreate, undo,
pause, and a controller restart mid-rollout."""

from __future__ import annotations

import pytest

from services.controller_manager.deployment import DeploymentController, get_condition
from services.controller_manager.podcontrol import controller_ref, is_pod_ready
from services.controller_manager.replicaset import ReplicaSetController
from services.machinery import Conflict
from services.controller_manager.rollout import (
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    max_surge, max_unavailable, rolled_back,
)
from tests.integration.controller_manager.support_workloads import (
    FakeKubelet, delete_workloads, deployment, drive, image_of, is_available, is_live, modify,
)
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
async def _clean_up(client, namespace):
    """Set up before the controllers, so torn down after they stop."""
    yield
    await delete_workloads(client, namespace)

CONTROLLERS = (ReplicaSetController, DeploymentController)


async def replicasets(client, namespace: str):
    return list((await client.resource("replicasets").list(namespace)).items)


async def rs_for_image(client, namespace: str, image: str):
    return next((rs for rs in await replicasets(client, namespace)
                 if image_of(rs.spec.template) == image), None)


def rolled_out(client, namespace: str, name: str, image: str, replicas: int):
    """``done`` for :func:`drive`: every live pod runs ``image`` and is
    ready, exactly ``replicas`` of them, and the deployment's status says
    the rollout is complete."""
    async def done(pods) -> bool:
        live = [p for p in pods if is_live(p)]
        if len(pods) != replicas or len(live) != replicas:
            return False
        if not all(image_of(p) == image and is_pod_ready(p) for p in live):
            return False
        d = await client.resource("deployments").get(name, namespace)
        s = d.status
        progressing = get_condition(s, "Progressing")
        return (s.observed_generation == d.metadata.generation and s.replicas == replicas
                and s.updated_replicas == replicas and s.available_replicas == replicas
                and s.unavailable_replicas == 0 and progressing is not None
                and progressing.reason == "NewReplicaSetAvailable")
    return done


def rolling_bounds(replicas: int, surge: int, unavailable: int, seen: list):
    """``check`` for :func:`drive`: live pods never above replicas +
    maxSurge, available pods never below replicas - maxUnavailable."""
    def check(pods) -> None:
        live = sum(1 for p in pods if is_live(p))
        available = sum(1 for p in pods if is_available(p))
        seen.append((live, available))
        assert live <= replicas + surge, f"{live} live pods > {replicas} + {surge}"
        assert available >= replicas - unavailable, \
            f"{available} available pods < {replicas} - {unavailable}"
    return check


async def set_image(client, namespace: str, name: str, image: str, **changes) -> None:
    def mutate(d) -> None:
        d.spec.template.spec.containers[0].image = image
        for field, value in changes.items():
            setattr(d.spec, field, value)
    await modify(client.resource("deployments"), namespace, name, mutate)


def set_spec(client, namespace: str, name: str, **changes):
    def mutate(d) -> None:
        for field, value in changes.items():
            setattr(d.spec, field, value)
    return modify(client.resource("deployments"), namespace, name, mutate)


async def test_deployment_rolling_update_respects_surge_and_unavailable(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    d = await client.resource("deployments").create(
        deployment(namespace, replicas=5, surge="40%", unavailable=1))
    surge, unavailable = max_surge(d), max_unavailable(d)
    assert (surge, unavailable) == (2, 1)
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 5), ready_per_step=None)

    first = await rs_for_image(client, namespace, "web:1")
    assert first.metadata.annotations[REVISION_ANNOTATION] == "1"
    template_hash = first.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL]
    assert first.metadata.name == f"web-{template_hash}"
    assert first.spec.selector.match_labels[POD_TEMPLATE_HASH_LABEL] == template_hash

    await set_image(client, namespace, "web", "web:2")
    seen: list = []
    await drive(kubelet, rolled_out(client, namespace, "web", "web:2", 5),
                check=rolling_bounds(5, surge, unavailable, seen), ready_per_step=1)
    # The rollout really surged: old and new pods ran side by side.
    assert max(live for live, _ in seen) > 5

    second = await rs_for_image(client, namespace, "web:2")
    old = await rs_for_image(client, namespace, "web:1")
    assert second.metadata.annotations[REVISION_ANNOTATION] == "2"
    assert old.spec.replicas == 0
    current = await client.resource("deployments").get("web", namespace)
    assert current.metadata.annotations[REVISION_ANNOTATION] == "2"
    assert get_condition(current.status, "Available").reason == "MinimumReplicasAvailable"
    for pod in await kubelet.pods():
        assert controller_ref(pod).uid == second.metadata.uid


async def test_deployment_recreate_stops_old_pods_before_starting_new(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    await client.resource("deployments").create(
        deployment(namespace, replicas=3, strategy="Recreate"))
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 3), ready_per_step=None)

    await set_image(client, namespace, "web", "web:2")

    def never_mixed(pods) -> None:
        images = {image_of(p) for p in pods}  # terminating pods included
        assert images != {"web:1", "web:2"}, "old and new pods exist together"

    await drive(kubelet, rolled_out(client, namespace, "web", "web:2", 3), check=never_mixed)


async def test_deployment_undo_returns_to_the_previous_revision(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    api = client.resource("deployments")
    d = deployment(namespace, replicas=3, surge=1, unavailable=0)
    d.spec.min_ready_seconds = 1  # each new pod counts only a second after it is ready
    await api.create(d)
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 3), ready_per_step=None)
    await set_image(client, namespace, "web", "web:2")
    await drive(kubelet, rolled_out(client, namespace, "web", "web:2", 3), ready_per_step=None)

    # What `kyb rollout undo` does: put the previous revision's template back.
    for _ in range(20):
        current = await api.get("web", namespace)
        undone = rolled_back(current, await replicasets(client, namespace))
        assert undone is not None and image_of(undone.spec.template) == "web:1"
        try:
            await api.update(undone)
            break
        except Conflict:
            continue
    seen: list = []
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 3),
                check=rolling_bounds(3, 1, 0, seen))

    rss = await replicasets(client, namespace)
    assert len(rss) == 2, "the old ReplicaSet is reused, not recreated"
    back = await rs_for_image(client, namespace, "web:1")
    assert back.metadata.annotations[REVISION_ANNOTATION] == "3"
    assert back.metadata.annotations[REVISION_HISTORY_ANNOTATION] == "1"
    assert (await api.get("web", namespace)).metadata.annotations[REVISION_ANNOTATION] == "3"


async def test_deployment_paused_scales_but_does_not_roll_out(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    api = client.resource("deployments")
    await api.create(deployment(namespace, replicas=2))
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 2), ready_per_step=None)

    await set_spec(client, namespace, "web", paused=True)
    await set_image(client, namespace, "web", "web:2", replicas=4)

    async def scaled_while_paused(pods) -> bool:
        d = await api.get("web", namespace)
        progressing = get_condition(d.status, "Progressing")
        live = [p for p in pods if is_live(p)]
        return (d.status.observed_generation == d.metadata.generation and len(live) == 4
                and all(image_of(p) == "web:1" and is_pod_ready(p) for p in live)
                and progressing is not None and progressing.reason == "DeploymentPaused")
    await drive(kubelet, scaled_while_paused, ready_per_step=None)
    assert await rs_for_image(client, namespace, "web:2") is None

    await set_spec(client, namespace, "web", paused=False)
    await drive(kubelet, rolled_out(client, namespace, "web", "web:2", 4), ready_per_step=None)


async def test_deployment_rollout_survives_a_controller_restart(
        client, namespace, start_controllers):
    running = await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    await client.resource("deployments").create(
        deployment(namespace, replicas=4, surge=1, unavailable=1))
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 4), ready_per_step=None)
    await set_image(client, namespace, "web", "web:2")
    seen: list = []
    check = rolling_bounds(4, 1, 1, seen)

    def some_new_ready(pods) -> bool:
        return sum(1 for p in pods if image_of(p) == "web:2" and is_available(p)) >= 1
    await drive(kubelet, some_new_ready, check=check)

    await running.stop()  # the controller manager dies mid-rollout
    pods = await kubelet.pods()
    check(pods)
    await kubelet.step(pods)  # the cluster moves on without it
    check(await kubelet.pods())

    await start_controllers(*CONTROLLERS)
    last = await drive(kubelet, rolled_out(client, namespace, "web", "web:2", 4), check=check)
    assert len(last) == 4
    new_rs = await rs_for_image(client, namespace, "web:2")
    assert all(controller_ref(p).uid == new_rs.metadata.uid for p in last)
    assert len(await replicasets(client, namespace)) == 2


async def test_deployment_scaled_mid_rollout_spreads_proportionally(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    api = client.resource("deployments")
    await api.create(deployment(namespace, replicas=10, surge=3, unavailable=0))
    await drive(kubelet, rolled_out(client, namespace, "web", "web:1", 10), ready_per_step=None)
    await set_image(client, namespace, "web", "web:2")

    async def surged(pods) -> bool:
        new = await rs_for_image(client, namespace, "web:2")
        return new is not None and new.spec.replicas == 3
    # The new pods never become ready: the rollout stays at old 10 + new 3.
    await drive(kubelet, surged, ready_per_step=0)

    await set_spec(client, namespace, "web", replicas=20)

    async def spread() -> bool:
        old = await rs_for_image(client, namespace, "web:1")
        new = await rs_for_image(client, namespace, "web:2")
        return (old.spec.replicas, new.spec.replicas) == (18, 5)
    # 13 pods -> 20 + 3 surge = 23: 10 more, split 10:3 as the sets are
    # (old 10*23/13 = 17.7 -> 18, new 3*23/13 = 5.3 -> 5).
    await wait_until(spread, timeout=30, message="replicas spread 18/5")
    d = await api.get("web", namespace)
    for rs in await replicasets(client, namespace):
        assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "20"
        assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == \
            str(20 + max_surge(d))


async def test_deployment_keeps_only_revision_history_limit_old_sets(
        client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    d = deployment(namespace, replicas=1, surge=1, unavailable=0)
    d.spec.revision_history_limit = 1
    await client.resource("deployments").create(d)
    for version in (1, 2, 3):
        if version > 1:
            await set_image(client, namespace, "web", f"web:{version}")
        await drive(kubelet, rolled_out(client, namespace, "web", f"web:{version}", 1),
                    ready_per_step=None)

    async def cleaned_up():
        images = sorted(image_of(rs.spec.template) for rs in await replicasets(client, namespace))
        return images == ["web:2", "web:3"]
    await wait_until(cleaned_up, timeout=30, message="only the newest old ReplicaSet kept")


async def test_deployment_reports_a_stalled_rollout(client, namespace, start_controllers):
    await start_controllers(*CONTROLLERS)
    kubelet = FakeKubelet(client, namespace)
    d = deployment(namespace, replicas=1)
    d.spec.progress_deadline_seconds = 1
    await client.resource("deployments").create(d)
    pods = await wait_until(kubelet.pods, timeout=30, message="a pod")
    await kubelet.step(pods, ready=0)  # scheduled, but never becomes ready

    async def timed_out():
        current = await client.resource("deployments").get("web", namespace)
        cond = get_condition(current.status, "Progressing")
        return cond is not None and (cond.status, cond.reason) == \
            ("False", "ProgressDeadlineExceeded")
    await wait_until(timed_out, timeout=30, message="Progressing=False ProgressDeadlineExceeded")
