"""How ``kyb get`` shows objects: kubectl's tables, ages and output formats.

Pure functions over messages; the current time is a parameter (``now``, in
seconds since the epoch) so that ages are testable. Column choices and cell
formats follow kubectl's printers (pkg/printers/internalversion).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from google.protobuf.message import Message

from services.api import convert, kinds
from services.ctl import resources, tabwriter

NONE = "<none>"


# --- durations --------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration: ``5s``, ``2m30s``, ``3h``, ``2d``..."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(ts: Message, now: float) -> str:
    """Time since a Timestamp, or ``<unknown>`` when it is unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return "<unknown>"
    return human_duration(now - (ts.seconds + ts.nanos / 1e9))


def _has_time(ts: Message) -> bool:
    return bool(ts.seconds or ts.nanos)


def labels_text(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or NONE


def selector_text(selector: Message) -> str:
    """A LabelSelector in kubectl's string form."""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        values = ",".join(req.values)
        if req.operator == "In":
            parts.append(f"{req.key} in ({values})")
        elif req.operator == "NotIn":
            parts.append(f"{req.key} notin ({values})")
        elif req.operator == "Exists":
            parts.append(req.key)
        elif req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        else:
            parts.append(f"{req.key} {req.operator} ({values})")
    return ",".join(parts) or NONE


# --- per-kind columns ---------------------------------------------------------------

Row = Callable[[Any, float], list[str]]


def pod_status(pod: Message) -> tuple[str, int, int, int, float]:
    """kubectl's pod STATUS reason, and ready, total, restarts, last restart
    (printPod in kubectl's printers)."""
    spec, status = pod.spec, pod.status
    reason = status.reason or status.phase or "Pending"
    total = len(spec.containers)
    ready = 0
    restarts = 0
    last_restart = 0.0
    initializing = False
    for i, cs in enumerate(status.init_container_statuses):
        restarts += cs.restart_count
        last_restart = max(last_restart, _finished(cs.last_state))
        state = cs.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if state.HasField("terminated"):
            term = state.terminated
            if term.reason:
                reason = "Init:" + term.reason
            elif term.signal:
                reason = f"Init:Signal:{term.signal}"
            else:
                reason = f"Init:ExitCode:{term.exit_code}"
        elif state.HasField("waiting") and state.waiting.reason \
                and state.waiting.reason != "PodInitializing":
            reason = "Init:" + state.waiting.reason
        else:
            reason = f"Init:{i}/{len(spec.init_containers)}"
        initializing = True
        break
    if not initializing:
        restarts = 0
        has_running = False
        for cs in reversed(status.container_statuses):
            restarts += cs.restart_count
            last_restart = max(last_restart, _finished(cs.last_state))
            state = cs.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated") and state.terminated.reason:
                reason = state.terminated.reason
            elif state.HasField("terminated"):
                term = state.terminated
                reason = (f"Signal:{term.signal}" if term.signal
                          else f"ExitCode:{term.exit_code}")
            elif cs.ready and state.HasField("running"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_condition = [c for c in status.conditions if c.type == "Ready"]
            reason = ("Running" if ready_condition and ready_condition[0].status == "True"
                      else "NotReady")
    if _has_time(pod.metadata.deletion_timestamp):
        reason = "Unknown" if status.reason == "NodeLost" else "Terminating"
    return reason, ready, total, restarts, last_restart


def _finished(state: Message) -> float:
    if state.HasField("terminated"):
        ts = state.terminated.finished_at
        return ts.seconds + ts.nanos / 1e9
    return 0.0


def _pod_row(pod: Any, now: float) -> list[str]:
    reason, ready, total, restarts, last = pod_status(pod)
    restarts_text = str(restarts)
    if restarts and last:
        restarts_text = f"{restarts} ({human_duration(now - last)} ago)"
    return [f"{ready}/{total}", reason, restarts_text, age(pod.metadata.creation_timestamp, now)]


def _pod_wide(pod: Any, now: float) -> list[str]:
    return [pod.status.pod_ip or NONE, pod.spec.node_name or NONE]


def node_status(node: Message) -> str:
    conditions = {c.type: c.status for c in node.status.conditions}
    ready = conditions.get("Ready")
    # As kubectl: a Ready condition that is not True (False or Unknown) is
    # NotReady; only a node with no Ready condition at all is Unknown.
    text = "Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"
    if node.spec.unschedulable:
        text += ",SchedulingDisabled"
    return text


def node_roles(node: Message) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in node.metadata.labels if k.startswith(prefix))
    if node.metadata.labels.get("kubernetes.io/role"):
        roles.append(node.metadata.labels["kubernetes.io/role"])
    return ",".join(r for r in roles if r) or NONE


def _node_address(node: Message, kind: str) -> str:
    return next((a.address for a in node.status.addresses if a.type == kind), NONE)


def _node_row(node: Any, now: float) -> list[str]:
    return [node_status(node), node_roles(node), age(node.metadata.creation_timestamp, now),
            node.status.node_info.kubelet_version or NONE]


def _node_wide(node: Any, now: float) -> list[str]:
    info = node.status.node_info
    return [_node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            info.os_image or "<unknown>", info.kernel_version or "<unknown>",
            info.container_runtime_version or "<unknown>"]


def service_ports(svc: Message) -> str:
    """``80:30080/TCP,443/TCP``."""
    parts = []
    for port in svc.spec.ports:
        protocol = port.protocol or "TCP"
        if port.node_port:
            parts.append(f"{port.port}:{port.node_port}/{protocol}")
        else:
            parts.append(f"{port.port}/{protocol}")
    return ",".join(parts) or NONE


def _service_row(svc: Any, now: float) -> list[str]:
    external = ",".join(svc.spec.external_ips) or NONE
    return [svc.spec.type or "ClusterIP", svc.spec.cluster_ip or NONE, external,
            service_ports(svc), age(svc.metadata.creation_timestamp, now)]


def _service_wide(svc: Any, now: float) -> list[str]:
    return [labels_text(svc.spec.selector)]


def _desired(spec: Message) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def _deployment_row(d: Any, now: float) -> list[str]:
    return [f"{d.status.ready_replicas}/{_desired(d.spec)}", str(d.status.updated_replicas),
            str(d.status.available_replicas), age(d.metadata.creation_timestamp, now)]


def _template_wide(obj: Any, now: float) -> list[str]:
    containers = obj.spec.template.spec.containers
    return [",".join(c.name for c in containers) or NONE,
            ",".join(c.image for c in containers) or NONE, selector_text(obj.spec.selector)]


def _replicaset_row(rs: Any, now: float) -> list[str]:
    return [str(_desired(rs.spec)), str(rs.status.replicas), str(rs.status.ready_replicas),
            age(rs.metadata.creation_timestamp, now)]


def endpoints_text(ep: Message, limit: int = 3) -> str:
    """``10.0.0.1:80,10.0.0.2:80 + 2 more...``"""
    parts: list[str] = []
    count = 0
    for subset in ep.subsets:
        ports = list(subset.ports) or [None]
        for port in ports:
            for address in subset.addresses:
                count += 1
                if len(parts) < limit:
                    parts.append(f"{address.ip}:{port.port}" if port is not None else address.ip)
    if not parts:
        return NONE
    more = count - len(parts)
    return ",".join(parts) + (f" + {more} more..." if more else "")


def _endpoints_row(ep: Any, now: float) -> list[str]:
    return [endpoints_text(ep), age(ep.metadata.creation_timestamp, now)]


def _namespace_row(ns: Any, now: float) -> list[str]:
    return [ns.status.phase or "Active", age(ns.metadata.creation_timestamp, now)]


def event_last_seen(ev: Message) -> Message:
    for ts in (ev.last_timestamp, ev.first_timestamp, ev.metadata.creation_timestamp):
        if _has_time(ts):
            return ts
    return ev.last_timestamp


def _event_row(ev: Any, now: float) -> list[str]:
    ref = ev.involved_object
    obj = f"{ref.kind.lower()}/{ref.name}" if ref.kind else ref.name
    return [age(event_last_seen(ev), now), ev.type or "Normal", ev.reason, obj,
            ev.message.strip()]


def _lease_row(lease: Any, now: float) -> list[str]:
    return [lease.spec.holder_identity or NONE, age(lease.metadata.creation_timestamp, now)]


def created_at(ts: Message) -> str:
    """kubectl's CREATED AT cell: the creation time in RFC 3339."""
    return convert.format_time(ts) if _has_time(ts) else "<unknown>"


def _role_row(role: Any, now: float) -> list[str]:
    return [created_at(role.metadata.creation_timestamp)]


def subjects_by_kind(subjects: Sequence[Any]) -> tuple[list[str], list[str], list[str]]:
    """Users, groups and service accounts ("namespace/name"), as kubectl's
    rbac.SubjectsStrings."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    for subject in subjects:
        if subject.kind == "User":
            users.append(subject.name)
        elif subject.kind == "Group":
            groups.append(subject.name)
        elif subject.kind == "ServiceAccount":
            accounts.append(f"{subject.namespace}/{subject.name}" if subject.namespace
                            else subject.name)
    return users, groups, accounts


def _binding_row(binding: Any, now: float) -> list[str]:
    ref = binding.role_ref
    return [f"{ref.kind}/{ref.name}", age(binding.metadata.creation_timestamp, now)]


def _binding_wide(binding: Any, now: float) -> list[str]:
    return [", ".join(names) for names in subjects_by_kind(binding.subjects)]


def quota_limits(quota: Any) -> dict[str, str]:
    """The enforced limits: status.hard once the server has recorded them,
    else spec.hard."""
    return dict(quota.status.hard) or dict(quota.spec.hard)


def quota_usage(quota: Any) -> list[tuple[str, str, str]]:
    """(resource, used, hard) in resource name order; unused reads "0"."""
    used = quota.status.used
    return [(name, used.get(name, "0"), hard) for name, hard in sorted(quota_limits(quota).items())]


def _quota_row(quota: Any, now: float) -> list[str]:
    """kubectl's REQUEST and LIMIT cells: ``pods: 1/10, requests.cpu: 100m/2``
    (limits.* resources go to LIMIT)."""
    request: list[str] = []
    limit: list[str] = []
    for name, used, hard in quota_usage(quota):
        (limit if name.startswith("limits.") else request).append(f"{name}: {used}/{hard}")
    return [age(quota.metadata.creation_timestamp, now), ", ".join(request), ", ".join(limit)]


@dataclasses.dataclass(frozen=True)
class Columns:
    """A kind's table: the columns after NAME, and the extra ones of -o wide."""

    headers: tuple[str, ...]
    row: Row
    wide_headers: tuple[str, ...] = ()
    wide_row: Row | None = None
    named: bool = True  # events have no NAME column


COLUMNS: dict[str, Columns] = {
    "Pod": Columns(("READY", "STATUS", "RESTARTS", "AGE"), _pod_row, ("IP", "NODE"), _pod_wide),
    "Node": Columns(("STATUS", "ROLES", "AGE", "VERSION"), _node_row,
                    ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                     "CONTAINER-RUNTIME"), _node_wide),
    "Service": Columns(("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), _service_row,
                       ("SELECTOR",), _service_wide),
    "Deployment": Columns(("READY", "UP-TO-DATE", "AVAILABLE", "AGE"), _deployment_row,
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _template_wide),
    "ReplicaSet": Columns(("DESIRED", "CURRENT", "READY", "AGE"), _replicaset_row,
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _template_wide),
    "Endpoints": Columns(("ENDPOINTS", "AGE"), _endpoints_row),
    "Namespace": Columns(("STATUS", "AGE"), _namespace_row),
    "Event": Columns(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), _event_row,
                     named=False),
    "Lease": Columns(("HOLDER", "AGE"), _lease_row),
    "ResourceQuota": Columns(("AGE", "REQUEST", "LIMIT"), _quota_row),
    "Role": Columns(("CREATED AT",), _role_row),
    "ClusterRole": Columns(("CREATED AT",), _role_row),
    "RoleBinding": Columns(("ROLE", "AGE"), _binding_row,
                           ("USERS", "GROUPS", "SERVICEACCOUNTS"), _binding_wide),
    "ClusterRoleBinding": Columns(("ROLE", "AGE"), _binding_row,
                                  ("USERS", "GROUPS", "SERVICEACCOUNTS"), _binding_wide),
}


