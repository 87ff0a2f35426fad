"""Small valid objects of every kind, for tests and benchmarks."""

from __future__ import annotations

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac

RBAC_GROUP = "rbac.authorization.k8s.io"


def pod(name: str, namespace: str = "default", *, image: str = "busybox:latest",
        labels: dict[str, str] | None = None, node: str = "") -> core.Pod:
    obj = core.Pod()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.metadata.labels.update(labels or {})
    obj.spec.containers.add(name="main", image=image, command=["sleep", "3600"])
    obj.spec.node_name = node
    return obj


def service(name: str, namespace: str = "default", *, type_: str = "ClusterIP",
            port: int = 80, selector: dict[str, str] | None = None) -> core.Service:
    obj = core.Service()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.spec.type = type_
    obj.spec.selector.update(selector or {"app": name})
    p = obj.spec.ports.add(name="http", port=port, protocol="TCP")
    p.target_port.int_value = 8080
    return obj


def node(name: str, cpu: str = "4", memory: str = "8Gi") -> core.Node:
    obj = core.Node()
    obj.metadata.name = name
    obj.status.capacity.update({"cpu": cpu, "memory": memory, "pods": "110"})
    obj.status.allocatable.update({"cpu": cpu, "memory": memory, "pods": "110"})
    return obj


def namespace(name: str) -> core.Namespace:
    obj = core.Namespace()
    obj.metadata.name = name
    return obj


def endpoints(name: str, namespace: str = "default", ips: tuple[str, ...] = ("10.244.1.5",)
              ) -> core.Endpoints:
    obj = core.Endpoints()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    subset = obj.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    subset.ports.add(name="http", port=8080, protocol="TCP")
    return obj


def event(name: str, namespace: str = "default", *, about: str = "web") -> core.Event:
    obj = core.Event()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.involved_object.kind, obj.involved_object.name = "Pod", about
    obj.involved_object.namespace = namespace
    obj.reason, obj.message, obj.type = "Tested", "a test event", "Normal"
    return obj


def _template(labels: dict[str, str]) -> core.PodTemplateSpec:
    tpl = core.PodTemplateSpec()
    tpl.metadata.labels.update(labels)
    tpl.spec.containers.add(name="main", image="busybox:latest", command=["sleep", "3600"])
    return tpl


def replicaset(name: str, namespace: str = "default", replicas: int = 2) -> apps.ReplicaSet:
    obj = apps.ReplicaSet()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.spec.replicas = replicas
    obj.spec.selector.match_labels["app"] = name
    obj.spec.template.CopyFrom(_template({"app": name}))
    return obj


def deployment(name: str, namespace: str = "default", replicas: int = 3) -> apps.Deployment:
    obj = apps.Deployment()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.spec.replicas = replicas
    obj.spec.selector.match_labels["app"] = name
    obj.spec.template.CopyFrom(_template({"app": name}))
    return obj


def lease(name: str, namespace: str = "default", holder: str = "") -> coordination.Lease:
    obj = coordination.Lease()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.spec.holder_identity = holder
    obj.spec.lease_duration_seconds = 15
    return obj


def resource_quota(name: str, namespace: str = "default",
                   hard: dict[str, str] | None = None) -> core.ResourceQuota:
    """By default a quota no test comes near (and no cpu/memory keys, which
    would make every pod without requests refused): objects made by sample()
    may outlive a test in a shared namespace."""
    obj = core.ResourceQuota()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.spec.hard.update(hard if hard is not None else {"pods": "1000"})
    return obj


def policy_rule(verbs: tuple[str, ...] = ("get", "list", "watch"),
                resources: tuple[str, ...] = ("pods",), groups: tuple[str, ...] = ("",),
                names: tuple[str, ...] = ()) -> rbac.PolicyRule:
    return rbac.PolicyRule(verbs=verbs, api_groups=groups, resources=resources,
                           resource_names=names)


def role(name: str, namespace: str = "default",
         rules: list[rbac.PolicyRule] | None = None) -> rbac.Role:
    obj = rbac.Role()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.rules.extend(rules if rules is not None else [policy_rule()])
    return obj


def cluster_role(name: str, rules: list[rbac.PolicyRule] | None = None) -> rbac.ClusterRole:
    obj = rbac.ClusterRole()
    obj.metadata.name = name
    obj.rules.extend(rules if rules is not None else [policy_rule()])
    return obj


def subject(kind: str, name: str, namespace: str = "") -> rbac.Subject:
    """A User, Group or ServiceAccount ("ns/name" not needed: pass namespace)."""
    group = "" if kind == "ServiceAccount" else RBAC_GROUP
    return rbac.Subject(kind=kind, name=name, namespace=namespace, api_group=group)


def role_binding(name: str, namespace: str = "default", *, role_kind: str = "Role",
                 role_name: str = "reader", subjects: list[rbac.Subject] | None = None
                 ) -> rbac.RoleBinding:
    obj = rbac.RoleBinding()
    obj.metadata.name, obj.metadata.namespace = name, namespace
    obj.role_ref.CopyFrom(rbac.RoleRef(api_group=RBAC_GROUP, kind=role_kind, name=role_name))
    obj.subjects.extend(subjects if subjects is not None else [subject("User", "jane")])
    return obj


def cluster_role_binding(name: str, *, role_name: str = "view",
                         subjects: list[rbac.Subject] | None = None
                         ) -> rbac.ClusterRoleBinding:
    obj = rbac.ClusterRoleBinding()
    obj.metadata.name = name
    obj.role_ref.CopyFrom(rbac.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole",
                                       name=role_name))
    obj.subjects.extend(subjects if subjects is not None else [subject("Group", "readers")])
    return obj


def sample(kind: str, name: str, namespace: str):
    """A valid object of ``kind`` (namespace ignored for cluster-scoped kinds)."""
    makers = {
        "Namespace": lambda: globals()["namespace"](name),
        "Node": lambda: node(name),
        "Pod": lambda: pod(name, namespace),
        "Service": lambda: service(name, namespace),
        "Endpoints": lambda: endpoints(name, namespace),
        "Event": lambda: event(name, namespace),
        "ReplicaSet": lambda: replicaset(name, namespace),
        "Deployment": lambda: deployment(name, namespace),
        "Lease": lambda: lease(name, namespace),
        "ResourceQuota": lambda: resource_quota(name, namespace),
        "Role": lambda: role(name, namespace),
        "ClusterRole": lambda: cluster_role(name),
        "RoleBinding": lambda: role_binding(name, namespace),
        "ClusterRoleBinding": lambda: cluster_role_binding(name),
    }
    return makers[kind]()
