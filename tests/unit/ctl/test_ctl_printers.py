"""kubectl-shaped tables, ages and output formats, with an injected now."""

from __future__ import annotations

import json

import pytest
import yaml

from services.api import kinds
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.ctl import printers
from services.ctl.printers import TableOptions
from tests.support import objects

NOW = 1_795_534_241  # 2026-11-24T15:30:41Z


def _created(obj, seconds_ago: int):
    obj.metadata.creation_timestamp.seconds = NOW - seconds_ago
    return obj


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (150, "2m30s"), (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 60 * 5, "3h5m"), (8 * 3600, "8h"), (47 * 3600, "47h"), (2 * 86400, "2d"),
    (2 * 86400 + 3600 * 5, "2d5h"), (8 * 86400, "8d"), (400 * 86400, "400d"),
    (365 * 2 * 86400, "2y"), (365 * 3 * 86400 + 86400 * 10, "3y10d"), (365 * 9 * 86400, "9y"),
])
def test_printers_human_duration_matches_kubectl(seconds, text):
    assert printers.human_duration(seconds) == text


def test_printers_age_of_unset_timestamp_is_unknown():
    assert printers.age(core.Pod().metadata.creation_timestamp, NOW) == "<unknown>"


def _running_pod(name: str, seconds_ago: int) -> core.Pod:
    pod = _created(objects.pod(name, node="node-1"), seconds_ago)
    pod.status.phase = "Running"
    pod.status.pod_ip = "10.244.1.7"
    status = pod.status.container_statuses.add(name="main", ready=True)
    status.state.running.started_at.seconds = NOW - seconds_ago
    return pod


def test_printers_pod_table_layout():
    web = _running_pod("web", 5)
    pending = _created(objects.pod("api-server-long-name"), 3 * 86400)
    lines = printers.table(kinds.BY_KIND["Pod"], [web, pending], NOW)
    assert lines == [
        "NAME                   READY   STATUS    RESTARTS   AGE",
        "web                    1/1     Running   0          5s",
        "api-server-long-name   0/1     Pending   0          3d",
    ]


def test_printers_pod_table_wide_and_all_namespaces():
    web = _running_pod("web", 5)
    lines = printers.table(kinds.BY_KIND["Pod"], [web], NOW,
                           TableOptions(wide=True, all_namespaces=True))
    assert lines == [
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP           NODE",
        "default     web    1/1     Running   0          5s    10.244.1.7   node-1",
    ]


def test_printers_pod_status_reasons():
    pod = objects.pod("p")
    status = pod.status.container_statuses.add(name="main", restart_count=4)
    status.state.waiting.reason = "CrashLoopBackOff"
    status.last_state.terminated.finished_at.seconds = NOW - 90
    assert printers.pod_status(pod)[0] == "CrashLoopBackOff"
    row = printers.table_row(kinds.BY_KIND["Pod"], pod, NOW, TableOptions())
    assert row[1:4] == ["0/1", "CrashLoopBackOff", "4 (90s ago)"]
    pod.metadata.deletion_timestamp.seconds = NOW
    assert printers.pod_status(pod)[0] == "Terminating"


def test_printers_pod_status_init_containers():
    pod = objects.pod("p")
    pod.spec.init_containers.add(name="init", image="busybox")
    pod.status.phase = "Pending"
    pod.status.init_container_statuses.add(name="init").state.running.SetInParent()
    assert printers.pod_status(pod)[0] == "Init:0/1"
    pod.status.init_container_statuses[0].state.Clear()
    pod.status.init_container_statuses[0].state.terminated.exit_code = 2
    assert printers.pod_status(pod)[0] == "Init:ExitCode:2"


def test_printers_service_table_ports_and_types():
    svc = _created(objects.service("web"), 120)
    svc.spec.type = "NodePort"
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.ports[0].node_port = 30080
    svc.spec.ports.add(port=53, protocol="UDP")
    lines = printers.table(kinds.BY_KIND["Service"], [svc], NOW)
    assert lines == [
        "NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE",
        "web    NodePort   10.96.0.10   <none>        80:30080/TCP,53/UDP   2m",
    ]


def test_printers_node_table():
    node = _created(objects.node("node-1"), 86400)
    node.metadata.labels["node-role.kubernetes.io/control-plane"] = ""
    node.status.conditions.add(type="Ready", status="True")
    node.status.node_info.kubelet_version = "v0.1.0"
    node.status.addresses.add(type="InternalIP", address="192.168.1.10")
    node.spec.unschedulable = True
    lines = printers.table(kinds.BY_KIND["Node"], [node], NOW, TableOptions(wide=True))
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                                "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    assert lines[1].split()[:6] == ["node-1", "Ready,SchedulingDisabled", "control-plane", "24h",
                                    "v0.1.0", "192.168.1.10"]


