from __future__ import annotations

import pytest

from services.kubelet.main import config_from, main, parse_args


def test_main_defaults_and_flags_map_onto_the_config():
    opts = parse_args(["--node-name", "n7", "--port", "0", "--sync-frequency", "2",
                       "--kube-reserved", "cpu=100m,memory=256Mi",
                       "--container-restart-backoff", "1", "--container-restart-backoff-max", "4",
                       "--node-labels", "zone=a,tier=web"])
    config = config_from(opts)
    assert config.node_name == "n7" and config.port == 0 and config.sync_frequency == 2
    assert config.kube_reserved == "cpu=100m,memory=256Mi"
    assert (config.crash_backoff_initial, config.crash_backoff_max) == (1, 4)
    assert config.node_labels == {"zone": "a", "tier": "web"}
    defaults = parse_args([])
    assert defaults.port == 10250 and defaults.metrics_port == 10248
    assert defaults.root_dir == "/var/lib/kyb-kubelet" and defaults.runtime == "docker"
    assert defaults.pod_infra_container_image == "kyb/pause:latest"
    assert defaults.max_pods == 110 and defaults.node_lease_renew_interval == 10


@pytest.mark.parametrize("argv", [
    ["--nodes", "3"],                                  # hollow nodes need the fake runtime
    ["--nodes", "0", "--runtime", "fake"],
    ["--kube-reserved", "cpu"],
    ["--sync-frequency", "0"],
    ["--container-restart-backoff", "20", "--container-restart-backoff-max", "10"],
])
def test_main_rejects_bad_flags_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kyb-kubelet: error:")


def test_main_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--server", "--node-name", "--node-ip", "--port", "--metrics-port", "--root-dir",
                 "--runtime", "--nodes", "--docker-host", "--pod-infra-container-image",
                 "--max-pods", "--kube-reserved", "--system-reserved",
                 "--node-lease-renew-interval", "--node-status-update-period",
                 "--sync-frequency", "--log-level"):
        assert flag in out
