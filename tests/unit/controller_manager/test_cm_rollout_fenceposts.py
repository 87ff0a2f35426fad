"""maxSurge / maxUnavailable resolution (Kubernetes' ResolveFenceposts)."""

from __future__ import annotations

import pytest

from services.api.gen.kybernetes.apps.v1 import types_pb2 as apps
from services.api.gen.kybernetes.meta.v1 import meta_pb2
from services.controller_manager.rollout import (
    Fenceposts, max_surge, max_unavailable, resolve_fenceposts, scaled_value,
)


def ios(value: int | str) -> meta_pb2.IntOrString:
    return (meta_pb2.IntOrString(int_value=value) if isinstance(value, int)
            else meta_pb2.IntOrString(str_value=value))


def deployment(replicas: int, surge: int | str | None = None,
               unavailable: int | str | None = None, strategy: str = "RollingUpdate"
               ) -> apps.Deployment:
    d = apps.Deployment()
    d.spec.replicas = replicas
    d.spec.strategy.type = strategy
    if surge is not None:
        d.spec.strategy.rolling_update.max_surge.CopyFrom(ios(surge))
    if unavailable is not None:
        d.spec.strategy.rolling_update.max_unavailable.CopyFrom(ios(unavailable))
    return d


@pytest.mark.parametrize("value,total,up,expected", [
    (3, 10, True, 3),
    ("25%", 10, True, 3),      # 2.5 rounds up for surge
    ("25%", 10, False, 2),     # and down for unavailable
    ("100%", 7, False, 7),
    ("0%", 7, True, 0),
    ("1%", 1, True, 1),
    ("1%", 1, False, 0),
    (None, 5, True, 0),
])
def test_scaled_value_rounds_percentages_the_asked_way(value, total, up, expected):
    arg = ios(value) if value is not None else None
    assert scaled_value(arg, total, round_up=up) == expected


def test_scaled_value_accepts_plain_python_values():
    assert scaled_value("50%", 3, round_up=True) == 2
    assert scaled_value(4, 3, round_up=True) == 4
    assert scaled_value(meta_pb2.IntOrString(), 3, round_up=True) == 0


@pytest.mark.parametrize("bad", ["25", "abc%", "%"])
def test_scaled_value_rejects_malformed_percentages(bad):
    with pytest.raises(ValueError):
        scaled_value(bad, 10, round_up=True)


def test_resolve_fenceposts_turns_two_zeros_into_one_unavailable():
    # 10% of 3 unavailable rounds down to 0; surge 0: the rollout could never move.
    assert resolve_fenceposts(ios(0), ios("10%"), 3) == (0, 1)
    assert resolve_fenceposts(ios("0%"), ios("0%"), 3) == (0, 1)


def test_resolve_fenceposts_keeps_nonzero_values():
    assert resolve_fenceposts(ios("25%"), ios("25%"), 4) == (1, 1)
    assert resolve_fenceposts(ios(2), ios(0), 4) == (2, 0)


def test_max_surge_and_unavailable_default_to_25_percent():
    d = deployment(10)
    assert max_surge(d) == 3
    assert max_unavailable(d) == 2


def test_max_unavailable_never_exceeds_replicas():
    assert max_unavailable(deployment(2, surge=0, unavailable=5)) == 2


def test_recreate_has_no_surge_and_no_unavailable_budget():
    d = deployment(4, strategy="Recreate")
    assert (max_surge(d), max_unavailable(d)) == (0, 0)
    assert Fenceposts.of(d).min_available == 0


def test_zero_replicas_have_zero_unavailable():
    assert max_unavailable(deployment(0, surge=1, unavailable=1)) == 0


def test_fenceposts_of_reads_the_deployment():
    d = deployment(10, surge="20%", unavailable=1)
    d.status.replicas = 7
    fp = Fenceposts.of(d)
    assert (fp.replicas, fp.max_surge, fp.max_unavailable, fp.status_replicas, fp.rolling) == \
        (10, 2, 1, 7, True)
    assert fp.min_available == 9
