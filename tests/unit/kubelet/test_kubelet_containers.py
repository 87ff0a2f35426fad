from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.containers import (
    ConfigError, container_config, cpu_shares, grace_seconds, sandbox_config,
)
from services.kubelet.runtime.base import (
    LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_GRACE, LABEL_INIT, LABEL_NODE,
    LABEL_POD_UID, LABEL_RESTART_COUNT, LABEL_TYPE, Mount,
)
from services.kubelet.sync import container_hash


def pod() -> core.Pod:
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "web", "ns", "u1"
    p.spec.termination_grace_period_seconds = 7
    c = p.spec.containers.add(name="main", image="busybox", command=["sh", "-c"],
                              args=["echo $(GREETING) from $(POD)"], working_dir="/w")
    c.env.add(name="GREETING", value="hi")
    c.env.add(name="POD").value_from.field_ref.field_path = "metadata.name"
    c.resources.limits.update({"cpu": "500m", "memory": "64Mi"})
    c.resources.requests.update({"cpu": "250m"})
    c.volume_mounts.add(name="data", mount_path="/data")
    c.volume_mounts.add(name="host", mount_path="/h", read_only=True, sub_path="x")
    c.ports.add(container_port=80, host_port=8080, protocol="TCP")
    return p


def test_containers_config_carries_env_command_resources_mounts_and_labels():
    p = pod()
    cfg = container_config(p, p.spec.containers[0], node="n1", restart_count=3,
                           volume_paths={"data": "/var/x/data", "host": "/srv"})
    assert cfg.command == ["sh", "-c"] and cfg.args == ["echo hi from web"]
    assert cfg.env == {"GREETING": "hi", "POD": "web"}
    assert cfg.working_dir == "/w"
    assert (cfg.cpu_limit_millis, cfg.memory_limit_bytes, cfg.cpu_shares) == (500, 64 << 20, 256)
    assert cfg.mounts == [Mount("/var/x/data", "/data", False), Mount("/srv/x", "/h", True)]
    assert cfg.labels[LABEL_POD_UID] == "u1" and cfg.labels[LABEL_NODE] == "n1"
    assert cfg.labels[LABEL_CONTAINER_NAME] == "main" and cfg.labels[LABEL_TYPE] == "container"
    assert cfg.labels[LABEL_RESTART_COUNT] == "3" and cfg.labels[LABEL_GRACE] == "7"
    assert cfg.labels[LABEL_CONTAINER_HASH] == container_hash(p.spec.containers[0])
    assert LABEL_INIT not in cfg.labels


def test_containers_init_label_and_missing_volume():
    p = pod()
    with pytest.raises(ConfigError, match="unable to find volume"):
        container_config(p, p.spec.containers[0], node="n1", restart_count=0, init=True)
    p.spec.containers[0].ClearField("volume_mounts")
    cfg = container_config(p, p.spec.containers[0], node="n1", restart_count=0, init=True)
    assert cfg.labels[LABEL_INIT] == "true"


def test_containers_cpu_shares_as_kubernetes():
    assert cpu_shares(0) == 2
    assert cpu_shares(1) == 2
    assert cpu_shares(100) == 102
    assert cpu_shares(1000) == 1024
    assert cpu_shares(2500) == 2560


def test_containers_grace_prefers_the_deletion_grace_period():
    p = pod()
    assert grace_seconds(p) == 7
    p.metadata.deletion_grace_period_seconds = 2
    assert grace_seconds(p) == 2


def test_containers_sandbox_config():
    p = pod()
    cfg = sandbox_config(p, "n1")
    assert cfg.pod_uid == "u1" and cfg.hostname == "web" and cfg.labels[LABEL_TYPE] == "sandbox"
    assert cfg.labels[LABEL_NODE] == "n1"
    assert [(m.container_port, m.host_port) for m in cfg.port_mappings] == [(80, 8080)]
