"""deploy/vagrant/plan.py: the VMs run the container cluster's own
containers, moved to host networking on the VMs' addresses."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from services.cluster.config import Options
from services.cluster.topology import plan
from tests.unit.deploy.conftest import ROOT

SETTINGS = ROOT / "deploy" / "vagrant" / "settings.yaml"
CP = "192.168.56.10"


@pytest.fixture
def settings(vagrant_plan):
    return vagrant_plan.load_settings(yaml.safe_load(SETTINGS.read_text()))


def flag(args: tuple[str, ...] | list[str], name: str) -> str:
    return args[list(args).index(name) + 1]


def test_load_settings_reads_the_committed_file(vagrant_plan, settings):
    assert settings == vagrant_plan.Settings(name="kyb", network="192.168.56.0/21", workers=2,
                                             control_plane_ip=CP,
                                             first_worker_ip="192.168.56.11")
    assert settings.worker_ip(3) == "192.168.56.13"


def test_load_settings_rejects_cidrs_overlapping_the_vm_network(vagrant_plan):
    with pytest.raises(ValueError, match="cluster.cluster_cidr 192.168.0.0/16 overlaps"):
        vagrant_plan.load_settings({"cluster": {"cluster_cidr": "192.168.0.0/16"}})


def test_load_settings_checks_like_kyb_cluster(vagrant_plan):
    with pytest.raises(ValueError, match="--node-cidr-mask"):
        vagrant_plan.load_settings({"cluster": {"node_cidr_mask": 8}})
    with pytest.raises(ValueError, match="settings.yaml"):
        vagrant_plan.load_settings({"workers": {"count": "many"}})


def test_control_plane_is_the_local_clusters_with_the_vm_address(vagrant_plan, settings):
    containers = vagrant_plan.control_plane(settings, CP)
    local = plan(Options(), preload_dir="").control_plane
    assert [(c.name, c.role, c.image) for c in containers] == \
        [(c.name, c.role, c.image) for c in local]
    text = " ".join(a for c in containers for a in c.args)
    assert "172.30.0." not in text
    etcd, apiserver, scheduler, cm = containers
    assert flag(etcd.args, "--advertise-client-urls") == f"https://{CP}:2379"
    assert flag(etcd.args, "--initial-cluster") == f"etcd-0=https://{CP}:2380"
    assert flag(etcd.args, "--listen-client-urls") == f"https://{CP}:2379,https://127.0.0.1:2379"
    assert dict(etcd.env) == {"KYB_ETCD_CLIENTS": CP, "KYB_ETCD_PEERS": CP}
    assert flag(apiserver.args, "--etcd-servers") == f"{CP}:2379"
    assert flag(scheduler.args, "--kubeconfig") == "/etc/kybernetes/kubeconfig.conf"
    assert flag(cm.args, "--kubeconfig") == "/etc/kybernetes/kubeconfig.conf"
    # Everything else as kyb-cluster runs it.
    assert flag(cm.args, "--node-monitor-grace-period") == \
        flag(local[3].args, "--node-monitor-grace-period")
    assert flag(apiserver.args, "--tls-cert-file") == flag(local[1].args, "--tls-cert-file")
    # Each container mounts its own bundle from the VM's state directory.
    for c in containers:
        assert (f"/var/lib/kyb/bundles/{c.name}", "/etc/kybernetes:ro") in c.mounts
    assert ("/var/lib/kyb/audit/kyb-apiserver-0", "/var/log/kyb-apiserver") in apiserver.mounts


def test_replace_ips_replaces_whole_addresses_only(vagrant_plan):
    moved = {"172.30.0.2": "192.168.56.10"}
    assert vagrant_plan._replace_ips("http://172.30.0.2:2379,172.30.0.20:1,172.30.0.21",
                                     moved) == "http://192.168.56.10:2379,172.30.0.20:1,172.30.0.21"


def test_worker_is_the_node_container_on_the_hosts_network_and_docker(vagrant_plan, settings):
    c = vagrant_plan.worker(settings, 2, "192.168.56.12", [f"{CP}:6443"])
    env = dict(c.env)
    assert c.name == "kyb-node-2" and c.image == "kyb/node:latest"
    assert env["KYB_NODE_NAME"] == "kyb-node-2"
    assert env["KYB_POD_CIDR"] == "10.244.2.0/24"
    assert env["KYB_NODE_IP"] == "192.168.56.12"
    assert env["KYB_SERVER"] == f"{CP}:6443"
    assert env["KYB_DOCKERD"] == "host"
    local = dict(plan(Options(nodes=2), preload_dir="").nodes[1].container.env)
    assert env["KYB_KUBELET_ARGS"] == local["KYB_KUBELET_ARGS"]
    assert env["KYB_PROXY_ARGS"] == local["KYB_PROXY_ARGS"]
    assert env["KYB_ROUTES_ARGS"] == local["KYB_ROUTES_ARGS"]
    assert ("/var/run/docker.sock", "/run/docker.sock") in c.mounts
    assert ("/var/lib/kyb-kubelet", "/var/lib/kyb-kubelet") in c.mounts
    assert ("/var/lib/kyb/bundles/kyb-node-2", "/etc/kybernetes:ro") in c.mounts
    assert "--privileged" not in c.flags


def test_daemon_json_puts_the_bridge_on_the_pod_cidr(vagrant_plan, settings):
    assert vagrant_plan.daemon_json(settings, 1) == \
        {"bip": "10.244.1.1/24", "ip-masq": False, "iptables": True}


def test_daemon_json_keeps_other_settings(vagrant_plan, settings):
    current = {"bip": "172.17.0.1/16", "log-driver": "journald"}
    assert vagrant_plan.daemon_json(settings, 3, current) == \
        {"bip": "10.244.3.1/24", "ip-masq": False, "iptables": True, "log-driver": "journald"}


def test_run_args_use_host_networking_and_cluster_labels(vagrant_plan, settings):
    c = vagrant_plan.control_plane(settings, CP)[1]
    args = vagrant_plan.run_args("kyb", c)
    assert args[:6] == ["-d", "--name", "kyb-apiserver-0", "--network", "host", "--restart"]
    assert "--ip" not in args
    assert "org.kybernetes.cluster=kyb" in args and "org.kybernetes.role=apiserver" in args
    assert args[args.index("kyb/python:latest") + 1] == "kyb-apiserver"


def test_container_lines_round_trip_through_the_shell(vagrant_plan, settings):
    c = vagrant_plan.worker(settings, 1, "192.168.56.11", [f"{CP}:6443"])
    (line,) = vagrant_plan.container_lines("kyb", [c])
    name, spec, image, quoted = line.split("\t")
    args = shlex.split(quoted)
    assert (name, image) == ("kyb-node-1", "kyb/node:latest")
    assert args[:2] == ["--label", f"org.kybernetes.spec={spec}"]
    assert args[2:] == vagrant_plan.run_args("kyb", c)
    assert any(a.startswith("KYB_KUBELET_ARGS=--kubeconfig /etc/kybernetes/kubelet.conf ")
               and a.endswith("--node-lease-renew-interval 4 --metrics-port 10248 "
                              "--log-level info") for a in args)


def test_spec_changes_with_any_argument(vagrant_plan):
    assert vagrant_plan.spec(["a", "b"]) == vagrant_plan.spec(["a", "b"])
    assert vagrant_plan.spec(["a", "b"]) != vagrant_plan.spec(["a", "c"])
    assert vagrant_plan.spec(["a b"]) != vagrant_plan.spec(["a", "b"])


def test_main_containers_worker_needs_index_and_api(vagrant_plan, capsys):
    assert vagrant_plan.main(["containers", "worker", "--ip", "192.168.56.11"]) == 1
    assert capsys.readouterr().err == \
        "plan.py: a worker needs --index (from 1) and --api\n"


def test_main_daemon_json_merges_the_current_file(vagrant_plan, capsys, tmp_path):
    current = tmp_path / "daemon.json"
    current.write_text('{"debug": true}')
    assert vagrant_plan.main(["daemon-json", "--index", "2", "--current", str(current)]) == 0
    assert json.loads(capsys.readouterr().out) == \
        {"bip": "10.244.2.1/24", "debug": True, "ip-masq": False, "iptables": True}


def test_main_bad_settings_is_one_line(vagrant_plan, capsys, tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("cluster: {name: Not_A_Name}\n")
    assert vagrant_plan.main(["--settings", str(bad), "daemon-json", "--index", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("plan.py: --name 'Not_A_Name'") and err.count("\n") == 1


def test_pki_gives_each_vm_only_its_own_bundles(vagrant_plan, settings, tmp_path):
    from services.machinery import config, pki
    shares = vagrant_plan.write_pki(settings, tmp_path, CP, ["192.168.56.11", "192.168.56.12"])
    assert shares == {"kyb-control-plane": ["kyb-etcd-0", "kyb-apiserver-0", "kyb-scheduler",
                                            "kyb-controller-manager", "admin"],
                      "kyb-node-1": ["kyb-node-1"], "kyb-node-2": ["kyb-node-2"]}
    vms = tmp_path / "vms"
    assert sorted(p.name for p in (vms / "kyb-node-1").iterdir()) == ["kyb-node-1"]
    assert not list(vms.rglob("ca.key"))
    # Certificates for the VMs' addresses; configs pointing at the control plane.
    apiserver = pki.load_cert(tmp_path / "pki" / "apiserver.crt")
    assert CP in pki.sans(apiserver)[1]
    kubelet = pki.load_cert(vms / "kyb-node-2" / "kyb-node-2" / "kubelet.crt")
    assert pki.sans(kubelet)[1] == {"192.168.56.12"}
    node = config.load(kubeconfig=vms / "kyb-node-2" / "kyb-node-2" / "kubelet.conf")
    assert node.servers == [f"{CP}:6443"]
    admin = config.load(kubeconfig=vms / "kyb-control-plane" / "admin" / "admin.conf")
    assert pki.common_name(pki.x509.load_pem_x509_certificate(admin.cert)) == "kubernetes-admin"
    host = config.load(kubeconfig=tmp_path / "admin.conf")
    assert host.servers == [f"{CP}:6443"] and host.cert == admin.cert


def test_pki_again_keeps_the_ca_and_drops_removed_workers(vagrant_plan, settings, tmp_path):
    vagrant_plan.write_pki(settings, tmp_path, CP, ["192.168.56.11", "192.168.56.12"])
    ca = (tmp_path / "pki" / "ca.crt").read_bytes()
    shares = vagrant_plan.write_pki(settings, tmp_path, CP, ["192.168.56.11"])
    assert set(shares) == {"kyb-control-plane", "kyb-node-1"}
    assert not (tmp_path / "vms" / "kyb-node-2").exists()
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == ca


def test_main_pki_uses_the_settings_addresses(vagrant_plan, capsys, tmp_path):
    assert vagrant_plan.main(["pki", "--out", str(tmp_path), "--workers", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "kyb-node-1: kyb-node-1"
    from services.machinery import pki
    kubelet = pki.load_cert(tmp_path / "pki" / "kubelet-kyb-node-1.crt")
    assert pki.sans(kubelet)[1] == {"192.168.56.11"}
