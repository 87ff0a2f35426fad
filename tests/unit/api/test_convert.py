"""Kubernetes-shaped JSON/YAML conversion: round trips for every kind, the
shapes Kubernetes prints, warnings with paths, type errors, manifest text."""

from __future__ import annotations

import json

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.api import convert, kinds
from services.api.convert import ConversionError, ManifestError
from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.coordination.v1 import types_pb2 as coordination
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.api.gen.kybernetes.meta.v1 import meta_pb2

_T = FieldDescriptor


def populate(msg: Message, seed: int = 1, depth: int = 0) -> Message:
    """Set every field of ``msg`` (recursively) to a distinct non-default
    value, so that a round trip exercises every field of every kind."""
    for index, field in enumerate(msg.DESCRIPTOR.fields):
        value_seed = seed * 31 + index
        if field.name in ("api_version", "kind") and convert._type_meta(msg.DESCRIPTOR):
            continue
        if field.type == _T.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            for n in range(2):
                if value_field.type == _T.TYPE_MESSAGE:
                    populate(target[f"k{n}"], value_seed + n, depth + 1)
                else:
                    target[f"k{n}"] = f"v{value_seed}-{n}"
        elif field.is_repeated:
            target = getattr(msg, field.name)
            for n in range(2):
                if field.type == _T.TYPE_MESSAGE:
                    if depth < 6:
                        _set_message(target.add(), field, value_seed + n, depth)
                else:
                    target.append(_scalar(field, value_seed + n))
        elif field.type == _T.TYPE_MESSAGE:
            if depth < 6:
                _set_message(getattr(msg, field.name), field, value_seed, depth)
        elif field.containing_oneof is not None and not field.has_presence:
            pass  # handled with IntOrString
        else:
            setattr(msg, field.name, _scalar(field, value_seed))
    return msg


def _set_message(target: Message, field: FieldDescriptor, seed: int, depth: int) -> None:
    name = field.message_type.full_name
    if name == "kybernetes.meta.v1.IntOrString":
        if seed % 2:
            target.int_value = seed
        else:
            target.str_value = f"{seed}%"
    elif name == "google.protobuf.Timestamp":
        target.seconds = 1_700_000_000 + seed
        if field.full_name in convert._MICRO_TIME_FIELDS:
            target.nanos = 123_456_000
    else:
        target.SetInParent()
        populate(target, seed, depth + 1)


def _scalar(field: FieldDescriptor, seed: int):
    if field.type == _T.TYPE_STRING:
        return f"{field.name}-{seed}"
    if field.type == _T.TYPE_BOOL:
        return True
    if field.type in (_T.TYPE_INT64, _T.TYPE_UINT64):
        return 2**40 + seed  # beyond int32, where json_format would quote it
    return seed % 100_000


def _typed(message: Message) -> Message:
    info = kinds.of_message(message)
    message.api_version, message.kind = info.api_version, info.kind
    return message


@pytest.mark.parametrize("kind", [k.kind for k in kinds.KINDS])
def test_convert_round_trip_every_kind(kind):
    original = _typed(populate(kinds.BY_KIND[kind].message()))
    data = convert.to_dict(original)
    back, warnings = convert.from_dict(json.loads(json.dumps(data)))
    assert warnings == []
    assert back == original
    assert convert.to_dict(back) == data


@pytest.mark.parametrize("kind", [k.kind for k in kinds.KINDS])
def test_convert_round_trip_every_list_kind(kind):
    info = kinds.BY_KIND[kind]
    listing = info.list_message()
    listing.metadata.resource_version = "42"
    listing.metadata.continue_token = "next"
    listing.items.append(_typed(populate(info.message())))
    data = convert.to_dict(listing)
    assert data["apiVersion"] == info.api_version and data["kind"] == f"{kind}List"
    assert data["metadata"] == {"resourceVersion": "42", "continue": "next"}
    assert data["items"][0]["kind"] == kind
    back, warnings = convert.from_dict(data)
    assert warnings == [] and back == listing


def test_convert_to_dict_fills_type_meta_from_the_registry():
    d = apps.Deployment()
    d.metadata.name = "web"
    assert convert.to_dict(d) == {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "metadata": {"name": "web"}}
    lease = coordination.Lease()
    assert convert.to_dict(lease)["apiVersion"] == "coordination.k8s.io/v1"


