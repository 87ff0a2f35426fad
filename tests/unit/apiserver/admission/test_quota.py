"""The pure core of ResourceQuota: what a pod uses, what a write changes,
and the refusals in Kubernetes' words."""

from __future__ import annotations

from fractions import Fraction

import grpc

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.admission import quota
from services.apiserver.watchcache import WatchCache
from services.api.kinds import BY_KIND
from tests.support import objects


def _pod(name: str = "web", *requests: dict[str, str], init: tuple[dict[str, str], ...] = (),
         phase: str = "Pending") -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, "ns"
    for i, req in enumerate(requests or ({},)):
        ctr = pod.spec.containers.add(name=f"c{i}", image="busybox")
        ctr.resources.requests.update(req)
    for i, req in enumerate(init):
        ctr = pod.spec.init_containers.add(name=f"i{i}", image="busybox")
        ctr.resources.requests.update(req)
    pod.status.phase = phase
    return pod


def _quota(name: str, hard: dict[str, str], used: dict[str, str] | None = None):
    q = objects.resource_quota(name, "ns", hard)
    q.status.hard.update(hard)
    q.status.used.update(used or {})
    return q


def test_pod_usage_sums_containers_under_both_names():
    pod = _pod("web", {"cpu": "250m", "memory": "64Mi"}, {"cpu": "0.5", "memory": "64Mi"})
    usage = quota.pod_usage(pod)
    assert usage == {"pods": 1, "cpu": Fraction(3, 4), "requests.cpu": Fraction(3, 4),
                     "memory": 128 * 2**20, "requests.memory": 128 * 2**20}


def test_pod_usage_takes_the_largest_init_container_over_the_sum():
    pod = _pod("web", {"cpu": "100m"}, {"cpu": "100m"}, init=({"cpu": "1"}, {"cpu": "300m"}))
    assert quota.pod_usage(pod)["requests.cpu"] == 1
    smaller = _pod("web", {"cpu": "600m"}, {"cpu": "600m"}, init=({"cpu": "1"},))
    assert quota.pod_usage(smaller)["cpu"] == Fraction(6, 5)


def test_pod_usage_without_requests_is_one_pod():
    assert quota.pod_usage(_pod()) == {"pods": 1}


def test_terminal_pods_hold_nothing():
    for phase in ("Succeeded", "Failed"):
        assert quota.charged(_pod("web", {"cpu": "1"}, phase=phase)) == {}
    assert quota.charged(None) == {}


def test_delta_of_create_delete_and_terminal_transition():
    running = _pod("web", {"cpu": "1"}, phase="Running")
    done = _pod("web", {"cpu": "1"}, phase="Succeeded")
    assert quota.delta(None, running) == {"pods": 1, "cpu": 1, "requests.cpu": 1}
    assert quota.delta(running, None) == {"pods": -1, "cpu": -1, "requests.cpu": -1}
    assert quota.delta(running, done) == {"pods": -1, "cpu": -1, "requests.cpu": -1}
    assert quota.delta(done, None) == {}
    bound = _pod("web", {"cpu": "1"}, phase="Running")
    bound.spec.node_name = "n1"
    assert quota.delta(running, bound) == {}  # most writes touch no quota


def test_refusal_names_exceeded_resources_like_kubernetes():
    q = _quota("q1", {"pods": "10"}, {"pods": "10"})
    assert quota.refusal(_pod(), [q]) == (
        "exceeded quota: q1, requested: pods=1, used: pods=10, limited: pods=10")
    assert quota.refusal(_pod(), [_quota("q1", {"pods": "10"}, {"pods": "9"})]) is None


def test_refusal_lists_only_what_is_exceeded():
    q = _quota("compute", {"pods": "5", "requests.cpu": "1", "requests.memory": "1Gi"},
               {"pods": "1", "requests.cpu": "800m", "requests.memory": "512Mi"})
    pod = _pod("web", {"cpu": "300m", "memory": "256Mi"})
    assert quota.refusal(pod, [q]) == (
        "exceeded quota: compute, requested: requests.cpu=300m, used: requests.cpu=800m, "
        "limited: requests.cpu=1")


