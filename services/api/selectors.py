"""Label and field selectors, as Kubernetes parses, prints and matches them.

One module serves the API server (filtering lists and watches), the client
library (sending a proto selector as a list request string) and the
controllers (matching pods against a ReplicaSet's selector), so that every
layer agrees on what ``app=web,tier in (a,b),!legacy`` means.

The label-name rules (qualified names, label values, DNS-1123 subdomains) live
here too: they are what a selector key or value may be, and validation reuses
them for metadata.labels, annotations and finalizers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from services.api.gen.kybernetes.meta.v1 import meta_pb2


class SelectorError(ValueError):
    """A selector the user wrote (or a proto selector) that cannot be used."""


# --- Names: what a label key, label value or DNS subdomain may be -------------------------

_QNAME_CHAR = "[A-Za-z0-9]"
_QNAME_EXT = "[-A-Za-z0-9_.]"
_QUALIFIED_NAME_FMT = f"({_QNAME_CHAR}{_QNAME_EXT}*)?{_QNAME_CHAR}"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_FMT = f"(({_QNAME_CHAR}{_QNAME_EXT}*)?{_QNAME_CHAR})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")

QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Kubernetes' wording for a regex mismatch (validation.RegexError)."""
    text = msg
    if examples:
        text += " (e.g. " + ",  or ".join(f"'{e}'" for e in examples) + ", "
    else:
        text += " ("
    return text + f"regex used for validation is '{fmt}')"


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why ``value`` is not a lowercase RFC 1123 subdomain (empty: it is)."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX_LENGTH} characters")
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character",
            _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """Why ``value`` is not a qualified name: an optional DNS-subdomain prefix
    and '/', then a name of at most 63 characters (a label key)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        prefix_errs = dns1123_subdomain_errors(prefix)
        if prefix_errs:
            return ["prefix part " + e for e in prefix_errs]
    else:
        return [_regex_error(
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character",
            _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        return ["name part must be non-empty"]
    errs = []
    if len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append(f"name part must be no more than {QUALIFIED_NAME_MAX_LENGTH} characters")
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(_regex_error(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character",
            _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a valid label value (empty is valid)."""
    errs = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(f"must be no more than {LABEL_VALUE_MAX_LENGTH} characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(_regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character",
            _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# --- Label selectors ----------------------------------------------------------------------

EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"

_SET_OPERATORS = (IN, NOT_IN)


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One clause of a label selector. ``values`` is sorted and free of
    duplicates; it holds one value for = and !=, none for exists and !."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator in (EQUALS, IN):
            return self.key in labels and labels[self.key] in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in _SET_OPERATORS:
            # "()" would read back as no values at all: spell the lone empty value "(,)".
            listed = "," if self.values == ("",) else ",".join(self.values)
            return f"{self.key} {self.operator} ({listed})"
        return f"{self.key}{self.operator}{self.values[0]}"


def _requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """Build a requirement, checking key and values the way Kubernetes'
    labels.NewRequirement does."""
    vals = tuple(sorted(set(values)))
    key_errs = qualified_name_errors(key)
    if key_errs:
        raise SelectorError(f'invalid label key "{key}": {key_errs[0]}')
    if operator in _SET_OPERATORS and not vals:
        raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
    if operator in (EQUALS, NOT_EQUALS) and len(vals) != 1:
        raise SelectorError("exact-match compatibility requires one single value")
    if operator in (EXISTS, DOES_NOT_EXIST) and vals:
        raise SelectorError("values set must be empty for exists and does not exist")
    for v in vals:
        errs = label_value_errors(v)
        if errs:
            raise SelectorError(f'invalid label value: "{v}": {errs[0]}')
    return Requirement(key, operator, vals)


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements, kept sorted by key as Kubernetes does,
    so ``str()`` is canonical and equal selectors compare equal."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _selector(reqs: Iterable[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


EVERYTHING = LabelSelector()


# The lexer: identifiers are runs of anything but whitespace and the symbols below.
_TOKEN_RE = re.compile(r"\s*(?:(?P<sym>==|!=|=|!|\(|\)|,)|(?P<ident>[^\s=!(),]+))")
_END = "end of input"


@dataclasses.dataclass
class _Token:
    kind: str   # "ident", a symbol, or "" at the end
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        if m.group("sym"):
            out.append(_Token(m.group("sym"), m.group("sym"), m.start("sym")))
        else:
            out.append(_Token("ident", m.group("ident"), m.start("ident")))
        pos = m.end()
    out.append(_Token("", "", len(text)))
    return out


class _LabelParser:
    """Recursive descent over the tokens, one requirement at a time.

    ``in`` and ``notin`` are keywords only where an operator is expected, so a
    label named ``in`` still parses as a key or a value."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.start = 0

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        if tok.kind:
            self.i += 1
        return tok

    def fail(self, expected: str) -> SelectorError:
        tok = self.peek()
        found = f"'{tok.text}'" if tok.kind else _END
        return SelectorError(
            f'unable to parse requirement "{self._req_text()}": found {found}, '
            f"expected {expected}")

    def _req_text(self) -> str:
        depth, end = 0, len(self.text)
        for tok in self.toks[self.i:]:
            if tok.kind == "(":
                depth += 1
            elif tok.kind == ")":
                depth -= 1
            elif (tok.kind == "," and depth <= 0) or not tok.kind:
                end = tok.pos
                break
        if end <= self.start:
            end = self.peek().pos + len(self.peek().text)
        return self.text[self.start:end].strip() or self.text.strip()

    def parse(self) -> LabelSelector:
        reqs = []
        if self.peek().kind == "":
            return EVERYTHING
        while True:
            self.start = self.peek().pos
            reqs.append(self.requirement())
            tok = self.take()
            if not tok.kind:
                return _selector(reqs)
            if tok.kind != ",":
                self.i -= 1
                raise self.fail("',' or end of input")

    def requirement(self) -> Requirement:
        if self.peek().kind == "!":
            self.take()
            key = self.key()
            if self.peek().kind not in (",", ""):
                raise self.fail("',' or end of input after a does-not-exist requirement")
            return self.build(key, DOES_NOT_EXIST, ())
        key = self.key()
        tok = self.peek()
        if tok.kind in (",", ""):
            return self.build(key, EXISTS, ())
        if tok.kind in ("=", "==", "!="):
            self.take()
            op = NOT_EQUALS if tok.kind == "!=" else EQUALS
            nxt = self.peek()
            if nxt.kind in (",", ""):
                return self.build(key, op, ("",))
            if nxt.kind != "ident":
                raise self.fail("a value")
            return self.build(key, op, (self.take().text,))
        if tok.kind == "ident" and tok.text in _SET_OPERATORS:
            self.take()
            return self.build(key, tok.text, self.value_list())
        raise self.fail("'=', '==', '!=', 'in', 'notin', ',' or end of input")

    def key(self) -> str:
        if self.peek().kind != "ident":
            raise self.fail("a label key")
        return self.take().text

    def value_list(self) -> list[str]:
        """``( [v] {, [v]} )``: an empty slot is the empty value, as in Kubernetes."""
        if self.peek().kind != "(":
            raise self.fail("'('")
        self.take()
        if self.peek().kind == ")":
            self.take()
            return []
        values = []
        while True:
            tok = self.peek()
            if tok.kind == "ident":
                values.append(self.take().text)
                tok = self.peek()
            else:
                values.append("")
            if tok.kind == ")":
                self.take()
                return values
            if tok.kind != ",":
                raise self.fail("',' or ')'")
            self.take()

    def build(self, key: str, op: str, values: Iterable[str]) -> Requirement:
        try:
            return _requirement(key, op, values)
        except SelectorError as e:
            raise SelectorError(f'unable to parse requirement "{self._req_text()}": {e}') \
                from None


def parse_label_selector(text: str) -> LabelSelector:
    """Parse Kubernetes label-selector syntax; the empty string selects
    everything. Raises SelectorError naming the offending requirement."""
    return _LabelParser(text).parse()


_PROTO_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_proto(sel: meta_pb2.LabelSelector) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as a selector.

    An empty proto selector selects everything: whether that is allowed is
    the caller's decision (apps/v1 workloads forbid it)."""
    reqs = [_requirement(k, EQUALS, (v,)) for k, v in sel.match_labels.items()]
    for expr in sel.match_expressions:
        op = _PROTO_OPERATORS.get(expr.operator)
        if op is None:
            raise SelectorError(f'"{expr.operator}" is not a valid label selector operator')
        reqs.append(_requirement(expr.key, op, expr.values))
    return _selector(reqs)


def to_text(sel: meta_pb2.LabelSelector) -> str:
    """A proto selector in the string form a ListRequest carries."""
    return str(from_proto(sel))


# --- Field selectors ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """A conjunction of ``field=value`` / ``field!=value`` terms over the few
    fields a kind exposes (see object_fields). A missing field reads as ""."""

    requirements: tuple[tuple[str, str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        for field, op, value in self.requirements:
            if (fields.get(field, "") == value) != (op == EQUALS):
                return False
        return True

    def exact(self, field: str) -> str | None:
        """The value an ``=`` term pins ``field`` to, so the server can narrow
        what it reads (e.g. pods of one node); None when there is no such term."""
        for f, op, value in self.requirements:
            if f == field and op == EQUALS:
                return value
        return None

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{_escape(v)}" for f, op, v in self.requirements)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not preceded by a backslash escape."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str, term: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: '{term}': invalid escape sequence")
            out.append(value[i + 1])
            i += 2
            continue
        if c in ",=":
            raise SelectorError(f"invalid field selector: '{term}': unescaped '{c}' in value")
        out.append(c)
        i += 1
    return "".join(out)


_FIELD_NAME_RE = re.compile(r"[A-Za-z0-9_./-]+")


def _split_term(term: str) -> tuple[str, str, str]:
    for op in ("!=", "==", "="):
        idx = _find_unescaped(term, op)
        if idx >= 0:
            field, value = term[:idx].strip(), term[idx + len(op):].strip()
            if not _FIELD_NAME_RE.fullmatch(field):
                raise SelectorError(f"invalid field selector: '{term}': invalid field name "
                                    f"'{field}'")
            return field, (NOT_EQUALS if op == "!=" else EQUALS), _unescape(value, term)
    raise SelectorError(f"invalid field selector: '{term}'; can't understand '{term}'")


def _find_unescaped(text: str, needle: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(needle, i):
            return i
        i += 1
    return -1


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``a=b,c!=d`` (``==`` means ``=``; ``\\,`` ``\\=`` ``\\\\`` escape
    inside values). The empty string selects everything."""
    if not text.strip():
        return FieldSelector()
    reqs = []
    for term in _split_unescaped(text, ","):
        if not term.strip():
            raise SelectorError(f"invalid field selector: '{text}': empty term")
        reqs.append(_split_term(term))
    return FieldSelector(tuple(reqs))


def _bool(v: bool) -> str:
    return "true" if v else "false"


_Getter = Callable[[Any], str]

_META_FIELDS: dict[str, _Getter] = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
}