def test_printers_deployment_and_replicaset_tables():
    d = _created(objects.deployment("web", replicas=3), 60)
    d.status.ready_replicas, d.status.updated_replicas, d.status.available_replicas = 2, 3, 2
    assert printers.table(kinds.BY_KIND["Deployment"], [d], NOW) == [
        "NAME   READY   UP-TO-DATE   AVAILABLE   AGE",
        "web    2/3     3            2           60s",
    ]
    rs = _created(objects.replicaset("web-5d8f", replicas=2), 60)
    rs.status.replicas, rs.status.ready_replicas = 2, 1
    assert printers.table(kinds.BY_KIND["ReplicaSet"], [rs], NOW) == [
        "NAME       DESIRED   CURRENT   READY   AGE",
        "web-5d8f   2         2         1       60s",
    ]
    wide = printers.table(kinds.BY_KIND["Deployment"], [d], NOW, TableOptions(wide=True))
    assert wide[1].split()[-3:] == ["main", "busybox:latest", "app=web"]


def test_printers_deployment_without_replicas_means_one():
    d = apps.Deployment()
    d.metadata.name = "x"
    assert printers.table_row(kinds.BY_KIND["Deployment"], d, NOW, TableOptions())[1] == "0/1"


def test_printers_endpoints_limit_to_three():
    ep = objects.endpoints("web", ips=("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"))
    assert printers.endpoints_text(ep) == \
        "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."
    assert printers.endpoints_text(core.Endpoints()) == "<none>"


def test_printers_event_table_has_no_name_column():
    ev = objects.event("web.1", about="web")
    ev.last_timestamp.seconds = NOW - 30
    lines = printers.table(kinds.BY_KIND["Event"], [ev], NOW)
    assert lines == [
        "LAST SEEN   TYPE     REASON   OBJECT    MESSAGE",
        "30s         Normal   Tested   pod/web   a test event",
    ]
    lines = printers.table(kinds.BY_KIND["Event"], [ev], NOW, TableOptions(all_namespaces=True))
    assert lines[0].startswith("NAMESPACE   LAST SEEN")


def test_printers_namespace_and_lease_tables():
    ns = _created(objects.namespace("shop"), 10)
    assert printers.table(kinds.BY_KIND["Namespace"], [ns], NOW) == [
        "NAME   STATUS   AGE", "shop   Active   10s"]
    lease = _created(objects.lease("kube-scheduler", holder="host-a_1234"), 10)
    assert printers.table(kinds.BY_KIND["Lease"], [lease], NOW) == [
        "NAME             HOLDER        AGE", "kube-scheduler   host-a_1234   10s"]


def test_printers_cluster_scoped_kinds_get_no_namespace_column():
    ns = _created(objects.namespace("shop"), 10)
    lines = printers.table(kinds.BY_KIND["Namespace"], [ns], NOW, TableOptions(all_namespaces=True))
    assert lines[0] == "NAME   STATUS   AGE"


def test_printers_show_kind_and_labels():
    pod = _running_pod("web", 5)
    pod.metadata.labels.update({"app": "web", "tier": "front"})
    d = _created(objects.deployment("web"), 5)
    assert printers.table_row(kinds.BY_KIND["Pod"], pod, NOW,
                              TableOptions(show_kind=True, show_labels=True)) == \
        ["pod/web", "1/1", "Running", "0", "5s", "app=web,tier=front"]
    assert printers.table_row(kinds.BY_KIND["Deployment"], d, NOW,
                              TableOptions(show_kind=True))[0] == "deployment.apps/web"


def test_printers_watch_table_keeps_columns_aligned():
    headers = ["NAME", "STATUS"]
    table = printers.WatchTable(headers, [["web", "Running"]])
    assert table.line(headers) == "NAME   STATUS"
    assert table.line(["a-much-longer-name", "Pending"]) == "a-much-longer-name   Pending"
    assert table.line(["web", "Running"]) == "web                  Running"


