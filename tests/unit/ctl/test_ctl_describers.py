"""kubectl-like describe text from objects and their related objects."""

from __future__ import annotations

from services.ctl import describers
from services.ctl.describers import Related
from tests.support import objects

NOW = 1_795_534_241  # 2026-11-24T15:30:41Z


def _event(reason: str, seconds_ago: int, count: int = 1, first_ago: int = 0):
    ev = objects.event(f"web.{reason}", about="web")
    ev.reason, ev.message = reason, f"{reason} happened"
    ev.source.component = "kubelet"
    ev.count = count
    ev.last_timestamp.seconds = NOW - seconds_ago
    if first_ago:
        ev.first_timestamp.seconds = NOW - first_ago
    return ev


def _pod():
    pod = objects.pod("web", labels={"app": "web", "tier": "front"}, node="node-1")
    pod.metadata.annotations["note"] = "hi"
    pod.status.phase = "Running"
    pod.status.pod_ip = "10.244.1.7"
    pod.status.host_ip = "192.168.1.10"
    pod.status.pod_ips.add(ip="10.244.1.7")
    container = pod.spec.containers[0]
    container.ports.add(container_port=8080, protocol="TCP")
    container.env.add(name="MODE", value="fast")
    status = pod.status.container_statuses.add(name="main", ready=True, restart_count=1,
                                               image="busybox:latest")
    status.state.running.started_at.seconds = NOW - 60
    pod.status.conditions.add(type="Ready", status="True")
    return pod


def test_describers_pod_has_kubectl_sections():
    text = describers.describe("Pod", _pod(), Related(events=[]), NOW)
    lines = text.splitlines()
    assert lines[0] == "Name:             web"
    assert "Namespace:        default" in lines
    assert "Node:             node-1/192.168.1.10" in lines
    assert "Labels:           app=web" in lines
    assert "                  tier=front" in lines
    assert "Annotations:      note: hi" in lines
    assert "Status:           Running" in lines
    assert "IP:               10.244.1.7" in lines
    assert "Containers:" in lines and "  main:" in lines
    assert any(line.startswith("    Image:") and line.endswith("busybox:latest") for line in lines)
    assert any(line.startswith("    Port:") and line.endswith("8080/TCP") for line in lines)
    assert any(line.startswith("    State:") and line.endswith("Running") for line in lines)
    assert any(line.startswith("      Started:") and "Tue, 24 Nov 2026 15:29:41 +0000" in line
               for line in lines)
    assert any(line.startswith("    Restart Count:") and line.endswith("1") for line in lines)
    assert "      MODE:  fast" in lines
    assert "Conditions:" in lines
    assert any(line.split() == ["Ready", "True"] and line.startswith("  ") for line in lines)
    assert lines[-1].startswith("Events:") and lines[-1].endswith("<none>")


def test_describers_events_table_sorted_with_counts():
    events = [_event("Started", 5), _event("Pulled", 600, count=3, first_ago=900)]
    text = describers.describe("Pod", _pod(), Related(events=events), NOW)
    tail = text.splitlines()[-5:]
    assert tail == [
        "Events:",
        "  Type    Reason   Age                From     Message",
        "  ----    ------   ----               ----     -------",
        "  Normal  Pulled   10m (x3 over 15m)  kubelet  Pulled happened",
        "  Normal  Started  5s                 kubelet  Started happened",
    ]


def test_describers_events_not_fetched_means_no_section():
    assert "Events:" not in describers.describe("Pod", _pod(), Related(events=None), NOW)


def test_describers_service_lists_ports_and_endpoints():
    svc = objects.service("web")
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.ports[0].node_port = 30080
    ep = objects.endpoints("web", ips=("10.244.1.7", "10.244.2.9"))
    lines = describers.describe("Service", svc, Related(events=[], endpoints=ep), NOW).splitlines()
    assert "Selector:          app=web" in lines
    assert "Type:              ClusterIP" in lines
    assert "IP:                10.96.0.10" in lines
    assert "Port:              http  80/TCP" in lines
    assert "TargetPort:        8080/TCP" in lines
    assert "NodePort:          http  30080/TCP" in lines
    assert "Endpoints:         10.244.1.7:8080,10.244.2.9:8080" in lines
    no_endpoints = describers.describe("Service", svc, Related(events=[]), NOW)
    assert "Endpoints:         <none>" in no_endpoints.splitlines()


