"""How the fake executor reads a batch (commands.batch: several scripts, one host step) and
answers it part by part, framed the way the host's batch prints its results.

A fake that answered a batch as one opaque script could only say "everything failed" or
"everything passed"; the deploy layer decides per instance from each part's result, so the fake
must too. It finds the parts, the boundary, the time limit and whether they run in parallel in
the script's text (what `Batch.script` prints), and the tests of the fake check that it reads
every batch `commands.batch` builds and that `Batch.parse` reads what it answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The line that writes the inner script (the parts) to a file on the host: a shlex-quoted word.
_INNER = re.compile(r"""^printf '%s' ('(?:[^']|'"'"')*') >"\$d/batch\.sh" """, re.MULTILINE)
_BOUNDARY = re.compile(r"^printf '%s %s\\n' ([A-Za-z0-9]{16,64}) 0 >0\.a$", re.MULTILINE)
_LIMIT = re.compile(r'timeout -k \S+ (\S+) sh "\$d/batch\.sh"')


@dataclass(frozen=True)
class DecodedBatch:
    """What a batch script holds: its parts' script texts, boundary, time limit and mode."""

    parts: tuple[str, ...]
    boundary: str
    limit: float
    parallel: bool


@dataclass(frozen=True)
class PartAnswer:
    """What one part printed and exited with on the (fake) host."""

    exit_status: int = 0
    stdout: str = ""
    stderr: str = ""


def decode_batch(text: str) -> DecodedBatch | None:
    """The batch `text` is (a script `commands.batch` built), or None when it is not one."""
    found = _INNER.search(text)
    limit = _LIMIT.search(text)
    if found is None or limit is None:
        return None
    # shlex.quote's form: one single-quoted word, each ' in it written '"'"'.
    inner = found.group(1)[1:-1].replace("'\"'\"'", "'")
    parts: list[str] = []
    at = 0
    while True:
        index = len(parts)
        end = inner.find(f'\n) <"/dev/null" >"$d/{index}.out" 2>"$d/{index}.err"', at)
        if end < 0:
            break
        start = inner.find("(\n", at)
        if start < 0 or start > end:
            return None
        parts.append(inner[start + 2 : end] + "\n")
        at = inner.find("\n", end + 2)
    boundary = _BOUNDARY.search(inner)
    if not parts or boundary is None:
        return None
    return DecodedBatch(
        tuple(parts),
        boundary.group(1),
        float(limit.group(1)),
        parallel='2>"$d/0.err" &\n' in inner,
    )


def encode_answers(boundary: str, answers: list[PartAnswer]) -> str:
    """The batch's stdout for `answers`, one per part in order, as the host's `cat` prints it."""
    out = []
    for index, answer in enumerate(answers):
        sizes = f"{answer.exit_status} {len(answer.stdout.encode())} {len(answer.stderr.encode())}"
        out += [f"{boundary} {index}\n{answer.stdout}\n", f"{boundary} {sizes}\n"]
        out.append(f"{answer.stderr}\n{boundary}\n")
    return "".join(out)