def test_refusal_for_a_missing_request_comes_first():
    quotas = [_quota("b", {"pods": "0"}), _quota("a", {"cpu": "2", "memory": "1Gi"})]
    pod = _pod("web", {"cpu": "100m"}, {})
    assert quota.refusal(pod, quotas) == "failed quota: a: must specify cpu,memory"
    only_requests = [_quota("q", {"requests.memory": "1Gi"})]
    assert quota.refusal(_pod("web", {"cpu": "1"}), only_requests) == (
        "failed quota: q: must specify requests.memory")


def test_refusal_ignores_resources_the_pod_does_not_use():
    q = _quota("q", {"pods": "3"}, {"pods": "2"})
    assert quota.refusal(_pod("web", {"cpu": "5"}), [q]) is None


def test_charge_adds_to_used_for_limited_resources_only_and_never_below_zero():
    q = _quota("q", {"pods": "10", "memory": "1Gi"}, {"pods": "2", "memory": "128Mi"})
    out = quota.charge(q, {"pods": 1, "memory": 128 * 2**20, "cpu": 1})
    assert dict(out.status.used) == {"pods": "3", "memory": "256Mi"}
    assert dict(q.status.used) == {"pods": "2", "memory": "128Mi"}  # the input is unchanged
    drained = quota.charge(q, {"pods": -5})
    assert drained.status.used["pods"] == "0"


def test_set_status_counts_pods_that_count():
    q = objects.resource_quota("q", "ns", {"pods": "10", "requests.cpu": "4", "memory": "1Gi"})
    q.status.used["stale"] = "99"
    pods = [_pod("a", {"cpu": "500m", "memory": "100Mi"}), _pod("b", {"cpu": "1"}),
            _pod("c", {"cpu": "2"}, phase="Failed")]
    quota.set_status(q, pods)
    assert dict(q.status.hard) == {"pods": "10", "requests.cpu": "4", "memory": "1Gi"}
    assert dict(q.status.used) == {"pods": "2", "requests.cpu": "1500m", "memory": "100Mi"}


def test_used_of_an_empty_namespace_is_zero():
    assert quota.total_usage([], ["pods", "cpu", "memory"]) == {
        "pods": "0", "cpu": "0", "memory": "0"}


def test_format_value_picks_binary_for_memory_when_it_divides():
    assert quota.format_value("memory", Fraction(3 * 2**30)) == "3Gi"
    assert quota.format_value("requests.memory", Fraction(10**8)) == "100M"
    assert quota.format_value("cpu", Fraction(1, 10)) == "100m"
    assert quota.format_value("pods", Fraction(12)) == "12"


def test_forbidden_is_permission_denied_in_kubernetes_words():
    err = quota.forbidden("pods", "web", "exceeded quota: q1")
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert err.message == 'pods "web" is forbidden: exceeded quota: q1'


def test_objects_in_namespace_counts_namespaced_kinds_by_namespace():
    pods = WatchCache(BY_KIND["Pod"], storage=None)
    nodes = WatchCache(BY_KIND["Node"], storage=None)
    for key in (b"/registry/pods/a/x", b"/registry/pods/a/y", b"/registry/pods/ab/z"):
        pods.objects[key] = core.Pod()
        pods._count(key, 1)
    nodes.objects[b"/registry/nodes/a"] = core.Node()
    nodes._count(b"/registry/nodes/a", 1)
    assert quota.objects_in_namespace([pods, nodes], "a") == 2
    assert quota.objects_in_namespace([pods, nodes], "ab") == 1
    err = quota.too_many_objects("a", 2)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 'namespace "a"' in err.message and "limit of 2 objects" in err.message
