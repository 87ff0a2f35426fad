"""Validation of ReplicaSets and Deployments: selector, template, strategy, status."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.apiserver.defaulting import apply_defaults
from services.apiserver.validation import validate, validate_status


def _workload(cls):
    obj = cls()
    obj.metadata.name, obj.metadata.namespace = "web", "default"
    obj.spec.selector.match_labels["app"] = "web"
    obj.spec.template.metadata.labels.update({"app": "web", "version": "1"})
    obj.spec.template.spec.containers.add(name="app", image="nginx:1.25")
    apply_defaults(obj)
    return obj


def _errors(obj, old=None):
    return [(e.path, e.message) for e in validate(obj, old)]


def _expect(errs, *expected):
    assert len(errs) == len(expected), errs
    for (path, fragment), (got_path, message) in zip(expected, errs, strict=True):
        assert got_path == path and fragment in message, errs


def _copy(obj, change):
    new = type(obj)()
    new.CopyFrom(obj)
    change(new)
    return new


def _expr(obj, key, op, values=()):
    obj.spec.selector.match_expressions.add(key=key, operator=op, values=list(values))


COMMON_CASES = [
    ("valid", lambda o: None, []),
    ("replicas", lambda o: setattr(o.spec, "replicas", -1),
     [("spec.replicas", "must be greater than or equal to 0")]),
    ("zero replicas ok", lambda o: setattr(o.spec, "replicas", 0), []),
    ("min ready", lambda o: setattr(o.spec, "min_ready_seconds", -1),
     [("spec.minReadySeconds", "must be greater than or equal to 0")]),
    ("selector required", lambda o: o.spec.ClearField("selector"),
     [("spec.selector", "Required value")]),
    ("selector non-empty", lambda o: o.spec.selector.ClearField("match_labels"),
     [("spec.selector", "empty selector is invalid")]),
    ("selector must match template", lambda o: o.spec.template.metadata.labels.__setitem__(
        "app", "db"),
     [("spec.template.metadata.labels", "`selector` does not match template `labels`")]),
    ("selector expressions match", lambda o: _expr(o, "version", "In", ["1", "2"]), []),
    ("selector expressions mismatch", lambda o: _expr(o, "version", "NotIn", ["1"]),
     [("spec.template.metadata.labels", "does not match template")]),
    ("selector operator", lambda o: _expr(o, "version", "Like", ["1"]),
     [("spec.selector.matchExpressions[0].operator", "not a valid selector operator")]),
    ("selector in needs values", lambda o: _expr(o, "version", "In"),
     [("spec.selector.matchExpressions[0].values", "must be specified")]),
    ("selector exists takes no values", lambda o: _expr(o, "version", "Exists", ["1"]),
     [("spec.selector.matchExpressions[0].values", "may not be specified")]),
    ("selector label key", lambda o: o.spec.selector.match_labels.__setitem__("-x", "y"),
     [("spec.selector.matchLabels", "name part must consist")]),
    ("template required", lambda o: o.spec.ClearField("template"),
     [("spec.template", "Required value")]),
    ("template pod spec", lambda o: setattr(o.spec.template.spec.containers[0], "image", ""),
     [("spec.template.spec.containers[0].image", "Required value")]),
    ("template restart policy", lambda o: setattr(o.spec.template.spec, "restart_policy",
                                                  "Never"),
     [("spec.template.spec.restartPolicy",
       'Unsupported value: "Never": supported values: "Always"')]),
    ("template deadline", lambda o: setattr(o.spec.template.spec, "active_deadline_seconds", 5),
     [("spec.template.spec.activeDeadlineSeconds", "Forbidden")]),
]


@pytest.mark.parametrize("cls", [apps.ReplicaSet, apps.Deployment], ids=["rs", "deploy"])
@pytest.mark.parametrize("mutate, expected", [c[1:] for c in COMMON_CASES],
                         ids=[c[0] for c in COMMON_CASES])
def test_workload_rules(cls, mutate, expected):
    obj = _workload(cls)
    mutate(obj)
    _expect(_errors(obj), *expected)


@pytest.mark.parametrize("cls", [apps.ReplicaSet, apps.Deployment], ids=["rs", "deploy"])
def test_workload_update_selector_immutable(cls):
    old = _workload(cls)
    scaled = _copy(old, lambda o: setattr(o.spec, "replicas", 5))
    assert validate(scaled, old) == []

    def reselect(o):
        o.spec.selector.match_labels["version"] = "1"
    _expect(_errors(_copy(old, reselect), old), ("spec.selector", "field is immutable"))


# --- Deployment strategy and limits -------------------------------------------------------


def _ru(d):
    return d.spec.strategy.rolling_update


DEPLOYMENT_CASES = [
    ("recreate", lambda d: (setattr(d.spec.strategy, "type", "Recreate"),
                            d.spec.strategy.ClearField("rolling_update")), []),
    ("recreate with rollingUpdate", lambda d: setattr(d.spec.strategy, "type", "Recreate"),
     [("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")]),
    ("strategy type", lambda d: setattr(d.spec.strategy, "type", "BlueGreen"),
     [("spec.strategy.type", 'Unsupported value: "BlueGreen": supported values: "Recreate", '
                             '"RollingUpdate"')]),
    ("rolling update ints", lambda d: (setattr(_ru(d).max_surge, "int_value", 2),
                                       setattr(_ru(d).max_unavailable, "int_value", 0)), []),
    ("negative surge", lambda d: setattr(_ru(d).max_surge, "int_value", -1),
     [("spec.strategy.rollingUpdate.maxSurge", "must be greater than or equal to 0")]),
    ("bad percent", lambda d: setattr(_ru(d).max_unavailable, "str_value", "half"),
     [("spec.strategy.rollingUpdate.maxUnavailable", "a valid percent string")]),
    ("unavailable over 100%", lambda d: setattr(_ru(d).max_unavailable, "str_value", "150%"),
     [("spec.strategy.rollingUpdate.maxUnavailable", "must not be greater than 100%")]),
    ("surge over 100% ok", lambda d: setattr(_ru(d).max_surge, "str_value", "150%"), []),
    ("both zero", lambda d: (setattr(_ru(d).max_surge, "int_value", 0),
                             setattr(_ru(d).max_unavailable, "str_value", "0%")),
     [("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0")]),
    ("revision history", lambda d: setattr(d.spec, "revision_history_limit", -1),
     [("spec.revisionHistoryLimit", "must be greater than or equal to 0")]),
    ("progress deadline", lambda d: (setattr(d.spec, "min_ready_seconds", 30),
                                     setattr(d.spec, "progress_deadline_seconds", 30)),
     [("spec.progressDeadlineSeconds", "must be greater than minReadySeconds")]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in DEPLOYMENT_CASES],
                         ids=[c[0] for c in DEPLOYMENT_CASES])
def test_deployment_rules(mutate, expected):
    dep = _workload(apps.Deployment)
    mutate(dep)
    _expect(_errors(dep), *expected)


# --- status -------------------------------------------------------------------------------


def _status_errors(obj, change):
    new = _copy(obj, lambda o: change(o.status))
    return [(e.path, e.message) for e in validate_status(new, obj)]


def test_replica_set_status_rules():
    rs = _workload(apps.ReplicaSet)

    def ok(s):
        s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas = 3, 3, 2, 1
    assert _status_errors(rs, ok) == []

    def bad(s):
        s.replicas, s.ready_replicas, s.available_replicas = 1, 2, 3
        s.observed_generation = -1
    _expect(_status_errors(rs, bad),
            ("status.observedGeneration", "must be greater than or equal to 0"),
            ("status.readyReplicas", "cannot be greater than status.replicas"),
            ("status.availableReplicas", "cannot be greater than status.replicas"),
            ("status.availableReplicas", "cannot be greater than readyReplicas"))


def test_deployment_status_rules():
    dep = _workload(apps.Deployment)

    def bad(s):
        s.replicas, s.updated_replicas = 1, 2
        s.conditions.add(type="Available", status="Sure")
    _expect(_status_errors(dep, bad),
            ("status.updatedReplicas", "cannot be greater than status.replicas"),
            ("status.conditions[0].status", 'Unsupported value: "Sure"'))
