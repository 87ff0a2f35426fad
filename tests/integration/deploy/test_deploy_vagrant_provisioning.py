"""The Vagrant provisioning scripts, run for real with containers standing in
for the VMs (no VM can boot here; see deploy/README.md).

Each "VM" is a container of the kyb/node image (Debian 12 with Docker's
package, like the box once provisioned) on its own network, 172.30.93.0/24,
with the repository mounted where the Vagrantfile syncs it (/kybernetes)
and its own Docker volume. The test runs exactly what the Vagrantfile runs
in each VM: provision/base.sh (deploy/host/ensure.sh docker, the saved
images loaded), provision/control-plane.sh on the first, provision/worker.sh
on two workers — then checks that the workers are Ready, that pods run in
each worker's own Docker, reach each other across workers, and that
kube-proxy programmed the worker's own iptables.

The credentials are made as deploy/vagrant/up.sh makes them (plan.py pki,
on the host) and each VM's share is put where the Vagrantfile's file
provisioner uploads it (/tmp/kyb-pki) before its role's script runs; the
test's client is the cluster's admin (the admin.conf plan.py writes).

What differs from a VM: the container has no systemd (ensure.sh and
worker.sh start and restart dockerd themselves, their documented fallback),
and its dockerd puts pod cgroups under /kybvm-NAME (a daemon.json setting
worker.sh keeps) so they can be removed afterwards.

KYB_SIM_ENTRYPOINT=PATH rebuilds kyb/node inside the worker VMs with that
node-entrypoint.sh: a way to try an entrypoint change before the image has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.api.gen.kybernetes.core.v1 import types_pb2 as core
from services.machinery import ApiError, Client
from services.machinery.config import load as load_config
from tests.integration.deploy.conftest import ROOT

pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]

NETWORK = "kybvm-net"
SUBNET = "172.30.93.0/24"
LABEL = "org.kybernetes.test=vagrant-provisioning"
CP_IP = "172.30.93.10"
API = f"{CP_IP}:6443"
VMS = {"kybvm-cp": ("kyb-control-plane", CP_IP),
       "kybvm-n1": ("kyb-node-1", "172.30.93.11"),
       "kybvm-n2": ("kyb-node-2", "172.30.93.12")}
WORKERS = ["kybvm-n1", "kybvm-n2"]
IMAGES = ["kyb/etcd:latest", "kyb/python:latest", "kyb/node:latest", "kyb/pause:latest",
          "kyb/busybox:latest"]
PROVISION = "/kybernetes/deploy/vagrant/provision"
PLAN = ROOT / "deploy" / "vagrant" / "plan.py"
# What a VM grants a container that runs dockerd; on this machine, as
# kyb-cluster's node containers (services/cluster/topology.NODE_PRIVILEGES).
VM_FLAGS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--device-cgroup-rule", "a *:* rwm", "--tmpfs", "/run", "--tmpfs", "/tmp",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/lib/modules:/lib/modules:ro"]


def docker(*args: str, check: bool = True, timeout: float = 300, input: str | None = None) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          input=input, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def in_vm(vm: str, script: str, *args: str) -> str:
    return docker("exec", "-e", "KYB_IMAGES=/images", vm, "bash", f"{PROVISION}/{script}", *args,
                  timeout=600)


def remove_all() -> None:
    for vm in VMS:
        docker("rm", "-f", vm, check=False, timeout=120)
        docker("volume", "rm", "-f", f"{vm}-docker", check=False)
        for parent in pathlib.Path("/sys/fs/cgroup").glob(f"*/{vm}"):
            for dirpath, _, _ in sorted(os.walk(parent), key=lambda x: -x[0].count("/")):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
    docker("network", "rm", NETWORK, check=False)


def start_vm(vm: str, images: pathlib.Path) -> None:
    hostname, ip = VMS[vm]
    docker("run", "-d", "--name", vm, "--hostname", hostname, "--network", NETWORK, "--ip", ip,
           "--label", LABEL, *VM_FLAGS, "-v", f"{vm}-docker:/var/lib/docker",
           "-v", f"{ROOT}:/kybernetes:ro", "-v", f"{images}:/images:ro",
           "--entrypoint", "sleep", "kyb/node:latest", "infinity")
    docker("exec", "-i", vm, "sh", "-c", "mkdir -p /etc/docker && cat >/etc/docker/daemon.json",
           input=json.dumps({"cgroup-parent": f"/{vm}"}))


def make_pki(out: pathlib.Path) -> None:
    """The cluster's PKI and each VM's share, as deploy/vagrant/up.sh makes them."""
    ips = ",".join(VMS[vm][1] for vm in WORKERS)
    proc = subprocess.run([sys.executable, str(PLAN), "pki", "--out", str(out), "--workers",
                           str(len(WORKERS)), "--cp-ip", CP_IP, "--worker-ips", ips],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def upload_pki(vm: str, out: pathlib.Path) -> None:
    """What the Vagrantfile's file provisioner does: the VM's share of the
    credentials to /tmp/kyb-pki (a tar stream: /tmp is a tmpfs here)."""
    share = out / "vms" / VMS[vm][0]
    tar = subprocess.run(["tar", "-C", str(share), "-c", "."], capture_output=True,
                         timeout=60, check=True).stdout
    proc = subprocess.run(["docker", "exec", "-i", vm, "sh", "-c",
                           "rm -rf /tmp/kyb-pki && mkdir /tmp/kyb-pki && "
                           "tar -C /tmp/kyb-pki -x"], input=tar, capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def admin(pki_out: pathlib.Path):
    return load_config(kubeconfig=pki_out / "admin.conf")


def patch_entrypoint(vm: str, entrypoint: pathlib.Path) -> None:
    docker("exec", "-i", vm, "sh", "-c", "mkdir -p /root/ep && cat >/root/ep/node-entrypoint.sh",
           input=entrypoint.read_text())
    docker("exec", vm, "sh", "-c",
           "cd /root/ep && chmod +x node-entrypoint.sh && printf 'FROM kyb/node:latest\\n"
           "COPY node-entrypoint.sh /usr/local/bin/kyb-node-entrypoint\\n' >Dockerfile "
           "&& docker build -q -t kyb/node:latest .")


@pytest.fixture(scope="module")
def vms(deploy_images, tmp_path_factory):
    """Three provisioned "VMs"; removed afterwards whatever happens."""
    sim_entrypoint = os.environ.get("KYB_SIM_ENTRYPOINT")
    if not sim_entrypoint:
        found = docker("run", "--rm", "--entrypoint", "grep", "kyb/node:latest", "-c",
                       "KYB_DOCKERD", "/usr/local/bin/kyb-node-entrypoint", check=False)
        assert found.strip() not in ("", "0"), \
            "kyb/node's node-entrypoint.sh has no KYB_DOCKERD=host mode, which VM workers " \
            "need (the change proposed with deploy/vagrant; see deploy/README.md)"
    images = tmp_path_factory.mktemp("vm-images")
    pki_out = tmp_path_factory.mktemp("vm-pki")
    remove_all()
    outputs: dict[str, str] = {}
    try:
        make_pki(pki_out)
        docker("save", "-o", str(images / "images.tar"), *IMAGES, timeout=600)
        (images / "images.tar").chmod(0o644)
        images.chmod(0o755)
        docker("network", "create", "--subnet", SUBNET, "--label", LABEL, NETWORK)
        for vm in VMS:
            start_vm(vm, images)
        with ThreadPoolExecutor(len(VMS)) as pool:  # as `vagrant up` provisions: each VM's base
            for vm, out in zip(VMS, pool.map(lambda v: in_vm(v, "base.sh"), VMS)):
                outputs[vm] = out
        if sim_entrypoint:
            for vm in WORKERS:
                patch_entrypoint(vm, pathlib.Path(sim_entrypoint))
        upload_pki("kybvm-cp", pki_out)
        outputs["kybvm-cp"] += in_vm("kybvm-cp", "control-plane.sh", CP_IP, str(len(WORKERS)))
        for i, vm in enumerate(WORKERS, start=1):
            upload_pki(vm, pki_out)
            outputs[vm] += in_vm(vm, "worker.sh", str(i), VMS[vm][1], API)
        outputs["pki"] = str(pki_out)
        yield outputs
    finally:
        remove_all()
        shutil.rmtree(images, ignore_errors=True)
        shutil.rmtree(pki_out, ignore_errors=True)


async def _wait(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await predicate()
        except ApiError as err:
            last = err
        if last and not isinstance(last, ApiError):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def test_provisioned_workers_register_ready_with_their_vm_addresses(vms):
    assert "kyb-apiserver-0: created" in vms["kybvm-cp"]
    assert "node kyb-node-2: pod CIDR 10.244.2.0/24" in vms["kybvm-cp"]
    async with Client(config=admin(pathlib.Path(vms["pki"]))) as client:
        async def ready():
            nodes = (await client.resource("nodes").list()).items
            return {n.metadata.name: [a.address for a in n.status.addresses
                                      if a.type == "InternalIP"]
                    for n in nodes if _ready(n)} if len(nodes) == 2 and all(
                        _ready(n) for n in nodes) else None
        found = await _wait(ready, 120, "both workers Ready")
    assert found == {"kyb-node-1": ["172.30.93.11"], "kyb-node-2": ["172.30.93.12"]}


def _httpd_pod(name: str, node: str) -> core.Pod:
    pod = core.Pod()
    pod.metadata.name, pod.metadata.namespace = name, "default"
    pod.metadata.labels["app"] = "web"
    pod.spec.node_name = node
    pod.spec.termination_grace_period_seconds = 1
    pod.spec.containers.add(
        name="httpd", image="kyb/busybox:latest", image_pull_policy="IfNotPresent",
        command=["sh", "-c", f"echo {name} >/www/index.html; httpd -f -p 8080 -h /www"])
    return pod


async def test_pods_run_in_each_vms_docker_and_reach_across_workers(vms):
    async with Client(config=admin(pathlib.Path(vms["pki"]))) as client:
        pods = client.resource("pods")
        for i in (1, 2):
            await pods.create(_httpd_pod(f"web-{i}", f"kyb-node-{i}"))

        async def running():
            got = {p.metadata.name: p.status.pod_ip for p in (await pods.list("default")).items
                   if p.status.phase == "Running" and p.status.pod_ip}
            return got if len(got) == 2 else None
        ips = await _wait(running, 120, "both pods Running")
    assert ips["web-1"].startswith("10.244.1.") and ips["web-2"].startswith("10.244.2.")
    # The VM's own Docker runs the pod (sandbox and app container).
    assert "web-1" in docker("exec", "kybvm-n1", "docker", "ps", "--format", "{{.Names}}")
    # From worker 1's network to a pod on worker 2: routes between the VMs.
    out = docker("exec", "kybvm-n1", "sh", "-c",
                 f"for i in $(seq 1 40); do wget -qO- http://{ips['web-2']}:8080/ && exit 0; "
                 f"sleep 0.5; done; exit 1")
    assert out.strip() == "web-2"


async def test_kube_proxy_programs_the_workers_own_iptables(vms):
    async with Client(config=admin(pathlib.Path(vms["pki"]))) as client:
        for i in (1, 2):
            with contextlib.suppress(ApiError):
                await client.resource("pods").create(_httpd_pod(f"web-{i}", f"kyb-node-{i}"))
        svc = core.Service()
        svc.metadata.name, svc.metadata.namespace = "web", "default"
        svc.spec.selector["app"] = "web"
        svc.spec.ports.add(name="http", port=80).target_port.int_value = 8080
        created = await client.resource("services").create(svc)
    cluster_ip = created.spec.cluster_ip
    assert cluster_ip
    for vm in WORKERS:
        out = docker("exec", vm, "sh", "-c",
                     f"for i in $(seq 1 60); do wget -qO- http://{cluster_ip}/ && exit 0; "
                     f"sleep 0.5; done; exit 1")
        assert out.strip() in ("web-1", "web-2")
        assert cluster_ip in docker("exec", vm, "iptables-save", "-t", "nat")


def test_each_vm_holds_only_its_own_credentials(vms):
    assert "credentials installed: admin kyb-apiserver-0 kyb-controller-manager kyb-etcd-0 " \
           "kyb-scheduler" in vms["kybvm-cp"]
    listing = docker("exec", "kybvm-n1", "ls", "/var/lib/kyb/bundles")
    assert listing.split() == ["kyb-node-1"]
    for vm in VMS:
        found = docker("exec", vm, "sh", "-c", "find / -xdev -name ca.key 2>/dev/null; "
                       "ls -d /tmp/kyb-pki 2>/dev/null; stat -c %a /var/lib/kyb/bundles",
                       check=False)
        assert found.split() == ["700"], f"{vm}: {found}"
    # The cluster serves only mutual TLS: plaintext is refused.
    async def plaintext():
        async with Client([API], retry_for=1) as client:
            await client.resource("namespaces").list()
    with pytest.raises(ApiError):
        asyncio.run(plaintext())


def test_provisioning_again_changes_nothing(vms):
    pki_out = pathlib.Path(vms["pki"])
    upload_pki("kybvm-cp", pki_out)  # vagrant provision uploads the same share again
    out = in_vm("kybvm-cp", "control-plane.sh", CP_IP, str(len(WORKERS)))
    assert out.count(": running") == 4 and "created" not in out
    upload_pki("kybvm-n1", pki_out)
    out = in_vm("kybvm-n1", "base.sh") + in_vm("kybvm-n1", "worker.sh", "1", VMS["kybvm-n1"][1],
                                               API)
    assert "images up to date" in out
    assert "kyb-node-1: running" in out and "restarting" not in out
    # Without an upload the installed credentials stay.
    out = in_vm("kybvm-n1", "worker.sh", "1", VMS["kybvm-n1"][1], API)
    assert "credentials: as installed" in out and "kyb-node-1: running" in out
