"""The end-to-end suite's handle on its own cluster, as a user drives it.

Everything goes through the commands a user types — ``kyb-cluster``,
``kyb`` and ``docker`` — run as subprocesses with the suite's own client
config (``KYB_CONFIG``), so the suite never meets a cluster a developer is
running, and what it checks is what a user would see. The cluster is
secure as ``make cluster`` makes it: ``kyb`` connects with the admin
certificate that config names, and metrics are fetched over HTTPS with
Prometheus' certificate from the cluster's PKI (:meth:`Cluster.metrics`). Addresses and
container names come from :func:`services.cluster.topology.plan`, the same
plan ``kyb-cluster`` follows.

Synchronisation is by :func:`wait_until` (poll a condition with a
deadline), never by sleeping for a fixed time.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from services.cluster.config import Options
from services.cluster.topology import Topology, plan
from services.machinery import tlsconfig

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "images" / "build.sh"

# Distinct from `make cluster` (kyb, 172.30.0.0/24, 10.244/16, 10.96/12) and
# from tests/integration/cluster (kybtest, 172.30.77.0/24, 10.247/16, 10.113/16).
NAME = "kybe2e"
SUBNET = "172.30.88.0/24"
CLUSTER_CIDR = "10.248.0.0/16"
SERVICE_CIDR = "10.114.0.0/16"
# Pods stay this long on a NotReady/unreachable node before they are evicted
# (the API server's default tolerationSeconds; Kubernetes: 300 s).
POD_EVICTION_TIMEOUT = 20
OPTIONS = Options(name=NAME, nodes=2, subnet=SUBNET, cluster_cidr=CLUSTER_CIDR,
                  service_cidr=SERVICE_CIDR, pod_eviction_timeout=POD_EVICTION_TIMEOUT)

# The host's HTTP requests must not go through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

T = TypeVar("T")


class CommandFailed(AssertionError):
    """A command the test needed exited non-zero (its output is the message)."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.5) -> T:
    """Poll ``predicate`` until it returns something true (returned) or
    ``timeout`` seconds pass (AssertionError naming ``what`` and the last
    value seen). A CommandFailed inside counts as "not yet": the control
    plane may be restarting while we poll."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except CommandFailed as err:
            last = f"command failed: {str(err).strip()[-300:]}"
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} "
                                 f"(last: {last!r})")
        time.sleep(interval)


def http_get(url: str, timeout: float = 3.0) -> str:
    """GET ``url`` from the host, bypassing any proxy; the body, stripped."""
    with _DIRECT.open(url, timeout=timeout) as response:
        return response.read().decode().strip()


def try_get(url: str, timeout: float = 3.0) -> str:
    """:func:`http_get`, or "" on any connection error."""
    try:
        return http_get(url, timeout)
    except OSError:
        return ""


@dataclasses.dataclass(frozen=True)
class InnerContainer:
    """A container in a node's own dockerd (``docker exec NODE docker ps``)."""

    id: str
    state: str
    type: str           # "sandbox" or "container"
    pod: str
    pod_uid: str
    name: str           # the container's name in the pod spec ("" for sandboxes)


