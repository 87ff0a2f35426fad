"""Everything the API server checks before an object reaches etcd.

``validate(obj, old)`` is Kubernetes' ValidateX / ValidateXUpdate for every
kind: metadata rules first, then the kind's own. ``validate_status`` is the
UpdateStatus counterpart. Both return every problem found, as FieldErrors
whose ``str()`` reads like kubectl's (``spec.containers[0].image: Required
value``), so one request reports all its mistakes at once.

Objects are validated after defaulting.apply_defaults; the per-kind rules
live in validation_pod, validation_core, validation_apps, validation_quota
and validation_rbac.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.api import kinds
from services.apiserver import validation_apps as apps
from services.apiserver import validation_core as core
from services.apiserver import validation_pod as pod
from services.apiserver import validation_quota as quota
from services.apiserver import validation_rbac as rbac
from services.apiserver.validation_common import (
    Errors,
    FieldError,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
)
from services.apiserver.validation_meta import object_meta, object_meta_update

__all__ = ["FieldError", "validate", "validate_status", "DEFAULT_NODE_PORT_RANGE"]

DEFAULT_NODE_PORT_RANGE = core.DEFAULT_NODE_PORT_RANGE

Validator = Callable[[Any, Any], Errors]

# Names are DNS-1123 subdomains except where Kubernetes says otherwise.
_NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": dns1123_label_errors,
    "Service": dns1035_label_errors,
    "Role": rbac.path_segment_errors,
    "ClusterRole": rbac.path_segment_errors,
    "RoleBinding": rbac.path_segment_errors,
    "ClusterRoleBinding": rbac.path_segment_errors,
}

_SPEC_RULES: dict[str, Validator] = {
    "Namespace": core.validate_namespace,
    "Node": core.validate_node,
    "Pod": pod.validate_pod,
    "Service": core.validate_service,
    "Endpoints": core.validate_endpoints,
    "Event": core.validate_event,
    "ReplicaSet": apps.validate_replica_set,
    "Deployment": apps.validate_deployment,
    "Lease": core.validate_lease,
    "ResourceQuota": quota.validate_resource_quota,
    "Role": rbac.validate_role,
    "ClusterRole": rbac.validate_cluster_role,
    "RoleBinding": rbac.validate_role_binding,
    "ClusterRoleBinding": rbac.validate_cluster_role_binding,
}

_STATUS_RULES: dict[str, Validator] = {
    "Namespace": core.validate_namespace_status,
    "Node": core.validate_node_status,
    "Pod": pod.validate_pod_status,
    "Service": core.validate_service_status,
    "ReplicaSet": apps.validate_replica_set_status,
    "Deployment": apps.validate_deployment_status,
    "ResourceQuota": quota.validate_resource_quota_status,
}


def _kind(obj: Any) -> kinds.Kind:
    name = type(obj).DESCRIPTOR.name
    kind = kinds.BY_KIND.get(name)
    if kind is None:
        raise TypeError(f"no validation rules for {name}")
    return kind


def _metadata(obj: Any, old: Any | None, kind: kinds.Kind) -> Errors:
    errs = object_meta(obj.metadata, namespaced=kind.namespaced,
                       name_check=_NAME_RULES.get(kind.kind, dns1123_subdomain_errors))
    if old is not None:
        errs += object_meta_update(obj.metadata, old.metadata)
    return errs


def _unique(errs: Errors) -> list[FieldError]:
    return list(dict.fromkeys(errs))


def validate(obj: Any, old: Any | None = None, *,
             node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE) -> list[FieldError]:
    """Every problem with ``obj`` as a create (``old`` None) or as an update
    of ``old``. An empty list means the object may be stored."""
    kind = _kind(obj)
    errs = _metadata(obj, old, kind)
    if kind.kind == "Service":
        errs += core.validate_service(obj, old, node_port_range)
    else:
        errs += _SPEC_RULES[kind.kind](obj, old)
    return _unique(errs)


def validate_status(obj: Any, old: Any) -> list[FieldError]:
    """Every problem with an UpdateStatus of ``old`` to ``obj``: the metadata
    update rules and the shape of the status. Kinds without a status get
    only the metadata rules."""
    kind = _kind(obj)
    errs = _metadata(obj, old, kind)
    rule = _STATUS_RULES.get(kind.kind)
    if rule is not None:
        errs += rule(obj, old)
    return _unique(errs)
