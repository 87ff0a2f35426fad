"""Label and field selectors: parsing, printing, matching, proto conversion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.api import selectors
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.api.selectors import (
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    check_fields,
    from_proto,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    to_text,
)

# --- parsing and printing -----------------------------------------------------------------


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("   ", ""),
    ("app=web", "app=web"),
    ("app==web", "app=web"),
    ("app!=web", "app!=web"),
    ("app = web", "app=web"),
    ("env in (prod, dev)", "env in (dev,prod)"),
    ("env in(prod)", "env in (prod)"),
    ("env notin (a,b,a)", "env notin (a,b)"),
    ("legacy", "legacy"),
    ("!legacy", "!legacy"),
    ("! legacy", "!legacy"),
    ("tier=db, app=web", "app=web,tier=db"),
    ("app=", "app="),
    ("k in (a,)", "k in (,a)"),
    ("example.com/role=x", "example.com/role=x"),
    ("in in (in)", "in in (in)"),
    ("notin=in", "notin=in"),
])
def test_parse_label_selector_canonical_text(text, canonical):
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize("text, fragment", [
    ("k in (a", "found end of input, expected ',' or ')'"),
    ("k in a", "expected '('"),
    ("k in ()", "values set can't be empty"),
    ("a=b c", "found 'c'"),
    ("a,", "expected a label key"),
    (",a", "expected a label key"),
    ("!a=b", "found '='"),
    ("=b", "expected a label key"),
    ("k=v=w", "found '='"),
    ("k ~ v", "found '~'"),
    ("-a=b", 'invalid label key "-a"'),
    ("a=-b", 'invalid label value: "-b"'),
    ("a=" + "x" * 64, "must be no more than 63 characters"),
    ("a/b/c=d", "qualified name"),
    ("/a=b", "prefix part must be non-empty"),
    ("Ex.com/a=b", "prefix part"),
])
def test_parse_label_selector_rejects_with_one_line(text, fragment):
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("unable to parse requirement")


def test_parse_label_selector_error_names_the_bad_requirement():
    with pytest.raises(SelectorError, match=r'requirement "k in \(a"'):
        parse_label_selector("app=web,k in (a")


def test_selector_error_is_a_value_error():
    assert issubclass(SelectorError, ValueError)


# --- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, labels, expected", [
    ("", {}, True),
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {"app": "web"}, False),
    ("env in (a,b)", {"env": "b"}, True),
    ("env in (a,b)", {"env": "c"}, False),
    ("env in (a,b)", {}, False),
    ("env notin (a,b)", {}, True),
    ("env notin (a,b)", {"env": "a"}, False),
    ("env", {"env": ""}, True),
    ("env", {}, False),
    ("!env", {}, True),
    ("!env", {"env": "x"}, False),
    ("app=web,!legacy", {"app": "web"}, True),
    ("app=web,!legacy", {"app": "web", "legacy": "1"}, False),
    ("app=", {"app": ""}, True),
])
def test_label_selector_matches(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


def test_label_selector_empty_selects_everything():
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty
    assert LabelSelector().matches({"any": "thing"})


def test_label_selectors_compare_equal_when_canonically_equal():
    assert parse_label_selector("b=1,a in (y,x)") == parse_label_selector("a in (x,y),b==1")


# --- proto selectors ----------------------------------------------------------------------


def _proto(labels=None, exprs=()):
    sel = meta_pb2.LabelSelector(match_labels=labels or {})
    for key, op, values in exprs:
        sel.match_expressions.add(key=key, operator=op, values=values)
    return sel


def test_from_proto_combines_labels_and_expressions():
    sel = from_proto(_proto({"app": "web"}, [("env", "In", ["a", "b"]), ("old", "DoesNotExist", []),
                                             ("tier", "NotIn", ["db"]), ("team", "Exists", [])]))
    assert str(sel) == "app=web,env in (a,b),!old,team,tier notin (db)"
    assert sel.matches({"app": "web", "env": "a", "team": "x"})
    assert not sel.matches({"app": "web", "env": "a", "team": "x", "tier": "db"})


def test_from_proto_empty_selects_everything():
    sel = from_proto(meta_pb2.LabelSelector())
    assert sel.empty and sel.matches({"a": "b"})


@pytest.mark.parametrize("sel, fragment", [
    (_proto(exprs=[("a", "Like", ["x"])]), '"Like" is not a valid label selector operator'),
    (_proto(exprs=[("a", "In", [])]), "values set can't be empty"),
    (_proto(exprs=[("a", "Exists", ["x"])]), "values set must be empty"),
    (_proto({"-bad": "x"}), 'invalid label key "-bad"'),
    (_proto({"a": "bad value"}), "invalid label value"),
])
def test_from_proto_rejects_invalid_selectors(sel, fragment):
    with pytest.raises(SelectorError, match=fragment):
        from_proto(sel)


def test_to_text_round_trips_through_the_parser():
    sel = _proto({"app": "web"}, [("env", "In", ["b", "a"])])
    text = to_text(sel)
    assert text == "app=web,env in (a,b)"
    assert parse_label_selector(text) == from_proto(sel)


# --- field selectors ----------------------------------------------------------------------


def test_parse_field_selector_terms():
    sel = parse_field_selector("spec.nodeName=n1, metadata.name!=x,status.phase==Running")
    assert sel.requirements == (("spec.nodeName", "=", "n1"), ("metadata.name", "!=", "x"),
                                ("status.phase", "=", "Running"))
    assert str(sel) == "spec.nodeName=n1,metadata.name!=x,status.phase=Running"


def test_parse_field_selector_empty_selects_everything():
    assert parse_field_selector("").empty
    assert parse_field_selector("").matches({"metadata.name": "x"})


@pytest.mark.parametrize("text", ["spec.nodeName", "=x", "a=b,,c=d", "a=b\\"])
def test_parse_field_selector_rejects(text):
    with pytest.raises(SelectorError, match="invalid field selector"):
        parse_field_selector(text)


def test_parse_field_selector_escapes():
    sel = parse_field_selector(r"metadata.name=a\,b\=c")
    assert sel.requirements == (("metadata.name", "=", "a,b=c"),)
    assert parse_field_selector(str(sel)) == sel


@pytest.mark.parametrize("text, fields, expected", [
    ("spec.nodeName=n1", {"spec.nodeName": "n1"}, True),
    ("spec.nodeName=n1", {"spec.nodeName": "n2"}, False),
    ("spec.nodeName=", {"spec.nodeName": ""}, True),
    ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
    ("spec.nodeName!=n1", {}, True),
    ("a=1,b=2", {"a": "1", "b": "3"}, False),
])
def test_field_selector_matches(text, fields, expected):
    assert parse_field_selector(text).matches(fields) is expected


def test_field_selector_exact_gives_pinned_value():
    sel = parse_field_selector("metadata.name!=x,spec.nodeName=n1")
    assert sel.exact("spec.nodeName") == "n1"
    assert sel.exact("metadata.name") is None
    assert FieldSelector().exact("spec.nodeName") is None


def test_object_fields_pod():
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "ns"
    pod.spec.node_name, pod.spec.restart_policy = "n1", "Always"
    pod.spec.scheduler_name = "default-scheduler"
    pod.status.phase, pod.status.pod_ip = "Running", "10.0.0.5"
    fields = object_fields(pod)
    assert fields["metadata.name"] == "p" and fields["metadata.namespace"] == "ns"
    assert fields["spec.nodeName"] == "n1" and fields["spec.restartPolicy"] == "Always"
    assert fields["spec.schedulerName"] == "default-scheduler"
    assert fields["status.phase"] == "Running" and fields["status.podIP"] == "10.0.0.5"
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Failed").matches(fields)


def test_object_fields_node_event_namespace():
    node = core.Node()
    node.metadata.name = "n1"
    node.spec.unschedulable = True
    assert object_fields(node) == {"metadata.name": "n1", "metadata.namespace": "",
                                   "spec.unschedulable": "true"}
    ev = core.Event(reason="Scheduled", type="Normal")
    ev.involved_object.kind, ev.involved_object.name = "Pod", "p"
    ev.involved_object.namespace, ev.involved_object.uid = "ns", "u1"
    fields = object_fields(ev)
    for key, value in {"involvedObject.kind": "Pod", "involvedObject.name": "p",
                       "involvedObject.namespace": "ns", "involvedObject.uid": "u1",
                       "reason": "Scheduled", "type": "Normal"}.items():
        assert fields[key] == value
    ns = core.Namespace()
    ns.status.phase = "Active"
    assert object_fields(ns)["status.phase"] == "Active"


def test_object_fields_other_kinds_have_metadata():
    rs = apps.ReplicaSet()
    rs.metadata.name = "r"
    assert object_fields(rs)["metadata.name"] == "r"
    assert set(object_fields(core.Service())) == {"metadata.name", "metadata.namespace"}


def test_check_fields_rejects_unsupported_field():
    check_fields("Pod", parse_field_selector("spec.nodeName=n1,metadata.name=x"))
    check_fields("pods", parse_field_selector("status.phase=Running"))
    with pytest.raises(SelectorError, match="field label not supported: spec.foo"):
        check_fields("Pod", parse_field_selector("spec.foo=x"))
    with pytest.raises(SelectorError, match="field label not supported: spec.nodeName"):
        check_fields("Service", parse_field_selector("spec.nodeName=x"))


# --- properties ---------------------------------------------------------------------------

_name = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
_prefix = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}",
                        fullmatch=True)
_key = st.one_of(_name, st.builds(lambda p, n: f"{p}/{n}", _prefix, _name))
_value = st.one_of(st.just(""), _name)


@st.composite
def _requirements(draw):
    op = draw(st.sampled_from(["=", "!=", "in", "notin", "exists", "!"]))
    key = draw(_key)
    if op in ("in", "notin"):
        values = tuple(sorted(set(draw(st.lists(_value, min_size=1, max_size=4)))))
    elif op in ("=", "!="):
        values = (draw(_value),)
    else:
        values = ()
    return Requirement(key, op, values)


_selectors_st = st.lists(_requirements(), max_size=5).map(
    lambda reqs: LabelSelector(tuple(sorted(reqs, key=lambda r: r.key))))


@settings(max_examples=300, deadline=None)
@given(_selectors_st)
def test_label_selector_round_trips_through_text(sel):
    assert parse_label_selector(str(sel)) == sel


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=40),
                 st.text(alphabet="ab=!(), inotx/.-", max_size=30)))
def test_parse_label_selector_raises_only_selector_error(text):
    try:
        sel = parse_label_selector(text)
    except SelectorError:
        return
    assert parse_label_selector(str(sel)) == sel


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab.=!,\\ x", max_size=30))
def test_parse_field_selector_raises_only_selector_error(text):
    try:
        sel = parse_field_selector(text)
    except SelectorError:
        return
    assert parse_field_selector(str(sel)) == sel


def test_module_exports_name_rules():
    assert selectors.qualified_name_errors("example.com/app") == []
    assert selectors.label_value_errors("") == []
    assert selectors.dns1123_subdomain_errors("a.b-c") == []
    assert selectors.dns1123_subdomain_errors("A") != []
