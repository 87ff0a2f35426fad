"""``kyb scale``, ``rollout``, ``cordon``/``uncordon``/``drain``, ``get
events`` and ``describe pod`` events against a real API server and etcd.

No controller or kubelet runs: the tests play them, writing a deployment's
status for ``rollout status`` and confirming graceful pod deletions (a
second delete with grace 0) for ``drain``. ``kyb`` runs in-process in a
worker thread, so a command that waits can run while the test acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid

import pytest

from services.controller_manager import rollout as revisions
from services.ctl import main as ctl
from services.ctl import rollout
from services.machinery import errors
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class Kyb:
    """Runs ``kyb --server <test server> ARGS...`` in a thread; ``start``
    leaves it running so the test can act and poll ``output()``."""

    def __init__(self, address: str, capsys):
        self.address = address
        self.capsys = capsys
        self.out = self.err = ""

    def _collect(self) -> None:
        captured = self.capsys.readouterr()
        self.out += captured.out
        self.err += captured.err

    def output(self) -> str:
        self._collect()
        return self.out

    def start(self, *args: str) -> asyncio.Task:
        self._collect()
        self.out = self.err = ""
        return asyncio.create_task(
            asyncio.to_thread(ctl.main, ["--server", self.address, *args]))

    async def finish(self, task: asyncio.Task) -> Result:
        code = await task
        self._collect()
        assert "Traceback" not in self.err
        return Result(code, self.out, self.err)

    async def __call__(self, *args: str) -> Result:
        return await self.finish(self.start(*args))


@pytest.fixture
def kyb(apiserver, capsys):
    return Kyb(apiserver.address, capsys)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- scale -----------------------------------------------------------------------------------


async def test_cli_scale_deployment_and_replicaset(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 3))
    await client.resource("replicasets").create(objects.replicaset("cache", namespace, 2))

    result = await kyb("scale", "deployment/web", "--replicas", "5", "-n", namespace)
    assert (result.code, result.out, result.err) == (0, "deployment.apps/web scaled\n", "")
    assert (await client.resource("deployments").get("web", namespace)).spec.replicas == 5

    result = await kyb("scale", "rs", "cache", "--replicas=0", "-n", namespace)
    assert result.out == "replicaset.apps/cache scaled\n"
    assert (await client.resource("replicasets").get("cache", namespace)).spec.replicas == 0


async def test_cli_scale_current_replicas_precondition(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 3))
    result = await kyb("scale", "deploy", "web", "--replicas", "1", "--current-replicas", "2",
                       "-n", namespace)
    assert (result.code, result.out) == (1, "")
    assert result.err == "error: Expected replicas to be 2, was 3\n"
    assert (await client.resource("deployments").get("web", namespace)).spec.replicas == 3
    result = await kyb("scale", "deploy", "web", "--replicas", "1", "--current-replicas", "3",
                       "-n", namespace)
    assert result.code == 0
    assert (await client.resource("deployments").get("web", namespace)).spec.replicas == 1


async def test_cli_scale_missing_object_is_not_found(kyb, namespace):
    result = await kyb("scale", "deploy/nope", "--replicas", "1", "-n", namespace)
    assert result.code == 1
    assert result.err == 'Error from server (NotFound): deployments "nope" not found\n'


async def test_cli_scale_retries_conflicting_writers(client, namespace):
    """Writers racing on one object each re-read and retry: a writer loses
    at most once per rival, so all of them get through."""
    from services.api import kinds
    from services.ctl import scale
    from services.ctl.context import Context

    await client.resource("deployments").create(objects.deployment("web", namespace, 1))
    ctx = Context(client=client, namespace=namespace)
    kind = kinds.lookup("deployments")
    await asyncio.gather(*(scale.scale(ctx, kind, "web", namespace, n) for n in (2, 3, 4, 5)))
    assert (await client.resource("deployments").get("web", namespace)).spec.replicas in \
        (2, 3, 4, 5)


# --- rollout ---------------------------------------------------------------------------------


async def _set_status(client, namespace: str, name: str, *, updated: int, total: int,
                      available: int, progressing_reason: str = "") -> None:
    """Play the Deployment controller: observe the spec and report counts."""
    api = client.resource("deployments")
    for _ in range(5):
        d = await api.get(name, namespace)
        d.status.observed_generation = d.metadata.generation
        d.status.replicas, d.status.updated_replicas = total, updated
        d.status.available_replicas = d.status.ready_replicas = available
        del d.status.conditions[:]
        if progressing_reason:
            d.status.conditions.add(type="Progressing", status="False",
                                    reason=progressing_reason)
        try:
            await api.update_status(d)
            return
        except errors.Conflict:
            continue
    raise AssertionError("could not write the deployment status")


async def test_cli_rollout_status_follows_the_deployment_until_done(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 3))
    await _set_status(client, namespace, "web", updated=1, total=3, available=1)

    task = kyb.start("rollout", "status", "deployment/web", "-n", namespace)
    steps = [
        ({}, 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have '
             'been updated...'),
        (dict(updated=3, total=4, available=2),
         'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
         'termination...'),
        (dict(updated=3, total=3, available=2),
         'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
         'available...'),
        (dict(updated=3, total=3, available=3), 'deployment "web" successfully rolled out'),
    ]
    for counts, line in steps:
        if counts:
            await _set_status(client, namespace, "web", **counts)
        await wait_until(lambda line=line: line in kyb.output(), timeout=15, message=line)
    result = await kyb.finish(task)
    assert result.code == 0, result.err
    assert result.lines == [line for _, line in steps]


async def test_cli_rollout_status_waits_for_the_spec_to_be_observed(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 1))
    result = await kyb("rollout", "status", "deploy/web", "--watch=false", "-n", namespace)
    assert (result.code, result.out) == (
        0, "Waiting for deployment spec update to be observed...\n")


async def test_cli_rollout_status_fails_on_progress_deadline(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 2))
    await _set_status(client, namespace, "web", updated=0, total=2, available=2)
    task = kyb.start("rollout", "status", "deployment/web", "-n", namespace)
    await wait_until(lambda: "0 out of 2 new replicas" in kyb.output(), timeout=15)
    await _set_status(client, namespace, "web", updated=1, total=3, available=2,
                      progressing_reason=rollout.TIMED_OUT_REASON)
    result = await kyb.finish(task)
    assert result.code == 1
    assert result.err == 'error: deployment "web" exceeded its progress deadline\n'


async def test_cli_rollout_status_times_out(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 2))
    await _set_status(client, namespace, "web", updated=0, total=2, available=2)
    result = await kyb("rollout", "status", "deployment/web", "--timeout", "1s",
                       "-n", namespace)
    assert result.code == 1
    assert result.err == "error: timed out waiting for the condition\n"


async def _deployment_with_history(client, namespace: str):
    """A deployment at revision 2 (nginx:2) with its ReplicaSets for
    revisions 1 (nginx:1) and 2, and one ReplicaSet it does not control."""
    created = await client.resource("deployments").create(
        objects.deployment("web", namespace, 2))
    for revision, cause in ((1, "first"), (2, "")):
        rs = objects.replicaset(f"web-h{revision}", namespace)
        rs.spec.selector.match_labels.clear()
        rs.spec.selector.match_labels["app"] = "web"
        rs.spec.template.CopyFrom(created.spec.template)
        rs.spec.template.metadata.labels[revisions.POD_TEMPLATE_HASH_LABEL] = f"h{revision}"
        rs.spec.template.spec.containers[0].image = f"nginx:{revision}"
        rs.metadata.annotations[revisions.REVISION_ANNOTATION] = str(revision)
        if cause:
            rs.metadata.annotations[rollout.CHANGE_CAUSE_ANNOTATION] = cause
        rs.metadata.owner_references.add(api_version="apps/v1", kind="Deployment", name="web",
                                         uid=created.metadata.uid, controller=True)
        await client.resource("replicasets").create(rs)
    stranger = objects.replicaset("stranger", namespace)
    stranger.metadata.annotations[revisions.REVISION_ANNOTATION] = "7"
    await client.resource("replicasets").create(stranger)
    created.spec.template.spec.containers[0].image = "nginx:2"
    return await client.resource("deployments").update(created)


async def test_cli_rollout_history_lists_revisions(kyb, client, namespace):
    await _deployment_with_history(client, namespace)
    result = await kyb("rollout", "history", "deployment/web", "-n", namespace)
    assert result.code == 0, result.err
    assert result.lines == [
        "deployment.apps/web",
        "REVISION  CHANGE-CAUSE",
        "1         first",
        "2         <none>",
    ]
    detail = await kyb("rollout", "history", "deployment/web", "--revision", "1",
                       "-n", namespace)
    assert detail.lines[:2] == ["deployment.apps/web with revision #1", "Pod Template:"]
    assert any(line.split() == ["Image:", "nginx:1"] for line in detail.lines)
    missing = await kyb("rollout", "history", "deployment/web", "--revision", "9",
                        "-n", namespace)
    assert (missing.code, missing.err) == (
        1, "error: unable to find the specified revision 9\n")


async def test_cli_rollout_undo_restores_the_previous_template(kyb, client, namespace):
    await _deployment_with_history(client, namespace)
    result = await kyb("rollout", "undo", "deployment/web", "-n", namespace)
    assert (result.code, result.out) == (0, "deployment.apps/web rolled back\n"), result.err
    d = await client.resource("deployments").get("web", namespace)
    assert d.spec.template.spec.containers[0].image == "nginx:1"
    assert revisions.POD_TEMPLATE_HASH_LABEL not in d.spec.template.metadata.labels
    assert d.metadata.annotations[rollout.CHANGE_CAUSE_ANNOTATION] == "first"

    again = await kyb("rollout", "undo", "deployment/web", "--to-revision", "1",
                      "-n", namespace)
    assert again.out == ("deployment.apps/web skipped rollback (current template already "
                         "matches revision 1)\n")
    missing = await kyb("rollout", "undo", "deployment/web", "--to-revision=9",
                        "-n", namespace)
    assert (missing.code, missing.err) == (
        1, "error: unable to find specified revision 9 in history\n")


async def test_cli_rollout_pause_resume_restart(kyb, client, namespace):
    await client.resource("deployments").create(objects.deployment("web", namespace, 1))
    api = client.resource("deployments")
    assert (await kyb("rollout", "pause", "deployment/web", "-n", namespace)).out == \
        "deployment.apps/web paused\n"
    assert (await api.get("web", namespace)).spec.paused
    twice = await kyb("rollout", "pause", "deployment/web", "-n", namespace)
    assert (twice.code, twice.err) == (
        1, 'error: deployments.apps "web" is already paused\n')
    undo = await kyb("rollout", "undo", "deployment/web", "-n", namespace)
    assert undo.code == 1 and "you cannot rollback a paused deployment" in undo.err
    restart = await kyb("rollout", "restart", "deployment/web", "-n", namespace)
    assert restart.code == 1 and "can't restart paused deployment" in restart.err

    assert (await kyb("rollout", "resume", "deploy", "web", "-n", namespace)).out == \
        "deployment.apps/web resumed\n"
    assert not (await api.get("web", namespace)).spec.paused
    restart = await kyb("rollout", "restart", "deployment/web", "-n", namespace)
    assert restart.out == "deployment.apps/web restarted\n"
    template = (await api.get("web", namespace)).spec.template
    assert rollout.RESTARTED_AT_ANNOTATION in template.metadata.annotations


# --- cordon, uncordon, drain -----------------------------------------------------------------


@pytest.fixture
async def node_name(client):
    name = _unique("drain-node")
    await client.resource("nodes").create(objects.node(name))
    yield name
    with contextlib.suppress(errors.NotFound):
        await client.resource("nodes").delete(name)


async def test_cli_cordon_and_uncordon(kyb, client, node_name):
    nodes = client.resource("nodes")
    assert (await kyb("cordon", node_name)).out == f"node/{node_name} cordoned\n"
    assert (await nodes.get(node_name)).spec.unschedulable
    assert (await kyb("cordon", f"node/{node_name}")).out == \
        f"node/{node_name} already cordoned\n"
    assert (await kyb("uncordon", node_name)).out == f"node/{node_name} uncordoned\n"
    assert not (await nodes.get(node_name)).spec.unschedulable
    missing = await kyb("cordon", "no-such-node-x")
    assert (missing.code, missing.err) == (
        1, 'Error from server (NotFound): nodes "no-such-node-x" not found\n')


async def _pod_on(client, namespace: str, name: str, node: str, *, managed: bool = True):
    pod = objects.pod(name, namespace, node=node)
    if managed:
        pod.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                          name="web", uid="rs-uid", controller=True)
    return await client.resource("pods").create(pod)


async def _play_kubelet(client, node: str) -> None:
    """Confirm every graceful deletion on ``node`` (grace 0), as its kubelet would."""
    pods = client.resource("pods")
    while True:
        listing = await pods.list_all("", field_selector=f"spec.nodeName={node}")
        for pod in listing.items:
            if pod.metadata.HasField("deletion_timestamp"):
                with contextlib.suppress(errors.NotFound):
                    await pods.delete(pod.metadata.name, pod.metadata.namespace,
                                      grace_period_seconds=0)
        async for event in pods.watch("", field_selector=f"spec.nodeName={node}",
                                      resource_version=listing.metadata.resource_version):
            pod = event.object
            if event.type == "MODIFIED" and pod.metadata.HasField("deletion_timestamp"):
                with contextlib.suppress(errors.NotFound):
                    await pods.delete(pod.metadata.name, pod.metadata.namespace,
                                      grace_period_seconds=0)


async def test_cli_drain_refuses_unmanaged_pods_but_cordons(kyb, client, namespace, node_name):
    await _pod_on(client, namespace, "web-1", node_name)
    await _pod_on(client, namespace, "solo", node_name, managed=False)
    result = await kyb("drain", node_name)
    assert result.code == 1
    assert result.out == f"node/{node_name} cordoned\n"
    assert result.err == (f'error: unable to drain node "{node_name}": cannot delete Pods '
                          f'declare no controller (use --force to override): '
                          f'{namespace}/solo\n')
    assert (await client.resource("nodes").get(node_name)).spec.unschedulable
    listing = await client.resource("pods").list_all(namespace)
    assert sorted(p.metadata.name for p in listing.items) == ["solo", "web-1"]
    assert not any(p.metadata.HasField("deletion_timestamp") for p in listing.items)


async def test_cli_drain_evicts_and_waits_for_the_kubelet(kyb, client, namespace, node_name):
    await _pod_on(client, namespace, "web-1", node_name)
    await _pod_on(client, namespace, "web-2", node_name)
    await _pod_on(client, namespace, "solo", node_name, managed=False)
    await _pod_on(client, namespace, "elsewhere", "other-node")
    kubelet = asyncio.create_task(_play_kubelet(client, node_name))
    try:
        result = await kyb("drain", node_name, "--force")
    finally:
        kubelet.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kubelet
    assert result.code == 0, result.err
    assert result.err == ("Warning: deleting Pods that declare no controller: "
                          f"{namespace}/solo\n")
    lines = result.lines
    assert lines[0] == f"node/{node_name} cordoned"
    assert lines[-1] == f"node/{node_name} drained"
    assert sorted(lines[1:4]) == [f"evicting pod {namespace}/{n}"
                                  for n in ("solo", "web-1", "web-2")]
    assert sorted(lines[4:-1]) == ["pod/solo evicted", "pod/web-1 evicted", "pod/web-2 evicted"]
    listing = await client.resource("pods").list_all(namespace)
    assert [p.metadata.name for p in listing.items] == ["elsewhere"]


async def test_cli_drain_grace_period_zero_deletes_at_once(kyb, client, namespace, node_name):
    await _pod_on(client, namespace, "web-1", node_name)
    await kyb("cordon", node_name)
    result = await kyb("drain", node_name, "--grace-period", "0")
    assert result.code == 0, result.err
    assert result.lines == [f"node/{node_name} already cordoned",
                            f"evicting pod {namespace}/web-1", "pod/web-1 evicted",
                            f"node/{node_name} drained"]
    assert list((await client.resource("pods").list_all(namespace)).items) == []


async def test_cli_drain_times_out_when_pods_linger(kyb, client, namespace, node_name):
    await _pod_on(client, namespace, "stuck", node_name)
    result = await kyb("drain", node_name, "--timeout", "1s")
    assert result.code == 1
    assert result.err == (f'error: unable to drain node "{node_name}": global timeout '
                          f'reached: 1s; pods still terminating: {namespace}/stuck\n')
    pod = await client.resource("pods").get("stuck", namespace)
    assert pod.metadata.HasField("deletion_timestamp")
    await client.resource("pods").delete("stuck", namespace, grace_period_seconds=0)


# --- events ----------------------------------------------------------------------------------


async def test_cli_get_events_and_describe_pod_events(kyb, client, namespace):
    pod = await client.resource("pods").create(objects.pod("web", namespace, node="n1"))
    ev = objects.event("web.1", namespace, about="web")
    ev.involved_object.uid = pod.metadata.uid
    ev.reason, ev.message, ev.type = "FailedScheduling", "0/3 nodes are available", "Warning"
    ev.source.component = "default-scheduler"
    await client.resource("events").create(ev)

    events = await kyb("get", "events", "-n", namespace)
    assert events.code == 0, events.err
    assert events.lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events.lines[1].split()[1:4] == ["Warning", "FailedScheduling", "pod/web"]
    assert events.lines[1].endswith("0/3 nodes are available")

    described = await kyb("describe", "pod", "web", "-n", namespace)
    lines = described.lines
    at = lines.index("Events:")
    assert lines[at + 3].split()[:2] == ["Warning", "FailedScheduling"]
    assert lines[at + 3].endswith("default-scheduler  0/3 nodes are available")
