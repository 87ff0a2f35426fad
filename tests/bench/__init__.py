"""Benchmarks run by ``make bench`` (``python -m tests.bench``), never by ``make test``.

Each starts its own real etcd and API server, measures, prints figures beside
a reference measured in the same run, and cleans up. Nothing here asserts on
wall-clock time.
"""
