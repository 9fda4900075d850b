"""What changes between two config versions: their files, and what each instance becomes.

Files are compared by content (a unified diff for text); instances by flattening both versions
(each materialized with the served project's state root) and comparing revisions and configs
with the same code as `shipyard diff` (plan/diff.py). Everything shown is masked.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from shipyard.app.session import Session
from shipyard.app.versions import pinned

MAX_DIFF_LINES = 2000  # a unified diff is cut after this many lines (the files stay whole)


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str  # added, removed, changed
    unified: str | None  # None for a file that is not UTF-8 text

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "unified": self.unified}


@dataclass(frozen=True)
class InstanceChange:
    instance: str
    change: str  # added, removed, changed
    old_revision: str | None
    new_revision: str | None
    entries: tuple[dict[str, Any], ...]  # plan/diff entries, masked

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "change": self.change,
            "old_revision": self.old_revision,
            "new_revision": self.new_revision,
            "entries": list(self.entries),
        }


@dataclass(frozen=True)
class VersionDiff:
    old: int
    new: int
    files: tuple[FileChange, ...]
    instances: tuple[InstanceChange, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "files": [f.to_json() for f in self.files],
            "instances": [i.to_json() for i in self.instances],
        }


def diff_versions(session: Session, old: int, new: int) -> VersionDiff:
    """Files added, removed and changed from version `old` to `new`, and every instance whose
    revision differs (with what differs in its config)."""
    store = session.store
    before, after = store.version_files(old), store.version_files(new)
    masker = session.masker()
    files = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        change = "added" if path not in before else "removed" if path not in after else "changed"
        unified = _unified(path, before.get(path, b""), after.get(path, b""))
        files.append(FileChange(path, change, masker.text(unified) if unified else unified))
    return VersionDiff(old, new, tuple(files), tuple(_instances(session, old, new)))


def _unified(path: str, old: bytes, new: bytes) -> str | None:
    try:
        old_text, new_text = old.decode(), new.decode()
    except UnicodeDecodeError:
        return None
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
            fromfile=f"a/{path}", tofile=f"b/{path}",
        )
    )  # fmt: skip
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)\n"]
    return "".join(lines)


def _instances(session: Session, old: int, new: int) -> list[InstanceChange]:
    from shipyard.plan.diff import diff_configs

    before = dict(pinned(session, old).flatten(empty_ok=True).instances)
    after_session = pinned(session, new)
    after = dict(after_session.flatten(empty_ok=True).instances)
    masker = after_session.masker()
    out = []
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name), after.get(name)
        if was is not None and now is not None and was.revision == now.revision:
            continue
        change = "added" if was is None else "removed" if now is None else "changed"
        entries = diff_configs(
            was.config if was else None,
            now.config if now else None,
            old_secrets=was.secrets if was else None,
            new_secrets=now.secrets if now else None,
            sides=(f"version {old}", f"version {new}"),
        )
        shown = masker.json([e.as_json() for e in entries])
        out.append(
            InstanceChange(
                name, change, was.revision if was else None, now.revision if now else None,
                tuple(shown if isinstance(shown, list) else []),
            )
        )  # fmt: skip
    return out
