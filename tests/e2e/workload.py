"""The suite's workload: a Deployment of busybox httpd pods behind a NodePort
Service, and the checks that it is healthy.

Each pod serves ``/`` (its own name, so a response says which pod answered)
and ``/cgi-bin/peer`` (the caller's address as the pod saw it, to check that
pod-to-pod traffic keeps the sender's pod IP). httpd logs every request
(``-vv``) to the container's output, which ``kyb logs`` shows. The shell
traps SIGTERM and stops httpd, so a pod ends as soon as the kubelet asks
rather than waiting for its grace period's SIGKILL.

The rollout recipe is Kubernetes' zero-downtime one: a readiness probe, so
a new pod gets traffic only once it answers; ``maxUnavailable: 0``, so an
old pod goes only when a new one is Ready; and a preStop ``sleep``, so a
terminating pod keeps serving until every kube-proxy has taken it out of
its rules. The kubelet stops a container as soon as its pod is deleted,
while the endpoints controller and then each kube-proxy (which syncs at
most once per ``--min-sync-period``, 1 s) remove the pod's address
independently: measured here, the rules still sent new connections to a
stopped pod for about a second, as they would in Kubernetes without the
hook.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tests.e2e.cluster import Cluster, is_ready, pod_node, try_get, wait_until

NAME = "web"
SELECTOR = "app=web"
REPLICAS = 3
IMAGE = "kyb/busybox:latest"
HEALTHY_TIMEOUT = 180
# Longer than an Endpoints change takes to reach every node's iptables rules
# (about 1 s, the kube-proxy's --min-sync-period), with room for a busy machine.
PRE_STOP_SLEEP = 5

# $POD_NAME is the shell's (from the downward API); the kubelet expands only $(NAME).
SCRIPT = (
    "mkdir -p /www/cgi-bin && echo $POD_NAME > /www/index.html && "
    "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' "
    "> /www/cgi-bin/peer && chmod +x /www/cgi-bin/peer; "
    "httpd -f -vv -p 8080 -h /www & pid=$!; "
    "trap 'kill $pid; exit 0' TERM; wait $pid"
)

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: httpd
        image: {image}
        command: ["sh", "-c", {script}]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        ports:
        - {{name: http, containerPort: 8080}}
        readinessProbe:
          httpGet: {{path: /, port: http}}
          periodSeconds: 2
        lifecycle:
          preStop:
            exec: {{command: ["sleep", "{pre_stop}"]}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"""


def manifest(image: str = IMAGE, replicas: int = REPLICAS) -> str:
    return MANIFEST.format(name=NAME, replicas=replicas, image=image,
                           script=json.dumps(SCRIPT), pre_stop=PRE_STOP_SLEEP)


@dataclasses.dataclass
class Web:
    """The workload as seen once healthy."""

    pods: list[dict[str, Any]]
    cluster_ip: str
    node_port: int

    @property
    def by_name(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.pods}

    def on(self, node: str) -> list[dict[str, Any]]:
        return [p for p in self.pods if pod_node(p) == node]

    @property
    def url(self) -> str:
        return f"http://{self.cluster_ip}/"


def service(c: Cluster) -> tuple[str, int]:
    svc = c.get_json("service", NAME)
    port = svc["spec"]["ports"][0]
    return svc["spec"]["clusterIP"], int(port["nodePort"])


def live_pods(c: Cluster) -> list[dict[str, Any]]:
    """The workload's pods that are not being deleted."""
    return [p for p in c.pods(SELECTOR) if not p["metadata"].get("deletionTimestamp")]


def wait_healthy(c: Cluster, replicas: int = REPLICAS, *, image: str | None = None,
                 spread: bool = True, timeout: float = HEALTHY_TIMEOUT) -> Web:
    """Wait until the Deployment has exactly ``replicas`` pods, all Ready
    (and of ``image`` if given), none terminating, spread over every node
    (``spread``), and the Service answers from the host with one of them."""

    def settled() -> list[dict[str, Any]] | None:
        pods = c.pods(SELECTOR)
        if len(pods) != replicas or not all(is_ready(p) for p in pods):
            return None
        if image and any(p["spec"]["containers"][0]["image"] != image for p in pods):
            return None
        if spread and replicas >= len(c.nodes) and \
                {pod_node(p) for p in pods} != set(c.nodes):
            return None
        return pods

    pods = wait_until(settled, timeout,
                      f"{replicas} Ready {NAME} pods" + (" on every node" if spread else ""))
    cluster_ip, node_port = service(c)
    names = {p["metadata"]["name"] for p in pods}
    wait_until(lambda: try_get(f"http://{cluster_ip}/") in names, 60,
               f"the {NAME} Service answering at {cluster_ip} with one of {sorted(names)}")
    return Web(pods=pods, cluster_ip=cluster_ip, node_port=node_port)


def wait_spread(c: Cluster, replicas: int = REPLICAS) -> Web:
    """:func:`wait_healthy`, with pods on every node: if a rollout or a node
    failure left them all on one node (the scheduler spreads new pods, but
    nothing moves running ones, as in Kubernetes), delete one there so that
    its replacement lands on an empty node."""
    web = wait_healthy(c, replicas, spread=False)
    if {pod_node(p) for p in web.pods} == set(c.nodes):
        return web
    crowded = max(c.nodes, key=lambda n: len(web.on(n)))
    c.kyb("delete", "pod", web.on(crowded)[0]["metadata"]["name"], "--wait=false")
    return wait_healthy(c, replicas, spread=True)

