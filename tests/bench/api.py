"""API request benchmark: pod creates through the API server, beside two
references measured in the same run with the same client concurrency.

(1) raw etcd puts through aetcd: the storage floor the API server sits on;
(2) a no-op grpc.aio echo server in its own process: the cost of a Python
    gRPC round trip with nothing behind it;
(3) pod creates through :class:`services.machinery.Client`;
(4) the same creates against a secured API server (mutual TLS, RBAC as a
    user bound to ``edit`` in the namespace, NodeRestriction, audit log):
    (4)/(3) is what the security pipeline costs.

Client and servers are separate processes, so none shares a GIL with another.
Besides throughput and latency it prints the CPU each process spent per
operation, which says where the time of a create goes.

Run ``python -m tests.bench api --help``. With ``--echo-server PORT`` this
module is the echo server itself (the benchmark starts it so).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import pathlib
import signal
import sys
import tempfile

import aetcd
import grpc

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import Client
from services.machinery import channel as channels
from tests.bench.common import (
    CpuMeter, ModuleServer, Summary, closed_loop, fmt_ms, fmt_num, fmt_rate, fmt_ratio,
    format_table, ratio, summarize,
)
from services.machinery.errors import ApiError
from tests.support import objects
from tests.support.pki import TestPki
from tests.support.processes import ApiServerProcess, EtcdProcess

ECHO_METHOD = "/kybernetes.bench.Echo/Echo"
NAMESPACE = "bench-api"
# From the issue: creates at no less than half the no-op server's throughput.
TARGET_CREATE_VS_NOOP = 0.5


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    count: int = 3000
    concurrency: int = 32
    warmup: int = 200
    value_bytes: int = 300


@dataclasses.dataclass(frozen=True)
class Measured:
    """One measured workload and the CPU seconds each process spent on it."""

    name: str
    summary: Summary
    cpu: dict[str, float]

    def cpu_ms_per_op(self, process: str) -> float:
        used = self.cpu.get(process, math.nan)
        return ratio(used * 1000, self.summary.count)


# -- the echo server (runs in its own process) ---------------------------------------


async def serve_echo(port: int) -> None:
    """A grpc.aio server whose one method returns the request bytes untouched."""
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server(options=channels.SERVER_OPTIONS)
    service, method = ECHO_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(echo)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def echo_server(workdir: pathlib.Path) -> ModuleServer:
    return ModuleServer("tests.bench.api", "--echo-server", workdir)


# -- the three workloads ---------------------------------------------------------------


async def _measure(name: str, op, config: ApiConfig, pids: dict[str, int]) -> Measured:
    await closed_loop(lambda i: op(-1 - i), config.warmup, config.concurrency)
    meter = CpuMeter({"client": 0, **pids})
    meter.start()
    latencies, elapsed = await closed_loop(op, config.count, config.concurrency)
    return Measured(name, summarize(latencies, elapsed), meter.stop())


async def bench_etcd(etcd: EtcdProcess, config: ApiConfig) -> Measured:
    host, _, port = etcd.endpoint.rpartition(":")
    value = b"v" * config.value_bytes
    client = aetcd.Client(host, int(port))
    await client.connect()
    try:
        async def put(i: int) -> None:
            await client.put(f"/bench/puts/{i:08d}".encode(), value)
        return await _measure("(1) etcd put (aetcd)", put, config, {"etcd": etcd.proc.pid})
    finally:
        await client.close()


async def bench_echo(echo: ModuleServer, config: ApiConfig) -> Measured:
    chan = channels.insecure_channel(echo.address)
    try:
        call = chan.unary_unary(ECHO_METHOD, request_serializer=core.Pod.SerializeToString,
                                response_deserializer=core.Pod.FromString)

        async def echo_pod(i: int) -> None:
            await call(objects.pod(f"p-{i:08d}", NAMESPACE), timeout=10)
        return await _measure("(2) no-op gRPC echo", echo_pod, config,
                              {"server": echo.proc.pid})
    finally:
        await chan.close()


async def bench_creates(apiserver: ApiServerProcess, etcd: EtcdProcess,
                        config: ApiConfig) -> Measured:
    async with Client([apiserver.address]) as client:
        await client.resource("namespaces").create(objects.namespace(NAMESPACE))
        pods = client.resource("pods")

        async def create(i: int) -> None:
            name = f"p-{i:08d}" if i >= 0 else f"warmup-{-i:08d}"
            await pods.create(objects.pod(name, NAMESPACE))
        return await _measure("(3) API server pod create", create, config,
                              {"server": apiserver.proc.pid, "etcd": etcd.proc.pid})


async def bench_secure_creates(apiserver: ApiServerProcess, pki: TestPki, etcd: EtcdProcess,
                               config: ApiConfig) -> Measured:
    namespace = NAMESPACE + "-secure"
    async with Client(config=pki.config(apiserver.address, "kubernetes-admin",
                                        ("system:masters",))) as admin:
        await admin.resource("namespaces").create(objects.namespace(namespace))
        await admin.resource("rolebindings").create(
            objects.role_binding("bench-edit", namespace, role_kind="ClusterRole",
                                 role_name="edit", subjects=[objects.subject("User", "bench")]))
    async with Client(config=pki.config(apiserver.address, "bench")) as client:
        pods = client.resource("pods")
        for _ in range(100):  # the binding reaches the authorizer through the watch cache
            try:
                await pods.list(namespace, limit=1)
                break
            except ApiError:
                await asyncio.sleep(0.05)

        async def create(i: int) -> None:
            name = f"p-{i:08d}" if i >= 0 else f"warmup-{-i:08d}"
            await pods.create(objects.pod(name, namespace))
        return await _measure("(4) secured pod create (mTLS, RBAC, audit)", create, config,
                              {"server": apiserver.proc.pid, "etcd": etcd.proc.pid})


# -- report ----------------------------------------------------------------------------


def report(results: list[Measured], config: ApiConfig) -> str:
    etcd, echo, creates, secure = results
    rows = []
    for m in results:
        s = m.summary
        rows.append([m.name, fmt_rate(s.throughput), fmt_ms(s.p50, 2), fmt_ms(s.p99, 2),
                     fmt_num(m.cpu_ms_per_op("client"), 3),
                     fmt_num(m.cpu_ms_per_op("server"), 3),
                     fmt_num(m.cpu_ms_per_op("etcd"), 3)])
    table = format_table(
        ["workload", "ops/s", "p50 ms", "p99 ms", "client CPU ms/op", "server CPU ms/op",
         "etcd CPU ms/op"], rows,
        title=f"API requests: {config.count} ops each, {config.concurrency} in flight "
              f"from one asyncio client process")
    vs_etcd = ratio(creates.summary.throughput, etcd.summary.throughput)
    vs_echo = ratio(creates.summary.throughput, echo.summary.throughput)
    verdict = ("-" if math.isnan(vs_echo) else
               "met" if vs_echo >= TARGET_CREATE_VS_NOOP else "MISSED")
    ratios = format_table(
        ["throughput ratio", "measured", "target", "verdict"],
        [["(3)/(1) creates vs etcd puts", fmt_ratio(vs_etcd), "-", "-"],
         ["(3)/(2) creates vs no-op gRPC", fmt_ratio(vs_echo),
          f">= {fmt_ratio(TARGET_CREATE_VS_NOOP)}", verdict],
         ["(4)/(3) secured vs plaintext creates",
          fmt_ratio(ratio(secure.summary.throughput, creates.summary.throughput)), "-", "-"]])
    return f"{table}\n\n{ratios}"


async def run_async(config: ApiConfig, workdir: pathlib.Path) -> str:
    etcd = EtcdProcess(workdir / "etcd")
    apiserver = secure = echo = None
    (workdir / "etcd").mkdir()
    try:
        etcd.start()
        echo = echo_server(workdir)
        echo.start()
        (workdir / "apiserver").mkdir()
        apiserver = ApiServerProcess(workdir / "apiserver", etcd.endpoint)
        apiserver.start()
        pki = TestPki(workdir / "pki")
        (workdir / "secure").mkdir()
        secure = ApiServerProcess(workdir / "secure", etcd.endpoint, extra_args=[
            *pki.apiserver_args(), "--max-requests-per-second-per-user", "0"])
        secure.start()
        results = [await bench_etcd(etcd, config), await bench_echo(echo, config),
                   await bench_creates(apiserver, etcd, config),
                   await bench_secure_creates(secure, pki, etcd, config)]
    finally:
        for proc in (apiserver, secure, echo, etcd):
            if proc is not None:
                proc.stop()
    return report(results, config)


def run(config: ApiConfig) -> None:
    """Start etcd, the echo server and the API server, measure, print, clean up."""
    with tempfile.TemporaryDirectory(prefix="kyb-bench-api-") as tmp:
        print(asyncio.run(run_async(config, pathlib.Path(tmp))), flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ApiConfig()
    p.add_argument("--count", type=int, default=None,
                   help=f"operations per workload (default {d.count}; 1000 with --quick)")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help="requests in flight from the client (default %(default)s)")
    p.add_argument("--warmup", type=int, default=None,
                   help=f"unmeasured operations first (default {d.warmup}; 50 with --quick)")


def config_from(opts: argparse.Namespace) -> ApiConfig:
    quick = getattr(opts, "quick", False)
    for flag in ("count", "concurrency", "warmup"):
        value = getattr(opts, flag)
        if value is not None and value < (0 if flag == "warmup" else 1):
            raise ValueError(f"--{flag} must be positive")
    return ApiConfig(
        count=opts.count if opts.count is not None else (1000 if quick else ApiConfig.count),
        concurrency=opts.concurrency,
        warmup=opts.warmup if opts.warmup is not None else (50 if quick else ApiConfig.warmup))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--echo-server":
        asyncio.run(serve_echo(int(sys.argv[2])))
    else:
        from tests.bench.__main__ import main
        sys.exit(main(["api", *sys.argv[1:]]))
