"""Fixtures for deploy/: a one-node cluster of its own (``kyb-cluster up``)
with Prometheus (deploy/monitoring.sh) started against it.

The cluster has its own name, Docker subnet, pod and service CIDRs and
client config file, so it never meets a cluster a developer is running nor
the one tests/integration/cluster brings up; whatever happens, Prometheus
and the cluster are removed afterwards by their own ``down`` (and a cluster
left by an interrupted earlier run is removed first).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BUILD = ROOT / "deploy" / "images" / "build.sh"
MONITORING = ROOT / "deploy" / "monitoring.sh"

NAME = "kybmon"
SUBNET = "172.30.91.0/24"
CLUSTER_CIDR = "10.251.0.0/16"
SERVICE_CIDR = "10.121.0.0/16"
PROMETHEUS = "172.30.91.5:9090"      # the subnet's 5th address (generate.py PROMETHEUS_HOST)
API = "172.30.91.20:6443"
SCRAPE_INTERVAL = "1s"


def pytest_configure(config):
    config.addinivalue_line("markers", "images: builds the Kybernetes Docker images (slow "
                                       "the first time; once per session)")


@dataclasses.dataclass
class Cluster:
    name: str
    env: dict[str, str]

    def run(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        """``kyb-cluster ARGV --name NAME``; its output."""
        cmd = [sys.executable, "-m", "services.cluster.main", *argv, "--name", self.name]
        return _run(cmd, self.env, check, timeout)

    def monitoring(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        """``deploy/monitoring.sh ARGV`` for this cluster; its output."""
        return _run([str(MONITORING), *argv], self.env, check, timeout)


def _run(cmd: list[str], env: dict[str, str], check: bool, timeout: float) -> str:
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def deploy_images():
    """Every cluster image, built (or found up to date) once per session."""
    proc = subprocess.run([str(BUILD)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, f"deploy/images/build.sh failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def monitored(deploy_images, tmp_path_factory):
    """A one-node cluster, Ready, with Prometheus scraping it every second;
    both removed afterwards. Yields (cluster, first monitoring.sh output)."""
    config = tmp_path_factory.mktemp("kybmon") / "config"
    env = {**os.environ, "KYB_CONFIG": str(config), "PYTHONPATH": str(ROOT),
           "KYB_CLUSTER": NAME, "PROMETHEUS_PORT": "0", "SCRAPE_INTERVAL": SCRAPE_INTERVAL,
           "PY": sys.executable}
    env.pop("KYB_SERVER", None)
    c = Cluster(NAME, env)
    c.monitoring("down", check=False)
    c.run("down")
    try:
        started = time.monotonic()
        c.run("up", "--nodes", "1", "--subnet", SUBNET, "--cluster-cidr", CLUSTER_CIDR,
              "--service-cidr", SERVICE_CIDR, "--wait", "180")
        print(f"cluster {NAME} up in {time.monotonic() - started:.1f}s")
        yield c, c.monitoring("up")
    finally:
        c.monitoring("down", check=False)
        c.run("down", check=False)
