from __future__ import annotations

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.kubelet.envvars import container_env, expand, expand_all, field_ref_value


@pytest.mark.parametrize("text, expected", [
    ("$(A)", "a"),
    ("x$(A)y$(B)z", "xaybz"),
    ("$$(A)", "$(A)"),           # $$ escapes
    ("$$", "$"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),  # unknown left as written
    ("$(A", "$(A"),              # unclosed left as written
    ("$A", "$A"),                # not a reference
    ("trailing $", "trailing $"),
    ("$()", "$()"),
    ("$(A)$(A)", "aa"),
    ("no refs", "no refs"),
    ("$$$(A)", "$a"),
])
def test_envvars_expand_follows_kubernetes_syntax(text, expected):
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_envvars_expand_accepts_a_lookup_function():
    assert expand("$(X)-$(Y)", lambda name: "1" if name == "X" else None) == "1-$(Y)"


def _pod() -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "ns1", "uid-1"
    pod.metadata.labels["app"] = "shop"
    pod.metadata.annotations["note"] = "hi"
    pod.spec.node_name = "n1"
    c = pod.spec.containers.add(name="main", image="busybox")
    c.env.add(name="A", value="one")
    c.env.add(name="B", value="$(A)-two")
    c.env.add(name="C", value="$(D)")            # D is defined later: not expanded
    c.env.add(name="D", value="four")
    c.env.add(name="NAME").value_from.field_ref.field_path = "metadata.name"
    c.env.add(name="IP").value_from.field_ref.field_path = "status.podIP"
    c.env.add(name="APP").value_from.field_ref.field_path = "metadata.labels['app']"
    c.env.add(name="REF", value="$(NAME)@$(IP)")
    c.command.extend(["sh", "-c", "echo $(B) $$(B) $(NOPE)"])
    c.args.extend(["$(APP)"])
    return pod


def test_envvars_container_env_expands_in_order_and_reads_field_refs():
    pod = _pod()
    env = container_env(pod, pod.spec.containers[0], host_ip="10.0.0.1", pod_ip="172.17.0.5")
    assert env == {"A": "one", "B": "one-two", "C": "$(D)", "D": "four", "NAME": "web",
                   "IP": "172.17.0.5", "APP": "shop", "REF": "web@172.17.0.5"}
    assert list(env) == ["A", "B", "C", "D", "NAME", "IP", "APP", "REF"]


def test_envvars_command_and_args_are_expanded_from_the_env():
    pod = _pod()
    c = pod.spec.containers[0]
    env = container_env(pod, c)
    assert expand_all(c.command, env) == ["sh", "-c", "echo one-two $(B) $(NOPE)"]
    assert expand_all(c.args, env) == ["shop"]


def test_envvars_field_ref_values():
    pod = _pod()
    assert field_ref_value(pod, "metadata.namespace") == "ns1"
    assert field_ref_value(pod, "metadata.uid") == "uid-1"
    assert field_ref_value(pod, "spec.nodeName") == "n1"
    assert field_ref_value(pod, "status.hostIP", host_ip="10.1.1.1") == "10.1.1.1"
    assert field_ref_value(pod, "metadata.annotations['note']") == "hi"
    assert field_ref_value(pod, "metadata.labels['missing']") == ""
    with pytest.raises(ValueError):
        field_ref_value(pod, "spec.bogus")
