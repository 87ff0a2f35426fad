"""``kyb describe`` text, one describer per kind, shaped like kubectl's
(pkg/describe): ``Key:  value`` lines aligned by Go's tabwriter (padding 2),
nested sections indented by two spaces, and the object's events last.

Pure: every describer takes the object, the related objects the command
fetched (events; a service's endpoints; a deployment's replica sets), and
``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from google.protobuf.message import Message

from services.ctl import printers, tabwriter

NONE = "<none>"


@dataclasses.dataclass
class Related:
    """What the command fetched besides the object itself."""

    events: Sequence[Any] | None = None       # None: events were not fetched
    endpoints: Any | None = None              # a service's Endpoints
    replica_sets: Sequence[Any] = ()          # a deployment's ReplicaSets
    pods: Sequence[Any] = ()                  # a node's pods
    quotas: Sequence[Any] = ()                # a namespace's ResourceQuotas


class Writer:
    """kubectl's PrefixWriter: lines at an indent level, tab-separated cells."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, level: int, *cells: Any) -> None:
        self.lines.append("  " * level + "\t".join(str(c) for c in cells))

    def text(self) -> str:
        return "\n".join(tabwriter.tabwrite(self.lines, padding=2)) + "\n"


def timestamp(ts: Message) -> str:
    """RFC 1123 with numeric zone, as kubectl describe prints times."""
    if not (ts.seconds or ts.nanos):
        return NONE
    when = dt.datetime.fromtimestamp(ts.seconds, tz=dt.timezone.utc)
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _map_lines(w: Writer, level: int, title: str, values: Any, sep: str = "=") -> None:
    """``Labels:  a=b`` then one more line per further pair, aligned."""
    items = sorted(values.items())
    if not items:
        w.line(level, f"{title}:", NONE)
        return
    for index, (key, value) in enumerate(items):
        w.line(level, f"{title}:" if index == 0 else "", f"{key}{sep}{value}")


def _metadata(w: Writer, obj: Any, *, namespaced: bool = True) -> None:
    meta = obj.metadata
    w.line(0, "Name:", meta.name)
    if namespaced:
        w.line(0, "Namespace:", meta.namespace)


def _labels_annotations(w: Writer, obj: Any, level: int = 0) -> None:
    _map_lines(w, level, "Labels", obj.metadata.labels)
    _map_lines(w, level, "Annotations", obj.metadata.annotations, sep=": ")


def _controlled_by(w: Writer, obj: Any) -> None:
    for ref in obj.metadata.owner_references:
        if ref.controller:
            w.line(0, "Controlled By:", f"{ref.kind}/{ref.name}")


def _conditions(w: Writer, conditions: Sequence[Any], with_reason: bool = False) -> None:
    if not conditions:
        return
    w.line(0, "Conditions:")
    if with_reason:
        w.line(1, "Type", "Status", "Reason")
        w.line(1, "----", "------", "------")
        for c in conditions:
            w.line(1, c.type, c.status, c.reason or "")
    else:
        w.line(1, "Type", "Status")
        for c in conditions:
            w.line(1, c.type, c.status)


def events_section(w: Writer, events: Sequence[Any] | None, now: float) -> None:
    if events is None:
        return
    if not events:
        w.line(0, "Events:", NONE)
        return
    w.line(0, "Events:")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    for ev in sorted(events, key=lambda e: _seconds(printers.event_last_seen(e))):
        last = printers.age(printers.event_last_seen(ev), now)
        if ev.count > 1 and (ev.first_timestamp.seconds or ev.first_timestamp.nanos):
            first = printers.age(ev.first_timestamp, now)
            when = f"{last} (x{ev.count} over {first})"
        else:
            when = last
        source = ev.source.component or ev.reporting_component
        if ev.source.host:
            source = f"{source}, {ev.source.host}" if source else ev.source.host
        w.line(1, ev.type or "Normal", ev.reason, when, source, ev.message.strip())


def _seconds(ts: Message) -> float:
    return ts.seconds + ts.nanos / 1e9


# --- pods --------------------------------------------------------------------------


