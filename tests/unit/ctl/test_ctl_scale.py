"""``kyb scale``'s pure parts: the replica edit, kubectl's preconditions and
which kinds scale."""

from __future__ import annotations

import pytest

from services.api import kinds
from services.ctl import main as ctl
from services.ctl import scale
from tests.support import objects


def test_scale_scaled_sets_replicas_on_a_copy():
    d = objects.deployment("web", replicas=3)
    new = scale.scaled(d, 5)
    assert new.spec.replicas == 5 and d.spec.replicas == 3


def test_scale_current_replicas_precondition_reads_like_kubectl():
    d = objects.deployment("web", replicas=2)
    assert scale.scaled(d, 4, current=2).spec.replicas == 4
    with pytest.raises(scale.PreconditionError, match="^Expected replicas to be 3, was 2$"):
        scale.scaled(d, 4, current=3)


def test_scale_unset_replicas_count_as_one():
    rs = objects.replicaset("web")
    rs.spec.ClearField("replicas")
    assert scale.current_replicas(rs) == 1
    assert scale.scaled(rs, 0, current=1).spec.replicas == 0


def test_scale_resource_version_precondition():
    d = objects.deployment("web")
    d.metadata.resource_version = "7"
    assert scale.scaled(d, 1, resource_version="7").spec.replicas == 1
    with pytest.raises(scale.PreconditionError,
                       match="^Expected resource version to be 6, was 7$"):
        scale.scaled(d, 1, resource_version="6")


def test_scale_scalable_kinds_have_spec_replicas():
    assert scale.scalable(kinds.lookup("deploy")) and scale.scalable(kinds.lookup("rs"))
    assert not scale.scalable(kinds.lookup("pods"))
    assert not scale.scalable(kinds.lookup("namespaces"))


def test_scale_command_line_errors_are_one_line(capsys):
    assert ctl.main(["--server", "127.0.0.1:1", "scale", "deploy/web"]) == 1
    assert capsys.readouterr().err == (
        "error: The --replicas=COUNT flag is required, and COUNT must be greater than or "
        "equal to 0\n")
    assert ctl.main(["--server", "127.0.0.1:1", "scale", "pod/web", "--replicas", "2"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot scale pods: ")
    assert ctl.main(["--server", "127.0.0.1:1", "scale", "deploy", "--replicas", "2"]) == 1
    assert "no name was specified" in capsys.readouterr().err


def test_scale_help_exits_zero(capsys):
    assert ctl.main(["scale", "--help"]) == 0
    assert "--current-replicas" in capsys.readouterr().out
