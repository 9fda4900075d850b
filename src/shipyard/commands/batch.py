"""Several independent scripts for one host as one script: one round trip, a result for each.

Each part runs in its own subshell with its own stdin (/dev/null), stdout, stderr and exit
status, so one part failing does not stop the others and every part keeps the `set -e` of its
own script. The combined output frames each part's results between lines holding a boundary
token that the caller chooses at random, so no part's output can forge a frame.

The batch is one host step. It runs under coreutils `timeout` on the host: the host itself stops
it after `limit` seconds (TERM, then KILL, to every process it started), whether or not the
controller is still there, and `timeout` makes it the leader of a process group of its own.
While it runs, each guard directory it is given (one per instance it works for) holds a file
named by that process group, with its leader's start time, so that the next deployment of any
of those instances can end what an interrupted one left running (`end_leftovers_script`)
without ever signalling a process that merely reuses the number.

Every part starts with a clean environment (script.MINIMUM_ENV): what it needs, it exports.

A part's output goes to files on the host and comes back capped per stream: what is cut is
the start, replaced by one marker line, so the exit status and the last lines always come back,
and the whole answer stays under OUTPUT_BUDGET whatever the parts print. A handful of processes
per batch (not per part) do all this: it is what a host with many instances pays at every step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.commands.script import CLEAN_ENV, Script, UnsafeValue, check_path, quote, script

_BOUNDARY = re.compile(r"^[A-Za-z0-9]{16,64}$")
# What one batch may print in all, frames included: well under the executors' own per-stream
# cap (1 MiB, executors.base.DEFAULT_OUTPUT_LIMIT), so no frame is ever cut off at the front.
OUTPUT_BUDGET = 512 * 1024
# Bytes kept of one stream of one part: the budget shared out, within these bounds.
MIN_PART_OUTPUT, MAX_PART_OUTPUT = 1024, 64 * 1024
# The default time limit of a part on the host, in seconds.
DEFAULT_LIMIT = 600.0
# After `timeout`'s TERM, this many seconds before it sends KILL.
KILL_AFTER = 5
# How long ending a leftover process group waits after TERM before KILL (tenths of a second).
LEFTOVER_GRACE_TENTHS = 50

# Sets w to the start time (field 22 of /proc/<pid>/stat, after the name in parentheses) of
# process $1, or to nothing when it can't be read: a number alone may be reused, the pair is not.
# No subshell: a batch runs it once per part.
_STARTED = (
    'started() { w=; { IFS= read -r line < "/proc/$1/stat"; } 2>/dev/null || return 0; '
    "set -- ${line##*) }; shift 19; w=$1; }"
)


def truncation_marker(dropped: int, kept: int) -> str:
    """The line that replaces the start of a stream that was cut (what `parse` recognises)."""
    return f"[shipyard: {dropped} bytes of output cut; the last {kept} kept]\n"


@dataclass(frozen=True)
class PartResult:
    """What one part left behind (the tail of each stream when it printed more than its share)."""

    exit_status: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class Batch:
    """`parts` run one after another (or all at once, `parallel`); `boundary` frames the output.

    The whole batch runs under a time limit of `limit` seconds on the host, in a process group
    of its own, registered while it runs in each directory `guards` names (None: none for that
    part).
    """

    parts: tuple[Script, ...]
    boundary: str
    parallel: bool = False
    limit: float = DEFAULT_LIMIT
    guards: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if not _BOUNDARY.match(self.boundary):
            raise UnsafeValue(f"batch boundary must be 16-64 letters or digits: {self.boundary!r}")
        if not self.limit > 0:
            raise UnsafeValue(f"a part's time limit must be positive, not {self.limit!r}")
        if self.guards and len(self.guards) != len(self.parts):
            raise UnsafeValue("a batch needs one guard (or None) per part")
        for guard in self.guards:
            if guard is not None:
                check_path(guard, "guard directory")

    @property
    def part_output(self) -> int:
        """Bytes kept of each stream of each part."""
        share = OUTPUT_BUDGET // (2 * max(1, len(self.parts))) - 128  # the frame, the marker
        return max(MIN_PART_OUTPUT, min(MAX_PART_OUTPUT, share))

    @property
    def script(self) -> Script:
        """The combined script. It has no `set -e`: a failed part is a result, not an end.

        It re-executes itself from a file under `timeout` with a clean environment (one
        process group, registered in every guard directory while it runs), runs the parts with
        their output in files, then prints, for each part, `B i`, its stdout, `B status
        out-bytes err-bytes`, its stderr, `B` (B the boundary, each mark on a line of its own),
        all in one `cat`. Exits 124 when the host stopped it at its time limit.
        """
        limit = f"{self.limit:g}"
        outer = [
            "command -v timeout >/dev/null 2>&1 ||",
            "  { echo 'shipyard: coreutils timeout is not installed on this host' >&2; exit 127; }",
            'd=$(mktemp -d "${TMPDIR:-/tmp}/shipyard-batch.XXXXXX") || exit 1',
            f'printf \'%s\' {quote(self._inner())} >"$d/batch.sh" || {{ rm -rf "$d"; exit 1; }}',
            "set --",  # the files that register this batch while it runs
        ]
        guards = list(dict.fromkeys(g.rstrip("/") for g in self.guards if g is not None))
        if guards:
            # exec keeps the process number and start time: `timeout` then leads a group of
            # that number, which is what the files say.
            outer += [_STARTED, 'started "$$"']
            for guard in guards:
                mark = quote(f"{guard}/")
                outer += [
                    f'[ -z "$w" ] || {{ printf \'%s\\n\' "$w" >{mark}"$$"; }} 2>/dev/null || :',
                    f'set -- "$@" {mark}"$$"',
                ]
        outer.append(f'exec {CLEAN_ENV} timeout -k {KILL_AFTER} {limit} sh "$d/batch.sh" "$d" "$@"')
        return Script("\n".join(outer) + "\n")

    def _inner(self) -> str:
        """What runs under `timeout`: $1 the temporary directory, then the guard files."""
        b, cap = quote(self.boundary), self.part_output
        lines = [
            "d=$1; shift",
            'trap \'rm -rf "$d"; [ "$#" -eq 0 ] || rm -f -- "$@"\' EXIT',
            # Ended by a signal (the time limit, the controller hung up): clean up too.
            "trap 'exit 129' HUP; trap 'exit 141' PIPE; trap 'exit 143' TERM",
        ]

        def run(index: int, part: Script) -> str:
            # A plain statement, never the left side of || or &&: there sh would ignore the
            # part's own `set -e`.
            return f'(\n{part.text.rstrip()}\n) <"/dev/null" >"$d/{index}.out" 2>"$d/{index}.err"'

        if self.parallel:
            for index, part in enumerate(self.parts):
                lines += [f"{run(index, part)} &", f"p{index}=$!"]
            for index in range(len(self.parts)):
                lines.append(f'wait "$p{index}"; s{index}=$?')
        else:
            for index, part in enumerate(self.parts):
                lines += [run(index, part), f"s{index}=$?"]
        # Sizes from one `wc`; then every frame and output in one `cat`.
        lines += [
            'cd "$d" || exit 1',
            "wc -c [0-9]*.out [0-9]*.err >sizes 2>/dev/null",
            "while read -r n f; do",
            '  case $n in ""|*[!0-9]*) continue ;; esac',
            '  case $f in *.out|*.err) eval "z_${f%.*}_${f##*.}=\\$n" ;; esac',
            "done <sizes",
            "list=",
        ]
        marker = "'[shipyard: %s bytes of output cut; the last %s kept]\\n'"
        for index in range(len(self.parts)):
            lines += [
                f"o=${{z_{index}_out:-0}}; e=${{z_{index}_err:-0}}",
                f"printf '%s %s\\n' {b} {index} >{index}.a",
                f'printf \'\\n%s %s %s %s\\n\' {b} "$s{index}" "$o" "$e" >{index}.b',
                f"printf '\\n%s\\n' {b} >{index}.c",
            ]
            for stream, cut, var in (("out", "o", "O"), ("err", "e", "E")):
                lines += [
                    f"{var}={index}.{stream}",
                    f'[ "${cut}" -le {cap} ] || {{ {{ printf {marker} $((${cut} - {cap})) {cap}; '
                    f"tail -c {cap} {index}.{stream}; }} >{index}.{cut}; {var}={index}.{cut}; }}",
                ]
            lines.append(f'list="$list {index}.a $O {index}.b $E {index}.c"')
        lines.append('[ -z "$list" ] || cat $list')
        return "\n".join(lines) + "\n"

    def parse(self, stdout: str) -> list[PartResult]:
        """Each part's result, in order; UnsafeValue when the output is not what `script` prints
        (cut short, or capped by the executor)."""
        results = []
        b = self.boundary
        cap = self.part_output
        at = 0
        for index in range(len(self.parts)):
            opening = f"{b} {index}\n"
            if not stdout.startswith(opening, at):
                raise UnsafeValue(f"batch output: no frame for part {index} at offset {at}")
            out_start = at + len(opening)
            out_end = stdout.find(f"\n{b} ", out_start)
            status_end = stdout.find("\n", out_end + len(b) + 2) if out_end >= 0 else -1
            closing = f"\n{b}\n"
            err_end = stdout.find(closing, status_end) if status_end >= 0 else -1
            words = stdout[out_end + len(b) + 2 : status_end].split() if status_end >= 0 else []
            if err_end < 0 or len(words) != 3 or not all(w.isdigit() for w in words):
                raise UnsafeValue(f"batch output: part {index} is not framed whole")
            status, out_bytes, err_bytes = (int(w) for w in words)
            results.append(
                PartResult(
                    status,
                    stdout[out_start:out_end],
                    stdout[status_end + 1 : err_end] if err_end > status_end else "",
                    stdout_truncated=out_bytes > cap,
                    stderr_truncated=err_bytes > cap,
                )
            )
            at = err_end + len(closing)
        return results


def batch(
    parts: Sequence[Script],
    boundary: str,
    *,
    parallel: bool = False,
    limit: float = DEFAULT_LIMIT,
    guards: Sequence[str | None] = (),
) -> Batch:
    return Batch(tuple(parts), boundary, parallel, limit, tuple(guards))


def end_leftovers_script(guard: str) -> Script:
    """Ends every process group registered in `guard` (by parts of an interrupted deployment):
    TERM, then KILL after a grace period; creates `guard` (0700) when it is missing.

    A registered group is signalled only while it is certainly the one registered: its leader
    has the recorded start time, or the leader is gone and the group lives on (Linux does not
    reuse a number while a process group has it). Prints what it ended on stderr.
    """
    directory = quote(check_path(guard, "guard directory").rstrip("/"))
    return script(
        [
            _STARTED,
            f"g={directory}",
            'mkdir -p -- "$(dirname -- "$g")"',
            'mkdir -p -m 700 -- "$g"',
            'for f in "$g"/*; do',
            '  [ -f "$f" ] || continue',
            "  p=${f##*/}",
            '  case $p in ""|*[!0-9]*) rm -f -- "$f"; continue ;; esac',
            '  want=; { IFS= read -r want < "$f"; } 2>/dev/null || :',
            '  started "$p"',
            '  if [ -e "/proc/$p" ] && [ "$w" != "$want" ]; then',
            '    rm -f -- "$f"; continue',  # the number now belongs to someone else
            "  fi",
            '  if kill -0 "-$p" 2>/dev/null; then',
            '    echo "shipyard: ending process group $p, left by an interrupted step" >&2',
            '    kill -TERM "-$p" 2>/dev/null || :',
            "    i=0",
            f'    while kill -0 "-$p" 2>/dev/null && [ $i -lt {LEFTOVER_GRACE_TENTHS} ]; do',
            "      sleep 0.1; i=$((i + 1))",
            "    done",
            '    kill -KILL "-$p" 2>/dev/null || :',
            "  fi",
            '  rm -f -- "$f"',
            "done",
        ]
    )
