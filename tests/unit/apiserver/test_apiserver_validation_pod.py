"""Validation of pods: spec rules, update rules, status rules.

Each case starts from a valid, defaulted pod, breaks one thing, and expects
exactly the errors that thing causes."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.apiserver.defaulting import apply_defaults
from services.apiserver.validation import validate, validate_status


def _pod() -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = "web", "default"
    pod.metadata.uid = "uid-1"
    pod.spec.volumes.add(name="data").empty_dir.SetInParent()
    ctr = pod.spec.containers.add(name="app", image="nginx:1.25")
    ctr.ports.add(name="http", container_port=80)
    ctr.volume_mounts.add(name="data", mount_path="/data")
    ctr.liveness_probe.http_get.port.str_value = "http"
    ctr.readiness_probe.tcp_socket.port.int_value = 80
    ctr.resources.limits["cpu"] = "500m"
    ctr.resources.requests["memory"] = "64Mi"
    ctr.env.add(name="MODE", value="prod")
    apply_defaults(pod)
    return pod


def _errors(pod, old=None):
    return [(e.path, e.message) for e in validate(pod, old)]


def _expect(pod, *expected, old=None):
    """Each expected (path, fragment) matches one error, and there are no others."""
    errs = _errors(pod, old)
    assert len(errs) == len(expected), errs
    for (path, fragment), (got_path, message) in zip(expected, errs, strict=True):
        assert got_path == path, errs
        assert fragment in message, errs


def _ctr(pod):
    return pod.spec.containers[0]


def test_pod_valid_has_no_errors():
    assert validate(_pod()) == []


# --- containers ---------------------------------------------------------------------------


def _no_containers(p):
    del p.spec.containers[:]


def _dup_init(p):
    p.spec.init_containers.add(name="app", image="busybox", image_pull_policy="Always")


CASES = [
    ("no containers", _no_containers, [("spec.containers", "Required value")]),
    ("container name required", lambda p: setattr(_ctr(p), "name", ""),
     [("spec.containers[0].name", "Required value")]),
    ("container name label", lambda p: setattr(_ctr(p), "name", "App_1"),
     [("spec.containers[0].name", "RFC 1123 label")]),
    ("init and app names unique", _dup_init,
     [("spec.containers[0].name", 'Duplicate value: "app"')]),
    ("image required", lambda p: setattr(_ctr(p), "image", ""),
     [("spec.containers[0].image", "Required value")]),
    ("image whitespace", lambda p: setattr(_ctr(p), "image", " nginx"),
     [("spec.containers[0].image", "leading or trailing whitespace")]),
    ("pull policy", lambda p: setattr(_ctr(p), "image_pull_policy", "Sometimes"),
     [("spec.containers[0].imagePullPolicy",
       'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"')]),
    # ports
    ("containerPort required", lambda p: setattr(_ctr(p).ports[0], "container_port", 0),
     [("spec.containers[0].ports[0].containerPort", "Required value")]),
    ("containerPort range", lambda p: setattr(_ctr(p).ports[0], "container_port", 70000),
     [("spec.containers[0].ports[0].containerPort",
       "Invalid value: 70000: must be between 1 and 65535, inclusive")]),
    ("hostPort range", lambda p: setattr(_ctr(p).ports[0], "host_port", -1),
     [("spec.containers[0].ports[0].hostPort", "must be between 1 and 65535")]),
    ("protocol", lambda p: setattr(_ctr(p).ports[0], "protocol", "HTTP"),
     [("spec.containers[0].ports[0].protocol",
       'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')]),
    ("port name too long", lambda p: setattr(_ctr(p).ports[0], "name", "a" * 16),
     [("spec.containers[0].ports[0].name", "must be no more than 15 characters")]),
    ("port name needs a letter", lambda p: setattr(_ctr(p).ports[0], "name", "8080"),
     [("spec.containers[0].ports[0].name", "at least one letter")]),
    ("port name duplicate", lambda p: _ctr(p).ports.add(name="http", container_port=81,
                                                          protocol="TCP"),
     [("spec.containers[0].ports[1].name", 'Duplicate value: "http"')]),
    # env
    ("env name required", lambda p: setattr(_ctr(p).env[0], "name", ""),
     [("spec.containers[0].env[0].name", "Required value")]),
    ("env name no equals", lambda p: setattr(_ctr(p).env[0], "name", "A=B"),
     [("spec.containers[0].env[0].name", "printable ASCII characters other than '='")]),
    ("env value and valueFrom", lambda p: _ctr(p).env[0].value_from.field_ref.MergeFrom(
        core.ObjectFieldSelector(api_version="v1", field_path="metadata.name")),
     [("spec.containers[0].env[0].valueFrom", "may not be specified when `value` is not empty")]),
    ("env fieldRef path", lambda p: _ctr(p).env.add(name="X").value_from.field_ref.MergeFrom(
        core.ObjectFieldSelector(api_version="v1", field_path="spec.foo")),
     [("spec.containers[0].env[1].valueFrom.fieldRef.fieldPath", 'Unsupported value: "spec.foo"')]),
    # resources
    ("resource quantity", lambda p: _ctr(p).resources.limits.__setitem__("memory", "lots"),
     [("spec.containers[0].resources.limits[memory]", "must match the regex")]),
    ("resource negative", lambda p: _ctr(p).resources.limits.__setitem__("cpu", "-1"),
     [("spec.containers[0].resources.limits[cpu]", "must be greater than or equal to 0")]),
    ("resource name", lambda p: _ctr(p).resources.limits.__setitem__("gpu", "1"),
     [("spec.containers[0].resources.limits[gpu]", "must be a standard resource")]),
    ("requests above limits", lambda p: _ctr(p).resources.requests.__setitem__("cpu", "1"),
     [("spec.containers[0].resources.requests[cpu]",
       'Invalid value: "1": must be less than or equal to cpu limit of 500m')]),
    # probes
    ("probe handler required", lambda p: _ctr(p).liveness_probe.ClearField("http_get"),
     [("spec.containers[0].livenessProbe", "Required value: must specify a handler type")]),
    ("probe one handler", lambda p: _ctr(p).liveness_probe.exec.command.append("true"),
     [("spec.containers[0].livenessProbe.httpGet", "may not specify more than 1 handler type")]),
    ("probe negative period", lambda p: setattr(_ctr(p).readiness_probe, "period_seconds", -1),
     [("spec.containers[0].readinessProbe.periodSeconds", "must be greater than or equal to 0")]),
    ("liveness successThreshold", lambda p: setattr(_ctr(p).liveness_probe,
                                                    "success_threshold", 2),
     [("spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1")]),
    ("readiness successThreshold may exceed 1",
     lambda p: setattr(_ctr(p).readiness_probe, "success_threshold", 3), []),
    ("probe port range", lambda p: setattr(_ctr(p).readiness_probe.tcp_socket.port,
                                           "int_value", 0),
     [("spec.containers[0].readinessProbe.tcpSocket.port", "must be between 1 and 65535")]),
    ("probe scheme", lambda p: setattr(_ctr(p).liveness_probe.http_get, "scheme", "FTP"),
     [("spec.containers[0].livenessProbe.httpGet.scheme", 'Unsupported value: "FTP"')]),
    ("exec command required", lambda p: _ctr(p).startup_probe.MergeFrom(core.Probe(
        exec=core.ExecAction(), success_threshold=1)),
     [("spec.containers[0].startupProbe.exec.command", "Required value")]),
    ("init container probes", lambda p: p.spec.init_containers.add(
        name="init", image="busybox", image_pull_policy="Always",
        readiness_probe=core.Probe(exec=core.ExecAction(command=["true"]))),
     [("spec.initContainers[0].readinessProbe", "may not be set for init containers")]),
    # volumes
    ("volume source required", lambda p: p.spec.volumes[0].ClearField("empty_dir"),
     [("spec.volumes[0]", "Required value: must specify a volume type")]),
    ("volume one source", lambda p: setattr(p.spec.volumes[0].host_path, "path", "/x"),
     [("spec.volumes[0].hostPath", "may not specify more than 1 volume type")]),
    ("volume names unique", lambda p: p.spec.volumes.add(name="data").empty_dir.SetInParent(),
     [("spec.volumes[1].name", 'Duplicate value: "data"')]),
    ("volume mount must exist", lambda p: setattr(_ctr(p).volume_mounts[0], "name", "nope"),
     [("spec.containers[0].volumeMounts[0].name", 'Not found: "nope"')]),
    ("mount path required", lambda p: setattr(_ctr(p).volume_mounts[0], "mount_path", ""),
     [("spec.containers[0].volumeMounts[0].mountPath", "Required value")]),
    # pod-level
    ("restart policy", lambda p: setattr(p.spec, "restart_policy", "Sometimes"),
     [("spec.restartPolicy",
       'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"')]),
    ("dns policy", lambda p: setattr(p.spec, "dns_policy", "Cluster"),
     [("spec.dnsPolicy", 'Unsupported value: "Cluster"')]),
    ("dns policy optional", lambda p: setattr(p.spec, "dns_policy", ""), []),
    ("grace period", lambda p: setattr(p.spec, "termination_grace_period_seconds", -1),
     [("spec.terminationGracePeriodSeconds", "must be greater than or equal to 0")]),
    ("active deadline", lambda p: setattr(p.spec, "active_deadline_seconds", 0),
     [("spec.activeDeadlineSeconds", "must be between 1 and 2147483647")]),
    ("node selector", lambda p: p.spec.node_selector.__setitem__("disk", "ssd fast"),
     [("spec.nodeSelector", "a valid label must be")]),
    ("host network ports", lambda p: setattr(p.spec, "host_network", True),
     [("spec.containers[0].ports[0].hostPort", "must match `containerPort`")]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pod_spec_rules(mutate, expected):
    pod = _pod()
    mutate(pod)
    _expect(pod, *expected)


# --- tolerations --------------------------------------------------------------------------


TOLERATION_CASES = [
    ("equal ok", dict(key="k", operator="Equal", value="v", effect="NoSchedule"), []),
    ("empty operator means equal", dict(key="k", value="v"), []),
    ("exists ok", dict(key="k", operator="Exists"), []),
    ("match everything", dict(operator="Exists"), []),
    ("exists with value", dict(key="k", operator="Exists", value="v"),
     [("operator", "value must be empty when `operator` is 'Exists'")]),
    ("empty key needs exists", dict(operator="Equal", value="v"),
     [("operator", "operator must be Exists when `key` is empty")]),
    ("bad operator", dict(key="k", operator="In"),
     [("operator", 'Unsupported value: "In": supported values: "Equal", "Exists"')]),
    ("bad effect", dict(key="k", operator="Exists", effect="Evict"),
     [("effect", 'Unsupported value: "Evict"')]),
    ("seconds need NoExecute", dict(key="k", operator="Exists", effect="NoSchedule",
                                    toleration_seconds=5),
     [("effect", "effect must be 'NoExecute' when `tolerationSeconds` is set")]),
    ("seconds with NoExecute", dict(key="k", operator="Exists", effect="NoExecute",
                                    toleration_seconds=5), []),
    ("bad key", dict(key="-k", operator="Exists"), [("key", "name part must consist")]),
]


@pytest.mark.parametrize("fields, expected", [c[1:] for c in TOLERATION_CASES],
                         ids=[c[0] for c in TOLERATION_CASES])
def test_pod_tolerations(fields, expected):
    pod = _pod()
    pod.spec.tolerations.add(**fields)
    index = len(pod.spec.tolerations) - 1
    _expect(pod, *[(f"spec.tolerations[{index}].{sub}", frag) for sub, frag in expected])


# --- node affinity ------------------------------------------------------------------------


def _required_term(pod):
    na = pod.spec.affinity.node_affinity
    return na.required_during_scheduling_ignored_during_execution.node_selector_terms.add()


AFFINITY_CASES = [
    ("in ok", "In", ["a"], []),
    ("in needs values", "In", [], [("values", "must be specified when `operator` is 'In'")]),
    ("exists ok", "Exists", [], []),
    ("exists no values", "DoesNotExist", ["a"], [("values", "may not be specified")]),
    ("gt ok", "Gt", ["5"], []),
    ("gt one value", "Lt", ["1", "2"], [("values", "must be specified single value")]),
    ("gt integer", "Gt", ["five"], [("values[0]", "must be an integer")]),
    ("bad operator", "Like", ["a"], [("operator", 'Unsupported value: "Like"')]),
]


@pytest.mark.parametrize("op, values, expected", [c[1:] for c in AFFINITY_CASES],
                         ids=[c[0] for c in AFFINITY_CASES])
def test_pod_node_affinity_operators(op, values, expected):
    pod = _pod()
    _required_term(pod).match_expressions.add(key="zone", operator=op, values=values)
    base = ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0]")
    _expect(pod, *[(f"{base}.{sub}", frag) for sub, frag in expected])


def test_pod_node_affinity_terms_required_and_preferred_weight():
    pod = _pod()
    na = pod.spec.affinity.node_affinity
    na.required_during_scheduling_ignored_during_execution.SetInParent()
    pref = na.preferred_during_scheduling_ignored_during_execution.add(weight=0)
    pref.preference.match_fields.add(key="metadata.uid", operator="In", values=["a"])
    _expect(pod,
            ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
             ".nodeSelectorTerms", "must have at least one node selector term"),
            ("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
             ".weight", "must be in the range 1-100"),
            ("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
             ".preference.matchFields[0].key", 'Unsupported value: "metadata.uid"'))


# --- updates ------------------------------------------------------------------------------


def _updated(old, change):
    new = core.Pod()
    new.CopyFrom(old)
    change(new)
    return new


def test_pod_update_may_change_images():
    old = _pod()
    new = _updated(old, lambda p: setattr(_ctr(p), "image", "nginx:1.26"))
    assert validate(new, old) == []


def test_pod_update_may_not_change_other_fields():
    old = _pod()
    new = _updated(old, lambda p: setattr(p.spec, "restart_policy", "Never"))
    _expect(new, ("spec", "pod updates may not change fields other than "
                          "`spec.containers[*].image`"), old=old)
    assert "spec.restartPolicy" in validate(new, old)[0].message


def test_pod_update_may_not_add_containers():
    old = _pod()
    new = _updated(old, lambda p: p.spec.containers.add(name="b", image="x",
                                                        image_pull_policy="Always"))
    _expect(new, ("spec.containers", "may not add or remove containers"), old=old)


def test_pod_update_tolerations_additions_only():
    old = _pod()
    added = _updated(old, lambda p: p.spec.tolerations.add(key="k", operator="Exists"))
    assert validate(added, old) == []
    seconds = _updated(old, lambda p: setattr(p.spec.tolerations[0], "toleration_seconds", 10))
    assert validate(seconds, old) == []
    removed = _updated(old, lambda p: p.spec.tolerations.pop())
    _expect(removed, ("spec.tolerations", "existing toleration can not be modified"), old=old)


def test_pod_update_active_deadline_may_only_decrease():
    old = _updated(_pod(), lambda p: setattr(p.spec, "active_deadline_seconds", 100))
    assert validate(_updated(old, lambda p: setattr(p.spec, "active_deadline_seconds", 50)),
                    old) == []
    _expect(_updated(old, lambda p: setattr(p.spec, "active_deadline_seconds", 200)),
            ("spec.activeDeadlineSeconds", "must be less than or equal to previous value"),
            old=old)
    _expect(_updated(old, lambda p: p.spec.ClearField("active_deadline_seconds")),
            ("spec.activeDeadlineSeconds", "must not update from a positive integer to nil"),
            old=old)


def test_pod_update_node_name_set_once():
    old = _pod()
    bound = _updated(old, lambda p: setattr(p.spec, "node_name", "n1"))
    assert validate(bound, old) == []
    moved = _updated(bound, lambda p: setattr(p.spec, "node_name", "n2"))
    _expect(moved, ("spec.nodeName", "may not be changed once set"), old=bound)


# --- status -------------------------------------------------------------------------------


def _with_status(old, change):
    new = core.Pod()
    new.CopyFrom(old)
    change(new.status)
    return new


def _status_errors(new, old):
    return [(e.path, e.message) for e in validate_status(new, old)]


def test_pod_status_valid():
    old = _pod()

    def running(s):
        s.phase, s.pod_ip, s.host_ip = "Running", "10.0.0.5", "192.0.2.1"
        s.pod_ips.add(ip="10.0.0.5")
        s.conditions.add(type="Ready", status="True")
        status = s.container_statuses.add(name="app", ready=True, restart_count=1)
        status.state.running.SetInParent()
    assert validate_status(_with_status(old, running), old) == []


@pytest.mark.parametrize("change, path, fragment", [
    (lambda s: setattr(s, "phase", "Done"), "status.phase", 'Unsupported value: "Done"'),
    (lambda s: s.conditions.add(type="Ready", status="Yes"), "status.conditions[0].status",
     'Unsupported value: "Yes": supported values: "True", "False", "Unknown"'),
    (lambda s: s.conditions.add(status="True"), "status.conditions[0].type", "Required value"),
    (lambda s: setattr(s, "pod_ip", "10.0.0.300"), "status.podIP", "must be a valid IP"),
    (lambda s: s.container_statuses.add(name="app", restart_count=-1),
     "status.containerStatuses[0].restartCount", "must be greater than or equal to 0"),
    (lambda s: setattr(s, "qos_class", "Gold"), "status.qosClass", 'Unsupported value: "Gold"'),
])
def test_pod_status_rules(change, path, fragment):
    old = _pod()
    errs = _status_errors(_with_status(old, change), old)
    assert len(errs) == 1 and errs[0][0] == path and fragment in errs[0][1], errs


def test_pod_status_terminal_phase_is_final():
    old = _with_status(_pod(), lambda s: setattr(s, "phase", "Succeeded"))
    new = _with_status(old, lambda s: setattr(s, "phase", "Running"))
    errs = _status_errors(new, old)
    assert errs[0][0] == "status.phase" and "terminal phase" in errs[0][1]
