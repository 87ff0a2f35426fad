"""Informers against a real API server: the cache follows the server through
bursts, API server restarts and OUT_OF_RANGE relists, and handlers see every
change once, in order."""

from __future__ import annotations

import asyncio
import contextlib

from services.machinery import Client
from services.machinery.informer import Informer, SharedInformerFactory
from services.machinery.ratelimit import Backoff
from services.machinery.store import POD_NODE_INDEX, DeletedFinalStateUnknown, pod_node_index
from tests.integration.conftest import WATCH_CACHE_SIZE
from tests.support import objects
from tests.support.processes import wait_until


class Recorder:
    """Every handler call, per object name, as (verb, resourceVersion)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, str]]] = {}
        self.tombstones: list[str] = []

    def _log(self, name: str, verb: str, rv: str) -> None:
        self.calls.setdefault(name, []).append((verb, rv))

    def on_add(self, obj) -> None:
        self._log(obj.metadata.name, "add", obj.metadata.resource_version)

    async def on_update(self, old, new) -> None:
        assert old.metadata.name == new.metadata.name
        self._log(new.metadata.name, "update", new.metadata.resource_version)

    def on_delete(self, obj) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            self.tombstones.append(obj.obj.metadata.name)
            obj = obj.obj
        self._log(obj.metadata.name, "delete", obj.metadata.resource_version)

    def replay(self) -> dict[str, str]:
        """The state the handlers were told about: name -> resourceVersion."""
        state: dict[str, str] = {}
        for name, calls in self.calls.items():
            for verb, rv in calls:
                if verb == "delete":
                    state.pop(name, None)
                else:
                    state[name] = rv
        return state

    def assert_no_duplicates(self) -> None:
        """Per object: add, updates, delete (then maybe a fresh add), with the
        version strictly rising; a delete carries the last version seen (a
        tombstone) or the deletion's own, later one."""
        for name, calls in self.calls.items():
            last, present = 0, False
            for verb, rv in calls:
                assert present == (verb != "add"), f"{name}: {verb} out of order: {calls}"
                present = verb != "delete"
                if verb == "delete":
                    assert int(rv) >= last, f"{name}: delete went back: {calls}"
                else:
                    assert int(rv) > last, f"{name}: version repeated or went back: {calls}"
                last = int(rv)


async def server_state(client: Client, kind: str, namespace: str) -> dict[str, str]:
    listed = await client.resource(kind).list_all(namespace)
    return {o.metadata.name: o.metadata.resource_version for o in listed.items}


def cache_state(informer: Informer) -> dict[str, str]:
    return {o.metadata.name: o.metadata.resource_version for o in informer.store.list()}


async def wait_in_sync(client, informer: Informer, recorder: Recorder, kind: str,
                       namespace: str, timeout: float = 30.0) -> dict[str, str]:
    async def same():
        want = await server_state(client, kind, namespace)
        return want if cache_state(informer) == want == recorder.replay() else None
    return await wait_until(same, timeout=timeout, interval=0.1,
                            message="informer cache and handlers to match the server")


@contextlib.asynccontextmanager
async def running(informer: Informer):
    task = asyncio.ensure_future(informer.run())
    try:
        assert await informer.wait_for_sync(timeout=30)
        yield informer
    finally:
        informer.stop()
        await asyncio.wait_for(task, 10)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, factor=2.0, cap=0.5, jitter=0.2)


async def test_informer_cache_matches_server_after_a_burst_and_handlers_see_each_change_once(
        client, namespace):
    pods = client.resource("pods")
    await pods.create(objects.pod("pre-existing", namespace))
    recorder = Recorder()
    informer = Informer(client, "pods", namespace=namespace)
    informer.add_event_handler(recorder.on_add, recorder.on_update, recorder.on_delete)
    expected: dict[str, list[tuple[str, str]]] = {}
    async with running(informer):
        expected["pre-existing"] = [("add", informer.store.get_by_key(
            f"{namespace}/pre-existing").metadata.resource_version)]
        for i in range(30):
            created = await pods.create(objects.pod(f"p{i}", namespace))
            expected[f"p{i}"] = [("add", created.metadata.resource_version)]
        for i in range(0, 30, 2):
            pod = await pods.get(f"p{i}", namespace)
            for round_ in range(2):
                pod.metadata.labels["round"] = str(round_)
                pod = await pods.update(pod)
                expected[f"p{i}"].append(("update", pod.metadata.resource_version))
        for i in range(0, 30, 3):
            await pods.delete(f"p{i}", namespace)
            expected[f"p{i}"].append(("delete", None))
        await pods.delete("pre-existing", namespace)
        expected["pre-existing"].append(("delete", None))

        state = await wait_in_sync(client, informer, recorder, "pods", namespace)
    assert sorted(state) == sorted(f"p{i}" for i in range(30) if i % 3)
    got = {name: [(verb, rv if verb != "delete" else None) for verb, rv in calls]
           for name, calls in recorder.calls.items()}
    assert got == expected
    assert recorder.tombstones == []  # the watch saw every delete itself
    assert informer.relists == 0
    recorder.assert_no_duplicates()


