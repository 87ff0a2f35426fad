"""``kyb logs`` and ``kyb exec`` through a real API server to a minimal
server speaking the Kubelet protocol (as in test_apiserver_proxy.py): it
answers with what it was asked, so the tests see every flag arrive. The
real kubelet's side is tested with the kubelet.

Also the pure helpers the two commands share (pod and container choice,
splitting the command line at ``--``), which need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import pathlib
import signal
import sys
import uuid

import grpc
import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.kubelet.v1 import kubelet_pb2_grpc
from services.ctl import logs
from services.ctl import main as ctl
from tests.support import objects
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(60)

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = b"\x00\xff\xfe not utf-8 \x80\n"


class FakeKubelet(kubelet_pb2_grpc.KubeletServicer):
    """Logs: five lines per container (or the previous instance's one), the
    flags echoed; pod "bin" logs raw bytes; follow holds the stream open.
    Exec: ``cat`` echoes stdin, ``fail N`` exits N, anything else is echoed."""

    async def Logs(self, request, context):
        if request.name == "bin":
            yield core.LogChunk(data=BINARY)
            return
        lines = ["previous instance"] if request.previous else [f"line {i}" for i in range(5)]
        if request.HasField("tail_lines"):
            lines = lines[len(lines) - request.tail_lines:] if request.tail_lines else []
        stamp = "2024-05-01T10:00:00.000000000Z " if request.timestamps else ""
        for line in lines:
            yield core.LogChunk(data=f"{stamp}{request.name}/{request.container}: {line}\n"
                                .encode())
        if request.HasField("since_seconds"):
            yield core.LogChunk(data=f"since {request.since_seconds}s\n".encode())
        if request.follow:
            yield core.LogChunk(data=b"following\n")
            await asyncio.Event().wait()  # until the client goes away

    async def Exec(self, request, context):
        command = list(request.command)
        if command == ["cat"]:
            yield core.ExecOutput(stdout=request.stdin)
            yield core.ExecOutput(exit_code=0)
        elif command[0] == "fail":
            yield core.ExecOutput(stdout=b"partial\n", stderr=b"oops\n")
            yield core.ExecOutput(exit_code=int(command[1]))
        else:
            text = f"{request.name}/{request.container}: {' '.join(command)}\n"
            yield core.ExecOutput(stdout=text.encode(), exit_code=0)


@pytest.fixture
async def kubelet_node(client):
    port = free_port()
    server = grpc.aio.server()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(FakeKubelet(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    node = objects.node(f"logs-node-{uuid.uuid4().hex[:8]}")
    node.status.addresses.add(type="InternalIP", address="127.0.0.1")
    node.status.daemon_endpoints.kubelet_endpoint.port = port
    created = await client.resource("nodes").create(node)
    yield created.metadata.name
    await server.stop(0)
    await client.resource("nodes").delete(created.metadata.name)


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


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


async def _pod(client, namespace: str, name: str, node: str, *containers: str,
               labels: dict[str, str] | None = None, phase: str = "") -> core.Pod:
    pod = objects.pod(name, namespace, node=node, labels=labels)
    for extra in containers:
        pod.spec.containers.add(name=extra, image="busybox:latest", command=["sleep", "1"])
    created = await client.resource("pods").create(pod)
    if phase:
        created.status.phase = phase
        created = await client.resource("pods").update_status(created)
    return created


# --- logs ------------------------------------------------------------------------------------


async def test_cli_logs_prints_the_containers_log(kyb, client, namespace, kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    result = await kyb("logs", "web", "-n", namespace)
    assert (result.code, result.err) == (0, "")
    assert result.out == "".join(f"web/main: line {i}\n" for i in range(5))
    assert (await kyb("logs", "pod/web", "-n", namespace)).out == result.out


async def test_cli_logs_passes_tail_previous_timestamps_since(kyb, client, namespace,
                                                              kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    tail = await kyb("logs", "web", "--tail", "2", "-n", namespace)
    assert tail.out == "web/main: line 3\nweb/main: line 4\n"
    previous = await kyb("logs", "web", "--previous", "-n", namespace)
    assert previous.out == "web/main: previous instance\n"
    stamped = await kyb("logs", "web", "--timestamps", "--tail=1", "-n", namespace)
    assert stamped.out == "2024-05-01T10:00:00.000000000Z web/main: line 4\n"
    since = await kyb("logs", "web", "--since", "5m", "--tail", "0", "-n", namespace)
    assert since.out == "since 300s\n"


async def test_cli_logs_chooses_a_container(kyb, client, namespace, kubelet_node):
    await _pod(client, namespace, "two", kubelet_node, "side")
    default = await kyb("logs", "two", "--tail", "1", "-n", namespace)
    assert default.out == "two/main: line 4\n"
    assert default.err == 'Defaulted container "main" out of: main, side\n'
    chosen = await kyb("logs", "two", "-c", "side", "--tail", "1", "-n", namespace)
    assert (chosen.out, chosen.err) == ("two/side: line 4\n", "")
    inline = await kyb("logs", "two", "side", "--tail", "1", "-n", namespace)
    assert inline.out == "two/side: line 4\n"
    wrong = await kyb("logs", "two", "-c", "nope", "-n", namespace)
    assert wrong.code == 1 and wrong.out == ""
    assert wrong.err.startswith("Error from server (Invalid): ")
    assert 'container "nope" is not valid for pod "two"' in wrong.err


async def test_cli_logs_of_a_deployment_uses_one_of_its_pods(kyb, client, namespace,
                                                             kubelet_node):
    await client.resource("deployments").create(objects.deployment("web", namespace, 2))
    await _pod(client, namespace, "web-pending", kubelet_node, labels={"app": "web"})
    await _pod(client, namespace, "web-running", kubelet_node, labels={"app": "web"},
               phase="Running")
    result = await kyb("logs", "deploy/web", "--tail", "1", "-n", namespace)
    assert result.code == 0, result.err
    assert result.out == "web-running/main: line 4\n"
    assert result.err == "Found 2 pods, using pod/web-running\n"


async def test_cli_logs_errors_are_one_line(kyb, client, namespace, kubelet_node):
    missing = await kyb("logs", "nope", "-n", namespace)
    assert (missing.code, missing.err) == (
        1, 'Error from server (NotFound): pods "nope" not found\n')
    await client.resource("pods").create(objects.pod("floating", namespace))
    unscheduled = await kyb("logs", "floating", "-n", namespace)
    assert unscheduled.code == 1 and unscheduled.err.count("\n") == 1
    assert 'pod "floating" does not have a host assigned' in unscheduled.err


async def _kyb_process(apiserver, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ctl.main", "--server", apiserver.address, *args,
        cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


async def test_cli_logs_follow_streams_until_ctrl_c(apiserver, client, namespace,
                                                    kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    proc = await _kyb_process(apiserver, "logs", "-f", "web", "--tail", "1", "-n", namespace)
    try:
        async def line() -> bytes:
            return await asyncio.wait_for(proc.stdout.readline(), 20)
        assert await line() == b"web/main: line 4\n"
        assert await line() == b"following\n"   # streamed while the call is still open
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (proc.returncode, out, err) == (130, b"", b"")


async def test_cli_logs_writes_bytes_untouched(apiserver, client, namespace, kubelet_node):
    await _pod(client, namespace, "bin", kubelet_node)
    proc = await _kyb_process(apiserver, "logs", "bin", "-n", namespace)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out, err) == (0, BINARY, b"")


# --- exec ------------------------------------------------------------------------------------


async def test_cli_exec_runs_the_command(kyb, client, namespace, kubelet_node):
    await _pod(client, namespace, "web", kubelet_node, "side")
    result = await kyb("exec", "web", "-n", namespace, "--", "ls", "-l", "--", "/")
    assert result.code == 0
    assert result.out == "web/main: ls -l -- /\n"
    assert result.err == 'Defaulted container "main" out of: main, side\n'
    side = await kyb("exec", "-n", namespace, "web", "-c", "side", "--", "hostname")
    assert (side.code, side.out, side.err) == (0, "web/side: hostname\n", "")


async def test_cli_exec_exits_with_the_commands_code(kyb, client, namespace, kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    result = await kyb("exec", "web", "-n", namespace, "--", "fail", "3")
    assert (result.code, result.out) == (3, "partial\n")
    assert result.err == "oops\ncommand terminated with exit code 3\n"


async def test_cli_exec_sends_stdin_with_i(kyb, client, namespace, kubelet_node, monkeypatch):
    await _pod(client, namespace, "web", kubelet_node)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello\nworld\n")))
    result = await kyb("exec", "-i", "web", "-n", namespace, "--", "cat")
    assert (result.code, result.out, result.err) == (0, "hello\nworld\n", "")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ignored")))
    quiet = await kyb("exec", "web", "-n", namespace, "--", "cat")
    assert (quiet.code, quiet.out) == (0, "")


async def test_cli_exec_stdin_through_a_real_pipe(apiserver, client, namespace, kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    proc = await _kyb_process(apiserver, "exec", "-i", "web", "-n", namespace, "--", "cat")
    out, err = await asyncio.wait_for(proc.communicate(BINARY), 30)
    assert (proc.returncode, out, err) == (0, BINARY, b"")
    proc = await _kyb_process(apiserver, "exec", "web", "-n", namespace, "--", "fail", "42")
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out) == (42, b"partial\n")


async def test_cli_exec_usage_errors(kyb, client, namespace, kubelet_node):
    await _pod(client, namespace, "web", kubelet_node)
    nothing = await kyb("exec", "web", "-n", namespace)
    assert (nothing.code, nothing.err) == (
        1, "error: you must specify at least one command for the container "
           "(kyb exec POD -- CMD [ARGS...])\n")
    missing = await kyb("exec", "nope", "-n", namespace, "--", "true")
    assert (missing.code, missing.err) == (
        1, 'Error from server (NotFound): pods "nope" not found\n')


# --- pure helpers (no server) ----------------------------------------------------------------


def _bare_pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool = False,
              restarts: int = 0, created: int = 100) -> core.Pod:
    pod = objects.pod(name, node=node)
    pod.status.phase = phase
    pod.metadata.creation_timestamp.seconds = created
    if ready:
        pod.status.conditions.add(type="Ready", status="True")
    pod.status.container_statuses.add(name="main", restart_count=restarts)
    return pod


def test_cli_logs_pick_pod_prefers_scheduled_running_ready_restarted_old():
    pick = logs.pick_pod
    assert pick([_bare_pod("a", node=""), _bare_pod("b")]).metadata.name == "b"
    assert pick([_bare_pod("a", phase="Pending"), _bare_pod("b")]).metadata.name == "b"
    assert pick([_bare_pod("a"), _bare_pod("b", ready=True)]).metadata.name == "b"
    assert pick([_bare_pod("a"), _bare_pod("b", restarts=2)]).metadata.name == "b"
    assert pick([_bare_pod("a", created=200), _bare_pod("b", created=100)]).metadata.name == "b"


def test_cli_logs_default_container_rules():
    pod = objects.pod("p")
    assert logs.default_container(pod, "") == ("main", None)
    pod.spec.containers.add(name="side")
    pod.spec.init_containers.add(name="setup")
    assert logs.default_container(pod, "") == (
        "main", 'Defaulted container "main" out of: main, side (init: setup)')
    assert logs.default_container(pod, "side") == ("side", None)
    pod.metadata.annotations[logs.DEFAULT_CONTAINER_ANNOTATION] = "side"
    assert logs.default_container(pod, "") == ("side", None)


def test_cli_logs_write_bytes_to_text_streams():
    raw = io.BytesIO()
    wrapped = io.TextIOWrapper(raw, encoding="utf-8")
    wrapped.write("text first ")
    logs.write_bytes(wrapped, b"\xffraw")
    assert raw.getvalue() == b"text first \xffraw"
    plain = io.StringIO()
    logs.write_bytes(plain, "é".encode())
    assert plain.getvalue() == "é"


@pytest.mark.parametrize(("argv", "command", "namespace"), [
    (["exec", "p", "--", "ls", "-l"], ["ls", "-l"], None),
    (["exec", "-i", "p", "-n", "x", "--", "sh", "-c", "echo -n"], ["sh", "-c", "echo -n"], "x"),
    (["-n", "z", "exec", "p", "--", "-n", "y", "--", "q"], ["-n", "y", "--", "q"], "z"),
    (["exec", "p", "true"], ["true"], None),
])
def test_cli_exec_command_is_everything_after_the_dash(argv, command, namespace):
    args = ctl.build_parser().parse_args(argv)
    assert (args.pod, args.command, args.namespace) == ("p", command, namespace)


def test_cli_exec_unparsed_words_before_the_dash_are_an_error(capsys):
    with contextlib.suppress(SystemExit):
        assert ctl.main(["exec", "p", "ls", "--", "x"]) == 1
    assert capsys.readouterr().err.startswith("error: unrecognized arguments: ls")


def test_cli_logs_and_exec_help_exit_zero(capsys):
    assert ctl.main(["logs", "--help"]) == 0
    assert ctl.main(["exec", "--help"]) == 0
    assert "CMD" in capsys.readouterr().out
