"""Blue/green slot state on the host: which slot nginx serves, which is draining and until when,
and what holds a slot's port.

The host is the truth about which slot is live: the upstream in the service's nginx site file.
The `live-slot` record beside it is written in the same step as the switch, after nginx's
reload; a record that disagrees with the site file means a switch was cut short there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from shipyard.commands.nginx import upstream_port
from shipyard.commands.release import COLORS, Color, ReleaseLayout
from shipyard.commands.script import (
    Script,
    UnsafeValue,
    check_name,
    check_path,
    join,
    quote,
    script,
)
from shipyard.commands.supervisor import supervisorctl_argv


@dataclass(frozen=True)
class SlotState:
    """`live`: the slot nginx sends new requests to; `draining`: the one finishing old ones.

    `recorded` is what the host's `live-slot` record says and `served_port` the port the nginx
    site file names (None without a site file); `resolve` makes `live` the served slot."""

    live: Color | None = None
    draining: Color | None = None
    drain_until: float = 0.0  # epoch seconds
    blue: str | None = None  # revision each slot's link points at
    green: str | None = None
    recorded: Color | None = None
    served_port: int | None = None

    def revision(self, color: Color) -> str | None:
        return self.blue if color == "blue" else self.green

    def resolve(self, ports: Mapping[Color, int]) -> SlotState:
        """`live` as the site file says when it names one of `ports`, else as recorded."""
        served = [c for c in COLORS if ports[c] == self.served_port] if self.served_port else []
        return replace(self, live=served[0] if served else self.recorded)

    @property
    def agrees(self) -> bool:
        """True when the record names the slot nginx serves: no switch was cut short."""
        return self.live == self.recorded


def _live_file(layout: ReleaseLayout) -> str:
    return f"{layout.service_dir}/live-slot"


def _draining_file(layout: ReleaseLayout) -> str:
    return f"{layout.service_dir}/draining-slot"


def read_state_script(layout: ReleaseLayout, site: str | None = None) -> Script:
    """Prints `live C`, `draining C UNTIL`, `blue REV`, `green REV` for what exists, and `site
    LINE` for the upstream server line of the nginx site file at `site`, if there is one."""
    lines = [
        f"live={quote(_live_file(layout))}",
        f"draining={quote(_draining_file(layout))}",
        '[ -f "$live" ] && printf \'live %s\\n\' "$(cat "$live")"',
        '[ -f "$draining" ] && printf \'draining %s\\n\' "$(cat "$draining")"',
        f"for c in blue green; do t=$(readlink -- {quote(layout.slots)}/$c 2>/dev/null) &&"
        ' printf \'%s %s\\n\' "$c" "${t##*/}"; done',
    ]
    if site is not None:
        lines += [
            f"site={quote(check_path(site, 'nginx site file'))}",
            '[ -f "$site" ] && grep -m 1 -E \'^[[:space:]]*server[[:space:]]\' -- "$site" |'
            " sed 's/^/site /'",
        ]
    return script([*lines, "exit 0"])


def _color(word: str) -> Color:
    if word not in COLORS:
        raise UnsafeValue(f"unexpected slot name from the host: {word!r}")
    return "blue" if word == "blue" else "green"


def parse_state(stdout: str) -> SlotState:
    live: Color | None = None
    draining: Color | None = None
    until = 0.0
    served: int | None = None
    links: dict[str, str] = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "live":
            live = _color(words[1])
        elif len(words) >= 3 and words[0] == "draining":
            draining, until = _color(words[1]), float(words[2])
        elif len(words) >= 2 and words[0] == "site":
            served = upstream_port(line.partition(" ")[2])
        elif len(words) == 2 and words[0] in COLORS:
            links[words[0]] = words[1]
    return SlotState(live, draining, until, links.get("blue"), links.get("green"), live, served)


def set_live_lines(
    layout: ReleaseLayout, live: Color, draining: Color | None, drain_until: float
) -> list[str]:
    """sh lines recording the new live slot and, if any, the slot left draining until
    `drain_until`: what the nginx switch runs once nginx has reloaded."""
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
    return lines


def set_live_script(
    layout: ReleaseLayout, live: Color, draining: Color | None, drain_until: float
) -> Script:
    """Records the new live slot and, if any, the slot left draining until `drain_until`."""
    return script(set_live_lines(layout, live, draining, drain_until))


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


# What holds a slot's port, and the supervisor's view of the slot's program.


@dataclass(frozen=True)
class Holder:
    """A process with a listening socket on the port: its pid, name and ancestors' pids."""

    pid: int
    name: str
    ancestors: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name})"


