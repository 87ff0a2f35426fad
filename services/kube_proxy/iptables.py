"""Running iptables-restore and iptables-save: the thin shell around the kernel.

Every call is a subprocess with a deadline, optionally inside another
network namespace (``nsenter --net=FILE``): a named one, as ``ip netns add``
makes them for tests and the benchmark, or a namespace file such as
``/proc/PID/ns/net``. Failures become :class:`IptablesError` with one
line saying what iptables said; failed restores are counted in
kubeproxy_iptables_restore_failures_total.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from services.kube_proxy import metrics

log = logging.getLogger(__name__)

NFT = "nf_tables"
LEGACY = "legacy"


class IptablesError(Exception):
    """An iptables command failed or timed out (the message is one line)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    stdout: str
    seconds: float


class Iptables:
    """iptables commands, in ``netns`` if given.

    ``backend``: "" for the system's default ``iptables`` (the alternatives
    link), or ``"nft"`` / ``"legacy"`` for iptables-nft / iptables-legacy.
    ``wait``: seconds to wait for the xtables lock (``-w``).
    """

    def __init__(self, netns: str = "", *, backend: str = "", timeout: float = 60.0,
                 wait: int = 5):
        if backend not in ("", "nft", "legacy"):
            raise ValueError(f"unknown iptables backend {backend!r} (use nft or legacy)")
        self.netns = netns
        self.backend = backend
        self.timeout = timeout
        self.wait = wait
        self._mode: str | None = None

    def __repr__(self) -> str:
        where = f" in netns {self.netns}" if self.netns else ""
        return f"<Iptables{' ' + self.backend if self.backend else ''}{where}>"

    def _cmd(self, tool: str) -> list[str]:
        """``tool`` is iptables, iptables-save or iptables-restore."""
        name = tool.replace("iptables", f"iptables-{self.backend}", 1) if self.backend else tool
        if not self.netns:
            return [name]
        # A name is one `ip netns add` made: its file is /run/netns/NAME.
        # nsenter enters just the network namespace; `ip netns exec` also
        # sets up a mount namespace, which costs ~4x more per call.
        path = self.netns if "/" in self.netns else f"/run/netns/{self.netns}"
        return ["nsenter", f"--net={path}", "--", name]

    async def _run(self, argv: list[str], stdin: str | None = None,
                   timeout: float | None = None) -> RunResult:
        timeout = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else
                asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as err:
            raise IptablesError(f"cannot run {argv[0]}: {err.strerror or err}") from err
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise IptablesError(f"{_tool(argv)} timed out after {timeout:g}s") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            raise IptablesError(f"{_tool(argv)} failed (exit {proc.returncode}): "
                                f"{_summary(err.decode(errors='replace'))}")
        return RunResult(out.decode(errors="replace"), time.monotonic() - started)

    async def restore(self, text: str, *, timeout: float | None = None) -> float:
        """Apply ``text`` with ``iptables-restore --noflush``; returns seconds taken."""
        try:
            result = await self._run([*self._cmd("iptables-restore"), "-w", str(self.wait),
                                      "--noflush"], stdin=text, timeout=timeout)
        except IptablesError:
            metrics.RESTORE_FAILURES.inc()
            raise
        return result.seconds

    async def save(self, table: str | None = None) -> str:
        """``iptables-save`` of one table (or all)."""
        argv = self._cmd("iptables-save")
        if table:
            argv += ["-t", table]
        return (await self._run(argv)).stdout

    async def list_rules(self, table: str, chain: str) -> list[str]:
        """The ``-A`` lines of one chain (``iptables -S``): cheap even when
        the table is huge, unlike a save."""
        result = await self._run([*self._cmd("iptables"), "-w", str(self.wait), "-t", table,
                                  "-S", chain])
        return [line for line in result.stdout.splitlines() if line.startswith("-A ")]

    async def mode(self) -> str:
        """:data:`NFT` or :data:`LEGACY`: what the iptables in use talks to."""
        if self._mode is None:
            out = (await self._run([*self._cmd("iptables"), "--version"])).stdout
            self._mode = LEGACY if "legacy" in out else NFT
        return self._mode


def _tool(argv: list[str]) -> str:
    for word in argv:
        if word.startswith("iptables"):
            return word
    return argv[0]


def _summary(stderr: str) -> str:
    """iptables' error output in one line, without its usage hint."""
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.startswith("Try `")]
    return "; ".join(lines)[:500] or "no error output"


__all__ = ["Iptables", "IptablesError", "LEGACY", "NFT", "RunResult"]