def _port_lines(w: Writer, level: int, ports: Sequence[Any]) -> None:
    if not ports:
        return
    texts = [f"{p.container_port}/{p.protocol or 'TCP'}" for p in ports]
    hosts = [f"{p.host_port}/{p.protocol or 'TCP'}" for p in ports]
    label = "Port:" if len(ports) == 1 else "Ports:"
    w.line(level, label, ", ".join(texts))
    w.line(level, "Host " + label, ", ".join(hosts))


def _state_lines(w: Writer, level: int, title: str, state: Any) -> None:
    if state.HasField("running"):
        w.line(level, f"{title}:", "Running")
        w.line(level + 1, "Started:", timestamp(state.running.started_at))
    elif state.HasField("waiting"):
        w.line(level, f"{title}:", "Waiting")
        if state.waiting.reason:
            w.line(level + 1, "Reason:", state.waiting.reason)
        if state.waiting.message:
            w.line(level + 1, "Message:", state.waiting.message)
    elif state.HasField("terminated"):
        term = state.terminated
        w.line(level, f"{title}:", "Terminated")
        if term.reason:
            w.line(level + 1, "Reason:", term.reason)
        if term.message:
            w.line(level + 1, "Message:", term.message)
        w.line(level + 1, "Exit Code:", term.exit_code)
        if term.signal:
            w.line(level + 1, "Signal:", term.signal)
        w.line(level + 1, "Started:", timestamp(term.started_at))
        w.line(level + 1, "Finished:", timestamp(term.finished_at))
    elif title == "State":
        w.line(level, f"{title}:", "Waiting")


def probe_text(probe: Any) -> str:
    """``http-get http://:8080/healthz delay=0s timeout=1s period=10s ...``"""
    def port(value: Any) -> str:
        return str(value.int_value) if value.WhichOneof("value") == "int_value" \
            else value.str_value
    if probe.HasField("exec"):
        how = f"exec {list(probe.exec.command)}"
    elif probe.HasField("http_get"):
        get = probe.http_get
        how = (f"http-get {(get.scheme or 'HTTP').lower()}://{get.host}:{port(get.port)}"
               f"{get.path}")
    elif probe.HasField("tcp_socket"):
        how = f"tcp-socket {probe.tcp_socket.host}:{port(probe.tcp_socket.port)}"
    else:
        how = "unknown"
    return (f"{how} delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds or 1}s "
            f"period={probe.period_seconds or 10}s #success={probe.success_threshold or 1} "
            f"#failure={probe.failure_threshold or 3}")


def _container(w: Writer, container: Any, status: Any | None, level: int,
               with_status: bool = True) -> None:
    w.line(level, f"{container.name}:")
    inner = level + 1
    if with_status:
        w.line(inner, "Container ID:", status.container_id if status else "")
    w.line(inner, "Image:", container.image)
    if with_status:
        w.line(inner, "Image ID:", status.image_id if status else "")
    _port_lines(w, inner, container.ports)
    if not container.ports:
        w.line(inner, "Port:", NONE)
        w.line(inner, "Host Port:", NONE)
    for title, values in (("Command", container.command), ("Args", container.args)):
        if values:
            w.line(inner, f"{title}:")
            for value in values:
                w.line(inner + 1, value)
    if with_status:
        if status is not None:
            _state_lines(w, inner, "State", status.state)
            if any(status.last_state.HasField(f) for f in ("running", "waiting", "terminated")):
                _state_lines(w, inner, "Last State", status.last_state)
            w.line(inner, "Ready:", "True" if status.ready else "False")
            w.line(inner, "Restart Count:", status.restart_count)
        else:
            w.line(inner, "State:", "Waiting")
            w.line(inner, "Ready:", "False")
            w.line(inner, "Restart Count:", 0)
    for title, values in (("Limits", container.resources.limits),
                          ("Requests", container.resources.requests)):
        if values:
            w.line(inner, f"{title}:")
            for key, value in sorted(values.items()):
                w.line(inner + 1, f"{key}:", value)
    for title, field in (("Liveness", "liveness_probe"), ("Readiness", "readiness_probe"),
                         ("Startup", "startup_probe")):
        if container.HasField(field):
            w.line(inner, f"{title}:", probe_text(getattr(container, field)))
    if container.env:
        w.line(inner, "Environment:")
        for env in container.env:
            if env.HasField("value_from"):
                ref = env.value_from.field_ref
                value = f"({ref.api_version or 'v1'}:{ref.field_path})"
            else:
                value = env.value
            w.line(inner + 1, f"{env.name}:", value)
    else:
        w.line(inner, "Environment:", NONE)
    if container.volume_mounts:
        w.line(inner, "Mounts:")
        for mount in container.volume_mounts:
            mode = "ro" if mount.read_only else "rw"
            sub = f",path={mount.sub_path!r}" if mount.sub_path else ""
            w.line(inner + 1, f"{mount.mount_path} from {mount.name} ({mode}{sub})")
    else:
        w.line(inner, "Mounts:", NONE)


