"""kube-proxy's Prometheus metrics, with Kubernetes' names and meanings.

Defined once per process (prometheus_client's registry is global).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# kube-proxy's sync buckets: exponential from 1 ms, doubling, 15 of them.
_SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))

# kube-proxy's network programming buckets (0.25 s .. 5 min), with a few
# finer ones below 0.25 s, where this proxy aims to be.
_NPL_BUCKETS = tuple(sorted({0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                             *range(1, 60), *range(60, 120, 5), *range(120, 330, 30)}))

SYNC_DURATION = Histogram(
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds", buckets=_SYNC_BUCKETS)

SYNC_FULL_DURATION = Histogram(
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds for full resyncs", buckets=_SYNC_BUCKETS)

SYNC_PARTIAL_DURATION = Histogram(
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds for partial resyncs", buckets=_SYNC_BUCKETS)

LAST_SYNC = Gauge(
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "The last time proxy rules were successfully synced")

LAST_QUEUED = Gauge(
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
    "The last time a sync of proxy rules was queued")

NETWORK_PROGRAMMING = Histogram(
    "kubeproxy_network_programming_duration_seconds",
    "In Cluster Network Programming Latency in seconds", buckets=_NPL_BUCKETS)

IPTABLES_RULES = Gauge(
    "kubeproxy_sync_proxy_rules_iptables_total",
    "Total number of iptables rules owned by kube-proxy", ["table"])

RESTORE_FAILURES = Counter(
    "kubeproxy_iptables_restore_failures_total",
    "Cumulative proxy iptables restore failures")

ENDPOINT_CHANGES = Counter(
    "kubeproxy_sync_proxy_rules_endpoint_changes_total",
    "Cumulative proxy rules Endpoint changes")

SERVICE_CHANGES = Counter(
    "kubeproxy_sync_proxy_rules_service_changes_total",
    "Cumulative proxy rules Service changes")

__all__ = [
    "ENDPOINT_CHANGES", "IPTABLES_RULES", "LAST_QUEUED", "LAST_SYNC", "NETWORK_PROGRAMMING",
    "RESTORE_FAILURES", "SERVICE_CHANGES", "SYNC_DURATION", "SYNC_FULL_DURATION",
    "SYNC_PARTIAL_DURATION",
]