def test_printers_structured_one_object_or_a_list():
    pod = objects.pod("web")
    single = json.loads(printers.structured([pod], "json", single=True))
    assert single["kind"] == "Pod" and single["metadata"]["name"] == "web"
    several = json.loads(printers.structured([pod, objects.pod("api")], "json", single=False))
    assert several["kind"] == "List" and several["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in several["items"]] == ["web", "api"]
    assert several["metadata"] == {"resourceVersion": ""}


def test_printers_yaml_quotes_strings_that_look_like_other_types():
    pod = objects.pod("web")
    pod.metadata.resource_version = "42"
    pod.metadata.creation_timestamp.seconds = NOW
    pod.metadata.labels["enabled"] = "true"
    text = printers.structured([pod], "yaml", single=True)
    assert 'resourceVersion: "42"' in text
    assert 'creationTimestamp: "2026-11-24T15:30:41Z"' in text
    assert 'enabled: "true"' in text
    assert text.startswith("apiVersion: v1\nkind: Pod\nmetadata:\n")
    assert yaml.safe_load(text)["metadata"]["resourceVersion"] == "42"


def test_printers_object_name():
    assert printers.object_name(kinds.BY_KIND["Pod"], objects.pod("web")) == "pod/web"
    assert printers.object_name(kinds.BY_KIND["Deployment"], objects.deployment("w")) == \
        "deployment.apps/w"
    assert printers.object_name(kinds.BY_KIND["Lease"], objects.lease("l")) == \
        "lease.coordination.k8s.io/l"


def test_printers_node_status_unknown_ready_is_notready_like_kubectl():
    from services.api.gen.kybernetes.core.v1 import types_pb2 as core
    node = core.Node()
    assert printers.node_status(node) == "Unknown"
    node.status.conditions.add(type="Ready", status="Unknown")
    assert printers.node_status(node) == "NotReady"
    node.status.conditions[0].status = "True"
    node.spec.unschedulable = True
    assert printers.node_status(node) == "Ready,SchedulingDisabled"


# --- RBAC and quotas ------------------------------------------------------------------------


def test_printers_role_tables_show_created_at():
    role = _created(objects.role("pod-reader"), 10)
    assert printers.table(kinds.BY_KIND["Role"], [role], NOW) == [
        "NAME         CREATED AT", "pod-reader   2026-11-24T15:30:31Z"]
    cluster_role = _created(objects.cluster_role("system:node"), 10)
    assert printers.table(kinds.BY_KIND["ClusterRole"], [cluster_role], NOW,
                          TableOptions(all_namespaces=True)) == [
        "NAME          CREATED AT", "system:node   2026-11-24T15:30:31Z"]


def test_printers_binding_tables_show_the_role_and_wide_subjects():
    binding = _created(objects.role_binding("read-pods", role_name="pod-reader", subjects=[
        objects.subject("User", "jane"), objects.subject("User", "joe"),
        objects.subject("Group", "devs"), objects.subject("ServiceAccount", "ci", "build")]),
        120)
    kind = kinds.BY_KIND["RoleBinding"]
    assert printers.table(kind, [binding], NOW) == [
        "NAME        ROLE              AGE", "read-pods   Role/pod-reader   2m"]
    assert printers.table(kind, [binding], NOW, TableOptions(wide=True)) == [
        "NAME        ROLE              AGE   USERS       GROUPS   SERVICEACCOUNTS",
        "read-pods   Role/pod-reader   2m    jane, joe   devs     build/ci"]
    cluster = _created(objects.cluster_role_binding("admins", role_name="cluster-admin"), 5)
    assert printers.table(kinds.BY_KIND["ClusterRoleBinding"], [cluster], NOW) == [
        "NAME     ROLE                        AGE", "admins   ClusterRole/cluster-admin   5s"]


def test_printers_quota_table_shows_used_over_hard_like_kubectl():
    quota = _created(objects.resource_quota("compute", hard={
        "pods": "10", "requests.cpu": "2", "requests.memory": "4Gi"}), 30)
    quota.status.hard.update(quota.spec.hard)
    quota.status.used.update({"pods": "1", "requests.cpu": "100m"})
    request = "pods: 1/10, requests.cpu: 100m/2, requests.memory: 0/4Gi"
    assert printers.table(kinds.BY_KIND["ResourceQuota"], [quota], NOW) == [
        "NAME      AGE   " + "REQUEST".ljust(len(request) + 3) + "LIMIT",
        f"compute   30s   {request}",
    ]


def test_printers_quota_uses_spec_until_status_is_recorded():
    quota = objects.resource_quota("q", hard={"pods": "3"})
    assert printers.quota_usage(quota) == [("pods", "0", "3")]
    quota.status.hard["pods"] = "2"
    assert printers.quota_usage(quota) == [("pods", "0", "2")]


def test_printers_rbac_object_names_carry_the_group():
    assert printers.object_name(kinds.BY_KIND["ClusterRole"], objects.cluster_role("view")) == \
        "clusterrole.rbac.authorization.k8s.io/view"
    assert printers.object_name(kinds.BY_KIND["ResourceQuota"],
                                objects.resource_quota("q")) == "resourcequota/q"
