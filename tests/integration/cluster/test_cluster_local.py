"""kyb-cluster end to end: real images, a control plane and two worker
nodes in containers, each node with its own dockerd, kubelet and
kube-proxy. The last test takes the cluster down and checks that nothing
is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.integration.cluster.conftest import CLUSTER_CIDR, NAME, SERVICE_CIDR, SUBNET

pytestmark = [pytest.mark.images, pytest.mark.timeout(600)]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PODS = """\
apiVersion: v1
kind: Pod
metadata: {{name: web-{i}, labels: {{app: web}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: httpd
    image: kyb/busybox:latest
    command: ["sh", "-c", "echo web-{i} > /www/index.html; httpd -f -p 8080 -h /www"]
"""


def poll(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def http_get(url: str) -> str:
    with _DIRECT.open(url, timeout=3) as response:
        return response.read().decode().strip()


def nodes_ready(cluster) -> dict[str, str]:
    out = cluster.kyb("get", "nodes", "-o", "json")
    items = json.loads(out)["items"]
    return {n["metadata"]["name"]: next((c["status"] for c in n["status"].get("conditions", [])
                                         if c["type"] == "Ready"), "")
            for n in items}


def test_cluster_up_reports_each_step_and_nodes_ready(cluster):
    out = cluster.up_output
    for step in ("network", "etcd", "apiserver", "API answering", "scheduler",
                 "controller-manager", f"node {NAME}-node-1 Ready", f"node {NAME}-node-2 Ready",
                 "ready; client config"):
        assert step in out
    assert nodes_ready(cluster) == {cluster.node(1): "True", cluster.node(2): "True"}


def test_cluster_api_answers_through_kyb_with_the_written_config(cluster):
    assert "default" in cluster.kyb("get", "namespaces")
    with open(cluster.env["KYB_CONFIG"]) as f:
        assert "172.30.77.20:6443" in f.read()


def test_cluster_node_runs_containers_in_its_own_dockerd(cluster):
    node = cluster.node(1)
    out = cluster.docker("exec", node, "docker", "run", "--rm", "kyb/busybox:latest",
                         "echo", "hello from inside")
    assert out.strip() == "hello from inside"
    info = cluster.docker("exec", node, "docker", "info", "-f", "{{.Driver}}")
    assert info.strip() == "overlay2"
    # The inner dockerd's bridge is the node's pod CIDR.
    addr = cluster.docker("exec", node, "ip", "-4", "-o", "addr", "show", "docker0")
    assert "10.247.1.1/24" in addr


def test_cluster_pod_runs_on_each_node_and_pods_reach_each_other(cluster):
    manifest = "---\n".join(PODS.format(i=i, node=cluster.node(i)) for i in (1, 2))
    proc = subprocess.run([sys.executable, "-m", "services.ctl.main", "apply", "-f", "-"],
                          input=manifest, env=cluster.env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr

    def running():
        pods = json.loads(cluster.kyb("get", "pods", "-o", "json"))["items"]
        ips = {p["metadata"]["name"]: (p["spec"].get("nodeName"), p["status"].get("podIP"))
               for p in pods if p["status"].get("phase") == "Running"}
        return ips if len(ips) == 2 else None
    ips = poll(running, 120, "both pods Running")
    assert ips["web-1"][0] == cluster.node(1) and ips["web-2"][0] == cluster.node(2)
    assert ips["web-1"][1].startswith("10.247.1.") and ips["web-2"][1].startswith("10.247.2.")
    # The host reaches every pod by its IP (routes via the nodes)...
    for name, (_, ip) in ips.items():
        assert poll(lambda: _try_get(f"http://{ip}:8080/"), 30, f"{name} answering") == name
    # ...and a pod on node 1 reaches the pod on node 2.
    out = cluster.kyb("exec", "web-1", "--", "wget", "-qO-", f"http://{ips['web-2'][1]}:8080/")
    assert out.strip() == "web-2"
    # The receiver saw the sender's pod IP: pod-to-pod traffic is not masqueraded.
    seen = cluster.docker("exec", cluster.node(2), "conntrack", "-L", "-p", "tcp",
                          "--dport", "8080", check=False)
    assert f"src={ips['web-1'][1]} dst={ips['web-2'][1]}" in seen


def _try_get(url: str) -> str:
    try:
        return http_get(url)
    except OSError:
        return ""


def test_cluster_second_up_changes_nothing(cluster):
    before = cluster.docker("ps", "--filter", f"label=org.kybernetes.cluster={NAME}",
                            "--format", "{{.Names}} {{.ID}} {{.RunningFor}}")
    out = cluster.run("up", "--wait", "60")
    for line in out.splitlines():
        if line.startswith("[kyb-cluster") and (" etcd " in line or " node " in line and
                                               "pod CIDR" in line):
            assert line.endswith(": running"), line
    assert "host routes: in place" in out
    assert "created" not in out and "recreated" not in out and "started" not in out
    after = cluster.docker("ps", "--filter", f"label=org.kybernetes.cluster={NAME}",
                           "--format", "{{.Names}} {{.ID}} {{.RunningFor}}")
    assert sorted(line.split()[:2] for line in before.splitlines()) == \
        sorted(line.split()[:2] for line in after.splitlines())


def test_cluster_load_puts_a_host_image_in_every_node(cluster):
    tag = "kyb/busybox:kybtest-load"
    cluster.docker("tag", "kyb/busybox:latest", tag)
    try:
        cluster.run("load", tag)
        for i in (1, 2):
            assert tag in cluster.docker("exec", cluster.node(i), "docker", "images",
                                         "--format", "{{.Repository}}:{{.Tag}}")
    finally:
        cluster.docker("rmi", tag, check=False)


def test_cluster_partition_makes_a_node_unready_and_heal_brings_it_back(cluster):
    node = cluster.node(2)
    cluster.run("partition", node)
    try:
        poll(lambda: nodes_ready(cluster).get(node) not in ("True", None), 90, f"{node} not Ready")
        # Cut off from the control plane, its pod keeps serving.
        ip = json.loads(cluster.kyb("get", "pod", "web-2", "-o", "json"))["status"]["podIP"]
        assert http_get(f"http://{ip}:8080/") == "web-2"
    finally:
        cluster.run("heal", node)
    poll(lambda: nodes_ready(cluster).get(node) == "True", 90, f"{node} Ready again")


def test_cluster_stop_and_start_node_brings_it_back_with_its_routes(cluster):
    node = cluster.node(2)
    cluster.run("stop-node", node)
    assert cluster.docker("inspect", "-f", "{{.State.Running}}", node).strip() == "false"
    out = cluster.run("start-node", node, "--wait", "120")
    assert f"node {node}: Ready" in out
    # The route agent puts the route to the other node's pods back...
    poll(lambda: "10.247.1.0/24 via" in cluster.docker("exec", node, "ip", "route"), 60,
         "the route to node 1's pod CIDR")

    # ...and the kubelet starts the node's pod again.
    def web2_serves():
        pod = json.loads(cluster.kyb("get", "pod", "web-2", "-o", "json"))
        ip = pod["status"].get("podIP")
        return ip and pod["status"].get("phase") == "Running" and \
            _try_get(f"http://{ip}:8080/") == "web-2"
    poll(web2_serves, 90, "web-2 serving again")


def test_cluster_down_leaves_nothing_behind(cluster):
    out = cluster.run("down")
    assert f"cluster {NAME} removed" in out
    label = f"label=org.kybernetes.cluster={NAME}"
    assert cluster.docker("ps", "-a", "-q", "--filter", label) == ""
    assert cluster.docker("network", "ls", "-q", "--filter", label) == ""
    assert cluster.docker("volume", "ls", "-q", "--filter", label) == ""
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True,
                            check=True).stdout
    prefix = SUBNET.rsplit(".", 1)[0] + "."
    assert prefix not in routes
    for cidr in (CLUSTER_CIDR, SERVICE_CIDR):
        assert cidr.rsplit(".", 2)[0] + "." not in routes
    leftovers = [p for p in os.listdir("/sys/fs/cgroup/memory") if p.startswith(f"{NAME}-")]
    assert leftovers == []
    assert not os.path.exists(cluster.env["KYB_CONFIG"])
    assert "no cluster" in cluster.run("down")