def _volumes(w: Writer, volumes: Sequence[Any], level: int = 0) -> None:
    if not volumes:
        w.line(level, "Volumes:", NONE)
        return
    w.line(level, "Volumes:")
    for volume in volumes:
        w.line(level + 1, f"{volume.name}:")
        if volume.HasField("empty_dir"):
            w.line(level + 2, "Type:",
                   "EmptyDir (a temporary directory that shares a pod's lifetime)")
            w.line(level + 2, "Medium:", volume.empty_dir.medium)
            w.line(level + 2, "SizeLimit:", volume.empty_dir.size_limit or "<unset>")
        elif volume.HasField("host_path"):
            w.line(level + 2, "Type:", "HostPath (bare host directory volume)")
            w.line(level + 2, "Path:", volume.host_path.path)
            w.line(level + 2, "HostPathType:", volume.host_path.type)
        else:
            w.line(level + 2, "Type:", "<unknown>")


def _tolerations(w: Writer, tolerations: Sequence[Any]) -> None:
    if not tolerations:
        w.line(0, "Tolerations:", NONE)
        return
    for index, t in enumerate(tolerations):
        text = t.key or ""
        if t.value:
            text += f"={t.value}"
        if t.effect:
            text += f":{t.effect}"
        if t.operator == "Exists" and not t.key:
            text = "op=Exists" + (f":{t.effect}" if t.effect else "")
        elif t.operator == "Exists":
            text += " op=Exists"
        if t.HasField("toleration_seconds"):
            text += f" for {t.toleration_seconds}s"
        w.line(0, "Tolerations:" if index == 0 else "", text)


