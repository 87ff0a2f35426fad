"""kubectl's imperative create forms for roles, bindings and quotas: the
objects the flags build (pure), and --dry-run=client printing them."""

from __future__ import annotations

import pytest
import yaml

from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
from services.apiserver.defaulting import apply_defaults
from services.apiserver.validation import validate
from services.ctl import create_rbac
from services.ctl import main as ctl
from services.ctl.context import CommandError

GROUP = "rbac.authorization.k8s.io"


def test_create_rbac_rules_one_per_group_like_kubectl():
    rules = create_rbac.policy_rules(["get,list", "watch"],
                                     ["pods", "deployments.apps", "pods/log", "rs"],
                                     resource_names=["web"])
    assert rules == [
        rbac.PolicyRule(verbs=["get", "list", "watch"], api_groups=[""],
                        resources=["pods", "pods/log"], resource_names=["web"]),
        rbac.PolicyRule(verbs=["get", "list", "watch"], api_groups=["apps"],
                        resources=["deployments", "replicasets"], resource_names=["web"]),
    ]
    assert create_rbac.policy_rules(["*"], ["*"]) == [
        rbac.PolicyRule(verbs=["*"], api_groups=["*"], resources=["*"])]


@pytest.mark.parametrize(("verbs", "resources", "message"), [
    ([], ["pods"], "at least one verb must be specified"),
    (["get"], [], "at least one resource must be specified"),
    (["frob"], ["pods"], "invalid verb: 'frob'"),
    (["get"], ["widgets"], 'the server doesn\'t have a resource type "widgets"'),
    (["get"], ["pods.apps"], 'the server doesn\'t have a resource type "pods.apps"'),
])
def test_create_rbac_rules_refused(verbs, resources, message):
    with pytest.raises(CommandError, match=message):
        create_rbac.policy_rules(verbs, resources)


def test_create_rbac_built_objects_are_valid():
    role = create_rbac.build_role("pod-reader", "team", cluster=False, verbs=["get"],
                                  resource_args=["pods"])
    cluster_role = create_rbac.build_role("metrics", "team", cluster=True, verbs=["get"],
                                          resource_args=[], non_resource_urls=["/metrics"])
    binding = create_rbac.build_binding(
        "b", "team", cluster=False, cluster_role="view", users=["jane"], groups=["devs"],
        service_accounts=["ci:builder"])
    cluster_binding = create_rbac.build_binding("cb", "team", cluster=True,
                                                cluster_role="cluster-admin",
                                                groups=["admins"])
    quota = create_rbac.build_quota("q", "team", "pods=10, requests.cpu=2")
    for obj in (role, cluster_role, binding, cluster_binding, quota):
        apply_defaults(obj)
        assert validate(obj) == [], obj
    assert cluster_role.metadata.namespace == "" and cluster_binding.metadata.namespace == ""
    assert binding.role_ref == rbac.RoleRef(api_group=GROUP, kind="ClusterRole", name="view")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("User", "jane", ""), ("Group", "devs", ""), ("ServiceAccount", "builder", "ci")]
    assert dict(quota.spec.hard) == {"pods": "10", "requests.cpu": "2"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cluster": False}, "exactly one of clusterrole or role"),
    ({"cluster": False, "role": "r", "cluster_role": "c"}, "exactly one of clusterrole or role"),
    ({"cluster": True}, "clusterrole must be specified"),
    ({"cluster": True, "cluster_role": "c", "service_accounts": ["nocolon"]},
     "serviceaccount must be <namespace>:<name>"),
])
def test_create_rbac_binding_refused(kwargs, message):
    with pytest.raises(CommandError, match=message):
        create_rbac.build_binding("b", "team", **kwargs)


def test_create_rbac_quota_needs_pairs():
    with pytest.raises(CommandError, match="expected RESOURCE=QUANTITY"):
        create_rbac.build_quota("q", "team", "pods")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No config file; a server address nothing answers (dry runs send nothing)."""
    monkeypatch.setenv("KYB_CONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KYB_SERVER", raising=False)
    return ["--server", "127.0.0.1:1"]


def test_create_rbac_dry_run_prints_manifests(offline, capsys):
    assert ctl.main([*offline, "create", "role", "pod-reader", "--verb=get,list",
                     "--resource=pods", "-n", "team", "--dry-run=client", "-o", "yaml"]) == 0
    role = yaml.safe_load(capsys.readouterr().out)
    assert role == {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "pod-reader", "namespace": "team"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"],
                               "verbs": ["get", "list"]}]}
    assert ctl.main([*offline, "create", "clusterrolebinding", "admins",
                     "--clusterrole=cluster-admin", "--group=admins", "--dry-run=client"]) == 0
    assert capsys.readouterr().out == \
        "clusterrolebinding.rbac.authorization.k8s.io/admins created (dry run)\n"
    assert ctl.main([*offline, "create", "quota", "q", "--hard=pods=2", "--dry-run=client",
                     "-o", "name"]) == 0
    assert capsys.readouterr().out == "resourcequota/q\n"


def test_create_rbac_errors_are_one_line(offline, capsys):
    assert ctl.main([*offline, "create", "rolebinding", "b", "--user=jane"]) == 1
    assert capsys.readouterr().err == \
        "error: exactly one of clusterrole or role must be specified\n"
