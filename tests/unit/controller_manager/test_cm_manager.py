"""--controllers parsing as kube-controller-manager does it, lazy controller
loading, and the daemon's flag validation."""

from __future__ import annotations

import pytest

from services.controller_manager import main as cm_main
from services.controller_manager.manager import (
    CONTROLLERS, ControllerError, is_controller_enabled, load_controller, parse_controllers,
)

KNOWN = ["a", "b", "c"]


def test_manager_star_enables_all_default_controllers():
    assert parse_controllers("*", KNOWN) == KNOWN
    assert parse_controllers("", KNOWN) == KNOWN
    assert parse_controllers("*", KNOWN, disabled_by_default={"c"}) == ["a", "b"]


def test_manager_minus_disables_and_plain_name_enables():
    assert parse_controllers("*,-b", KNOWN) == ["a", "c"]
    assert parse_controllers("b", KNOWN) == ["b"]
    assert parse_controllers("c,*", KNOWN, disabled_by_default={"c"}) == KNOWN


def test_manager_first_mention_wins():
    assert is_controller_enabled("a", ["-a", "a"]) is False
    assert is_controller_enabled("a", ["a", "-a"]) is True
    assert is_controller_enabled("a", ["-b"]) is False


def test_manager_unknown_controller_is_an_error():
    with pytest.raises(ControllerError, match='unknown controller "nope"'):
        parse_controllers("*,-nope", KNOWN)


def test_manager_spaces_and_list_input_accepted():
    assert parse_controllers([" a ", "b"], KNOWN) == ["a", "b"]


def test_manager_endpoint_alias_is_kubernetes_name():
    assert "endpoints" not in parse_controllers("*,-endpoint")
    assert parse_controllers("endpoint") == ["endpoints"]


def test_manager_registry_loads_own_controllers_lazily():
    for name in ("endpoints", "nodeipam", "nodelifecycle", "garbagecollector", "namespace"):
        assert load_controller(name).NAME == name


def test_manager_missing_module_fails_clearly_only_when_loaded():
    registry = dict(CONTROLLERS, ghost="services.controller_manager.ghost:Ghost")
    with pytest.raises(ControllerError, match='controller "ghost" cannot be loaded'):
        load_controller("ghost", registry)


def test_manager_flags_defaults():
    opts = cm_main.parse_args([])
    assert opts.metrics_port == 10257 and opts.leader_elect is True
    assert opts.cluster_cidr == "10.244.0.0/16" and opts.node_cidr_mask_size == 24
    assert opts.node_monitor_grace_period == 50.0 and opts.node_monitor_period == 5.0


def test_manager_flags_take_kubernetes_durations():
    opts = cm_main.parse_args(["--node-monitor-grace-period", "1m30s",
                               "--leader-elect-retry-period", "500ms", "--leader-elect=false"])
    assert opts.node_monitor_grace_period == 90.0
    assert opts.leader_elect_retry_period == 0.5 and opts.leader_elect is False


def test_manager_validate_rejects_bad_values_in_one_line():
    for argv, message in ((["--controllers", "x"], "unknown controller"),
                          (["--cluster-cidr", "10.0.0.0/8", "--node-cidr-mask-size", "30"],
                           "more than 16 bits"),
                          (["--leader-elect-lease-duration", "5",
                            "--leader-elect-renew-deadline", "6"], "lease-duration")):
        with pytest.raises(ValueError, match=message):
            cm_main.validate(cm_main.parse_args(argv))


def test_manager_main_exits_2_with_one_line_on_bad_flags(capsys):
    assert cm_main.main(["--controllers", "nope", "--server", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown controller" in err