def qos_class(pod: Any) -> str:
    if pod.status.qos_class:
        return pod.status.qos_class
    containers = list(pod.spec.containers)
    if not any(c.resources.limits or c.resources.requests for c in containers):
        return "BestEffort"
    guaranteed = all(c.resources.limits.get(r) and (c.resources.requests.get(r, c.resources
                     .limits[r]) == c.resources.limits[r]) for c in containers
                     for r in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


def describe_pod(pod: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, pod)
    w.line(0, "Priority:", pod.spec.priority if pod.spec.HasField("priority") else 0)
    w.line(0, "Service Account:", pod.spec.service_account_name or "default")
    node = pod.spec.node_name
    w.line(0, "Node:", f"{node}/{pod.status.host_ip}" if node and pod.status.host_ip
           else node or NONE)
    if pod.status.HasField("start_time"):
        w.line(0, "Start Time:", timestamp(pod.status.start_time))
    _labels_annotations(w, pod)
    meta = pod.metadata
    if meta.deletion_timestamp.seconds:
        w.line(0, "Status:", f"Terminating (lasts {printers.age(meta.deletion_timestamp, now)})")
        if meta.HasField("deletion_grace_period_seconds"):
            w.line(0, "Termination Grace Period:", f"{meta.deletion_grace_period_seconds}s")
    else:
        w.line(0, "Status:", pod.status.phase or "Pending")
    if pod.status.reason:
        w.line(0, "Reason:", pod.status.reason)
    if pod.status.message:
        w.line(0, "Message:", pod.status.message)
    w.line(0, "IP:", pod.status.pod_ip)
    if pod.status.pod_ips:
        w.line(0, "IPs:")
        for ip in pod.status.pod_ips:
            w.line(1, "IP:", ip.ip)
    else:
        w.line(0, "IPs:", NONE)
    _controlled_by(w, pod)
    statuses = {s.name: s for s in pod.status.container_statuses}
    init_statuses = {s.name: s for s in pod.status.init_container_statuses}
    if pod.spec.init_containers:
        w.line(0, "Init Containers:")
        for container in pod.spec.init_containers:
            _container(w, container, init_statuses.get(container.name), 1)
    w.line(0, "Containers:")
    for container in pod.spec.containers:
        _container(w, container, statuses.get(container.name), 1)
    _conditions(w, pod.status.conditions)
    _volumes(w, pod.spec.volumes)
    w.line(0, "QoS Class:", qos_class(pod))
    w.line(0, "Node-Selectors:", printers.labels_text(pod.spec.node_selector))
    _tolerations(w, pod.spec.tolerations)
    events_section(w, related.events, now)
    return w.text()


# --- services and endpoints --------------------------------------------------------------


def _int_or_string(value: Any) -> str:
    return str(value.int_value) if value.WhichOneof("value") == "int_value" else value.str_value


def describe_service(svc: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, svc)
    _labels_annotations(w, svc)
    w.line(0, "Selector:", printers.labels_text(svc.spec.selector))
    w.line(0, "Type:", svc.spec.type or "ClusterIP")
    w.line(0, "IP:", svc.spec.cluster_ip or NONE)
    w.line(0, "IPs:", ",".join(svc.spec.cluster_ips) or svc.spec.cluster_ip or NONE)
    if svc.spec.external_ips:
        w.line(0, "External IPs:", ",".join(svc.spec.external_ips))
    for port in svc.spec.ports:
        name = port.name or "<unset>"
        protocol = port.protocol or "TCP"
        w.line(0, "Port:", f"{name}  {port.port}/{protocol}")
        target = _int_or_string(port.target_port) if port.HasField("target_port") \
            else str(port.port)
        w.line(0, "TargetPort:", f"{target}/{protocol}")
        if port.node_port:
            w.line(0, "NodePort:", f"{name}  {port.node_port}/{protocol}")
        w.line(0, "Endpoints:", _service_endpoints(related.endpoints, port.name))
    if not svc.spec.ports:
        w.line(0, "Endpoints:", _service_endpoints(related.endpoints, None))
    w.line(0, "Session Affinity:", svc.spec.session_affinity or "None")
    if svc.spec.external_traffic_policy:
        w.line(0, "External Traffic Policy:", svc.spec.external_traffic_policy)
    events_section(w, related.events, now)
    return w.text()


def _service_endpoints(endpoints: Any | None, port_name: str | None) -> str:
    if endpoints is None:
        return NONE
    found: list[str] = []
    for subset in endpoints.subsets:
        for port in subset.ports:
            if port_name is None or port.name == port_name:
                found.extend(f"{a.ip}:{port.port}" for a in subset.addresses)
        if not subset.ports and port_name is None:
            found.extend(a.ip for a in subset.addresses)
    return ",".join(found) or NONE


def describe_endpoints(ep: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, ep)
    _labels_annotations(w, ep)
    w.line(0, "Subsets:")
    for subset in ep.subsets:
        w.line(1, "Addresses:", ",".join(a.ip for a in subset.addresses) or NONE)
        w.line(1, "NotReadyAddresses:", ",".join(a.ip for a in subset.not_ready_addresses)
               or NONE)
        if subset.ports:
            w.line(1, "Ports:")
            w.line(2, "Name", "Port", "Protocol")
            w.line(2, "----", "----", "--------")
            for port in subset.ports:
                w.line(2, port.name or "<unset>", port.port, port.protocol or "TCP")
        w.line(0, "")
    events_section(w, related.events, now)
    return w.text()


# --- workloads -----------------------------------------------------------------------------


def _pod_template(w: Writer, template: Any) -> None:
    w.line(0, "Pod Template:")
    _map_lines(w, 1, "Labels", template.metadata.labels)
    if template.metadata.annotations:
        _map_lines(w, 1, "Annotations", template.metadata.annotations, sep=": ")
    if template.spec.init_containers:
        w.line(1, "Init Containers:")
        for container in template.spec.init_containers:
            _container(w, container, None, 2, with_status=False)
    w.line(1, "Containers:")
    for container in template.spec.containers:
        _container(w, container, None, 2, with_status=False)
    _volumes(w, template.spec.volumes, level=1)
    w.line(1, "Node-Selectors:", printers.labels_text(template.spec.node_selector))


def describe_deployment(d: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, d)
    w.line(0, "CreationTimestamp:", timestamp(d.metadata.creation_timestamp))
    _labels_annotations(w, d)
    w.line(0, "Selector:", printers.selector_text(d.spec.selector))
    desired = d.spec.replicas if d.spec.HasField("replicas") else 1
    s = d.status
    w.line(0, "Replicas:", f"{desired} desired | {s.updated_replicas} updated | {s.replicas} "
           f"total | {s.available_replicas} available | {s.unavailable_replicas} unavailable")
    strategy = d.spec.strategy.type or "RollingUpdate"
    w.line(0, "StrategyType:", strategy)
    w.line(0, "MinReadySeconds:", d.spec.min_ready_seconds)
    if strategy == "RollingUpdate":
        rolling = d.spec.strategy.rolling_update
        unavailable = _int_or_string(rolling.max_unavailable) \
            if rolling.HasField("max_unavailable") else "25%"
        surge = _int_or_string(rolling.max_surge) if rolling.HasField("max_surge") else "25%"
        w.line(0, "RollingUpdateStrategy:", f"{unavailable} max unavailable, {surge} max surge")
    _pod_template(w, d.spec.template)
    _conditions(w, d.status.conditions, with_reason=True)
    if related.replica_sets:
        newest = _newest_replica_set(d, related.replica_sets)
        old = [rs for rs in related.replica_sets if rs is not newest
               and (rs.spec.replicas if rs.spec.HasField("replicas") else 1) > 0]
        w.line(0, "OldReplicaSets:", ", ".join(_rs_summary(rs) for rs in old) or NONE)
        w.line(0, "NewReplicaSet:", _rs_summary(newest) if newest is not None else NONE)
    events_section(w, related.events, now)
    return w.text()


def _newest_replica_set(d: Any, replica_sets: Sequence[Any]) -> Any | None:
    """The ReplicaSet whose template matches the deployment's (labels aside
    from pod-template-hash), else the most recent."""
    def template_key(template: Any) -> bytes:
        copy = type(template)()
        copy.CopyFrom(template)
        copy.metadata.labels.pop("pod-template-hash", None)
        return copy.SerializeToString(deterministic=True)
    wanted = template_key(d.spec.template)
    for rs in replica_sets:
        if template_key(rs.spec.template) == wanted:
            return rs
    return max(replica_sets, key=lambda rs: _seconds(rs.metadata.creation_timestamp),
               default=None)


def _rs_summary(rs: Any) -> str:
    desired = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    return f"{rs.metadata.name} ({rs.status.replicas}/{desired} replicas created)"


def describe_replicaset(rs: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, rs)
    w.line(0, "Selector:", printers.selector_text(rs.spec.selector))
    _labels_annotations(w, rs)
    _controlled_by(w, rs)
    desired = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    w.line(0, "Replicas:", f"{rs.status.replicas} current / {desired} desired")
    w.line(0, "Pods Status:", f"{rs.status.ready_replicas} Ready / "
           f"{rs.status.available_replicas} Available")
    _pod_template(w, rs.spec.template)
    _conditions(w, rs.status.conditions, with_reason=True)
    events_section(w, related.events, now)
    return w.text()


# --- cluster-scoped and the rest ------------------------------------------------------------


def describe_node(node: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, node, namespaced=False)
    w.line(0, "Roles:", printers.node_roles(node))
    _labels_annotations(w, node)
    w.line(0, "CreationTimestamp:", timestamp(node.metadata.creation_timestamp))
    taints = [f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"
              for t in node.spec.taints]
    for index, taint in enumerate(taints or [NONE]):
        w.line(0, "Taints:" if index == 0 else "", taint)
    w.line(0, "Unschedulable:", "true" if node.spec.unschedulable else "false")
    if node.status.conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason",
               "Message")
        w.line(1, "----", "------", "-----------------", "------------------", "------",
               "-------")
        for c in node.status.conditions:
            w.line(1, c.type, c.status, timestamp(c.last_heartbeat_time),
                   timestamp(c.last_transition_time), c.reason, c.message)
    w.line(0, "Addresses:")
    for address in node.status.addresses:
        w.line(1, f"{address.type}:", address.address)
    for title, values in (("Capacity", node.status.capacity),
                          ("Allocatable", node.status.allocatable)):
        if values:
            w.line(0, f"{title}:")
            for key, value in sorted(values.items()):
                w.line(1, f"{key}:", value)
    info = node.status.node_info
    w.line(0, "System Info:")
    for title, value in (("Machine ID", info.machine_id), ("Kernel Version", info.kernel_version),
                         ("OS Image", info.os_image), ("Operating System", info.operating_system),
                         ("Architecture", info.architecture),
                         ("Container Runtime Version", info.container_runtime_version),
                         ("Kubelet Version", info.kubelet_version),
                         ("Kube-Proxy Version", info.kube_proxy_version)):
        w.line(1, f"{title}:", value)
    if node.spec.pod_cidr:
        w.line(0, "PodCIDR:", node.spec.pod_cidr)
        w.line(0, "PodCIDRs:", ",".join(node.spec.pod_cidrs) or node.spec.pod_cidr)
    if node.spec.provider_id:
        w.line(0, "ProviderID:", node.spec.provider_id)
    active = [p for p in related.pods if p.status.phase not in ("Succeeded", "Failed")]
    w.line(0, f"Non-terminated Pods:", f"({len(active)} in total)")
    if active:
        w.line(1, "Namespace", "Name", "Age")
        w.line(1, "---------", "----", "---")
        for pod in active:
            w.line(1, pod.metadata.namespace, pod.metadata.name,
                   printers.age(pod.metadata.creation_timestamp, now))
    events_section(w, related.events, now)
    return w.text()


