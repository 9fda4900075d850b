"""The ssh_config to honour, cut per host down to the blocks that can apply to it.

asyncssh parses the whole ssh_config for every connection. A fleet's config has a `Host` block
per host, so 200 connections would parse 200 blocks 200 times (about 6 ms of CPU each). Instead
we split the file into blocks once and give asyncssh, per host, a file holding only the global
lines and the `Host` blocks whose patterns match that host: what asyncssh would have applied
anyway. A config whose meaning can't be decided that simply (Match, Include, ProxyJump,
ProxyCommand, hostname canonicalisation) is passed through whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

from asyncssh.pattern import WildcardPatternList

KEYWORD = re.compile(r"^\s*([A-Za-z]+)\s*(?:=\s*|\s+)?(.*)$")
# Keywords after which the blocks that apply depend on more than the host's name.
UNFILTERABLE = {
    "match",
    "include",
    "proxyjump",
    "proxycommand",
    "canonicalizehostname",
    "canonicaldomains",
}


WILDCARDS = frozenset("*?!")
PREFIX = "shipyard-ssh-config-"


@dataclass(frozen=True)
class _Block:
    patterns: WildcardPatternList | None  # None: lines before the first Host, always kept
    text: str


class SshConfig:
    """One ssh_config file (or none), handing out per-host config paths for asyncssh."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._blocks: list[_Block] | None = None
        # Host lines that name hosts literally are looked up, not matched: a fleet's config has
        # one per host, and matching every one of them for every host costs O(hosts squared).
        self._by_name: dict[str, list[int]] = {}
        self._matched: list[int] = []
        self._filterable = False
        self._dir: Path | None = None
        self._written: dict[str, str] = {}

    def paths_for(self, alias: str) -> list[str]:
        """The config file(s) asyncssh should read to connect to `alias`."""
        if self.path is None:
            return []
        if self._blocks is None:
            self._load(self.path)
        if not self._filterable:
            return [str(self.path)]
        blocks = self._blocks or []
        chosen = self._by_name.get(alias, []) + [
            index
            for index in self._matched
            if (pattern := blocks[index].patterns) is None or pattern.matches(alias)
        ]
        return [self._write("".join(blocks[index].text for index in sorted(chosen)))]

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._written.clear()

    def _load(self, path: Path) -> None:
        blocks: list[_Block] = []
        head: list[str] = []  # the Host line's patterns
        lines: list[str] = []
        filterable = True
        for line in path.read_text().splitlines(keepends=True):
            found = KEYWORD.match(line)
            keyword = found.group(1).lower() if found and not line.lstrip().startswith("#") else ""
            if keyword in UNFILTERABLE:
                filterable = False
            if keyword == "host" and found:
                blocks.append(self._block(blocks, head, lines))
                head, lines = shlex.split(found.group(2)), []
            lines.append(line if line.endswith("\n") else line + "\n")
        blocks.append(self._block(blocks, head, lines))
        self._blocks, self._filterable = blocks, filterable

    def _block(self, blocks: list[_Block], head: list[str], lines: list[str]) -> _Block:
        index = len(blocks)
        literal = bool(head) and not any(WILDCARDS & set(name) for name in head)
        if literal:
            for name in head:
                self._by_name.setdefault(name, []).append(index)
        else:
            self._matched.append(index)
        patterns = WildcardPatternList(",".join(head)) if head else None
        return _Block(patterns, "".join(lines))

    def _write(self, text: str) -> str:
        known = self._written.get(text)
        if known is not None:
            return known
        if self._dir is None:
            # In memory where we can: a file on a busy disk costs milliseconds to create.
            memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            parent = Path(memory or tempfile.gettempdir())
            _sweep(parent)
            self._dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        path = self._dir / hashlib.sha256(text.encode()).hexdigest()[:16]
        path.write_text(text)
        self._written[text] = str(path)
        return str(path)


def _sweep(parent: Path) -> None:
    """Remove the per-host configs of Shipyard processes that died without cleaning up."""
    for stale in parent.glob(f"{PREFIX}*-*"):
        pid = stale.name.removeprefix(PREFIX).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
