"""What a service has on a host: its links and releases, and which releases to prune."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shipyard.commands.release import MARKER, Color, ReleaseLayout, revision_of_link
from shipyard.commands.script import Script, UnsafeValue, check_name, quote, script


@dataclass(frozen=True)
class ReleaseLinks:
    """The revisions the service's links point at (None: no such link)."""

    current: str | None = None
    previous: str | None = None
    blue: str | None = None
    green: str | None = None

    def slot(self, color: Color) -> str | None:
        return self.blue if color == "blue" else self.green

    @property
    def protected(self) -> frozenset[str]:
        """Revisions that must stay on disk: live, rollback target, and both slots."""
        links = (self.current, self.previous, self.blue, self.green)
        return frozenset(link for link in links if link)


@dataclass(frozen=True)
class ReleaseEntry:
    """One directory under releases/: complete (marker present) or not, and when it was made."""

    revision: str
    complete: bool
    mtime: int


_LINK_NAMES = ("current", "previous", "blue", "green")


def links_script(layout: ReleaseLayout) -> Script:
    """Prints one `name target` line for each of current, previous and the two slots that exists
    (`slots/blue ../releases/x`): one `find`, however many links there are."""
    return script(
        [
            f"cd -- {quote(layout.service_dir)} 2>/dev/null || exit 0",
            "find current previous slots/blue slots/green -maxdepth 0 -type l -printf '%p %l\\n' "
            "2>/dev/null || true",
        ]
    )


def parse_links(stdout: str) -> ReleaseLinks:
    """The revisions `links_script` found (names with or without `slots/`)."""
    found: dict[str, str | None] = {}
    for line in stdout.splitlines():
        name, _, target = line.partition(" ")
        name = name.removeprefix("slots/")
        if name in _LINK_NAMES:
            found[name] = revision_of_link(target)
    return ReleaseLinks(**found)


def list_script(layout: ReleaseLayout) -> Script:
    """Prints `complete|partial <mtime> <revision>` for each release directory (none: no output)."""
    return script(
        [
            f"cd -- {quote(layout.releases)} 2>/dev/null || exit 0",
            "for d in */; do",
            '  [ -d "$d" ] || continue',
            "  name=${d%/}",
            f'  if [ -f "$name/{MARKER}" ]; then',
            f'    printf \'complete %s %s\\n\' "$(stat -c %Y -- "$name/{MARKER}")" "$name"',
            "  else",
            '    printf \'partial %s %s\\n\' "$(stat -c %Y -- "$name")" "$name"',
            "  fi",
            "done",
        ]
    )


def parse_listing(stdout: str) -> tuple[ReleaseEntry, ...]:
    """The releases `list_script` printed, newest first; lines it can't read are skipped."""
    entries = []
    for line in stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] in {"complete", "partial"} and parts[1].isdigit():
            entries.append(ReleaseEntry(parts[2], parts[0] == "complete", int(parts[1])))
    return tuple(sorted(entries, key=lambda e: (e.mtime, e.revision), reverse=True))


def plan_prune(
    entries: Iterable[ReleaseEntry],
    *,
    keep: int,
    links: ReleaseLinks,
    also_keep: Iterable[str] = (),
) -> tuple[str, ...]:
    """Revisions to remove, oldest first: all but the `keep` newest complete releases.

    Never the linked ones (current, previous, slots) nor `also_keep` (the one being deployed);
    incomplete leftovers go too.
    """
    if keep < 1:
        raise UnsafeValue(f"keep must be at least 1, not {keep}")
    spared = links.protected | set(also_keep)
    ordered = sorted(entries, key=lambda e: (e.mtime, e.revision), reverse=True)
    newest = [e.revision for e in ordered if e.complete][:keep]
    doomed = [e.revision for e in ordered if e.revision not in spared and e.revision not in newest]
    return tuple(reversed(doomed))


def prune_script(layout: ReleaseLayout, revisions: Iterable[str]) -> Script:
    """Removes `revisions`, re-reading the links first so a linked release is never removed.

    Prints each revision it removed.
    """
    names = " ".join(quote(check_name(r, "revision")) for r in revisions)
    if not names:
        return script(["true"])
    return script(
        [
            f"cd -- {quote(layout.service_dir)}",
            'spared=" "',
            "for link in current previous slots/blue slots/green; do",
            '  target=$(readlink -- "$link" 2>/dev/null || true)',
            '  spared="$spared${target##*/} "',
            "done",
            f"for name in {names}; do",
            '  case "$spared" in *" $name "*) continue ;; esac',
            '  rm -rf -- "releases/$name"',
            "  printf '%s\\n' \"$name\"",
            "done",
        ]
    )
