"""The kubelet's Prometheus metrics, with Kubernetes' names.

Runtime calls are counted and timed by :class:`InstrumentedRuntime`, a
proxy that wraps any runtime (kubelet_runtime_operations_total,
_errors_total, _duration_seconds by operation_type, named as the CRI calls
are). Running pods and containers are gauges read at scrape time from every
kubelet in the process (hollow mode runs many), through one collector.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

OPERATIONS = Counter("kubelet_runtime_operations_total",
                     "Cumulative number of runtime operations by operation type.",
                     ["operation_type"])
ERRORS = Counter("kubelet_runtime_operations_errors_total",
                 "Cumulative number of runtime operation errors by operation type.",
                 ["operation_type"])
DURATION = Histogram("kubelet_runtime_operations_duration_seconds",
                     "Duration in seconds of runtime operations. Broken down by operation type.",
                     ["operation_type"],
                     buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
POD_START = Histogram("kubelet_pod_start_duration_seconds",
                      "Duration in seconds from kubelet seeing a pod for the first time to "
                      "the pod starting to run",
                      buckets=(.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300))
SYNC_DURATION = Histogram("kubelet_pod_worker_duration_seconds",
                          "Duration in seconds to sync a single pod.", ["operation_type"],
                          buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))

# CRI method names, as Kubernetes labels its runtime operations.
OPERATION_TYPES = {
    "version": "version",
    "image_status": "image_status",
    "pull_image": "pull_image",
    "run_sandbox": "run_podsandbox",
    "stop_sandbox": "stop_podsandbox",
    "remove_sandbox": "remove_podsandbox",
    "list_sandboxes": "list_podsandbox",
    "create_container": "create_container",
    "start_container": "start_container",
    "stop_container": "stop_container",
    "remove_container": "remove_container",
    "list_containers": "list_containers",
    "container_status": "container_status",
    "exec": "exec_sync",
    "logs": "container_logs",
}


class InstrumentedRuntime:
    """Wraps a runtime; every call counts in the operation metrics."""

    def __init__(self, runtime: Any):
        self._runtime = runtime
        self.name = runtime.name

    @property
    def wrapped(self) -> Any:
        return self._runtime

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._runtime, attr)
        op = OPERATION_TYPES.get(attr)
        if op is None or not callable(target):
            return target
        if attr == "logs":
            return self._wrap_stream(op, target)
        return self._wrap(op, target)

    @staticmethod
    def _wrap(op: str, target: Callable[..., Any]) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            OPERATIONS.labels(op).inc()
            started = time.perf_counter()
            try:
                return await target(*args, **kwargs)
            except Exception:
                ERRORS.labels(op).inc()
                raise
            finally:
                DURATION.labels(op).observe(time.perf_counter() - started)
        return call

    @staticmethod
    def _wrap_stream(op: str, target: Callable[..., AsyncIterator[bytes]]
                     ) -> Callable[..., AsyncIterator[bytes]]:
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
            OPERATIONS.labels(op).inc()
            try:
                async for chunk in target(*args, **kwargs):
                    yield chunk
            except Exception:
                ERRORS.labels(op).inc()
                raise
        return stream


class _Stats:
    """Every live kubelet's counts, summed at scrape time."""

    def __init__(self) -> None:
        self.sources: dict[int, Callable[[], tuple[int, dict[str, int]]]] = {}

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        pods = 0
        containers: dict[str, int] = {}
        for source in list(self.sources.values()):
            n, by_state = source()
            pods += n
            for state, count in by_state.items():
                containers[state] = containers.get(state, 0) + count
        yield GaugeMetricFamily("kubelet_running_pods",
                                "Number of pods that have a running pod sandbox", value=pods)
        family = GaugeMetricFamily("kubelet_running_containers",
                                   "Number of containers currently running",
                                   labels=["container_state"])
        for state in ("created", "running", "exited", "unknown"):
            family.add_metric([state], containers.get(state, 0))
        yield family


_STATS = _Stats()
REGISTRY.register(_STATS)


def register_source(owner: object, source: Callable[[], tuple[int, dict[str, int]]]) -> None:
    """Count ``source()`` — ``(running pods, containers by state)`` — in the gauges."""
    _STATS.sources[id(owner)] = source


def unregister_source(owner: object) -> None:
    _STATS.sources.pop(id(owner), None)


__all__ = ["DURATION", "ERRORS", "InstrumentedRuntime", "OPERATIONS", "POD_START",
           "SYNC_DURATION", "register_source", "unregister_source"]
