"""The cluster's public-key infrastructure: one CA and a certificate per
component, made with the ``cryptography`` package (no hand-rolled crypto).

Keys are ECDSA P-256: small, and fast enough to issue a cluster's whole set
in well under a second. The identities follow Kubernetes (kubeadm): the
certificate's CN is the user and its O entries are the groups, so
``system:node:N`` in ``system:nodes`` is node N's kubelet.

:func:`write_cluster_pki` is idempotent, so ``make cluster`` can call it on
every ``up``: an existing CA is kept (replacing it would lock out every
certificate already handed out), and a leaf is re-issued only when it is
missing, expires within :data:`RENEW_BEFORE`, no longer matches what it
should say (subject, SANs, usage), or was not signed by the current CA.
:func:`plan_cluster` and :func:`reissue_reason` are the pure core of that.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import ipaddress
import os
import pathlib
import secrets
from collections.abc import Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
# Clocks of the machines in a cluster differ a little: a certificate made
# "now" must already be valid on a peer whose clock is slightly behind.
BACKDATE = datetime.timedelta(minutes=5)

CA_NAME = "ca"
MASTERS = "system:masters"
NODES = "system:nodes"
APISERVER_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                           "kubernetes.default.svc.cluster.local")
LOCAL_NAMES = ("localhost",)
LOCAL_IPS = ("127.0.0.1",)

PrivateKey = ec.EllipticCurvePrivateKey


@dataclasses.dataclass(frozen=True)
class CertKey:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_to_pem(self.key)


@dataclasses.dataclass(frozen=True)
class CertSpec:
    """What a leaf certificate must say. ``name`` is its file stem
    (``<name>.crt``, ``<name>.key``)."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    client: bool = False
    server: bool = False

    def __post_init__(self) -> None:
        if not (self.client or self.server):
            raise ValueError(f"certificate {self.name!r} must be for client or server use")
        for ip in self.ip_addresses:
            ipaddress.ip_address(ip)  # raises ValueError naming the bad address


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str = "kybernetes-ca", *, not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> CertKey:
    """A self-signed CA (basicConstraints CA:TRUE, keyCertSign, cRLSign)."""
    key = new_key()
    start = not_before or _now() - BACKDATE
    end = not_after or start + CA_VALIDITY
    name = _name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert, key)


def issue(ca: CertKey, spec: CertSpec, *, not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None, key: PrivateKey | None = None) -> CertKey:
    """A leaf certificate for ``spec`` signed by ``ca`` (a fresh key unless
    one is given). ``not_before``/``not_after`` default to now (backdated a
    few minutes) and one year on; tests pass them to make expired ones."""
    key = key or new_key()
    start = not_before or _now() - BACKDATE
    end = not_after or start + LEAF_VALIDITY
    usages = []
    if spec.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if spec.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec.common_name, spec.organizations))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return CertKey(builder.sign(ca.key, hashes.SHA256()), key)


# -- reading what a certificate says -------------------------------------------------------


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def organizations(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME))


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) of the subjectAltName extension."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (set(ext.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)})


