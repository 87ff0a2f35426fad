"""The plan of a local cluster, from options alone."""

from __future__ import annotations

import ipaddress

import pytest

from services.cluster.config import (
    CLUSTER_LABEL, OPTIONS_LABEL, ROLE_LABEL, SPEC_LABEL, Options, validate,
)
from services.cluster.topology import (
    API_PORT, Route, host, plan, pod_cidr, run_args, spec_hash,
)

PRELOAD = "/var/kyb/preload"
STATE = "/home/u/.kyb/clusters/kyb"


def _plan(**changes):
    return plan(validate(Options(**changes)), preload_dir=PRELOAD, state_dir=STATE)


def _flag(args, name):
    return args[args.index(name) + 1]


def test_topology_default_cluster_has_one_of_each_and_two_nodes():
    topo = _plan()
    assert [c.name for c in topo.containers] == [
        "kyb-etcd-0", "kyb-apiserver-0", "kyb-scheduler", "kyb-controller-manager",
        "kyb-node-1", "kyb-node-2"]
    assert topo.network == "kyb-net"
    assert topo.gateway == "172.30.0.1"
    assert topo.api_addresses == [f"172.30.0.20:{API_PORT}"]


def test_topology_addresses_are_fixed_distinct_and_inside_the_subnet():
    topo = _plan(nodes=5, etcd=3, apiservers=2)
    ips = [c.ip for c in topo.containers]
    assert len(set(ips)) == len(ips)
    net = ipaddress.ip_network(topo.subnet)
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    assert topo.gateway not in ips
    assert _plan(nodes=5, etcd=3, apiservers=2) == topo  # deterministic


def test_topology_node_pod_cidrs_follow_the_node_index():
    topo = _plan(nodes=3)
    assert [(n.name, n.pod_cidr) for n in topo.nodes] == [
        ("kyb-node-1", "10.244.1.0/24"), ("kyb-node-2", "10.244.2.0/24"),
        ("kyb-node-3", "10.244.3.0/24")]
    assert pod_cidr(Options(cluster_cidr="10.248.0.0/16", node_cidr_mask=26), 5) == \
        "10.248.1.64/26"


def test_topology_existing_node_pod_cidr_is_kept():
    topo = plan(Options(), state_dir=STATE, pod_cidrs={"kyb-node-2": "10.244.9.0/24"})
    assert topo.preload_dir == f"{STATE}/preload"
    assert [n.pod_cidr for n in topo.nodes] == ["10.244.1.0/24", "10.244.9.0/24"]
    env = dict(topo.nodes[1].container.env)
    assert env["KYB_POD_CIDR"] == "10.244.9.0/24"


def test_topology_etcd_members_all_know_each_other_over_tls():
    topo = _plan(etcd=3)
    initial = {_flag(c.args, "--initial-cluster") for c in topo.etcd}
    assert initial == {"etcd-0=https://172.30.0.10:2380,etcd-1=https://172.30.0.11:2380,"
                       "etcd-2=https://172.30.0.12:2380"}
    for c in topo.etcd:
        assert _flag(c.args, "--advertise-client-urls") == f"https://{c.ip}:2379"
        assert _flag(c.args, "--peer-trusted-ca-file") == "/etc/kybernetes/ca.crt"
        assert "--peer-client-cert-auth" in c.args
        assert (f"{c.name}-data", "/var/lib/etcd") in c.mounts


def test_topology_etcd_asks_clients_for_certificates_and_listens_only_on_its_network():
    topo = _plan()
    (etcd,) = topo.etcd
    assert _flag(etcd.args, "--listen-client-urls") == \
        "https://172.30.0.10:2379,https://127.0.0.1:2379"
    assert _flag(etcd.args, "--listen-peer-urls") == "https://172.30.0.10:2380"
    assert _flag(etcd.args, "--listen-metrics-urls") == "https://172.30.0.10:2381"
    assert "--client-cert-auth" in etcd.args
    assert _flag(etcd.args, "--trusted-ca-file") == "/etc/kybernetes/ca.crt"
    assert _flag(etcd.args, "--cert-file") == "/etc/kybernetes/etcd-server.crt"
    assert not any("0.0.0.0" in a for a in etcd.args)
    # The entrypoint's firewall: the client port for the API servers only.
    assert dict(etcd.env) == {"KYB_ETCD_CLIENTS": "172.30.0.20", "KYB_ETCD_PEERS": "172.30.0.10"}
    args = run_args(topo, etcd)
    assert "-p" not in args and "--publish" not in args
    assert ("--cap-add", "NET_ADMIN") == tuple(etcd.flags)


def test_topology_no_container_publishes_a_port_on_the_host():
    topo = _plan(etcd=3, apiservers=2)
    for c in topo.containers:
        args = run_args(topo, c)
        assert "-p" not in args and "--publish" not in args and "-P" not in args


