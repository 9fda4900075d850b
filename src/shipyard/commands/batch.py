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
        """The combined script. It has no `set -e`: a failed part is a result, not an end."""
        b = quote(self.boundary)
        lines = [
            'd=$(mktemp -d "${TMPDIR:-/tmp}/shipyard-batch.XXXXXX") || exit 1',
            "trap 'rm -rf \"$d\"' EXIT",
        ]
        for index, part in enumerate(self.parts):
            # A plain statement, never the left side of || or &&: there sh would ignore the
            # part's own `set -e`.
            run = f'(\n{part.text.rstrip()}\n) <"/dev/null" >"$d/{index}.out" 2>"$d/{index}.err"'
            if self.parallel:
                lines += [f"{run} &", f"p{index}=$!"]
            else:
                lines += [run, f'echo $? >"$d/{index}.rc"']
        if self.parallel:
            lines += [f'wait "$p{i}"; echo $? >"$d/{i}.rc"' for i in range(len(self.parts))]
        for index in range(len(self.parts)):
            lines += [
                f'printf \'%s %s %s\\n\' {b} {index} "$(cat "$d/{index}.rc")"',
                f"cat \"$d/{index}.out\"; printf '\\n%s\\n' {b}",
                f"cat \"$d/{index}.err\"; printf '\\n%s\\n' {b}",
            ]
        return Script("\n".join(lines) + "\n")

    def parse(self, stdout: str) -> list[PartResult]:
        """Each part's result, in order; UnsafeValue when the output is not what `script` prints
        (cut short, or capped by the executor)."""
        results = []
        closing = f"\n{self.boundary}\n"
        at = 0
        for index in range(len(self.parts)):
            header_end = stdout.find("\n", at)
            words = stdout[at:header_end].split(" ") if header_end >= 0 else []
            if len(words) != 3 or words[:2] != [self.boundary, str(index)]:
                raise UnsafeValue(f"batch output: no frame for part {index} at offset {at}")
            out_end = stdout.find(closing, header_end + 1)
            err_end = stdout.find(closing, out_end + len(closing)) if out_end >= 0 else -1
            if err_end < 0 or not words[2].isdigit():
                raise UnsafeValue(f"batch output: part {index} is not framed whole")
            results.append(
                PartResult(
                    int(words[2]),
                    stdout[header_end + 1 : out_end],
                    stdout[out_end + len(closing) : err_end],
                )
            )
            at = err_end + len(closing)
        return results


def batch(parts: Sequence[Script], boundary: str, *, parallel: bool = False) -> Batch:
    return Batch(tuple(parts), boundary, parallel)
