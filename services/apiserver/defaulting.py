"""Defaults the API server fills in before validating, as Kubernetes'
SetDefaults_* functions (and the DefaultTolerationSeconds admission plugin)
do, so that every stored object is complete and every reader sees the same
thing whatever the writer left out.

Defaulting is idempotent and never overrides a value the writer gave: the
server runs it on every create and update.
"""

from __future__ import annotations

from typing import Any

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core

DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_TERMINATION_GRACE_SECONDS = 30
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_TOLERATION_SECONDS = 300
CLIENT_IP_TIMEOUT_SECONDS = 10800
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NAMESPACE_FINALIZER = "kubernetes"
RBAC_GROUP = "rbac.authorization.k8s.io"


def set_api_version_and_kind(obj: Any) -> None:
    """Fill apiVersion and kind from the kind registry (they are not stored
    per write path, so every response carries them)."""
    kind = kinds.of_message(obj)
    obj.api_version = kind.api_version
    obj.kind = kind.kind


def apply_defaults(obj: Any, *, not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS,
                   unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    """Fill every defaulted field of ``obj`` in place (a no-op for kinds with
    nothing to default). The toleration seconds are DefaultTolerationSeconds'
    (kube-apiserver's --default-not-ready/unreachable-toleration-seconds)."""
    name = type(obj).DESCRIPTOR.name
    if name == "Pod":
        _pod(obj, not_ready_seconds, unreachable_seconds)
        return
    rule = _RULES.get(name)
    if rule is not None:
        rule(obj)


# --- Pods ---------------------------------------------------------------------------------


def _pod(pod: Any, not_ready_seconds: int = DEFAULT_TOLERATION_SECONDS,
         unreachable_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    default_pod_spec(pod.spec)
    _default_tolerations(pod.spec, {NOT_READY_TAINT: not_ready_seconds,
                                    UNREACHABLE_TAINT: unreachable_seconds})
    if not pod.status.phase:
        pod.status.phase = "Pending"


def default_pod_spec(spec: Any) -> None:
    """SetDefaults_PodSpec and friends: shared by pods and workload templates."""
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = DEFAULT_TERMINATION_GRACE_SECONDS
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if not spec.scheduler_name:
        spec.scheduler_name = DEFAULT_SCHEDULER
    for vol in spec.volumes:
        if not vol.HasField("empty_dir") and not vol.HasField("host_path"):
            vol.empty_dir.SetInParent()  # Kubernetes: a volume with no source is an emptyDir
    for ctr in list(spec.init_containers) + list(spec.containers):
        _container(ctr, host_network=spec.host_network)


def pull_policy(image: str) -> str:
    """Always for ":latest" or an untagged image, else IfNotPresent (an image
    pinned by digest has no tag and is IfNotPresent)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container(ctr: Any, *, host_network: bool) -> None:
    if not ctr.image_pull_policy:
        ctr.image_pull_policy = pull_policy(ctr.image)
    if not ctr.termination_message_path:
        ctr.termination_message_path = TERMINATION_MESSAGE_PATH
    for port in ctr.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if host_network and not port.host_port:
            port.host_port = port.container_port
    for var in ctr.env:
        if var.value_from.HasField("field_ref") and not var.value_from.field_ref.api_version:
            var.value_from.field_ref.api_version = "v1"
    for name, limit in ctr.resources.limits.items():
        if name not in ctr.resources.requests:
            ctr.resources.requests[name] = limit
    for field in ("liveness_probe", "readiness_probe", "startup_probe"):
        if ctr.HasField(field):
            _probe(getattr(ctr, field))
    if ctr.HasField("lifecycle"):
        for field in ("post_start", "pre_stop"):
            handler = getattr(ctr.lifecycle, field)
            if handler.HasField("http_get"):
                _http_get(handler.http_get)


def _probe(probe: Any) -> None:
    for field, default in (("timeout_seconds", 1), ("period_seconds", 10),
                           ("success_threshold", 1), ("failure_threshold", 3)):
        if not getattr(probe, field):
            setattr(probe, field, default)
    if probe.HasField("http_get"):
        _http_get(probe.http_get)


def _http_get(action: Any) -> None:
    if not action.path:
        action.path = "/"
    if not action.scheme:
        action.scheme = "HTTP"


def _tolerates_no_execute(spec: Any, taint_key: str) -> bool:
    return any((t.key == taint_key or not t.key) and t.effect in ("NoExecute", "")
               for t in spec.tolerations)


def _default_tolerations(spec: Any, seconds: dict[str, int]) -> None:
    """DefaultTolerationSeconds: tolerate a not-ready or unreachable node for
    a while (five minutes by default) before eviction, unless the pod says
    otherwise."""
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not _tolerates_no_execute(spec, key):
            spec.tolerations.append(core.Toleration(
                key=key, operator="Exists", effect="NoExecute",
                toleration_seconds=seconds[key]))


# --- Services -----------------------------------------------------------------------------


def _service(svc: Any) -> None:
    spec = svc.spec
    if not spec.type:
        spec.type = "ClusterIP"
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if spec.session_affinity == "ClientIP":
        client_ip = spec.session_affinity_config.client_ip
        if not client_ip.HasField("timeout_seconds"):
            client_ip.timeout_seconds = CLIENT_IP_TIMEOUT_SECONDS
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        target = port.target_port
        which = target.WhichOneof("value")
        if which is None or (which == "int_value" and target.int_value == 0) or (
                which == "str_value" and not target.str_value):
            target.int_value = port.port


# --- Workloads ----------------------------------------------------------------------------


def _replica_set(rs: Any) -> None:
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    default_pod_spec(rs.spec.template.spec)


def _deployment(dep: Any) -> None:
    spec = dep.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    default_pod_spec(spec.template.spec)
    strategy = spec.strategy
    if not strategy.type:
        strategy.type = "RollingUpdate"
    if strategy.type == "RollingUpdate":
        ru = strategy.rolling_update
        for bound in (ru.max_unavailable, ru.max_surge):
            if bound.WhichOneof("value") is None:
                bound.str_value = "25%"
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    if not spec.HasField("progress_deadline_seconds"):
        spec.progress_deadline_seconds = 600


# --- Namespaces ---------------------------------------------------------------------------


def _namespace(ns: Any) -> None:
    """A live namespace is Active and carries the "kubernetes" finalizer the
    namespace controller removes once the namespace is empty. A terminating
    one is left alone: re-adding the finalizer would block its deletion."""
    terminating = ns.metadata.HasField("deletion_timestamp")
    if not ns.status.phase:
        ns.status.phase = "Terminating" if terminating else "Active"
    if not terminating and NAMESPACE_FINALIZER not in ns.spec.finalizers:
        ns.spec.finalizers.append(NAMESPACE_FINALIZER)


def _endpoints(endpoints: Any) -> None:
    """Endpoints ports default to TCP, as Kubernetes' do."""
    for subset in endpoints.subsets:
        for port in subset.ports:
            if not port.protocol:
                port.protocol = "TCP"


# --- RBAC ---------------------------------------------------------------------------------


def _binding(binding: Any) -> None:
    """rbac/v1's SetDefaults_Subject and SetDefaults_RoleRef: users and
    groups are rbac.authorization.k8s.io subjects, service accounts core
    ones. A RoleBinding's ServiceAccount subject without a namespace means
    one in the binding's namespace (Kubernetes' authorizer reads it so);
    storing that namespace keeps every reader from having to know."""
    if not binding.role_ref.api_group:
        binding.role_ref.api_group = RBAC_GROUP
    namespace = binding.metadata.namespace
    for subject in binding.subjects:
        if not subject.api_group and subject.kind in ("User", "Group"):
            subject.api_group = RBAC_GROUP
        if subject.kind == "ServiceAccount" and not subject.namespace and namespace:
            subject.namespace = namespace


_RULES = {
    "Endpoints": _endpoints,
    "Pod": _pod,
    "Service": _service,
    "ReplicaSet": _replica_set,
    "Deployment": _deployment,
    "Namespace": _namespace,
    "RoleBinding": _binding,
    "ClusterRoleBinding": _binding,
}