def _usages(cert: x509.Certificate) -> tuple[bool, bool]:
    """(client, server) extended key usages."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False, False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku, ExtendedKeyUsageOID.SERVER_AUTH in eku


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def reissue_reason(cert: x509.Certificate | None, spec: CertSpec, ca: x509.Certificate,
                   now: datetime.datetime | None = None) -> str:
    """Why the leaf ``cert`` must be issued again for ``spec`` ("" when it
    is fine as it is)."""
    if cert is None:
        return "missing"
    now = now or _now()
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return "expires soon"
    if not signed_by(cert, ca):
        return "not signed by the current CA"
    if common_name(cert) != spec.common_name or \
            sorted(organizations(cert)) != sorted(spec.organizations):
        return "subject changed"
    dns, ips = sans(cert)
    wanted_ips = {str(ipaddress.ip_address(i)) for i in spec.ip_addresses}
    if dns != set(spec.dns_names) or ips != wanted_ips:
        return "SANs changed"
    if _usages(cert) != (spec.client, spec.server):
        return "usage changed"
    return ""


# -- PEM files ------------------------------------------------------------------------------


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_cert(path: str | os.PathLike[str]) -> x509.Certificate:
    """The first certificate in a PEM file; ValueError naming the file."""
    try:
        return x509.load_pem_x509_certificate(pathlib.Path(path).read_bytes())
    except OSError as err:
        raise ValueError(f"cannot read certificate {path}: {err.strerror or err}") from None
    except ValueError:
        raise ValueError(f"{path} is not a PEM certificate") from None


def load_key(path: str | os.PathLike[str]) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pathlib.Path(path).read_bytes(), None)
    except OSError as err:
        raise ValueError(f"cannot read private key {path}: {err.strerror or err}") from None
    except (ValueError, TypeError):
        raise ValueError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an ECDSA private key")
    return key


def write_file(path: pathlib.Path, data: bytes, mode: int) -> None:
    """Write atomically (a reader never sees half a key) with ``mode``."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def save(pair: CertKey, directory: str | os.PathLike[str], name: str) -> tuple[pathlib.Path,
                                                                             pathlib.Path]:
    """Write ``<name>.crt`` (0644) and ``<name>.key`` (0600) into ``directory``."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    crt, key = d / f"{name}.crt", d / f"{name}.key"
    write_file(key, pair.key_pem, 0o600)
    write_file(crt, pair.cert_pem, 0o644)
    return crt, key


def load(directory: str | os.PathLike[str], name: str) -> CertKey:
    d = pathlib.Path(directory)
    return CertKey(load_cert(d / f"{name}.crt"), load_key(d / f"{name}.key"))


# -- a whole cluster ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NodeIdentity:
    """A node: its name and the addresses its kubelet is reached at."""

    name: str
    ips: tuple[str, ...] = ()


def node_client_name(node: str) -> str:
    return f"node-{node}"


def kubelet_serving_name(node: str) -> str:
    return f"kubelet-{node}"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _split_hosts(hosts: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Names and addresses apart (each SAN goes in its own type)."""
    dns, ips = [], []
    for h in hosts:
        try:
            ips.append(str(ipaddress.ip_address(h)))
        except ValueError:
            dns.append(h)
    return _unique(dns), _unique(ips)


def service_ip(service_cidr: str) -> str:
    """The first address of the service range: the ``kubernetes`` Service's ClusterIP."""
    net = ipaddress.ip_network(service_cidr)
    return str(net.network_address + 1)


def plan_cluster(*, apiserver_sans: Iterable[str] = (), service_cidr: str = "10.96.0.0/12",
                 etcd_sans: Iterable[str] = (),
                 nodes: Iterable[NodeIdentity] = ()) -> list[CertSpec]:
    """Every leaf certificate a cluster needs (pure)."""
    api_dns, api_ips = _split_hosts([*APISERVER_SERVICE_NAMES, *LOCAL_NAMES, *apiserver_sans,
                                     *LOCAL_IPS, service_ip(service_cidr)])
    etcd_dns, etcd_ips = _split_hosts([*LOCAL_NAMES, *etcd_sans, *LOCAL_IPS])
    specs = [
        CertSpec("apiserver", "kube-apiserver", dns_names=api_dns, ip_addresses=api_ips,
                 server=True),
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", (MASTERS,),
                 client=True),
        CertSpec("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True),
        # etcd members also use it towards each other (peer), hence both usages.
        CertSpec("etcd-server", "kube-etcd", dns_names=etcd_dns, ip_addresses=etcd_ips,
                 server=True, client=True),
        CertSpec("admin", "kubernetes-admin", (MASTERS,), client=True),
        CertSpec("scheduler", "system:kube-scheduler", client=True),
        CertSpec("controller-manager", "system:kube-controller-manager", client=True),
        CertSpec("kube-proxy", "system:kube-proxy", client=True),
        CertSpec("prometheus", "system:prometheus", ("system:monitoring",), client=True),
    ]
    for node in nodes:
        dns, ips = _split_hosts([node.name, *node.ips])
        specs.append(CertSpec(node_client_name(node.name), f"system:node:{node.name}", (NODES,),
                              client=True))
        specs.append(CertSpec(kubelet_serving_name(node.name), f"system:node:{node.name}",
                              (NODES,), dns_names=dns, ip_addresses=ips, server=True))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError("node names must be unique")
    return specs


@dataclasses.dataclass(frozen=True)
class ClusterPki:
    """Where a cluster's files are, and what :func:`write_cluster_pki` did."""

    directory: pathlib.Path
    issued: dict[str, str]   # name -> why it was (re)issued; absent: kept

    @property
    def ca_file(self) -> pathlib.Path:
        return self.directory / f"{CA_NAME}.crt"

    def cert_file(self, name: str) -> pathlib.Path:
        return self.directory / f"{name}.crt"

    def key_file(self, name: str) -> pathlib.Path:
        return self.directory / f"{name}.key"


