"""One strategy per kind that needs more than the generic rules: what the
server resets on create and update, what it allocates, how deletion works."""

from __future__ import annotations

from services.api.kinds import Kind
from services.apiserver.strategies.base import Strategy
from services.apiserver.strategies.namespaces import NamespaceStrategy
from services.apiserver.strategies.pods import PodStrategy
from services.apiserver.strategies.services import ServiceStrategy

_SPECIAL: dict[str, type[Strategy]] = {
    "Namespace": NamespaceStrategy,
    "Pod": PodStrategy,
    "Service": ServiceStrategy,
}


def strategy_for(kind: Kind, **options) -> Strategy:
    return _SPECIAL.get(kind.kind, Strategy)(kind, **options)


__all__ = ["Strategy", "strategy_for"]