@dataclasses.dataclass
class Cluster:
    """The suite's cluster: the commands that drive it and what it is."""

    env: dict[str, str]
    options: Options = OPTIONS
    up_output: str = ""

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def topology(self) -> Topology:
        return plan(self.options, preload_dir="")

    @property
    def nodes(self) -> list[str]:
        return [n.name for n in self.topology.nodes]

    def node_ip(self, node: str) -> str:
        return self.topology.node(node).ip

    def other_node(self, node: str) -> str:
        return next(n for n in self.nodes if n != node)

    @property
    def state(self) -> pathlib.Path:
        """The cluster's state directory (beside its client config)."""
        return pathlib.Path(self.env["KYB_CONFIG"]).parent / "clusters" / self.name

    @property
    def pki(self) -> pathlib.Path:
        """The cluster's CA and certificates (Prometheus' among them)."""
        return self.state / "pki"

    def metrics_tls(self) -> ssl.SSLContext:
        """HTTPS trusting the cluster CA, presenting Prometheus' certificate."""
        return tlsconfig.http_client_context(self.pki / "ca.crt", self.pki / "prometheus.crt",
                                             self.pki / "prometheus.key")

    def metrics(self, address: str, timeout: float = 10.0) -> str:
        """``https://ADDRESS/metrics`` as Prometheus scrapes it; OSError when
        it does not answer."""
        https = urllib.request.HTTPSHandler(context=self.metrics_tls())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), https)
        with opener.open(f"https://{address}/metrics", timeout=timeout) as response:
            return response.read().decode()

    # -- commands ------------------------------------------------------------------------

    def _run(self, argv: list[str], what: str, *, check: bool, timeout: float,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True,
                              input=input, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise CommandFailed(f"{what} exited with {proc.returncode}:\n"
                                f"{proc.stdout}{proc.stderr}")
        return proc

    def cluster(self, *argv: str, check: bool = True, timeout: float = 300) -> str:
        """``kyb-cluster ARGV --name NAME``: its output."""
        proc = self._run([sys.executable, "-m", "services.cluster.main", *argv,
                          "--name", self.name], f"kyb-cluster {' '.join(argv)}",
                         check=check, timeout=timeout)
        return proc.stdout + proc.stderr

    def kyb(self, *argv: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> str:
        """``kyb ARGV`` (stdin ``input``): its standard output."""
        proc = self._run([sys.executable, "-m", "services.ctl.main", *argv],
                         f"kyb {' '.join(argv)}", check=check, timeout=timeout, input=input)
        return proc.stdout

    def apply(self, manifest: str) -> str:
        return self.kyb("apply", "-f", "-", input=manifest)

    def get_json(self, *argv: str) -> dict[str, Any]:
        """``kyb get ARGV -o json``, parsed."""
        return json.loads(self.kyb("get", *argv, "-o", "json"))

    def docker(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        return self._run(["docker", *argv], f"docker {' '.join(argv)}", check=check,
                         timeout=timeout).stdout

    # -- what the cluster says -------------------------------------------------------------

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        argv = ["pods"] + (["-l", selector] if selector else [])
        return self.get_json(*argv)["items"]

    def node_ready(self) -> dict[str, str]:
        """Node name → its Ready condition's status ("True", "False", "Unknown")."""
        return {n["metadata"]["name"]: next(
                    (c["status"] for c in n.get("status", {}).get("conditions", [])
                     if c["type"] == "Ready"), "")
                for n in self.get_json("nodes")["items"]}

    def wait_nodes_ready(self, timeout: float = 120) -> None:
        wait_until(lambda: all(self.node_ready().get(n) == "True" for n in self.nodes),
                   timeout, "every node Ready")

    def inner_containers(self, node: str, *, all_states: bool = False) -> list[InnerContainer]:
        """The containers the node's own dockerd has (running ones, or all)."""
        fmt = "\t".join(["{{.ID}}", "{{.State}}", '{{.Label "io.kybernetes.type"}}',
                         '{{.Label "io.kybernetes.pod.name"}}',
                         '{{.Label "io.kybernetes.pod.uid"}}',
                         '{{.Label "io.kybernetes.container.name"}}'])
        argv = ["exec", node, "docker", "ps", "--no-trunc", "--format", fmt]
        if all_states:
            argv.insert(4, "-a")
        out = self.docker(*argv)
        return [InnerContainer(*line.split("\t")) for line in out.splitlines() if line.strip()]


def pod_node(pod: dict[str, Any]) -> str:
    return pod.get("spec", {}).get("nodeName", "")


def pod_ip(pod: dict[str, Any]) -> str:
    return pod.get("status", {}).get("podIP", "")


def is_running(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and \
        not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: dict[str, Any]) -> bool:
    return is_running(pod) and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", []))


def container_ids(pod: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Container name → (container ID without the runtime prefix, restartCount)."""
    return {s["name"]: (s.get("containerID", "").partition("://")[2], s.get("restartCount", 0))
            for s in pod.get("status", {}).get("containerStatuses", [])}
