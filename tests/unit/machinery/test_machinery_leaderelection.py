"""LeaderElector's pure parts; the election itself runs against a real API
server in tests/integration/test_leaderelection.py."""

from __future__ import annotations

import pytest

from services.machinery import Client
from services.machinery.clock import FakeClock
from services.machinery.leaderelection import LeaderElector, default_identity


def elector(**kwargs) -> LeaderElector:
    return LeaderElector(Client(["127.0.0.1:1"]), "lock", clock=FakeClock(), **kwargs)


def test_leaderelector_rejects_timings_that_allow_two_leaders():
    with pytest.raises(ValueError, match="lease_duration"):
        elector(lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="renew_deadline"):
        elector(lease_duration=15, renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError):
        elector(lease_duration=15, renew_deadline=10, retry_period=0)


def test_leaderelector_defaults_match_client_go():
    e = elector()
    assert (e.lease_duration, e.renew_deadline, e.retry_period) == (15, 10, 2)
    assert e.namespace == "kube-system"
    assert not e.is_leader() and e.leader == ""


def test_leaderelector_default_identity_is_unique_per_process():
    assert default_identity() != default_identity()
    assert elector(identity="me").identity == "me"
