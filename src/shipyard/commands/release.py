"""Where releases live on a host, and the scripts that prepare, install, mark and switch them.

Layout of one service on a host::

    <root>/<service>/releases/<revision>/   one immutable release; `.shipyard-complete` written last
                                            (its top-level `.shipyard*` names are Shipyard's)
    <root>/<service>/current -> releases/<revision>     the live release
    <root>/<service>/previous -> releases/<revision>    the one live before it (rollback target)
    <root>/<service>/slots/{blue,green} -> ../releases/<revision>   blue/green slots
    <root>/<service>/logs/                  process logs
    <root>/<service>/deployed.json          the host-side record (see `record`)

A link is only ever pointed at a release whose marker names its revision, and it is replaced by
renaming a new symlink over it, so at every instant it exists and names a complete release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shipyard.commands.script import (
    Argv,
    Script,
    UnsafeValue,
    check_name,
    check_path,
    command_script,
    quote,
    script,
)
from shipyard.config.artifact import RESERVED_PREFIX

# Shipyard's own names in a release, never an artifact's or a `files:` entry's. Every top-level
# name starting with `.shipyard` is reserved (`config.artifact.is_reserved`, which validation
# checks, below this layer): the marker, its temporary file, and the directory holding the
# program definition and launcher (commands/control.py).
MARKER = f"{RESERVED_PREFIX}-complete"
MARKER_TMP = f"{MARKER}.tmp"
STATE_DIR = RESERVED_PREFIX
RESERVED_NAMES = (MARKER, MARKER_TMP, STATE_DIR)
Color = Literal["blue", "green"]
COLORS: tuple[Color, Color] = ("blue", "green")


def other_color(color: Color) -> Color:
    """The slot that is not `color`."""
    return "green" if color == "blue" else "blue"


@dataclass(frozen=True)
class ReleaseLayout:
    """The paths of one service's releases under a host's deploy root (an absolute path)."""

    root: str
    service: str

    def __post_init__(self) -> None:
        check_path(self.root, "deploy root")
        check_name(self.service, "service name")

    @property
    def service_dir(self) -> str:
        return f"{self.root.rstrip('/')}/{self.service}"

    @property
    def releases(self) -> str:
        return f"{self.service_dir}/releases"

    @property
    def current(self) -> str:
        return f"{self.service_dir}/current"

    @property
    def previous(self) -> str:
        return f"{self.service_dir}/previous"

    @property
    def record(self) -> str:
        return f"{self.service_dir}/deployed.json"

    @property
    def logs(self) -> str:
        return f"{self.service_dir}/logs"

    @property
    def slots(self) -> str:
        return f"{self.service_dir}/slots"

    def release(self, revision: str) -> str:
        return f"{self.releases}/{check_name(revision, 'revision')}"

    def marker(self, revision: str) -> str:
        return f"{self.release(revision)}/{MARKER}"

    def slot(self, color: Color) -> str:
        if color not in COLORS:
            raise UnsafeValue(f"slot must be blue or green, not {color!r}")
        return f"{self.slots}/{color}"


def _has_marker(layout: ReleaseLayout, revision: str) -> str:
    """An sh condition true when the release's marker names `revision`."""
    return f"grep -qsxF -- {quote(revision)} {quote(layout.marker(revision))}"


def is_intact_argv(layout: ReleaseLayout, revision: str) -> Argv:
    """Exits 0 when the release is there intact (its marker names it), non-zero otherwise."""
    return ("grep", "-qsxF", "--", revision, layout.marker(revision))


def is_intact_script(layout: ReleaseLayout, revision: str) -> Script:
    """Exits 0 when the release is there intact, 1 otherwise (`is_intact_argv` as a script)."""
    return script([_has_marker(layout, revision)])


def prepare_script(layout: ReleaseLayout, revision: str) -> Script:
    """Prints `intact` if the release is complete; else clears its directory and prints `empty`.

    Also creates the service's directories. Refuses (exit 3) to clear the live release.
    """
    release = quote(layout.release(revision))
    return script(
        [
            f"if {_has_marker(layout, revision)}; then echo intact; exit 0; fi",
            f"live=$(readlink -f -- {quote(layout.current)} 2>/dev/null || true)",
            f'if [ -n "$live" ] && [ "$live" = "$(readlink -f -- {release})" ]; then',
            f"  echo {quote(f'shipyard: {revision} is live but incomplete; not clearing it')} >&2",
            "  exit 3",
            "fi",
            f"rm -rf -- {release}",
            f"mkdir -p -- {release} {quote(layout.logs)} {quote(layout.slots)}",
            "echo empty",
        ]
    )


