"""Routes on the host and the partition rules inside a node.

Pure parts: :func:`parse_routes` reads ``ip -4 route show``;
:func:`route_changes` says which ``ip route`` commands take the current
routes to the desired ones; :func:`partition_commands` and
:func:`heal_commands` are the iptables commands that cut a node off the
control plane and reconnect it. The rest runs them.

The host's routes are "ours" when their gateway lies in the cluster's
Docker subnet: nothing else routes through those addresses, so ``down``
finds every route it made without any state file.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Sequence

from services.cluster.topology import Route

PARTITION_CHAIN = "KYB-PARTITION"


class NetworkError(Exception):
    """An ip or iptables command failed."""


def parse_routes(text: str) -> list[Route]:
    """``ip -4 route show`` → the routes that have a gateway (``via``)."""
    routes = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and "via" in words:
            dest = words[0]
            if dest == "default":
                dest = "0.0.0.0/0"
            elif "/" not in dest:
                dest += "/32"
            routes.append(Route(dest, words[words.index("via") + 1]))
    return routes


def owned(routes: Iterable[Route], subnet: str) -> list[Route]:
    """The routes whose gateway lies in ``subnet``."""
    net = ipaddress.ip_network(subnet)
    out = []
    for r in routes:
        try:
            if ipaddress.ip_address(r.via) in net:
                out.append(r)
        except ValueError:
            continue
    return out


def route_changes(current: Iterable[Route], desired: Iterable[Route]) -> list[list[str]]:
    """``ip route`` argument lists that turn ``current`` (the routes we own
    now) into ``desired``: replace what is missing or points elsewhere,
    delete what is no longer wanted. Empty when nothing changes."""
    have = {r.destination: r.via for r in current}
    want = {r.destination: r.via for r in desired}
    cmds = [["route", "replace", dest, "via", via]
            for dest, via in sorted(want.items()) if have.get(dest) != via]
    cmds += [["route", "del", dest, "via", via]
             for dest, via in sorted(have.items()) if dest not in want]
    return cmds


def partition_script(api_ips: Sequence[str]) -> str:
    """A shell script (run inside the node) that drops every packet between
    the node and the API servers, in a chain of its own so that healing
    removes exactly that. Pods' traffic (FORWARD) is untouched, so they keep
    serving. Idempotent: a second run leaves the same rules."""
    lines = ["set -e", f"iptables -w -N {PARTITION_CHAIN} 2>/dev/null || true",
             f"iptables -w -F {PARTITION_CHAIN}"]
    for ip in api_ips:
        ipaddress.ip_address(ip)  # never put anything but an address into the script
        lines.append(f"iptables -w -A {PARTITION_CHAIN} -d {ip} -j DROP")
        lines.append(f"iptables -w -A {PARTITION_CHAIN} -s {ip} -j DROP")
    for chain in ("OUTPUT", "INPUT"):
        lines.append(f"iptables -w -C {chain} -j {PARTITION_CHAIN} 2>/dev/null || "
                     f"iptables -w -I {chain} 1 -j {PARTITION_CHAIN}")
    return "\n".join(lines) + "\n"


def heal_script() -> str:
    """Undo :func:`partition_script`; harmless on a node that is not cut off."""
    lines = [f"while iptables -w -D {chain} -j {PARTITION_CHAIN} 2>/dev/null; do :; done"
             for chain in ("OUTPUT", "INPUT")]
    lines += [f"iptables -w -F {PARTITION_CHAIN} 2>/dev/null || true",
              f"iptables -w -X {PARTITION_CHAIN} 2>/dev/null || true"]
    return "\n".join(lines) + "\n"


def is_partitioned(iptables_save: str) -> bool:
    """Whether ``iptables -S`` output shows the partition chain in use."""
    return any(line.split()[:1] == ["-A"] and line.endswith(f"-j {PARTITION_CHAIN}")
               for line in iptables_save.splitlines())


# -- the host -----------------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> str:
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except FileNotFoundError:
        raise NetworkError("the ip command is missing (apt-get install iproute2)") from None
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def host_routes(subnet: str) -> list[Route]:
    """The host's routes through addresses in ``subnet``."""
    return owned(parse_routes(_ip("-4", "route", "show")), subnet)


def sync_host_routes(subnet: str, desired: Iterable[Route]) -> list[list[str]]:
    """Make the host's routes through ``subnet`` exactly ``desired``; the
    commands it ran."""
    cmds = route_changes(host_routes(subnet), desired)
    for cmd in cmds:
        _ip(*cmd, check=cmd[1] != "del")  # a route may vanish with its interface
    return cmds
