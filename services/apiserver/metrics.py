"""The API server's Prometheus metrics, named as kube-apiserver names them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "apiserver_request_total",
    "Requests by verb, resource and gRPC status code.",
    ["verb", "resource", "code"])
REQUEST_DURATION = Histogram(
    "apiserver_request_duration_seconds",
    "Request latency by verb and resource (watches: time to establish).",
    ["verb", "resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0))
REGISTERED_WATCHERS = Gauge(
    "apiserver_registered_watchers",
    "Watches open now, by resource.",
    ["resource"])
WATCH_EVENTS = Counter(
    "apiserver_watch_events_total",
    "Events sent to watchers, by resource.",
    ["resource"])
STORAGE_OBJECTS = Gauge(
    "apiserver_storage_objects",
    "Objects stored, by resource (from the watch cache).",
    ["resource"])
ETCD_REQUEST_DURATION = Histogram(
    "etcd_request_duration_seconds",
    "etcd call latency by operation and object kind.",
    ["operation", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0))
