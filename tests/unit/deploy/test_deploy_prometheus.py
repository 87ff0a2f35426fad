"""deploy/prometheus/generate.py: one scrape job per component of the
cluster's topology, and the committed prometheus.yml in step with it."""

from __future__ import annotations

import pytest
import yaml

from services.cluster.config import Options
from services.cluster.topology import plan
from tests.unit.deploy.conftest import ROOT

COMMITTED = ROOT / "deploy" / "prometheus" / "prometheus.yml"


def jobs(config: dict) -> dict[str, list[tuple[str, str]]]:
    return {job["job_name"]: [(t, sc["labels"]["instance"])
                              for sc in job["static_configs"] for t in sc["targets"]]
            for job in config["scrape_configs"]}


def test_config_scrapes_every_component_of_the_default_cluster(generate):
    found = jobs(generate.config(plan(Options(), preload_dir="")))
    assert found == {
        "prometheus": [("localhost:9090", "kyb-prometheus")],
        "etcd": [("172.30.0.10:2381", "kyb-etcd-0")],
        "apiserver": [("172.30.0.20:8081", "kyb-apiserver-0")],
        "scheduler": [("172.30.0.30:10259", "kyb-scheduler")],
        "controller-manager": [("172.30.0.31:10257", "kyb-controller-manager")],
        "kubelet": [("172.30.0.40:10248", "kyb-node-1"), ("172.30.0.41:10248", "kyb-node-2")],
        "kube-proxy": [("172.30.0.40:10249", "kyb-node-1"), ("172.30.0.41:10249", "kyb-node-2")],
    }


def test_config_follows_the_cluster_options(generate):
    opts = Options(name="big", nodes=3, etcd=3, apiservers=2, subnet="10.9.0.0/24")
    found = jobs(generate.config(plan(opts, preload_dir=""), "5s"))
    assert [t for t, _ in found["etcd"]] == ["10.9.0.10:2381", "10.9.0.11:2381", "10.9.0.12:2381"]
    assert [i for _, i in found["apiserver"]] == ["big-apiserver-0", "big-apiserver-1"]
    assert [i for _, i in found["kubelet"]] == ["big-node-1", "big-node-2", "big-node-3"]
    assert found["kube-proxy"][2] == ("10.9.0.42:10249", "big-node-3")


def test_config_scrapes_every_component_over_https_with_prometheus_certificate(generate):
    config = generate.config(plan(Options(), preload_dir=""))
    by_job = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "scheme" not in by_job["prometheus"]  # itself, on localhost
    for name in ("etcd", "apiserver", "scheduler", "controller-manager", "kubelet",
                 "kube-proxy"):
        assert by_job[name]["scheme"] == "https"
        assert by_job[name]["tls_config"] == {
            "ca_file": "/etc/prometheus/kyb/ca.crt",
            "cert_file": "/etc/prometheus/kyb/prometheus.crt",
            "key_file": "/etc/prometheus/kyb/prometheus.key"}


def test_config_credentials_directory_can_be_moved(generate):
    config = generate.config(plan(Options(), preload_dir=""), credentials="/home/u/pki/")
    job = config["scrape_configs"][1]
    assert job["tls_config"]["cert_file"] == "/home/u/pki/prometheus.crt"


def test_main_pki_prints_the_clusters_pki_directory(generate, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "config"))
    assert generate.main(["pki", "--default", "--name", "demo"]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/clusters/demo/pki\n"


def test_config_global_section_names_the_cluster(generate):
    config = generate.config(plan(Options(name="demo"), preload_dir=""), "30s")
    assert config["global"] == {"scrape_interval": "30s", "evaluation_interval": "30s",
                                "external_labels": {"cluster": "demo"}}


def test_prometheus_address_is_below_every_cluster_address(generate):
    topo = plan(Options(nodes=3), preload_dir="")
    address = generate.prometheus_address(topo)
    assert address == "172.30.0.5"
    assert address not in {c.ip for c in topo.containers}
    assert address != topo.gateway


def test_render_is_yaml_with_a_header(generate):
    text = generate.render(plan(Options(), preload_dir=""))
    assert text.startswith("# Prometheus configuration for a local Kybernetes cluster (kyb,")
    assert yaml.safe_load(text) == generate.config(plan(Options(), preload_dir=""))


def test_committed_prometheus_yml_is_the_generated_default(generate):
    assert COMMITTED.read_text() == generate.render(plan(Options(), preload_dir="")), \
        "regenerate: python deploy/prometheus/generate.py config --default " \
        "> deploy/prometheus/prometheus.yml"


@pytest.mark.parametrize("text", ["15s", "1m", "500ms", "2h"])
def test_duration_accepts_prometheus_durations(generate, text):
    assert generate.duration(text) == text


@pytest.mark.parametrize("text", ["", "0s", "15", "5x", "1.5s", "-1s"])
def test_duration_rejects_others(generate, text):
    with pytest.raises(ValueError, match="is not a duration"):
        generate.duration(text)


def test_main_default_prints_the_config(generate, capsys):
    assert generate.main(["config", "--default", "--scrape-interval", "10s"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["global"]["scrape_interval"] == "10s"


def test_main_address_prints_network_and_ip(generate, capsys):
    assert generate.main(["address", "--default", "--name", "demo"]) == 0
    assert capsys.readouterr().out == "demo-net 172.30.0.5\n"


def test_main_unknown_cluster_is_one_line(generate, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "config"))
    assert generate.main(["config", "--name", "nosuchcluster"]) == 1
    err = capsys.readouterr().err
    assert err == "generate.py: no cluster nosuchcluster (bring it up with `make cluster`, " \
                  "or pass --default)\n"
