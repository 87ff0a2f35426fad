"""The endpoints controller against a real API server: Endpoints follow
pods becoming ready, unready and deleted, with named ports resolved per
pod; selectorless services are left alone; Endpoints go with the Service."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.endpoints import EndpointsController
from services.machinery import NotFound
from tests.support import objects
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(90)


def web_service(namespace: str, name: str = "web") -> core.Service:
    svc = objects.service(name, namespace, selector={"app": name})
    svc.spec.ports[0].target_port.str_value = "web"
    return svc


async def make_pod(client, namespace: str, name: str, ip: str, *, port: int = 8080,
                   ready: bool = True, app: str = "web") -> core.Pod:
    pod = objects.pod(name, namespace, labels={"app": app})
    pod.spec.containers[0].ports.add(name="web", container_port=port, protocol="TCP")
    created = await client.resource("pods").create(pod)
    return await set_status(client, created, ip=ip, ready=ready)


async def set_status(client, pod: core.Pod, *, ip: str | None = None,
                     ready: bool = True) -> core.Pod:
    """Play the kubelet: phase, IP and the Ready condition."""
    current = await client.resource("pods").get(pod.metadata.name, pod.metadata.namespace)
    current.status.phase = "Running"
    if ip is not None:
        current.status.pod_ip = ip
        del current.status.pod_ips[:]
        current.status.pod_ips.add(ip=ip)
    del current.status.conditions[:]
    current.status.conditions.add(type="Ready", status="True" if ready else "False")
    return await client.resource("pods").update_status(current)


async def endpoints_of(client, namespace: str, name: str = "web") -> core.Endpoints | None:
    try:
        return await client.resource("endpoints").get(name, namespace)
    except NotFound:
        return None


def shape(ep: core.Endpoints | None) -> dict | None:
    """{ports: (ready ips, not-ready ips)} for easy comparison."""
    if ep is None:
        return None
    return {tuple(p.port for p in s.ports): (sorted(a.ip for a in s.addresses),
                                             sorted(a.ip for a in s.not_ready_addresses))
            for s in ep.subsets}


async def wait_for_shape(client, namespace: str, expected: dict | None, name: str = "web"):
    async def check():
        return shape(await endpoints_of(client, namespace, name)) == expected
    await wait_until(check, timeout=20, message=f"endpoints {namespace}/{name} == {expected}")


async def test_endpoints_follow_pod_readiness_and_deletion(client, namespace, start_controllers):
    await start_controllers(EndpointsController)
    await client.resource("services").create(web_service(namespace))
    await wait_for_shape(client, namespace, {})

    a = await make_pod(client, namespace, "a", "10.244.1.1", port=8080)
    b = await make_pod(client, namespace, "b", "10.244.1.2", port=9090)
    await make_pod(client, namespace, "c", "10.244.1.3", port=8080, ready=False)
    await make_pod(client, namespace, "other", "10.244.1.9", app="db")
    await wait_for_shape(client, namespace, {(8080,): (["10.244.1.1"], ["10.244.1.3"]),
                                             (9090,): (["10.244.1.2"], [])})

    ep = await endpoints_of(client, namespace)
    addr = next(a for s in ep.subsets for a in s.addresses if a.ip == "10.244.1.1")
    assert (addr.target_ref.kind, addr.target_ref.name, addr.target_ref.uid) == (
        "Pod", "a", a.metadata.uid)
    assert dict(ep.metadata.labels) == {}

    await set_status(client, a, ready=False)
    await wait_for_shape(client, namespace, {(8080,): ([], ["10.244.1.1", "10.244.1.3"]),
                                             (9090,): (["10.244.1.2"], [])})

    await client.resource("pods").delete(b.metadata.name, namespace)
    await wait_for_shape(client, namespace, {(8080,): ([], ["10.244.1.1", "10.244.1.3"])})


async def test_endpoints_restored_when_changed_behind_our_back(client, namespace,
                                                               start_controllers):
    await start_controllers(EndpointsController)
    await client.resource("services").create(web_service(namespace))
    await make_pod(client, namespace, "a", "10.244.3.1")
    await wait_for_shape(client, namespace, {(8080,): (["10.244.3.1"], [])})
    ep = await endpoints_of(client, namespace)
    del ep.subsets[:]
    await client.resource("endpoints").update(ep)
    await wait_for_shape(client, namespace, {(8080,): (["10.244.3.1"], [])})


async def test_endpoints_selectorless_service_left_alone(client, namespace, start_controllers):
    await start_controllers(EndpointsController)
    manual = objects.service("manual", namespace)
    manual.spec.selector.clear()
    await client.resource("services").create(manual)
    await client.resource("endpoints").create(objects.endpoints("manual", namespace,
                                                                ips=("192.168.5.5",)))
    # A selector service in the same namespace, processed after: a barrier.
    await client.resource("services").create(web_service(namespace))
    await make_pod(client, namespace, "a", "10.244.4.1")
    await wait_for_shape(client, namespace, {(8080,): (["10.244.4.1"], [])})
    ep = await endpoints_of(client, namespace, "manual")
    assert [a.ip for a in ep.subsets[0].addresses] == ["192.168.5.5"]


async def test_endpoints_deleted_with_their_service(client, namespace, start_controllers):
    await start_controllers(EndpointsController)
    await client.resource("services").create(web_service(namespace))
    await make_pod(client, namespace, "a", "10.244.5.1")
    await wait_for_shape(client, namespace, {(8080,): (["10.244.5.1"], [])})
    await client.resource("services").delete("web", namespace)
    await wait_for_shape(client, namespace, None)


async def test_endpoints_created_for_services_existing_before_start(client, namespace,
                                                                   start_controllers):
    await client.resource("services").create(web_service(namespace))
    await make_pod(client, namespace, "a", "10.244.6.1")
    await start_controllers(EndpointsController)
    await wait_for_shape(client, namespace, {(8080,): (["10.244.6.1"], [])})