def describe_namespace(ns: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, ns, namespaced=False)
    _labels_annotations(w, ns)
    w.line(0, "Status:", ns.status.phase or "Active")
    w.line(0, "")
    _quotas(w, related.quotas)
    w.line(0, "")
    w.line(0, "No LimitRange resource.")
    return w.text()


def describe_event(ev: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, ev)
    _labels_annotations(w, ev)
    ref = ev.involved_object
    w.line(0, "Involved Object:")
    w.line(1, "API Version:", ref.api_version)
    w.line(1, "Kind:", ref.kind)
    w.line(1, "Name:", ref.name)
    w.line(1, "Namespace:", ref.namespace)
    w.line(0, "Type:", ev.type or "Normal")
    w.line(0, "Reason:", ev.reason)
    w.line(0, "Message:", ev.message)
    w.line(0, "Source:", ev.source.component or ev.reporting_component)
    w.line(0, "Count:", ev.count)
    w.line(0, "First Timestamp:", timestamp(ev.first_timestamp))
    w.line(0, "Last Timestamp:", timestamp(ev.last_timestamp))
    return w.text()


def describe_lease(lease: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, lease)
    _labels_annotations(w, lease)
    spec = lease.spec
    w.line(0, "Holder Identity:", spec.holder_identity or NONE)
    w.line(0, "Lease Duration Seconds:", spec.lease_duration_seconds)
    w.line(0, "Acquire Time:", timestamp(spec.acquire_time))
    w.line(0, "Renew Time:", timestamp(spec.renew_time))
    w.line(0, "Lease Transitions:", spec.lease_transitions)
    events_section(w, related.events, now)
    return w.text()


