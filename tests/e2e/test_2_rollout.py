"""Scaling and rolling updates of the web Deployment, with a client
requesting the Service from the host all along: a rolling update with a
readiness probe and ``maxUnavailable: 0`` must not fail a single request,
and neither must ``kyb rollout undo``."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from tests.e2e import workload
from tests.e2e.cluster import Cluster, http_get, pod_node
from tests.e2e.workload import NAME, REPLICAS, Web

# func_only: the session cluster's bring-up (in the first test's setup) has its own bounds.
pytestmark = pytest.mark.timeout(900, func_only=True)

V2 = "kyb/busybox:v2"
ROLLOUT_TIMEOUT = 240


@dataclasses.dataclass
class Failure:
    at: float           # seconds since the client started
    url: str
    error: str


class Client:
    """Requests ``urls`` in turn, one new connection each time, until
    stopped; counts answers and keeps every failure."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.ok = 0
        self.failures: list[Failure] = []
        self.answered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            url = self.urls[i % len(self.urls)]
            i += 1
            try:
                body = http_get(url, timeout=5)
                if not body:
                    raise OSError("empty response")
                self.ok += 1
                self.answered.add(body)
            except Exception as err:  # noqa: BLE001 - every failure is the finding
                self.failures.append(Failure(time.monotonic() - self._t0, url,
                                             f"{type(err).__name__}: {err}"))
            self._stop.wait(0.02)

    def report(self) -> str:
        lines = [f"{self.ok} ok, {len(self.failures)} failed"]
        lines += [f"  {f.at:7.2f}s {f.url}: {f.error}" for f in self.failures[:20]]
        return "\n".join(lines)


def urls(c: Cluster, web: Web) -> list[str]:
    """The ClusterIP (through the first node's kube-proxy, the host's route)
    and the NodePort on every node."""
    return [web.url] + [f"http://{c.node_ip(n)}:{web.node_port}/" for n in c.nodes]


def images(c: Cluster) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in workload.live_pods(c)}


def test_scale_to_6_and_back_to_2(e2e_cluster, healthy_web: Web):
    c = e2e_cluster
    try:
        c.kyb("scale", "deployment", NAME, "--replicas", "6")
        web = workload.wait_healthy(c, 6)
        assert {pod_node(p) for p in web.pods} == set(c.nodes)
        assert c.get_json("deployment", NAME)["status"].get("readyReplicas") == 6
        c.kyb("scale", "deployment", NAME, "--replicas", "2")
        web = workload.wait_healthy(c, 2, spread=False)
        assert len(web.pods) == 2
        active = [rs for rs in c.get_json("replicasets", "-l", workload.SELECTOR)["items"]
                  if rs["spec"].get("replicas")]
        assert len(active) == 1 and active[0]["spec"]["replicas"] == 2
    finally:
        c.kyb("scale", "deployment", NAME, "--replicas", str(REPLICAS))
    workload.wait_healthy(c, REPLICAS)


def test_rolling_update_and_undo_fail_no_request(e2e_cluster, healthy_web: Web):
    c = e2e_cluster
    c.docker("tag", workload.IMAGE, V2)
    try:
        c.cluster("load", V2)
    finally:
        c.docker("rmi", V2, check=False)  # the host's tag; the nodes keep their copy
    with Client(urls(c, healthy_web)) as client:
        c.apply(workload.manifest(image=V2))
        c.kyb("rollout", "status", f"deployment/{NAME}", "--timeout", f"{ROLLOUT_TIMEOUT}s",
              timeout=ROLLOUT_TIMEOUT + 30)
        updated = workload.wait_healthy(c, image=V2)
        assert images(c) == {V2}
        history = c.kyb("rollout", "history", f"deployment/{NAME}")
        revisions = [int(line.split()[0]) for line in history.splitlines()
                     if line[:1].isdigit()]
        assert len(revisions) >= 2, history

        c.kyb("rollout", "undo", f"deployment/{NAME}")
        c.kyb("rollout", "status", f"deployment/{NAME}", "--timeout", f"{ROLLOUT_TIMEOUT}s",
              timeout=ROLLOUT_TIMEOUT + 30)
        back = workload.wait_healthy(c, image=workload.IMAGE)
        assert images(c) == {workload.IMAGE}
    assert client.failures == [], client.report()
    # The client saw the old pods, the new ones and the ones after the undo.
    names = lambda w: {p["metadata"]["name"] for p in w.pods}  # noqa: E731
    assert client.answered & names(healthy_web) and client.answered & names(updated) \
        and client.answered & names(back), client.report()
    deployment = c.get_json("deployment", NAME)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == workload.IMAGE
    rs = c.get_json("replicasets", "-l", workload.SELECTOR)["items"]
    live = [r for r in rs if r["spec"].get("replicas")]
    assert len(live) == 1 and live[0]["spec"]["template"]["spec"]["containers"][0]["image"] \
        == workload.IMAGE
