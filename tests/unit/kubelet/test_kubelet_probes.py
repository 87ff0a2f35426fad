from __future__ import annotations

import asyncio

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.probes import (
    LIVENESS, READINESS, STARTUP, ProbeManager, Prober, Result, http_get, resolve_port, tcp_open,
)
from services.machinery.clock import FakeClock


def pod_with(probe_field: str, *, delay=0, period=10, success=1, failure=3,
             extra: str | None = None) -> core.Pod:
    p = core.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "ns", "uid"
    p.spec.restart_policy = "Always"
    c = p.spec.containers.add(name="a", image="busybox")
    for field in filter(None, (probe_field, extra)):
        probe = getattr(c, field)
        probe.exec.command.append("check")
        probe.initial_delay_seconds, probe.period_seconds = delay, period
        probe.success_threshold, probe.failure_threshold = success, failure
    return p


def running_status(clock: FakeClock, cid: str = "c1", started: bool = True) -> core.PodStatus:
    s = core.PodStatus(phase="Running", pod_ip="10.0.0.5")
    cs = s.container_statuses.add(name="a", container_id=f"docker://{cid}", started=started)
    cs.state.running.started_at.FromDatetime(clock.wall())
    return s


class Script:
    """Probe outcomes in order (the last one repeats)."""

    def __init__(self, *results: Result):
        self.results = list(results)
        self.calls: list[str] = []

    async def __call__(self, probe, pod, container, cid, ip):
        self.calls.append(cid)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        return result, ""


async def tick(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    await clock.wait_for_sleepers(1)


async def test_probes_readiness_waits_initial_delay_then_needs_success_threshold():
    clock = FakeClock()
    changes: list[str] = []
    script = Script(Result.SUCCESS)
    m = ProbeManager(script, clock=clock, on_change=changes.append)
    p = pod_with("readiness_probe", delay=5, period=2, success=2)
    m.set_status("uid", running_status(clock))
    m.add_pod(p)
    await clock.wait_for_sleepers(1)
    assert script.calls == [] and m.readiness() == {"c1": False}   # initial: not ready
    await tick(clock, 2)
    await tick(clock, 2)
    assert script.calls == []                                       # t=4 < 5
    await tick(clock, 2)
    assert len(script.calls) == 1 and m.readiness() == {"c1": False}  # 1 of 2 successes
    await tick(clock, 2)
    assert len(script.calls) == 2 and m.readiness() == {"c1": True}
    assert changes.count("uid") >= 1
    await m.stop()


async def test_probes_liveness_failure_threshold_then_hold_until_new_container():
    clock = FakeClock()
    script = Script(Result.FAILURE)
    m = ProbeManager(script, clock=clock)
    m.set_status("uid", running_status(clock))
    m.add_pod(pod_with("liveness_probe", period=1, failure=3))
    await clock.wait_for_sleepers(1)
    assert m.failed(LIVENESS) == set()
    await tick(clock, 1)
    assert m.failed(LIVENESS) == set()         # two failures
    await tick(clock, 1)
    assert m.failed(LIVENESS) == {"c1"}        # three: the container must restart
    await tick(clock, 1)
    await tick(clock, 1)
    assert len(script.calls) == 3              # on hold meanwhile
    m.set_status("uid", running_status(clock, cid="c2"))
    script.results = [Result.SUCCESS]
    await tick(clock, 1)
    assert m.failed(LIVENESS) == set() and script.calls[-1] == "c2"
    assert "c1" not in m.results[LIVENESS]
    await m.stop()


async def test_probes_startup_gates_liveness_and_readiness():
    clock = FakeClock()
    script = Script(Result.SUCCESS)
    m = ProbeManager(script, clock=clock)
    p = pod_with("startup_probe", period=1, extra="liveness_probe")
    m.set_status("uid", running_status(clock, started=False))
    m.add_pod(p)
    await clock.wait_for_sleepers(2)
    assert m.started() == {"c1": True}
    assert script.calls == ["c1"]              # only the startup probe ran
    m.set_status("uid", running_status(clock, started=True))
    clock.advance(1)
    await clock.wait_for_sleepers(2)
    assert len(script.calls) == 2              # now liveness, not startup
    await m.stop()
    assert m.workers == {}


async def test_probes_not_running_container_reads_as_failure_and_stops_with_never():
    clock = FakeClock()
    m = ProbeManager(Script(Result.SUCCESS), clock=clock)
    p = pod_with("readiness_probe", period=1)
    p.spec.restart_policy = "Never"
    status = core.PodStatus(phase="Running")
    cs = status.container_statuses.add(name="a", container_id="docker://c1")
    cs.state.terminated.exit_code = 1
    m.set_status("uid", status)
    m.add_pod(p)
    for _ in range(10):
        await asyncio.sleep(0)
        if not m.workers:
            break
    assert m.workers == {}                      # the worker ended
    assert m.results[READINESS] == {}


async def test_probes_remove_pod_drops_workers_and_results():
    clock = FakeClock()
    m = ProbeManager(Script(Result.SUCCESS), clock=clock)
    m.set_status("uid", running_status(clock))
    m.add_pod(pod_with("readiness_probe", extra="startup_probe"))
    await clock.wait_for_sleepers(2)
    assert len(m.workers) == 2
    await m.remove_pod("uid")
    assert m.workers == {} and m.results[READINESS] == {} and m.results[STARTUP] == {}


async def _serve(handler):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_probes_http_get_and_tcp_against_a_real_socket():
    async def handler(reader, writer):
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        code = b"200 OK" if b"/ok" in line else b"500 Oops"
        writer.write(b"HTTP/1.1 " + code + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await _serve(handler)
    async with server:
        assert await http_get("127.0.0.1", port, "/ok") == 200
        assert await http_get("127.0.0.1", port, "/bad") == 500
        await tcp_open("127.0.0.1", port)
        p = core.Pod()
        c = p.spec.containers.add(name="a")
        c.ports.add(name="web", container_port=port)
        probe = core.Probe(timeout_seconds=1)
        probe.http_get.path = "/ok"
        probe.http_get.port.str_value = "web"
        prober = Prober(runtime=None)
        assert (await prober.probe(probe, p, c, "cid", "127.0.0.1"))[0] == Result.SUCCESS
        probe.http_get.path = "/bad"
        assert (await prober.probe(probe, p, c, "cid", "127.0.0.1"))[0] == Result.FAILURE
        tcp = core.Probe(timeout_seconds=1)
        tcp.tcp_socket.port.int_value = port
        assert (await prober.probe(tcp, p, c, "cid", "127.0.0.1"))[0] == Result.SUCCESS
    closed = core.Probe(timeout_seconds=1)
    closed.tcp_socket.port.int_value = port
    assert (await Prober(None).probe(closed, p, c, "cid", "127.0.0.1"))[0] == Result.FAILURE


def test_probes_resolve_port():
    c = core.Container(name="a")
    c.ports.add(name="http", container_port=8080)
    port = core.Probe().http_get.port
    port.int_value = 81
    assert resolve_port(port, c) == 81
    port.str_value = "http"
    assert resolve_port(port, c) == 8080
    port.str_value = "9090"
    assert resolve_port(port, c) == 9090
    port.str_value = "nope"
    with pytest.raises(ValueError):
        resolve_port(port, c)
