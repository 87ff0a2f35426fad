"""Test support: real processes (etcd, the API server) on free ports, and
polling helpers. No mocks of real parts."""
