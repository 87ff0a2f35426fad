"""`make monitoring` for real: Debian's Prometheus in a container on a
one-node cluster's network, checked through Prometheus' own HTTP API —
every component's target up (each scraped over HTTPS with Prometheus' own
certificate from the cluster CA), and the pod startup latency query of
deploy/README.md answering with a number once a pod has started."""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client
from services.machinery.config import load as load_config
from services.machinery.errors import NotFound
from tests.integration.deploy.conftest import API, NAME, PROMETHEUS
from tests.support.processes import wait_until

pytestmark = [pytest.mark.images, pytest.mark.timeout(600)]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
JOBS = {"prometheus", "etcd", "apiserver", "scheduler", "controller-manager", "kubelet",
        "kube-proxy"}
README = pathlib.Path(__file__).resolve().parents[3] / "deploy" / "README.md"
POD_STARTUP_QUERY = ("histogram_quantile(0.99, "
                     "sum(rate(kubelet_pod_start_duration_seconds_bucket[5m])) by (le))")


def api(path: str, **params: str) -> dict:
    url = f"http://{PROMETHEUS}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with _DIRECT.open(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def poll(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def test_monitoring_up_prints_url_and_target_count(monitored):
    _, output = monitored
    assert f"http://{PROMETHEUS}" in output
    # prometheus, etcd, apiserver, scheduler, controller-manager, kubelet, kube-proxy
    assert "scraping 7 targets every 1s" in output


def test_monitoring_every_component_target_is_up(monitored):
    seen: dict = {}

    def health() -> dict[tuple[str, str], str] | None:
        targets = api("targets")["activeTargets"]
        found = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        seen.update({(t["labels"]["job"], t["labels"]["instance"]): t.get("lastError", "")
                     for t in targets})
        return found if found and all(h == "up" for h in found.values()) else None

    try:
        found = poll(health, 60, "every target up")
    except AssertionError as err:
        raise AssertionError(f"{err}; last errors: {seen}") from None
    assert {job for job, _ in found} == JOBS
    scrape_urls = {t["scrapeUrl"] for t in api("targets")["activeTargets"]
                   if t["labels"]["job"] != "prometheus"}
    assert scrape_urls and all(u.startswith("https://") for u in scrape_urls)
    assert (("kubelet", f"{NAME}-node-1")) in found
    assert (("kube-proxy", f"{NAME}-node-1")) in found


def test_monitoring_query_shows_component_metrics(monitored):
    def result(query: str) -> list:
        return api("query", query=query)["result"]

    rss = poll(lambda: result("process_resident_memory_bytes"), 30, "RSS of every component")
    assert {r["metric"]["job"] for r in rss} == JOBS
    assert all(float(r["value"][1]) > 0 for r in rss)
    assert poll(lambda: result("sum(apiserver_request_total) > 0"), 30, "API requests counted")


def test_readme_pod_startup_query_returns_latency_once_a_pod_started(monitored):
    assert POD_STARTUP_QUERY in README.read_text()

    async def start_pod() -> None:
        async with Client(config=admin(monitored)) as client:
            pods = client.resource("pods")
            pod = core.Pod()
            pod.metadata.name, pod.metadata.namespace = "startup", "default"
            pod.spec.containers.add(name="main", image="kyb/busybox:latest",
                                    command=["sleep", "3600"], image_pull_policy="IfNotPresent")
            pod.spec.termination_grace_period_seconds = 1
            await pods.create(pod)

            async def running() -> bool:
                return (await pods.get("startup", "default")).status.phase == "Running"
            await wait_until(running, 90, 0.5, "pod Running")

    asyncio.run(start_pod())

    def latency() -> float | None:
        result = api("query", query=POD_STARTUP_QUERY)["result"]
        value = float(result[0]["value"][1]) if result else math.nan
        return value if not math.isnan(value) else None

    assert poll(latency, 60, "a pod startup latency") > 0
    asyncio.run(_delete_pod(admin(monitored)))


def admin(monitored):
    """The cluster's admin, from the client config kyb-cluster wrote."""
    cluster, _ = monitored
    return load_config(kubeconfig=cluster.env["KYB_CONFIG"]).with_servers([API])


async def _delete_pod(cfg) -> None:
    async with Client(config=cfg) as client:
        try:
            await client.resource("pods").delete("startup", "default")
        except NotFound:
            pass


def test_monitoring_up_again_changes_nothing(monitored):
    cluster, _ = monitored
    output = cluster.monitoring("up")
    assert "running, configuration unchanged" in output
    assert "created" not in output and "reloaded" not in output


def test_monitoring_credentials_are_private_to_prometheus(monitored):
    cluster, _ = monitored
    directory = pathlib.Path(cluster.env["KYB_CONFIG"]).parent / "monitoring" / NAME
    assert directory.stat().st_mode & 0o777 == 0o750
    assert (directory / "prometheus.key").stat().st_mode & 0o777 == 0o640
    assert not (directory / "ca.key").exists()


def test_monitoring_config_passes_promtool(monitored, tmp_path):
    cluster, _ = monitored
    config = tmp_path / "prometheus.yml"
    config.write_text(subprocess.run(
        [cluster.env["PY"], "deploy/prometheus/generate.py", "config", "--name", NAME,
         "--credentials", "/check"],
        env=cluster.env, cwd=pathlib.Path(__file__).resolve().parents[3], capture_output=True,
        text=True, check=True).stdout)
    # promtool checks that the certificate files it names exist.
    pki_dir = pathlib.Path(cluster.env["KYB_CONFIG"]).parent / "clusters" / NAME / "pki"
    for name in ("ca.crt", "prometheus.crt", "prometheus.key"):
        (tmp_path / name).write_bytes((pki_dir / name).read_bytes())
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    tmp_path.chmod(0o755)
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                           "promtool", "-v", f"{tmp_path}:/check:ro", "kyb/prometheus:latest",
                           "check", "config", "/check/prometheus.yml"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr
