"""``iptables-restore --noflush`` input, and ``iptables-save`` output: pure.

With ``--noflush`` a restore leaves alone every chain it does not mention,
so the proxier can share the nat and filter tables with everyone else
(Docker, the kubelet, the administrator). A chain it does mention with a
``:CHAIN - [0:0]`` line is created, or emptied if it exists, and then
refilled by the ``-A`` lines that follow; ``-X`` deletes a chain. Each
table's section is one kernel transaction.

A *full* restore declares and refills every chain the proxier wants and
deletes every chain of its own it no longer wants. A *partial* one
(kube-proxy's since 1.27) writes only the chains whose rules differ from
what the last successful restore wrote, plus the deletions: with thousands
of services, one endpoint change then costs a few lines instead of tens of
thousands. Rules someone else changed are put back by the next full
restore, which the proxier runs every sync period.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from services.kube_proxy.rules import BUILTIN_CHAINS, TABLES, Jump, Ruleset, owns_chain

# iptables-nft 1.8.x keeps the chain names a restore mentions in a sorted
# linked list (nft-cache.c, cache_chain_list_insert), which makes a restore
# that declares N chains cost O(N^2): ~20 s for 20,000 chains. A command
# that names no chain switches that list off for the rest of the
# transaction; "-Z" (zero counters) is the only harmless one. Its cost: the
# table's rule counters are reset, which iptables-legacy's restore does on
# every restore anyway. Used only for sections declaring this many chains.
BULK_CHAINS = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class RestorePlan:
    """The text of one restore and what it does."""

    text: str
    written: Mapping[str, int]   # chains declared and refilled, per table
    deleted: Mapping[str, tuple[str, ...]]  # chains deleted, per table
    jumps: tuple[Jump, ...]      # jumps from built-in chains inserted

    @property
    def empty(self) -> bool:
        return not self.text


def render(desired: Ruleset, *, previous: Ruleset | None = None,
           existing: Mapping[str, Iterable[str]] | None = None,
           missing_jumps: Iterable[Jump] = (),
           bulk_workaround: bool = False) -> RestorePlan:
    """The restore that takes the kernel to ``desired``.

    ``previous``: what the last successful restore wrote; None for a full
    restore (every wanted chain written). ``existing``: chains believed to
    exist per table (from that restore, or from iptables-save at start);
    those the proxier owns and no longer wants are deleted. ``missing_jumps``
    are inserted at the top of their built-in chains. ``bulk_workaround``:
    apply :data:`BULK_CHAINS` (iptables-nft only).
    """
    existing = existing or {}
    missing = tuple(missing_jumps)
    out: list[str] = []
    written: dict[str, int] = {}
    deleted: dict[str, tuple[str, ...]] = {}
    for table in TABLES:
        want = desired.chains(table)
        before = previous.chains(table) if previous is not None else None
        if before is None:
            changed = list(want)
        else:
            changed = [chain for chain, rules in want.items() if before.get(chain) != rules]
        gone = sorted(c for c in set(existing.get(table, ())).difference(want)
                      if owns_chain(table, c))
        jumps = [j for j in missing if j.table == table]
        if not changed and not gone and not jumps:
            continue
        out.append(f"*{table}")
        if bulk_workaround and len(changed) + len(gone) >= BULK_CHAINS:
            out.append("-Z")
        out.extend(f":{chain} - [0:0]" for chain in changed)
        out.extend(f":{chain} - [0:0]" for chain in gone)
        for chain in changed:
            out.extend(want[chain])
        out.extend(f"-X {chain}" for chain in gone)
        out.extend(f"-I {j.chain} {j.spec}" for j in jumps)
        out.append("COMMIT")
        written[table] = len(changed)
        if gone:
            deleted[table] = tuple(gone)
    return RestorePlan("\n".join(out) + "\n" if out else "", written, deleted, missing)


# -- iptables-save ------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class TableDump:
    """One table of ``iptables-save`` output."""

    chains: list[str] = dataclasses.field(default_factory=list)
    rules: list[str] = dataclasses.field(default_factory=list)

    def rules_in(self, chain: str) -> list[str]:
        prefix = f"-A {chain} "
        return [r for r in self.rules if r.startswith(prefix)]


def parse_save(text: str) -> dict[str, TableDump]:
    """Tables, chains and ``-A`` lines of ``iptables-save`` output."""
    tables: dict[str, TableDump] = {}
    current: TableDump | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current = tables.setdefault(line[1:], TableDump())
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def _target(rule: str) -> str:
    words = rule.split()
    for i in range(len(words) - 1, 0, -1):
        if words[i - 1] in ("-j", "-g"):
            return words[i]
    return ""


def owned_chains(dump: Mapping[str, TableDump]) -> dict[str, list[str]]:
    """The chains in a save that the proxier owns, per table."""
    return {table: [c for c in tdump.chains if owns_chain(table, c)]
            for table, tdump in dump.items() if table in TABLES}


def missing_jumps(builtin_rules: Mapping[tuple[str, str], Iterable[str]],
                  jumps: Iterable[Jump]) -> list[Jump]:
    """The ``jumps`` not among the rules listed for their built-in chain
    (``builtin_rules[(table, chain)]``, as ``-A CHAIN ...`` lines)."""
    out = []
    for jump in jumps:
        rules = builtin_rules.get((jump.table, jump.chain), ())
        if not any(jump.matches(rule) for rule in rules):
            out.append(jump)
    return out


def render_cleanup(dump: Mapping[str, TableDump]) -> str:
    """The restore that removes everything the proxier owns, given the
    current ``iptables-save``: its jumps out of the built-in chains, then
    its chains (flushed, then deleted). A chain of ours that someone else's
    chain still jumps to is only flushed: deleting it would fail the whole
    transaction, and their rule is not ours to remove."""
    out: list[str] = []
    for table in TABLES:
        tdump = dump.get(table)
        if tdump is None:
            continue
        owned = [c for c in tdump.chains if owns_chain(table, c)]
        if not owned:
            continue
        owned_set = set(owned)
        builtin = set(BUILTIN_CHAINS[table])
        unlink: list[str] = []
        pinned: set[str] = set()
        for rule in tdump.rules:
            chain = rule.split()[1]
            target = _target(rule)
            if target not in owned_set or chain in owned_set:
                continue
            if chain in builtin:
                unlink.append("-D" + rule[2:])
            else:
                pinned.add(target)
        out.append(f"*{table}")
        out.extend(f":{chain} - [0:0]" for chain in owned)
        out.extend(unlink)
        out.extend(f"-X {chain}" for chain in owned if chain not in pinned)
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


__all__ = [
    "BULK_CHAINS", "RestorePlan", "TableDump", "missing_jumps", "owned_chains",
    "parse_save", "render", "render_cleanup",
]
