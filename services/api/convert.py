"""Kubernetes-shaped JSON/YAML for the API's protobuf messages.

Manifests written for Kubernetes must load unchanged, and what ``kyb get -o
json`` prints must look like what ``kubectl get -o json`` prints. protobuf's
own ``json_format`` is close but not close enough: it writes int64 as strings,
Timestamps with nanoseconds, IntOrString as an object, and it cannot say
*where* an unknown field was. So this module walks the message descriptors
itself, in both directions:

- :func:`to_dict`: a message as Kubernetes prints it (apiVersion and kind
  filled in, defaults omitted, IntOrString flattened, RFC 3339 seconds).
- :func:`from_dict`: a manifest into a message, collecting unknown fields as
  warnings with their JSON path (``spec.containers[0].securityContext``) and
  raising :class:`ConversionError` naming the path for type errors.
- :func:`load_manifests`: YAML (multi-document) or JSON text into manifests,
  with ``source:line:col`` on syntax errors and ``kind: List`` expanded.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.api import kinds

_INT_OR_STRING = "kybernetes.meta.v1.IntOrString"
_TIMESTAMP = "google.protobuf.Timestamp"

# Kubernetes' metav1.MicroTime fields (microsecond precision); every other
# timestamp is a metav1.Time, printed to the second.
_MICRO_TIME_FIELDS = frozenset({
    "kybernetes.coordination.v1.LeaseSpec.acquire_time",
    "kybernetes.coordination.v1.LeaseSpec.renew_time",
})

_T = FieldDescriptor
_INT32_TYPES = {_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32}
_UINT32_TYPES = {_T.TYPE_UINT32, _T.TYPE_FIXED32}
_INT64_TYPES = {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64}
_UINT64_TYPES = {_T.TYPE_UINT64, _T.TYPE_FIXED64}
_FLOAT_TYPES = {_T.TYPE_FLOAT, _T.TYPE_DOUBLE}
_INT_RANGES = {
    **{t: (-(2**31), 2**31 - 1) for t in _INT32_TYPES},
    **{t: (0, 2**32 - 1) for t in _UINT32_TYPES},
    **{t: (-(2**63), 2**63 - 1) for t in _INT64_TYPES},
    **{t: (0, 2**64 - 1) for t in _UINT64_TYPES},
}
_DECIMAL = re.compile(r"-?\d+")
_SNAKE = {"apiVersion": "api_version", "kind": "kind"}

# Kubernetes JSON names protobuf's lowerCamelCase cannot spell (an upper-case
# acronym), for fields whose proto does not carry a json_name option.
_JSON_NAMES = {
    "kybernetes.rbac.v1.PolicyRule.non_resource_urls": "nonResourceURLs",
}


def json_name(field: FieldDescriptor) -> str:
    """The field's name in Kubernetes' JSON and YAML."""
    return _JSON_NAMES.get(field.full_name, field.json_name)


class ConversionError(ValueError):
    """A manifest that cannot become a message; ``str()`` is one line that
    names the JSON path at fault."""


class ManifestError(ValueError):
    """Manifest text that cannot be parsed: ``source:line:col: message``."""


# --- message -> dict ------------------------------------------------------------


def to_dict(msg: Message) -> dict[str, Any]:
    """The message as Kubernetes prints it.

    Fields left at their default are omitted, except singular messages that
    were set (``emptyDir: {}`` means something) and ``optional`` scalars that
    were set (``replicas: 0`` means something too). A kind gets its
    ``apiVersion`` and ``kind`` from the registry, a ``PodList`` gets those of
    its items' kind with ``kind: PodList``.
    """
    return _message_to_dict(msg)


def _message_to_dict(msg: Message) -> dict[str, Any]:
    descriptor = msg.DESCRIPTOR
    out: dict[str, Any] = {}
    type_meta = _type_meta(descriptor)
    if type_meta and "kind" not in descriptor.fields_by_name:  # list messages
        out["apiVersion"], out["kind"] = type_meta["api_version"], type_meta["kind"]
    for field in descriptor.fields:
        if type_meta and field.name in ("api_version", "kind"):
            out[json_name(field)] = type_meta[field.name]
            continue
        value = getattr(msg, field.name)
        if _is_map(field):
            if value:
                value_field = field.message_type.fields_by_name["value"]
                out[json_name(field)] = {str(k): _value_to_json(value_field, v)
                                        for k, v in sorted(value.items())}
        elif field.is_repeated:
            if value:
                out[json_name(field)] = [_value_to_json(field, v) for v in value]
        elif field.type == _T.TYPE_MESSAGE:
            if msg.HasField(field.name):
                out[json_name(field)] = _value_to_json(field, value)
        elif field.has_presence:
            if msg.HasField(field.name):
                out[json_name(field)] = _value_to_json(field, value)
        elif value != field.default_value:
            out[json_name(field)] = _value_to_json(field, value)
    return out


def _type_meta(descriptor: Descriptor) -> dict[str, str] | None:
    """apiVersion and kind for a kind or a kind's list message, else None."""
    name = descriptor.name
    info = kinds.BY_KIND.get(name)
    if info is not None and info.message.DESCRIPTOR is descriptor:
        return {"api_version": info.api_version, "kind": info.kind}
    if name.endswith("List"):
        info = kinds.BY_KIND.get(name[:-4])
        if info is not None and info.list_message.DESCRIPTOR is descriptor:
            return {"api_version": info.api_version, "kind": name}
    return None


