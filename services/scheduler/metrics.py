"""The scheduler's Prometheus metrics, with kube-scheduler's names.

Defined once per process (prometheus_client's registry is global); the
queue-length gauge reads the live queue through a callback so it costs
nothing per queue change.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# kube-scheduler's buckets: exponential from 1 ms, doubling, 15 of them.
_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))

SCHEDULED = "scheduled"
UNSCHEDULABLE = "unschedulable"
ERROR = "error"

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could "
    "not be scheduled, while 'error' means an internal scheduler problem.",
    ["result", "profile"])

ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
    ["result", "profile"], buckets=_BUCKETS)

PENDING_PODS = Gauge(
    "scheduler_pending_pods",
    "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; "
    "'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in "
    "unschedulablePods.",
    ["queue"])

BINDING_DURATION = Histogram(
    "scheduler_binding_duration_seconds", "Binding latency in seconds", buckets=_BUCKETS)


def observe_attempt(result: str, profile: str, seconds: float) -> None:
    SCHEDULE_ATTEMPTS.labels(result=result, profile=profile).inc()
    ATTEMPT_DURATION.labels(result=result, profile=profile).observe(seconds)


def watch_queue(lengths: Callable[[], dict[str, int]]) -> None:
    """Report ``lengths()[queue]`` as scheduler_pending_pods{queue}."""
    for queue in ("active", "backoff", "unschedulable"):
        PENDING_PODS.labels(queue=queue).set_function(lambda q=queue: lengths()[q])


__all__ = [
    "ATTEMPT_DURATION", "BINDING_DURATION", "ERROR", "PENDING_PODS", "SCHEDULED",
    "SCHEDULE_ATTEMPTS", "UNSCHEDULABLE", "observe_attempt", "watch_queue",
]
