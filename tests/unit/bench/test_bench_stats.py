"""The benchmarks' pure helpers: statistics, verdicts, tables, CPU parsing
and the load drivers (with an injected clock; nothing here is timed)."""

from __future__ import annotations

import asyncio
import itertools
import math
import os

import pytest

from tests.bench.common import (
    PacedRun, closed_loop, fmt_ms, fmt_num, fmt_rate, fmt_ratio, format_table, judge_step,
    next_sweep_rate, paced, parse_proc_stat_cpu, percentile, process_cpu_seconds, ranges,
    ratio, summarize,
)


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2], 50) == 1.5
    assert percentile([10, 20, 30, 40, 50], 25) == 20
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_ignores_input_order():
    assert percentile([5, 1, 4, 2, 3], 50) == 3


def test_percentile_extremes_are_min_and_max():
    values = [3.0, 9.0, 1.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 9.0


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.0], 99) == 7.0


def test_percentile_rejects_no_values_and_bad_p():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_gives_throughput_and_latency():
    s = summarize([0.001] * 98 + [0.5, 1.0], elapsed=2.0)
    assert s.count == 100
    assert s.throughput == 50
    assert s.p50 == 0.001
    assert s.p99 == pytest.approx(0.505)
    assert s.max == 1.0


def test_summarize_of_nothing_is_nan_not_an_error():
    s = summarize([], elapsed=1.0)
    assert s.count == 0 and s.throughput == 0
    assert math.isnan(s.p50) and math.isnan(s.p99)


def test_ratio_is_nan_when_undefined():
    assert ratio(1, 4) == 0.25
    assert math.isnan(ratio(1, 0))
    assert math.isnan(ratio(math.nan, 2))
    assert math.isnan(ratio(2, math.nan))


def test_formatters_show_units_and_dash_for_nan():
    assert fmt_ms(0.0123) == "12.3"
    assert fmt_ms(0.0123, 2) == "12.30"
    assert fmt_rate(12345.6) == "12,346"
    assert fmt_ratio(0.4567) == "0.46x"
    assert fmt_num(1.23456, 3) == "1.235"
    for fmt in (fmt_ms, fmt_rate, fmt_ratio, fmt_num):
        assert fmt(math.nan) == "-"


def test_format_table_aligns_columns():
    text = format_table(["name", "ops/s"], [["etcd", "5,000"], ["no-op gRPC", 300]],
                        title="T")
    assert text.splitlines() == [
        "T",
        "name        ops/s",
        "----------  -----",
        "etcd        5,000",
        "no-op gRPC    300",
    ]


def test_format_table_pads_short_rows():
    text = format_table(["a", "b", "c"], [["x"]])
    assert text.splitlines()[-1] == "x"
    assert len(text.splitlines()) == 3


def test_parse_proc_stat_cpu_sums_user_and_system_time():
    # The command name may hold spaces and parentheses; utime=250, stime=50.
    stat = ("1234 (python (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
            "3 0 5000 1000 200")
    assert parse_proc_stat_cpu(stat, 100) == 3.0


def test_process_cpu_seconds_reads_this_process_and_nan_for_a_gone_one():
    assert process_cpu_seconds(os.getpid()) >= 0
    assert math.isnan(process_cpu_seconds(2**22 + 12345))


def test_judge_step_passes_when_rate_reached_complete_and_fast():
    assert judge_step(200, 195, p99=0.1, missing=0, p99_limit=1.0) is None


def test_judge_step_fails_when_the_rate_is_not_reached():
    reason = judge_step(200, 145, p99=0.1, missing=0, p99_limit=1.0)
    assert reason is not None and "145/s of 200/s" in reason


def test_judge_step_fails_on_missing_events_then_on_slow_p99():
    assert "3 events missing" in judge_step(200, 200, p99=0.1, missing=3, p99_limit=1.0)
    assert "p99 1000.0 ms" in judge_step(200, 200, p99=1.0, missing=0, p99_limit=1.0)
    assert judge_step(200, 200, p99=math.nan, missing=0, p99_limit=1.0) is not None


def test_paced_run_achieved_rate_counts_completions():
    run = PacedRun(sent=[10.0, 10.5], latencies=[0.1, 0.5], errors=[], first_sent=10.0,
                   last_done=11.0)
    assert run.achieved_rate == 2.0


async def test_closed_loop_runs_every_operation_once_with_the_clock_given():
    seen = []

    async def op(i):
        seen.append(i)

    ticks = itertools.count()
    latencies, elapsed = await closed_loop(op, 50, concurrency=8, clock=lambda: next(ticks))
    assert sorted(seen) == list(range(50))
    assert latencies == [1] * 50  # each op read the clock twice, back to back
    assert elapsed > 0


async def test_closed_loop_keeps_concurrency_in_flight_and_no_more():
    in_flight = peak = 0

    async def op(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await asyncio.sleep(0)  # yield to the other workers
        in_flight -= 1

    await closed_loop(op, 100, concurrency=5)
    assert peak == 5


async def test_closed_loop_raises_the_first_error():
    async def op(i):
        if i == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await closed_loop(op, 10, concurrency=2)


async def test_paced_collects_errors_and_respects_max_in_flight():
    in_flight = peak = 0

    async def op(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        if i % 10 == 0:
            raise ValueError(f"bad {i}")

    ticks = itertools.count()
    run = await paced(op, 30, rate=1e12, max_in_flight=4, wall=lambda: float(next(ticks)))
    assert peak <= 4
    assert len(run.latencies) == 27
    assert sorted(run.errors) == ["ValueError: bad 0", "ValueError: bad 10", "ValueError: bad 20"]
    assert all(not math.isnan(t) for t in run.sent)
    assert run.first_sent == run.sent[0]


def test_next_sweep_rate_climbs_while_steps_pass():
    up = (200, 400, 800)
    assert next_sweep_rate([], up) == 200
    assert next_sweep_rate([(200, True)], up) == 400
    assert next_sweep_rate([(200, True), (400, True)], up) == 800
    assert next_sweep_rate([(200, True), (400, True), (800, True)], up) is None


def test_next_sweep_rate_stops_at_the_first_failure_after_a_pass():
    assert next_sweep_rate([(200, True), (400, False)], (200, 400, 800)) is None


def test_next_sweep_rate_halves_when_the_first_rate_fails_until_one_passes():
    up = (200, 400)
    assert next_sweep_rate([(200, False)], up) == 100
    assert next_sweep_rate([(200, False), (100, False)], up) == 50
    assert next_sweep_rate([(200, False), (100, True)], up) is None
    assert next_sweep_rate([(200, False), (100, False), (50, False)], up, floor=25) == 25
    assert next_sweep_rate([(200, False), (100, False), (50, False), (25, False)], up,
                           floor=25) is None


def test_ranges_compacts_runs_of_integers():
    assert ranges([9, 3, 4, 5, 5, 12, 13]) == "3-5, 9, 12-13"
    assert ranges([]) == ""
    assert ranges([1, 3, 5, 7], limit=2) == "1, 3, ... (2 more ranges)"
