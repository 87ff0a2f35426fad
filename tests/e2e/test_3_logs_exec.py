"""``kyb logs`` and ``kyb exec`` reach a pod on each node, through the API
server and that node's kubelet."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.e2e.cluster import ROOT, pod_ip, try_get, wait_until
from tests.e2e.workload import Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(300, func_only=True)


def test_logs_show_a_request_made_to_a_pod_on_each_node(e2e_cluster, healthy_web: Web):
    c = e2e_cluster
    for node in c.nodes:
        pod = healthy_web.on(node)[0]
        name = pod["metadata"]["name"]
        path = f"/e2e-{uuid.uuid4().hex[:12]}"
        try_get(f"http://{pod_ip(pod)}:8080{path}")  # a 404, but httpd -vv logs the URL
        logs = wait_until(lambda: (out := c.kyb("logs", name)) and path in out and out, 30,
                          f"{path} in the logs of {name} on {node}")
        assert f"url:{path}" in logs
        tail = c.kyb("logs", name, "--tail", "1")
        assert len(tail.splitlines()) == 1


def test_exec_runs_in_a_pod_on_each_node_with_its_exit_code_and_stdin(e2e_cluster,
                                                                      healthy_web: Web):
    c = e2e_cluster
    for node in c.nodes:
        pod = healthy_web.on(node)[0]
        name = pod["metadata"]["name"]
        assert c.kyb("exec", name, "--", "cat", "/www/index.html").strip() == name
        # The pod's environment and network: its own name and IP.
        out = c.kyb("exec", name, "--", "sh", "-c", "echo $POD_NAME; hostname; ip -4 -o addr")
        assert out.splitlines()[:2] == [name, name]
        assert f"inet {pod_ip(pod)}/" in out
        # The remote exit status is kyb's, and stdin is passed with -i.
        proc = subprocess.run(
            [sys.executable, "-m", "services.ctl.main", "exec", "-i", name, "--",
             "sh", "-c", "cat; echo oops >&2; exit 7"], input="hello from the host\n",
            env=c.env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 7, proc.stderr
        assert proc.stdout == "hello from the host\n"
        assert "oops" in proc.stderr
