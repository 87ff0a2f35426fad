"""Kybernetes: the Kubernetes architecture as Python gRPC microservices."""