def test_convert_to_dict_uses_kubernetes_json_names():
    pod = core.Pod()
    pod.metadata.resource_version = "7"
    pod.spec.node_name = "n1"
    pod.status.pod_ip = "10.0.0.5"
    pod.status.host_ip = "192.168.1.1"
    pod.status.pod_ips.add(ip="10.0.0.5")
    data = convert.to_dict(pod)
    assert data["metadata"] == {"resourceVersion": "7"}
    assert data["spec"] == {"nodeName": "n1"}
    assert data["status"] == {"hostIP": "192.168.1.1", "podIP": "10.0.0.5",
                              "podIPs": [{"ip": "10.0.0.5"}]}
    svc = core.Service()
    svc.spec.cluster_ip = "10.96.0.1"
    assert convert.to_dict(svc)["spec"] == {"clusterIP": "10.96.0.1"}


def test_convert_to_dict_omits_defaults_but_keeps_meaningful_empties():
    d = apps.Deployment()
    d.spec.replicas = 0                       # optional: zero is a value
    d.spec.min_ready_seconds = 0              # plain proto3 scalar: default, omitted
    volume = d.spec.template.spec.volumes.add(name="scratch")
    volume.empty_dir.SetInParent()            # an empty message that was set
    data = convert.to_dict(d)
    assert data["spec"] == {"replicas": 0, "template": {
        "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}}}
    assert "status" not in data


def test_convert_to_dict_flattens_int_or_string():
    svc = core.Service()
    svc.spec.ports.add(port=80).target_port.int_value = 8080
    svc.spec.ports.add(port=443).target_port.str_value = "https"
    ports = convert.to_dict(svc)["spec"]["ports"]
    assert ports == [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": "https"}]


def test_convert_to_dict_timestamps_are_rfc3339_seconds():
    pod = core.Pod()
    pod.metadata.creation_timestamp.seconds = 1795534241
    pod.metadata.creation_timestamp.nanos = 999_999_999
    assert convert.to_dict(pod)["metadata"]["creationTimestamp"] == "2026-11-24T15:30:41Z"


def test_convert_to_dict_micro_time_keeps_microseconds():
    lease = coordination.Lease()
    lease.spec.renew_time.seconds = 1795534241
    lease.spec.renew_time.nanos = 123_456_789
    assert convert.to_dict(lease)["spec"]["renewTime"] == "2026-11-24T15:30:41.123456Z"


def test_convert_to_dict_int64_are_numbers():
    pod = core.Pod()
    pod.metadata.generation = 3
    pod.metadata.deletion_grace_period_seconds = 30
    pod.spec.termination_grace_period_seconds = 0
    data = convert.to_dict(pod)
    assert data["metadata"]["generation"] == 3
    assert data["metadata"]["deletionGracePeriodSeconds"] == 30
    assert data["spec"]["terminationGracePeriodSeconds"] == 0
    assert '"generation": 3' in json.dumps(data)


def test_convert_from_dict_accepts_int64_as_numbers_or_strings():
    pod, _ = convert.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "generation": "12", "deletionGracePeriodSeconds": 5}})
    assert pod.metadata.generation == 12
    assert pod.metadata.deletion_grace_period_seconds == 5


def test_convert_from_dict_int_or_string_accepts_either():
    svc, _ = convert.from_dict({"apiVersion": "v1", "kind": "Service", "spec": {"ports": [
        {"port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "http"}]}})
    assert svc.spec.ports[0].target_port.int_value == 8080
    assert svc.spec.ports[1].target_port.str_value == "http"
    assert svc.api_version == "v1" and svc.kind == "Service"


def test_convert_from_dict_parses_rfc3339_with_fractions_and_offsets():
    pod, _ = convert.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "creationTimestamp": "2026-11-24T17:30:41.5+02:00"}})
    assert pod.metadata.creation_timestamp.seconds == 1795534241
    assert pod.metadata.creation_timestamp.nanos == 500_000_000


def test_convert_from_dict_null_means_unset():
    pod, warnings = convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": "p", "labels": None},
                                       "status": None})
    assert warnings == [] and not pod.HasField("status") and not pod.metadata.labels


