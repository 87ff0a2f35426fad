"""Configuration: KubeSchedulerConfiguration-shaped YAML into profiles."""

from __future__ import annotations

import pytest

from services.scheduler import config
from services.scheduler.plugins import DEFAULT_FILTERS, DEFAULT_SCORES


def test_config_default_profile_has_every_default_plugin():
    [profile] = config.default_config("my-scheduler").profiles
    assert profile.scheduler_name == "my-scheduler"
    assert list(profile.filters) == DEFAULT_FILTERS
    assert dict(profile.scores) == DEFAULT_SCORES


def test_config_disable_and_reweight():
    cfg = config.parse_config({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "percentageOfNodesToScore": 30,
        "profiles": [{
            "schedulerName": "fast",
            "plugins": {
                "filter": {"disabled": [{"name": "NodePorts"}]},
                "score": {"enabled": [{"name": "NodeResourcesBalancedAllocation", "weight": 5}],
                          "disabled": [{"name": "SelectorSpread"}]},
            },
        }],
    })
    assert cfg.percentage_of_nodes_to_score == 30
    [profile] = cfg.profiles
    assert profile.scheduler_name == "fast"
    assert "NodePorts" not in profile.filters
    scores = dict(profile.scores)
    assert scores["NodeResourcesBalancedAllocation"] == 5
    assert "SelectorSpread" not in scores
    # a re-configured default keeps its place
    assert [n for n, _ in profile.scores].index("NodeResourcesBalancedAllocation") == 3


def test_config_disable_all_then_enable_some():
    cfg = config.parse_config({"profiles": [{"plugins": {
        "score": {"disabled": [{"name": "*"}],
                  "enabled": [{"name": "NodeResourcesLeastAllocated"}]}}}]}, "dflt")
    [profile] = cfg.profiles
    assert profile.scheduler_name == "dflt"
    assert profile.scores == (("NodeResourcesLeastAllocated", 1),)


def test_config_several_profiles_build_their_own_plugins():
    cfg = config.parse_config({"profiles": [{"schedulerName": "a"}, {"schedulerName": "b"}]})
    profiles = config.build_profiles(cfg)
    assert set(profiles) == {"a", "b"}
    assert profiles["a"].filters[0] is not profiles["b"].filters[0]
    # one object per plugin within a profile, at both extension points
    taint_filter = next(p for p in profiles["a"].filters if p.name == "TaintToleration")
    taint_score = next(p for p, _ in profiles["a"].scores if p.name == "TaintToleration")
    assert taint_filter is taint_score


@pytest.mark.parametrize("data, message", [
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]},
     "unknown plugin 'Nope'"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodePorts"}]}}}]},
     "has no score extension point"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "SelectorSpread",
                                                       "weight": 0}]}}}]},
     "weight: must be an integer from 1 to 100"),
    ({"profiles": [{"plugins": {"bind": {}}}]}, "extension point not supported"),
    ({"profiles": [{"schedulerName": "x"}, {"schedulerName": "x"}]}, "used more than once"),
    ({"percentageOfNodesToScore": 101}, "percentageOfNodesToScore"),
    ({"extenders": []}, "unsupported field 'extenders'"),
    ({"profiles": []}, "non-empty list"),
    ("just a string", "must be a mapping"),
])
def test_config_rejects_what_it_cannot_honour(data, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse_config(data)


def test_config_load_names_the_file_in_errors(tmp_path):
    path = tmp_path / "sched.yaml"
    path.write_text("profiles:\n- plugins: {score: {enabled: [{name: Bogus}]}}\n")
    with pytest.raises(config.ConfigError, match=f"^{path}: profiles\\[0\\]"):
        config.load_config(path)
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load_config(tmp_path / "missing.yaml")
    path.write_text("profiles: [")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load_config(path)
