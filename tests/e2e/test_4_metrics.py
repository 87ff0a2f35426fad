"""Every component's Prometheus metrics: scraped directly (each endpoint
answers with the metric names it promises, over HTTPS, to Prometheus'
certificate and to no anonymous client), and by a real Prometheus server
(Debian's prometheus binary, run on the host with the configuration
deploy/prometheus/generate.py writes for this cluster, reading the
cluster's own certificates) that reports every target up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from services.machinery import tlsconfig
from tests.e2e.cluster import ROOT, Cluster, http_get, wait_until
from tests.support.processes import free_port

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(300, func_only=True)

GENERATE = ROOT / "deploy" / "prometheus" / "generate.py"

# Per scrape job: metric names (Kubernetes' where a counterpart exists) the
# component must serve.
EXPECTED = {
    "etcd": ["etcd_server_has_leader", "etcd_mvcc_db_total_size_in_bytes"],
    "apiserver": ["apiserver_request_total", "apiserver_request_duration_seconds_bucket",
                  "apiserver_storage_objects", "apiserver_registered_watchers",
                  "etcd_request_duration_seconds_bucket"],
    "scheduler": ["scheduler_pending_pods", "scheduler_binding_duration_seconds_bucket",
                  "leader_election_master_status"],
    "controller-manager": ["leader_election_master_status", "node_collector_evictions_total"],
    "kubelet": ["kubelet_running_pods", "kubelet_running_containers",
                "kubelet_pod_start_duration_seconds_bucket", "kubelet_runtime_operations_total"],
    "kube-proxy": ["kubeproxy_sync_proxy_rules_duration_seconds_bucket",
                   "kubeproxy_network_programming_duration_seconds_bucket",
                   "kubeproxy_sync_proxy_rules_last_timestamp_seconds"],
}


def targets(c: Cluster) -> dict[str, list[tuple[str, str]]]:
    """Scrape job → [(host:port, instance)], from the cluster's plan."""
    from services.cluster import topology as t
    topo = c.topology
    return {
        "etcd": [(f"{e.ip}:{t.ETCD_METRICS_PORT}", e.name) for e in topo.etcd],
        "apiserver": [(f"{a.ip}:{t.APISERVER_METRICS_PORT}", a.name) for a in topo.apiservers],
        "scheduler": [(f"{topo.scheduler.ip}:{t.SCHEDULER_METRICS_PORT}", topo.scheduler.name)],
        "controller-manager": [(f"{topo.controller_manager.ip}:"
                                f"{t.CONTROLLER_MANAGER_METRICS_PORT}",
                                topo.controller_manager.name)],
        "kubelet": [(f"{n.ip}:{t.KUBELET_METRICS_PORT}", n.name) for n in topo.nodes],
        "kube-proxy": [(f"{n.ip}:{t.PROXY_METRICS_PORT}", n.name) for n in topo.nodes],
    }


def metric_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_component_serves_its_metrics(e2e_cluster, healthy_web):
    c = e2e_cluster
    for job, entries in targets(c).items():
        for address, instance in entries:
            names = metric_names(c.metrics(address))
            missing = [m for m in EXPECTED[job] if m not in names]
            assert not missing, f"{job} {instance} ({address}/metrics) lacks {missing}"


def _anonymous_status(c: Cluster, address: str) -> str:
    """What a client with no certificate gets from https://ADDRESS/metrics."""
    context = tlsconfig.http_client_context(c.pki / "ca.crt")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(f"https://{address}/metrics", timeout=10) as response:
            return str(response.status)
    except urllib.error.HTTPError as err:
        return str(err.code)
    except OSError as err:  # etcd refuses the handshake itself
        return f"refused ({type(err).__name__})"


def test_no_component_shows_its_metrics_to_an_anonymous_client(e2e_cluster):
    c = e2e_cluster
    for job, entries in targets(c).items():
        for address, instance in entries:
            status = _anonymous_status(c, address)
            assert status == "401" or status.startswith("refused"), \
                f"{job} {instance}: {address}/metrics answered {status} without a certificate"


@pytest.fixture
def prometheus(e2e_cluster, tmp_path):
    """A Prometheus server on the host, scraping the suite's cluster every
    second with the configuration deploy/prometheus/generate.py writes for
    it; its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary on this host (apt-get install prometheus); "
                    "test_every_component_serves_its_metrics scraped every component directly")
    if not GENERATE.exists():
        pytest.skip("deploy/prometheus/generate.py is missing")
    out = subprocess.run([sys.executable, str(GENERATE), "config", "--name", e2e_cluster.name,
                          "--scrape-interval", "1s", "--credentials", str(e2e_cluster.pki)],
                         env=e2e_cluster.env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    port = free_port()
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":   # scrapes itself where it listens here
            for static in job["static_configs"]:
                static["targets"] = [f"127.0.0.1:{port}"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})
    try:
        yield f"http://127.0.0.1:{port}", config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def api(base: str, path: str, **query: str) -> dict:
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    body = json.loads(http_get(url, timeout=10))
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_every_component(e2e_cluster, healthy_web, prometheus):
    base, config = prometheus
    wanted = {(job["job_name"], target) for job in config["scrape_configs"]
              for static in job["static_configs"] for target in static["targets"]}
    assert {job for job, _ in wanted} == {"prometheus", *EXPECTED}

    seen: dict = {}

    def all_up():
        active = api(base, "targets", state="active")["activeTargets"]
        seen.clear()
        seen.update({(t["labels"]["job"], t["discoveredLabels"]["__address__"]):
                     (t["health"], t.get("lastError", "")) for t in active})
        return set(seen) == wanted and all(h == "up" for h, _ in seen.values())
    try:
        wait_until(lambda: _quiet(all_up), 90, "every Prometheus target up")
    except AssertionError as err:
        raise AssertionError(f"{err}; targets: {seen}") from None

    # The scraped series are queryable: one kubelet_running_pods per node.
    result = api(base, "query", query="kubelet_running_pods")["result"]
    assert sorted(r["metric"]["instance"] for r in result) == sorted(e2e_cluster.nodes)
    result = api(base, "query", query='sum(up{job!="prometheus"})')["result"]
    assert float(result[0]["value"][1]) == len(wanted) - 1


def _quiet(predicate):
    """``predicate()``, or None while Prometheus is still starting."""
    try:
        return predicate()
    except OSError:
        return None