def test_topology_apiservers_get_every_etcd_member_over_mutual_tls():
    topo = _plan(etcd=3, apiservers=2)
    for c in topo.apiservers:
        assert _flag(c.args, "--etcd-servers") == \
            "172.30.0.10:2379,172.30.0.11:2379,172.30.0.12:2379"
        assert _flag(c.args, "--etcd-cafile") == "/etc/kybernetes/ca.crt"
        assert _flag(c.args, "--etcd-certfile") == "/etc/kybernetes/apiserver-etcd-client.crt"
        assert _flag(c.args, "--etcd-keyfile") == "/etc/kybernetes/apiserver-etcd-client.key"
        assert _flag(c.args, "--service-cluster-ip-range") == "10.96.0.0/12"


def test_topology_apiserver_serves_mutual_tls_tokens_and_an_audit_log():
    topo = _plan()
    (c,) = topo.apiservers
    assert "--insecure-plaintext" not in c.args
    assert _flag(c.args, "--tls-cert-file") == "/etc/kybernetes/apiserver.crt"
    assert _flag(c.args, "--tls-private-key-file") == "/etc/kybernetes/apiserver.key"
    assert _flag(c.args, "--client-ca-file") == "/etc/kybernetes/ca.crt"
    assert _flag(c.args, "--token-auth-file") == "/etc/kybernetes/tokens.csv"
    assert _flag(c.args, "--token-port") == "6444"
    assert _flag(c.args, "--authorization-mode") == "Node,RBAC"
    assert _flag(c.args, "--kubelet-client-certificate") == \
        "/etc/kybernetes/apiserver-kubelet-client.crt"
    assert _flag(c.args, "--kubelet-certificate-authority") == "/etc/kybernetes/ca.crt"
    assert _flag(c.args, "--audit-log-path") == "/var/log/kyb-apiserver/audit.log"
    assert (f"{STATE}/audit/kyb-apiserver-0", "/var/log/kyb-apiserver") in c.mounts
    assert topo.audit_log("kyb-apiserver-0") == f"{STATE}/audit/kyb-apiserver-0/audit.log"
    assert topo.token_addresses == ["172.30.0.20:6444"]


def test_topology_every_container_mounts_only_its_own_bundle_read_only():
    topo = _plan(nodes=2)
    for c in topo.containers:
        bundles = [(s, t) for s, t in c.mounts if t.startswith("/etc/kybernetes")]
        assert bundles == [(f"{STATE}/bundles/{c.name}", "/etc/kybernetes:ro")], c.name
        assert not any("/pki" in s for s, _ in c.mounts)
    assert topo.bundle_dir("kyb-node-1") == f"{STATE}/bundles/kyb-node-1"
    assert topo.pki_dir == f"{STATE}/pki"


def test_topology_components_connect_with_their_own_client_config():
    topo = _plan(apiservers=2)
    for c in (topo.scheduler, topo.controller_manager):
        assert _flag(c.args, "--kubeconfig") == "/etc/kybernetes/kubeconfig.conf"
        assert "--server" not in c.args
        assert _flag(c.args, "--tls-cert-file") == "/etc/kybernetes/serving.crt"
        assert _flag(c.args, "--client-ca-file") == "/etc/kybernetes/ca.crt"
    for n in topo.nodes:
        env = dict(n.container.env)
        assert "KYB_SERVER" not in env
        assert "--kubeconfig /etc/kybernetes/kubelet.conf --tls-cert-file " \
               "/etc/kybernetes/kubelet.crt --tls-private-key-file /etc/kybernetes/kubelet.key " \
               "--client-ca-file /etc/kybernetes/ca.crt" in env["KYB_KUBELET_ARGS"]
        assert "--kubeconfig /etc/kybernetes/kube-proxy.conf" in env["KYB_PROXY_ARGS"]
        assert "--tls-cert-file /etc/kybernetes/kube-proxy-serving.crt" in env["KYB_PROXY_ARGS"]
        assert env["KYB_ROUTES_ARGS"] == "--kubeconfig /etc/kybernetes/kubelet.conf"


def test_topology_controller_manager_gets_shortened_node_lifecycle():
    args = _plan(cluster_cidr="10.248.0.0/16").controller_manager.args
    assert _flag(args, "--cluster-cidr") == "10.248.0.0/16"
    assert _flag(args, "--node-monitor-grace-period") == "20s"
    assert _flag(args, "--node-monitor-period") == "2s"
    assert _flag(args, "--node-startup-grace-period") == "30s"


