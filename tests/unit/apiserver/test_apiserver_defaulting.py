"""Defaulting: what the server fills in, per kind, and that it never overrides."""

from __future__ import annotations

import pytest

from services.api import kinds
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.defaulting import apply_defaults, pull_policy, set_api_version_and_kind
from services.apiserver.validation import validate


def _pod(**container) -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = "web", "default"
    pod.spec.containers.add(name="app", image="nginx:1.25", **container)
    return pod


# --- pods ---------------------------------------------------------------------------------


def test_defaults_pod_spec_fields():
    pod = _pod()
    apply_defaults(pod)
    spec = pod.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.dns_policy == "ClusterFirst"
    assert spec.scheduler_name == "default-scheduler"
    assert spec.containers[0].termination_message_path == "/dev/termination-log"
    assert pod.status.phase == "Pending"


def test_defaults_pod_keep_given_values():
    pod = _pod(image_pull_policy="Never", termination_message_path="/tmp/msg")
    pod.spec.restart_policy, pod.spec.dns_policy = "Never", "Default"
    pod.spec.termination_grace_period_seconds = 0
    pod.spec.scheduler_name = "mine"
    pod.status.phase = "Running"
    apply_defaults(pod)
    assert (pod.spec.restart_policy, pod.spec.dns_policy, pod.spec.scheduler_name) == \
        ("Never", "Default", "mine")
    assert pod.spec.termination_grace_period_seconds == 0
    assert pod.spec.containers[0].image_pull_policy == "Never"
    assert pod.spec.containers[0].termination_message_path == "/tmp/msg"
    assert pod.status.phase == "Running"


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("registry:5000/team/nginx", "Always"),
    ("registry:5000/team/nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/nginx:1.25", "IfNotPresent"),
    ("nginx@sha256:abcd", "IfNotPresent"),
])
def test_defaults_image_pull_policy_from_tag(image, policy):
    assert pull_policy(image) == policy
    pod = _pod()
    pod.spec.containers[0].image = image
    pod.spec.init_containers.add(name="init", image=image)
    apply_defaults(pod)
    assert pod.spec.containers[0].image_pull_policy == policy
    assert pod.spec.init_containers[0].image_pull_policy == policy


def test_defaults_container_ports_probes_and_resources():
    pod = _pod()
    ctr = pod.spec.containers[0]
    ctr.ports.add(container_port=80)
    ctr.liveness_probe.http_get.port.int_value = 80
    ctr.readiness_probe.tcp_socket.port.int_value = 80
    ctr.startup_probe.MergeFrom(core.Probe(exec=core.ExecAction(command=["true"]),
                                           period_seconds=2))
    ctr.resources.limits.update({"cpu": "1", "memory": "64Mi"})
    ctr.resources.requests["cpu"] = "100m"
    apply_defaults(pod)
    assert ctr.ports[0].protocol == "TCP"
    live = ctr.liveness_probe
    assert (live.timeout_seconds, live.period_seconds, live.success_threshold,
            live.failure_threshold) == (1, 10, 1, 3)
    assert (live.http_get.scheme, live.http_get.path) == ("HTTP", "/")
    assert ctr.readiness_probe.period_seconds == 10
    assert ctr.startup_probe.period_seconds == 2
    assert dict(ctr.resources.requests) == {"cpu": "100m", "memory": "64Mi"}


def test_defaults_host_network_host_ports():
    pod = _pod()
    pod.spec.host_network = True
    pod.spec.containers[0].ports.add(container_port=8080)
    apply_defaults(pod)
    assert pod.spec.containers[0].ports[0].host_port == 8080


def test_defaults_volume_without_source_is_empty_dir():
    pod = _pod()
    pod.spec.volumes.add(name="scratch")
    apply_defaults(pod)
    assert pod.spec.volumes[0].HasField("empty_dir")


def test_defaults_not_ready_and_unreachable_tolerations():
    pod = _pod()
    apply_defaults(pod)
    tols = {(t.key, t.operator, t.effect, t.toleration_seconds) for t in pod.spec.tolerations}
    assert tols == {("node.kubernetes.io/not-ready", "Exists", "NoExecute", 300),
                    ("node.kubernetes.io/unreachable", "Exists", "NoExecute", 300)}


def test_defaults_tolerations_respect_existing_ones():
    pod = _pod()
    pod.spec.tolerations.add(key="node.kubernetes.io/not-ready", operator="Exists",
                             effect="NoExecute", toleration_seconds=10)
    apply_defaults(pod)
    assert [t.key for t in pod.spec.tolerations] == ["node.kubernetes.io/not-ready",
                                                     "node.kubernetes.io/unreachable"]
    assert pod.spec.tolerations[0].toleration_seconds == 10
    everything = _pod()
    everything.spec.tolerations.add(operator="Exists")
    apply_defaults(everything)
    assert len(everything.spec.tolerations) == 1


