"""deploy/ holds scripts, not a package: its Python modules
(deploy/prometheus/generate.py, deploy/vagrant/plan.py) are loaded by path."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load(relative: str, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def generate() -> ModuleType:
    return load("deploy/prometheus/generate.py", "kyb_deploy_prometheus_generate")


@pytest.fixture(scope="session")
def vagrant_plan() -> ModuleType:
    return load("deploy/vagrant/plan.py", "kyb_deploy_vagrant_plan")