def test_topology_node_container_runs_its_own_dockerd_without_privileged():
    topo = _plan()
    args = run_args(topo, topo.nodes[0].container)
    assert "--privileged" not in args
    pairs = {tuple(args[i:i + 2]) for i in range(len(args) - 1)}
    for pair in (("--cap-add", "ALL"), ("--cap-drop", "SYS_RESOURCE"),
                 ("--security-opt", "seccomp=unconfined"),
                 ("--security-opt", "apparmor=unconfined"),
                 ("--device-cgroup-rule", "a *:* rwm"), ("--tmpfs", "/run"),
                 ("-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"),
                 ("-v", "kyb-node-1-docker:/var/lib/docker"),
                 ("-v", f"{PRELOAD}:/preload:ro")):
        assert pair in pairs
    assert args[args.index("--ip") + 1] == "172.30.0.40"
    env = dict(topo.nodes[0].container.env)
    assert env["KYB_NODE_NAME"] == "kyb-node-1"
    assert env["KYB_CLUSTER_CIDR"] == "10.244.0.0/16"
    assert "--node-lease-renew-interval 4" in env["KYB_KUBELET_ARGS"]


def test_topology_run_args_label_everything_with_the_cluster():
    topo = _plan(name="demo")
    for c in topo.containers:
        args = run_args(topo, c, spec="abc")
        labels = [args[i + 1] for i, a in enumerate(args) if a == "--label"]
        assert f"{CLUSTER_LABEL}=demo" in labels
        assert f"{ROLE_LABEL}={c.role}" in labels
        assert f"{SPEC_LABEL}=abc" in labels
        assert args[args.index("--restart") + 1] == "unless-stopped"
    assert Options.from_json(topo.network_labels()[OPTIONS_LABEL]) == topo.options


def test_topology_volumes_are_named_for_the_cluster():
    assert _plan(etcd=3).volumes == ("kyb-etcd-0-data", "kyb-etcd-1-data", "kyb-etcd-2-data",
                                     "kyb-node-1-docker", "kyb-node-2-docker")
    assert plan(Options(), preload_dir="").volumes == _plan().volumes


def test_topology_host_routes_reach_pods_and_services_through_nodes():
    topo = _plan(service_cidr="10.112.0.0/16")
    assert topo.host_routes == (Route("10.244.1.0/24", "172.30.0.40"),
                                Route("10.244.2.0/24", "172.30.0.41"),
                                Route("10.112.0.0/16", "172.30.0.40"))


def test_topology_spec_hash_changes_with_image_flags_or_credentials_only():
    topo = _plan()
    c = topo.apiservers[0]
    assert spec_hash(topo, c, "sha256:a") == spec_hash(_plan(), _plan().apiservers[0], "sha256:a")
    assert spec_hash(topo, c, "sha256:a") != spec_hash(topo, c, "sha256:b")
    assert spec_hash(topo, c, "sha256:a", "d1") == spec_hash(topo, c, "sha256:a", "d1")
    assert spec_hash(topo, c, "sha256:a", "d1") != spec_hash(topo, c, "sha256:a", "d2")
    other = _plan(log_level="debug")
    assert spec_hash(topo, c, "sha256:a") != spec_hash(other, other.apiservers[0], "sha256:a")


def test_topology_node_lookup_accepts_short_names():
    topo = _plan()
    assert topo.node("kyb-node-2").ip == "172.30.0.41"
    assert topo.node("node-1").ip == "172.30.0.40"
    with pytest.raises(ValueError, match="no node 'node-9'"):
        topo.node("node-9")


def test_topology_host_rejects_the_broadcast_address():
    assert host("172.30.0.0/24", 1) == "172.30.0.1"
    with pytest.raises(ValueError):
        host("172.30.0.0/24", 255)


@pytest.mark.parametrize("changes, message", [
    ({"name": "Kyb"}, "--name"),
    ({"name": "a" * 21}, "--name"),
    ({"nodes": 0}, "--nodes"),
    ({"etcd": 2}, "--etcd"),
    ({"apiservers": 6}, "--apiservers"),
    ({"subnet": "172.30.0.1/24"}, "--subnet"),
    ({"subnet": "172.30.0.0/27", "nodes": 5}, "too small"),
    ({"cluster_cidr": "10.244.0.0/23"}, "too few"),
    ({"service_cidr": "10.244.128.0/20"}, "overlaps"),
    ({"subnet": "10.244.7.0/24"}, "overlaps"),
    ({"node_cidr_mask": 12}, "--node-cidr-mask"),
    ({"node_lease_renew_interval": 30.0}, "--node-lease-renew-interval"),
])
def test_config_validate_names_the_bad_flag(changes, message):
    with pytest.raises(ValueError, match=message):
        validate(Options(**changes))


def test_config_options_round_trip_and_ignore_unknown_keys():
    opts = Options(name="x", nodes=3, preload=("a:1",))
    assert Options.from_json(opts.to_json()) == opts
    assert Options.from_json('{"nodes": 4, "from_the_future": 1}') == Options(nodes=4)
    with pytest.raises(ValueError):
        Options.from_json("[1]")