def test_defaults_are_idempotent_and_validate():
    pod = _pod()
    pod.spec.containers[0].liveness_probe.http_get.port.int_value = 80
    apply_defaults(pod)
    once = pod.SerializeToString(deterministic=True)
    apply_defaults(pod)
    assert pod.SerializeToString(deterministic=True) == once
    assert validate(pod) == []


# --- services -----------------------------------------------------------------------------


def test_defaults_service():
    svc = core.Service()
    svc.spec.ports.add(port=80)
    svc.spec.ports.add(port=443, protocol="UDP").target_port.str_value = "https"
    apply_defaults(svc)
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    assert not svc.spec.session_affinity_config.HasField("client_ip")
    assert [p.protocol for p in svc.spec.ports] == ["TCP", "UDP"]
    assert svc.spec.ports[0].target_port.int_value == 80
    assert svc.spec.ports[1].target_port.str_value == "https"


def test_defaults_service_client_ip_timeout():
    svc = core.Service()
    svc.spec.session_affinity = "ClientIP"
    apply_defaults(svc)
    assert svc.spec.session_affinity_config.client_ip.timeout_seconds == 10800


# --- workloads ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [apps.ReplicaSet, apps.Deployment])
def test_defaults_workload_replicas_and_template(cls):
    obj = cls()
    obj.spec.template.spec.containers.add(name="app", image="nginx")
    apply_defaults(obj)
    assert obj.spec.replicas == 1
    tmpl = obj.spec.template.spec
    assert tmpl.restart_policy == "Always"
    assert tmpl.containers[0].image_pull_policy == "Always"
    assert list(tmpl.tolerations) == []  # admission defaults apply to pods, not templates
    assert not obj.spec.selector.match_labels


@pytest.mark.parametrize("cls", [apps.ReplicaSet, apps.Deployment])
def test_defaults_workload_keeps_zero_replicas(cls):
    obj = cls()
    obj.spec.replicas = 0
    apply_defaults(obj)
    assert obj.spec.replicas == 0


def test_defaults_deployment_strategy_and_limits():
    dep = apps.Deployment()
    apply_defaults(dep)
    assert dep.spec.strategy.type == "RollingUpdate"
    ru = dep.spec.strategy.rolling_update
    assert (ru.max_unavailable.str_value, ru.max_surge.str_value) == ("25%", "25%")
    assert dep.spec.revision_history_limit == 10
    assert dep.spec.progress_deadline_seconds == 600


def test_defaults_deployment_keeps_given_strategy():
    dep = apps.Deployment()
    dep.spec.strategy.type = "Recreate"
    dep.spec.revision_history_limit = 0
    apply_defaults(dep)
    assert not dep.spec.strategy.HasField("rolling_update")
    assert dep.spec.revision_history_limit == 0
    rolling = apps.Deployment()
    rolling.spec.strategy.rolling_update.max_surge.int_value = 0
    apply_defaults(rolling)
    assert rolling.spec.strategy.rolling_update.max_surge.int_value == 0
    assert rolling.spec.strategy.rolling_update.max_unavailable.str_value == "25%"


# --- namespaces, nodes, others ------------------------------------------------------------


def test_defaults_namespace_phase_and_finalizer():
    ns = core.Namespace()
    apply_defaults(ns)
    assert ns.status.phase == "Active"
    assert list(ns.spec.finalizers) == ["kubernetes"]
    apply_defaults(ns)
    assert list(ns.spec.finalizers) == ["kubernetes"]


def test_defaults_terminating_namespace_keeps_finalizers_removed():
    ns = core.Namespace()
    ns.metadata.deletion_timestamp.FromSeconds(10)
    apply_defaults(ns)
    assert list(ns.spec.finalizers) == []
    assert ns.status.phase == "Terminating"


def test_defaults_node_and_lease_unchanged():
    node = core.Node()
    node.metadata.name = "n1"
    before = node.SerializeToString()
    apply_defaults(node)
    assert node.SerializeToString() == before
    assert list(node.spec.taints) == []
    lease = coordination.Lease()
    apply_defaults(lease)
    assert lease == coordination.Lease()


@pytest.mark.parametrize("kind", kinds.KINDS, ids=lambda k: k.kind)
def test_set_api_version_and_kind(kind):
    obj = kind.message()
    set_api_version_and_kind(obj)
    assert (obj.api_version, obj.kind) == (kind.api_version, kind.kind)


def test_defaults_endpoints_port_protocol_tcp():
    from services.api.gen.kybernetes.core.v1 import types_pb2 as core
    ep = core.Endpoints()
    ep.subsets.add().ports.add(name="http", port=80)
    apply_defaults(ep)
    assert ep.subsets[0].ports[0].protocol == "TCP"
