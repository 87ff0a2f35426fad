"""Validation of Role, ClusterRole, RoleBinding and ClusterRoleBinding, and
their defaults (Kubernetes' pkg/apis/rbac/validation and rbac/v1 defaults)."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.defaulting import apply_defaults
from services.apiserver.validation import validate
from tests.support import objects

GROUP = "rbac.authorization.k8s.io"


def _errors(obj, old=None):
    apply_defaults(obj)
    return [(e.path, e.message) for e in validate(obj, old)]


def _expect(errs, *expected):
    assert len(errs) == len(expected), errs
    for (path, fragment), (got_path, message) in zip(expected, errs, strict=True):
        assert got_path == path and fragment in message, errs


def _copy(obj, change=None):
    new = type(obj)()
    new.CopyFrom(obj)
    if change:
        change(new)
    return new


# --- roles --------------------------------------------------------------------------------


def _rule(**fields) -> rbac.PolicyRule:
    base = {"verbs": ["get"], "api_groups": [""], "resources": ["pods"]}
    base.update(fields)
    return rbac.PolicyRule(**base)


ROLE_CASES = [
    ("valid", _rule(), []),
    ("every verb kubernetes knows", _rule(verbs=["get", "list", "watch", "create", "update",
                                                 "delete", "patch", "deletecollection", "*"]),
     []),
    ("subresources and names", _rule(resources=["pods/log", "pods/status"],
                                     resource_names=["web"]), []),
    ("wildcards", _rule(verbs=["*"], api_groups=["*"], resources=["*"]), []),
    ("verbs required", _rule(verbs=[]),
     [("rules[0].verbs", "Required value: verbs must contain at least one value")]),
    ("unknown verb", _rule(verbs=["get", "frob"]),
     [("rules[0].verbs[1]", 'Unsupported value: "frob": supported values: "get", "list"')]),
    ("api groups required", _rule(api_groups=[]),
     [("rules[0].apiGroups", "Required value: resource rules must supply at least one api "
                             "group")]),
    ("resources required", _rule(resources=[]),
     [("rules[0].resources", "Required value: resource rules must supply at least one "
                             "resource")]),
    ("empty resource", _rule(resources=["pods", ""]),
     [("rules[0].resources[1]", "Required value")]),
]


@pytest.mark.parametrize(("rule", "expected"), [c[1:] for c in ROLE_CASES],
                         ids=[c[0] for c in ROLE_CASES])
def test_validation_role_rules(rule, expected):
    role = objects.role("reader", rules=[rule])
    _expect(_errors(role), *expected)


def test_validation_role_refuses_non_resource_urls():
    role = objects.role("r", rules=[rbac.PolicyRule(verbs=["get"], non_resource_urls=["/metrics"])])
    _expect(_errors(role), ("rules[0].nonResourceURLs",
                            'Invalid value: ["/metrics"]: namespaced rules cannot apply to '
                            "non-resource URLs"))


def test_validation_cluster_role_non_resource_urls_alone():
    ok = objects.cluster_role("metrics", rules=[
        rbac.PolicyRule(verbs=["get"], non_resource_urls=["/metrics", "/healthz/*"])])
    assert _errors(ok) == []
    mixed = objects.cluster_role("mixed", rules=[
        rbac.PolicyRule(verbs=["get"], non_resource_urls=["/metrics"], resources=["pods"],
                        api_groups=[""])])
    _expect(_errors(mixed), ("rules[0].nonResourceURLs",
                             "rules cannot apply to both regular resources and non-resource "
                             "URLs"))


def test_validation_cluster_role_rules_checked_like_roles():
    role = objects.cluster_role("bad", rules=[_rule(verbs=[]), _rule(), _rule(resources=[])])
    _expect(_errors(role), ("rules[0].verbs", "Required value"),
            ("rules[2].resources", "Required value"))


@pytest.mark.parametrize("name", ["system:node", "system:kube-scheduler", "Capital_Names.ok",
                                  "cluster-admin"])
def test_validation_rbac_names_are_path_segments(name):
    assert _errors(objects.cluster_role(name)) == []
    assert _errors(objects.cluster_role_binding(name)) == []
    assert _errors(objects.role(name)) == []
    assert _errors(objects.role_binding(name)) == []


@pytest.mark.parametrize(("name", "message"), [
    ("a/b", "may not contain '/'"), ("a%b", "may not contain '%'"), ("..", "may not be '..'"),
    (".", "may not be '.'"),
])
def test_validation_rbac_names_refused(name, message):
    _expect(_errors(objects.cluster_role(name)), ("metadata.name", message))


def test_validation_role_needs_namespace_cluster_role_has_none():
    _expect(_errors(objects.role("r", namespace="")), ("metadata.namespace", "Required value"))
    role = objects.cluster_role("c")
    role.metadata.namespace = "default"
    _expect(_errors(role), ("metadata.namespace", "Forbidden: not allowed on this type"))


# --- bindings -----------------------------------------------------------------------------


def _binding(**kw) -> rbac.RoleBinding:
    return objects.role_binding("read-pods", **kw)


def test_validation_role_binding_valid_forms():
    assert _errors(_binding()) == []
    assert _errors(_binding(role_kind="ClusterRole", role_name="view")) == []
    subjects = [objects.subject("User", "jane"), objects.subject("Group", "devs"),
                objects.subject("ServiceAccount", "builder", "ci")]
    assert _errors(_binding(subjects=subjects)) == []
    assert _errors(_binding(subjects=[])) == []  # Kubernetes allows a binding to no one


BINDING_CASES = [
    ("role kind", lambda b: setattr(b.role_ref, "kind", "Pod"),
     [("roleRef.kind", 'Unsupported value: "Pod": supported values: "Role", "ClusterRole"')]),
    ("role name required", lambda b: setattr(b.role_ref, "name", ""),
     [("roleRef.name", "Required value")]),
    ("role name a path segment", lambda b: setattr(b.role_ref, "name", "a/b"),
     [("roleRef.name", "may not contain '/'")]),
    ("role api group", lambda b: setattr(b.role_ref, "api_group", "apps"),
     [("roleRef.apiGroup", f'Unsupported value: "apps": supported values: "{GROUP}"')]),
    ("subject kind", lambda b: setattr(b.subjects[0], "kind", "Robot"),
     [("subjects[0].kind",
       'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"')]),
    ("subject name", lambda b: setattr(b.subjects[0], "name", ""),
     [("subjects[0].name", "Required value")]),
    ("user api group", lambda b: setattr(b.subjects[0], "api_group", "apps"),
     [("subjects[0].apiGroup", "Unsupported value")]),
    ("service account api group", lambda b: b.subjects[0].CopyFrom(rbac.Subject(
        kind="ServiceAccount", name="sa", namespace="x", api_group=GROUP)),
     [("subjects[0].apiGroup", f'Unsupported value: "{GROUP}": supported values: ""')]),
    ("service account name", lambda b: b.subjects[0].CopyFrom(rbac.Subject(
        kind="ServiceAccount", name="Not_DNS", namespace="x")),
     [("subjects[0].name", "lowercase RFC 1123 subdomain")]),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in BINDING_CASES],
                         ids=[c[0] for c in BINDING_CASES])
def test_validation_role_binding(change, expected):
    binding = _binding()
    apply_defaults(binding)
    change(binding)
    _expect([(e.path, e.message) for e in validate(binding)], *expected)


def test_validation_cluster_role_binding_binds_cluster_roles_only():
    binding = objects.cluster_role_binding("b")
    assert _errors(binding) == []
    binding.role_ref.kind = "Role"
    _expect(_errors(binding), ("roleRef.kind",
                               'Unsupported value: "Role": supported values: "ClusterRole"'))


def test_validation_cluster_role_binding_service_account_needs_namespace():
    binding = objects.cluster_role_binding("b", subjects=[objects.subject("ServiceAccount",
                                                                         "sa")])
    _expect(_errors(binding), ("subjects[0].namespace", "Required value"))


@pytest.mark.parametrize("field", ["kind", "name", "api_group"])
def test_validation_binding_role_ref_is_immutable(field):
    old = _binding(role_kind="ClusterRole", role_name="view")
    apply_defaults(old)
    new = _copy(old, lambda b: setattr(b.role_ref, field, {
        "kind": "Role", "name": "edit", "api_group": "other"}[field]))
    messages = [(e.path, e.message) for e in validate(new, old)]
    assert ("roleRef", messages[-1][1]) == messages[-1], messages
    assert messages[-1][1].endswith("cannot change roleRef")


def test_validation_binding_subjects_may_change():
    old = _binding()
    apply_defaults(old)
    new = _copy(old, lambda b: b.subjects.append(objects.subject("Group", "devs")))
    assert validate(new, old) == []


# --- defaults -----------------------------------------------------------------------------


def test_defaults_rbac_subject_and_role_ref_api_groups():
    binding = rbac.RoleBinding()
    binding.metadata.name, binding.metadata.namespace = "b", "team"
    binding.role_ref.kind, binding.role_ref.name = "Role", "r"
    binding.subjects.add(kind="User", name="jane")
    binding.subjects.add(kind="Group", name="devs")
    binding.subjects.add(kind="ServiceAccount", name="builder")
    binding.subjects.add(kind="ServiceAccount", name="other", namespace="elsewhere")
    apply_defaults(binding)
    assert binding.role_ref.api_group == GROUP
    assert [s.api_group for s in binding.subjects] == [GROUP, GROUP, "", ""]
    # A RoleBinding's service account is in the binding's namespace unless it says otherwise.
    assert [s.namespace for s in binding.subjects] == ["", "", "team", "elsewhere"]
    assert validate(binding) == []


def test_defaults_rbac_never_override_and_are_idempotent():
    binding = objects.cluster_role_binding("b", subjects=[
        rbac.Subject(kind="User", name="jane", api_group="example.com"),
        rbac.Subject(kind="ServiceAccount", name="sa")])
    binding.role_ref.api_group = "example.com"
    apply_defaults(binding)
    once = binding.SerializeToString()
    apply_defaults(binding)
    assert binding.SerializeToString() == once
    assert binding.role_ref.api_group == "example.com"
    assert binding.subjects[0].api_group == "example.com"
    assert binding.subjects[1].namespace == ""  # no namespace to default from


def test_defaults_roles_untouched():
    role = objects.role("r")
    before = role.SerializeToString()
    apply_defaults(role)
    assert role.SerializeToString() == before
