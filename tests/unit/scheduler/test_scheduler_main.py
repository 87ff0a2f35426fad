"""kyb-scheduler's command line: documented flags, one-line errors, and the
pure helpers of the shell (events, conditions, node change detection)."""

from __future__ import annotations

import datetime

import pytest
from google.protobuf import timestamp_pb2

from services.scheduler import events, main
from services.scheduler.scheduler import has_condition, node_scheduling_changed, set_condition
from tests.unit.scheduler.builders import node, pod

FLAGS = ["--server", "--metrics-port", "--leader-elect", "--leader-elect-lease-duration",
         "--leader-elect-renew-deadline", "--leader-elect-retry-period", "--scheduler-name",
         "--percentage-of-nodes-to-score", "--config", "--log-level"]


def test_main_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in out
    assert "10259" in out and "default-scheduler" in out


@pytest.mark.parametrize("argv, message", [
    (["--percentage-of-nodes-to-score", "120"], "--percentage-of-nodes-to-score"),
    (["--leader-elect-lease-duration", "5s", "--leader-elect-renew-deadline", "10s"],
     "--leader-elect-lease-duration must be greater"),
    (["--server", "nonsense"], "is not HOST:PORT"),
])
def test_main_bad_flags_fail_with_one_line(argv, message, capsys):
    assert main.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_main_bad_config_file_fails_with_one_line(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("profiles: [{plugins: {score: {enabled: [{name: Nope}]}}}]")
    assert main.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown plugin 'Nope'" in err and err.count("\n") == 1


@pytest.mark.parametrize("text, seconds", [("15", 15.0), ("2.5", 2.5), ("15s", 15.0),
                                           ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0)])
def test_main_duration_parses_kubernetes_durations(text, seconds):
    assert main.duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "1m30"])
def test_main_duration_rejects_garbage(text):
    with pytest.raises(Exception, match="invalid duration"):
        main.duration(text)


def test_events_make_event_describes_the_pod():
    p = pod("web-1", "shop", uid="u-1")
    now = timestamp_pb2.Timestamp(seconds=100)
    ev = events.make_event(p, events.NORMAL, events.SCHEDULED,
                           events.scheduled_message("shop", "web-1", "n1"),
                           component="default-scheduler", instance="me", now=now,
                           name="web-1.abc")
    assert ev.metadata.namespace == "shop" and ev.metadata.name == "web-1.abc"
    assert (ev.involved_object.kind, ev.involved_object.name, ev.involved_object.uid) == \
        ("Pod", "web-1", "u-1")
    assert ev.message == "Successfully assigned shop/web-1 to n1"
    assert (ev.type, ev.reason, ev.count) == ("Normal", "Scheduled", 1)
    assert ev.source.component == ev.reporting_component == "default-scheduler"


def test_set_condition_moves_transition_time_only_on_status_change():
    p = pod("a")
    t1 = timestamp_pb2.Timestamp(seconds=1)
    t2 = timestamp_pb2.Timestamp(seconds=2)
    set_condition(p, "PodScheduled", "False", "Unschedulable", "m1", t1)
    set_condition(p, "PodScheduled", "False", "Unschedulable", "m2", t2)
    [cond] = p.status.conditions
    assert (cond.message, cond.last_transition_time.seconds) == ("m2", 1)
    assert has_condition(p, "PodScheduled", "False", "Unschedulable", "m2")
    assert not has_condition(p, "PodScheduled", "False", "Unschedulable", "m1")


@pytest.mark.parametrize("change, relevant", [
    (lambda n: n.status.conditions[0].last_heartbeat_time.FromDatetime(
        datetime.datetime(2024, 1, 1)), False),
    (lambda n: n.status.addresses.add(type="InternalIP", address="10.0.0.1"), False),
    (lambda n: n.metadata.labels.update({"zone": "a"}), True),
    (lambda n: n.spec.taints.add(key="k", effect="NoSchedule"), True),
    (lambda n: setattr(n.spec, "unschedulable", True), True),
    (lambda n: n.status.allocatable.update({"cpu": "8"}), True),
    (lambda n: setattr(n.status.conditions[0], "status", "False"), True),
])
def test_node_scheduling_changed_ignores_heartbeats(change, relevant):
    old = node("n")
    new = type(old)()
    new.CopyFrom(old)
    change(new)
    assert node_scheduling_changed(old, new) is relevant


def test_events_recorder_drops_when_its_queue_is_full():
    from services.machinery import Client
    recorder = events.EventRecorder(Client(["127.0.0.1:1"]), "default-scheduler",
                                    max_pending=2)
    for i in range(3):
        recorder.event(pod(f"p{i}"), events.NORMAL, events.SCHEDULED, "m")
    assert (recorder.pending, recorder.dropped) == (2, 1)


def test_bench_check_allocations_finds_over_committed_nodes():
    from tests.bench.scheduler import check_allocations
    nodes = [node("a", cpu="1", memory="1Gi", pods="2"), node("b", cpu="1", memory="1Gi")]
    fits = [pod("x", cpu="600m", node_name="a"), pod("y", cpu="400m", node_name="a")]
    assert check_allocations(nodes, fits) == []
    over = fits + [pod("z", cpu="1m", node_name="a"), pod("w", node_name="gone")]
    problems = check_allocations(nodes, over)
    assert problems[0].startswith("a: 1001m cpu") and "3 pods" in problems[0]
    assert problems[1] == "pods bound to unknown node gone"
