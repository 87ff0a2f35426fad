"""``kyb drain``'s plan: which pods it evicts, skips or refuses, and the
words it uses, as kubectl's drain filters decide."""

from __future__ import annotations

from services.ctl import node
from services.ctl.node import DrainOptions, plan_drain
from tests.support import objects


def _pod(name: str, *, owner: str = "ReplicaSet", phase: str = "Running",
         empty_dir: bool = False, mirror: bool = False):
    pod = objects.pod(name, "ns", node="n1")
    pod.metadata.uid = f"uid-{name}"
    pod.status.phase = phase
    if owner:
        pod.metadata.owner_references.add(api_version="apps/v1", kind=owner, name="owner",
                                          uid="owner-uid", controller=True)
    if empty_dir:
        pod.spec.volumes.add(name="scratch").empty_dir.SetInParent()
    if mirror:
        pod.metadata.annotations[node.MIRROR_ANNOTATION] = "x"
    return pod


def _names(pods):
    return [p.metadata.name for p in pods]


def test_drain_plan_evicts_controlled_pods():
    plan = plan_drain([_pod("a"), _pod("b")], DrainOptions())
    assert _names(plan.evict) == ["a", "b"]
    assert not plan.errors and not plan.warnings


def test_drain_plan_refuses_unmanaged_pods_without_force():
    plan = plan_drain([_pod("a"), _pod("solo", owner=""), _pod("solo2", owner="")],
                      DrainOptions())
    assert plan.error_text() == ("cannot delete Pods declare no controller (use --force to "
                                 "override): ns/solo, ns/solo2")
    forced = plan_drain([_pod("solo", owner="")], DrainOptions(force=True))
    assert _names(forced.evict) == ["solo"]
    assert forced.warning_text() == "deleting Pods that declare no controller: ns/solo"


def test_drain_plan_daemonset_pods_refused_or_ignored():
    plan = plan_drain([_pod("ds", owner="DaemonSet")], DrainOptions(force=True))
    assert plan.error_text() == ("cannot delete DaemonSet-managed Pods (use "
                                 "--ignore-daemonsets to ignore): ns/ds")
    ignored = plan_drain([_pod("ds", owner="DaemonSet")], DrainOptions(ignore_daemonsets=True))
    assert ignored.evict == [] and not ignored.errors
    assert ignored.warning_text() == "ignoring DaemonSet-managed Pods: ns/ds"


def test_drain_plan_skips_mirror_pods_silently():
    plan = plan_drain([_pod("static", owner="", mirror=True)], DrainOptions())
    assert plan.evict == [] and not plan.errors and not plan.warnings


def test_drain_plan_local_storage_needs_delete_emptydir_data():
    plan = plan_drain([_pod("cache", empty_dir=True)], DrainOptions(force=True))
    assert plan.error_text() == ("cannot delete Pods with local storage (use "
                                 "--delete-emptydir-data to override): ns/cache")
    allowed = plan_drain([_pod("cache", empty_dir=True)], DrainOptions(delete_emptydir_data=True))
    assert _names(allowed.evict) == ["cache"]
    assert allowed.warning_text() == "deleting Pods with local storage: ns/cache"


def test_drain_plan_keeps_every_warning_a_pod_earned():
    plan = plan_drain([_pod("x", owner="", empty_dir=True)],
                      DrainOptions(force=True, delete_emptydir_data=True))
    assert _names(plan.evict) == ["x"]
    assert plan.warning_text() == ("deleting Pods with local storage: ns/x; "
                                   "deleting Pods that declare no controller: ns/x")


def test_drain_plan_finished_pods_always_go():
    pods = [_pod("done", owner="", phase="Succeeded", empty_dir=True),
            _pod("failed-ds", owner="DaemonSet", phase="Failed")]
    plan = plan_drain(pods, DrainOptions())
    assert _names(plan.evict) == ["done", "failed-ds"]
    assert not plan.errors and not plan.warnings


def test_drain_plan_reports_several_reasons():
    plan = plan_drain([_pod("solo", owner=""), _pod("ds", owner="DaemonSet")], DrainOptions())
    assert plan.evict == []
    assert plan.error_text() == (
        "cannot delete Pods declare no controller (use --force to override): ns/solo; "
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ns/ds")


def test_drain_cordoned_changes_only_when_needed():
    n = objects.node("n1")
    assert node.cordoned(n, False) is None
    c = node.cordoned(n, True)
    assert c.spec.unschedulable and not n.spec.unschedulable
    assert node.cordoned(c, True) is None


def test_drain_remaining_keeps_the_pods_still_listed():
    waiting = {"uid-a": "ns/a", "uid-b": "ns/b"}
    assert node.remaining([_pod("b"), _pod("c")], waiting) == {"uid-b": "ns/b"}


def test_drain_help_exits_zero(capsys):
    from services.ctl import main as ctl
    for command in ("drain", "cordon", "uncordon"):
        assert ctl.main([command, "--help"]) == 0
    assert "cordon" in capsys.readouterr().out


def test_drain_needs_a_node_in_one_line(capsys):
    from services.ctl import main as ctl
    assert ctl.main(["--server", "127.0.0.1:1", "drain"]) == 1
    assert capsys.readouterr().err == (
        "error: USAGE: drain NODE [flags] (give a node name or -l SELECTOR)\n")
    assert ctl.main(["--server", "127.0.0.1:1", "cordon", "pod/x"]) == 1
    assert capsys.readouterr().err == "error: 'pod/x' is not a node: give NODE or node/NODE\n"
