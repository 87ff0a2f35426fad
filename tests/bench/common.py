"""Shared benchmark helpers: statistics, closed-loop and paced load, CPU
accounting of processes, and plain-text tables.

The statistics and formatting are pure so they can be unit-tested; the load
drivers take an injectable clock. Benchmarks print figures beside a reference
measured in the same run and never assert on wall-clock time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from tests.support.processes import REPO, free_port, wait_for_port

Clock = Callable[[], float]


# -- statistics ---------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ``values``, interpolating linearly
    between closest ranks (numpy's default), so p50 of [1, 2] is 1.5."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """Throughput and latency of one measured run (latencies in seconds)."""

    count: int
    elapsed: float
    p50: float
    p99: float
    max: float

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else math.nan


def summarize(latencies: Sequence[float], elapsed: float) -> Summary:
    """Summarise ``latencies`` (seconds) of operations that took ``elapsed`` in all."""
    if not latencies:
        return Summary(0, elapsed, math.nan, math.nan, math.nan)
    return Summary(len(latencies), elapsed, percentile(latencies, 50),
                   percentile(latencies, 99), max(latencies))


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when that is undefined."""
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


# -- formatting ----------------------------------------------------------------------


def fmt_ms(seconds: float, digits: int = 1) -> str:
    """Seconds shown as milliseconds ("-" for NaN)."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.{digits}f}"


def fmt_num(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_rate(per_second: float) -> str:
    return "-" if math.isnan(per_second) else f"{per_second:,.0f}"


def fmt_ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                 title: str = "") -> str:
    """A plain-text table: the first column left-aligned, the others right-
    aligned (they are numbers), columns two spaces apart, a rule under the
    header. Cells are shown with ``str``."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    width = max(len(row) for row in cells)
    for row in cells:
        row.extend([""] * (width - len(row)))
    widths = [max(len(row[i]) for row in cells) for i in range(width)]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


# -- CPU accounting ---------------------------------------------------------------------


def parse_proc_stat_cpu(stat: str, ticks_per_second: int) -> float:
    """CPU seconds (user + system) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may hold spaces, so the
    fields are counted from the last ")"; utime and stime are fields 14, 15.
    """
    rest = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(rest[11]), int(rest[12])
    return (utime + stime) / ticks_per_second


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (NaN if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return math.nan
    return parse_proc_stat_cpu(text, os.sysconf("SC_CLK_TCK"))


class CpuMeter:
    """CPU seconds that named processes spend between ``start`` and ``stop``
    (pid 0 means this process), to say where the time of a run went."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self, pid: int) -> float:
        return time.process_time() if pid == 0 else process_cpu_seconds(pid)

    def start(self) -> None:
        self._before = {name: self._now(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: self._now(pid) - self._before[name]
                     for name, pid in self.pids.items()}
        return self.used


# -- reference servers ------------------------------------------------------------------


class ModuleServer:
    """A reference server run as ``python -m <module> <flag> <port>`` in its
    own process (so it shares no GIL with the client), on a free port."""

    def __init__(self, module: str, flag: str, workdir: pathlib.Path):
        self.module, self.flag, self.workdir = module, flag, workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.workdir / f"{self.module}{self.flag}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, self.flag, str(self.port)],
            cwd=REPO, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, 30, self.proc, log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- load drivers ------------------------------------------------------------------------


async def closed_loop(op: Callable[[int], Awaitable[object]], count: int, concurrency: int,
                      clock: Clock = time.perf_counter) -> tuple[list[float], float]:
    """Run ``op(0) .. op(count - 1)`` with ``concurrency`` calls in flight.

    Returns each call's latency and the elapsed time of the whole run (both
    in the clock's units). The first error stops the run and is raised.
    """
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            started = clock()
            await op(i)
            latencies.append(clock() - started)

    began = clock()
    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, count))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return latencies, clock() - began


@dataclasses.dataclass(slots=True)
class PacedRun:
    """What a paced run did: when each call was sent and how long it took
    (``wall`` clock for send times, so other processes can compare)."""

    sent: list[float]
    latencies: list[float]
    errors: list[str]
    first_sent: float
    last_done: float

    @property
    def achieved_rate(self) -> float:
        """Calls completed per second, from the first send to the last completion."""
        return ratio(len(self.latencies), self.last_done - self.first_sent)


async def paced(op: Callable[[int], Awaitable[object]], count: int, rate: float, *,
                max_in_flight: int = 256, wall: Clock = time.time) -> PacedRun:
    """Start ``op(i)`` at ``i / rate`` seconds after the start (open loop),
    with at most ``max_in_flight`` outstanding: when the server cannot keep
    up the sender falls behind, and the achieved rate shows it.

    Errors are collected rather than raised so one failure does not hide
    the rest of the figures.
    """
    sent = [math.nan] * count
    latencies: list[float] = []
    errors: list[str] = []
    slots = asyncio.Semaphore(max_in_flight)
    last_done = 0.0

    async def one(i: int) -> None:
        nonlocal last_done
        try:
            sent[i] = wall()
            await op(i)
            last_done = wall()
            latencies.append(last_done - sent[i])
        except Exception as err:  # noqa: BLE001 - reported in the figures
            errors.append(f"{type(err).__name__}: {err}")
        finally:
            slots.release()

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    first = sent[0] if count else math.nan
    return PacedRun(sent, latencies, errors, first, last_done)


# -- verdicts -------------------------------------------------------------------------------


def judge_step(target_rate: float, achieved_rate: float, p99: float, missing: int,
               p99_limit: float, reach: float = 0.9) -> str | None:
    """Why a step of a rate sweep failed, or None if it passed.

    A step passes when the load generator reached ``reach`` of its target
    rate (else the figure says nothing about the server), no watcher missed
    an event, and delivery p99 stayed under ``p99_limit`` seconds.
    """
    if math.isnan(achieved_rate) or achieved_rate < reach * target_rate:
        return f"creates completed at only {fmt_rate(achieved_rate)}/s of {fmt_rate(target_rate)}/s"
    if missing:
        return f"{missing} events missing"
    if math.isnan(p99) or p99 >= p99_limit:
        return f"delivery p99 {fmt_ms(p99)} ms >= {fmt_ms(p99_limit, 0)} ms"
    return None


def next_sweep_rate(results: Sequence[tuple[int, bool]], upward: Sequence[int],
                    floor: int = 25) -> int | None:
    """The next rate to try in a sweep, given (rate, passed) so far; None: done.

    Climb ``upward`` while steps pass and stop at the first failure. If the
    very first rate already fails, halve it until a rate passes (or the
    ``floor`` is reached), so the sweep still finds what the server sustains.
    """
    if not results:
        return upward[0] if upward else None
    last_rate, last_ok = results[-1]
    if last_ok:
        if any(not ok for _, ok in results):
            return None  # found searching down
        higher = [r for r in upward if r > last_rate]
        return higher[0] if higher else None
    if any(ok for _, ok in results):
        return None
    half = last_rate // 2
    return half if half >= floor else None


def ranges(numbers: Sequence[int], limit: int = 10) -> str:
    """Integers as compact ranges ("3-5, 9"), at most ``limit`` ranges shown."""
    spans: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], n)
        else:
            spans.append((n, n))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:limit]]
    if len(spans) > limit:
        shown.append(f"... ({len(spans) - limit} more ranges)")
    return ", ".join(shown)
