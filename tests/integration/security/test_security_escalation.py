"""RBAC escalation prevention through the API: whoever may write Roles and
bindings grants only what they hold, unless given `escalate` or `bind`; a
compromised controller manager cannot bind itself to cluster-admin; the
administrators (system:masters) are not limited."""

from __future__ import annotations

import uuid

import grpc
import pytest

from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.machinery.errors import ApiError
from tests.integration.security.test_security_rbac import binding, eventually_allowed

pytestmark = pytest.mark.asyncio

GROUP = "rbac.authorization.k8s.io"
NOT_HELD = "is attempting to grant RBAC permissions not currently held"


def rule(verbs, group="", resources=(), names=()) -> rbac.PolicyRule:
    return rbac.PolicyRule(verbs=list(verbs), api_groups=[group], resources=list(resources),
                           resource_names=list(names))


def role(name: str, namespace: str, *rules: rbac.PolicyRule) -> rbac.Role:
    obj = rbac.Role(rules=list(rules))
    obj.metadata.name, obj.metadata.namespace = name, namespace
    return obj


def cluster_role(name: str, *rules: rbac.PolicyRule) -> rbac.ClusterRole:
    obj = rbac.ClusterRole(rules=list(rules))
    obj.metadata.name = name
    return obj


async def refused(call) -> str:
    with pytest.raises(ApiError) as err:
        await call
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED, err.value
    return str(err.value)


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_a_namespace_admin_grants_only_what_it_holds(secure, admin, namespace):
    user = _user("nsadmin")
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "admins", "ClusterRole", "admin", user, namespace))
    async with secure.client(user) as c:
        roles, bindings = c.resource("roles"), c.resource("rolebindings")
        await eventually_allowed(lambda: roles.list(namespace))

        pods = rule(["get", "list", "watch", "create", "delete"], "", ["pods"])
        await roles.create(role("pods", namespace, pods))

        message = await refused(roles.create(role(
            "quota", namespace, pods, rule(["update"], "", ["resourcequotas"]))))
        assert NOT_HELD in message and f'user "{user}"' in message
        assert '{APIGroups:[""], Resources:["resourcequotas"], Verbs:["update"]}' in message
        assert "pods" not in message.split(NOT_HELD)[1]
        assert NOT_HELD in await refused(roles.create(
            role("nodes", namespace, rule(["get", "list"], "", ["nodes"]))))

        # Widening the role it made is refused too; narrowing it is fine.
        stored = await roles.get("pods", namespace)
        stored.rules.append(rule(["update"], "", ["resourcequotas"]))
        assert NOT_HELD in await refused(roles.update(stored))
        stored = await roles.get("pods", namespace)
        del stored.rules[0].verbs[-1]
        await roles.update(stored)

        message = await refused(bindings.create(
            binding("RoleBinding", "root", "ClusterRole", "cluster-admin", user, namespace)))
        assert NOT_HELD in message and 'Verbs:["*"]' in message
        await bindings.create(binding("RoleBinding", "viewers", "ClusterRole", "view",
                                      _user("viewer"), namespace))
        await bindings.create(binding("RoleBinding", "pod-people", "Role", "pods",
                                      _user("podder"), namespace))
        assert "not found" in await refused(bindings.create(
            binding("RoleBinding", "ghost", "Role", "no-such-role", user, namespace)))
    # Nothing refused was stored.
    names = {r.metadata.name for r in (await admin.resource("roles").list(namespace)).items}
    assert names == {"pods"}
    names = {b.metadata.name for b in
             (await admin.resource("rolebindings").list(namespace)).items}
    assert names == {"admins", "viewers", "pod-people"}


async def test_bind_lets_a_user_bind_a_role_it_does_not_hold(secure, admin, namespace):
    user = _user("binder")
    binder = f"bind-edit-{uuid.uuid4().hex[:6]}"
    await admin.resource("clusterroles").create(cluster_role(
        binder, rule(["bind"], GROUP, ["clusterroles"], names=["edit"]),
        rule(["create", "get", "list"], GROUP, ["rolebindings"])))
    try:
        await admin.resource("rolebindings").create(
            binding("RoleBinding", "binder", "ClusterRole", binder, user, namespace))
        async with secure.client(user) as c:
            bindings = c.resource("rolebindings")
            await eventually_allowed(lambda: bindings.list(namespace))
            await bindings.create(binding("RoleBinding", "editors", "ClusterRole", "edit",
                                          _user("editor"), namespace))
            assert NOT_HELD in await refused(bindings.create(binding(
                "RoleBinding", "admins", "ClusterRole", "admin", _user("x"), namespace)))
            # Binding edit is not holding it.
            await refused(c.resource("pods").list(namespace))
    finally:
        await admin.resource("clusterroles").delete(binder)


async def test_a_compromised_controller_manager_cannot_bind_itself(secure, admin):
    name = f"esc-{uuid.uuid4().hex[:6]}"
    crbs = admin.resource("clusterrolebindings")
    await crbs.create(binding("ClusterRoleBinding", name, "ClusterRole", "cluster-admin",
                              _user("someone")))
    try:
        async with secure.client("system:kube-controller-manager") as cm:
            ours = cm.resource("clusterrolebindings")
            stored = await ours.get(name)  # the garbage collector may read and update it
            stored.subjects.append(rbac.Subject(kind="User", api_group=GROUP,
                                                name="system:kube-controller-manager"))
            assert NOT_HELD in await refused(ours.update(stored))
            assert NOT_HELD in await refused(cm.resource("clusterroles").update(cluster_role(
                "system:kube-controller-manager", rule(["*"], "*", ["*"]))))
            # What grants nothing new (the garbage collector's edits) still works.
            stored = await ours.get(name)
            stored.metadata.labels["gc"] = "seen"
            await ours.update(stored)
        assert [s.name for s in (await crbs.get(name)).subjects] != []
        assert all(s.name != "system:kube-controller-manager"
                   for s in (await crbs.get(name)).subjects)
    finally:
        await crbs.delete(name)


async def test_masters_are_not_limited(admin):
    name = f"esc-{uuid.uuid4().hex[:6]}"
    await admin.resource("clusterroles").create(cluster_role(name, rule(["*"], "*", ["*"])))
    await admin.resource("clusterrolebindings").create(
        binding("ClusterRoleBinding", name, "ClusterRole", f"{name}-not-yet", _user("x")))
    await admin.resource("clusterrolebindings").delete(name)
    await admin.resource("clusterroles").delete(name)
