"""The API's Python face: generated messages and stubs (gen/), the kind
registry, and Kubernetes-shaped JSON/YAML conversion."""
