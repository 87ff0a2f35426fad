"""One real cluster for the whole end-to-end suite.

``kyb-cluster up`` brings up etcd, the API server, the scheduler, the
controller manager and two worker-node containers (each with its own
dockerd, kubelet and kube-proxy) once per session, under its own name,
Docker subnet, pod and service CIDRs and client config (see
tests/e2e/cluster.py), so it never meets the cluster `make cluster` runs.
The images are built first (deploy/images/build.sh rebuilds only what
changed). ``kyb-cluster down`` removes the cluster at the end whatever
happened, and the teardown checks that nothing is left behind.
KYB_E2E_KEEP=1 (for working on the suite) reuses a cluster an earlier run
kept and keeps it afterwards (client config /tmp/kybe2e-keep/config);
`kyb-cluster down --name kybe2e` removes it.

The test modules are numbered: the ones that only look come first, the
destructive ones (kubelet restart, partition, control-plane restarts, node
stop) last, and each of those leaves the cluster healthy for the next.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

import pytest

from tests.e2e import workload
from tests.e2e.cluster import BUILD, CLUSTER_CIDR, ROOT, SERVICE_CIDR, SUBNET, Cluster

UP_TIMEOUT = 420
KEEP_DIR = pathlib.Path("/tmp/kybe2e-keep")  # the client config of a kept cluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory):
    """The suite's 2-node cluster, up with every node Ready; ``down`` after."""
    started = time.monotonic()
    proc = subprocess.run([str(BUILD)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, f"deploy/images/build.sh failed:\n{proc.stdout}{proc.stderr}"
    built = time.monotonic()
    keep = os.environ.get("KYB_E2E_KEEP") == "1"
    if keep:
        KEEP_DIR.mkdir(exist_ok=True)
    config = (KEEP_DIR if keep else tmp_path_factory.mktemp("kybe2e")) / "config"
    env = {**os.environ, "KYB_CONFIG": str(config), "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1"}
    for var in ("KYB_SERVER", "KYB_CLUSTER"):
        env.pop(var, None)
    c = Cluster(env)
    if not keep:
        c.cluster("down")  # whatever an interrupted earlier run left
    try:
        o = c.options
        c.up_output = c.cluster(
            "up", "--nodes", str(o.nodes), "--subnet", o.subnet,
            "--cluster-cidr", o.cluster_cidr, "--service-cidr", o.service_cidr,
            "--pod-eviction-timeout", str(o.pod_eviction_timeout), "--wait", "300",
            timeout=UP_TIMEOUT)
        print(f"\ne2e: images ready in {built - started:.1f}s, "
              f"cluster {c.name} up in {time.monotonic() - built:.1f}s")
        yield c
    finally:
        if not keep:
            out = c.cluster("down", check=False)
            assert_nothing_left(c, out)


def assert_nothing_left(c: Cluster, down_output: str) -> None:
    label = f"label=org.kybernetes.cluster={c.name}"
    left = {what: c.docker(*argv, "-q", "--filter", label, check=False).split()
            for what, argv in (("containers", ("ps", "-a")), ("networks", ("network", "ls")),
                               ("volumes", ("volume", "ls")))}
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True,
                            check=False).stdout
    prefixes = [net.rsplit(".", 2)[0] + "." for net in (CLUSTER_CIDR, SERVICE_CIDR)]
    prefixes.append(SUBNET.rsplit(".", 1)[0] + ".")
    left["routes"] = [r for r in routes.splitlines() if any(p in r for p in prefixes)]
    cgroups = "/sys/fs/cgroup/memory"
    left["cgroups"] = [p for p in os.listdir(cgroups) if p.startswith(f"{c.name}-")] \
        if os.path.isdir(cgroups) else []
    left = {k: v for k, v in left.items() if v}
    assert not left, f"kyb-cluster down left {left} behind:\n{down_output}"


@pytest.fixture(scope="session")
def web(e2e_cluster):
    """The web Deployment (3 replicas) and its NodePort Service, every pod
    Ready and the Service answering; tests that change it put it back."""
    e2e_cluster.apply(workload.manifest())
    return workload.wait_spread(e2e_cluster, replicas=workload.REPLICAS)


@pytest.fixture
def healthy_web(e2e_cluster, web):
    """The web workload, checked healthy (3 Ready pods on both nodes, the
    Service answering) before the test; its current state."""
    return workload.wait_spread(e2e_cluster, replicas=workload.REPLICAS)
