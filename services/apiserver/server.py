"""The API server's gRPC face: one generic handler set per kind, built from
the kind registry, plus health, reflection and request metrics.

Handlers are registered with grpc's generic-handler API rather than the
generated servicers so that every kind shares one implementation, and so
that watch events can be sent as bytes serialized once per event
(see watchcache.py) instead of once per watcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.api import kinds
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.apiserver import allocator, errors, metrics
from services.apiserver.access import AccessControl, attributes_for
from services.apiserver.callscope import CallScope, decoder, passthrough, serialize
from services.apiserver.authn import Authenticator
from services.apiserver.authz.attributes import UserInfo
from services.apiserver.policy import bootstrap_policy
from services.apiserver.review import REVIEW_SERVICE, review_handler
from services.apiserver.proxy import KubeletProxy
from services.apiserver.registry import Registry
from services.apiserver.storage import Storage, StorageError
from services.apiserver.strategies import strategy_for
from services.apiserver.watchcache import WatchCache
from services.machinery import channel

log = logging.getLogger(__name__)

MAX_OBJECT_BYTES = 3 * 1024 * 1024
RBAC_GROUP = "rbac.authorization.k8s.io"
WATCH_BATCH_LIMIT = 100


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def frame_repeated(items: list[bytes], field: int = 1) -> bytes:
    """Serialized messages as a message with them in repeated field
    ``field`` (wire type 2) — a <Kind>WatchEvents built from events already
    serialized once for every watcher, without decoding them again."""
    tag = _varint(field << 3 | 2)
    return b"".join(tag + _varint(len(item)) + item for item in items)
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ApiServer:
    """Owns the storage, one watch cache and registry per kind, and the gRPC server."""

    def __init__(self, storage: Storage, *,
                 service_cidr: str = allocator.DEFAULT_SERVICE_CIDR,
                 node_ports: allocator.NodePortRange | None = None,
                 watch_cache_size: int = 1024, default_toleration_seconds: tuple[int, int] = (300, 300),
                 watch_batch_window: float = 0.02,
                 compaction_interval: float = 300.0,
                 access: AccessControl | None = None,
                 max_objects_per_namespace: int = 0,
                 kubelet_tls: Any = None):
        self.storage = storage
        # Without an AccessControl, every caller is system:masters: the
        # --insecure-plaintext mode tests and local development use.
        self.access = access or AccessControl(Authenticator(insecure=True))
        self.compaction_interval = compaction_interval
        self.watch_batch_window = watch_batch_window
        self.caches: dict[str, WatchCache] = {}
        self.registries: dict[str, Registry] = {}
        options = {"ip_range": allocator.ServiceIPRange(service_cidr),
                   "port_range": node_ports or allocator.NodePortRange(),
                   "not_ready_toleration_seconds": default_toleration_seconds[0],
                   "unreachable_toleration_seconds": default_toleration_seconds[1]}
        for kind in kinds.KINDS:
            self.caches[kind.kind] = WatchCache(kind, storage, history=watch_cache_size)
        ns_cache = self.caches["Namespace"]
        for kind in kinds.KINDS:
            self.registries[kind.kind] = Registry(
                kind, storage, self.caches[kind.kind], strategy_for(kind, **options),
                ns_cache if kind.namespaced else None, caches=self.caches,
                max_objects_per_namespace=max_objects_per_namespace)
        self.kubelets = KubeletProxy(self.registries["Pod"], self.registries["Node"],
                                     tls=kubelet_tls)
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.token_port = 0
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 6443, *,
                    credentials: grpc.ServerCredentials | None = None,
                    token_port: int | None = None,
                    token_credentials: grpc.ServerCredentials | None = None) -> int:
        """Serve on ``port`` — mutual TLS with ``credentials``, plaintext
        without — and, given ``token_credentials``, on ``token_port`` with
        server-only TLS for bearer-token clients."""
        for cache in self.caches.values():
            self._run_cache(cache)
        await asyncio.gather(*(c.ready.wait() for c in self.caches.values()))
        await self._ensure_namespaces()
        await bootstrap_policy(self.registries)
        self.server = grpc.aio.server(options=channel.SERVER_OPTIONS)
        self.server.add_generic_rpc_handlers(
            [self._handlers(kind) for kind in kinds.KINDS]
            + [review_handler(self.access)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [k.service for k in kinds.KINDS] + [REVIEW_SERVICE]
        reflection.enable_server_reflection(
            names + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                     reflection.SERVICE_NAME], self.server)
        self.port = self._listen(host, port, credentials)
        if token_credentials is not None and token_port is not None:
            self.token_port = self._listen(host, token_port, token_credentials)
        await self.server.start()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._tasks.append(asyncio.create_task(self._finalize_namespaces(), name="namespaces"))
        if self.compaction_interval > 0:
            self._tasks.append(asyncio.create_task(self._compact(), name="compactor"))
        log.info("API server listening on %s:%d", host, self.port)
        return self.port

    def _listen(self, host: str, port: int, credentials: grpc.ServerCredentials | None) -> int:
        assert self.server is not None
        address = f"{host}:{port}"
        bound = (self.server.add_secure_port(address, credentials) if credentials is not None
                 else self.server.add_insecure_port(address))
        if not bound:
            raise OSError(f"cannot listen on {address}")
        return bound

    def _run_cache(self, cache: WatchCache) -> None:
        """Run a cache's loop; should it ever end while serving, say so and
        start it again, so that a kind's watches can never silently stop."""
        task = asyncio.create_task(cache.run(), name=f"cache-{cache.kind.kind}")
        self._tasks.append(task)

        def ended(done: asyncio.Task) -> None:
            if self._stopping:
                return
            error = None if done.cancelled() else done.exception()
            log.error("watch cache %s stopped (%r); restarting it", cache.kind.resource, error)
            self._tasks.remove(done)
            self._run_cache(cache)
        task.add_done_callback(ended)

    async def stop(self, grace: float = 2.0) -> None:
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        for cache in self.caches.values():
            for watcher in list(cache.watchers):
                watcher.close()
        if self.server is not None:
            await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.kubelets.close()
        await self.storage.close()

    async def healthy(self) -> tuple[bool, str]:
        try:
            await asyncio.wait_for(self.storage.revision(), 3)
        except (StorageError, asyncio.TimeoutError) as err:
            return False, f"etcd: {err or 'timeout'}"
        return True, "ok"

    async def _ensure_namespaces(self) -> None:
        registry = self.registries["Namespace"]
        ns_kind = kinds.BY_KIND["Namespace"]
        for name in DEFAULT_NAMESPACES:
            try:
                obj = ns_kind.message()
                obj.metadata.name = name
                await registry.create(obj)
            except errors.ApiStatus as err:
                if err.code != grpc.StatusCode.ALREADY_EXISTS:
                    raise

    # -- background work ----------------------------------------------------------------

    async def _finalize_namespaces(self, every: float = 1.0) -> None:
        """Empty namespaces being deleted, then let them go (idempotent, so
        every replica may run it)."""
        ns_registry = self.registries["Namespace"]
        while True:
            await asyncio.sleep(every)
            terminating = [ns for ns in self.caches["Namespace"].objects.values()
                           if ns.metadata.HasField("deletion_timestamp")]
            for ns in terminating:
                try:
                    await self._empty_namespace(ns_registry, ns)
                except errors.ApiStatus as err:
                    if err.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED):
                        log.warning("namespace %s: %s", ns.metadata.name, err.message)
                except StorageError as err:
                    log.warning("namespace %s: %s", ns.metadata.name, err)

    async def _empty_namespace(self, ns_registry: Registry, ns: Any) -> None:
        name = ns.metadata.name
        remaining = 0
        for kind in kinds.KINDS:
            if not kind.namespaced:
                continue
            registry = self.registries[kind.kind]
            for obj in registry.cache.list(lambda o: o.metadata.namespace == name):
                remaining += 1
                if not obj.metadata.HasField("deletion_timestamp"):
                    try:
                        await registry.delete(name, obj.metadata.name)
                    except errors.ApiStatus as err:
                        if err.code != grpc.StatusCode.NOT_FOUND:
                            raise
        if remaining == 0 and "kubernetes" in ns.spec.finalizers:
            current = await ns_registry.get("", name)
            current.spec.finalizers.remove("kubernetes")
            await ns_registry.update(current)

    async def _fresh(self, *caches: WatchCache) -> None:
        """Wait until ``caches`` hold everything etcd has now."""
        revision = await self.storage.revision()
        for cache in caches:
            if not await cache.wait_for_revision(revision, 5.0):
                raise errors.unavailable(
                    f"the {cache.kind.resource} cache is behind etcd; retry")

    async def _compact(self) -> None:
        """Compact etcd to the revision seen one interval ago, as kube-apiserver does."""
        previous = 0
        while True:
            await asyncio.sleep(self.compaction_interval)
            try:
                current = await self.storage.revision()
                if previous:
                    await self.storage.compact(previous)
                    log.info("compacted etcd to revision %d", previous)
                previous = current
            except StorageError as err:
                log.warning("compaction failed: %s", err)

    # -- gRPC handlers ------------------------------------------------------------------

    def _handlers(self, kind: kinds.Kind) -> grpc.GenericRpcHandler:
        registry = self.registries[kind.kind]
        msg, resource = kind.message, kind.resource
        access = self.access

        async def admitted(scope: CallScope, user: UserInfo, method: str,
                           request: Any) -> None:
            """Authorize the decoded request, then run admission with the
            stored object beside it (from the cache: no etcd round trip).

            A node's writes are decided on what is stored *now*: the cache
            is first brought up to etcd's current revision, so that a pod
            created or re-created a moment ago cannot be judged by what the
            cache held before it. Writes whose admission depended on the
            stored object (a node's, and RBAC objects') are then pinned to
            it (resourceVersion, uid), so a retry after a conflict cannot
            land on a different object than the one decided on."""
            attrs = attributes_for(user, kind, method, request)
            scope.outcome.attrs = attrs
            node_write = (user.node_name is not None
                          and attrs.verb in ("create", "update", "delete"))
            if node_write:
                await self._fresh(self.caches["Pod"], registry.cache)
            access.authorize_request(attrs, scope.outcome)
            if attrs.verb not in ("create", "update", "delete"):
                return
            old = (registry.cache.get(registry.key(attrs.namespace, attrs.name))
                   if attrs.name else None)
            obj = request if isinstance(request, msg) else None
            access.admit_request(attrs, obj, old, scope.outcome)
            if attrs.verb == "create" or not (node_write or kind.group == RBAC_GROUP):
                return
            if old is None:
                if node_write:  # the cache is fresh: it is not stored
                    raise errors.not_found(resource, attrs.name)
                return  # judged with nothing to compare against: the strictest check
            if obj is not None and not obj.metadata.resource_version:
                obj.metadata.resource_version = old.metadata.resource_version
            elif attrs.verb == "delete" and not request.preconditions.HasField("uid"):
                request.preconditions.uid = old.metadata.uid

        def unary(method: str, verb: str, request_type: Any, fn: Callable,
                  check_size: bool = False):
            decode = decoder(request_type)

            async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                async with CallScope(context, verb, kind.group, resource, access, method,
                                      timed=True) as scope:
                    user = scope.authenticate()
                    request = decode(raw)
                    if check_size and request.ByteSize() > MAX_OBJECT_BYTES:
                        scope.outcome.attrs = attributes_for(user, kind, method, request)
                        scope.outcome.decision = "reject"
                        raise errors.too_large(
                            f"Request entity too large: {request.ByteSize()} bytes, limit is "
                            f"{MAX_OBJECT_BYTES}")
                    await admitted(scope, user, method, request)
                    return await fn(request)
            return grpc.unary_unary_rpc_method_handler(
                handle, request_deserializer=passthrough, response_serializer=serialize)

        decode_watch = decoder(meta_pb2.WatchRequest)

        def watch_handler(method: str, batched: bool):
            async def watch(raw: bytes, context: grpc.aio.ServicerContext):
                started = time.perf_counter()
                watcher = None
                user = None
                async with CallScope(context, "watch", kind.group, resource, access, method) as scope:
                    try:
                        user = scope.authenticate()
                        request = decode_watch(raw)
                        await admitted(scope, user, method, request)
                        access.open_watch(user, scope.outcome)
                        try:
                            watcher = await registry.watch(
                                request.namespace, request.label_selector,
                                request.field_selector, request.resource_version,
                                request.allow_bookmarks)
                        except BaseException:
                            access.watches.release(user)
                            user = None
                            raise
                        metrics.REQUEST_DURATION.labels("watch", resource).observe(
                            time.perf_counter() - started)
                        loop = asyncio.get_running_loop()
                        deadline = (loop.time() + request.timeout_seconds
                                    if request.timeout_seconds > 0 else None)
                        while True:
                            remaining = None if deadline is None else deadline - loop.time()
                            if remaining is not None and remaining <= 0:
                                return
                            try:
                                if batched:
                                    events = await asyncio.wait_for(
                                        watcher.next_batch(WATCH_BATCH_LIMIT,
                                                           self.watch_batch_window), remaining)
                                    yield frame_repeated(events)
                                else:
                                    yield await asyncio.wait_for(watcher.next(), remaining)
                            except asyncio.TimeoutError:
                                return
                    finally:
                        if watcher is not None:
                            watcher.cache.unregister(watcher)
                            access.watches.release(user)
            return grpc.unary_stream_rpc_method_handler(
                watch, request_deserializer=passthrough, response_serializer=passthrough)

        def relay(method: str, verb: str, request_type: Any, fn: Callable):
            """A server-streaming call whose messages come pre-serialized."""
            decode = decoder(request_type)

            async def handle(raw: bytes, context: grpc.aio.ServicerContext):
                async with CallScope(context, verb, kind.group, resource, access, method) as scope:
                    user = scope.authenticate()
                    request = decode(raw)
                    await admitted(scope, user, method, request)
                    # A log follow or an exec holds a kubelet stream (and a
                    # thread there): it counts as a watch against the limit.
                    access.open_watch(user, scope.outcome)
                    try:
                        async for data in fn(request):
                            yield data
                    finally:
                        access.watches.release(user)
            return grpc.unary_stream_rpc_method_handler(
                handle, request_deserializer=passthrough, response_serializer=passthrough)

        async def create(obj):
            return await registry.create(obj)

        async def get(req):
            return await registry.get(req.namespace, req.name)

        async def list_(req):
            return await registry.list(req.namespace, req.label_selector, req.field_selector,
                                       req.limit, req.continue_token, req.resource_version)

        async def update(obj):
            return await registry.update(obj)

        async def update_status(obj):
            return await registry.update(obj, status=True)

        async def delete(req):
            pre = req.preconditions
            return await registry.delete(
                req.namespace, req.name,
                uid=pre.uid if pre.HasField("uid") else None,
                resource_version=pre.resource_version if pre.HasField("resource_version")
                else None,
                grace_period=req.grace_period_seconds if req.HasField("grace_period_seconds")
                else None,
                propagation_policy=req.propagation_policy)

        methods = {
            "Create": unary("Create", "create", msg, create, check_size=True),
            "Get": unary("Get", "get", meta_pb2.GetRequest, get),
            "List": unary("List", "list", meta_pb2.ListRequest, list_),
            "Update": unary("Update", "update", msg, update, check_size=True),
            "Delete": unary("Delete", "delete", meta_pb2.DeleteRequest, delete),
            "Watch": watch_handler("Watch", batched=False),
            "WatchBatched": watch_handler("WatchBatched", batched=True),
        }
        if kind.has_status:
            methods["UpdateStatus"] = unary("UpdateStatus", "update_status", msg, update_status,
                                            check_size=True)
        if kind.kind == "Pod":
            methods["Bind"] = unary("Bind", "bind", core.Binding, registry.bind)
            methods["Logs"] = relay("Logs", "logs", core.PodLogsRequest, self.kubelets.logs)
            methods["Exec"] = relay("Exec", "exec", core.ExecRequest, self.kubelets.exec)
        return grpc.method_handlers_generic_handler(kind.service, methods)
