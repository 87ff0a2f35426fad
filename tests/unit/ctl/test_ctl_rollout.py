"""``kyb rollout``'s pure parts: kubectl's status messages, the history
table, a revision's template, and the pause/resume/restart edits."""

from __future__ import annotations

import pytest

from services.controller_manager import rollout as revisions
from services.ctl import main as ctl
from services.ctl import rollout
from tests.support import objects


def _deployment(replicas: int = 3, *, generation: int = 2, observed: int = 2, updated: int = 3,
                total: int = 3, available: int = 3):
    d = objects.deployment("web", replicas=replicas)
    d.metadata.generation = generation
    s = d.status
    s.observed_generation, s.updated_replicas = observed, updated
    s.replicas, s.available_replicas = total, available
    return d


def _rs(name: str, revision: int, image: str, cause: str = ""):
    rs = objects.replicaset(name)
    rs.metadata.annotations[revisions.REVISION_ANNOTATION] = str(revision)
    if cause:
        rs.metadata.annotations[rollout.CHANGE_CAUSE_ANNOTATION] = cause
    rs.spec.template.metadata.labels[revisions.POD_TEMPLATE_HASH_LABEL] = f"h{revision}"
    rs.spec.template.spec.containers[0].image = image
    return rs


def test_rollout_status_waits_for_the_spec_to_be_observed():
    assert rollout.status_message(_deployment(generation=3, observed=2)) == (
        "Waiting for deployment spec update to be observed...", False)


def test_rollout_status_counts_updated_then_old_then_available_replicas():
    assert rollout.status_message(_deployment(updated=1, total=4, available=3)) == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
        'updated...', False)
    assert rollout.status_message(_deployment(updated=3, total=4, available=3)) == (
        'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
        'termination...', False)
    assert rollout.status_message(_deployment(updated=3, total=3, available=1)) == (
        'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are '
        'available...', False)


def test_rollout_status_done_when_every_updated_replica_is_available():
    assert rollout.status_message(_deployment()) == (
        'deployment "web" successfully rolled out', True)


def test_rollout_status_unset_replicas_means_one():
    d = _deployment(updated=1, total=1, available=1)
    d.spec.ClearField("replicas")
    assert rollout.status_message(d)[1] is True


def test_rollout_status_progress_deadline_is_an_error():
    d = _deployment(updated=1)
    d.status.conditions.add(type="Progressing", status="False",
                            reason=rollout.TIMED_OUT_REASON)
    with pytest.raises(rollout.RolloutError, match='deployment "web" exceeded its progress '
                                                   'deadline'):
        rollout.status_message(d)


def test_rollout_status_other_revision_is_an_error():
    d = _deployment()
    d.metadata.annotations[revisions.REVISION_ANNOTATION] = "2"
    assert rollout.status_message(d, revision=2)[1] is True
    with pytest.raises(rollout.RolloutError, match=r"desired revision \(3\) is different "
                                                   r"from the running revision \(2\)"):
        rollout.status_message(d, revision=3)


def test_rollout_history_lines_are_kubectls_table():
    history = [(1, _rs("a", 1, "nginx:1")), (2, _rs("b", 2, "nginx:2", "kyb set image"))]
    assert rollout.history_lines(history) == [
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         kyb set image",
    ]
    assert rollout.history_lines([]) == ["No rollout history found."]


def test_rollout_revision_detail_shows_the_template_and_its_cause():
    history = [(1, _rs("a", 1, "nginx:1")), (2, _rs("b", 2, "nginx:2", "why not"))]
    text = rollout.revision_detail(history, 2)
    lines = text.splitlines()
    assert lines[0] == "Pod Template:"
    assert any("kubernetes.io/change-cause: why not" in line for line in lines)
    assert any(line.strip().startswith("Image:") and line.endswith("nginx:2") for line in lines)
    with pytest.raises(rollout.RolloutError, match="unable to find the specified revision 5"):
        rollout.revision_detail(history, 5)


def test_rollout_paused_sets_the_flag_once():
    d = _deployment()
    p = rollout.paused(d, True)
    assert p.spec.paused and not d.spec.paused
    with pytest.raises(rollout.RolloutError, match="is already paused"):
        rollout.paused(p, True)
    with pytest.raises(rollout.RolloutError, match="is not paused"):
        rollout.paused(d, False)
    assert not rollout.paused(p, False).spec.paused


def test_rollout_restarted_stamps_the_template():
    d = _deployment()
    r = rollout.restarted(d, 1_700_000_000)
    stamp = r.spec.template.metadata.annotations[rollout.RESTARTED_AT_ANNOTATION]
    assert stamp.startswith("2023-11-1")
    assert rollout.RESTARTED_AT_ANNOTATION not in d.spec.template.metadata.annotations
    with pytest.raises(rollout.RolloutError, match="can't restart paused deployment"):
        rollout.restarted(rollout.paused(d, True), 0)


def test_rollout_parser_reads_subcommands_and_durations():
    args = ctl.build_parser().parse_args(
        ["rollout", "status", "deployment/web", "--timeout", "5m", "-n", "x"])
    assert (args.rollout_command, args.resources, args.timeout, args.namespace) == (
        "status", ["deployment/web"], 300.0, "x")
    args = ctl.build_parser().parse_args(["rollout", "undo", "deploy", "web", "--to-revision=2"])
    assert (args.resources, args.to_revision) == (["deploy", "web"], 2)


def test_rollout_refuses_other_kinds_in_one_line(capsys):
    assert ctl.main(["--server", "127.0.0.1:1", "rollout", "status", "rs/web"]) == 1
    err = capsys.readouterr().err
    assert err == "error: no status support for replicasets.apps: only deployments roll out\n"
    assert ctl.main(["rollout"]) == 1
    assert capsys.readouterr().err.startswith("error: the following arguments are required")


def test_rollout_help_exits_zero(capsys):
    for sub in ("status", "history", "undo", "pause", "resume", "restart"):
        assert ctl.main(["rollout", sub, "--help"]) == 0
    assert ctl.main(["rollout", "--help"]) == 0
    assert "status" in capsys.readouterr().out
