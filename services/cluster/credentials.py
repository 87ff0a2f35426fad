"""The cluster's certificates, and which container gets which.

``kyb-cluster up`` keeps the whole PKI — the CA with its key, every
component's certificate, the static token file — in one private directory
(``STATE/pki``, mode 0700), made and kept up to date by
:func:`services.machinery.pki.write_cluster_pki` (idempotent: the CA is
kept, a leaf is re-issued only when it must be). No container sees that
directory. Each gets a *bundle* of its own (``STATE/bundles/NAME``,
mounted read-only at :data:`MOUNT`) holding only what it needs: the CA
certificate, its own certificates and keys, and the client config files
(``*.conf``) its daemons read with ``--kubeconfig``. The CA's key is in no
bundle; etcd's certificate is only in etcd's; the API server's etcd client
certificate only in the API server's.

Inside a bundle the files have fixed names (a node's kubelet certificate is
``kubelet.crt`` on every node), so the flags in :mod:`topology` are the
same for every container of a role, and only the bundles differ.

The pure part — :func:`bundles`, :func:`serving_specs` — says what goes
where; :func:`write_pki` and :func:`write_bundles` write it, each file only
when its content changed, and return a digest per bundle that ``up`` puts
into the container's spec, so a container whose credentials changed is
recreated and one whose did not is left running.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import yaml

from services.machinery import pki

if TYPE_CHECKING:
    from services.cluster.topology import Topology

MOUNT = "/etc/kybernetes"          # where every container finds its bundle (read-only)
CA = "ca.crt"
TOKENS = "tokens.csv"
# Token users of the API server's token port, for scripts (see README).
ADMIN_TOKEN_USER = pki.TokenUser("kyb-admin", groups=(pki.MASTERS,))
VIEWER_TOKEN_USER = pki.TokenUser("kyb-viewer", groups=("kyb:viewers",))
VIEWER_BINDING = "kyb-viewers"     # ClusterRoleBinding: group kyb:viewers -> ClusterRole view


def in_bundle(name: str) -> str:
    """The path of a bundle file inside the container."""
    return f"{MOUNT}/{name}"


@dataclasses.dataclass(frozen=True)
class Kubeconfig:
    """A client config file in a bundle: ``--kubeconfig MOUNT/<name>``."""

    name: str          # e.g. kubelet.conf
    cert: str          # stem of the client certificate in the bundle (<cert>.crt/.key)


@dataclasses.dataclass(frozen=True)
class Bundle:
    """What one container gets: ``files`` maps a file of the PKI directory
    to its name in the bundle; ``kubeconfigs`` are written into it."""

    container: str
    files: tuple[tuple[str, str], ...] = ()
    kubeconfigs: tuple[Kubeconfig, ...] = ()


def _pair(stem: str, as_: str | None = None) -> tuple[tuple[str, str], ...]:
    """A certificate and its key: ``<stem>.crt/.key`` as ``<as_>.crt/.key``."""
    as_ = as_ or stem
    return ((f"{stem}.crt", f"{as_}.crt"), (f"{stem}.key", f"{as_}.key"))


# The names the flags in topology use.
APISERVER = "apiserver"
APISERVER_ETCD_CLIENT = "apiserver-etcd-client"
APISERVER_KUBELET_CLIENT = "apiserver-kubelet-client"
ETCD_SERVER = "etcd-server"
SERVING = "serving"                 # scheduler / controller manager metrics certificate
CLIENT = "client"                   # their client certificate
KUBELET = "kubelet"                 # a node's kubelet serving certificate
KUBELET_CLIENT = "kubelet-client"   # a node's identity system:node:NAME
PROXY = "kube-proxy"                # kube-proxy's identity system:kube-proxy
PROXY_SERVING = "kube-proxy-serving"
COMPONENT_CONF = "kubeconfig.conf"
KUBELET_CONF = "kubelet.conf"
PROXY_CONF = "kube-proxy.conf"


def scheduler_serving_name() -> str:
    return "scheduler-serving"


def controller_manager_serving_name() -> str:
    return "controller-manager-serving"


def proxy_serving_name(node: str) -> str:
    return f"kube-proxy-serving-{node}"


def _hosts(name: str, ip: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (name, *pki.LOCAL_NAMES), (ip, *pki.LOCAL_IPS)


def serving_specs(topo: Topology) -> list[pki.CertSpec]:
    """The metrics serving certificates :func:`pki.plan_cluster` does not
    make: the scheduler's, the controller manager's, and each node's
    kube-proxy's (SANs: the container's name and address, and localhost)."""
    specs = []
    for c, stem, cn in ((topo.scheduler, scheduler_serving_name(), "kube-scheduler"),
                        (topo.controller_manager, controller_manager_serving_name(),
                         "kube-controller-manager")):
        dns, ips = _hosts(c.name, c.ip)
        specs.append(pki.CertSpec(stem, cn, dns_names=dns, ip_addresses=ips, server=True))
    for n in topo.nodes:
        dns, ips = _hosts(n.name, n.ip)
        specs.append(pki.CertSpec(proxy_serving_name(n.name), "kube-proxy", dns_names=dns,
                                  ip_addresses=ips, server=True))
    return specs


def bundles(topo: Topology) -> list[Bundle]:
    """Every container's bundle (pure)."""
    ca = ((f"{pki.CA_NAME}.crt", CA),)
    out = [Bundle(c.name, (*ca, *_pair(ETCD_SERVER))) for c in topo.etcd]
    out += [Bundle(c.name, (*ca, *_pair(APISERVER), *_pair(APISERVER_ETCD_CLIENT),
                            *_pair(APISERVER_KUBELET_CLIENT), (TOKENS, TOKENS)))
            for c in topo.apiservers]
    out.append(Bundle(topo.scheduler.name,
                      (*ca, *_pair("scheduler", CLIENT), *_pair(scheduler_serving_name(), SERVING)),
                      (Kubeconfig(COMPONENT_CONF, CLIENT),)))
    out.append(Bundle(topo.controller_manager.name,
                      (*ca, *_pair("controller-manager", CLIENT),
                       *_pair(controller_manager_serving_name(), SERVING)),
                      (Kubeconfig(COMPONENT_CONF, CLIENT),)))
    for n in topo.nodes:
        out.append(Bundle(n.name, (
            *ca, *_pair(pki.node_client_name(n.name), KUBELET_CLIENT),
            *_pair(pki.kubelet_serving_name(n.name), KUBELET), *_pair(PROXY),
            *_pair(proxy_serving_name(n.name), PROXY_SERVING)),
            (Kubeconfig(KUBELET_CONF, KUBELET_CLIENT), Kubeconfig(PROXY_CONF, PROXY))))
    return out