# --- quotas and RBAC ------------------------------------------------------------------------


def _quota_table(w: Writer, level: int, quota: Any, rule: str) -> None:
    w.line(level, "Resource", "Used", "Hard")
    w.line(level, "--------", rule, rule)
    for name, used, hard in printers.quota_usage(quota):
        w.line(level, name, used, hard)


def _quotas(w: Writer, quotas: Sequence[Any]) -> None:
    """A namespace's quotas, as kubectl's DescribeResourceQuotas."""
    if not quotas:
        w.line(0, "No resource quota.")
        return
    w.line(0, "Resource Quotas")
    for quota in sorted(quotas, key=lambda q: q.metadata.name):
        w.line(1, "Name:", quota.metadata.name)
        _quota_table(w, 1, quota, "---")


def describe_resource_quota(quota: Any, related: Related, now: float) -> str:
    w = Writer()
    _metadata(w, quota)
    _quota_table(w, 0, quota, "----")
    return w.text()


def _go_list(values: Sequence[str]) -> str:
    """A string slice as Go's %v prints it: ``[get list watch]``."""
    return "[" + " ".join(values) + "]"


def breakdown_rules(rules: Sequence[Any]) -> list[tuple[list[str], list[str], list[str],
                                                         list[str], list[str]]]:
    """kubectl describe's view of a role's rules: each rule broken down to one
    (group, resource, name) or one URL per row, rows differing only in verbs
    merged, then sorted as kubectl sorts them. Rows are (verbs, groups,
    resources, resource names, non-resource URLs)."""
    simple: dict[tuple[str, str, str], list[str]] = {}
    rows = []
    for rule in rules:
        verbs = sorted(rule.verbs)
        for group in rule.api_groups:
            for resource in rule.resources:
                for name in list(rule.resource_names) or [None]:
                    key = (group, resource, name or "")
                    if key in simple:
                        simple[key].extend(verbs)
                    else:
                        simple[key] = list(verbs)
        for url in rule.non_resource_urls:
            rows.append((list(verbs), [], [], [], [url]))
    for (group, resource, name), verbs in simple.items():
        rows.append((verbs, [group], [resource], [name] if name else [], []))
    return sorted(rows, key=lambda row: tuple(" ".join(part) for part in row))


