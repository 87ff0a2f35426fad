"""Pod rules: the pod spec (shared with ReplicaSet and Deployment templates),
what an update may change, and the status a kubelet may write.

Validation runs after defaulting (defaulting.apply_defaults), so fields that
defaulting always fills (restartPolicy, imagePullPolicy, port protocols,
probe thresholds) are reported as Required when empty, as in Kubernetes.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.validation_common import (
    Errors,
    check,
    conditions,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    duplicate,
    forbidden,
    invalid,
    is_ip,
    label_value_errors,
    labels,
    non_negative,
    not_found,
    one_of,
    port_name_errors,
    port_number_errors,
    port_or_name,
    qualified_name_errors,
    quantity_value,
    required,
    unsupported,
)

PROTOCOLS = ("TCP", "UDP", "SCTP")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
TERMINAL_PHASES = ("Succeeded", "Failed")
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
_ENV_SUBSCRIPT_RE = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
_HTTP_HEADER_RE = re.compile(r"[-A-Za-z0-9]+")
_HANDLERS = (("exec", "exec"), ("http_get", "httpGet"), ("tcp_socket", "tcpSocket"))
_VOLUME_SOURCES = (("empty_dir", "emptyDir"), ("host_path", "hostPath"))

UPDATABLE_FIELDS_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations)")


# --- The pod spec -------------------------------------------------------------------------


def pod_spec(spec: Any, path: str) -> Errors:
    """Every rule of a PodSpec, with field paths under ``path`` ("spec" for a
    pod, "spec.template.spec" for a workload)."""
    errs, volume_names = _volumes(spec.volumes, f"{path}.volumes")
    if not spec.containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for json_name, items, init in (("initContainers", spec.init_containers, True),
                                   ("containers", spec.containers, False)):
        for i, ctr in enumerate(items):
            p = f"{path}.{json_name}[{i}]"
            if ctr.name in seen:
                errs.append(duplicate(f"{p}.name", ctr.name))
            seen.add(ctr.name)
            errs += _container(ctr, p, volume_names, init=init, host_network=spec.host_network)
    errs += one_of(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    if spec.dns_policy:
        errs += one_of(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES)
    if spec.HasField("termination_grace_period_seconds"):
        errs += non_negative(f"{path}.terminationGracePeriodSeconds",
                             spec.termination_grace_period_seconds)
    if spec.HasField("active_deadline_seconds") and not (
            1 <= spec.active_deadline_seconds <= 2**31 - 1):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                            "must be between 1 and 2147483647, inclusive"))
    errs += labels(spec.node_selector, f"{path}.nodeSelector")
    errs += tolerations(spec.tolerations, f"{path}.tolerations")
    if spec.HasField("affinity") and spec.affinity.HasField("node_affinity"):
        errs += _node_affinity(spec.affinity.node_affinity, f"{path}.affinity.nodeAffinity")
    for field, json_name, rule in (
            ("scheduler_name", "schedulerName", dns1123_subdomain_errors),
            ("service_account_name", "serviceAccountName", dns1123_subdomain_errors),
            ("node_name", "nodeName", dns1123_subdomain_errors),
            ("priority_class_name", "priorityClassName", dns1123_subdomain_errors),
            ("hostname", "hostname", dns1123_label_errors),
            ("subdomain", "subdomain", dns1123_label_errors)):
        value = getattr(spec, field)
        if value:
            errs += check(f"{path}.{json_name}", value, rule(value))
    return errs


def _volumes(volumes: Any, path: str) -> tuple[Errors, set[str]]:
    errs: Errors = []
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        p = f"{path}[{i}]"
        if not vol.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += check(f"{p}.name", vol.name, dns1123_label_errors(vol.name))
            if vol.name in names:
                errs.append(duplicate(f"{p}.name", vol.name))
            names.add(vol.name)
        sources = [json_name for field, json_name in _VOLUME_SOURCES if vol.HasField(field)]
        if not sources:
            errs.append(required(p, "must specify a volume type"))
        elif len(sources) > 1:
            errs.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
        if vol.HasField("empty_dir"):
            ed = vol.empty_dir
            if ed.medium not in ("", "Memory"):
                errs.append(unsupported(f"{p}.emptyDir.medium", ed.medium, ("", "Memory")))
            if ed.size_limit:
                errs += quantity_value(f"{p}.emptyDir.sizeLimit", ed.size_limit)[0]
        if vol.HasField("host_path"):
            hp = vol.host_path
            if not hp.path:
                errs.append(required(f"{p}.hostPath.path"))
            if hp.type not in HOST_PATH_TYPES:
                errs.append(unsupported(f"{p}.hostPath.type", hp.type, HOST_PATH_TYPES))
    return errs, names


# --- Containers ---------------------------------------------------------------------------


def _container(ctr: Any, path: str, volume_names: set[str], *, init: bool,
               host_network: bool) -> Errors:
    errs: Errors = []
    if not ctr.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += check(f"{path}.name", ctr.name, dns1123_label_errors(ctr.name))
    if not ctr.image:
        errs.append(required(f"{path}.image"))
    elif ctr.image != ctr.image.strip():
        errs.append(invalid(f"{path}.image", ctr.image,
                            "must not have leading or trailing whitespace"))
    errs += one_of(f"{path}.imagePullPolicy", ctr.image_pull_policy, PULL_POLICIES)
    errs += _ports(ctr.ports, f"{path}.ports", host_network)
    errs += _env(ctr.env, f"{path}.env")
    errs += _resources(ctr.resources, f"{path}.resources")
    errs += _volume_mounts(ctr.volume_mounts, f"{path}.volumeMounts", volume_names)
    for field, json_name in (("liveness_probe", "livenessProbe"),
                             ("readiness_probe", "readinessProbe"),
                             ("startup_probe", "startupProbe"), ("lifecycle", "lifecycle")):
        if not ctr.HasField(field):
            continue
        if init:
            errs.append(forbidden(f"{path}.{json_name}", "may not be set for init containers"))
        elif field == "lifecycle":
            errs += _lifecycle(ctr.lifecycle, f"{path}.lifecycle")
        else:
            errs += _probe(getattr(ctr, field), f"{path}.{json_name}", json_name)
    return errs


def _ports(ports: Any, path: str, host_network: bool) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if port.name:
            errs += check(f"{p}.name", port.name, port_name_errors(port.name))
            if port.name in names:
                errs.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
        if port.container_port == 0:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += check(f"{p}.containerPort", port.container_port,
                          port_number_errors(port.container_port))
        if port.host_port != 0:
            errs += check(f"{p}.hostPort", port.host_port, port_number_errors(port.host_port))
        if host_network and port.host_port != port.container_port:
            errs.append(invalid(f"{p}.hostPort", port.host_port,
                                "must match `containerPort` when `hostNetwork` is true"))
        errs += one_of(f"{p}.protocol", port.protocol, PROTOCOLS)
        if port.host_ip and not is_ip(port.host_ip):
            errs.append(invalid(f"{p}.hostIP", port.host_ip, "must be a valid IP address"))
    return errs


def _env_name_errors(name: str) -> list[str]:
    if all(32 <= ord(c) <= 126 and c != "=" for c in name):
        return []
    return ["a valid environment variable name must consist only of printable ASCII "
            "characters other than '='"]


def _env(env: Any, path: str) -> Errors:
    errs: Errors = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        if not var.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += check(f"{p}.name", var.name, _env_name_errors(var.name))
        if not var.HasField("value_from"):
            continue
        if var.value:
            errs.append(invalid(f"{p}.valueFrom", "",
                                "may not be specified when `value` is not empty"))
        if not var.value_from.HasField("field_ref"):
            errs.append(invalid(f"{p}.valueFrom", "", "must specify one of: `fieldRef`"))
            continue
        errs += _field_ref(var.value_from.field_ref, f"{p}.valueFrom.fieldRef")
    return errs


def _field_ref(ref: Any, path: str) -> Errors:
    errs: Errors = []
    if not ref.api_version:
        errs.append(required(f"{path}.apiVersion"))
    elif ref.api_version != "v1":
        errs.append(unsupported(f"{path}.apiVersion", ref.api_version, ("v1",)))
    if not ref.field_path:
        return errs + [required(f"{path}.fieldPath")]
    m = _ENV_SUBSCRIPT_RE.fullmatch(ref.field_path)
    if m:
        key = m.group(2)
        errs += check(f"{path}.fieldPath", key, qualified_name_errors(key.lower()))
    elif ref.field_path not in ENV_FIELD_PATHS:
        errs.append(unsupported(f"{path}.fieldPath", ref.field_path,
                                sorted(ENV_FIELD_PATHS) + ["metadata.annotations['<KEY>']",
                                                           "metadata.labels['<KEY>']"]))
    return errs


def _resource_name_errors(name: str) -> list[str]:
    if name in STANDARD_RESOURCES or name.startswith("hugepages-"):
        return []
    if "/" in name:
        return qualified_name_errors(name)
    return ["must be a standard resource for containers"]


def _resources(res: Any, path: str) -> Errors:
    errs: Errors = []
    parsed = {}
    for json_name in ("limits", "requests"):
        values = getattr(res, json_name)
        for name in sorted(values):
            p = f"{path}.{json_name}[{name}]"
            errs += check(p, name, _resource_name_errors(name))
            problems, q = quantity_value(p, values[name])
            errs += problems
            if q is not None:
                parsed[json_name, name] = q
    for name in sorted(res.requests):
        request, limit = parsed.get(("requests", name)), parsed.get(("limits", name))
        if request is not None and limit is not None and request > limit:
            errs.append(invalid(f"{path}.requests[{name}]", res.requests[name],
                                f"must be less than or equal to {name} limit of "
                                f"{res.limits[name]}"))
    return errs


def _volume_mounts(mounts: Any, path: str, volume_names: set[str]) -> Errors:
    errs: Errors = []
    paths: set[str] = set()
    for i, mount in enumerate(mounts):
        p = f"{path}[{i}]"
        if not mount.name:
            errs.append(required(f"{p}.name"))
        elif mount.name not in volume_names:
            errs.append(not_found(f"{p}.name", mount.name))
        if not mount.mount_path:
            errs.append(required(f"{p}.mountPath"))
        elif mount.mount_path in paths:
            errs.append(invalid(f"{p}.mountPath", mount.mount_path, "must be unique"))
        paths.add(mount.mount_path)
        if mount.sub_path:
            if posixpath.isabs(mount.sub_path):
                errs.append(invalid(f"{p}.subPath", mount.sub_path, "must be a relative path"))
            if ".." in mount.sub_path.split("/"):
                errs.append(invalid(f"{p}.subPath", mount.sub_path, "must not contain '..'"))
    return errs


# --- Probes and handlers ------------------------------------------------------------------


def _handler(handler: Any, path: str) -> Errors:
    """Exactly one of exec, httpGet, tcpSocket, each well formed."""
    present = [(field, json_name) for field, json_name in _HANDLERS if handler.HasField(field)]
    if not present:
        return [required(path, "must specify a handler type")]
    errs: Errors = []
    if len(present) > 1:
        errs.append(forbidden(f"{path}.{present[1][1]}",
                              "may not specify more than 1 handler type"))
    for field, json_name in present:
        p = f"{path}.{json_name}"
        action = getattr(handler, field)
        if field == "exec":
            if not action.command:
                errs.append(required(f"{p}.command"))
        elif field == "http_get":
            errs += _http_get(action, p)
        else:
            errs += port_or_name(action.port, f"{p}.port")
    return errs


def _http_get(action: Any, path: str) -> Errors:
    errs: Errors = []
    if not action.path:
        errs.append(required(f"{path}.path"))
    errs += port_or_name(action.port, f"{path}.port")
    errs += one_of(f"{path}.scheme", action.scheme, ("HTTP", "HTTPS"))
    for i, header in enumerate(action.http_headers):
        if not _HTTP_HEADER_RE.fullmatch(header.name):
            errs.append(invalid(f"{path}.httpHeaders[{i}].name", header.name,
                                "a valid HTTP header must consist of alphanumeric characters "
                                "or '-' (e.g. 'X-Header-Name',  regex used for validation is "
                                "'[-A-Za-z0-9]+')"))
    return errs


def _probe(probe: Any, path: str, json_name: str) -> Errors:
    errs = _handler(probe, path)
    for field, name in (("initial_delay_seconds", "initialDelaySeconds"),
                        ("timeout_seconds", "timeoutSeconds"),
                        ("period_seconds", "periodSeconds"),
                        ("success_threshold", "successThreshold"),
                        ("failure_threshold", "failureThreshold")):
        errs += non_negative(f"{path}.{name}", getattr(probe, field))
    if json_name in ("livenessProbe", "startupProbe") and probe.success_threshold != 1:
        errs.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    if probe.HasField("termination_grace_period_seconds"):
        if json_name == "readinessProbe":
            errs.append(forbidden(f"{path}.terminationGracePeriodSeconds",
                                  "may not be set for readinessProbes"))
        elif probe.termination_grace_period_seconds <= 0:
            errs.append(invalid(f"{path}.terminationGracePeriodSeconds",
                                probe.termination_grace_period_seconds,
                                "must be greater than 0"))
    return errs


def _lifecycle(lifecycle: Any, path: str) -> Errors:
    errs: Errors = []
    for field, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if lifecycle.HasField(field):
            errs += _handler(getattr(lifecycle, field), f"{path}.{json_name}")
    return errs


# --- Scheduling constraints ---------------------------------------------------------------


def tolerations(items: Any, path: str) -> Errors:
    errs: Errors = []
    for i, tol in enumerate(items):
        p = f"{path}[{i}]"
        if tol.key:
            errs += check(f"{p}.key", tol.key, qualified_name_errors(tol.key))
        elif tol.operator != "Exists":
            errs.append(invalid(f"{p}.operator", tol.operator,
                                "operator must be Exists when `key` is empty, which means "
                                "\"match all values and all keys\""))
        if tol.HasField("toleration_seconds") and tol.effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", tol.effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if tol.operator in ("", "Equal"):
            errs += check(f"{p}.value", tol.value, label_value_errors(tol.value))
        elif tol.operator == "Exists":
            if tol.value:
                errs.append(invalid(f"{p}.operator", tol.value,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(unsupported(f"{p}.operator", tol.operator, ("Equal", "Exists")))
        if tol.effect and tol.effect not in TAINT_EFFECTS:
            errs.append(unsupported(f"{p}.effect", tol.effect, TAINT_EFFECTS))
    return errs


def _node_affinity(affinity: Any, path: str) -> Errors:
    errs: Errors = []
    if affinity.HasField("required_during_scheduling_ignored_during_execution"):
        selector = affinity.required_during_scheduling_ignored_during_execution
        p = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not selector.node_selector_terms:
            errs.append(required(p, "must have at least one node selector term"))
        for j, term in enumerate(selector.node_selector_terms):
            errs += node_selector_term(term, f"{p}[{j}]")
    for j, pref in enumerate(affinity.preferred_during_scheduling_ignored_during_execution):
        p = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{j}]"
        if not 1 <= pref.weight <= 100:
            errs.append(invalid(f"{p}.weight", pref.weight, "must be in the range 1-100"))
        errs += node_selector_term(pref.preference, f"{p}.preference")
    return errs


def node_selector_term(term: Any, path: str) -> Errors:
    errs: Errors = []
    for i, req in enumerate(term.match_expressions):
        errs += _node_selector_requirement(req, f"{path}.matchExpressions[{i}]")
    for i, req in enumerate(term.match_fields):
        p = f"{path}.matchFields[{i}]"
        if req.key != "metadata.name":
            errs.append(unsupported(f"{p}.key", req.key, ("metadata.name",)))
        if req.operator not in ("In", "NotIn"):
            errs.append(unsupported(f"{p}.operator", req.operator, ("In", "NotIn")))
        elif len(req.values) != 1:
            errs.append(required(f"{p}.values", "must be only one value when `operator` is 'In' "
                                                "or 'NotIn' for node field selector"))
    return errs


def _node_selector_requirement(req: Any, path: str) -> Errors:
    errs = check(f"{path}.key", req.key, qualified_name_errors(req.key))
    op, values = req.operator, list(req.values)
    if op in ("In", "NotIn"):
        if not values:
            errs.append(required(f"{path}.values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(f"{path}.values", "may not be specified when `operator` is "
                                                    "'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(required(f"{path}.values", "must be specified single value when "
                                                   "`operator` is 'Lt' or 'Gt'"))
        elif not re.fullmatch(r"[-+]?[0-9]+", values[0]):
            errs.append(invalid(f"{path}.values[0]", values[0], "must be an integer"))
    else:
        errs.append(unsupported(f"{path}.operator", op,
                                ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")))
    return errs


# --- Pods: create, update, status ---------------------------------------------------------


def validate_pod(pod: Any, old: Any | None) -> Errors:
    errs = pod_spec(pod.spec, "spec")
    if old is not None:
        errs += _pod_spec_update(pod.spec, old.spec)
    return errs


def _pod_spec_update(new: Any, old: Any) -> Errors:
    """Kubernetes' pod update rule: the spec is immutable but for images,
    activeDeadlineSeconds (only lowered) and tolerations (only added). The
    node a pod is bound to changes through Bind; Update may set it only
    while it is still empty."""
    errs: Errors = []
    for json_name, field in (("containers", "containers"), ("initContainers", "init_containers")):
        if len(getattr(new, field)) != len(getattr(old, field)):
            return [forbidden(f"spec.{json_name}", "pod updates may not add or remove containers")]
    if old.HasField("active_deadline_seconds"):
        if not new.HasField("active_deadline_seconds"):
            errs.append(invalid("spec.activeDeadlineSeconds", None,
                                "must not update from a positive integer to nil value"))
        elif new.active_deadline_seconds > old.active_deadline_seconds:
            errs.append(invalid("spec.activeDeadlineSeconds", new.active_deadline_seconds,
                                "must be less than or equal to previous value"))
    if old.node_name and new.node_name != old.node_name:
        errs.append(forbidden("spec.nodeName",
                              "may not be changed once set (a pod is bound through Bind)"))
    errs += _only_added_tolerations(new.tolerations, old.tolerations)
    masked = core.PodSpec()
    masked.CopyFrom(new)
    for field in ("containers", "init_containers"):
        for mc, oc in zip(getattr(masked, field), getattr(old, field), strict=True):
            mc.image = oc.image
    masked.ClearField("active_deadline_seconds")
    if old.HasField("active_deadline_seconds"):
        masked.active_deadline_seconds = old.active_deadline_seconds
    del masked.tolerations[:]
    masked.tolerations.extend(old.tolerations)
    masked.node_name = old.node_name  # reported above, or allowed (set while empty)
    if masked != old:
        changed = ", ".join(f"spec.{f.json_name}" for f in core.PodSpec.DESCRIPTOR.fields
                            if _differs(masked, old, f))
        errs.append(forbidden("spec", f"{UPDATABLE_FIELDS_MESSAGE} (changed: {changed})"))
    return errs


def _differs(a: Any, b: Any, field: Any) -> bool:
    if field.has_presence and a.HasField(field.name) != b.HasField(field.name):
        return True
    return getattr(a, field.name) != getattr(b, field.name)


def _only_added_tolerations(new: Any, old: Any) -> Errors:
    """Each existing toleration must still be there; only tolerationSeconds may change."""
    def identity(tol: Any) -> tuple[str, str, str, str]:
        return tol.key, tol.operator, tol.value, tol.effect
    present = {identity(t) for t in new}
    for tol in old:
        if identity(tol) not in present:
            return [forbidden("spec.tolerations",
                              "existing toleration can not be modified except its "
                              "tolerationSeconds")]
    return []


def validate_pod_status(pod: Any, old: Any) -> Errors:
    status = pod.status
    errs = one_of("status.phase", status.phase, POD_PHASES)
    if old.status.phase in TERMINAL_PHASES and status.phase != old.status.phase:
        errs.append(forbidden("status.phase", f"may not transition from terminal phase "
                                              f"\"{old.status.phase}\" to \"{status.phase}\""))
    errs += conditions(status.conditions, "status.conditions")
    for field, json_name in (("pod_ip", "podIP"), ("host_ip", "hostIP")):
        value = getattr(status, field)
        if value and not is_ip(value):
            errs.append(invalid(f"status.{json_name}", value, "must be a valid IP address"))
    for i, pod_ip in enumerate(status.pod_ips):
        if not is_ip(pod_ip.ip):
            errs.append(invalid(f"status.podIPs[{i}].ip", pod_ip.ip, "must be a valid IP address"))
    if status.pod_ip and status.pod_ips and status.pod_ips[0].ip != status.pod_ip:
        errs.append(invalid("status.podIPs[0].ip", status.pod_ips[0].ip,
                            "must be the same as status.podIP"))
    if status.qos_class and status.qos_class not in QOS_CLASSES:
        errs.append(unsupported("status.qosClass", status.qos_class, QOS_CLASSES))
    for json_name, items in (("initContainerStatuses", status.init_container_statuses),
                             ("containerStatuses", status.container_statuses)):
        for i, cs in enumerate(items):
            errs += _container_status(cs, f"status.{json_name}[{i}]")
    return errs


def _container_status(cs: Any, path: str) -> Errors:
    errs: Errors = []
    if not cs.name:
        errs.append(required(f"{path}.name"))
    errs += non_negative(f"{path}.restartCount", cs.restart_count)
    for json_name, state in (("state", cs.state), ("lastState", cs.last_state)):
        set_states = [f.json_name for f, _ in state.ListFields()]
        if len(set_states) > 1:
            errs.append(forbidden(f"{path}.{json_name}.{set_states[1]}",
                                  "may not specify more than 1 state"))
    return errs
