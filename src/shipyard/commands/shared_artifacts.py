"""The host side of system-wide artifacts: the scripts that read and replace their files.

Pure builders (like every module of commands/): they return scripts as values and parse what a
host answered. Where a file lands: the artifact's `target` taken inside the host's deploy root
(`<root>/shared/certs/ca.pem`). File contents travel inside the script, which executors send
on the host's standard input (`sh -s`), never in argv: a rendered secret stays off `ps`.

    checksums_script   prints "MODE SHA256" (or "- -" when missing) per file, in order
    push_script        writes every file aside (`<name>.shipyard-tmp.<pid>`, with its mode, in
                       the same directory), and only once all are written renames each into
                       place; a failure before that removes the temporary files and leaves the
                       old ones intact. Then it prints the checksums of what is in place.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.commands.script import Script, UnsafeValue, check_path, quote, script

MODE = re.compile(r"^0[0-7]{3}$")
# A heredoc delimiter no base64 text can contain (base64 has no '_').
END = "SHIPYARD_ARTIFACT_END"
_CHECKSUMS = [
    'for f in "$@"; do',
    '  if [ -f "$f" ] && [ ! -L "$f" ]; then',
    '    printf \'%s %s\\n\' "$(stat -c %a -- "$f")" "$(sha256sum < "$f" | cut -d" " -f1)"',
    "  else echo '- -'; fi",
    "done",
]


@dataclass(frozen=True)
class FileState:
    """What a host holds at one file's place: its mode (octal, 4 digits) and sha256."""

    mode: str
    sha256: str


def host_path(root: str, target: str, name: str) -> str:
    """Where file `name` of an artifact with `target` lands under the deploy root `root`."""
    base = check_path(root, "deploy root").rstrip("/")
    check_path(target, "artifact target")
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UnsafeValue(f"artifact file name must be relative and plain, not {name!r}")
    return check_path(f"{base}{target.rstrip('/')}/{name}", "artifact file")


def checksums_script(paths: Sequence[str]) -> Script:
    """Prints one line per path: `MODE SHA256`, or `- -` for no regular file there."""
    return Script(
        "\n".join(_CHECKSUMS) + "\n",
        args=tuple(check_path(p, "artifact file") for p in paths),
        name="artifact-checksums",
    )


def parse_checksums(stdout: str, count: int) -> list[FileState | None]:
    """The answer of `checksums_script` (or of `push_script`'s last lines) for `count` files."""
    lines = [line for line in stdout.splitlines() if line.strip()][-count:] if count else []
    if len(lines) != count:
        raise UnsafeValue(f"expected {count} checksum line(s), got {len(lines)}")
    out: list[FileState | None] = []
    for line in lines:
        mode, _, digest = line.strip().partition(" ")
        if (mode, digest) == ("-", "-"):
            out.append(None)
        elif re.fullmatch(r"[0-7]{3,4}", mode) and re.fullmatch(r"[0-9a-f]{64}", digest):
            out.append(FileState(mode.rjust(4, "0"), digest))
        else:
            raise UnsafeValue(f"unreadable checksum line: {line[:80]!r}")
    return out


def push_script(files: Sequence[tuple[str, bytes]], mode: str) -> Script:
    """Replaces each (host path, content) with its content and `mode`, all aside first, then
    renamed into place; then prints the checksums of the files in place (as checksums_script).
    The script holds the contents: run it on stdin only (`Script` is sent so), never as argv."""
    if not MODE.match(mode):
        raise UnsafeValue(f"file mode must be octal like 0644, not {mode!r}")
    if not files:
        raise UnsafeValue("an artifact has at least one file")
    lines = ["umask 022", "tmps=''", "trap 'for t in $tmps; do rm -f -- \"$t\"; done' EXIT"]
    for index, (path, content) in enumerate(files):
        target = quote(check_path(path, "artifact file"))
        temp = f"t{index}"
        lines += [
            f'mkdir -p -- "$(dirname -- {target})"',
            f"{temp}={target}.shipyard-tmp.$$",
            f'tmps="$tmps ${temp}"',
            f"(umask 077; base64 -d > \"${temp}\") <<'{END}'",
            base64.encodebytes(content).decode().rstrip("\n") or "",
            END,
            f'chmod {mode} "${temp}"',
        ]
    for index, (path, _) in enumerate(files):
        lines.append(f'mv -f -- "$t{index}" {quote(path)}')
    lines.append("tmps=''")
    built = script(lines)
    check = "\n".join(_CHECKSUMS).replace('"$@"', " ".join(quote(p) for p, _ in files))
    return Script(built.text + check + "\n", name="artifact-push")


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
