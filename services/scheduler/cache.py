"""The scheduler's cache: nodes and the pods on them, including assumed ones.

After kube-scheduler's internal/cache. The moment the scheduler decides, it
*assumes* the pod onto its node here, so the next decision already sees the
node's resources as used although the binding is still on its way to the
API server. Then one of:

* the informer reports the pod bound (:meth:`Cache.add_pod`): the
  assumption is confirmed, on whichever node the API server actually has;
* the binding fails (:meth:`Cache.forget_pod`): the assumption goes;
* the binding succeeded but the informer never reports the pod (it was
  deleted at once): the assumption expires ``ttl`` after the binding
  finished (:meth:`Cache.cleanup_expired_assumed_pods`).

Terminal pods (Succeeded, Failed) hold nothing and are not accounted.
The cache is plain data changed by synchronous methods, so within one event
loop it is always consistent and the scheduling cycle can read it directly.
"""

from __future__ import annotations

import logging

from services.machinery.clock import Clock, RealClock
from services.scheduler.nodeinfo import NodeInfo, PodInfo

log = logging.getLogger(__name__)

DEFAULT_ASSUMED_POD_TTL = 30.0


class CacheError(Exception):
    """A cache operation that contradicts the cache's state (a bug upstream)."""


class _PodState:
    __slots__ = ("info", "node", "assumed", "binding_finished", "deadline")

    def __init__(self, info: PodInfo, node: str, assumed: bool):
        self.info = info
        self.node = node
        self.assumed = assumed
        self.binding_finished = False
        self.deadline: float | None = None


class Cache:
    def __init__(self, clock: Clock | None = None, ttl: float = DEFAULT_ASSUMED_POD_TTL):
        self.clock = clock or RealClock()
        self.ttl = ttl
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        self._node_list: list[NodeInfo] | None = None  # None: rebuild on next snapshot

    # -- reads -------------------------------------------------------------------

    def snapshot(self) -> list[NodeInfo]:
        """The nodes a cycle may place pods on (those whose Node object is
        known), in a stable order. The list is rebuilt only when nodes come
        or go; node infos are live, which is safe because a cycle never
        yields to the event loop."""
        if self._node_list is None:
            self._node_list = [n for n in self._nodes.values() if n.node is not None]
        return self._node_list

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    @property
    def node_count(self) -> int:
        return len(self.snapshot())

    def pod_count(self) -> int:
        return len(self._pods)

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def has_pod(self, key: str) -> bool:
        return key in self._pods

    def pod_node(self, key: str) -> str | None:
        state = self._pods.get(key)
        return state.node if state is not None else None

    def assumed_keys(self) -> list[str]:
        return [k for k, s in self._pods.items() if s.assumed]

    # -- pods -----------------------------------------------------------------------

    def _node_info(self, name: str) -> NodeInfo:
        info = self._nodes.get(name)
        if info is None:
            # A pod bound to a node we have not seen (yet): account it anyway.
            info = self._nodes[name] = NodeInfo(name)
        return info

    def _place(self, info: PodInfo, node: str) -> None:
        self._node_info(node).add_pod(info)

    def _unplace(self, info: PodInfo, node: str) -> None:
        node_info = self._nodes.get(node)
        if node_info is None:
            return
        node_info.remove_pod(info)
        if node_info.node is None and not node_info.pods:
            del self._nodes[node]

    def assume_pod(self, info: PodInfo, node: str) -> None:
        """Account ``info`` on ``node`` before its binding is confirmed."""
        if info.key in self._pods:
            raise CacheError(f"pod {info.key} is already in the cache, cannot be assumed")
        self._pods[info.key] = _PodState(info, node, assumed=True)
        self._place(info, node)

    def finish_binding(self, key: str) -> None:
        """The Binding call succeeded: start the assumption's expiry clock."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            state.binding_finished = True
            state.deadline = self.clock.now() + self.ttl

    def forget_pod(self, key: str) -> bool:
        """Drop an assumption (its binding failed). A pod the informer has
        confirmed meanwhile is left alone; returns whether one was dropped."""
        state = self._pods.get(key)
        if state is None or not state.assumed:
            return False
        del self._pods[key]
        self._unplace(state.info, state.node)
        return True

    def add_pod(self, info: PodInfo, node: str) -> None:
        """The informer reports ``info`` bound to ``node``: confirm an
        assumption (moving it if the API server put the pod elsewhere, e.g.
        another scheduler won the race) or account a pod we did not place."""
        state = self._pods.get(info.key)
        if state is not None:
            if state.node != node and state.assumed:
                log.info("pod %s was assumed on %s but is bound to %s", info.key,
                         state.node, node)
            self._unplace(state.info, state.node)
        self._pods[info.key] = _PodState(info, node, assumed=False)
        self._place(info, node)

    update_pod = add_pod

    def remove_pod(self, key: str) -> bool:
        """The pod is gone (deleted, or terminal): free what it held."""
        state = self._pods.pop(key, None)
        if state is None:
            return False
        self._unplace(state.info, state.node)
        return True

    def cleanup_expired_assumed_pods(self) -> list[str]:
        """Drop assumptions whose binding finished more than ``ttl`` ago and
        were never confirmed; returns their keys."""
        now = self.clock.now()
        expired = [key for key, s in self._pods.items()
                   if s.assumed and s.binding_finished and s.deadline is not None
                   and s.deadline <= now]
        for key in expired:
            log.warning("assumed pod %s expired before its binding was observed", key)
            state = self._pods.pop(key)
            self._unplace(state.info, state.node)
        return expired

    # -- nodes -----------------------------------------------------------------------------

    def add_node(self, node) -> NodeInfo:
        name = node.metadata.name
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name, node)
            self._node_list = None
        else:
            if info.node is None:
                self._node_list = None
            info.set_node(node)
        return info

    update_node = add_node

    def remove_node(self, name: str) -> None:
        """The node is gone; pods still bound to it stay accounted (on a
        node no cycle sees) until they are deleted too."""
        info = self._nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None
        else:
            del self._nodes[name]
        self._node_list = None


__all__ = ["Cache", "CacheError", "DEFAULT_ASSUMED_POD_TTL"]