def _resource_group(resources: Sequence[str], groups: Sequence[str]) -> str:
    """kubectl's CombineResourceGroup: ``deployments.apps/scale``."""
    if not resources:
        return ""
    resource, _, sub = resources[0].partition("/")
    text = resource + (f".{groups[0]}" if groups and groups[0] else "")
    return f"{text}/{sub}" if sub else text


def describe_role(role: Any, related: Related, now: float) -> str:
    """Role and ClusterRole: kubectl prints neither namespace nor events."""
    w = Writer()
    w.line(0, "Name:", role.metadata.name)
    _labels_annotations(w, role)
    w.line(0, "PolicyRule:")
    w.line(1, "Resources", "Non-Resource URLs", "Resource Names", "Verbs")
    w.line(1, "---------", "-----------------", "--------------", "-----")
    for verbs, groups, resources, names, urls in breakdown_rules(role.rules):
        w.line(1, _resource_group(resources, groups), _go_list(urls), _go_list(names),
               _go_list(verbs))
    return w.text()


def describe_binding(binding: Any, related: Related, now: float) -> str:
    """RoleBinding and ClusterRoleBinding: the role, then the subjects."""
    w = Writer()
    w.line(0, "Name:", binding.metadata.name)
    _labels_annotations(w, binding)
    w.line(0, "Role:")
    w.line(1, "Kind:", binding.role_ref.kind)
    w.line(1, "Name:", binding.role_ref.name)
    w.line(0, "Subjects:")
    w.line(1, "Kind", "Name", "Namespace")
    w.line(1, "----", "----", "---------")
    for subject in binding.subjects:
        w.line(1, subject.kind, subject.name, subject.namespace)
    return w.text()


DESCRIBERS: dict[str, Callable[[Any, Related, float], str]] = {
    "Pod": describe_pod,
    "Service": describe_service,
    "Endpoints": describe_endpoints,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replicaset,
    "Node": describe_node,
    "Namespace": describe_namespace,
    "Event": describe_event,
    "Lease": describe_lease,
    "ResourceQuota": describe_resource_quota,
    "Role": describe_role,
    "ClusterRole": describe_role,
    "RoleBinding": describe_binding,
    "ClusterRoleBinding": describe_binding,
}


def describe_generic(obj: Any, related: Related, now: float) -> str:
    """A kind without its own describer: metadata, then the rest as YAML."""
    from services.api import convert  # only here: the fallback needs the dict form

    w = Writer()
    _metadata(w, obj, namespaced=bool(obj.metadata.namespace))
    _labels_annotations(w, obj)
    w.line(0, "CreationTimestamp:", timestamp(obj.metadata.creation_timestamp))
    data = convert.to_dict(obj)
    for key in ("apiVersion", "kind", "metadata"):
        data.pop(key, None)
    for key, value in data.items():
        w.line(0, f"{key[:1].upper()}{key[1:]}:")
        body = yaml.safe_dump(value, default_flow_style=False, sort_keys=True) \
            if isinstance(value, (dict, list)) else f"{value}\n"
        for line in body.splitlines():
            w.line(1, line)
    events_section(w, related.events, now)
    return w.text()


def describe(kind_name: str, obj: Any, related: Related, now: float) -> str:
    describer = DESCRIBERS.get(kind_name)
    return describer(obj, related, now) if describer else describe_generic(obj, related, now)