def test_convert_from_dict_unknown_fields_are_warnings_with_paths():
    data = {
        "apiVersion": "v1", "kind": "Pod", "extra": 1,
        "metadata": {"name": "web", "labelz": {}},
        "spec": {"containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "y", "securityContext": {"privileged": True},
             "ports": [{"containerPort": 80, "hostIp": "1.2.3.4"}]}]},
    }
    pod, warnings = convert.from_dict(data)
    assert warnings == [
        'unknown field "extra"',
        'unknown field "metadata.labelz"',
        'unknown field "spec.containers[1].securityContext"',
        'unknown field "spec.containers[1].ports[0].hostIp"',
    ]
    assert pod.spec.containers[1].ports[0].container_port == 80


def test_convert_from_dict_strict_makes_unknown_fields_an_error():
    data = {"apiVersion": "v1", "kind": "Pod",
            "spec": {"containers": [{"name": "a", "securityContext": {}}], "foo": 1}}
    with pytest.raises(ConversionError) as caught:
        convert.from_dict(data, strict=True)
    assert str(caught.value) == ('strict decoding error: unknown field '
                                 '"spec.containers[0].securityContext", unknown field "spec.foo"')


@pytest.mark.parametrize(("data", "message"), [
    ({"spec": {"replicas": "three"}}, 'spec.replicas: expected an integer, got string "three"'),
    ({"spec": {"replicas": 1.5}}, "spec.replicas: expected an integer, got number 1.5"),
    ({"spec": {"replicas": True}}, "spec.replicas: expected an integer, got boolean true"),
    ({"spec": {"replicas": 2**31}}, "spec.replicas: 2147483648 is out of range"),
    ({"spec": {"paused": "yes"}}, 'spec.paused: expected a boolean, got string "yes"'),
    ({"metadata": {"name": 5}}, "metadata.name: expected a string, got number 5"),
    ({"metadata": {"labels": {"a": 1}}}, "metadata.labels.a: expected a string, got number 1"),
    ({"metadata": {"labels": ["a"]}}, "metadata.labels: expected an object, got a list"),
    ({"spec": {"template": {"spec": {"containers": {"name": "x"}}}}},
     "spec.template.spec.containers: expected a list, got an object"),
    ({"spec": {"template": {"spec": {"containers": ["x"]}}}},
     'spec.template.spec.containers[0]: expected an object, got string "x"'),
    ({"spec": {"strategy": {"rollingUpdate": {"maxSurge": [1]}}}},
     "spec.strategy.rollingUpdate.maxSurge: expected an integer or a string, got a list"),
    ({"metadata": {"creationTimestamp": "yesterday"}},
     "metadata.creationTimestamp: not an RFC 3339 time: 'yesterday'"),
    ({"metadata": {"generation": "12x"}},
     'metadata.generation: expected an integer, got string "12x"'),
])
def test_convert_from_dict_type_errors_name_the_path(data, message):
    with pytest.raises(ConversionError) as caught:
        convert.from_dict({"apiVersion": "apps/v1", "kind": "Deployment", **data})
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("data", "message"), [
    ({"apiVersion": "v1", "kind": "Foo"}, 'unknown kind "Foo" (apiVersion v1)'),
    ({"apiVersion": "v1"}, 'object has no "kind"'),
    ({"kind": "Pod"}, 'Pod object has no "apiVersion"'),
    ({"apiVersion": "v1", "kind": "Deployment"},
     'no matches for kind "Deployment" in version "v1" (it is served at "apps/v1")'),
    ({"apiVersion": "apps/v1", "kind": "Pod"},
     'no matches for kind "Pod" in version "apps/v1" (it is served at "v1")'),
])
def test_convert_from_dict_kind_errors(data, message):
    with pytest.raises(ConversionError) as caught:
        convert.from_dict(data)
    assert str(caught.value) == message


def test_convert_from_dict_nested_kind_must_match():
    with pytest.raises(ConversionError, match=r'items\[0\]\.kind: expected "Pod"'):
        convert.from_dict({"apiVersion": "v1", "kind": "PodList",
                           "items": [{"kind": "Service"}]})


