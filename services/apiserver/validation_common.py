"""The vocabulary every validation module shares: FieldError and its
Kubernetes-worded constructors, the name rules (DNS-1123, DNS-1035, IANA
service names, ports) and small validators of common field shapes.

Messages copy Kubernetes' wording (k8s.io/apimachinery/pkg/util/validation)
so that an error a user reads here reads as it would from kubectl.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from services.api import quantity
from services.api.selectors import (  # noqa: F401  (re-exported for the validation modules)
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One problem with one field. ``path`` uses the JSON (camelCase) names:
    ``spec.containers[0].livenessProbe.httpGet.port``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


Errors = list[FieldError]


def fmt_value(value: Any) -> str:
    """Render a value the way Kubernetes' field errors do: strings quoted,
    numbers and booleans bare, maps and lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    if isinstance(value, Iterable):
        return json.dumps(list(value), separators=(",", ":"))
    return json.dumps(str(value))


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    suffix = f": {detail}" if detail else ""
    return FieldError(path, f"Invalid value: {fmt_value(value)}{suffix}")


def unsupported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    listed = ", ".join(fmt_value(s) for s in supported)
    return FieldError(path, f"Unsupported value: {fmt_value(value)}: supported values: {listed}")


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, f"Duplicate value: {fmt_value(value)}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, f"Forbidden: {detail}")


def not_found(path: str, value: Any) -> FieldError:
    return FieldError(path, f"Not found: {fmt_value(value)}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, f"Too long: must have at most {limit} bytes")


def immutable(path: str, value: Any) -> FieldError:
    return invalid(path, value, "field is immutable")


# --- Names --------------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_IANA_SVC_NAME_RE = re.compile("[-a-z0-9]+")
_LETTER_RE = re.compile("[a-z]")
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(_PERCENT_FMT)

DNS1123_LABEL_MAX_LENGTH = 63


def dns1123_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX_LENGTH} characters")
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'123-abc', regex used for validation is '{_DNS1123_LABEL_FMT}')")
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(f"must be no more than {DNS1123_LABEL_MAX_LENGTH} characters")
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            f"'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_LABEL_FMT}')")
    return errs


def port_name_errors(name: str) -> list[str]:
    """Why ``name`` is not an IANA_SVC_NAME (a named port)."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not _IANA_SVC_NAME_RE.fullmatch(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and not _LETTER_RE.search(name):
        errs.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def percent_errors(value: str) -> list[str]:
    if _PERCENT_RE.fullmatch(value):
        return []
    return ["a valid percent string must be a numeric string followed by an ending '%' (e.g. "
            f"'1%',  or '93%', regex used for validation is '{_PERCENT_FMT}')"]


def is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


# --- Field validators ---------------------------------------------------------------------


def check(path: str, value: Any, messages: Iterable[str]) -> Errors:
    """One Invalid error per message from a name rule."""
    return [invalid(path, value, m) for m in messages]


def one_of(path: str, value: str, supported: Iterable[str]) -> Errors:
    """Unsupported unless ``value`` is one of ``supported`` (the empty string is
    reported as Required, as Kubernetes does for defaulted enums)."""
    allowed = list(supported)
    if value in allowed:
        return []
    if value == "":
        return [required(path, "")]
    return [unsupported(path, value, sorted(allowed))]


def non_negative(path: str, value: int) -> Errors:
    return [] if value >= 0 else [invalid(path, value, "must be greater than or equal to 0")]


def labels(values: Mapping[str, str], path: str) -> Errors:
    """metadata.labels, nodeSelector and the like: qualified-name keys, label values."""
    errs: Errors = []
    for key in sorted(values):
        errs += check(path, key, qualified_name_errors(key))
        errs += check(path, values[key], label_value_errors(values[key]))
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024
"""Kubernetes' TotalAnnotationSizeLimitB: every key and value of one
object's annotations together, in bytes (UTF-8)."""
ANNOTATIONS_MAX_BYTES = TOTAL_ANNOTATION_SIZE_LIMIT_B


def annotations(values: Mapping[str, str], path: str) -> Errors:
    """metadata.annotations: qualified-name keys (case does not matter, as
    in Kubernetes), any values, at most 256 KiB in all."""
    errs: Errors = []
    size = 0
    for key in sorted(values):
        errs += check(path, key, qualified_name_errors(key.lower()))
        size += len(key.encode()) + len(values[key].encode())
    if size > ANNOTATIONS_MAX_BYTES:
        errs.append(too_long(path, ANNOTATIONS_MAX_BYTES))
    return errs


def quantity_value(path: str, text: str) -> tuple[Errors, Any]:
    """Parse a quantity that must be ≥ 0; returns (errors, Fraction or None)."""
    try:
        q = quantity.parse_quantity(text)
    except quantity.QuantityError:
        return [invalid(path, text, "must match the regex "
                        "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")], None
    if q < 0:
        return [invalid(path, text, "must be greater than or equal to 0")], None
    return [], q


def port_or_name(ios: Any, path: str) -> Errors:
    """An IntOrString naming a port: a number 1-65535 or an IANA_SVC_NAME."""
    which = ios.WhichOneof("value")
    if which is None:
        return [required(path, "")]
    if which == "int_value":
        return check(path, ios.int_value, port_number_errors(ios.int_value))
    if not ios.str_value:
        return [required(path, "")]
    return check(path, ios.str_value, port_name_errors(ios.str_value))


CONDITION_STATUSES = ("True", "False", "Unknown")


def conditions(items: Iterable[Any], path: str) -> Errors:
    """Every kind's conditions: a type and a status of True, False or Unknown."""
    errs: Errors = []
    for i, cond in enumerate(items):
        p = f"{path}[{i}]"
        if not cond.type:
            errs.append(required(f"{p}.type"))
        if cond.status not in CONDITION_STATUSES:
            errs.append(unsupported(f"{p}.status", cond.status, CONDITION_STATUSES))
    return errs
