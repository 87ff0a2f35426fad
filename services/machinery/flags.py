"""Flag types and flag groups every daemon and the CLI share, so that
``--leader-elect-lease-duration 15s`` means the same everywhere."""

from __future__ import annotations

import argparse
import re

from services.machinery.config import ClientConfig
from services.machinery.config import load as load_client_config
from services.machinery.tlsconfig import ServingCert

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration(text: str) -> float:
    """Seconds, as a plain number or a Kubernetes (Go) duration: "15s",
    "1m30s", "500ms", "1h"."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 15s, 1m30s, 500ms)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r} (true or false)")


def add_leader_election(parser: argparse.ArgumentParser, what: str, lease_name: str,
                        lease_namespace: str = "kube-system") -> None:
    """The --leader-elect* flags of kube-scheduler and kube-controller-manager."""
    parser.add_argument("--leader-elect", type=boolean, default=True, nargs="?", const=True,
                        help=f"elect a leader through a Lease before {what} (run two or more "
                             "replicas with this on)")
    parser.add_argument("--leader-elect-lease-duration", type=duration, default=15.0,
                        help="how long a standby waits after the last renewal it saw before "
                             "taking over (seconds or a duration like 15s)")
    parser.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0,
                        help="how long the leader keeps trying to renew before it stops leading")
    parser.add_argument("--leader-elect-retry-period", type=duration, default=2.0,
                        help="time between attempts to acquire or renew the Lease")
    parser.add_argument("--leader-elect-resource-name", default=lease_name,
                        help="name of the Lease used for leader election")
    parser.add_argument("--leader-elect-resource-namespace", default=lease_namespace,
                        help="namespace of the Lease used for leader election")


def check_leader_election(opts: argparse.Namespace) -> None:
    """LeaderElector's own rules, reported with the flag names."""
    if not opts.leader_elect:
        return
    if opts.leader_elect_lease_duration <= opts.leader_elect_renew_deadline:
        raise ValueError("--leader-elect-lease-duration must be greater than "
                         "--leader-elect-renew-deadline")
    if opts.leader_elect_renew_deadline <= 1.2 * opts.leader_elect_retry_period:
        raise ValueError("--leader-elect-renew-deadline must be greater than 1.2 x "
                         "--leader-elect-retry-period")


# -- connecting to the API server, and serving -------------------------------------------------


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """--server and --kubeconfig: where the API server is and who we are to it."""
    parser.add_argument("--server", default=None,
                        help="API server HOST:PORT[,HOST:PORT...] (default: $KYB_SERVER, the "
                             "client config file, else localhost:6443)")
    parser.add_argument("--kubeconfig", default=None,
                        help="client config file with the API server's CA and this "
                             "component's certificate and key (default: $KYB_CONFIG or "
                             "~/.kyb/config if it exists; without a CA: plaintext)")


def client_config(opts: argparse.Namespace) -> ClientConfig:
    """The ClientConfig --server/--kubeconfig select (ValueError, one line)."""
    return load_client_config(opts.server, opts.kubeconfig)


def add_serving_flags(parser: argparse.ArgumentParser, what: str = "/metrics") -> None:
    """--tls-cert-file, --tls-private-key-file, --client-ca-file (Kubernetes' names)."""
    parser.add_argument("--tls-cert-file", default=None,
                        help=f"serve {what} over TLS with this certificate (PEM; default: "
                             "plaintext)")
    parser.add_argument("--tls-private-key-file", default=None,
                        help="the private key of --tls-cert-file (PEM)")
    parser.add_argument("--client-ca-file", default=None,
                        help="CA whose client certificates are accepted (default: the client "
                             "config's certificate-authority)")


def serving_cert(opts: argparse.Namespace,
                 client: ClientConfig | None = None) -> ServingCert | None:
    """The ServingCert the serving flags give, or None (plaintext). The
    client CA defaults to the CA of the client config ``client``."""
    cert, key = opts.tls_cert_file, opts.tls_private_key_file
    if not cert and not key:
        if opts.client_ca_file:
            raise ValueError("--client-ca-file needs --tls-cert-file and --tls-private-key-file")
        return None
    if not (cert and key):
        raise ValueError("--tls-cert-file and --tls-private-key-file go together")
    fallback = client.ca if client is not None and client.ca else b""
    serving = ServingCert.load(cert, key, opts.client_ca_file, client_ca=fallback)
    if not serving.client_ca:
        raise ValueError("--tls-cert-file needs --client-ca-file (or a client config with a "
                         "certificate-authority) to verify clients")
    return serving
