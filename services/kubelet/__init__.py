"""The kubelet: registers its node, runs the pods bound to it through a
container runtime, probes them and reports their status."""