def _value_to_json(field: FieldDescriptor, value: Any) -> Any:
    if field.type == _T.TYPE_MESSAGE:
        full_name = field.message_type.full_name
        if full_name == _INT_OR_STRING:
            return _int_or_string_to_json(value)
        if full_name == _TIMESTAMP:
            return format_time(value, micro=field.full_name in _MICRO_TIME_FIELDS)
        return _message_to_dict(value)
    if field.type == _T.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == _T.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _int_or_string_to_json(value: Message) -> int | str:
    return value.int_value if value.WhichOneof("value") == "int_value" else value.str_value


def format_time(ts: Message, *, micro: bool = False) -> str:
    """A Timestamp as Kubernetes writes it: ``2026-11-24T15:30:41Z`` (or with
    microseconds for MicroTime fields)."""
    when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=ts.seconds, microseconds=ts.nanos // 1000)
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> tuple[int, int]:
    """RFC 3339 text into (seconds, nanos) since the epoch; ValueError if not."""
    match = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
        r"(?:([Zz])|([+-])(\d{2}):(\d{2}))", text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    if match.group(9):
        offset = dt.timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        when -= offset if match.group(9) == "+" else -offset
    nanos = int((match.group(7) or "0").ljust(9, "0"))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return int((when - epoch).total_seconds()), nanos


# --- dict -> message ------------------------------------------------------------


def message_class_for(data: dict[str, Any]) -> type[Message]:
    """The message class a manifest's ``apiVersion`` and ``kind`` name."""
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    if not kind or not isinstance(kind, str):
        raise ConversionError('object has no "kind"')
    if not api_version or not isinstance(api_version, str):
        raise ConversionError(f'{kind} object has no "apiVersion"')
    info = kinds.BY_KIND.get(kind)
    cls: type[Message] | None = info.message if info else None
    if info is None and kind.endswith("List"):
        info = kinds.BY_KIND.get(kind[:-4])
        cls = info.list_message if info else None
    if info is None or cls is None:
        raise ConversionError(f'unknown kind "{kind}" (apiVersion {api_version})')
    if api_version != info.api_version:
        raise ConversionError(f'no matches for kind "{kind}" in version "{api_version}" '
                              f'(it is served at "{info.api_version}")')
    return cls


