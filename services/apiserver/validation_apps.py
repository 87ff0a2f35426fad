"""Workload rules: ReplicaSet and Deployment (apps/v1).

A workload's selector must be non-empty and select its own template, else
its controller would adopt pods it never made or never see the ones it
makes; apps/v1 also makes the selector immutable for the same reason.
"""

from __future__ import annotations

from typing import Any

from services.api import selectors
from services.apiserver.validation_common import (
    Errors,
    annotations,
    check,
    conditions,
    forbidden,
    immutable,
    invalid,
    label_value_errors,
    labels,
    non_negative,
    percent_errors,
    qualified_name_errors,
    required,
    unsupported,
)
from services.apiserver.validation_pod import pod_spec

STRATEGY_TYPES = ("Recreate", "RollingUpdate")


def label_selector(sel: Any, path: str) -> Errors:
    """A metav1.LabelSelector's shape (Kubernetes' ValidateLabelSelector)."""
    errs = labels(sel.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(sel.match_expressions):
        p = f"{path}.matchExpressions[{i}]"
        errs += check(f"{p}.key", expr.key, qualified_name_errors(expr.key))
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.append(required(f"{p}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.append(forbidden(f"{p}.values", "may not be specified when `operator` is "
                                                     "'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", expr.operator, "not a valid selector operator"))
        for j, value in enumerate(expr.values):
            errs += check(f"{p}.values[{j}]", value, label_value_errors(value))
    return errs


def _selector_and_template(spec: Any, kind: str) -> Errors:
    """The selector (required, non-empty, well formed) and a template it selects."""
    errs: Errors = []
    selector = None
    if not spec.HasField("selector"):
        errs.append(required("spec.selector"))
    else:
        problems = label_selector(spec.selector, "spec.selector")
        errs += problems
        if not problems:
            selector = selectors.from_proto(spec.selector)
            if selector.empty:
                errs.append(invalid("spec.selector", "",
                                    f"empty selector is invalid for {kind.lower()}"))
                selector = None
    errs += _template(spec, selector)
    return errs


def _template(spec: Any, selector: selectors.LabelSelector | None) -> Errors:
    if not spec.HasField("template"):
        return [required("spec.template")]
    tmpl = spec.template
    path = "spec.template"
    errs = labels(tmpl.metadata.labels, f"{path}.metadata.labels")
    errs += annotations(tmpl.metadata.annotations, f"{path}.metadata.annotations")
    if selector is not None and not selector.matches(tmpl.metadata.labels):
        errs.append(invalid(f"{path}.metadata.labels", dict(tmpl.metadata.labels),
                            "`selector` does not match template `labels`"))
    errs += pod_spec(tmpl.spec, f"{path}.spec")
    if tmpl.spec.restart_policy in ("OnFailure", "Never"):
        errs.append(unsupported(f"{path}.spec.restartPolicy", tmpl.spec.restart_policy,
                                ("Always",)))
    if tmpl.spec.HasField("active_deadline_seconds"):
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errs


def _common(obj: Any, old: Any | None, kind: str) -> Errors:
    spec = obj.spec
    errs: Errors = []
    if spec.HasField("replicas"):
        errs += non_negative("spec.replicas", spec.replicas)
    errs += non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    errs += _selector_and_template(spec, kind)
    if old is not None and spec.selector != old.spec.selector:
        errs.append(immutable("spec.selector", _selector_text(spec.selector)))
    return errs


def _selector_text(sel: Any) -> str:
    try:
        return selectors.to_text(sel)
    except selectors.SelectorError:
        return str(dict(sel.match_labels))


# --- ReplicaSet ---------------------------------------------------------------------------


def validate_replica_set(rs: Any, old: Any | None) -> Errors:
    return _common(rs, old, "ReplicaSet")


def validate_replica_set_status(rs: Any, old: Any) -> Errors:
    status = rs.status
    errs: Errors = []
    for field, json_name in (("replicas", "replicas"),
                             ("fully_labeled_replicas", "fullyLabeledReplicas"),
                             ("ready_replicas", "readyReplicas"),
                             ("available_replicas", "availableReplicas"),
                             ("observed_generation", "observedGeneration")):
        errs += non_negative(f"status.{json_name}", getattr(status, field))
    errs += _not_greater(status, "fully_labeled_replicas", "replicas")
    errs += _not_greater(status, "ready_replicas", "replicas")
    errs += _not_greater(status, "available_replicas", "replicas")
    errs += _not_greater(status, "available_replicas", "ready_replicas")
    errs += conditions(status.conditions, "status.conditions")
    return errs


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(w.title() for w in rest)


def _not_greater(status: Any, field: str, bound: str) -> Errors:
    value, limit = getattr(status, field), getattr(status, bound)
    if value <= limit:
        return []
    what = "status.replicas" if bound == "replicas" else _camel(bound)
    return [invalid(f"status.{_camel(field)}", value, f"cannot be greater than {what}")]


# --- Deployment ---------------------------------------------------------------------------


def validate_deployment(dep: Any, old: Any | None) -> Errors:
    spec = dep.spec
    errs = _common(dep, old, "Deployment")
    errs += _strategy(spec.strategy, "spec.strategy")
    if spec.HasField("revision_history_limit"):
        errs += non_negative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds"):
        pds = spec.progress_deadline_seconds
        errs += non_negative("spec.progressDeadlineSeconds", pds)
        if pds <= spec.min_ready_seconds:
            errs.append(invalid("spec.progressDeadlineSeconds", pds,
                                "must be greater than minReadySeconds"))
    return errs


def _strategy(strategy: Any, path: str) -> Errors:
    kind = strategy.type
    if kind == "":
        return [required(f"{path}.type")]
    if kind == "Recreate":
        if strategy.HasField("rolling_update"):
            return [forbidden(f"{path}.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        if not strategy.HasField("rolling_update"):
            return [required(f"{path}.rollingUpdate",
                             "this should be defaulted and never be nil")]
        return _rolling_update(strategy.rolling_update, f"{path}.rollingUpdate")
    return [unsupported(f"{path}.type", kind, STRATEGY_TYPES)]


def _int_or_percent(ios: Any, path: str, *, max_percent: int | None) -> Errors:
    which = ios.WhichOneof("value")
    if which is None:
        return []
    if which == "int_value":
        return non_negative(path, ios.int_value)
    text = ios.str_value
    errs = check(path, text, percent_errors(text))
    if not errs and max_percent is not None and int(text[:-1]) > max_percent:
        errs.append(invalid(path, text, f"must not be greater than {max_percent}%"))
    return errs


def _is_zero(ios: Any) -> bool:
    which = ios.WhichOneof("value")
    if which == "int_value":
        return ios.int_value == 0
    text = ios.str_value
    return which == "str_value" and not percent_errors(text) and int(text[:-1]) == 0


def _rolling_update(ru: Any, path: str) -> Errors:
    errs = _int_or_percent(ru.max_unavailable, f"{path}.maxUnavailable", max_percent=100)
    errs += _int_or_percent(ru.max_surge, f"{path}.maxSurge", max_percent=None)
    if _is_zero(ru.max_unavailable) and _is_zero(ru.max_surge):
        value = (ru.max_unavailable.int_value if ru.max_unavailable.WhichOneof("value")
                 == "int_value" else ru.max_unavailable.str_value)
        errs.append(invalid(f"{path}.maxUnavailable", value,
                            "may not be 0 when `maxSurge` is 0"))
    return errs


def validate_deployment_status(dep: Any, old: Any) -> Errors:
    status = dep.status
    errs: Errors = []
    for field in ("observed_generation", "replicas", "updated_replicas", "ready_replicas",
                  "available_replicas", "unavailable_replicas"):
        errs += non_negative(f"status.{_camel(field)}", getattr(status, field))
    if status.HasField("collision_count"):
        errs += non_negative("status.collisionCount", status.collision_count)
    errs += _not_greater(status, "updated_replicas", "replicas")
    errs += _not_greater(status, "ready_replicas", "replicas")
    errs += _not_greater(status, "available_replicas", "replicas")
    errs += _not_greater(status, "available_replicas", "ready_replicas")
    errs += conditions(status.conditions, "status.conditions")
    return errs
