"""Blue/green slot state kept on the host: which slot is live, which is draining and until when."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.commands.release import COLORS, Color, ReleaseLayout
from shipyard.commands.script import Script, UnsafeValue, quote, script


@dataclass(frozen=True)
class SlotState:
    """`live`: the slot nginx sends new requests to; `draining`: the one finishing old ones."""

    live: Color | None = None
    draining: Color | None = None
    drain_until: float = 0.0  # epoch seconds
    blue: str | None = None  # revision each slot's link points at
    green: str | None = None

    def revision(self, color: Color) -> str | None:
        return self.blue if color == "blue" else self.green


def _live_file(layout: ReleaseLayout) -> str:
    return f"{layout.service_dir}/live-slot"


def _draining_file(layout: ReleaseLayout) -> str:
    return f"{layout.service_dir}/draining-slot"


def read_state_script(layout: ReleaseLayout) -> Script:
    """Prints `live C`, `draining C UNTIL`, `blue REV`, `green REV` for what exists."""
    return script(
        [
            f"live={quote(_live_file(layout))}",
            f"draining={quote(_draining_file(layout))}",
            '[ -f "$live" ] && printf \'live %s\\n\' "$(cat "$live")"',
            '[ -f "$draining" ] && printf \'draining %s\\n\' "$(cat "$draining")"',
            f"for c in blue green; do t=$(readlink -- {quote(layout.slots)}/$c 2>/dev/null) &&"
            ' printf \'%s %s\\n\' "$c" "${t##*/}"; done',
            "exit 0",
        ]
    )


def _color(word: str) -> Color:
    if word not in COLORS:
        raise UnsafeValue(f"unexpected slot name from the host: {word!r}")
    return "blue" if word == "blue" else "green"


def parse_state(stdout: str) -> SlotState:
    live: Color | None = None
    draining: Color | None = None
    until = 0.0
    links: dict[str, str] = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "live":
            live = _color(words[1])
        elif len(words) >= 3 and words[0] == "draining":
            draining, until = _color(words[1]), float(words[2])
        elif len(words) == 2 and words[0] in COLORS:
            links[words[0]] = words[1]
    return SlotState(live, draining, until, links.get("blue"), links.get("green"))


def set_live_script(
    layout: ReleaseLayout, live: Color, draining: Color | None, drain_until: float
) -> Script:
    """Records the new live slot and, if any, the slot left draining until `drain_until`."""
    lines = [
        f"printf '%s\\n' {quote(live)} > {quote(_live_file(layout))}.tmp",
        f"mv -f -- {quote(_live_file(layout))}.tmp {quote(_live_file(layout))}",
    ]
    if draining is not None:
        lines.append(
            f"printf '%s %s\\n' {quote(draining)} {quote(f'{drain_until:.3f}')} > "
            f"{quote(_draining_file(layout))}"
        )
    else:
        lines.append(f"rm -f -- {quote(_draining_file(layout))}")
    return script(lines)


def drained_script(layout: ReleaseLayout, color: Color) -> Script:
    """Forgets that `color` is draining (if it still is)."""
    return script(
        [
            f"marker={quote(_draining_file(layout))}",
            f"color={quote(color)}",
            'if [ -f "$marker" ] && [ "$(cut -d" " -f1 "$marker")" = "$color" ]; then',
            '  rm -f -- "$marker"',
            "fi",
        ]
    )