def from_dict(data: dict[str, Any], *, strict: bool = False) -> tuple[Message, list[str]]:
    """A manifest as a message, and warnings for the fields the message lacks.

    ``apiVersion`` and ``kind`` pick the message class (ConversionError if
    missing, unknown, or a known kind at the wrong apiVersion). Warnings read
    ``unknown field "spec.containers[0].securityContext"``; with ``strict``
    they raise ConversionError instead. Type errors always raise, naming the
    path.
    """
    if not isinstance(data, dict):
        raise ConversionError(f"expected an object, got {_describe(data)}")
    cls = message_class_for(data)
    msg = cls()
    warnings: list[str] = []
    _fill(msg, data, "", warnings)
    if strict and warnings:
        raise ConversionError("strict decoding error: " + ", ".join(warnings))
    return msg, warnings


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fill(msg: Message, data: dict[str, Any], path: str, warnings: list[str]) -> None:
    descriptor = msg.DESCRIPTOR
    type_meta = _type_meta(descriptor)
    by_json = {json_name(f): f for f in descriptor.fields}
    for key, value in data.items():
        field_path = _join(path, str(key))
        field = by_json.get(key) if isinstance(key, str) else None
        if field is None and type_meta and key in ("apiVersion", "kind"):
            if path and value != type_meta[_SNAKE[key]]:  # type meta of a list message
                raise ConversionError(f'{field_path}: expected "{type_meta[_SNAKE[key]]}", '
                                      f'got "{value}"')
            continue
        if field is None:
            warnings.append(f'unknown field "{field_path}"')
            continue
        if value is None:
            continue  # null means "not set", as in Kubernetes
        if type_meta and field.name in ("api_version", "kind"):
            if not isinstance(value, str):
                raise ConversionError(f"{field_path}: expected a string, got {_describe(value)}")
            if path and value != type_meta[field.name]:
                raise ConversionError(f'{field_path}: expected "{type_meta[field.name]}", '
                                      f'got "{value}"')
            continue
        if _is_map(field):
            _fill_map(msg, field, value, field_path, warnings)
        elif field.is_repeated:
            if not isinstance(value, list):
                raise ConversionError(f"{field_path}: expected a list, got {_describe(value)}")
            target = getattr(msg, field.name)
            for index, item in enumerate(value):
                item_path = f"{field_path}[{index}]"
                if item is None:
                    raise ConversionError(f"{item_path}: null is not allowed in a list")
                if field.type == _T.TYPE_MESSAGE:
                    _fill_message(target.add(), field, item, item_path, warnings)
                else:
                    target.append(_scalar(field, item, item_path))
        elif field.type == _T.TYPE_MESSAGE:
            _fill_message(getattr(msg, field.name), field, value, field_path, warnings)
        else:
            setattr(msg, field.name, _scalar(field, value, field_path))
    if type_meta and "kind" in descriptor.fields_by_name:
        msg.api_version = type_meta["api_version"]
        msg.kind = type_meta["kind"]


def _fill_message(target: Message, field: FieldDescriptor, value: Any, path: str,
                  warnings: list[str]) -> None:
    full_name = field.message_type.full_name
    if full_name == _INT_OR_STRING:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConversionError(f"{path}: expected an integer or a string, "
                                  f"got {_describe(value)}")
        if isinstance(value, str):
            target.str_value = value
        else:
            target.int_value = _integer(value, _T.TYPE_INT32, path)
        return
    if full_name == _TIMESTAMP:
        if isinstance(value, dt.datetime):  # a loader that resolved it already
            value = value.isoformat()
        if not isinstance(value, str):
            raise ConversionError(f"{path}: expected an RFC 3339 time, got {_describe(value)}")
        try:
            target.seconds, target.nanos = parse_time(value)
        except ValueError as err:
            raise ConversionError(f"{path}: {err}") from None
        return
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: expected an object, got {_describe(value)}")
    target.SetInParent()
    _fill(target, value, path, warnings)


def _fill_map(msg: Message, field: FieldDescriptor, value: Any, path: str,
              warnings: list[str]) -> None:
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: expected an object, got {_describe(value)}")
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    target = getattr(msg, field.name)
    for raw_key, item in value.items():
        key = _map_key(raw_key)
        item_path = f"{path}.{key}"
        if key_field.type != _T.TYPE_STRING:
            key = _scalar(key_field, key, item_path)
        if item is None:
            raise ConversionError(f"{item_path}: null is not allowed here")
        if value_field.type == _T.TYPE_MESSAGE:
            _fill_message(target[key], value_field, item, item_path, warnings)
        else:
            target[key] = _scalar(value_field, item, item_path)


