"""Template hashes, revisions and the rollback helpers the CLI imports."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.controller_manager.rollout import (
    POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    RevisionNotFound, RolloutError, RolloutFailed, compute_hash, equal_ignore_hash, max_revision,
    new_rs_annotations, revision_history, revision_of, rollback_template, rolled_back,
    rollout_status_message, safe_encode,
)

UID = "d-uid"


def template(image: str) -> core.PodTemplateSpec:
    t = core.PodTemplateSpec()
    t.metadata.labels["app"] = "web"
    t.spec.containers.add(name="main", image=image)
    return t


def deployment(image: str = "web:3", annotations: dict[str, str] | None = None
               ) -> apps.Deployment:
    d = apps.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "ns", UID
    d.metadata.annotations.update(annotations or {})
    d.spec.template.CopyFrom(template(image))
    return d


def replicaset(image: str, revision: int | None, owner: str = UID,
               annotations: dict[str, str] | None = None) -> apps.ReplicaSet:
    rs = apps.ReplicaSet()
    t = template(image)
    h = compute_hash(t)
    t.metadata.labels[POD_TEMPLATE_HASH_LABEL] = h
    rs.metadata.name, rs.metadata.namespace = f"web-{h}", "ns"
    rs.metadata.owner_references.add(kind="Deployment", name="web", uid=owner, controller=True)
    if revision is not None:
        rs.metadata.annotations[REVISION_ANNOTATION] = str(revision)
    rs.metadata.annotations.update(annotations or {})
    rs.spec.template.CopyFrom(t)
    return rs


def test_compute_hash_is_stable_and_label_safe():
    h = compute_hash(template("web:1"))
    assert h == compute_hash(template("web:1"))
    assert h != compute_hash(template("web:2"))
    assert h and all(c in "bcdfghjklmnpqrstvwxz2456789" for c in h)


def test_compute_hash_changes_with_the_collision_count():
    t = template("web:1")
    assert len({compute_hash(t), compute_hash(t, 0), compute_hash(t, 1)}) == 3


def test_safe_encode_maps_every_character():
    assert safe_encode("0123") == "".join("bcdfghjklmnpqrstvwxz2456789"[ord(c) % 27]
                                          for c in "0123")


def test_equal_ignore_hash_ignores_only_the_hash_label():
    a, b = template("web:1"), template("web:1")
    b.metadata.labels[POD_TEMPLATE_HASH_LABEL] = "xyz"
    assert equal_ignore_hash(a, b)
    b.metadata.labels["tier"] = "front"
    assert not equal_ignore_hash(a, b)


def test_revision_of_reads_the_annotation():
    assert revision_of(replicaset("a", 4)) == 4
    assert revision_of(replicaset("a", None)) == 0
    assert revision_of(replicaset("a", None, annotations={REVISION_ANNOTATION: "x"})) is None
    assert max_revision([replicaset("a", 4), replicaset("b", 9), replicaset("c", None)]) == 9


def test_revision_history_is_sorted_oldest_first():
    rss = [replicaset("c", 3), replicaset("a", 1), replicaset("n", None), replicaset("b", 2)]
    assert [rev for rev, _ in revision_history(rss)] == [1, 2, 3]


def test_rollback_template_defaults_to_the_previous_revision():
    d = deployment("web:3")
    rss = [replicaset("web:1", 1), replicaset("web:2", 2), replicaset("web:3", 3)]
    tpl = rollback_template(d, rss)
    assert tpl.spec.containers[0].image == "web:2"
    assert POD_TEMPLATE_HASH_LABEL not in tpl.metadata.labels


def test_rollback_template_to_a_given_revision():
    d = deployment("web:3")
    rss = [replicaset("web:1", 1), replicaset("web:2", 2), replicaset("web:3", 3)]
    assert rollback_template(d, rss, to_revision=1).spec.containers[0].image == "web:1"


def test_rollback_template_ignores_other_deployments_replicasets():
    d = deployment("web:3")
    rss = [replicaset("web:9", 5, owner="other"), replicaset("web:1", 1), replicaset("web:3", 2)]
    assert rollback_template(d, rss).spec.containers[0].image == "web:1"


def test_rollback_template_is_none_when_already_running_it():
    d = deployment("web:2")
    rss = [replicaset("web:2", 2), replicaset("web:3", 3)]
    assert rollback_template(d, rss) is None


def test_rollback_template_raises_for_missing_revisions():
    d = deployment("web:1")
    with pytest.raises(RevisionNotFound, match="no rollout history"):
        rollback_template(d, [replicaset("web:1", 1)])
    with pytest.raises(RevisionNotFound, match="revision 7"):
        rollback_template(d, [replicaset("web:1", 1), replicaset("web:2", 2)], to_revision=7)


def test_rolled_back_copies_template_and_user_annotations():
    d = deployment("web:3", {REVISION_ANNOTATION: "3", "kubernetes.io/change-cause": "v3"})
    old = replicaset("web:1", 1, annotations={"kubernetes.io/change-cause": "v1"})
    new = rolled_back(d, [old, replicaset("web:3", 3)], to_revision=1)
    assert new.spec.template == template("web:1")
    assert dict(new.metadata.annotations) == {REVISION_ANNOTATION: "3",
                                              "kubernetes.io/change-cause": "v1"}
    assert d.spec.template.spec.containers[0].image == "web:3"  # the input is untouched


def test_new_rs_annotations_for_a_new_replicaset():
    d = deployment(annotations={"team": "a", REVISION_ANNOTATION: "1"})
    d.spec.replicas = 4
    got = new_rs_annotations(d, {}, 2, exists=False, max_replicas=5)
    assert got == {"team": "a", REVISION_ANNOTATION: "2",
                   "deployment.kubernetes.io/desired-replicas": "4",
                   "deployment.kubernetes.io/max-replicas": "5"}


def test_new_rs_annotations_records_history_when_an_old_set_becomes_new():
    d = deployment()
    got = new_rs_annotations(d, {REVISION_ANNOTATION: "1"}, 4, exists=True, max_replicas=1)
    assert got[REVISION_ANNOTATION] == "4"
    assert got[REVISION_HISTORY_ANNOTATION] == "1"
    again = new_rs_annotations(d, got, 6, exists=True, max_replicas=1)
    assert again[REVISION_HISTORY_ANNOTATION] == "1,4"


def test_new_rs_annotations_never_lowers_a_revision():
    d = deployment()
    assert new_rs_annotations(d, {REVISION_ANNOTATION: "5"}, 3, exists=True,
                              max_replicas=1) is None


def status_deployment(replicas: int = 3, *, generation: int = 2, observed: int = 2,
                      updated: int = 3, total: int = 3, available: int = 3,
                      reason: str = "") -> apps.Deployment:
    d = deployment()
    d.metadata.generation = generation
    d.spec.replicas = replicas
    s = d.status
    s.observed_generation, s.updated_replicas = observed, updated
    s.replicas, s.available_replicas = total, available
    if reason:
        s.conditions.add(type="Progressing", status="False", reason=reason)
    return d


@pytest.mark.parametrize("kwargs,message,done", [
    ({"observed": 1}, "Waiting for deployment spec update to be observed...", False),
    ({"updated": 1, "total": 4},
     'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
     "updated...", False),
    ({"total": 5}, 'Waiting for deployment "web" rollout to finish: 2 old replicas are '
     "pending termination...", False),
    ({"available": 2}, 'Waiting for deployment "web" rollout to finish: 2 of 3 updated '
     "replicas are available...", False),
    ({}, 'deployment "web" successfully rolled out', True),
])
def test_rollout_status_message_follows_kubectl(kwargs, message, done):
    assert rollout_status_message(status_deployment(**kwargs)) == (message, done)


def test_rollout_status_message_fails_past_the_deadline_or_on_another_revision():
    with pytest.raises(RolloutFailed, match="exceeded its progress deadline"):
        rollout_status_message(status_deployment(reason="ProgressDeadlineExceeded"))
    d = status_deployment()
    d.metadata.annotations[REVISION_ANNOTATION] = "4"
    assert rollout_status_message(d, revision=4)[1]
    with pytest.raises(RolloutFailed, match=r"desired revision \(3\)"):
        rollout_status_message(d, revision=3)


def test_rollback_refuses_a_paused_deployment():
    d = deployment("web:2")
    d.spec.paused = True
    with pytest.raises(RolloutFailed, match="paused"):
        rollback_template(d, [replicaset("web:1", 1), replicaset("web:2", 2)])
    with pytest.raises(RolloutError):
        rolled_back(d, [replicaset("web:1", 1), replicaset("web:2", 2)])