def test_describers_deployment_replicas_and_strategy():
    d = objects.deployment("web", replicas=3)
    d.status.replicas, d.status.updated_replicas, d.status.available_replicas = 3, 3, 2
    d.status.unavailable_replicas = 1
    d.spec.strategy.rolling_update.max_surge.int_value = 1
    rs = objects.replicaset("web-abc", replicas=3)
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels["pod-template-hash"] = "abc"
    rs.status.replicas = 3
    lines = describers.describe("Deployment", d, Related(events=[], replica_sets=[rs]),
                                NOW).splitlines()
    assert "Replicas:               3 desired | 3 updated | 3 total | 2 available | " \
           "1 unavailable" in lines
    assert "StrategyType:           RollingUpdate" in lines
    assert "RollingUpdateStrategy:  25% max unavailable, 1 max surge" in lines
    assert "Pod Template:" in lines
    assert any(line.split(None, 1) == ["NewReplicaSet:", "web-abc (3/3 replicas created)"]
               for line in lines)


def test_describers_every_kind_has_a_describer():
    from services.api import kinds
    for info in kinds.KINDS:
        sample = objects.sample(info.kind, "x", "default")
        text = describers.describe(info.kind, sample, Related(events=[]), NOW)
        assert text.startswith("Name:")


def test_describers_generic_fallback_shows_metadata_and_fields():
    lease = objects.lease("l", holder="me")
    text = describers.describe_generic(lease, Related(events=[]), NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["Name:", "l"]
    assert "Spec:" in lines and "  holderIdentity: me" in lines
    assert lines[-1].split() == ["Events:", "<none>"]


# --- RBAC and quotas ------------------------------------------------------------------------


def test_describers_role_rules_table_like_kubectl():
    from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
    role = objects.role("pod-reader", rules=[
        objects.policy_rule(("watch", "get", "list"), ("pods",)),
        objects.policy_rule(("get",), ("pods/log",)),
        objects.policy_rule(("update",), ("deployments", "deployments/scale"), ("apps",)),
        objects.policy_rule(("get",), ("configmaps",), names=("settings", "flags")),
        objects.policy_rule(("create",), ("pods",)),
    ])
    text = describers.describe("Role", role, Related(events=[]), NOW)
    assert text.splitlines() == [
        "Name:         pod-reader",
        "Labels:       <none>",
        "Annotations:  <none>",
        "PolicyRule:",
        "  Resources               Non-Resource URLs  Resource Names  Verbs",
        "  ---------               -----------------  --------------  -----",
        "  configmaps              []                 [flags]         [get]",
        "  configmaps              []                 [settings]      [get]",
        "  pods/log                []                 []              [get]",
        "  pods                    []                 []              [get list watch create]",
        "  deployments.apps        []                 []              [update]",
        "  deployments.apps/scale  []                 []              [update]",
    ]
    cluster_role = objects.cluster_role("metrics", rules=[
        rbac.PolicyRule(verbs=["get"], non_resource_urls=["/metrics", "/healthz"])])
    lines = describers.describe("ClusterRole", cluster_role, Related(), NOW).splitlines()
    assert lines[-2:] == ["             [/healthz]         []              [get]",
                          "             [/metrics]         []              [get]"]


def test_describers_binding_shows_role_and_subjects():
    binding = objects.role_binding("read-pods", role_kind="ClusterRole", role_name="view",
                                   subjects=[objects.subject("User", "jane"),
                                             objects.subject("ServiceAccount", "ci", "build")])
    text = describers.describe("RoleBinding", binding, Related(events=[]), NOW)
    assert text.splitlines() == [
        "Name:         read-pods",
        "Labels:       <none>",
        "Annotations:  <none>",
        "Role:",
        "  Kind:  ClusterRole",
        "  Name:  view",
        "Subjects:",
        "  Kind            Name  Namespace",
        "  ----            ----  ---------",
        "  User            jane",
        "  ServiceAccount  ci    build",
    ]
    cluster = objects.cluster_role_binding("admins")
    assert "  Group  readers" in describers.describe("ClusterRoleBinding", cluster,
                                                     Related(), NOW).splitlines()


def test_describers_quota_resource_used_hard_table():
    quota = objects.resource_quota("compute", "team", hard={"pods": "10", "requests.cpu": "2"})
    quota.status.hard.update(quota.spec.hard)
    quota.status.used["pods"] = "3"
    text = describers.describe("ResourceQuota", quota, Related(events=[]), NOW)
    assert text.splitlines() == [
        "Name:         compute",
        "Namespace:    team",
        "Resource      Used  Hard",
        "--------      ----  ----",
        "pods          3     10",
        "requests.cpu  0     2",
    ]


def test_describers_namespace_lists_its_quotas():
    ns = objects.namespace("team")
    assert "No resource quota." in describers.describe("Namespace", ns, Related(), NOW)
    quota = objects.resource_quota("compute", "team", hard={"pods": "10"})
    lines = describers.describe("Namespace", ns, Related(quotas=[quota]), NOW).splitlines()
    start = lines.index("Resource Quotas")
    assert lines[start + 1:start + 5] == [
        "  Name:     compute",
        "  Resource  Used  Hard",
        "  --------  ---   ---",
        "  pods      0     10",
    ]
