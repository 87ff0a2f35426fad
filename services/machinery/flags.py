"""Flag types and flag groups every daemon and the CLI share, so that
``--leader-elect-lease-duration 15s`` means the same everywhere."""

from __future__ import annotations

import argparse
import re

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
