"""The kyb CLI against a real API server and etcd.

Most tests run ``services.ctl.main.main`` in a worker thread (it makes its
own event loop) and read its output with capsys, checking the cluster with
the test's own client; a few run the installed ``kyb`` script as a
subprocess to prove exit codes and the absence of tracebacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import socket
import sys
import uuid

import pytest
import yaml

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.ctl import main as ctl
from services.machinery import errors
from tests.support import objects

REPO = pathlib.Path(__file__).resolve().parents[2]
KYB = REPO / ".venv" / "bin" / "kyb"


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture
def kyb(apiserver, capsys):
    """Run ``kyb --server <test server> ARGS...`` in-process."""
    async def run(*args: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(ctl.main, ["--server", apiserver.address, *args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Result(code, captured.out, captured.err)
    return run


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


STACK = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - name: http
    port: 80
    targetPort: 80
---
# a comment-only document is skipped
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  namespace: {ns}
  labels: {{app: solo}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    securityContext: {{privileged: true}}
"""


async def test_cli_apply_multi_document_creates_then_is_unchanged(kyb, client, tmp_path):
    ns = _name("stack")
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.format(ns=ns, replicas=2))

    first = await kyb("apply", "-f", str(path))
    assert first.code == 0, first.err
    assert first.lines == [f"namespace/{ns} created", "deployment.apps/web created",
                           "service/web created", "pod/solo created"]
    assert first.err == 'Warning: unknown field "spec.containers[0].securityContext"\n'
    svc = await client.resource("services").get("web", ns)
    assert svc.spec.ports[0].node_port and svc.spec.cluster_ip
    assert (await client.resource("deployments").get("web", ns)).spec.replicas == 2
    assert (await client.resource("pods").get("solo", ns)).metadata.labels["app"] == "solo"

    second = await kyb("apply", "-f", str(path))
    assert second.code == 0
    assert second.lines == [f"namespace/{ns} unchanged", "deployment.apps/web unchanged",
                            "service/web unchanged", "pod/solo unchanged"]

    path.write_text(STACK.format(ns=ns, replicas=3))
    third = await kyb("apply", "-f", str(path), "--validate=false")
    assert third.code == 0 and third.err == ""
    assert third.lines == [f"namespace/{ns} unchanged", "deployment.apps/web configured",
                           "service/web unchanged", "pod/solo unchanged"]
    deployment = await client.resource("deployments").get("web", ns)
    assert deployment.spec.replicas == 3
    again = await client.resource("services").get("web", ns)
    assert again.spec.cluster_ip == svc.spec.cluster_ip  # server-allocated values survive
    assert again.spec.ports[0].node_port == svc.spec.ports[0].node_port


async def test_cli_apply_directory_in_name_order_with_namespace_flag(kyb, client, namespace,
                                                                     tmp_path):
    (tmp_path / "b.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n"
        "spec: {containers: [{name: c, image: busybox}]}\n")
    (tmp_path / "a.json").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}))
    result = await kyb("apply", "-f", str(tmp_path), "-n", namespace)
    assert result.code == 0, result.err
    assert result.lines == ["service/a created", "pod/b created"]
    svc = await client.resource("services").get("a", namespace)
    assert svc.spec.ports[0].target_port.str_value == "http"


async def test_cli_apply_strict_validation_sends_nothing(kyb, client, namespace, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n"
                    "spec: {containers: [{name: c, image: busybox}]}\n---\n"
                    "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\n"
                    "spec: {containers: [{name: c, image: busybox, bogus: 1}]}\n")
    result = await kyb("apply", "-f", str(path), "-n", namespace, "--validate=strict")
    assert result.code == 1 and result.out == ""
    assert result.err == (f'error: error validating "{path}": strict decoding error: '
                          f'unknown field "spec.containers[0].bogus"\n')
    with pytest.raises(errors.NotFound):
        await client.resource("pods").get("ok", namespace)


async def test_cli_apply_server_rejection_is_reported_per_object(kyb, namespace, tmp_path):
    path = tmp_path / "pods.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\n"
                    "spec: {containers: [{name: c}]}\n---\n"
                    "apiVersion: v1\nkind: Pod\nmetadata: {name: fine}\n"
                    "spec: {containers: [{name: c, image: busybox}]}\n")
    result = await kyb("apply", "-f", str(path), "-n", namespace)
    assert result.code == 1
    assert result.lines == ["pod/fine created"]
    assert result.err.startswith(f'Error from server (Invalid): error when creating "{path}": ')
    assert "spec.containers[0].image" in result.err and result.err.count("\n") == 1