@dataclass(frozen=True)
class SlotProcess:
    """The supervisor's state of a slot's program (RUNNING, BACKOFF, FATAL, ...), its description
    (a spawn error such as "can't find command"), its pid (0: none), and who listens on its
    address and port. `listening` counts those sockets, whether or not their holder was seen."""

    state: str = "UNKNOWN"
    description: str = ""
    pid: int = 0
    holders: tuple[Holder, ...] = ()
    listening: int = 0

    @property
    def exited(self) -> bool:
        """The program is not running and not about to: it exited, failed to spawn, or stopped."""
        return self.state in {"BACKOFF", "FATAL", "EXITED", "STOPPED", "UNKNOWN"}

    def foreign(self) -> list[str]:
        """Who holds the port that is not the program (nor a process it started)."""
        out = [
            str(h) for h in self.holders if not self.pid or self.pid not in (h.pid, *h.ancestors)
        ]
        if self.listening and not self.holders:
            out.append("a process this user can't see (another user's)")
        return out


def slot_process_script(conf: str, program: str, port: int) -> Script:
    """Prints `status LINE` (supervisorctl's), `pid N`, a `listen ADDRESS:PORT PIDS` line for
    each socket listening on `port` (PIDS comma-separated, or -), and a `holder PID ANCESTORS
    NAME` line for each of those processes (ANCESTORS: ppids up to init). Always exits 0."""
    if not 1 <= port <= 65535:
        raise UnsafeValue(f"port out of range: {port}")
    name = check_name(program, "program name")
    pids = "$(printf '%s' \"$line\" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un)"
    return script(
        [
            f"s=$({join(supervisorctl_argv(conf, 'status', name))} 2>&1 | head -n 1) || true",
            "printf 'status %s\\n' \"$s\"",
            f"p=$({join(supervisorctl_argv(conf, 'pid', name))} 2>/dev/null) || true",
            "printf 'pid %s\\n' \"$p\"",
            f"ss -Hltnp 'sport = :{port}' 2>/dev/null | while IFS= read -r line; do",
            f"  held={pids}",
            "  printf 'listen %s %s\\n' \"$(printf '%s' \"$line\" | awk '{print $4}')\""
            ' "$(printf \'%s\' "$held" | paste -sd, -)"',
            "  for h in $held; do",
            '    up=""; q=$h; i=0',
            '    while [ "$i" -lt 64 ]; do',
            "      q=$(sed -n 's/^PPid:[[:space:]]*//p' \"/proc/$q/status\" 2>/dev/null) || break",
            '      [ -n "$q" ] && [ "$q" -gt 0 ] || break',
            '      up="$up${up:+,}$q"; i=$((i + 1))',
            "    done",
            '    printf \'holder %s %s %s\\n\' "$h" "${up:--}"'
            ' "$(cat "/proc/$h/comm" 2>/dev/null)"',
            "  done",
            "done",
            "exit 0",
        ]
    )


_WILDCARDS = frozenset({"*", "0.0.0.0", "[::]", "::", "[::ffff:0.0.0.0]"})


def parse_slot_process(stdout: str, program: str, address: str) -> SlotProcess:
    """What `slot_process_script` printed, as a value: only sockets on `address` (or on every
    address) count; the same port on another address is another host's business."""
    state, description, pid = "UNKNOWN", "", 0
    listening = 0
    wanted: set[int] = set()
    seen: dict[int, Holder] = {}
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        words = rest.split()
        if kind == "status":
            parts = rest.split(maxsplit=2)
            if len(parts) >= 2 and parts[0] == program:
                state = parts[1]
                description = parts[2].strip() if len(parts) > 2 else ""
            elif rest.strip():
                description = rest.strip()  # "no such process", or supervisord unreachable
        elif kind == "pid" and rest.strip().isdigit():
            pid = int(rest.strip())
        elif kind == "listen" and words:
            host = words[0].rpartition(":")[0].split("%")[0]
            if host in _WILDCARDS or host.strip("[]") == address.strip("[]"):
                listening += 1
                if len(words) > 1:
                    wanted |= {int(w) for w in words[1].split(",") if w.isdigit()}
        elif kind == "holder" and len(words) >= 2 and words[0].isdigit():
            up = tuple(int(w) for w in words[1].split(",") if w.isdigit())
            name = rest.split(maxsplit=2)[2] if len(words) > 2 else "?"
            seen[int(words[0])] = Holder(int(words[0]), name, up)
    holders = tuple(seen[p] for p in sorted(wanted) if p in seen)
    return SlotProcess(state, description, pid, holders, listening)