async def test_informer_survives_apiserver_restart_without_duplicates_or_losses(
        client, namespace, apiserver):
    res = client.resource("endpoints")
    for i in range(10):
        await res.create(objects.endpoints(f"e{i}", namespace))
    recorder = Recorder()
    informer = Informer(client, "endpoints", namespace=namespace, backoff=fast_backoff())
    informer.add_event_handler(recorder.on_add, recorder.on_update, recorder.on_delete)
    async with running(informer):
        for i in range(5):
            obj = await res.get(f"e{i}", namespace)
            obj.metadata.labels["v"] = "1"
            await res.update(obj)
        before = await wait_in_sync(client, informer, recorder, "endpoints", namespace)
        calls_before = {name: list(calls) for name, calls in recorder.calls.items()}

        await asyncio.to_thread(apiserver.restart)

        # Writes after the restart (the client retries until the server is back).
        for i in range(5, 10):
            obj = await res.get(f"e{i}", namespace)
            obj.metadata.labels["v"] = "2"
            await res.update(obj)
        await res.delete("e0", namespace)
        await res.create(objects.endpoints("after", namespace))
        after = await wait_in_sync(client, informer, recorder, "endpoints", namespace)

    assert len(before) == 10
    assert sorted(after) == sorted([f"e{i}" for i in range(1, 10)] + ["after"])
    for name, calls in calls_before.items():
        assert recorder.calls[name][:len(calls)] == calls  # nothing re-delivered or rewritten
    recorder.assert_no_duplicates()
    assert recorder.calls["e0"][-1][0] == "delete"


class CuttableProxy:
    """A TCP proxy in front of the API server that the test can cut, so one
    client is disconnected while the server (and other clients) carry on."""

    def __init__(self, upstream: str):
        self.upstream_host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.open = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.close()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host,
                                                                 self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(up_writer)


async def test_informer_relists_after_out_of_range_with_tombstones_for_missed_deletes(
        client, namespace, apiserver):
    res = client.resource("endpoints")
    for i in range(6):
        await res.create(objects.endpoints(f"keep{i}", namespace))
    proxy = CuttableProxy(apiserver.address)
    address = await proxy.start()
    recorder = Recorder()
    try:
        async with Client([address], timeout=5.0, retry_for=1.0) as cut_client:
            informer = Informer(cut_client, "endpoints", namespace=namespace,
                                backoff=fast_backoff())
            informer.add_event_handler(recorder.on_add, recorder.on_update, recorder.on_delete)
            async with running(informer):
                await wait_in_sync(client, informer, recorder, "endpoints", namespace)
                rv_before = informer.last_sync_resource_version
                proxy.cut()

                # While it is away: deletes it will miss, an update, and more
                # changes than the watch cache keeps.
                await res.delete("keep0", namespace)
                await res.delete("keep1", namespace)
                obj = await res.get("keep2", namespace)
                obj.metadata.labels["missed"] = "update"
                await res.update(obj)
                for i in range(WATCH_CACHE_SIZE + 20):
                    await res.create(objects.endpoints(f"new{i:03d}", namespace))

                proxy.restore()
                state = await wait_in_sync(client, informer, recorder, "endpoints",
                                           namespace, timeout=60)
                assert informer.relists >= 1
                assert int(informer.last_sync_resource_version) > int(rv_before)

                # And the watch after the relist works.
                await res.delete("keep3", namespace)
                state = await wait_in_sync(client, informer, recorder, "endpoints", namespace)
    finally:
        await proxy.close()

    assert sorted(recorder.tombstones) == ["keep0", "keep1"]
    assert "keep3" not in state and len(state) == 3 + WATCH_CACHE_SIZE + 20
    assert [verb for verb, _ in recorder.calls["keep2"]] == ["add", "update"]
    assert [verb for verb, _ in recorder.calls["keep4"]] == ["add"]
    assert [verb for verb, _ in recorder.calls["keep3"]] == ["add", "delete"]
    assert all(recorder.calls[f"new{i:03d}"] == [("add", state[f"new{i:03d}"])]
               for i in range(WATCH_CACHE_SIZE + 20))
    recorder.assert_no_duplicates()


async def test_informer_label_selector_sees_objects_leave_and_enter(client, namespace):
    pods = client.resource("pods")
    recorder = Recorder()
    informer = Informer(client, "pods", namespace=namespace, label_selector="app=web")
    informer.add_event_handler(recorder.on_add, recorder.on_update, recorder.on_delete)
    async with running(informer):
        pod = await pods.create(objects.pod("w", namespace, labels={"app": "web"}))
        await pods.create(objects.pod("other", namespace, labels={"app": "db"}))
        pod.metadata.labels["app"] = "db"
        pod = await pods.update(pod)
        await wait_until(lambda: "w" not in cache_state(informer) and "w" in recorder.calls
                         and recorder.calls["w"][-1][0] == "delete", timeout=15)
        pod.metadata.labels["app"] = "web"
        await pods.update(pod)
        await wait_until(lambda: "w" in cache_state(informer), timeout=15)
    assert [verb for verb, _ in recorder.calls["w"]] == ["add", "delete", "add"]
    assert "other" not in recorder.calls


async def test_shared_informer_factory_shares_syncs_and_indexes(client, namespace):
    pods = client.resource("pods")
    await pods.create(objects.pod("on-n1", namespace, node="n1"))
    await pods.create(objects.pod("pending", namespace))
    factory = SharedInformerFactory(client)
    informer = factory.informer("pods", namespace)
    assert factory.informer("po", namespace) is informer
    informer.store.add_indexers({POD_NODE_INDEX: pod_node_index})
    factory.start()
    try:
        assert await factory.wait_for_cache_sync(timeout=30)
        assert informer.has_synced
        assert [p.metadata.name for p in informer.store.by_index(POD_NODE_INDEX, "n1")] == [
            "on-n1"]
        late = factory.informer("services", namespace)  # started on creation
        assert await late.wait_for_sync(timeout=30)
    finally:
        await factory.stop()