async def _running_pod(client, namespace: str, name: str, **labels: str) -> core.Pod:
    """A pod bound to node-1 with a pod IP, as scheduler and kubelet would leave it."""
    pods = client.resource("pods")
    await pods.create(objects.pod(name, namespace, labels=labels or {"app": name},
                                  node="node-1"))
    pod = await pods.get(name, namespace)
    pod.status.phase = "Running"
    pod.status.pod_ip = "10.244.1.7"
    pod.status.host_ip = "192.168.1.10"
    pod.status.pod_ips.add(ip="10.244.1.7")
    status = pod.status.container_statuses.add(name="main", ready=True, image="busybox:latest")
    status.state.running.started_at.CopyFrom(pod.metadata.creation_timestamp)
    return await pods.update_status(pod)


async def test_cli_get_table_and_json_shape(kyb, client, namespace):
    await _running_pod(client, namespace, "web")
    table = await kyb("get", "pods", "-n", namespace)
    assert table.code == 0
    assert table.lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table.lines[1].split()[:4] == ["web", "1/1", "Running", "0"]
    assert table.lines[0].index("READY") == table.lines[1].index("1/1")

    wide = await kyb("get", "po", "web", "-n", namespace, "-o", "wide")
    assert wide.lines[0].split()[-2:] == ["IP", "NODE"]
    assert wide.lines[1].split()[-2:] == ["10.244.1.7", "node-1"]

    result = await kyb("get", "pod/web", "-n", namespace, "-o", "json")
    assert result.code == 0
    obj = json.loads(result.out)
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod"
    assert obj["metadata"]["name"] == "web" and obj["metadata"]["namespace"] == namespace
    assert obj["metadata"]["resourceVersion"].isdigit()
    assert obj["metadata"]["creationTimestamp"].endswith("Z")
    assert isinstance(obj["metadata"]["generation"], int)
    assert obj["spec"]["nodeName"] == "node-1"
    assert obj["status"]["podIP"] == "10.244.1.7"
    assert obj["status"]["hostIP"] == "192.168.1.10"
    assert obj["status"]["containerStatuses"][0]["ready"] is True


