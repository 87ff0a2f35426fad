"""Scheduler configuration: which plugins each profile runs, and weights.

The file (``--config``) is a subset of kube-scheduler's
KubeSchedulerConfiguration, so one written for Kubernetes reads the same::

    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    percentageOfNodesToScore: 0
    profiles:
    - schedulerName: default-scheduler
      plugins:
        filter:
          disabled: [{name: NodePorts}]
        score:
          enabled: [{name: NodeResourcesBalancedAllocation, weight: 5}]
          disabled: [{name: "*"}]

Each profile starts from the defaults (:mod:`services.scheduler.plugins`);
``disabled`` removes defaults (``"*"``: all of them), ``enabled`` re-
configures a default in place or appends a plugin, as Kubernetes merges
plugin sets. Fields this scheduler does not implement are refused with a
clear error rather than ignored.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from services.scheduler import framework
from services.scheduler.plugins import DEFAULT_FILTERS, DEFAULT_SCORES, REGISTRY

DEFAULT_SCHEDULER_NAME = "default-scheduler"
MAX_WEIGHT = 100

_TOP_KEYS = {"apiVersion", "kind", "percentageOfNodesToScore", "profiles"}
_PROFILE_KEYS = {"schedulerName", "plugins"}
_POINTS = {"filter", "score"}
_SET_KEYS = {"enabled", "disabled"}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    scheduler_name: str
    filters: tuple[str, ...]
    scores: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    profiles: tuple[ProfileConfig, ...]
    percentage_of_nodes_to_score: int | None = None


def default_profile(scheduler_name: str = DEFAULT_SCHEDULER_NAME) -> ProfileConfig:
    return ProfileConfig(scheduler_name, tuple(DEFAULT_FILTERS), tuple(DEFAULT_SCORES.items()))


def default_config(scheduler_name: str = DEFAULT_SCHEDULER_NAME) -> SchedulerConfig:
    return SchedulerConfig((default_profile(scheduler_name),))


def _mapping(value: Any, path: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unsupported field {unknown[0]!r} "
                          f"(supported: {', '.join(sorted(allowed))})")
    return value


def _plugin_list(value: Any, path: str, with_weight: bool) -> list[tuple[str, int | None]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: must be a list of {{name: ...}}")
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        entry = _mapping(item, where, {"name", "weight"} if with_weight else {"name"})
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: required")
        weight = entry.get("weight")
        if weight is not None and (not isinstance(weight, int) or isinstance(weight, bool)
                                   or not 1 <= weight <= MAX_WEIGHT):
            raise ConfigError(f"{where}.weight: must be an integer from 1 to {MAX_WEIGHT}")
        out.append((name, weight))
    return out


def _check_plugin(name: str, point: str, path: str) -> None:
    if name == "*":
        return
    cls = REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"{path}: unknown plugin {name!r} (known: {', '.join(REGISTRY)})")
    protocol = framework.FilterPlugin if point == "filter" else framework.ScorePlugin
    if not isinstance(cls(), protocol):
        raise ConfigError(f"{path}: plugin {name!r} has no {point} extension point")


def _merge(defaults: list[tuple[str, int | None]], enabled: list[tuple[str, int | None]],
           disabled: list[str]) -> list[tuple[str, int | None]]:
    """Kubernetes' mergePlugins: defaults minus the disabled, a re-enabled
    default replaced in place, other enabled plugins appended in order."""
    custom = {name: (i, weight) for i, (name, weight) in enumerate(enabled)}
    replaced: set[int] = set()
    merged = []
    for name, weight in defaults:
        if "*" in disabled or name in disabled:
            continue
        if name in custom:
            index, custom_weight = custom[name]
            replaced.add(index)
            weight = custom_weight if custom_weight is not None else weight
        merged.append((name, weight))
    merged.extend(entry for i, entry in enumerate(enabled) if i not in replaced)
    return merged


def _profile(raw: Any, path: str, fallback_name: str) -> ProfileConfig:
    data = _mapping(raw, path, _PROFILE_KEYS)
    name = data.get("schedulerName", fallback_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}.schedulerName: must be a non-empty string")
    plugins = _mapping(data.get("plugins"), f"{path}.plugins",
                       _POINTS | {"preFilter", "preScore", "reserve", "permit", "preBind",
                                  "bind", "postBind", "postFilter", "queueSort", "multiPoint"})
    for point in plugins:
        if point not in _POINTS:
            raise ConfigError(f"{path}.plugins.{point}: extension point not supported "
                              f"(supported: filter, score)")
    result: dict[str, list[tuple[str, int | None]]] = {}
    for point in ("filter", "score"):
        where = f"{path}.plugins.{point}"
        spec = _mapping(plugins.get(point), where, _SET_KEYS)
        enabled = _plugin_list(spec.get("enabled"), f"{where}.enabled", point == "score")
        disabled = [n for n, _ in _plugin_list(spec.get("disabled"), f"{where}.disabled",
                                               False)]
        for i, (plugin, _) in enumerate(enabled):
            if plugin == "*":
                raise ConfigError(f"{where}.enabled[{i}].name: '*' is only for disabled")
            _check_plugin(plugin, point, f"{where}.enabled[{i}]")
        for i, plugin in enumerate(disabled):
            _check_plugin(plugin, point, f"{where}.disabled[{i}]")
        defaults: list[tuple[str, int | None]] = (
            [(n, None) for n in DEFAULT_FILTERS] if point == "filter"
            else [(n, w) for n, w in DEFAULT_SCORES.items()])
        result[point] = _merge(defaults, enabled, disabled)
    return ProfileConfig(
        name, tuple(n for n, _ in result["filter"]),
        tuple((n, w if w is not None else DEFAULT_SCORES.get(n, 1)) for n, w in result["score"]))


def parse_config(data: Any, default_name: str = DEFAULT_SCHEDULER_NAME) -> SchedulerConfig:
    """A :class:`SchedulerConfig` from the decoded YAML; raises ConfigError."""
    top = _mapping(data, "config", _TOP_KEYS)
    percentage = top.get("percentageOfNodesToScore")
    if percentage is not None and (not isinstance(percentage, int) or isinstance(percentage, bool)
                                   or not 0 <= percentage <= 100):
        raise ConfigError("percentageOfNodesToScore: must be an integer from 0 to 100")
    raw_profiles = top.get("profiles")
    if raw_profiles is None:
        profiles = [default_profile(default_name)]
    elif not isinstance(raw_profiles, list) or not raw_profiles:
        raise ConfigError("profiles: must be a non-empty list")
    else:
        profiles = [_profile(p, f"profiles[{i}]", default_name)
                    for i, p in enumerate(raw_profiles)]
    names = [p.scheduler_name for p in profiles]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"profiles: schedulerName {name!r} is used more than once")
    return SchedulerConfig(tuple(profiles), percentage)


def load_config(path: str | pathlib.Path,
                default_name: str = DEFAULT_SCHEDULER_NAME) -> SchedulerConfig:
    try:
        data = yaml.safe_load(pathlib.Path(path).read_text())
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}".splitlines()[0]) from None
    try:
        return parse_config(data or {}, default_name)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def build_profile(config: ProfileConfig) -> framework.Profile:
    """Instantiate the profile's plugins, one object per plugin name."""
    instances: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in instances:
            instances[name] = REGISTRY[name]()
        return instances[name]

    return framework.Profile(config.scheduler_name, [get(n) for n in config.filters],
                             [(get(n), w) for n, w in config.scores])


def build_profiles(config: SchedulerConfig) -> dict[str, framework.Profile]:
    return {p.scheduler_name: build_profile(p) for p in config.profiles}


__all__ = [
    "ConfigError", "DEFAULT_SCHEDULER_NAME", "ProfileConfig", "SchedulerConfig", "build_profile",
    "build_profiles", "default_config", "default_profile", "load_config", "parse_config",
]