def _map_key(key: Any) -> str:
    """YAML keys may be numbers or booleans; Kubernetes' YAML reader turns
    them into their text, and so do we."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    kind = field.type
    if kind in _INT_RANGES:
        if kind in _INT64_TYPES | _UINT64_TYPES and isinstance(value, str) \
                and _DECIMAL.fullmatch(value.strip()):
            value = int(value.strip())
        return _integer(value, kind, path)
    if kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(f"{path}: expected a number, got {_describe(value)}")
        return float(value)
    if kind == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            raise ConversionError(f"{path}: expected a boolean, got {_describe(value)}")
        return value
    if kind == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise ConversionError(f"{path}: expected a string, got {_describe(value)}")
        return value
    if kind == _T.TYPE_BYTES:
        if not isinstance(value, str):
            raise ConversionError(f"{path}: expected base64 text, got {_describe(value)}")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ConversionError(f"{path}: not valid base64") from None
    if kind == _T.TYPE_ENUM:
        if isinstance(value, str) and value in field.enum_type.values_by_name:
            return field.enum_type.values_by_name[value].number
        raise ConversionError(f"{path}: unknown value {_describe(value)}")
    raise ConversionError(f"{path}: unsupported field type")  # pragma: no cover


def _integer(value: Any, kind: int, path: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConversionError(f"{path}: expected an integer, got {_describe(value)}")
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise ConversionError(f"{path}: {value} is out of range [{low}, {high}]")
    return value


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {json.dumps(shown)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_map(field: FieldDescriptor) -> bool:
    return (field.type == _T.TYPE_MESSAGE and field.is_repeated
            and field.message_type.GetOptions().map_entry)


# --- text -> manifests ----------------------------------------------------------


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader without the YAML 1.1 timestamp type: Kubernetes reads
    ``2026-11-24T15:30:41Z`` and ``2026-11-24`` as strings, and so must we."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_manifests(text: str, source: str) -> list[dict[str, Any]]:
    """Every object in a file's text, in order.

    YAML with ``---`` separated documents, or JSON. Empty documents are
    skipped; a ``kind: List`` contributes its ``items``. A syntax error
    raises ManifestError ``source:line:col: message``; a document that is
    not a mapping raises ManifestError naming the document's number.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError as err:
            # Fall back to YAML (a superset of JSON) only to report its error
            # if it fails too: JSON's message is the clearer one.
            try:
                docs = list(yaml.load_all(text, Loader=_ManifestLoader))
            except yaml.YAMLError:
                raise ManifestError(f"{source}:{err.lineno}:{err.colno}: {err.msg}") from None
    else:
        try:
            docs = list(yaml.load_all(text, Loader=_ManifestLoader))
        except yaml.YAMLError as err:
            raise ManifestError(_yaml_error(err, source)) from None
    objects: list[dict[str, Any]] = []
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {number} is not a mapping "
                                f"(got {_describe(doc)})")
        if doc.get("kind") == "List" and "items" in doc:
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise ManifestError(f"{source}: document {number}: items is not a list")
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ManifestError(f"{source}: document {number}: items[{index}] is not a "
                                        f"mapping (got {_describe(item)})")
                objects.append(item)
        else:
            objects.append(doc)
    return objects


def _yaml_error(err: yaml.YAMLError, source: str) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    message = f"{problem} ({context})" if context else str(problem)
    if mark is None:
        return f"{source}: {message}"
    return f"{source}:{mark.line + 1}:{mark.column + 1}: {message}"


__all__ = ["ConversionError", "ManifestError", "to_dict", "from_dict", "load_manifests",
           "message_class_for", "format_time", "parse_time", "json_name"]
