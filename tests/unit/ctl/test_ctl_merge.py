"""apply's overlay of a manifest on the stored object."""

from __future__ import annotations

from services.ctl import merge

STORED = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "9",
                 "labels": {"app": "web"}, "annotations": {"added-by": "controller"}},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7", "sessionAffinity": "None",
             "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
    "status": {"loadBalancer": {}},
}
MANIFEST = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                    "targetPort": 8080}]},
}


def test_merge_overlay_of_the_same_manifest_changes_nothing():
    assert merge.overlay(STORED, MANIFEST) == STORED


def test_merge_overlay_keeps_server_defaults_in_matched_list_items():
    changed = {**MANIFEST, "spec": {**MANIFEST["spec"], "ports": [
        {"name": "http", "port": 80, "targetPort": 9090}]}}
    result = merge.overlay(STORED, changed)
    assert result["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP",
                                        "targetPort": 9090}]
    assert result["spec"]["clusterIP"] == "10.96.0.7"


def test_merge_overlay_list_items_follow_the_manifest():
    changed = {**MANIFEST, "spec": {"ports": [{"name": "https", "port": 443},
                                              {"name": "http", "port": 80}]}}
    ports = merge.overlay(STORED, changed)["spec"]["ports"]
    assert ports == [{"name": "https", "port": 443},
                     {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]


def test_merge_overlay_labels_merge_and_server_metadata_stays():
    changed = {**MANIFEST, "metadata": {"name": "web", "uid": "forged", "resourceVersion": "1",
                                        "labels": {"tier": "front"}}}
    meta = merge.overlay(STORED, changed)["metadata"]
    assert meta["labels"] == {"app": "web", "tier": "front"}
    assert meta["uid"] == "u1" and meta["resourceVersion"] == "9"
    assert meta["annotations"] == {"added-by": "controller"}


def test_merge_overlay_never_touches_status():
    changed = {**MANIFEST, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}
    assert merge.overlay(STORED, changed)["status"] == {"loadBalancer": {}}


def test_merge_key_prefers_name_then_port_like_keys():
    assert merge.merge_key([], [{"name": "a"}, {"name": "b"}]) == "name"
    assert merge.merge_key([], [{"containerPort": 80}, {"containerPort": 81}]) == "containerPort"
    assert merge.merge_key([], [{"name": "a"}, {"name": "a", "port": 1}]) is None
    assert merge.merge_key([], [{"command": ["x"]}]) is None


def test_merge_scalar_lists_are_replaced():
    assert merge.merge_value(["a", "b"], ["c"]) == ["c"]
    assert merge.merge_value([{"x": 1}, {"x": 2}], [{"y": 1}]) == [{"y": 1}]
    assert merge.merge_value([{"x": 1}], [{"y": 1}]) == [{"x": 1, "y": 1}]


# --- atomic lists: rules and subjects ---------------------------------------------------------

ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "r", "namespace": "default", "resourceVersion": "3"},
    "rules": [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"],
               "verbs": ["get"]}],
}


def test_merge_rules_are_replaced_whole_so_dropped_fields_do_not_linger():
    manifest = {"apiVersion": ROLE["apiVersion"], "kind": "Role", "metadata": {"name": "r"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    merged = merge.overlay(ROLE, manifest)
    assert merged["rules"] == manifest["rules"]
    assert merge.overlay(ROLE, {**manifest, "rules": ROLE["rules"]}) == ROLE


BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
    "metadata": {"name": "b", "namespace": "team", "resourceVersion": "3"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
    "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                 {"kind": "ServiceAccount", "name": "ci", "namespace": "team"}],
}


def test_merge_subjects_keep_server_defaults_when_nothing_else_changed():
    manifest = {"apiVersion": BINDING["apiVersion"], "kind": "RoleBinding",
                "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "User", "name": "jane"},
                             {"kind": "ServiceAccount", "name": "ci"}]}
    assert merge.overlay(BINDING, manifest) == BINDING


def test_merge_subjects_replaced_when_they_change():
    manifest = {"subjects": [{"kind": "Group", "name": "jane"}]}
    assert merge.overlay(BINDING, manifest)["subjects"] == [{"kind": "Group", "name": "jane"}]
    fewer = {"subjects": [{"kind": "User", "name": "jane"}]}
    assert merge.overlay(BINDING, fewer)["subjects"] == [{"kind": "User", "name": "jane"}]
