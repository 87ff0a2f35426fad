"""Every shell script under deploy/ that this part of the project owns is
shellcheck-clean. shellcheck is installed by `make test`'s host set-up
(deploy/host/ensure.sh); without it the test fails, naming the fix."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.unit.deploy.conftest import ROOT

SCRIPTS = sorted([ROOT / "deploy" / "monitoring.sh",
                  ROOT / "deploy" / "images" / "etcd-entrypoint.sh",
                  *(ROOT / "deploy" / "vagrant").glob("*.sh"),
                  *(ROOT / "deploy" / "vagrant" / "provision").glob("*.sh")])


def test_scripts_exist():
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {"deploy/monitoring.sh", "deploy/vagrant/up.sh", "deploy/vagrant/down.sh",
            "deploy/vagrant/provision/base.sh", "deploy/vagrant/provision/control-plane.sh",
            "deploy/vagrant/provision/worker.sh", "deploy/vagrant/provision/lib.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_script_is_shellcheck_clean(script):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: apt-get install shellcheck " \
                       "(make test installs it through deploy/host/ensure.sh)"
    proc = subprocess.run([shellcheck, "-x", str(script)], cwd=script.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