def _try_load_cert(path: pathlib.Path) -> x509.Certificate | None:
    try:
        return load_cert(path)
    except ValueError:
        return None


def _key_matches(path: pathlib.Path, cert: x509.Certificate) -> bool:
    try:
        key = load_key(path)
    except ValueError:
        return False
    return key.public_key() == cert.public_key()


def ensure_ca(directory: str | os.PathLike[str], common_name_: str = "kybernetes-ca"
              ) -> tuple[CertKey, bool]:
    """The CA in ``directory`` (made when missing or unusable); (CA, made)."""
    d = pathlib.Path(directory)
    crt, key = d / f"{CA_NAME}.crt", d / f"{CA_NAME}.key"
    if crt.exists() or key.exists():
        pair = load(d, CA_NAME)  # a broken CA is an error, never silently replaced
        if pair.key.public_key() != pair.cert.public_key():
            raise ValueError(f"{key} is not the key of {crt}")
        if pair.cert.not_valid_after_utc - _now() < RENEW_BEFORE:
            until = pair.cert.not_valid_after_utc
            raise ValueError(f"the cluster CA {crt} expires {until:%Y-%m-%d}; remove the "
                             "directory to start a new one")
        return pair, False
    pair = create_ca(common_name_)
    save(pair, d, CA_NAME)
    return pair, True


def write_cluster_pki(directory: str | os.PathLike[str], *, apiserver_sans: Iterable[str] = (),
                      service_cidr: str = "10.96.0.0/12", etcd_sans: Iterable[str] = (),
                      nodes: Iterable[NodeIdentity] | Mapping[str, Sequence[str]] = (),
                      now: datetime.datetime | None = None) -> ClusterPki:
    """Make (or bring up to date) a cluster's CA and certificates in
    ``directory``; ``nodes`` are NodeIdentity or a {name: [ips]} map."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    if isinstance(nodes, Mapping):
        nodes = [NodeIdentity(n, tuple(ips)) for n, ips in nodes.items()]
    issued = ensure_leaves(d, plan_cluster(apiserver_sans=apiserver_sans,
                                           service_cidr=service_cidr, etcd_sans=etcd_sans,
                                           nodes=nodes), now)
    return ClusterPki(d, issued)


def ensure_leaves(directory: str | os.PathLike[str], specs: Iterable[CertSpec],
                  now: datetime.datetime | None = None) -> dict[str, str]:
    """Issue each of ``specs`` with the CA in ``directory`` (made if
    missing) unless a valid one is there: missing, expiring, no longer
    matching its spec, or with a key that is not its own are re-issued.
    Returns name -> why it was (re)issued."""
    d = pathlib.Path(directory)
    ca, _ = ensure_ca(d)
    issued = {}
    for spec in specs:
        current = _try_load_cert(d / f"{spec.name}.crt")
        reason = reissue_reason(current, spec, ca.cert, now)
        if not reason and current is not None and \
                not _key_matches(d / f"{spec.name}.key", current):
            reason = "key missing or not the certificate's"
        if reason:
            save(issue(ca, spec), d, spec.name)
            issued[spec.name] = reason
    return issued


# -- static bearer tokens -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenUser:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()


def new_token() -> str:
    return secrets.token_hex(24)


def _read_tokens(path: pathlib.Path) -> dict[str, str]:
    """user -> token of an existing file (to keep them across runs)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    out = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[0] and not row[0].startswith("#"):
            out.setdefault(row[1], row[0])
    return out


def write_token_file(path: str | os.PathLike[str], users: Iterable[TokenUser]) -> dict[str, str]:
    """Write a Kubernetes static token file (``token,user,uid,"g1,g2"``,
    mode 0600) for ``users``; returns user -> token. Users already in the
    file keep their token, so re-running does not break their scripts."""
    p = pathlib.Path(path)
    existing = _read_tokens(p)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    tokens = {}
    for user in users:
        token = existing.get(user.name) or new_token()
        tokens[user.name] = token
        row = [token, user.name, user.uid or user.name]
        if user.groups:
            row.append(",".join(user.groups))
        writer.writerow(row)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_file(p, out.getvalue().encode(), 0o600)
    return tokens


__all__ = [
    "CertKey", "CertSpec", "ClusterPki", "NodeIdentity", "TokenUser", "create_ca", "issue",
    "load", "load_cert", "load_key", "save", "plan_cluster", "reissue_reason",
    "write_cluster_pki", "write_token_file", "common_name", "organizations", "sans",
    "node_client_name", "kubelet_serving_name", "service_ip", "ensure_ca",
]
