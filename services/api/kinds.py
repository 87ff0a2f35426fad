"""The kind registry: one row per API kind, read by the server, the client
library and the CLI alike, so that adding a kind is one line here plus its
messages in proto/.

A row ties a kind's Kubernetes names (kind, plural resource, short names,
apiVersion, scope) to its generated message classes and gRPC service.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf.message import Message

from services.api.gen.kybernetes.apps.v1 import service_pb2_grpc as apps_grpc
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.coordination.v1 import service_pb2_grpc as coordination_grpc
from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import service_pb2_grpc as core_grpc
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.rbac.v1 import service_pb2_grpc as rbac_grpc
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac


@dataclasses.dataclass(frozen=True)
class Kind:
    """What every layer needs to know about one API kind."""

    kind: str                     # "Pod"
    resource: str                 # "pods": the plural, also the etcd key segment
    api_version: str              # "v1", "apps/v1", "coordination.k8s.io/v1"
    namespaced: bool
    message: type[Message]        # core.Pod
    list_message: type[Message]   # core.PodList
    event_message: type[Message]  # core.PodWatchEvent
    events_message: type[Message]  # core.PodWatchEvents (WatchBatched)
    service: str                  # full gRPC service name, "kybernetes.core.v1.Pods"
    stub: Any                     # generated stub class, core_grpc.PodsStub
    has_status: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""

    @property
    def group(self) -> str:
        """The API group, as RBAC rules name it: "" for the core group."""
        return self.api_version.rpartition("/")[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a user may type for this kind (lower case)."""
        return (self.kind.lower(), self.resource, self.singular or self.kind.lower(),
                *self.short_names)


def _kind(kind: str, resource: str, api_version: str, namespaced: bool, module: Any,
          grpc_module: Any, service: str, package: str, has_status: bool = True,
          short_names: tuple[str, ...] = ()) -> Kind:
    return Kind(
        kind=kind, resource=resource, api_version=api_version, namespaced=namespaced,
        message=getattr(module, kind), list_message=getattr(module, f"{kind}List"),
        event_message=getattr(module, f"{kind}WatchEvent"),
        events_message=getattr(module, f"{kind}WatchEvents"),
        service=f"{package}.{service}", stub=getattr(grpc_module, f"{service}Stub"),
        has_status=has_status, short_names=short_names, singular=kind.lower(),
    )


_CORE = "kybernetes.core.v1"
_APPS = "kybernetes.apps.v1"
_COORD = "kybernetes.coordination.v1"
_RBAC = "kybernetes.rbac.v1"
_RBAC_VERSION = "rbac.authorization.k8s.io/v1"

KINDS: tuple[Kind, ...] = (
    _kind("Namespace", "namespaces", "v1", False, core, core_grpc, "Namespaces", _CORE,
          short_names=("ns",)),
    _kind("Node", "nodes", "v1", False, core, core_grpc, "Nodes", _CORE, short_names=("no",)),
    _kind("Pod", "pods", "v1", True, core, core_grpc, "Pods", _CORE, short_names=("po",)),
    _kind("Service", "services", "v1", True, core, core_grpc, "Services", _CORE,
          short_names=("svc",)),
    _kind("Endpoints", "endpoints", "v1", True, core, core_grpc, "EndpointsService", _CORE,
          has_status=False, short_names=("ep",)),
    _kind("Event", "events", "v1", True, core, core_grpc, "Events", _CORE, has_status=False,
          short_names=("ev",)),
    _kind("ReplicaSet", "replicasets", "apps/v1", True, apps, apps_grpc, "ReplicaSets", _APPS,
          short_names=("rs",)),
    _kind("Deployment", "deployments", "apps/v1", True, apps, apps_grpc, "Deployments", _APPS,
          short_names=("deploy",)),
    _kind("Lease", "leases", "coordination.k8s.io/v1", True, coordination, coordination_grpc,
          "Leases", _COORD, has_status=False),
    _kind("ResourceQuota", "resourcequotas", "v1", True, core, core_grpc, "ResourceQuotas", _CORE,
          short_names=("quota",)),
    _kind("Role", "roles", _RBAC_VERSION, True, rbac, rbac_grpc, "Roles", _RBAC,
          has_status=False),
    _kind("ClusterRole", "clusterroles", _RBAC_VERSION, False, rbac, rbac_grpc, "ClusterRoles",
          _RBAC, has_status=False),
    _kind("RoleBinding", "rolebindings", _RBAC_VERSION, True, rbac, rbac_grpc, "RoleBindings",
          _RBAC, has_status=False),
    _kind("ClusterRoleBinding", "clusterrolebindings", _RBAC_VERSION, False, rbac, rbac_grpc,
          "ClusterRoleBindings", _RBAC, has_status=False),
)

BY_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}
BY_RESOURCE: dict[str, Kind] = {k.resource: k for k in KINDS}
_BY_NAME: dict[str, Kind] = {name: k for k in KINDS for name in k.names}


class UnknownKindError(LookupError):
    """A kind name no row answers to."""


def lookup(name: str) -> Kind:
    """Find a kind by any name a kubectl user would type: ``Pod``, ``pods``,
    ``po``, ``deployment.apps``."""
    key = name.strip().lower()
    found = _BY_NAME.get(key) or _BY_NAME.get(key.split(".", 1)[0])
    if found is None:
        raise UnknownKindError(f'the server doesn\'t have a resource type "{name}"')
    return found


def of_message(message: Message) -> Kind:
    """The kind a message instance belongs to."""
    return BY_KIND[type(message).DESCRIPTOR.name]
