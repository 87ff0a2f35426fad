"""The Vagrantfile passes `vagrant validate` (with the libvirt provider's
configuration checked: vagrant-libvirt is Debian's provider). No VM is
started: no box can be downloaded here (see deploy/README.md). vagrant and
vagrant-libvirt are installed by `make test`'s host set-up
(deploy/host/ensure.sh); without them these tests fail, naming the fix."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.integration.deploy.conftest import ROOT

VAGRANT_DIR = ROOT / "deploy" / "vagrant"
MISSING = "vagrant is not installed: apt-get install vagrant vagrant-libvirt " \
          "(make test installs them through deploy/host/ensure.sh)"

pytestmark = pytest.mark.timeout(180)


def validate(**env: str) -> subprocess.CompletedProcess:
    vagrant = shutil.which("vagrant")
    assert vagrant, MISSING
    return subprocess.run([vagrant, "validate"], cwd=VAGRANT_DIR, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "VAGRANT_DEFAULT_PROVIDER": "libvirt",
                               "VAGRANT_CHECKPOINT_DISABLE": "1", **env})


def test_vagrantfile_validates():
    proc = validate()
    assert proc.returncode == 0, f"{MISSING if 'provider' in proc.stdout else ''}\n" \
                                 f"{proc.stdout}{proc.stderr}"
    assert "Vagrantfile validated successfully" in proc.stdout


def test_vagrantfile_validates_with_more_workers():
    proc = validate(NODES="5")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vagrantfile_rejects_zero_workers_in_one_line():
    proc = validate(NODES="0")
    assert proc.returncode != 0
    assert "NODES=0: between 1 and 100 workers" in proc.stdout + proc.stderr
