"""Resource arguments in kubectl's forms."""

from __future__ import annotations

import pytest

from services.api import kinds
from services.ctl import resources
from services.ctl.resources import ArgumentError


def _flat(targets):
    return [(t.kind.kind, t.names) for t in targets]


@pytest.mark.parametrize(("args", "expected"), [
    (["po"], [("Pod", [])]),
    (["pods", "a", "b"], [("Pod", ["a", "b"])]),
    (["po,svc"], [("Pod", []), ("Service", [])]),
    (["deploy/web", "svc/web", "deployment/api"], [("Deployment", ["web", "api"]),
                                                   ("Service", ["web"])]),
    (["Deployment.apps", "x"], [("Deployment", ["x"])]),
    (["ep"], [("Endpoints", [])]), (["no"], [("Node", [])]), (["ns"], [("Namespace", [])]),
    (["ev"], [("Event", [])]), (["lease"], [("Lease", [])]), (["rs"], [("ReplicaSet", [])]),
    (["all"], [("Pod", []), ("Service", []), ("Deployment", []), ("ReplicaSet", [])]),
])
def test_resources_parse_kubectl_forms(args, expected):
    assert _flat(resources.parse(args)) == expected


@pytest.mark.parametrize(("args", "message"), [
    ([], "you must specify the type of resource"),
    (["foo"], 'the server doesn\'t have a resource type "foo"'),
    (["pod/web", "svc"], "resource/name form"),
    (["pod", "svc/web"], "resource/name form"),
])
def test_resources_parse_errors(args, message):
    with pytest.raises(ArgumentError, match=message):
        resources.parse(args)


def test_resources_names_as_kubectl_prints_them():
    assert resources.qualified(kinds.BY_KIND["Pod"]) == "pod"
    assert resources.qualified(kinds.BY_KIND["Deployment"]) == "deployment.apps"
    assert resources.plural(kinds.BY_KIND["Lease"]) == "leases.coordination.k8s.io"
    assert resources.plural(kinds.BY_KIND["Endpoints"]) == "endpoints"