async def test_cli_get_yaml_name_and_selectors(kyb, client, namespace):
    pods = client.resource("pods")
    await pods.create(objects.pod("a", namespace, labels={"app": "a", "tier": "front"}))
    await pods.create(objects.pod("b", namespace, labels={"app": "b", "tier": "front"}))
    names = await kyb("get", "pods", "-n", namespace, "-l", "app=a", "-o", "name")
    assert names.code == 0 and names.lines == ["pod/a"]
    both = await kyb("get", "pods", "-n", namespace, "-l", "tier=front,app in (a,b)",
                     "-o", "name")
    assert both.lines == ["pod/a", "pod/b"]
    listed = await kyb("get", "pods", "-n", namespace, "-l", "tier=front", "-o", "yaml")
    data = yaml.safe_load(listed.out)
    assert data["kind"] == "List" and data["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in data["items"]] == ["a", "b"]
    assert all(i["kind"] == "Pod" for i in data["items"])
    one = yaml.safe_load((await kyb("get", "po", "a", "-n", namespace, "-o", "yaml")).out)
    assert one["kind"] == "Pod" and one["metadata"]["labels"] == {"app": "a", "tier": "front"}
    field = await kyb("get", "pods", "-n", namespace, "--field-selector", "metadata.name=b",
                      "-o", "name")
    assert field.lines == ["pod/b"]
    none = await kyb("get", "pods", "-n", namespace, "-l", "app=zzz")
    assert none.code == 0 and none.out == ""
    assert none.err == f"No resources found in {namespace} namespace.\n"
    bad = await kyb("get", "pods", "-n", namespace, "-l", "app in (a")
    assert bad.code == 1 and bad.out == ""
    assert bad.err.startswith("error: ") and bad.err.count("\n") == 1


async def test_cli_get_several_kinds_and_all_namespaces(kyb, client, namespace):
    await client.resource("pods").create(objects.pod("web", namespace))
    svc = await client.resource("services").create(objects.service("web", namespace))
    result = await kyb("get", "po,svc", "-n", namespace)
    assert result.code == 0
    blocks = result.out.split("\n\n")
    assert blocks[0].splitlines()[1].split()[0] == "pod/web"
    service_row = blocks[1].splitlines()[1].split()
    assert service_row[:5] == ["service/web", "ClusterIP", svc.spec.cluster_ip, "<none>",
                               "80/TCP"]
    everywhere = await kyb("get", "pods", "-A")
    assert everywhere.lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [namespace, "web"] in [line.split()[:2] for line in everywhere.lines[1:]]
    namespaces = await kyb("get", "ns", namespace)
    assert namespaces.lines[0].split() == ["NAME", "STATUS", "AGE"]
    assert namespaces.lines[1].split()[:2] == [namespace, "Active"]


async def test_cli_get_missing_object_is_not_found(kyb, namespace):
    result = await kyb("get", "pods", "nope", "-n", namespace)
    assert result.code == 1 and result.out == ""
    assert result.err == 'Error from server (NotFound): pods "nope" not found\n'


async def test_cli_describe_pod_lists_its_events(kyb, client, namespace):
    await _running_pod(client, namespace, "web")
    ev = objects.event("web.1", namespace, about="web")
    ev.reason, ev.message = "Pulled", "Container image pulled"
    ev.source.component = "kubelet"
    ev.count = 1
    await client.resource("events").create(ev)
    other = objects.event("other.1", namespace, about="other")
    await client.resource("events").create(other)

    result = await kyb("describe", "pod", "web", "-n", namespace)
    assert result.code == 0, result.err
    lines = result.lines
    assert lines[0].split() == ["Name:", "web"]
    assert lines[1].split() == ["Namespace:", namespace]
    assert ["Node:", "node-1/192.168.1.10"] in [line.split() for line in lines]
    assert ["Status:", "Running"] in [line.split() for line in lines]
    assert ["IP:", "10.244.1.7"] in [line.split() for line in lines]
    assert "Containers:" in lines and "Conditions:" not in lines[:3]
    events_at = lines.index("Events:")
    assert lines[events_at + 1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert lines[events_at + 3].split()[:2] == ["Normal", "Pulled"]
    assert lines[events_at + 3].endswith("kubelet  Container image pulled")
    assert len(lines) == events_at + 4  # the other pod's event is not listed


async def test_cli_describe_service_and_deployment(kyb, client, namespace):
    await client.resource("services").create(objects.service("web", namespace))
    await client.resource("endpoints").create(
        objects.endpoints("web", namespace, ips=("10.244.1.5", "10.244.2.6")))
    await client.resource("deployments").create(objects.deployment("api", namespace, 3))
    svc = await kyb("describe", "svc", "web", "-n", namespace)
    rows = [line.split() for line in svc.lines]
    assert ["Selector:", "app=web"] in rows
    assert ["Port:", "http", "80/TCP"] in rows
    assert ["TargetPort:", "8080/TCP"] in rows
    assert ["Endpoints:", "10.244.1.5:8080,10.244.2.6:8080"] in rows
    assert svc.lines[-1].split() == ["Events:", "<none>"]
    deploy = await kyb("describe", "deployment/api", "-n", namespace)
    assert deploy.code == 0
    replicas = next(line for line in deploy.lines if line.startswith("Replicas:"))
    assert replicas.split(None, 1)[1].startswith("3 desired | ")
    assert ["StrategyType:", "RollingUpdate"] in [line.split() for line in deploy.lines]
    missing = await kyb("describe", "pod", "nope", "-n", namespace)
    assert missing.code == 1
    assert missing.err == 'Error from server (NotFound): pods "nope" not found\n'


async def test_cli_delete_by_name_and_from_file(kyb, client, namespace, tmp_path):
    await client.resource("pods").create(objects.pod("a", namespace))
    await client.resource("services").create(objects.service("s", namespace))
    result = await kyb("delete", "pod", "a", "-n", namespace, "--grace-period", "0")
    assert result.code == 0, result.err
    assert result.lines == ['pod "a" deleted']
    with pytest.raises(errors.NotFound):
        await client.resource("pods").get("a", namespace)
    again = await kyb("delete", "pod", "a", "-n", namespace)
    assert again.code == 1
    assert again.err == 'Error from server (NotFound): pods "a" not found\n'

    path = tmp_path / "svc.yaml"
    path.write_text(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s, namespace: {namespace}}}\n")
    from_file = await kyb("delete", "-f", str(path), "--wait=false")
    assert from_file.code == 0 and from_file.lines == ['service "s" deleted']
    with pytest.raises(errors.NotFound):
        await client.resource("services").get("s", namespace)


async def test_cli_delete_by_selector(kyb, client, namespace):
    pods = client.resource("pods")
    await pods.create(objects.pod("a", namespace, labels={"app": "x"}))
    await pods.create(objects.pod("b", namespace, labels={"app": "x"}))
    await pods.create(objects.pod("c", namespace, labels={"app": "y"}))
    result = await kyb("delete", "pods", "-l", "app=x", "-n", namespace, "--grace-period=0")
    assert result.code == 0 and result.lines == ['pod "a" deleted', 'pod "b" deleted']
    left = await pods.list(namespace)
    assert [p.metadata.name for p in left.items] == ["c"]


async def test_cli_create_namespace(kyb, client):
    name = _name("created")
    result = await kyb("create", "namespace", name)
    assert result.code == 0 and result.lines == [f"namespace/{name} created"]
    assert (await client.resource("namespaces").get(name)).metadata.name == name
    again = await kyb("create", "ns", name)
    assert again.code == 1
    assert again.err.startswith("Error from server (AlreadyExists): ")
    assert name in again.err and again.err.count("\n") == 1


async def test_cli_watch_prints_a_row_per_change(apiserver, client, namespace):
    """``get -w``: the table, then a row for each change after the list."""
    pods = client.resource("pods")
    await pods.create(objects.pod("web", namespace, labels={"app": "web"}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ctl.main", "--server", apiserver.address,
        "get", "pods", "-n", namespace, "-w", "--request-timeout", "30", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async def line() -> str:
            return (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().rstrip("\n")
        assert (await line()).split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert (await line()).split()[:3] == ["web", "0/1", "Pending"]
        # The table is printed, so the list is done: this change comes by the watch.
        pod = await pods.get("web", namespace)
        pod.status.phase = "Running"
        status = pod.status.container_statuses.add(name="main", ready=True)
        status.state.running.started_at.CopyFrom(pod.metadata.creation_timestamp)
        await pods.update_status(pod)
        assert (await line()).split()[:3] == ["web", "1/1", "Running"]
        await pods.delete("web", namespace, grace_period_seconds=0)
        assert (await line()).split()[0] == "web"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def _run_script(*args: str, env: dict | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        str(KYB), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.mark.skipif(not KYB.exists(), reason="the kyb script is installed by `make venv`")
async def test_cli_script_exit_codes_and_one_line_errors(apiserver, namespace, tmp_path):
    ok = await _run_script("get", "pods", "-n", namespace, env={"KYB_SERVER": apiserver.address})
    assert ok.code == 0 and ok.err == f"No resources found in {namespace} namespace.\n"

    unknown = await _run_script("--server", apiserver.address, "get", "foo")
    assert unknown.code == 1
    assert unknown.err == 'error: the server doesn\'t have a resource type "foo"\n'

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata:\n  name: [x\n")
    parse = await _run_script("--server", apiserver.address, "apply", "-f", str(bad))
    assert parse.code == 1 and parse.err.startswith(f"error: error parsing {bad}:")
    assert parse.err.count("\n") == 1

    dead = _free_address()
    unreachable = await _run_script("--server", dead, "get", "pods")
    assert unreachable.code == 1
    assert unreachable.err.startswith(f"error: cannot reach the API server at {dead}: ")
    assert unreachable.err.count("\n") == 1

    for result in (ok, unknown, parse, unreachable):
        assert "Traceback" not in result.err


def test_cli_module_runs_as_python_m():
    """``python -m services.ctl.main`` works too (no script needed)."""
    import subprocess
    done = subprocess.run([sys.executable, "-m", "services.ctl.main", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "apply" in done.stdout