# --- load_manifests ---------------------------------------------------------------

MULTI = """\
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
# only a comment
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  creationTimestamp: 2026-11-24T15:30:41Z
"""


def test_convert_load_manifests_multi_document_skips_empty():
    docs = convert.load_manifests(MULTI, "m.yaml")
    assert [d["kind"] for d in docs] == ["Namespace", "Pod"]
    # YAML timestamps stay strings, as in Kubernetes
    assert docs[1]["metadata"]["creationTimestamp"] == "2026-11-24T15:30:41Z"


def test_convert_load_manifests_yaml_error_has_line_and_column():
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   bad: indent\n"
    with pytest.raises(ManifestError) as caught:
        convert.load_manifests(text, "pod.yaml")
    assert str(caught.value) == "pod.yaml:5:7: mapping values are not allowed here"


def test_convert_load_manifests_unclosed_flow_reports_a_position():
    with pytest.raises(ManifestError, match=r"^x\.yaml:\d+:\d+: "):
        convert.load_manifests("a: [1, 2\nb: 3\n", "x.yaml")


def test_convert_load_manifests_non_mapping_document_is_named():
    with pytest.raises(ManifestError) as caught:
        convert.load_manifests("kind: Pod\n---\n- a\n- b\n", "x.yaml")
    assert str(caught.value) == "x.yaml: document 2 is not a mapping (got a list)"


def test_convert_load_manifests_expands_lists():
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}}]})
    docs = convert.load_manifests(text, "l.json")
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("Pod", "a"), ("Service", "b")]


def test_convert_load_manifests_json_error_has_line_and_column():
    with pytest.raises(ManifestError) as caught:
        convert.load_manifests('{\n  "kind": "Pod",\n  "x": [1,\n}\n', "p.json")
    assert str(caught.value).startswith("p.json:4:1: ")


def test_convert_load_manifests_empty_text_is_no_objects():
    assert convert.load_manifests("", "e.yaml") == []
    assert convert.load_manifests("---\n---\n", "e.yaml") == []


def test_convert_format_and_parse_time_agree():
    ts = meta_pb2.ObjectMeta().creation_timestamp
    ts.seconds = 1795534241
    text = convert.format_time(ts)
    assert text == "2026-11-24T15:30:41Z"
    assert convert.parse_time(text) == (1795534241, 0)


# --- RBAC and quota manifests, as written for Kubernetes ------------------------------------

RBAC_MANIFESTS = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:metrics-reader
rules:
- nonResourceURLs: ["/metrics"]
  verbs: ["get"]
- apiGroups: ["", "apps"]
  resources: ["pods", "pods/log", "deployments"]
  resourceNames: ["web"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: team
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
- kind: ServiceAccount
  name: builder
  namespace: ci
roleRef:
  kind: ClusterRole
  name: system:metrics-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: team
spec:
  hard:
    pods: "10"
    requests.cpu: "2"
    requests.memory: 4Gi
"""


def test_convert_rbac_and_quota_manifests_load_with_kubernetes_names():
    docs = convert.load_manifests(RBAC_MANIFESTS, "rbac.yaml")
    decoded = [convert.from_dict(doc, strict=True) for doc in docs]
    assert all(warnings == [] for _, warnings in decoded)
    role, binding, quota = (message for message, _ in decoded)
    assert list(role.rules[0].non_resource_urls) == ["/metrics"]
    assert list(role.rules[1].resource_names) == ["web"]
    assert binding.role_ref.kind == "ClusterRole"
    assert binding.subjects[1].namespace == "ci"
    assert dict(quota.spec.hard) == {"pods": "10", "requests.cpu": "2",
                                     "requests.memory": "4Gi"}
    again = [convert.to_dict(message) for message, _ in decoded]
    assert again == docs


def test_convert_json_name_spells_kubernetes_acronyms():
    from services.api.gen.kybernetes.rbac.v1 import types_pb2 as rbac
    field = rbac.PolicyRule.DESCRIPTOR.fields_by_name["non_resource_urls"]
    assert convert.json_name(field) == "nonResourceURLs"
    assert convert.to_dict(rbac.PolicyRule(non_resource_urls=["/x"])) == {
        "nonResourceURLs": ["/x"]}