def parse_prepare(stdout: str) -> bool:
    """True when `prepare_script` found the release intact, False when it made it empty."""
    word = stdout.strip()
    if word not in {"intact", "empty"}:
        raise UnsafeValue(f"unexpected output from the release check: {stdout!r}")
    return word == "intact"


def extract_argv(layout: ReleaseLayout, revision: str, *, gzip: bool = False) -> Argv:
    """Extracts a tar stream read on stdin into the release directory (made by `prepare_script`)."""
    return (
        "tar",
        "-x",
        *(("-z",) if gzip else ()),
        "--no-same-owner",
        "-f",
        "-",
        "-C",
        layout.release(revision),
    )


def extract_argv_at(root: str) -> Argv:
    """Extracts a tar stream read on stdin under a deploy root (several releases at once)."""
    return ("tar", "-x", "--no-same-owner", "-f", "-", "-C", check_path(root, "deploy root"))


def install_script(
    layout: ReleaseLayout,
    revision: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> Script:
    """Runs the service's install command inside the release directory."""
    return command_script(argv, cwd=layout.release(revision), env=env)


def mark_complete_script(layout: ReleaseLayout, revision: str) -> Script:
    """Writes the release's marker, last, atomically: from then on the release may go live."""
    return script(
        [
            f"cd -- {quote(layout.release(revision))}",
            f"printf '%s\\n' {quote(revision)} > {MARKER_TMP}",
            f"mv -f -- {MARKER_TMP} {MARKER}",
        ]
    )


def _switch_script(
    layout: ReleaseLayout, revision: str, link: str, target: str, previous: str | None
) -> Script:
    lines = [
        f"link={quote(link)}",
        f"target={quote(target)}",
        f"if ! {_has_marker(layout, revision)}; then",
        f"  echo {quote(f'shipyard: release {revision} is not complete; {link} unchanged')} >&2",
        "  exit 3",
        "fi",
        'old=$(readlink -- "$link" 2>/dev/null || true)',
        'mkdir -p -- "$(dirname -- "$link")"',
        'ln -sfn -- "$target" "$link.tmp-$$"',
        'mv -fT -- "$link.tmp-$$" "$link"',
    ]
    if previous is not None:
        lines += [
            f"previous={quote(previous)}",
            'if [ -n "$old" ] && [ "$old" != "$target" ]; then',
            '  ln -sfn -- "$old" "$previous.tmp-$$"',
            '  mv -fT -- "$previous.tmp-$$" "$previous"',
            "fi",
        ]
    return script([*lines, "printf '%s\\n' \"$old\""])


def switch_current_script(layout: ReleaseLayout, revision: str) -> Script:
    """Points `current` at a complete release atomically; the old target becomes `previous`.

    Prints the old target (empty if there was none); exit 3 if the release is not complete.
    Rolling back is switching to `ReleaseLinks.previous`.
    """
    target = f"releases/{check_name(revision, 'revision')}"
    return _switch_script(layout, revision, layout.current, target, layout.previous)


def restore_current_script(layout: ReleaseLayout, revision: str) -> Script:
    """Points `current` back at `revision` after a failed switch, leaving `previous` alone.

    A failed release must not become the rollback target.
    """
    target = f"releases/{check_name(revision, 'revision')}"
    return _switch_script(layout, revision, layout.current, target, None)


def switch_slot_script(layout: ReleaseLayout, color: Color, revision: str) -> Script:
    """Points a blue/green slot at a complete release atomically; prints the old target."""
    target = f"../releases/{check_name(revision, 'revision')}"
    return _switch_script(layout, revision, layout.slot(color), target, None)


def revision_of_link(target: str) -> str | None:
    """The revision a link's target names (`releases/abc` -> `abc`); None for no target."""
    target = target.strip().rstrip("/")
    return target.rsplit("/", 1)[-1] or None


def parse_switch(stdout: str) -> str | None:
    """The revision a switch replaced, from its output; None when the link was new."""
    return revision_of_link(stdout)


def read_current_argv(layout: ReleaseLayout) -> Argv:
    """Prints `current`'s target; exits 1 when there is none (run it with check=False)."""
    return ("readlink", "--", layout.current)


def remove_service_script(layout: ReleaseLayout) -> Script:
    """Remove the service from the host: its releases, links, logs and host-side record.
    Prints `removed` (or `absent` when there was nothing), so the caller knows the host did it."""
    where = quote(layout.service_dir)
    return script(
        [
            f"if [ -e {where} ] || [ -L {where} ]; then",
            f"  rm -rf -- {where} && echo removed",
            "else",
            "  echo absent",
            "fi",
        ]
    )
