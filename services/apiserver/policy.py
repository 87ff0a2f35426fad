"""Creates the default RBAC policy at start, as kube-apiserver's bootstrap
hook does: the roles (cluster-admin, admin, edit, view, and one per
component) and the bindings that give the components and system:masters
their rights. Idempotent, so every replica and every restart may run it;
the reconciling rules (add what is missing, keep extras, leave objects
annotated autoupdate=false alone) are in :mod:`authz.bootstrap`.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from services.apiserver import errors
from services.apiserver.authz import bootstrap

log = logging.getLogger(__name__)


async def _ensure(registry: Any, wanted: Any, reconcile: Any) -> None:
    try:
        await registry.create(wanted)
        return
    except errors.ApiStatus as err:
        if err.code != grpc.StatusCode.ALREADY_EXISTS:
            raise
    existing = await registry.get("", wanted.metadata.name)
    updated = reconcile(existing, wanted)
    if updated is None:
        return
    try:
        if hasattr(updated, "role_ref") and bootstrap.needs_recreate(existing, updated):
            await registry.delete("", existing.metadata.name, uid=existing.metadata.uid)
            updated.metadata.ClearField("resource_version")
            updated.metadata.ClearField("uid")
            await registry.create(updated)
        else:
            await registry.update(updated)
        log.info("reconciled default %s %s", type(updated).__name__, updated.metadata.name)
    except errors.ApiStatus as err:  # another replica got there first
        if err.code not in (grpc.StatusCode.ABORTED, grpc.StatusCode.ALREADY_EXISTS,
                            grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            raise


async def bootstrap_policy(registries: dict[str, Any]) -> None:
    for role in bootstrap.default_cluster_roles():
        await _ensure(registries["ClusterRole"], role, bootstrap.reconcile_cluster_role)
    for binding in bootstrap.default_cluster_role_bindings():
        await _ensure(registries["ClusterRoleBinding"], binding,
                      bootstrap.reconcile_cluster_role_binding)