# The selectable fields of each kind, as Kubernetes' field-label conversion
# functions list them (every kind has the two metadata fields).
_KIND_FIELDS: dict[str, dict[str, _Getter]] = {
    "Pod": {
        "spec.nodeName": lambda o: o.spec.node_name,
        "spec.restartPolicy": lambda o: o.spec.restart_policy,
        "spec.schedulerName": lambda o: o.spec.scheduler_name,
        "spec.serviceAccountName": lambda o: o.spec.service_account_name,
        "spec.hostNetwork": lambda o: _bool(o.spec.host_network),
        "status.phase": lambda o: o.status.phase,
        "status.podIP": lambda o: o.status.pod_ip,
    },
    "Node": {
        "spec.unschedulable": lambda o: _bool(o.spec.unschedulable),
    },
    "Event": {
        "involvedObject.kind": lambda o: o.involved_object.kind,
        "involvedObject.name": lambda o: o.involved_object.name,
        "involvedObject.namespace": lambda o: o.involved_object.namespace,
        "involvedObject.uid": lambda o: o.involved_object.uid,
        "involvedObject.apiVersion": lambda o: o.involved_object.api_version,
        "involvedObject.resourceVersion": lambda o: o.involved_object.resource_version,
        "involvedObject.fieldPath": lambda o: o.involved_object.field_path,
        "reason": lambda o: o.reason,
        "reportingComponent": lambda o: o.reporting_component,
        "source": lambda o: o.source.component,
        "type": lambda o: o.type,
    },
    "Namespace": {
        "status.phase": lambda o: o.status.phase,
    },
    "ReplicaSet": {
        "status.replicas": lambda o: str(o.status.replicas),
    },
}


def _fields_of_kind(kind_name: str) -> dict[str, _Getter]:
    return {**_META_FIELDS, **_KIND_FIELDS.get(kind_name, {})}


def supported_fields(kind_name: str) -> list[str]:
    """The field labels a kind (by its Kind name, e.g. "Pod") can be selected on."""
    return sorted(_fields_of_kind(kind_name))


def object_fields(obj: Any) -> dict[str, str]:
    """The selectable fields of a message, as strings, for FieldSelector.matches."""
    getters = _fields_of_kind(type(obj).DESCRIPTOR.name)
    return {name: get(obj) for name, get in getters.items()}


def check_fields(kind_name: str, selector: FieldSelector) -> None:
    """Raise SelectorError for a field the kind cannot be selected on.
    ``kind_name`` is the Kind name ("Pod"); a resource name ("pods") works too."""
    supported = _fields_of_kind(_kind_name(kind_name))
    for field, _, _ in selector.requirements:
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")


def _kind_name(name: str) -> str:
    if name in _KIND_FIELDS or name[:1].isupper():
        return name
    from services.api import kinds  # lazily: kinds imports every generated module
    try:
        return kinds.lookup(name).kind
    except kinds.UnknownKindError:
        return name
