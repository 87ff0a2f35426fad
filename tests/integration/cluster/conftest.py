"""Fixtures for the container-based local cluster: the images (built once
per session by deploy/images/build.sh, which rebuilds only what changed)
and one small cluster (``kyb-cluster up``) shared by the tests of a module.

The cluster has its own name, Docker subnet, pod and service CIDRs, and its
own client config file, so it never meets a cluster a developer is running,
and the tool's own ``down`` removes it whatever happens (a cluster left by
an interrupted earlier run is removed first). A test module may set
``NODES`` (default 2) for a smaller cluster.

The cluster is secure as ``make cluster`` makes it: ``kyb`` reaches it
through the written client config (the admin's certificate), and
:attr:`Cluster.pki` is where its CA and certificates are.
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

NAME = "kybtest"
SUBNET = "172.30.77.0/24"
CLUSTER_CIDR = "10.247.0.0/16"
SERVICE_CIDR = "10.113.0.0/16"


def pytest_configure(config):
    config.addinivalue_line("markers", "images: builds the Kybernetes Docker images (slow "
                                       "the first time; once per session)")


@dataclasses.dataclass
class Cluster:
    name: str
    env: dict[str, str]
    up_output: str = ""

    def run(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        """``kyb-cluster ARGV --name NAME``; its output."""
        cmd = [sys.executable, "-m", "services.cluster.main", *argv, "--name", self.name]
        proc = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kyb-cluster {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def kyb(self, *argv: str, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run([sys.executable, "-m", "services.ctl.main", *argv], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kyb {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr

    def docker(self, *argv: str, check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run(["docker", *argv], capture_output=True, text=True, input=input,
                              timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(argv)} failed: {proc.stderr}")
        return proc.stdout

    def node(self, index: int) -> str:
        return f"{self.name}-node-{index}"

    @property
    def state(self) -> pathlib.Path:
        """The cluster's state directory (beside the client config)."""
        return pathlib.Path(self.env["KYB_CONFIG"]).parent / "clusters" / self.name

    @property
    def pki(self) -> pathlib.Path:
        return self.state / "pki"


@pytest.fixture(scope="session")
def images():
    """Every image, built (or found up to date) once per session."""
    started = time.monotonic()
    proc = subprocess.run([str(BUILD)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, f"deploy/images/build.sh failed:\n{proc.stdout}{proc.stderr}"
    print(f"images ready in {time.monotonic() - started:.1f}s")
    return proc.stdout


@pytest.fixture(scope="module")
def cluster(request, images, tmp_path_factory):
    """A 2-node cluster (the module's ``NODES``), up and Ready; removed (by
    ``down``) afterwards."""
    config = tmp_path_factory.mktemp("kybcluster") / "config"
    env = {**os.environ, "KYB_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    env.pop("KYB_SERVER", None)
    c = Cluster(NAME, env)
    c.run("down")
    try:
        nodes = getattr(request.module, "NODES", 2)
        c.up_output = c.run("up", "--nodes", str(nodes), "--subnet", SUBNET,
                            "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
                            "--wait", "180")
        yield c
    finally:
        c.run("down", check=False)
