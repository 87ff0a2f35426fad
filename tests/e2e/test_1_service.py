"""A Deployment and its Service across two nodes: placement, ClusterIP load
balancing from inside a pod, the NodePort from the host, and pod-to-pod
traffic between nodes with the sender's pod IP intact."""

from __future__ import annotations

import collections
import ipaddress

import pytest

from tests.e2e.cluster import Cluster, pod_ip, pod_node, try_get, wait_until
from tests.e2e.workload import NAME, REPLICAS, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(600, func_only=True)

REQUESTS = 24


def in_pod(c: Cluster, pod: str, script: str, timeout: float = 90) -> str:
    """Run ``sh -c SCRIPT`` in ``pod`` through ``kyb exec``."""
    return c.kyb("exec", pod, "--", "sh", "-c", script, timeout=timeout)


def wget(url: str) -> str:
    """A shell command fetching ``url`` from inside a busybox pod. Busybox's
    own ``wget -T`` crashes in Debian's build, so ``timeout`` bounds it."""
    return f"timeout 5 wget -qO- {url}"


def test_web_pods_are_running_and_ready_on_both_nodes(e2e_cluster, healthy_web: Web):
    assert len(healthy_web.pods) == REPLICAS
    assert {pod_node(p) for p in healthy_web.pods} == set(e2e_cluster.nodes)
    for p in healthy_web.pods:
        node = e2e_cluster.topology.node(pod_node(p))
        assert ipaddress.ip_address(pod_ip(p)) in ipaddress.ip_network(node.pod_cidr), \
            (pod_ip(p), node.pod_cidr)
    deployment = e2e_cluster.get_json("deployment", NAME)
    assert deployment["status"].get("readyReplicas") == REPLICAS


def test_cluster_ip_from_a_pod_reaches_pods_on_both_nodes(e2e_cluster, healthy_web: Web):
    # The client sits on the node with the most web pods, so that this test
    # does not depend on a pod reaching itself (the hairpin test's subject).
    node = max(e2e_cluster.nodes, key=lambda n: len(healthy_web.on(n)))
    client = healthy_web.on(node)[0]["metadata"]["name"]
    loop = f"for i in $(seq {REQUESTS}); do {wget(healthy_web.url)}; done"
    answers = in_pod(e2e_cluster, client, loop).split()
    assert len(answers) == REQUESTS, answers
    by_name = healthy_web.by_name
    assert set(answers) <= set(by_name), answers
    nodes = collections.Counter(pod_node(by_name[a]) for a in answers)
    assert set(nodes) == set(e2e_cluster.nodes), nodes


def test_node_port_answers_on_every_node_from_the_host(e2e_cluster, healthy_web: Web):
    names = set(healthy_web.by_name)
    for node in e2e_cluster.nodes:
        url = f"http://{e2e_cluster.node_ip(node)}:{healthy_web.node_port}/"
        assert wait_until(lambda: try_get(url) in names, 30, f"{url} answering")


def test_pod_to_pod_across_nodes_keeps_the_sender_pod_ip(e2e_cluster, healthy_web: Web):
    a, b = (healthy_web.on(n)[0] for n in e2e_cluster.nodes)
    for sender, receiver in ((a, b), (b, a)):
        url = f"http://{pod_ip(receiver)}:8080/cgi-bin/peer"
        seen = in_pod(e2e_cluster, sender["metadata"]["name"], wget(url)).strip()
        # busybox httpd reports IPv4 peers as IPv4-mapped IPv6: [::ffff:10.x.y.z]
        assert seen.strip("[]").removeprefix("::ffff:") == pod_ip(sender), \
            f"{receiver['metadata']['name']} saw {seen}, not {pod_ip(sender)}"
        # ...and by the page, the receiver is who answered.
        page = in_pod(e2e_cluster, sender["metadata"]["name"],
                      wget(f"http://{pod_ip(receiver)}:8080/")).strip()
        assert page == receiver["metadata"]["name"]


def test_pod_reaches_itself_through_its_service_cluster_ip(e2e_cluster, healthy_web: Web):
    """Hairpin: a connection DNATed back to the pod that made it must work
    (Kubernetes' "should allow pods to hairpin back to themselves through
    services"). Each attempt lands on the pod itself with probability 1/N,
    so a pod alone behind a one-pod Service tests it on every request."""
    c = e2e_cluster
    pod = healthy_web.pods[0]
    name = pod["metadata"]["name"]
    c.apply(HAIRPIN_SERVICE.format(ip=pod_ip(pod)))
    try:
        ip = c.get_json("service", "hairpin")["spec"]["clusterIP"]
        url = f"http://{ip}/"
        wait_until(lambda: try_get(url) == name, 30, f"the hairpin Service {url} answering")
        out = in_pod(c, name, f"for i in 1 2 3; do {wget(url)} || echo failed $?; done")
        assert out.split() == [name] * 3, \
            f"{name} ({pod_ip(pod)} on {pod_node(pod)}) could not reach itself through " \
            f"{url}: {out!r}"
    finally:
        c.kyb("delete", "service,endpoints", "hairpin", "--ignore-not-found")


# A Service without a selector, its Endpoints written by hand: the one pod.
HAIRPIN_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: hairpin}}
spec:
  ports:
  - {{port: 80, targetPort: 8080}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: hairpin}}
subsets:
- addresses:
  - {{ip: {ip}}}
  ports:
  - {{port: 8080, protocol: TCP}}
"""
