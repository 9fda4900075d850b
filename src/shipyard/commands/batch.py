"""Several independent scripts for one host as one script: one round trip, a result for each.

Each part runs in its own subshell with its own stdin (/dev/null), stdout, stderr and exit
status, so one part failing does not stop the others and every part keeps the `set -e` of its
own script. The combined output frames each part's results between lines holding a boundary
token that the caller chooses at random, so no part's output can forge a frame.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.commands.script import Script, UnsafeValue, quote

_BOUNDARY = re.compile(r"^[A-Za-z0-9]{16,64}$")


@dataclass(frozen=True)
class PartResult:
    """What one part left behind."""

    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


@dataclass(frozen=True)
class Batch:
    """`parts` run one after another (or all at once, `parallel`); `boundary` frames the output."""

    parts: tuple[Script, ...]
    boundary: str
    parallel: bool = False

    def __post_init__(self) -> None:
        if not _BOUNDARY.match(self.boundary):
            raise UnsafeValue(f"batch boundary must be 16-64 letters or digits: {self.boundary!r}")

    @property
    def script(self) -> Script:
        """The combined script. It has no `set -e`: a failed part is a result, not an end.

        Each part prints `B i`, its stdout, `B status`, its stderr, `B` (B the boundary, each
        mark on a line of its own): shell builtins only, but for one `cat` per non-empty file.
        """
        b = quote(self.boundary)
        lines = [
            'd=$(mktemp -d "${TMPDIR:-/tmp}/shipyard-batch.XXXXXX") || exit 1',
            "trap 'rm -rf \"$d\"' EXIT",
        ]

        def run(index: int, part: Script, stdout: str) -> str:
            # A plain statement, never the left side of || or &&: there sh would ignore the
            # part's own `set -e`.
            return f'(\n{part.text.rstrip()}\n) <"/dev/null" {stdout}2>"$d/{index}.err"'

        def show(path: str) -> str:
            return f'[ ! -s "{path}" ] || cat "{path}"'

        if self.parallel:
            for index, part in enumerate(self.parts):
                into = f'>"$d/{index}.out" '
                lines += [f"{run(index, part, into)} &", f"p{index}=$!"]
            for index in range(len(self.parts)):
                lines += [
                    f'wait "$p{index}"; s=$?',
                    f"printf '%s %s\\n' {b} {index}",
                    show(f"$d/{index}.out"),
                    f"printf '\\n%s %s\\n' {b} \"$s\"",
                    show(f"$d/{index}.err"),
                    f"printf '\\n%s\\n' {b}",
                ]
        else:
            for index, part in enumerate(self.parts):
                lines += [
                    f"printf '%s %s\\n' {b} {index}",
                    run(index, part, ""),
                    "s=$?",
                    f"printf '\\n%s %s\\n' {b} \"$s\"",
                    show(f"$d/{index}.err"),
                    f"printf '\\n%s\\n' {b}",
                ]
        return Script("\n".join(lines) + "\n")

    def parse(self, stdout: str) -> list[PartResult]:
        """Each part's result, in order; UnsafeValue when the output is not what `script` prints
        (cut short, or capped by the executor)."""
        results = []
        b = self.boundary
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
            status = stdout[out_end + len(b) + 2 : status_end] if status_end >= 0 else ""
            if err_end < 0 or not status.isdigit():
                raise UnsafeValue(f"batch output: part {index} is not framed whole")
            results.append(
                PartResult(
                    int(status),
                    stdout[out_start:out_end],
                    stdout[status_end + 1 : err_end] if err_end > status_end else "",
                )
            )
            at = err_end + len(closing)
        return results


def batch(parts: Sequence[Script], boundary: str, *, parallel: bool = False) -> Batch:
    return Batch(tuple(parts), boundary, parallel)