def _generic_row(obj: Any, now: float) -> list[str]:
    return [age(obj.metadata.creation_timestamp, now)]


_GENERIC = Columns(("AGE",), _generic_row)


@dataclasses.dataclass(frozen=True)
class TableOptions:
    wide: bool = False
    all_namespaces: bool = False
    show_kind: bool = False    # NAME as "pod/web", as kubectl does for several kinds
    show_labels: bool = False


def table_headers(kind: kinds.Kind, options: TableOptions) -> list[str]:
    columns = COLUMNS.get(kind.kind, _GENERIC)
    headers = ["NAMESPACE"] if options.all_namespaces and kind.namespaced else []
    if columns.named:
        headers.append("NAME")
    headers.extend(columns.headers)
    if options.wide:
        headers.extend(columns.wide_headers)
    if options.show_labels:
        headers.append("LABELS")
    return headers


def table_row(kind: kinds.Kind, obj: Any, now: float, options: TableOptions) -> list[str]:
    columns = COLUMNS.get(kind.kind, _GENERIC)
    row = [obj.metadata.namespace] if options.all_namespaces and kind.namespaced else []
    if columns.named:
        name = obj.metadata.name
        row.append(f"{resources.qualified(kind)}/{name}" if options.show_kind else name)
    row.extend(columns.row(obj, now))
    if options.wide and columns.wide_row is not None:
        row.extend(columns.wide_row(obj, now))
    if options.show_labels:
        row.append(labels_text(obj.metadata.labels))
    return row


