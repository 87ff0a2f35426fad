"""``kyb-kubelet`` as a process: flags, hollow nodes, /healthz, /metrics,
the published gRPC port (logs and exec through the API server), and a
clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
import uuid

from services.machinery.errors import NotFound
from tests.support import objects
from tests.support.processes import REPO, free_port, wait_until


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


async def test_kubelet_process_runs_hollow_nodes_with_health_and_metrics(
        apiserver, client, namespace, tmp_path):
    prefix = f"hollow-{uuid.uuid4().hex[:6]}"
    metrics_port = free_port()
    log = tmp_path / "kubelet.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.kubelet.main", "--server", apiserver.address,
         "--runtime", "fake", "--nodes", "2", "--node-name", prefix, "--node-ip", "127.0.0.1",
         "--address", "127.0.0.1", "--port", "0", "--metrics-port", str(metrics_port),
         "--root-dir", str(tmp_path / "root"), "--relist-period", "0.5"],
        cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    nodes = client.resource("nodes")
    try:
        async def registered():
            try:
                return [await nodes.get(f"{prefix}-{i}") for i in range(2)]
            except NotFound:
                return None
        both = await wait_until(registered, 30, 0.2, "hollow nodes registered")
        ports = {n.status.daemon_endpoints.kubelet_endpoint.port for n in both}
        assert len(ports) == 1 and ports != {0}       # one server fronts both nodes

        await wait_until(lambda: http_get(f"http://127.0.0.1:{metrics_port}/healthz")[0] == 200,
                         30, 0.2, "/healthz ok")
        pod = objects.pod("hollow", namespace, node=f"{prefix}-1")
        await client.resource("pods").create(pod)

        async def running():
            p = await client.resource("pods").get("hollow", namespace)
            return p.status.phase == "Running"
        await wait_until(running, 30, 0.2, "hollow pod Running")
        code, out, _ = await client.resource("pods").exec("hollow", namespace, ["true"])
        assert code == 0
        _, text = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert "kubelet_running_pods 1.0" in text
        assert 'kubelet_running_containers{container_state="running"} 1.0' in text
        assert 'kubelet_runtime_operations_total{operation_type="run_podsandbox"} 1.0' in text
        assert "kubelet_pod_start_duration_seconds_count 1.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        for i in range(2):
            try:
                await nodes.delete(f"{prefix}-{i}")
            except NotFound:
                pass
    assert code == 0, log.read_text()[-2000:]


def test_kubelet_process_reports_a_bad_flag_in_one_line():
    done = subprocess.run([sys.executable, "-m", "services.kubelet.main", "--nodes", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        "kyb-kubelet: error: --nodes needs --runtime fake (hollow nodes)"
