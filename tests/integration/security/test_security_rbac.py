"""RBAC through the API: roles and bindings are objects, grants are
additive, a RoleBinding's grants stop at its namespace, and the
Authorization service's answers (`kyb auth can-i`) agree with real calls."""

from __future__ import annotations

import itertools
import uuid

import grpc
import pytest

from services.api import kinds
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2 as authz_pb2
from services.api.gen.kybernetes.authorization.v1 import authorization_pb2_grpc as authz_grpc
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.machinery.errors import ApiError
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.asyncio


def binding(kind: str, name: str, role_kind: str, role: str, user: str,
            namespace: str = "") -> object:
    obj = getattr(rbac, kind)()
    obj.metadata.name = name
    if namespace:
        obj.metadata.namespace = namespace
    obj.role_ref.CopyFrom(rbac.RoleRef(api_group="rbac.authorization.k8s.io", kind=role_kind,
                                       name=role))
    obj.subjects.append(rbac.Subject(kind="User", name=user,
                                     api_group="rbac.authorization.k8s.io"))
    return obj


async def allowed(call) -> bool:
    """True if the call got past authorization (any other outcome counts as
    allowed: NOT_FOUND, ALREADY_EXISTS... were decided after it)."""
    try:
        await call
        return True
    except ApiError as err:
        if err.code == grpc.StatusCode.PERMISSION_DENIED:
            return False
        return True


async def eventually_allowed(call_factory, timeout: float = 10.0) -> None:
    """New bindings reach the authorizer through the watch cache (ms later)."""
    async def ok():
        return await allowed(call_factory())
    await wait_until(ok, timeout, message="the new binding to take effect")


async def test_default_roles_and_bindings_exist(admin):
    roles = {r.metadata.name for r in (await admin.resource("clusterroles").list()).items}
    assert {"cluster-admin", "admin", "edit", "view", "system:kube-scheduler",
            "system:kube-controller-manager", "system:node-proxier"} <= roles
    bindings = (await admin.resource("clusterrolebindings").list()).items
    by_name = {b.metadata.name: b for b in bindings}
    assert by_name["cluster-admin"].subjects[0].name == "system:masters"


async def test_view_can_list_but_not_create(secure, admin, namespace):
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "v", "ClusterRole", "view", user, namespace))
    async with secure.client(user) as c:
        pods = c.resource("pods")
        await eventually_allowed(lambda: pods.list(namespace))
        await pods.list(namespace)
        with pytest.raises(ApiError) as err:
            await pods.create(objects.pod("p", namespace))
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert f'User "{user}" cannot create resource "pods"' in str(err.value)
        with pytest.raises(ApiError):
            await c.resource("rolebindings").list(namespace)


async def test_rolebinding_in_one_namespace_grants_nothing_in_another(secure, admin):
    a, b = (f"s-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (a, b):
        await admin.resource("namespaces").create(core.Namespace(metadata={"name": name}))
    user = f"editor-{uuid.uuid4().hex[:6]}"
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "e", "ClusterRole", "edit", user, a))
    async with secure.client(user) as c:
        pods = c.resource("pods")
        await eventually_allowed(lambda: pods.create(objects.pod("p", a)))
        for call in (pods.list(b), pods.create(objects.pod("p", b)), pods.list(""),
                     c.resource("nodes").list()):
            with pytest.raises(ApiError) as err:
                await call
            assert err.value.code == grpc.StatusCode.PERMISSION_DENIED


async def test_grants_are_additive_and_a_namespaced_role_works(secure, admin, namespace):
    user = f"mixed-{uuid.uuid4().hex[:6]}"
    role = rbac.Role(rules=[rbac.PolicyRule(verbs=["get", "list"], api_groups=[""],
                                            resources=["services"])])
    role.metadata.name, role.metadata.namespace = "svc-reader", namespace
    await admin.resource("roles").create(role)
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "r", "Role", "svc-reader", user, namespace))
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "v", "ClusterRole", "view", user, namespace))
    async with secure.client(user) as c:
        await eventually_allowed(lambda: c.resource("services").list(namespace))
        await c.resource("pods").list(namespace)
        with pytest.raises(ApiError):
            await c.resource("services").delete("x", namespace)


async def review(client, verb: str, resource: str, namespace: str = "", *, user: str = "",
                 groups: tuple[str, ...] = (), group: str = "", subresource: str = ""):
    stub = authz_grpc.AuthorizationStub(await client.ready_channel())
    request = authz_pb2.SubjectAccessReview(
        resource_attributes=authz_pb2.ResourceAttributes(
            namespace=namespace, verb=verb, group=group, resource=resource,
            subresource=subresource),
        user=user, groups=list(groups))
    return await stub.Review(request, timeout=10)


async def test_can_i_agrees_with_real_calls(secure, admin, namespace):
    user = f"agree-{uuid.uuid4().hex[:6]}"
    await admin.resource("rolebindings").create(
        binding("RoleBinding", "v", "ClusterRole", "view", user, namespace))
    async with secure.client(user) as c:
        await eventually_allowed(lambda: c.resource("pods").list(namespace))
        calls = {
            ("list", "pods"): lambda ns: c.resource("pods").list(ns),
            ("get", "pods"): lambda ns: c.resource("pods").get("nope", ns),
            ("create", "pods"): lambda ns: c.resource("pods").create(objects.pod("p", ns)),
            ("delete", "pods"): lambda ns: c.resource("pods").delete("nope", ns),
            ("list", "deployments"): lambda ns: c.resource("deployments").list(ns),
            ("create", "services"): lambda ns: c.resource("services").create(
                objects.service("s", ns)),
            ("list", "roles"): lambda ns: c.resource("roles").list(ns),
        }
        checked = 0
        for (verb, resource), ns in itertools.product(calls, [namespace, "default"]):
            group = kinds.lookup(resource).group
            answer = await review(c, verb, resource, ns, group=group)
            real = await allowed(calls[(verb, resource)](ns))
            assert answer.allowed == real, (verb, resource, ns, answer.reason)
            checked += 1
        assert checked == 14
        # Asking about someone else needs the right to.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await review(c, "list", "pods", namespace, user="kubernetes-admin")
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # An administrator may ask about anyone (kyb auth can-i --as).
    about = await review(admin, "create", "pods", namespace, user=user)
    assert not about.allowed
    about = await review(admin, "list", "pods", namespace, user=user)
    assert about.allowed and "view" in about.reason
