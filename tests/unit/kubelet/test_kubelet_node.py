from __future__ import annotations

import datetime

import pytest

from services.kubelet.node import (
    NodeConfig, Pressure, allocatable, build_status, host_capacity, node_labels, parse_meminfo,
    parse_reserved, without_heartbeats,
)

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def test_node_parse_meminfo():
    info = parse_meminfo("MemTotal:       16314880 kB\nMemAvailable:    1000 kB\n"
                         "HugePages_Total: 0\n")
    assert info["MemTotal"] == 16314880 * 1024 and info["HugePages_Total"] == 0


def test_node_capacity_and_allocatable_minus_reservations():
    cap = host_capacity(50, meminfo={"MemTotal": 8 * 2**30}, cpus=4)
    assert cap == {"cpu": "4", "memory": "8388608Ki", "pods": "50"}
    alloc = allocatable(cap, parse_reserved("cpu=100m,memory=256Mi"),
                        parse_reserved("cpu=0.5"))
    assert alloc == {"cpu": "3400m", "memory": "7936Mi", "pods": "50"}
    assert allocatable({"cpu": "1"}, parse_reserved("cpu=2"))["cpu"] == "0"


def test_node_parse_reserved_rejects_garbage():
    assert parse_reserved("") == {}
    with pytest.raises(ValueError):
        parse_reserved("cpu")
    with pytest.raises(ValueError):
        parse_reserved("cpu=lots")


def test_node_status_fields_and_transition_times():
    config = NodeConfig(name="n1", ip="10.0.0.7", port=10555)
    cap = {"cpu": "2", "memory": "1Gi", "pods": "110"}
    s = build_status(config, runtime_version="docker://20.10", runtime_error="",
                     pressure=Pressure(), now=NOW, capacity=cap)
    conds = {c.type: c for c in s.conditions}
    assert conds["Ready"].status == "True" and conds["Ready"].reason == "KubeletReady"
    assert conds["MemoryPressure"].status == "False"
    assert conds["DiskPressure"].status == "False" and conds["PIDPressure"].status == "False"
    assert [(a.type, a.address) for a in s.addresses] == [("InternalIP", "10.0.0.7"),
                                                         ("Hostname", "n1")]
    assert s.daemon_endpoints.kubelet_endpoint.port == 10555
    assert s.node_info.container_runtime_version == "docker://20.10"
    assert s.node_info.operating_system == "linux" and s.node_info.kubelet_version

    later = NOW + datetime.timedelta(seconds=30)
    s2 = build_status(config, runtime_version="docker://20.10", runtime_error="",
                      pressure=Pressure(), now=later, old=s, capacity=cap)
    assert without_heartbeats(s2) == without_heartbeats(s)   # only heartbeats moved
    assert s2 != s
    down = build_status(config, runtime_version="", runtime_error="connection refused",
                        pressure=Pressure(memory=True), now=later, old=s, capacity=cap)
    dconds = {c.type: c for c in down.conditions}
    assert dconds["Ready"].status == "False" and "runtime is down" in dconds["Ready"].message
    assert dconds["Ready"].last_transition_time.ToDatetime(datetime.timezone.utc) == later
    assert dconds["MemoryPressure"].status == "True"


def test_node_labels():
    labels = node_labels(NodeConfig(name="n1", ip="1.2.3.4", labels={"zone": "a"}))
    assert labels["kubernetes.io/hostname"] == "n1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] in ("amd64", "arm64")
    assert labels["zone"] == "a"
