"""Wiring: which controllers exist, which are enabled, and running them together.

Controllers are registered by NAME and import path, and imported only when
enabled, so a controller whose module is missing or broken fails clearly
when (and only when) someone asks for it. ``--controllers`` works as
kube-controller-manager's: a comma-separated list where ``*`` enables every
controller that is on by default, ``foo`` enables foo and ``-foo`` disables
it; the first entry naming a controller wins.

Every controller gets the same client, the same shared informer factory (so
each kind is listed and watched once per process), the clock and the
options; each takes the options it knows and ignores the rest.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.machinery import Client, Clock, SharedInformerFactory

log = logging.getLogger(__name__)

# NAME -> "module:Class". Names are kube-controller-manager's where one exists.
CONTROLLERS: dict[str, str] = {
    "endpoints": "services.controller_manager.endpoints:EndpointsController",
    "nodeipam": "services.controller_manager.nodeipam:NodeIpamController",
    "nodelifecycle": "services.controller_manager.nodelifecycle:NodeLifecycleController",
    "garbagecollector": "services.controller_manager.garbagecollector:GarbageCollector",
    "namespace": "services.controller_manager.namespace:NamespaceController",
    "replicaset": "services.controller_manager.replicaset:ReplicaSetController",
    "deployment": "services.controller_manager.deployment:DeploymentController",
}
# Kubernetes calls the endpoints controller "endpoint".
ALIASES: dict[str, str] = {"endpoint": "endpoints"}
DISABLED_BY_DEFAULT: frozenset[str] = frozenset()


class ControllerError(ValueError):
    """A bad --controllers value, or a controller that cannot be loaded."""


def _canonical(name: str) -> str:
    return ALIASES.get(name, name)


def is_controller_enabled(name: str, items: Sequence[str],
                          disabled_by_default: Iterable[str] = DISABLED_BY_DEFAULT) -> bool:
    """kube-controller-manager's IsControllerEnabled: the first item that is
    ``name`` or ``-name`` decides; otherwise ``*`` enables what is on by default."""
    star = False
    for item in items:
        if item == name:
            return True
        if item == f"-{name}":
            return False
        if item == "*":
            star = True
    return star and name not in set(disabled_by_default)


def parse_controllers(flag: str | Sequence[str], known: Iterable[str] = CONTROLLERS,
                      disabled_by_default: Iterable[str] = DISABLED_BY_DEFAULT) -> list[str]:
    """The enabled controller names, in registry order, for a
    ``--controllers`` value (empty means ``*``). Unknown names are an error."""
    raw = flag.split(",") if isinstance(flag, str) else list(flag)
    items = [item.strip() for item in raw if item.strip()] or ["*"]
    known = list(known)
    canonical = []
    for item in items:
        negated = item.startswith("-")
        name = _canonical(item[1:] if negated else item)
        if item != "*" and name not in known:
            raise ControllerError(
                f'--controllers: unknown controller "{item.lstrip("-")}"; known controllers: '
                f'{", ".join(sorted(known))}')
        canonical.append("*" if item == "*" else (f"-{name}" if negated else name))
    return [name for name in known if is_controller_enabled(name, canonical, disabled_by_default)]


def load_controller(name: str, registry: Mapping[str, str] = CONTROLLERS) -> type:
    """The controller class registered as ``name``, imported now."""
    name = _canonical(name)
    path = registry.get(name)
    if path is None:
        raise ControllerError(f'unknown controller "{name}"')
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as err:
        raise ControllerError(f'controller "{name}" cannot be loaded from {path}: {err}') from None


class ControllerManager:
    """The enabled controllers, built on one shared informer factory."""

    def __init__(self, client: Client, names: Iterable[str], *, workers: int = 5,
                 clock: Clock | None = None, options: Mapping[str, Any] | None = None,
                 factory: SharedInformerFactory | None = None):
        self.client = client
        self.workers = workers
        self.factory = factory or SharedInformerFactory(client, clock=clock)
        options = dict(options or {})
        self.controllers = [load_controller(name)(client, self.factory, clock=clock, **options)
                            for name in names]

    @property
    def names(self) -> list[str]:
        return [c.NAME for c in self.controllers]

    async def run(self) -> None:
        """Run every controller until cancelled (or one fails, which stops
        them all: a controller that crashes is a bug, not something to limp
        on without). Informers are stopped on the way out."""
        log.info("starting controllers: %s", ", ".join(self.names) or "none")
        self.factory.start()
        try:
            async with asyncio.TaskGroup() as group:
                for controller in self.controllers:
                    group.create_task(controller.run(self.workers),
                                      name=f"controller-{controller.NAME}")
        finally:
            await self.factory.stop()
            log.info("controllers stopped")


__all__ = [
    "ALIASES", "CONTROLLERS", "ControllerError", "ControllerManager", "DISABLED_BY_DEFAULT",
    "is_controller_enabled", "load_controller", "parse_controllers",
]