def table(kind: kinds.Kind, objects: Sequence[Any], now: float,
          options: TableOptions = TableOptions()) -> list[str]:
    """The lines of a kubectl table, header first."""
    rows = [table_row(kind, obj, now, options) for obj in objects]
    return tabwriter.table(table_headers(kind, options), rows)


class WatchTable:
    """Rows printed one at a time under a header, columns only ever widening
    (kubectl's tabwriter.RememberWidths), so a watch stays aligned."""

    def __init__(self, headers: list[str], rows: Sequence[list[str]] = ()):
        self.widths = [max(6, len(h) + 3) for h in headers]
        for row in rows:
            self._widen(row)
        self.headers = headers

    def fit(self, row: list[str]) -> None:
        """Widen the columns for ``row`` (before printing the header over it)."""
        self._widen(row)

    def _widen(self, row: list[str]) -> None:
        for i, cell in enumerate(row[:-1]):
            if i < len(self.widths):
                self.widths[i] = max(self.widths[i], len(cell) + 3)

    def line(self, row: list[str]) -> str:
        self._widen(row)
        cells = [cell.ljust(self.widths[i]) for i, cell in enumerate(row[:-1])]
        return ("".join(cells) + (row[-1] if row else "")).rstrip()


# --- structured output -----------------------------------------------------------


def as_list(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several objects as kubectl prints them: a ``kind: List``."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List",
            "metadata": {"resourceVersion": ""}}


def dump_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False)


class _Dumper(yaml.SafeDumper):
    """Block style; strings that would read back as another type (times,
    numbers, booleans) in double quotes, as kubectl writes them; multi-line
    strings as literal blocks; long lines not folded."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None
    if "\n" in value:
        style = "|"
    elif dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=True,
                     allow_unicode=True, width=1 << 20)


def object_name(kind: kinds.Kind, obj: Any) -> str:
    """``-o name``: ``pod/web``, ``deployment.apps/web``."""
    return f"{resources.qualified(kind)}/{obj.metadata.name}"


def structured(objects: Sequence[Message], output: str, *, single: bool) -> str:
    """``-o json`` / ``-o yaml`` text for the objects: one object when the
    user named exactly one, else a List."""
    dicts = [convert.to_dict(obj) for obj in objects]
    data = dicts[0] if single and len(dicts) == 1 else as_list(dicts)
    return dump_json(data) + "\n" if output == "json" else dump_yaml(data)