def kubeconfig_text(servers: Sequence[str], cert: str) -> str:
    """A client config whose paths are relative to its own directory."""
    return yaml.safe_dump({"server": ",".join(servers), "certificate-authority": CA,
                           "client-certificate": f"{cert}.crt", "client-key": f"{cert}.key"},
                          sort_keys=False)


# -- writing ------------------------------------------------------------------------------


def _write_if_changed(path: pathlib.Path, data: bytes, mode: int) -> bool:
    """Write ``data`` atomically with ``mode`` unless the file already
    holds it; whether it wrote."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    pki.write_file(path, data, mode)
    return True


def _mode(name: str) -> int:
    return 0o600 if name.endswith(".key") or name == TOKENS else 0o644


def write_pki(directory: str | os.PathLike[str], topo: Topology
              ) -> tuple[dict[str, str], dict[str, str]]:
    """The cluster CA, every component's certificate and the token file in
    ``directory`` (idempotent: tokens are kept too); (certificate name ->
    why it was (re)issued, token user -> token)."""
    d = pathlib.Path(directory)
    result = pki.write_cluster_pki(
        d, apiserver_sans=[h for c in topo.apiservers for h in (c.ip, c.name)],
        service_cidr=topo.options.service_cidr,
        etcd_sans=[h for c in topo.etcd for h in (c.ip, c.name)],
        nodes=[pki.NodeIdentity(n.name, (n.ip,)) for n in topo.nodes])
    issued = dict(result.issued)
    issued.update(pki.ensure_leaves(d, serving_specs(topo)))
    tokens = pki.write_token_file(d / TOKENS, [ADMIN_TOKEN_USER, VIEWER_TOKEN_USER])
    return issued, tokens


def digest(files: Mapping[str, bytes]) -> str:
    """What decides whether a container must be recreated for its bundle."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()[:16]


def bundle_files(pki_dir: pathlib.Path, bundle: Bundle, servers: Sequence[str]
                 ) -> dict[str, bytes]:
    """A bundle's file names and contents, read from the PKI directory."""
    files = {target: (pki_dir / source).read_bytes() for source, target in bundle.files}
    for conf in bundle.kubeconfigs:
        files[conf.name] = kubeconfig_text(servers, conf.cert).encode()
    return files


def write_bundle(directory: pathlib.Path, files: Mapping[str, bytes]) -> None:
    """Make ``directory`` hold exactly ``files`` (private: 0700)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, data in files.items():
        _write_if_changed(directory / name, data, _mode(name))
    for stale in directory.iterdir():
        if stale.name not in files:
            stale.unlink()


def write_bundles(pki_dir: str | os.PathLike[str], topo: Topology) -> dict[str, str]:
    """Every container's bundle under ``topo``'s bundle directory;
    container name -> digest of its bundle."""
    digests = {}
    root = pathlib.Path(topo.bundle_dir("x")).parent
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for b in bundles(topo):
        files = bundle_files(pathlib.Path(pki_dir), b, topo.api_addresses)
        write_bundle(pathlib.Path(topo.bundle_dir(b.container)), files)
        digests[b.container] = digest(files)
    return digests


# -- users --------------------------------------------------------------------------------


def user_config_text(servers: Sequence[str], ca_pem: bytes, pair: pki.CertKey) -> str:
    """A self-contained client config (certificates inline, base64) for
    handing to a user: nothing else to copy along."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")
    return yaml.safe_dump({"server": ",".join(servers),
                           "certificate-authority-data": b64(ca_pem),
                           "client-certificate-data": b64(pair.cert_pem),
                           "client-key-data": b64(pair.key_pem)}, sort_keys=False)


def issue_user(pki_dir: str | os.PathLike[str], name: str, groups: Sequence[str]
               ) -> tuple[bytes, pki.CertKey]:
    """A new client certificate CN=name O=groups from the cluster CA;
    (CA certificate PEM, the pair)."""
    d = pathlib.Path(pki_dir)
    if not (d / f"{pki.CA_NAME}.key").exists():
        raise ValueError(f"no cluster CA in {d} (is the cluster up?)")
    ca = pki.load(d, pki.CA_NAME)
    return ca.cert_pem, pki.issue(ca, pki.CertSpec(f"user-{name}", name, tuple(groups),
                                                  client=True))
